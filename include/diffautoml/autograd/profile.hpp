#pragma once
// Where the time of a training step goes, op by op: an opt-in profiler of the autograd graph.
//
// While an OpProfiler is active on a thread (ProfileScope), every op's result (Var::make_result)
// records the time since the previous record on that thread under the op's name as its forward
// time, and backward() times each node's closure under the node's op as its backward time. The
// forward figure therefore includes the little work between two ops (a layer's bookkeeping): it
// attributes all of a forward pass's time, and the sections a caller marks (mark()) take the rest
// (data, optimizer). Nothing is recorded and nothing is timed when no profiler is active: the cost
// is one thread-local load per op.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace diffautoml {

class OpProfiler {
public:
    using clock = std::chrono::steady_clock;

    struct Entry {
        double forward_seconds = 0, backward_seconds = 0;
        std::int64_t forward_calls = 0, backward_calls = 0;
        double total() const { return forward_seconds + backward_seconds; }
    };

    /// Restarts the forward clock: the time until the next op or mark is that op's or mark's.
    void restart() { last_ = clock::now(); }
    /// Records the time since the last record under `name`'s forward time (a caller's section:
    /// "data", "optimizer", ...) and restarts the clock.
    void mark(const std::string& name) { forward(name); }

    void forward(const std::string& op) {
        const auto now = clock::now();
        auto& e = entries_[op];
        e.forward_seconds += std::chrono::duration<double>(now - last_).count();
        ++e.forward_calls;
        last_ = now;
    }
    void backward(const std::string& op, double seconds) {
        auto& e = entries_[op];
        e.backward_seconds += seconds;
        ++e.backward_calls;
        last_ = clock::now();  // the backward pass is not the next op's forward time
    }

    const std::map<std::string, Entry>& entries() const { return entries_; }
    double total_seconds() const {
        double t = 0;
        for (const auto& [name, e] : entries_) t += e.total();
        return t;
    }
    /// The entries by total time, largest first.
    std::vector<std::pair<std::string, Entry>> sorted() const {
        std::vector<std::pair<std::string, Entry>> v(entries_.begin(), entries_.end());
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.total() > b.second.total(); });
        return v;
    }
    void clear() { entries_.clear(); }

    /// The profiler active on this thread, or nullptr.
    static OpProfiler*& active() {
        thread_local OpProfiler* p = nullptr;
        return p;
    }

private:
    std::map<std::string, Entry> entries_;
    clock::time_point last_ = clock::now();
};

/// RAII: `profiler` records this thread's ops for the scope's lifetime (scopes nest).
class ProfileScope {
public:
    explicit ProfileScope(OpProfiler& profiler) : previous_(OpProfiler::active()) {
        OpProfiler::active() = &profiler;
        profiler.restart();
    }
    ~ProfileScope() { OpProfiler::active() = previous_; }
    ProfileScope(const ProfileScope&) = delete;
    ProfileScope& operator=(const ProfileScope&) = delete;

private:
    OpProfiler* previous_;
};

}  // namespace diffautoml
