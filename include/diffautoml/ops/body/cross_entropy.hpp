#pragma once
// Row bodies of the fused softmax-cross-entropy with label smoothing, shared by the CPU kernels
// (ops/cpu/softmax.hpp) and the CUDA kernels (cuda/), so the CPU tests cover the GPU arithmetic:
//     loss = -(1 - eps) log p[y] - (eps / K) sum_k log p[k],   p = softmax(z),
//     dloss/dz[k] = p[k] - q[k],   q = (1 - eps) onehot(y) + eps / K.
#include <cmath>
#include <cstdint>

#include "../../core/error.hpp"

namespace diffautoml::body {

/// One row: writes p = softmax(z) (K values) and returns the loss of label y.
template <class T>
DAM_HOST_DEVICE inline T cross_entropy_row_forward(const T* z, std::int32_t y, std::int64_t K, T eps, T* p) {
    T mx = z[0];
    for (std::int64_t k = 1; k < K; ++k) mx = z[k] > mx ? z[k] : mx;
    T s = 0;
    for (std::int64_t k = 0; k < K; ++k) s += std::exp(z[k] - mx);
    const T lse = mx + std::log(s);
    T sum_logp = 0;
    for (std::int64_t k = 0; k < K; ++k) {
        const T lp = z[k] - lse;
        sum_logp += lp;
        p[k] = std::exp(lp);
    }
    return -(T(1) - eps) * (z[y] - lse) - eps / static_cast<T>(K) * sum_logp;
}

/// One row: dz[k] = gi * (p[k] - q[k]), gi the incoming gradient of this row's loss.
template <class T>
DAM_HOST_DEVICE inline void cross_entropy_row_backward(const T* p, std::int32_t y, std::int64_t K, T eps, T gi, T* dz) {
    const T u = eps / static_cast<T>(K);
    for (std::int64_t k = 0; k < K; ++k) dz[k] = gi * (p[k] - u);
    dz[y] -= gi * (T(1) - eps);
}

}  // namespace diffautoml::body
