#pragma once
// Window bodies of max and average pooling over one (n, c) plane, shared by the CPU kernels
// (ops/cpu/pool.hpp) and the CUDA kernels (cuda/), so the CPU tests cover the GPU arithmetic.
#include <cstdint>
#include <limits>

#include "../conv_params.hpp"

namespace diffautoml::body {

/// The maximum of output window (oh, ow) of plane xp (padding never wins) and, in *arg, its flat
/// index in the plane (the first one on ties; -1 for a window with no input pixel).
template <class T>
DAM_HOST_DEVICE inline T max_pool_at(const T* xp, const PoolGeometry& g, std::int64_t oh, std::int64_t ow, std::int32_t* arg) {
    T best = -std::numeric_limits<T>::infinity();
    std::int32_t bi = -1;
    for (std::int64_t kh = 0; kh < g.k; ++kh) {
        const std::int64_t ih = oh * g.stride - g.pad + kh;
        if (ih < 0 || ih >= g.in_h) continue;
        for (std::int64_t kw = 0; kw < g.k; ++kw) {
            const std::int64_t iw = ow * g.stride - g.pad + kw;
            if (iw < 0 || iw >= g.in_w) continue;
            const T v = xp[ih * g.in_w + iw];
            if (v > best || bi < 0) {
                best = v;
                bi = static_cast<std::int32_t>(ih * g.in_w + iw);
            }
        }
    }
    *arg = bi;
    return best;
}

/// The mean of output window (oh, ow): the sum of its input pixels over k * k (padding counts as
/// zeros, as in PyTorch's default).
template <class T>
DAM_HOST_DEVICE inline T avg_pool_at(const T* xp, const PoolGeometry& g, std::int64_t oh, std::int64_t ow) {
    T s = 0;
    for (std::int64_t kh = 0; kh < g.k; ++kh) {
        const std::int64_t ih = oh * g.stride - g.pad + kh;
        if (ih < 0 || ih >= g.in_h) continue;
        for (std::int64_t kw = 0; kw < g.k; ++kw) {
            const std::int64_t iw = ow * g.stride - g.pad + kw;
            if (iw >= 0 && iw < g.in_w) s += xp[ih * g.in_w + iw];
        }
    }
    return s * (T(1) / static_cast<T>(g.k * g.k));
}

/// The output windows (oh, ow) that contain input row ih (or column, with the same geometry):
/// [first, last], empty when first > last.
DAM_HOST_DEVICE inline void pool_windows_of(std::int64_t i, std::int64_t out, const PoolGeometry& g, std::int64_t& first,
                                            std::int64_t& last) {
    // Window o covers inputs o*stride - pad .. o*stride - pad + k - 1.
    const std::int64_t hi = i + g.pad, lo = hi - g.k + 1;
    first = lo <= 0 ? 0 : (lo + g.stride - 1) / g.stride;
    last = hi / g.stride;
    if (last > out - 1) last = out - 1;
}

}  // namespace diffautoml::body
