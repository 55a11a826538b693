#pragma once
// CPU kernels of the mixed-op weighted sum y = sum_k w_k x_k (DARTS, SNAS, GDAS and DSNAS gates).
#include <cstdint>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"

namespace diffautoml::backend_cpu {

namespace mixed_detail {
/// A fixed number of chunks (not the thread count), so the weight-gradient sums are added in the
/// same order however many threads run.
constexpr std::int64_t chunks = 64;
}  // namespace mixed_detail

/// y[i] = sum_k w[k] * xs[k][i] for i < n; one pass over the inputs.
template <class T>
void weighted_sum_forward(cpu, const T* const* xs, const T* w, std::int64_t K, std::int64_t n, T* y) {
    const std::int64_t step = (n + mixed_detail::chunks - 1) / mixed_detail::chunks;
    parallel_for(mixed_detail::chunks, [&](std::int64_t c) {
        const std::int64_t b = c * step, e = std::min(n, b + step);
        if (b >= e) return;
        const T w0 = w[0];
        const T* x0 = xs[0];
        for (std::int64_t i = b; i < e; ++i) y[i] = w0 * x0[i];
        for (std::int64_t k = 1; k < K; ++k) {
            const T wk = w[k];
            const T* xk = xs[k];
            for (std::int64_t i = b; i < e; ++i) y[i] += wk * xk[i];
        }
    });
}

/// dxs[k][i] = w[k] * g[i] (skipped where dxs[k] is null) and dw[k] = sum_i g[i] * xs[k][i]
/// (dw may be null), in one pass over g.
template <class T>
void weighted_sum_backward(cpu, const T* const* xs, const T* w, const T* g, std::int64_t K, std::int64_t n,
                           T* const* dxs, T* dw) {
    const std::int64_t step = (n + mixed_detail::chunks - 1) / mixed_detail::chunks;
    std::vector<double> partial(static_cast<std::size_t>(dw ? mixed_detail::chunks * K : 0), 0.0);
    parallel_for(mixed_detail::chunks, [&](std::int64_t c) {
        const std::int64_t b = c * step, e = std::min(n, b + step);
        for (std::int64_t k = 0; k < K; ++k) {
            const T wk = w[k];
            const T* xk = xs[k];
            if (T* dx = dxs[k])
                for (std::int64_t i = b; i < e; ++i) dx[i] = wk * g[i];
            if (dw) {
                T s = 0;
                for (std::int64_t i = b; i < e; ++i) s += g[i] * xk[i];
                partial[static_cast<std::size_t>(c * K + k)] = static_cast<double>(s);
            }
        }
    });
    if (dw)
        for (std::int64_t k = 0; k < K; ++k) {
            double s = 0;
            for (std::int64_t c = 0; c < mixed_detail::chunks; ++c) s += partial[static_cast<std::size_t>(c * K + k)];
            dw[k] = static_cast<T>(s);
        }
}

}  // namespace diffautoml::backend_cpu
