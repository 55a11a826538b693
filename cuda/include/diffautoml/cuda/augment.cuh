#pragma once
// The augmentation ops on the GPU, for a batch in which every image has its own op, sign and
// magnitude. Identity, FlipLR and the geometric ops (ShearX/Y, TranslateX/Y, Rotate: affine warps
// about the image centre with bilinear sampling and a fill value) are per-pixel kernels: forward
// one thread per output pixel; backward one block per image, dL/dx by an atomic bilinear scatter,
// dL/dm by a deterministic block sum, the arithmetic da::kernels::warp_pixel / bilinear_scatter.
// The colour ops (AutoContrast, Invert, Equalize, Solarize, Posterize, Contrast, Color,
// Brightness, Sharpness, Cutout) need per-image statistics (extremes, histogram, mean, the
// smoothed image), so each image is one thread running da::kernels::forward / backward: the very
// code the CPU runs. Both kernels are launched; each skips the images of the other.
#include <span>
#include <vector>

#include <diffautoml/ops/body/augment.hpp>

#include "reduce.cuh"

namespace diffautoml::backend_cuda {

/// Whether the per-pixel kernels handle op (else the per-image colour kernels do).
DAM_HOST_DEVICE inline bool per_pixel_op(da::Op op) {
    return op == da::Op::identity || op == da::Op::flip_lr || da::kernels::is_geometric(op);
}

struct AtomicAdd {
    template <class T>
    __device__ void operator()(T* p, T v) const { atomicAdd(p, v); }
};

template <class T>
__global__ void warp_forward_kernel(const T* x, T* y, const da::OpDraw* draws, const double* m, std::int64_t N, std::int64_t C,
                                    std::int64_t H, std::int64_t W, da::MagnitudeRanges r, double fill) {
    const std::int64_t P = H * W;
    for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < N * P; t += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t n = t / P, i = (t % P) / W, j = t % W;
        const da::OpDraw d = draws[n];
        if (!per_pixel_op(d.op)) continue;
        const T* xn = x + n * C * P;
        T* yn = y + n * C * P;
        if (d.op == da::Op::identity) {
            for (std::int64_t c = 0; c < C; ++c) yn[c * P + i * W + j] = xn[c * P + i * W + j];
        } else if (d.op == da::Op::flip_lr) {
            for (std::int64_t c = 0; c < C; ++c) yn[c * P + i * W + j] = xn[c * P + i * W + (W - 1 - j)];
        } else {
            const da::kernels::Affine A = da::kernels::affine_of(d.op, m[n], d.sign, H, W, r);
            for (std::int64_t c = 0; c < C; ++c)
                yn[c * P + i * W + j] = static_cast<T>(da::kernels::warp_pixel(xn + c * P, H, W, A, i, j, fill, nullptr));
        }
    }
}

template <class T>
__global__ void warp_backward_kernel(const T* x, const T* gy, T* gx, double* gm, const da::OpDraw* draws, const double* m,
                                     std::int64_t C, std::int64_t H, std::int64_t W, da::MagnitudeRanges r, double fill) {
    __shared__ double sh[32];
    const std::int64_t n = blockIdx.x, P = H * W;
    const da::OpDraw d = draws[n];
    if (!per_pixel_op(d.op)) return;  // the whole block: d is per image
    const T* xn = x + n * C * P;
    const T* gn = gy + n * C * P;
    T* gxn = gx ? gx + n * C * P : nullptr;
    double acc[1] = {0.0};
    const bool geometric = da::kernels::is_geometric(d.op);
    const da::kernels::Affine A = geometric ? da::kernels::affine_of(d.op, m[n], d.sign, H, W, r) : da::kernels::Affine{};
    for (std::int64_t p = threadIdx.x; p < P; p += blockDim.x) {
        const std::int64_t i = p / W, j = p % W;
        for (std::int64_t c = 0; c < C; ++c) {
            const T g = gn[c * P + p];
            if (d.op == da::Op::identity) {
                if (gxn) gxn[c * P + p] += g;
            } else if (d.op == da::Op::flip_lr) {
                if (gxn) gxn[c * P + i * W + (W - 1 - j)] += g;
            } else {
                double dm = 0;
                da::kernels::warp_pixel(xn + c * P, H, W, A, i, j, fill, &dm);
                acc[0] += static_cast<double>(g) * dm;
                if (gxn) {
                    const da::kernels::Source src = da::kernels::source_of(A, i, j, H, W);
                    da::kernels::bilinear_scatter(gxn + c * P, H, W, src.xs, src.ys, static_cast<double>(g), AtomicAdd{});
                }
            }
        }
    }
    block_sum<1>(acc, 1, sh);
    if (threadIdx.x == 0 && gm) gm[n] = acc[0];
}

