#pragma once
// The example programs' command line, on CLI11 (Debian's libcli11-dev). Each option is declared
// once, with the variable it sets, its help text and its group; the help prints the default from
// the variable at declaration. Values are read by the variable's type: a whole number must be one
// (in range), a real number must be finite. Every mistake (unknown option, with the closest known
// name suggested; missing or malformed value; an option of another program) is a value_error that
// names the option and what was wrong; --help / -h prints the help and exits 0. When an option is
// given twice, the last one counts (so a script may append to a row's flags).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <diffautoml/core/error.hpp>

namespace dam_cli {

using diffautoml::value_error;

/// The items of a comma-separated list (empty items are skipped).
inline std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto end = s.find(',', start);
        std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!item.empty()) out.push_back(std::move(item));
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return out;
}

/// The value v of option `name` read as a T (a number or a std::string).
template <class T>
T read(const std::string& name, const std::string& v) {
    if constexpr (std::is_same_v<T, std::string>) {
        return v;
    } else if constexpr (std::is_arithmetic_v<T>) {
        T out{};
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
        const bool ok = ec == std::errc() && end == v.data() + v.size() && !v.empty();
        if constexpr (std::is_floating_point_v<T>) {
            if (!ok || !std::isfinite(out)) throw value_error(fmt::format("{} expects a finite number, got '{}'", name, v));
        } else {
            if (!ok)
                throw value_error(fmt::format("{} expects a whole number{}, got '{}'{}", name, std::is_unsigned_v<T> ? " >= 0" : "",
                                              v, ec == std::errc::result_out_of_range ? " (out of range)" : ""));
        }
        return out;
    } else {
        static_assert(std::is_arithmetic_v<T>, "dam_cli::read: the target must be a number or a std::string");
    }
}

/// A comma-separated list of T (empty items are skipped).
template <class T>
std::vector<T> read_list(const std::string& name, const std::string& v) {
    std::vector<T> out;
    for (const auto& item : split(v)) out.push_back(read<T>(name, item));
    return out;
}

/// Edit distance (insertions, deletions, substitutions), for "did you mean".
inline std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

class Cli {
public:
    Cli(std::string program, std::string description) : program_(std::move(program)), app_(std::move(description), program_) {
        app_.allow_extras();  // unknown arguments are reported by parse(), with a suggestion
        app_.set_help_flag("-h,--help", "print this help and exit");
        app_.get_formatter()->column_width(36);
    }

    /// Options declared from here on are listed under `name` in the help.
    Cli& group(std::string name) {
        group_ = std::move(name);
        return *this;
    }

    /// An option with a value, stored into `target` (a number or a std::string). `names` is
    /// CLI11's "--name,--alias"; the first long name is the one messages use.
    template <class T>
    Cli& option(const std::string& names, T& target, const std::string& help) {
        const auto name = first_name(names);
        return add(names, [name, &target](const std::string& v) { target = read<T>(name, v); }, help, show(target),
                   type_name<T>());
    }
    /// A comma-separated list of T stored into `target`.
    template <class T>
    Cli& list(const std::string& names, std::vector<T>& target, const std::string& help) {
        const auto name = first_name(names);
        return add(names, [name, &target](const std::string& v) { target = read_list<T>(name, v); }, help,
                   fmt::format("{}", fmt::join(target, ",")), "LIST");
    }
    /// One of `choices` (value, what it sets `target` to).
    template <class E>
    Cli& choice(const std::string& names, E& target, std::vector<std::pair<std::string, E>> choices, const std::string& help) {
        const auto name = first_name(names);
        std::vector<std::string> keys;
        std::string current;
        for (const auto& [k, v] : choices) {
            keys.push_back(k);
            if (v == target && current.empty()) current = k;
        }
        auto set = [name, &target, choices, keys](const std::string& v) {
            for (const auto& [k, e] : choices)
                if (k == v) {
                    target = e;
                    return;
                }
            throw value_error(fmt::format("{} expects {}, got '{}'", name, fmt::join(keys, " | "), v));
        };
        return add(names, std::move(set), help, current, fmt::format("{}", fmt::join(keys, "|")));
    }
    /// One of `choices`, kept as the string itself.
    Cli& one_of(const std::string& names, std::string& target, const std::vector<std::string>& choices, const std::string& help) {
        std::vector<std::pair<std::string, std::string>> m;
        for (const auto& c : choices) m.emplace_back(c, c);
        return choice<std::string>(names, target, std::move(m), help);
    }
    /// An option with a value handled by `set` (throws value_error on a bad value).
    Cli& custom(const std::string& names, std::function<void(const std::string&)> set, const std::string& help,
                const std::string& default_shown = "", const std::string& type = "TEXT") {
        return add(names, std::move(set), help, default_shown, type);
    }
    /// An option without a value: sets `target` to `value`.
    Cli& flag(const std::string& names, bool& target, const std::string& help, bool value = true) {
        app_.add_flag_callback(names, [&target, value] { target = value; }, help)->group(group_);
        return *this;
    }
    /// An option that belongs to another program or does not apply here: refused with `why`.
    Cli& refuse(const std::string& name, const std::string& why) {
        app_.add_flag_callback(name, [why] { throw value_error(why); })->group("");  // "" hides it from the help
        return *this;
    }

