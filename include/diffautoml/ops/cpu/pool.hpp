#pragma once
// CPU max/avg pooling (NCHW), one (n, c) plane per task.
#include <cstdint>
#include <limits>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../body/pool.hpp"

namespace diffautoml::backend_cpu {

using diffautoml::PoolGeometry;

/// y = max over each window (padding never wins); argmax holds the flat index in the input plane.
template <class T>
void max_pool2d_forward(cpu, const T* x, T* y, std::int32_t* argmax, const PoolGeometry& g) {
    parallel_for(g.planes, [&](std::int64_t p) {
        const T* xp = x + p * g.in_h * g.in_w;
        T* yp = y + p * g.out_h * g.out_w;
        std::int32_t* ap = argmax + p * g.out_h * g.out_w;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
            for (std::int64_t ow = 0; ow < g.out_w; ++ow)
                yp[oh * g.out_w + ow] = body::max_pool_at(xp, g, oh, ow, ap + oh * g.out_w + ow);
    });
}
template <class T>
void max_pool2d_backward(cpu, const T* dy, const std::int32_t* argmax, T* dx, const PoolGeometry& g) {
    parallel_for(g.planes, [&](std::int64_t p) {
        T* dxp = dx + p * g.in_h * g.in_w;
        std::fill(dxp, dxp + g.in_h * g.in_w, T(0));
        const T* dyp = dy + p * g.out_h * g.out_w;
        const std::int32_t* ap = argmax + p * g.out_h * g.out_w;
        for (std::int64_t i = 0; i < g.out_h * g.out_w; ++i)
            if (ap[i] >= 0) dxp[ap[i]] += dyp[i];
    });
}

/// Average over each window, dividing by k*k (padding counts as zeros, as in PyTorch's default).
template <class T>
void avg_pool2d_forward(cpu, const T* x, T* y, const PoolGeometry& g) {
    parallel_for(g.planes, [&](std::int64_t p) {
        const T* xp = x + p * g.in_h * g.in_w;
        T* yp = y + p * g.out_h * g.out_w;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
            for (std::int64_t ow = 0; ow < g.out_w; ++ow) yp[oh * g.out_w + ow] = body::avg_pool_at(xp, g, oh, ow);
    });
}
template <class T>
void avg_pool2d_backward(cpu, const T* dy, T* dx, const PoolGeometry& g) {
    const T inv = T(1) / static_cast<T>(g.k * g.k);
    parallel_for(g.planes, [&](std::int64_t p) {
        T* dxp = dx + p * g.in_h * g.in_w;
        std::fill(dxp, dxp + g.in_h * g.in_w, T(0));
        const T* dyp = dy + p * g.out_h * g.out_w;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
            for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
                const T d = dyp[oh * g.out_w + ow] * inv;
                for (std::int64_t kh = 0; kh < g.k; ++kh) {
                    const std::int64_t ih = oh * g.stride - g.pad + kh;
                    if (ih < 0 || ih >= g.in_h) continue;
                    for (std::int64_t kw = 0; kw < g.k; ++kw) {
                        const std::int64_t iw = ow * g.stride - g.pad + kw;
                        if (iw >= 0 && iw < g.in_w) dxp[ih * g.in_w + iw] += d;
                    }
                }
            }
    });
}

}  // namespace diffautoml::backend_cpu
