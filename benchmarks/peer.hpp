#pragma once
// Runs the PyTorch peer in a subprocess and reads its figures, so every benchmark reports ours
// and the peer's measured in the same run on the same machine: once per figure (run_and_read), or
// a request at a time from a long-lived peer (PeerServer), interleaved with our own timings.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <stdexcept>
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

namespace dam_bench {

/// A long-lived peer process (e.g. `torch_ops.py --serve`) spoken to a line at a time: each
/// request is answered by one line, so the peer's timed calls can be interleaved with ours.
class PeerServer {
public:
    /// Starts `/bin/sh -c command`; `hello()` holds its first output line.
    explicit PeerServer(const std::string& command) {
        int to_child[2], from_child[2];
        if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) throw std::runtime_error("peer: pipe() failed");
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("peer: fork() failed");
        if (pid_ == 0) {
            ::dup2(to_child[0], 0);
            ::dup2(from_child[1], 1);
            ::close(to_child[1]);
            ::close(from_child[0]);
            ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        to_ = ::fdopen(to_child[1], "w");
        from_ = ::fdopen(from_child[0], "r");
        hello_ = read_line(command);
    }
    PeerServer(const PeerServer&) = delete;
    PeerServer& operator=(const PeerServer&) = delete;
    ~PeerServer() {
        if (to_) std::fclose(to_);  // end of input: the peer exits
        if (from_) std::fclose(from_);
        if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    }

    const std::string& hello() const { return hello_; }

    /// Sends one request and returns the number after `key=` in the answer.
    double request(const std::string& line, const std::string& key) {
        std::fputs((line + "\n").c_str(), to_);
        std::fflush(to_);
        const std::string answer = read_line(line);
        const auto pos = answer.find(key + "=");
        if (pos == std::string::npos)
            throw std::runtime_error(fmt::format("peer: no '{}=' in its answer to '{}': {}", key, line, answer));
        return std::stod(answer.substr(pos + key.size() + 1));
    }

private:
    std::string read_line(const std::string& what) {
        std::string line;
        char buf[4096];
        while (std::fgets(buf, sizeof buf, from_)) {
            line += buf;
            if (!line.empty() && line.back() == '\n') {
                line.pop_back();
                return line;
            }
        }
        throw std::runtime_error(fmt::format("peer: the process ended while answering '{}' (its error is above)", what));
    }

    pid_t pid_ = -1;
    std::FILE* to_ = nullptr;
    std::FILE* from_ = nullptr;
    std::string hello_;
};

}  // namespace dam_bench
