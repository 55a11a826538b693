#pragma once
// CPU softmax / log-softmax along an axis (x viewed as (outer, n, inner)), and a fused
// softmax-cross-entropy with label smoothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../body/cross_entropy.hpp"
#include "../body/softmax.hpp"

namespace diffautoml::backend_cpu {

template <class T>
void softmax_forward(cpu, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
    parallel_for(outer * inner, [&](std::int64_t p) {
        const std::int64_t o = p / inner, i = p % inner;
        body::softmax_column(x + o * n * inner + i, y + o * n * inner + i, n, inner, log);
    }, 16);
}
/// softmax: dx = y * (g - sum_k g y);  log_softmax: dx = g - exp(y) * sum_k g.
template <class T>
void softmax_backward(cpu, const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner,
                      bool log) {
    parallel_for(outer * inner, [&](std::int64_t p) {
        const std::int64_t base = (p / inner) * n * inner + p % inner;
        body::softmax_backward_column(y + base, g + base, dx + base, n, inner, log);
    }, 16);
}

/// loss[i] = -(1 - eps) log p[i, y_i] - (eps / K) sum_k log p[i, k]; also writes p = softmax(logits).
template <class T>
void cross_entropy_forward(cpu, const T* logits, const std::int32_t* labels, T* loss, T* prob, std::int64_t N,
                           std::int64_t K, double smoothing) {
    parallel_for(N, [&](std::int64_t i) {
        loss[i] = body::cross_entropy_row_forward(logits + i * K, labels[i], K, static_cast<T>(smoothing), prob + i * K);
    }, 64);
}
/// dlogits[i, k] = scale_i * (p[i, k] - q[i, k]), q = (1 - eps) onehot(y_i) + eps / K.
template <class T>
void cross_entropy_backward(cpu, const T* prob, const std::int32_t* labels, const T* g, bool g_per_sample, T* dx,
                            std::int64_t N, std::int64_t K, double smoothing, T scale) {
    const T eps = static_cast<T>(smoothing);
    parallel_for(N, [&](std::int64_t i) {
        const T gi = (g_per_sample ? g[i] : g[0]) * scale;
        body::cross_entropy_row_backward(prob + i * K, labels[i], K, eps, gi, dx + i * K);
    }, 64);
}

}  // namespace diffautoml::backend_cpu