    /// Parses argv[1..argc). --help prints the help and exits 0.
    void parse(int argc, char** argv) {
        try {
            app_.parse(argc, argv);
        } catch (const CLI::CallForHelp&) {
            fmt::print("{}", app_.help());
            std::exit(0);
        } catch (const CLI::ArgumentMismatch& e) {
            const std::string what = e.what();
            if (what.find("missing") != std::string::npos)
                throw value_error(fmt::format("{} needs a value (see --help)", what.substr(0, what.find(':'))));
            throw value_error(fmt::format("{} (see --help)", what));
        } catch (const CLI::ParseError& e) {
            throw value_error(fmt::format("{} (see --help)", e.what()));
        }
        for (const auto& arg : app_.remaining()) {
            if (arg.size() > 1 && arg[0] == '-') {
                const auto guess = closest(arg.substr(0, arg.find('=')));
                throw value_error(fmt::format("unknown option '{}'{} (see --help)", arg,
                                              guess.empty() ? "" : fmt::format("; did you mean {}?", guess)));
            }
            throw value_error(fmt::format("unexpected argument '{}' (options take the form --name value; see --help)", arg));
        }
    }

    /// Whether the option (any of its names) was given on the command line.
    bool given(const std::string& name) const {
        const auto* o = app_.get_option_no_throw(name);
        return o != nullptr && o->count() > 0;
    }
    std::string help() const { return app_.help(); }
    const std::string& program() const { return program_; }
    CLI::App& app() { return app_; }

private:
    Cli& add(const std::string& names, std::function<void(const std::string&)> set, const std::string& help,
             const std::string& default_shown, const std::string& type) {
        auto* o = app_.add_option_function<std::string>(names, std::move(set), help);
        o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)->group(group_)->type_name(type);
        if (!default_shown.empty()) o->default_str(default_shown);
        return *this;
    }
    static std::string first_name(const std::string& names) { return names.substr(0, names.find(',')); }
    template <class T>
    static std::string type_name() {
        if constexpr (std::is_floating_point_v<T>) return "X";
        else if constexpr (std::is_arithmetic_v<T>) return "N";
        else return "TEXT";
    }
    template <class T>
    static std::string show(const T& v) {
        if constexpr (std::is_floating_point_v<T>) return fmt::format("{:g}", v);
        else return fmt::format("{}", v);
    }
    /// The known option name nearest to `arg`, if it is near enough to be a typo.
    std::string closest(const std::string& arg) const {
        std::string best;
        std::size_t best_d = std::max<std::size_t>(2, arg.size() / 4) + 1;
        for (const auto* o : app_.get_options()) {
            if (o->get_group().empty()) continue;
            for (const auto& n : o->get_lnames()) {
                const auto d = edit_distance(arg, "--" + n);
                if (d < best_d) best_d = d, best = "--" + n;
            }
        }
        return best;
    }

    std::string program_;
    CLI::App app_;
    std::string group_ = "options";
};

}  // namespace dam_cli
