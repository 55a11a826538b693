#pragma once
// Column bodies of softmax / log-softmax along an axis (x viewed as (outer, n, inner); a column is
// the n values of one (o, i), inner apart), shared by the CPU kernels (ops/cpu/softmax.hpp) and
// the CUDA kernels (cuda/), so the CPU tests cover the GPU arithmetic.
#include <cmath>
#include <cstdint>
#include <limits>

#include "../../core/error.hpp"

namespace diffautoml::body {

/// ys = softmax(xs) (or log_softmax) over one column.
template <class T>
DAM_HOST_DEVICE inline void softmax_column(const T* xs, T* ys, std::int64_t n, std::int64_t inner, bool log) {
    T mx = -std::numeric_limits<T>::infinity();
    for (std::int64_t k = 0; k < n; ++k) mx = xs[k * inner] > mx ? xs[k * inner] : mx;
    T s = 0;
    for (std::int64_t k = 0; k < n; ++k) s += std::exp(xs[k * inner] - mx);
    if (log) {
        const T lse = mx + std::log(s);
        for (std::int64_t k = 0; k < n; ++k) ys[k * inner] = xs[k * inner] - lse;
    } else {
        const T inv = T(1) / s;
        for (std::int64_t k = 0; k < n; ++k) ys[k * inner] = std::exp(xs[k * inner] - mx) * inv;
    }
}

/// One column of the backward: softmax dx = y (g - sum_k g y); log_softmax dx = g - exp(y) sum_k g.
template <class T>
DAM_HOST_DEVICE inline void softmax_backward_column(const T* y, const T* g, T* dx, std::int64_t n, std::int64_t inner,
                                                    bool log) {
    T s = 0;
    for (std::int64_t k = 0; k < n; ++k) s += log ? g[k * inner] : g[k * inner] * y[k * inner];
    for (std::int64_t k = 0; k < n; ++k) {
        const std::int64_t j = k * inner;
        dx[j] = log ? g[j] - std::exp(y[j]) * s : y[j] * (g[j] - s);
    }
}

}  // namespace diffautoml::body
