#pragma once
// Dense (ungrouped) convolutions that Winograd does not take, above all the strided 3x3 layers,
// as implicit GEMMs: each image is copied once into a padded, channel-interleaved plane (pixel
// major, the Cp channels of a pixel side by side), and
//     y[p][k] = sum over taps t and channels c of  plane[base(p) + off(t) + c] * Wt[t][c][k],
// where base(p) is the plane position of output pixel p's top-left tap and off(t) the distance
// of tap t from it. A register block of 6 output pixels by 2 vectors of output channels
// accumulates over every tap and channel before it is stored once; nothing like im2col's K x OHW
// column matrix is written or read. The result (pixels x Kp) is de-interleaved into NCHW.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../../core/parallel.hpp"
#include "../conv_params.hpp"
#include "scratch.hpp"
#include "simd.hpp"
#include "winograd.hpp"

namespace diffautoml::backend_cpu::implicit_gemm {

/// Whether the CPU backend runs eligible convolutions this way (`automatic`) or through im2col
/// (`never`, for comparisons).
enum class Mode { automatic, never };
inline Mode& mode() {
    static Mode m = Mode::automatic;
    return m;
}

/// Ungrouped convolutions with a kernel larger than 1x1 and at least 8 channels each side (fewer
/// would leave most lanes of a vector of channels empty), which Winograd does not take.
inline bool applies(const ConvGeometry& g) {
    return mode() == Mode::automatic && g.groups == 1 && g.kh * g.kw > 1 && g.in_c >= 8 && g.out_c >= 8 &&
           !winograd::applies(g);
}

namespace detail {

using simd::lanes;
using simd::load;
using simd::padded;
using simd::store;
using simd::unroll;

/// The padded plane an image is copied into: every position a tap reads, and every input pixel.
struct Plane {
    std::int64_t ph, pw;
    explicit Plane(const ConvGeometry& g)
        : ph(std::max((g.out_h - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1, g.in_h + g.pad_h)),
          pw(std::max((g.out_w - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1, g.in_w + g.pad_w)) {}
};

/// One register block: C[r][0 .. NV L) = sum over taps t < nt and channels c < Cp of
/// rows[r][off[t] + c] * B[t][c][0 .. NV L), B's rows Kp apart.
template <int R, int NV, class V, class T>
[[gnu::always_inline]] inline void block(const T* const* rows, const std::int64_t* off, std::int64_t nt,
                                         std::int64_t Cp, const T* B, std::int64_t Kp, T* C, std::int64_t ldc) {
    constexpr std::int64_t L = sizeof(V) / sizeof(T);
    V acc[R][NV];
    unroll<R>([&](auto r) DAM_SIMD_INLINE { unroll<NV>([&](auto v) DAM_SIMD_INLINE { acc[r][v] = V{}; }); });
    for (std::int64_t t = 0; t < nt; ++t) {
        const T* b = B + t * Cp * Kp;
        const T* a[R];
        unroll<R>([&](auto r) DAM_SIMD_INLINE { a[r] = rows[r] + off[t]; });
        for (std::int64_t c = 0; c < Cp; ++c) {
            V bv[NV];
            unroll<NV>([&](auto v) DAM_SIMD_INLINE { load(b + c * Kp + v * L, bv[v]); });
            unroll<R>([&](auto r) DAM_SIMD_INLINE {
                const T ar = a[r][c];
                unroll<NV>([&](auto v) DAM_SIMD_INLINE { acc[r][v] += ar * bv[v]; });
            });
        }
    }
    unroll<R>([&](auto r) DAM_SIMD_INLINE {
        unroll<NV>([&](auto v) DAM_SIMD_INLINE { store(C + r * ldc + v * L, acc[r][v]); });
    });
}

struct Scratch;
// slot_taps: the forward's weights laid out by tap, or the weight gradient's per-thread sums
// (one call never needs both).
enum Slot { slot_taps, slot_plane, slot_out, slot_offsets, slots };
template <class T>
T* buffer(std::size_t n, Slot slot) {
    return thread_scratch<Scratch, slots, T>(n, slot);
}

/// Zeroes the positions of the plane (pixels `stride` values apart) that lie outside the image.
template <class T>
void zero_border(T* plane, const Plane& pl, const ConvGeometry& g, std::int64_t stride) {
    const auto zero_run = [&](std::int64_t y, std::int64_t x0, std::int64_t x1) {
        if (x1 > x0) std::fill(plane + (y * pl.pw + x0) * stride, plane + (y * pl.pw + x1) * stride, T(0));
    };
    for (std::int64_t y = 0; y < pl.ph; ++y) {
        if (y < g.pad_h || y >= g.pad_h + g.in_h) {
            zero_run(y, 0, pl.pw);
        } else {
            zero_run(y, 0, g.pad_w);
            zero_run(y, g.pad_w + g.in_w, pl.pw);
        }
    }
}

/// One register block of the weight gradient: C[r][0 .. NV L) += sum over pixels p < np of
/// a[base[p] + r] * d[p * Kp + (0 .. NV L)], with a = plane + off(t) + c0 and d the interleaved
/// output gradients + k0.
template <int R, int NV, class V, class T>
[[gnu::always_inline]] inline void weight_block(const std::int64_t* base, std::int64_t np, const T* a, const T* d,
                                                std::int64_t Kp, T* C) {
    constexpr std::int64_t L = sizeof(V) / sizeof(T);
    V acc[R][NV];
    unroll<R>([&](auto r) DAM_SIMD_INLINE { unroll<NV>([&](auto v) DAM_SIMD_INLINE { acc[r][v] = V{}; }); });
    for (std::int64_t p = 0; p < np; ++p) {
        V dv[NV];
        unroll<NV>([&](auto v) DAM_SIMD_INLINE { load(d + p * Kp + v * L, dv[v]); });
        const T* ap = a + base[p];
        unroll<R>([&](auto r) DAM_SIMD_INLINE {
            const T ar = ap[r];
            unroll<NV>([&](auto v) DAM_SIMD_INLINE { acc[r][v] += ar * dv[v]; });
        });
    }
    unroll<R>([&](auto r) DAM_SIMD_INLINE {
        unroll<NV>([&](auto v) DAM_SIMD_INLINE {
            V old;
            load(C + r * Kp + v * L, old);
            store(C + r * Kp + v * L, old + acc[r][v]);
        });
    });
}

/// Tap offsets within the plane (pixels `stride` values apart), tap t = i kw + j.
inline void tap_offsets(const ConvGeometry& g, std::int64_t pw, std::int64_t stride, std::int64_t* off) {
    for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j) off[i * g.kw + j] = (i * g.dil_h * pw + j * g.dil_w) * stride;
}

/// The plane position (in values) of each output pixel's top-left tap.
inline void pixel_bases(const ConvGeometry& g, std::int64_t pw, std::int64_t stride, std::int64_t* base) {
    for (std::int64_t oy = 0; oy < g.out_h; ++oy)
        for (std::int64_t ox = 0; ox < g.out_w; ++ox)
            base[oy * g.out_w + ox] = (oy * g.stride_h * pw + ox * g.stride_w) * stride;
}

/// Copies image n of x (N, C, H, W) into its padded interleaved plane (border zeroed).
template <class T>
void fill_plane(const T* x, std::int64_t n, const ConvGeometry& g, const Plane& pl, std::int64_t Cp, T* plane) {
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t C = g.in_c, hw = g.in_h * g.in_w;
    zero_border(plane, pl, g, Cp);
    for (std::int64_t c0 = 0; c0 < Cp; c0 += L)
        simd::interleave(x + (n * C + c0) * hw, std::min(L, C - c0), g.in_h, g.in_w, plane + c0, pl.pw,
                                     g.pad_h, g.pad_w, Cp);
}

}  // namespace detail

/// dw (overwritten) for a geometry that `applies`: per-thread sums over a fixed split of the
/// batch, reduced in a fixed order (results do not depend on scheduling).
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
    using namespace detail;
    constexpr std::int64_t L = lanes<T>;
    constexpr int R = 6;
    const std::int64_t C = g.in_c, K = g.out_c, Cp = padded<T>(C), Kp = padded<T>(K), nt = g.kh * g.kw;
    const std::int64_t ohw = g.out_h * g.out_w, wsize = nt * Cp * Kp;
    const Plane pl(g);
    std::int64_t* meta = buffer<std::int64_t>(static_cast<std::size_t>(nt + ohw), slot_offsets);
    tap_offsets(g, pl.pw, Cp, meta);
    pixel_bases(g, pl.pw, Cp, meta + nt);
    const std::int64_t* off = meta;
    const std::int64_t* base = meta + nt;
    const int threads = fixed_share_threads(g.batch);
    T* sums = buffer<T>(static_cast<std::size_t>(threads * wsize), slot_taps);
    std::fill(sums, sums + threads * wsize, T(0));
    auto work = [&](int th) {
        T* acc = sums + th * wsize;  // acc[t][c][k]
        T* plane = buffer<T>(static_cast<std::size_t>(pl.ph * pl.pw * Cp), slot_plane);
        T* d = buffer<T>(static_cast<std::size_t>(ohw * Kp), slot_out);
        const std::int64_t n0 = g.batch * th / threads, n1 = g.batch * (th + 1) / threads;
        for (std::int64_t n = n0; n < n1; ++n) {
            fill_plane(x, n, g, pl, Cp, plane);
            for (std::int64_t k0 = 0; k0 < Kp; k0 += L)
                simd::interleave(dy + (n * K + k0) * ohw, std::min(L, K - k0), g.out_h, g.out_w, d + k0,
                                             g.out_w, 0, 0, Kp);
            simd::with_widest<T>([&](auto* widest) DAM_SIMD_INLINE {
                using W = std::remove_pointer_t<decltype(widest)>;
                simd::sweep_columns<T, W>(Kp, [&](auto nv, auto* vec, std::int64_t k0) DAM_SIMD_INLINE {
                    constexpr int NV = decltype(nv)::value;
                    using V = std::remove_pointer_t<decltype(vec)>;
                    for (std::int64_t t = 0; t < nt; ++t) {
                        std::int64_t c0 = 0;
                        T* at = acc + t * Cp * Kp + k0;
                        const T* a = plane + off[t];
                        for (; c0 + R <= Cp; c0 += R) weight_block<R, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp);
                        switch (Cp - c0) {
                            case 5: weight_block<5, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp); break;
                            case 4: weight_block<4, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp); break;
                            case 3: weight_block<3, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp); break;
                            case 2: weight_block<2, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp); break;
                            case 1: weight_block<1, NV, V>(base, ohw, a + c0, d + k0, Kp, at + c0 * Kp); break;
                            default: break;
                        }
                    }
                });
            });
        }
    };
    sum_fixed_shares(threads, wsize, [&](int th) { return sums + th * wsize; }, work);
    for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t t = 0; t < nt; ++t) dw[(k * C + c) * nt + t] = sums[(t * Cp + c) * Kp + k];
}