/// The colour ops, one thread per image: da::kernels::forward on the image (work: 2 H W doubles each).
template <class T>
__global__ void colour_forward_kernel(const T* x, T* y, const da::OpDraw* draws, const double* m, std::int64_t N,
                                      std::int64_t C, std::int64_t H, std::int64_t W, da::AugmentOptions o, double* work) {
    const std::int64_t P = H * W;
    for (std::int64_t n = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; n < N; n += std::int64_t(gridDim.x) * blockDim.x) {
        const da::OpDraw d = draws[n];
        if (per_pixel_op(d.op)) continue;
        da::kernels::forward(d, m[n], x + n * C * P, y + n * C * P, C, H, W, o, work + n * 2 * P);
    }
}

/// The colour ops' backward, one thread per image: adds dL/dx to gx and writes dL/dm to gm[n].
template <class T>
__global__ void colour_backward_kernel(const T* x, const T* gy, T* gx, double* gm, const da::OpDraw* draws, const double* m,
                                       std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W, da::AugmentOptions o,
                                       double* work) {
    const std::int64_t P = H * W;
    for (std::int64_t n = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; n < N; n += std::int64_t(gridDim.x) * blockDim.x) {
        const da::OpDraw d = draws[n];
        if (per_pixel_op(d.op)) continue;
        gm[n] = da::kernels::backward(d, m[n], x + n * C * P, gy + n * C * P, gx ? gx + n * C * P : static_cast<T*>(nullptr),
                                      C, H, W, o, da::MagnitudeGradient::exact, work + n * 2 * P);
    }
}

namespace augment_detail {
inline void check(std::span<const da::OpDraw> draws, std::span<const double> m, std::int64_t count) {
    DAM_CHECK(static_cast<std::int64_t>(draws.size()) == count && static_cast<std::int64_t>(m.size()) == count, shape_error,
              "augment (cuda): {} image ops need {} draws and magnitudes, got {} and {}", count, count, draws.size(),
              m.size());
    for (std::size_t k = 0; k < draws.size(); ++k) {
        DAM_CHECK(static_cast<int>(draws[k].op) >= 0 && static_cast<int>(draws[k].op) < da::kOpCount, value_error,
                  "augment (cuda): draw {} is op {}, which is not an op", k, static_cast<int>(draws[k].op));
        DAM_CHECK(m[k] >= 0 && m[k] <= 1, value_error, "augment (cuda): magnitude {} of draw {} is outside [0, 1]", m[k], k);
    }
}
inline bool any_colour(std::span<const da::OpDraw> draws) {
    for (const auto& d : draws)
        if (!per_pixel_op(d.op)) return true;
    return false;
}
/// One op per image: y_n = op_n(x_n; m_n).
template <class T>
void forward_one(const T* x, T* y, const DeviceArray<da::OpDraw>& dd, const DeviceArray<double>& dm, bool colour,
                 DeviceArray<double>& work, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                 const da::AugmentOptions& o) {
    warp_forward_kernel<<<grid_for(N * H * W), 256, 0, current_stream()>>>(x, y, dd.data(), dm.data(), N, C, H, W, o.ranges,
                                                                            o.fill);
    DAM_CUDA_CHECK_LAUNCH();
    if (!colour) return;
    colour_forward_kernel<<<grid_for(N, 64), 64, 0, current_stream()>>>(x, y, dd.data(), dm.data(), N, C, H, W, o, work.data());
    DAM_CUDA_CHECK_LAUNCH();
}
}  // namespace augment_detail

