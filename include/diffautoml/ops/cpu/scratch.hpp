#pragma once
// Per-thread scratch memory for the CPU kernels.
#include <cstddef>
#include <vector>

namespace diffautoml::backend_cpu {

/// Buffer `slot` (< Slots) of the calling thread, at least n elements, keeping its capacity
/// between calls. Each kernel family passes its own Owner tag, so two families never hand out the
/// same buffer even when one runs inside the other.
template <class Owner, int Slots, class T>
T* thread_scratch(std::size_t n, int slot) {
    thread_local std::vector<T> buffers[Slots];
    auto& b = buffers[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
}

}  // namespace diffautoml::backend_cpu