/// y (overwritten) = conv(x, w) + bias (may be null) for a geometry that `applies`.
template <class T>
void forward(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace detail;
    constexpr std::int64_t L = lanes<T>;
    constexpr int R = 6;
    const std::int64_t C = g.in_c, K = g.out_c, Cp = padded<T>(C), Kp = padded<T>(K), nt = g.kh * g.kw;
    const std::int64_t ohw = g.out_h * g.out_w;
    const Plane pl(g);
    // Wt[t][c][k] = w[k][c][t], zero where c >= C or k >= K.
    T* Wt = buffer<T>(static_cast<std::size_t>(nt * Cp * Kp), slot_taps);
    std::fill(Wt, Wt + nt * Cp * Kp, T(0));
    for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t t = 0; t < nt; ++t) Wt[(t * Cp + c) * Kp + k] = w[(k * C + c) * nt + t];
    std::int64_t* offs = buffer<std::int64_t>(static_cast<std::size_t>(nt), slot_offsets);
    tap_offsets(g, pl.pw, Cp, offs);
    parallel_for(g.batch, [&](std::int64_t n) {
        T* plane = buffer<T>(static_cast<std::size_t>(pl.ph * pl.pw * Cp), slot_plane);
        T* out = buffer<T>(static_cast<std::size_t>(ohw * Kp), slot_out);
        fill_plane(x, n, g, pl, Cp, plane);
        simd::with_widest<T>([&](auto* widest) DAM_SIMD_INLINE {
            using W = std::remove_pointer_t<decltype(widest)>;
            simd::sweep_columns<T, W>(Kp, [&](auto nv, auto* vec, std::int64_t k0) DAM_SIMD_INLINE {
                constexpr int NV = decltype(nv)::value;
                using V = std::remove_pointer_t<decltype(vec)>;
                const T* rows[R];
                for (std::int64_t p0 = 0; p0 < ohw; p0 += R) {
                    const std::int64_t nr = std::min<std::int64_t>(R, ohw - p0);
                    for (std::int64_t r = 0; r < R; ++r) {
                        const std::int64_t p = p0 + std::min(r, nr - 1), oy = p / g.out_w, ox = p % g.out_w;
                        rows[r] = plane + (oy * g.stride_h * pl.pw + ox * g.stride_w) * Cp;
                    }
                    T* dst = out + p0 * Kp + k0;
                    switch (nr) {
                        case 6: block<6, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                        case 5: block<5, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                        case 4: block<4, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                        case 3: block<3, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                        case 2: block<2, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                        default: block<1, NV, V>(rows, offs, nt, Cp, Wt + k0, Kp, dst, Kp); break;
                    }
                }
            });
        });
        T* yn = y + n * K * ohw;
        for (std::int64_t kg = 0; kg < Kp; kg += L)
            simd::deinterleave(out + kg, std::min(L, K - kg), ohw, yn + kg * ohw, Kp);
        if (bias)
            for (std::int64_t k = 0; k < K; ++k) {
                T* yk = yn + k * ohw;
                for (std::int64_t i = 0; i < ohw; ++i) yk[i] += bias[k];
            }
    });
}

}  // namespace diffautoml::backend_cpu::implicit_gemm
