#pragma once
// CPU batch norm over (N, C, H, W), one channel per task.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "simd.hpp"

namespace diffautoml::backend_cpu {

namespace detail {
/// y = x * scale + shift over channel c of every image (then max(0, .) when relu).
template <class T>
void scale_shift_channel(const T* x, T* y, std::int64_t c, std::int64_t N, std::int64_t C, std::int64_t HW, T scale,
                         T shift, bool relu) {
    for (std::int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * HW;
        T* q = y + (n * C + c) * HW;
        if (relu) {
            for (std::int64_t i = 0; i < HW; ++i) q[i] = std::max(T(0), p[i] * scale + shift);
        } else {
            for (std::int64_t i = 0; i < HW; ++i) q[i] = p[i] * scale + shift;
        }
    }
}

/// The channel-major loops below visit one plane of HW values per image, C * HW values apart.
/// Planes of 7x7 or 14x14 values are too short for the hardware prefetcher to follow, so the
/// first pass over data not in cache waited on memory: 3.3 GB/s on 7x7 planes against 10.7 with
/// the planes of image n + ahead requested ahead (docs/results.md, batch norm). About 8 KiB ahead.
template <class T>
std::int64_t prefetch_ahead(std::int64_t HW) {
    return std::clamp<std::int64_t>(8192 / std::max<std::int64_t>(1, HW * static_cast<std::int64_t>(sizeof(T))), 4, 16);
}
/// Per-plane sums of batch norm: the plane's values go through vector registers (see
/// simd::sum_lanes), a lanes-wide step at a time, then the tail one value at a time.
/// a += sum (x - K), b += sum (x - K)^2 over the HW values at p.
template <class T>
inline void shifted_sums(const T* p, std::int64_t HW, T K, T& a, T& b) {
    using namespace simd;
    Vec<T> k, va{}, vb{};
    splat(K, k);
    std::int64_t i = 0;
    for (; i + lanes<T> <= HW; i += lanes<T>) {
        Vec<T> d;
        load(p + i, d);
        d -= k;
        va += d;
        vb += d * d;
    }
    a = sum_lanes<T>(va);
    b = sum_lanes<T>(vb);
    for (; i < HW; ++i) {
        const T d = p[i] - K;
        a += d;
        b += d * d;
    }
}
/// a = sum g, b = sum g (x - m) over the HW values, g = dy, or dy where y > 0 when y is given
/// (the gradient through a ReLU whose output is y; Masked says which).
template <bool Masked, class T>
inline void gradient_sums(const T* x, const T* y, const T* dy, std::int64_t HW, T m, T& a, T& b) {
    using namespace simd;
    Vec<T> mv, va{}, vb{};
    splat(m, mv);
    std::int64_t i = 0;
    for (; i + lanes<T> <= HW; i += lanes<T>) {
        Vec<T> g, xv;
        load(dy + i, g);
        load(x + i, xv);
        if constexpr (Masked) {
            Vec<T> yv;
            load(y + i, yv);
            auto keep = yv > Vec<T>{};  // all ones where y > 0
            decltype(keep) bits;
            std::memcpy(&bits, &g, sizeof g);
            bits &= keep;
            std::memcpy(&g, &bits, sizeof g);
        }
        va += g;
        vb += g * (xv - mv);
    }
    a = sum_lanes<T>(va);
    b = sum_lanes<T>(vb);
    for (; i < HW; ++i) {
        const T g = !Masked || y[i] > T(0) ? dy[i] : T(0);
        a += g;
        b += g * (x[i] - m);
    }
}

/// Requests the 64-byte cache lines that hold the HW values at p (a hint: it never faults).
template <class T>
inline void prefetch_plane(const T* p, std::int64_t HW) {
    const auto first = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{63};
    const auto end = reinterpret_cast<std::uintptr_t>(p + HW);
    for (std::uintptr_t a = first; a < end; a += 64) __builtin_prefetch(reinterpret_cast<const void*>(a));
}
}  // namespace detail


/// Training mode: batch statistics. Writes y, the batch mean and 1/sqrt(var + eps), and updates
/// the running statistics (unbiased variance) with `momentum` when they are given.
template <class T>
void batchnorm2d_forward_train(cpu, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                               T* running_mean, T* running_var, std::int64_t N, std::int64_t C, std::int64_t HW,
                               double momentum, double eps, bool relu) {
    const std::int64_t M = N * HW;
    parallel_for(C, [&](std::int64_t c) {
        // One pass over the data with the shifted-data algorithm: sums of (x - K) and (x - K)^2
        // with K = the channel's first value stay accurate when the mean is large against the spread.
        const T K = x[c * HW];
        const std::int64_t ahead = detail::prefetch_ahead<T>(HW);
        double s = 0, s2 = 0;
        for (std::int64_t n = 0; n < N; ++n) {
            const T* p = x + (n * C + c) * HW;
            if (n + ahead < N) detail::prefetch_plane(p + ahead * C * HW, HW);
            T a, b;
            detail::shifted_sums(p, HW, K, a, b);
            s += a;
            s2 += b;
        }
        const double md = s / static_cast<double>(M);
        const double mean = static_cast<double>(K) + md;
        const double v = std::max(0.0, s2 - s * md);  // sum of squared deviations
        const double var = v / static_cast<double>(M);
        const double invstd = 1.0 / std::sqrt(var + eps);
        mean_out[c] = static_cast<T>(mean);
        invstd_out[c] = static_cast<T>(invstd);
        if (running_mean) {
            const double unbiased = M > 1 ? v / static_cast<double>(M - 1) : var;
            running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mean);
            running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased);
        }
        const T scale = static_cast<T>(invstd) * (gamma ? gamma[c] : T(1));
        const T shift = (beta ? beta[c] : T(0)) - static_cast<T>(mean) * scale;
        detail::scale_shift_channel(x, y, c, N, C, HW, scale, shift, relu);
    });
}

