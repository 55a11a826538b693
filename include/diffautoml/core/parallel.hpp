#pragma once
// Thread control: one setting for OpenMP loops and Eigen's GEMM.
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

}  // namespace diffautoml
