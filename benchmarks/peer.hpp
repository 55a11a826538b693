#pragma once
// Runs the PyTorch peer (benchmarks/torch_ref.py) in a subprocess and reads its figure, so
// every benchmark reports ours and the peer's measured in the same run on the same machine.
#include <cstdio>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace dam_bench {

/// Runs `command` and returns the number after `key=` in its output, or nothing.
inline std::optional<double> run_and_read(const std::string& command, const std::string& key) {
    std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (!p) return std::nullopt;
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
    const auto pos = out.find(key + "=");
    if (pos == std::string::npos) {
        fmt::print(stderr, "peer: no '{}=' in the output of `{}`:\n{}\n", key, command, out);
        return std::nullopt;
    }
    return std::stod(out.substr(pos + key.size() + 1));
}

inline std::string fmt_opt(std::optional<double> v) { return v ? fmt::format("{:.1f}", *v) : "nan"; }

}  // namespace dam_bench
