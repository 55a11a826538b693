#pragma once
// A terminal progress bar with rate and ETA. On a terminal it redraws in place about ten times a
// second; when the output is a file or a pipe it prints a plain line every few seconds instead.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <unistd.h>

namespace diffautoml {

class ProgressBar {
public:
    /// `total` steps; each step processes `items_per_step` items (images) for the rate.
    ProgressBar(std::int64_t total, std::string label, std::string unit = "img", std::FILE* out = stderr)
        : total_(total), label_(std::move(label)), unit_(std::move(unit)), out_(out),
          tty_(::isatty(::fileno(out)) != 0), start_(clock::now()), last_(start_) {}

    /// Reports `done` steps and `items` items processed so far, with an extra text (e.g. loss).
    void update(std::int64_t done, std::int64_t items, const std::string& extra = {}) {
        const auto now = clock::now();
        const double since = std::chrono::duration<double>(now - last_).count();
        if (done < total_ && since < (tty_ ? 0.1 : 5.0)) return;
        last_ = now;
        draw(done, items, extra, done >= total_);
    }
    void finish(std::int64_t items, const std::string& extra = {}) { draw(total_, items, extra, true); }
    double elapsed_seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

    static std::string format_duration(double s) {
        const auto t = static_cast<std::int64_t>(s + 0.5);
        return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{}:{:02}", t / 60, t % 60);
    }

private:
    using clock = std::chrono::steady_clock;
    void draw(std::int64_t done, std::int64_t items, const std::string& extra, bool final) {
        const double el = elapsed_seconds();
        const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
        const double rate = el > 0 ? static_cast<double>(items) / el : 0.0;
        const double eta = frac > 0 ? el * (1 - frac) / frac : 0.0;
        constexpr int width = 24;
        const int filled = static_cast<int>(frac * width + 0.5);
        const std::string bar = std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.');
        const std::string line = fmt::format("{} [{}] {:3.0f}% {}/{} | {:.0f} {}/s | {} {}{}{}", label_, bar, frac * 100, done,
                                             total_, rate, unit_, final ? "took" : "ETA", format_duration(final ? el : eta),
                                             extra.empty() ? "" : "| ", extra);
        if (tty_) {
            fmt::print(out_, "\r{:<110}", line);
            if (final) fmt::print(out_, "\n");
        } else {
            fmt::print(out_, "{}\n", line);
        }
        std::fflush(out_);
    }

    std::int64_t total_;
    std::string label_, unit_;
    std::FILE* out_;
    bool tty_;
    clock::time_point start_, last_;
};

}  // namespace diffautoml