/// y_n = op_{n,S-1}( ... op_{n,0}(x_n) ...) for each image n of x (N, C, H, W): draws[n S + s]
/// with magnitude m[n S + s] is the s-th op of image n, any of the 17 ops. x and y are device
/// pointers that must not overlap; draws and magnitudes are host values. The S ops run one
/// launch pair each, ping-ponging between y and a scratch batch so that the last one writes y.
template <class T>
void augment_forward(cuda, const T* x, T* y, std::span<const da::OpDraw> draws, std::span<const double> m, std::int64_t N,
                     std::int64_t S, std::int64_t C, std::int64_t H, std::int64_t W, const da::AugmentOptions& o) {
    DAM_CHECK(S >= 1, value_error, "augment (cuda): ops per image must be >= 1, got {}", S);
    augment_detail::check(draws, m, N * S);
    if (N == 0) return;
    std::vector<da::OpDraw> ds(static_cast<std::size_t>(N));
    std::vector<double> ms(static_cast<std::size_t>(N));
    DeviceArray<T> tmp(S > 1 ? N * C * H * W : 0);
    DeviceArray<double> work(augment_detail::any_colour(draws) ? N * 2 * H * W : 0);
    const T* src = x;
    for (std::int64_t s = 0; s < S; ++s) {
        for (std::int64_t i = 0; i < N; ++i) {
            ds[static_cast<std::size_t>(i)] = draws[static_cast<std::size_t>(S * i + s)];
            ms[static_cast<std::size_t>(i)] = m[static_cast<std::size_t>(S * i + s)];
        }
        // Op s writes y when S - 1 - s is even, so that op S - 1 does.
        T* dst = (S - 1 - s) % 2 == 0 ? y : tmp.data();
        const DeviceArray<da::OpDraw> dd(ds);
        const DeviceArray<double> dm(ms);
        augment_detail::forward_one(src, dst, dd, dm, augment_detail::any_colour(ds), work, N, C, H, W, o);
        src = dst;
    }
}

/// Adds dL/dx to gx (device, may be null) and returns dL/dm per image, given gy = dL/dy, for one
/// op per image: exact where the op is differentiable in m, straight-through (sum of dL/dy) for
/// Solarize, Posterize and Cutout, 0 for ops without a magnitude, as da::kernels::backward with
/// MagnitudeGradient::exact. The straight-through estimator for every op (DADA's) is CPU-only
/// so far: asking for it here is a value_error.
template <class T>
std::vector<double> augment_backward(cuda, const T* x, const T* gy, T* gx, std::span<const da::OpDraw> draws,
                                     std::span<const double> m, std::int64_t N, std::int64_t C, std::int64_t H,
                                     std::int64_t W, const da::AugmentOptions& o, da::MagnitudeGradient mode) {
    DAM_CHECK(mode == da::MagnitudeGradient::exact, value_error,
              "augment (cuda): the straight-through magnitude gradient for every op runs on the CPU only; use "
              "MagnitudeGradient::exact on cuda, or --device cpu");
    augment_detail::check(draws, m, N);
    if (N == 0) return {};
    const std::vector<da::OpDraw> dv(draws.begin(), draws.end());
    const std::vector<double> mv(m.begin(), m.end());
    DeviceArray<da::OpDraw> dd(dv);
    DeviceArray<double> dmag(mv), gm(N);
    if (augment_detail::any_colour(draws)) {
        DeviceArray<double> work(N * 2 * H * W);
        colour_backward_kernel<<<grid_for(N, 64), 64, 0, current_stream()>>>(x, gy, gx, gm.data(), dd.data(), dmag.data(), N,
                                                                              C, H, W, o, work.data());
        DAM_CUDA_CHECK_LAUNCH();
    }
    warp_backward_kernel<<<static_cast<unsigned>(N), kReduceThreads, 0, current_stream()>>>(x, gy, gx, gm.data(), dd.data(), dmag.data(),
                                                                                           C, H, W, o.ranges, o.fill);
    DAM_CUDA_CHECK_LAUNCH();
    return gm.to_host();
}

}  // namespace diffautoml::backend_cuda
