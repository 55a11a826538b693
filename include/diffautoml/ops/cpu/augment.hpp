#pragma once
// CPU kernels of the augmentation ops on a batch (N, C, H, W) of pixels in [0, 1]: images in
// parallel, each running the per-image bodies of ops/body/augment.hpp (the code the CUDA colour
// kernels run too) with a worker's scratch. The CUDA backend (cuda/augment.cuh) has the same two
// entries; da/augment.hpp is the front door that checks the draws and calls them.
#include <cstdint>
#include <span>
#include <vector>

#include "../../core/parallel.hpp"
#include "../body/augment.hpp"

namespace diffautoml::backend_cpu {

/// y_n = op_{n,S-1}( ... op_{n,0}(x_n) ...) for each image n: draws[n S + s] with magnitude
/// m[n S + s] is the s-th op of image n. x and y must not overlap.
template <class T>
void augment_forward(cpu, const T* x, T* y, std::span<const da::OpDraw> draws, std::span<const double> m, std::int64_t N,
                     std::int64_t S, std::int64_t C, std::int64_t H, std::int64_t W, const da::AugmentOptions& o) {
    const std::int64_t n = C * H * W;
    parallel_for(N, [&](std::int64_t i) {
        thread_local da::kernels::Scratch scratch;
        thread_local std::vector<T> buf;
        if (static_cast<std::int64_t>(buf.size()) < 2 * n) buf.resize(static_cast<std::size_t>(2 * n));
        const T* src = x + i * n;
        T* out = y + i * n;
        for (std::int64_t s = 0; s < S; ++s) {
            // The last op writes into the output; earlier ones alternate between two buffers.
            T* dst = s == S - 1 ? out : buf.data() + (s % 2) * n;
            const auto k = static_cast<std::size_t>(i * S + s);
            da::kernels::forward(draws[k], m[k], src, dst, C, H, W, o, scratch);
            src = dst;
        }
    });
}

/// Backward of one op per image (S = 1): adds dL/dx to gx (when not null) and returns dL/dm_n per
/// image, given gy = dL/dy, with the magnitude gradient `mode`.
template <class T>
std::vector<double> augment_backward(cpu, const T* x, const T* gy, T* gx, std::span<const da::OpDraw> draws,
                                     std::span<const double> m, std::int64_t N, std::int64_t C, std::int64_t H,
                                     std::int64_t W, const da::AugmentOptions& o, da::MagnitudeGradient mode) {
    const std::int64_t n = C * H * W;
    std::vector<double> gm(static_cast<std::size_t>(N));
    parallel_for(N, [&](std::int64_t i) {
        thread_local da::kernels::Scratch scratch;
        const auto k = static_cast<std::size_t>(i);
        gm[k] = da::kernels::backward(draws[k], m[k], x + i * n, gy + i * n, gx ? gx + i * n : nullptr, C, H, W, o, mode,
                                      scratch);
    });
    return gm;
}

}  // namespace diffautoml::backend_cpu
