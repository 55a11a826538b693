#pragma once
// Counting the multiply-accumulates (MACs) of the dense ops (conv2d, matmul, linear) during a
// forward pass: the resource measure of NAS FLOPs penalties and of search-space tables. Counting
// is per thread and costs one branch per op when no counter is active.
#include <cstdint>

namespace diffautoml {

/// MACs counted by the dense ops while a FlopScope with this counter is alive on this thread.
struct FlopCounter {
    double macs = 0;
    double flops() const { return 2 * macs; }
};

namespace detail {
inline FlopCounter*& active_flop_counter() {
    thread_local FlopCounter* counter = nullptr;
    return counter;
}
}  // namespace detail

/// Dense ops call this with their MACs; a no-op unless a FlopScope is active.
inline void count_macs(double macs) {
    if (FlopCounter* c = detail::active_flop_counter()) c->macs += macs;
}

/// While alive, the dense ops on this thread add their MACs to `counter` (scopes nest; the
/// innermost one counts).
class FlopScope {
public:
    explicit FlopScope(FlopCounter& counter) : previous_(detail::active_flop_counter()) {
        detail::active_flop_counter() = &counter;
    }
    ~FlopScope() { detail::active_flop_counter() = previous_; }
    FlopScope(const FlopScope&) = delete;
    FlopScope& operator=(const FlopScope&) = delete;

private:
    FlopCounter* previous_;
};

}  // namespace diffautoml