/// Evaluation mode: y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta.
template <class T>
void batchnorm2d_forward_eval(cpu, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                              const T* running_mean, const T* running_var, std::int64_t N, std::int64_t C,
                              std::int64_t HW, double eps, bool relu) {
    parallel_for(C, [&](std::int64_t c) {
        const T invstd = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
        mean_out[c] = running_mean[c];
        invstd_out[c] = invstd;
        const T scale = invstd * (gamma ? gamma[c] : T(1));
        const T shift = (beta ? beta[c] : T(0)) - running_mean[c] * scale;
        detail::scale_shift_channel(x, y, c, N, C, HW, scale, shift, relu);
    });
}

/// Gradients of batch norm with xhat = (x - mean) * invstd. In training mode the statistics
/// depend on x, which adds the two mean terms to dx (Ioffe & Szegedy 2015, sec. 3):
///   dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)).
/// When the forward applied a ReLU, `y` is its output and dy is first masked by y > 0.
/// Any of dx, dgamma, dbeta may be null.
template <class T>
void batchnorm2d_backward(cpu, const T* x, const T* y, const T* dy, const T* gamma, const T* mean, const T* invstd, T* dx,
                          T* dgamma, T* dbeta, std::int64_t N, std::int64_t C, std::int64_t HW, bool training) {
    const std::int64_t M = N * HW;
    parallel_for(C, [&](std::int64_t c) {
        const T m = mean[c], is = invstd[c];
        const std::int64_t ahead = detail::prefetch_ahead<T>(HW);
        double sdy = 0, sdyx = 0;
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t o = (n * C + c) * HW;
            const T* p = x + o;
            const T* d = dy + o;
            if (n + ahead < N) {
                const std::int64_t f = o + ahead * C * HW;
                detail::prefetch_plane(x + f, HW);
                detail::prefetch_plane(dy + f, HW);
                if (y) detail::prefetch_plane(y + f, HW);
            }
            T a, b;
            if (y) detail::gradient_sums<true>(p, y + o, d, HW, m, a, b);
            else detail::gradient_sums<false>(p, y, d, HW, m, a, b);
            sdy += a;
            sdyx += b;
        }
        sdyx *= is;  // sum(dy * xhat)
        if (dgamma) dgamma[c] = static_cast<T>(sdyx);
        if (dbeta) dbeta[c] = static_cast<T>(sdy);
        if (!dx) return;
        const T g = gamma ? gamma[c] : T(1);
        const T k = g * is;
        const T mdy = training ? static_cast<T>(sdy / static_cast<double>(M)) : T(0);
        const T mdyx = training ? static_cast<T>(sdyx / static_cast<double>(M)) : T(0);
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t o = (n * C + c) * HW;
            const T* p = x + o;
            const T* d = dy + o;
            T* out = dx + o;
            if (y) {
                const T* q = y + o;
                for (std::int64_t i = 0; i < HW; ++i)
                    out[i] = k * ((q[i] > T(0) ? d[i] : T(0)) - mdy - (p[i] - m) * is * mdyx);
            } else {
                for (std::int64_t i = 0; i < HW; ++i) out[i] = k * (d[i] - mdy - (p[i] - m) * is * mdyx);
            }
        }
    });
}

}  // namespace diffautoml::backend_cpu
