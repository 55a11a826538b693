#pragma once
// Element bodies of the mixed-op weighted sum y = sum_k w_k x_k (ops/mixed.hpp), shared by the
// CPU reference (ops/cpu/mixed.hpp computes the same sums in a cache-friendly order) and the fused
// CUDA kernels. The backward of element i gives dL/dx_k[i] = w_k g[i] and adds g[i] x_k[i] to
// dL/dw_k, which for DSNAS's one-hot gate Z is dL/dZ_k = <dL/dy, x_k> (docs/algorithm.md step 4).
#include <cstdint>

#include "../../core/error.hpp"

namespace diffautoml::body {

template <class T>
DAM_HOST_DEVICE inline T weighted_sum_at(const T* const* xs, const T* w, std::int64_t K, std::int64_t i) {
    T y = w[0] * xs[0][i];
    for (std::int64_t k = 1; k < K; ++k) y += w[k] * xs[k][i];
    return y;
}

/// Element i of the backward pass: writes dxs[k][i] where dxs[k] is not null and adds
/// g[i] * xs[k][i] to acc[k] (the caller reduces acc over elements into dL/dw).
template <class T, class Acc>
DAM_HOST_DEVICE inline void weighted_sum_backward_at(const T* const* xs, const T* w, const T* g, std::int64_t K,
                                                     std::int64_t i, T* const* dxs, Acc* acc) {
    const T gi = g[i];
    for (std::int64_t k = 0; k < K; ++k) {
        if (dxs[k]) dxs[k][i] = w[k] * gi;
        if (acc) acc[k] += static_cast<Acc>(gi) * static_cast<Acc>(xs[k][i]);
    }
}

}  // namespace diffautoml::body
