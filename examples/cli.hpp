#pragma once
// One command-line parser for the example programs. Each option names the variable it sets, and
// its type decides how the value is read: a whole number must be one (in range), a real number
// must be finite. Every mistake (unknown option, missing or malformed value) is a value_error that
// names the program, the option and what was wrong; --help / -h prints the usage and exits 0.
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

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

class Parser {
public:
    using Setter = std::function<void(const std::string&)>;

    Parser(std::string program, std::function<void()> usage) : program_(std::move(program)), usage_(std::move(usage)) {}

    /// An option with a value, stored into `target` (a number or a string).
    template <class T>
    Parser& option(const std::string& name, T& target) {
        return custom(name, [this, name, &target](const std::string& v) { target = read<T>(name, v); });
    }
    /// An option with a value handled by `set` (lists, choices).
    Parser& custom(const std::string& name, Setter set) {
        setters_[name] = std::move(set);
        return *this;
    }
    /// An option without a value: sets `target` to `value`.
    Parser& flag(const std::string& name, bool& target, bool value = true) {
        flags_[name] = [&target, value] { target = value; };
        return *this;
    }

    /// Parses argv[1..argc). Unknown options are an error, or collected into *rest when given.
    void parse(int argc, char** argv, std::vector<std::string>* rest = nullptr) const {
        for (int i = 1; i < argc; ++i) {
            const std::string k = argv[i];
            if (k == "--help" || k == "-h") {
                usage_();
                std::exit(0);
            }
            if (auto f = flags_.find(k); f != flags_.end()) {
                f->second();
            } else if (auto s = setters_.find(k); s != setters_.end()) {
                if (i + 1 >= argc) throw value_error(fmt::format("{}: {} needs a value (see --help)", program_, k));
                s->second(argv[++i]);
            } else if (rest) {
                rest->push_back(k);
            } else {
                throw value_error(fmt::format("{}: unknown option '{}' (see --help)", program_, k));
            }
        }
    }

    /// The value v of option `name` read as a T.
    template <class T>
    T read(const std::string& name, const std::string& v) const {
        if constexpr (std::is_same_v<T, std::string>) {
            return v;
        } else if constexpr (std::is_arithmetic_v<T>) {
            T out{};
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
            const bool ok = ec == std::errc() && end == v.data() + v.size() && !v.empty();
            if constexpr (std::is_floating_point_v<T>) {
                if (!ok || !std::isfinite(out))
                    throw value_error(fmt::format("{}: {} expects a finite number, got '{}'", program_, name, v));
            } else {
                if (!ok)
                    throw value_error(fmt::format("{}: {} expects a whole number{}, got '{}'{}", program_, name,
                                                  std::is_unsigned_v<T> ? " >= 0" : "", v,
                                                  ec == std::errc::result_out_of_range ? " (out of range)" : ""));
            }
            return out;
        } else {
            static_assert(std::is_arithmetic_v<T>, "dam_cli::Parser::option: the target must be a number or a std::string");
        }
    }

    /// A comma-separated list of T (empty items are skipped).
    template <class T>
    std::vector<T> read_list(const std::string& name, const std::string& v) const {
        std::vector<T> out;
        for (const auto& item : split(v)) out.push_back(read<T>(name, item));
        return out;
    }

    const std::string& program() const { return program_; }

private:
    std::string program_;
    std::function<void()> usage_;
    std::map<std::string, Setter> setters_;
    std::map<std::string, std::function<void()>> flags_;
};

}  // namespace dam_cli
