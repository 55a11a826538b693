#pragma once
// Thread control: one setting for OpenMP loops and Eigen's GEMM.
#include <algorithm>
#include <cstdint>

#include <Eigen/Core>
#include <omp.h>

#include "error.hpp"

namespace diffautoml {

/// Sets the number of threads used by every op (OpenMP loops and Eigen products).
inline void set_num_threads(int n) {
    DAM_CHECK(n >= 1, value_error, "set_num_threads: need at least 1 thread, got {}", n);
    omp_set_num_threads(n);
    Eigen::setNbThreads(n);
}
inline int num_threads() { return omp_get_max_threads(); }

/// Runs f(i) for i in [0, n) over the OpenMP threads, statically scheduled. Falls back to a
/// serial loop for small n or when already inside a parallel region.
template <class F>
void parallel_for(std::int64_t n, F&& f, std::int64_t serial_below = 2) {
    if (n < serial_below || omp_in_parallel() || omp_get_max_threads() == 1) {
        for (std::int64_t i = 0; i < n; ++i) f(i);
        return;
    }
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) f(i);
}

/// Threads for a sum over `items` (images of a batch) split into fixed shares: never more than
/// the items, and 1 inside a parallel region.
inline int fixed_share_threads(std::int64_t items) {
    if (omp_in_parallel()) return 1;
    return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(omp_get_max_threads(), items)));
}

/// Runs work(t) for the shares t < threads (t = 0 alone on the calling thread when threads == 1),
/// then adds the partial sums part(1), part(2), ... (n values each) into part(0) in that order, so
/// the sum does not depend on scheduling.
template <class Part, class Work>
void sum_fixed_shares(int threads, std::int64_t n, Part&& part, Work&& work) {
    if (threads == 1) {
        work(0);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) work(t);
    auto* total = part(0);
    for (int t = 1; t < threads; ++t) {
        const auto* p = part(t);
        for (std::int64_t i = 0; i < n; ++i) total[i] += p[i];
    }
}

}  // namespace diffautoml
