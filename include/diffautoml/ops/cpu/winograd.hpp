#pragma once
// Winograd F(m x m, 3x3) for 3x3, stride-1, undilated, ungrouped convolutions (Lavin & Gray, 2016),
// with output tiles of m = 2 (F2) or m = 4 (F4).
//
// Each m x m output tile is  Y = A^T [ (G g G^T) (.) (B^T d B) ] A  for the a x a input patch d
// (a = m + 2) and the 3x3 filter g, so a layer becomes a^2 independent GEMMs (one per point e of
// the a x a transform domain):
//     M_e (K x P) = U_e (K x C) * V_e (C x P),   U = G g G^T,  V = B^T d B,  P = number of tiles.
// Per output pixel that is a^2 / m^2 multiplications per (k, c) pair against 9 for im2col: 4 for F2
// (2.25x fewer), 2.25 for F4 (4x fewer), and F4 writes 2.25 transformed values per output pixel and
// channel where F2 writes 4. F4's transforms have larger coefficients (up to 8 and 1/24), so its
// float results carry a few times F2's rounding error (still ~1e-6 relative on the reference layers).
// The backward passes reuse the same transforms:
//   - data:   dx is the convolution of dy with the flipped, transposed filter and padding 2 - pad,
//             which is again a 3x3 stride-1 convolution (run by `forward_transformed`);
//   - weight: dU_e (K x C) = dM_e (K x P) * V_e^T (P x C) with dM = A dY A^T per tile, and
//             dg = G^T dU G.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include <omp.h>

#include "../../core/parallel.hpp"
#include "../conv_params.hpp"
#include "scratch.hpp"
#include "simd.hpp"

namespace diffautoml::backend_cpu::winograd {

/// Which convolution algorithm 3x3 stride-1 convolutions use on the CPU: `automatic` picks
/// Winograd where it is expected to be faster than im2col and the tile size by the output size
/// (`tile_for`); `f2` and `f4` force Winograd with that tile; `never` forces im2col.
enum class Mode { automatic, f2, f4, never };
inline Mode& mode() {
    static Mode m = Mode::automatic;
    return m;
}

/// Whether g can run as F(m x m, 3x3), and (in automatic mode) whether that is expected to be
/// faster than im2col: very narrow layers spend their time in the transforms, not in the GEMMs.
inline bool applies(const ConvGeometry& g) {
    const bool possible = g.groups == 1 && g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 &&
                          g.dil_h == 1 && g.dil_w == 1 && g.pad_h == g.pad_w && g.pad_h <= 2;
    if (!possible || mode() == Mode::never) return false;
    if (mode() != Mode::automatic) return true;
    // Measured (2 cores, batch 128): faster than im2col from 8 channels up, at 28x28, 14x14 and
    // 7x7 alike (1.3-1.8x); with fewer channels the transforms dominate.
    return g.in_c >= 8 && g.out_c >= 8;
}

/// The element type of V: V itself for a scalar, the lane type for a GCC vector.
template <class V>
struct element {
    using type = V;
};
template <class V>
    requires requires(V v) { v[0]; }
struct element<V> {
    using type = std::remove_cvref_t<decltype(std::declval<V>()[0])>;
};
template <class V>
using element_t = typename element<V>::type;

/// The 1-D transforms of F(2, 3): B^T (4x4), A^T (2x4), G (4x3) and the transposes the backward
/// pass applies. Each maps one column (or row) of a tile; the 2-D transforms apply it to the
/// columns, then to the rows. V is a scalar or a vector of lanes (one tile a lane); the constants
/// are integers, exact in any floating type.
struct F2 {
    static constexpr int m = 2, a = 4;
    template <class V>
    static void input(const V* d, V* t) {  // B^T d
        t[0] = d[0] - d[2];
        t[1] = d[1] + d[2];
        t[2] = d[2] - d[1];
        t[3] = d[1] - d[3];
    }
    template <class V>
    static void output(const V* s, V* o) {  // A^T s
        o[0] = s[0] + s[1] + s[2];
        o[1] = s[1] - s[2] - s[3];
    }
    template <class V>
    static void filter(const V* g, V* u) {  // G g
        u[0] = g[0];
        u[1] = (g[0] + g[1] + g[2]) / 2;
        u[2] = (g[0] - g[1] + g[2]) / 2;
        u[3] = g[2];
    }
    template <class V>
    static void output_grad(const V* y, V* r) {  // A y
        r[0] = y[0];
        r[1] = y[0] + y[1];
        r[2] = y[0] - y[1];
        r[3] = -y[1];
    }
    template <class V>
    static void filter_grad(const V* u, V* g) {  // G^T u
        g[0] = u[0] + (u[1] + u[2]) / 2;
        g[1] = (u[1] - u[2]) / 2;
        g[2] = (u[1] + u[2]) / 2 + u[3];
    }
};

/// The 1-D transforms of F(4, 3) on the points 0, 1, -1, 2, -2 and infinity.
struct F4 {
    static constexpr int m = 4, a = 6;
    template <class V>
    static void input(const V* d, V* t) {  // B^T d
        t[0] = 4 * d[0] - 5 * d[2] + d[4];
        t[1] = d[3] + d[4] - 4 * (d[1] + d[2]);
        t[2] = d[4] - d[3] + 4 * (d[1] - d[2]);
        t[3] = d[4] - d[2] + 2 * (d[3] - d[1]);
        t[4] = d[4] - d[2] + 2 * (d[1] - d[3]);
        t[5] = 4 * d[1] - 5 * d[3] + d[5];
    }
    template <class V>
    static void output(const V* s, V* o) {  // A^T s
        const V p12 = s[1] + s[2], m12 = s[1] - s[2], p34 = s[3] + s[4], m34 = s[3] - s[4];
        o[0] = s[0] + p12 + p34;
        o[1] = m12 + 2 * m34;
        o[2] = p12 + 4 * p34;
        o[3] = m12 + 8 * m34 + s[5];
    }
    // The filter transforms multiply by rounded reciprocals: a division costs several times a
    // multiplication and the compiler may not substitute one (x / 6 and x * (1 / 6) can differ
    // in the last bit, far below F4's own rounding error).
    template <class V>
    static void filter(const V* g, V* u) {  // G g
        using S = element_t<V>;
        constexpr S r4 = S(1) / 4, r6 = S(1) / 6, r12 = S(1) / 12, r24 = S(1) / 24;
        const V p02 = g[0] + g[2];
        u[0] = g[0] * r4;
        u[1] = -(p02 + g[1]) * r6;
        u[2] = (g[1] - p02) * r6;
        u[3] = g[0] * r24 + g[1] * r12 + g[2] * r6;
        u[4] = g[0] * r24 - g[1] * r12 + g[2] * r6;
        u[5] = g[2];
    }
    template <class V>
    static void output_grad(const V* y, V* r) {  // A y
        const V p02 = y[0] + y[2], p13 = y[1] + y[3], q02 = y[0] + 4 * y[2], q13 = 2 * y[1] + 8 * y[3];
        r[0] = y[0];
        r[1] = p02 + p13;
        r[2] = p02 - p13;
        r[3] = q02 + q13;
        r[4] = q02 - q13;
        r[5] = y[3];
    }
    template <class V>
    static void filter_grad(const V* u, V* g) {  // G^T u
        using S = element_t<V>;
        constexpr S r4 = S(1) / 4, r6 = S(1) / 6, r12 = S(1) / 12, r24 = S(1) / 24;
        const V p12 = u[1] + u[2], p34 = u[3] + u[4];
        g[0] = u[0] * r4 - p12 * r6 + p34 * r24;
        g[1] = (u[2] - u[1]) * r6 + (u[3] - u[4]) * r12;
        g[2] = (p34 - p12) * r6 + u[5];
    }
};

/// The tile automatic mode uses for an output of OH x OW: F4 where its edge tiles waste little
/// (measured on the reference layers: docs/results.md), F2 otherwise.
inline int tile_for(std::int64_t OH, std::int64_t OW) {
    switch (mode()) {
        case Mode::f2: return 2;
        case Mode::f4: return 4;
        default: break;
    }
    const auto waste = [](std::int64_t n, std::int64_t m) { return double((n + m - 1) / m * m) / double(n); };
    return waste(OH, 4) * waste(OW, 4) <= 1.35 ? 4 : 2;
}


namespace detail {

using simd::lanes;
using simd::load;
using simd::padded;
using simd::small_gemm;
using simd::store;
using simd::unroll;
using simd::Vec;
using simd::interleave;
using simd::deinterleave;

/// Geometry of one tiled convolution: input (C, H, W) per image, output (K, OH, OW), padding p,
/// tiles of m x m outputs. The input planes are kept padded to (m th + 2) x (m tw + 2) pixels.
struct Tiling {
    std::int64_t C, H, W, K, OH, OW, pad, m;
    std::int64_t th, tw, ph, pw;  // tiles per column and row; padded input rows and columns
    Tiling(std::int64_t C_, std::int64_t H_, std::int64_t W_, std::int64_t K_, std::int64_t pad_, std::int64_t m_)
        : C(C_), H(H_), W(W_), K(K_), OH(H_ + 2 * pad_ - 2), OW(W_ + 2 * pad_ - 2), pad(pad_), m(m_) {
        th = (OH + m - 1) / m;
        tw = (OW + m - 1) / m;
        ph = m * th + 2;
        pw = m * tw + 2;
    }
    std::int64_t tiles() const { return th * tw; }
    std::int64_t plane_pixels() const { return ph * pw; }
};

/// U[e][c][k] = (G g G^T)_e for the filter g = w[k][c] (flip_transpose: g = w[c][k] rotated 180
/// degrees, the filter of the data gradient; then w is (C, K, 3, 3)). U is (a^2, Cp, Kp) with
/// C and K padded to whole vectors; the padding is zero.
template <class F, class T>
void transform_filters(const T* w, std::int64_t K, std::int64_t C, bool flip_transpose, T* U) {
    constexpr int a = F::a;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t Cp = padded<T>(C), Kp = padded<T>(K), plane = Cp * Kp;
    parallel_for(Cp, [&](std::int64_t c) {
        for (std::int64_t k0 = 0; k0 < Kp; k0 += L) {
            T g[9][L] = {};  // g[3 i + j][l]: tap (i, j) of the filter of k0 + l
            if (c < C)
                for (std::int64_t l = 0; l < L && k0 + l < K; ++l)
                    for (int i = 0; i < 3; ++i)
                        for (int j = 0; j < 3; ++j)
                            g[3 * i + j][l] = flip_transpose ? w[(c * K + k0 + l) * 9 + (2 - i) * 3 + (2 - j)]
                                                             : w[((k0 + l) * C + c) * 9 + i * 3 + j];
            Vec<T> t[3][a];  // (G g)^T: row j holds column j of G g
            unroll<3>([&](auto j) {
                Vec<T> col[3];
                unroll<3>([&](auto i) { load(g[3 * i + j], col[i]); });
                F::filter(col, t[j]);
            });
            unroll<a>([&](auto i) {  // (G g) G^T, row i
                Vec<T> col[3] = {t[0][i], t[1][i], t[2][i]}, u[a];
                F::filter(col, u);
                unroll<a>([&](auto j) { store(U + (i * a + j) * plane + c * Kp + k0, u[j]); });
            });
        }
    }, 8);
}

/// V[e][p * Cp + c] = (B^T d B)_e for the tile p = im * tiles + ty * tw + tx of each of the nb
/// images x(nb, C, H, W); the a^2 planes are `ps` apart. `planes` is zeroed scratch for Cp / L
/// interleaved padded planes (positions outside the image are never written, so stay zero).
template <class F, class T>
void transform_input(const T* x, std::int64_t nb, const Tiling& t, T* planes, T* V, std::int64_t ps) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t Cp = padded<T>(t.C), groups = Cp / L, pp = t.plane_pixels() * L, hw = t.H * t.W;
    for (std::int64_t im = 0; im < nb; ++im) {
        for (std::int64_t gi = 0; gi < groups; ++gi)
            interleave(x + (im * t.C + gi * L) * hw, std::min(L, t.C - gi * L), t.H, t.W, planes + gi * pp, t.pw,
                       t.pad, t.pad);
        for (std::int64_t ty = 0; ty < t.th; ++ty)
            for (std::int64_t tx = 0; tx < t.tw; ++tx) {
                T* v = V + (im * t.tiles() + ty * t.tw + tx) * Cp;
                const T* base = planes + (m * ty * t.pw + m * tx) * L;
                for (std::int64_t gi = 0; gi < groups; ++gi) {
                    const T* r = base + gi * pp;
                    Vec<T> d[a][a];  // B^T d, transposed: d[j] is column j
                    unroll<a>([&](auto j) {
                        Vec<T> col[a];
                        unroll<a>([&](auto i) { load(r + (i * t.pw + j) * L, col[i]); });
                        F::input(col, d[j]);
                    });
                    unroll<a>([&](auto i) {  // (B^T d) B: row i
                        Vec<T> row[a], out[a];
                        unroll<a>([&](auto j) { row[j] = d[j][i]; });
                        F::input(row, out);
                        unroll<a>([&](auto j) { store(v + gi * L + (i * a + j) * ps, out[j]); });
                    });
                }
            }
    }
}

/// y(K, OH, OW) of one image from M[e][(p0 + tile) * Kp + k] (planes `ps` apart). `buf` is
/// scratch for the image's outputs interleaved by channel (Kp * OH * OW values).
template <class F, class T>
void transform_output(const T* M, const Tiling& t, std::int64_t ps, std::int64_t p0, T* y, T* buf) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t Kp = padded<T>(t.K), groups = Kp / L, ohw = t.OH * t.OW;
    for (std::int64_t ty = 0; ty < t.th; ++ty)
        for (std::int64_t tx = 0; tx < t.tw; ++tx) {
            const T* mt = M + (p0 + ty * t.tw + tx) * Kp;
            const std::int64_t oy = m * ty, ox = m * tx;
            const bool whole = oy + m <= t.OH && ox + m <= t.OW;
            for (std::int64_t gi = 0; gi < groups; ++gi) {
                Vec<T> s[a][m];  // (A^T M)^T: s[j] is column j of A^T M
                unroll<a>([&](auto j) {
                    Vec<T> col[a];
                    unroll<a>([&](auto i) { load(mt + gi * L + (i * a + j) * ps, col[i]); });
                    F::output(col, s[j]);
                });
                T* out_g = buf + gi * ohw * L;
                unroll<m>([&](auto i) {  // (A^T M) A: row i
                    Vec<T> row[a], out[m];
                    unroll<a>([&](auto j) { row[j] = s[j][i]; });
                    F::output(row, out);
                    unroll<m>([&](auto q) {
                        if (whole || (oy + i < t.OH && ox + q < t.OW))
                            store(out_g + ((oy + i) * t.OW + ox + q) * L, out[q]);
                    });
                });
            }
        }
    for (std::int64_t gi = 0; gi < groups; ++gi)
        deinterleave(buf + gi * ohw * L, std::min(L, t.K - gi * L), ohw, y + gi * L * ohw);
}

/// dM[e][p * Kp + k] = (A dY A^T)_e for the output gradients dy(nb, K, OH, OW) of nb images
/// (planes `ps` apart, tiles numbered as in transform_input). `planes` is zeroed scratch for
/// Kp / L interleaved planes of (m th) x (m tw) pixels (zero past the output's edge).
template <class F, class T>
void transform_output_grad(const T* dy, std::int64_t nb, const Tiling& t, T* dM, std::int64_t ps, T* planes) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t Kp = padded<T>(t.K), groups = Kp / L, ohw = t.OH * t.OW, qw = m * t.tw,
                       pq = m * t.th * qw * L;
    for (std::int64_t im = 0; im < nb; ++im) {
        for (std::int64_t gi = 0; gi < groups; ++gi)
            interleave(dy + (im * t.K + gi * L) * ohw, std::min(L, t.K - gi * L), t.OH, t.OW, planes + gi * pq, qw, 0,
                       0);
        for (std::int64_t ty = 0; ty < t.th; ++ty)
            for (std::int64_t tx = 0; tx < t.tw; ++tx) {
                T* dm = dM + (im * t.tiles() + ty * t.tw + tx) * Kp;
                const T* base = planes + (m * ty * qw + m * tx) * L;
                for (std::int64_t gi = 0; gi < groups; ++gi) {
                    const T* r = base + gi * pq;
                    Vec<T> g[m][a];  // (A dY)^T: g[q] is column q of A dY
                    unroll<m>([&](auto q) {
                        Vec<T> col[m];
                        unroll<m>([&](auto i) { load(r + (i * qw + q) * L, col[i]); });
                        F::output_grad(col, g[q]);
                    });
                    unroll<a>([&](auto i) {  // (A dY) A^T: row i
                        Vec<T> row[m], out[a];
                        unroll<m>([&](auto q) { row[q] = g[q][i]; });
                        F::output_grad(row, out);
                        unroll<a>([&](auto j) { store(dm + gi * L + (i * a + j) * ps, out[j]); });
                    });
                }
            }
    }
}

/// Images per block: about `target` tiles per GEMM, leaving every thread at least one block.
/// The number of blocks is rounded up to a multiple of the thread count so no thread idles.
inline std::int64_t images_per_block(std::int64_t batch, std::int64_t tiles, std::int64_t target) {
    const std::int64_t want = std::max<std::int64_t>(1, (target + tiles - 1) / tiles);
    const std::int64_t threads = std::max(1, omp_get_max_threads());
    std::int64_t blocks = (batch + want - 1) / want;
    blocks = std::min(batch, (blocks + threads - 1) / threads * threads);
    return (batch + blocks - 1) / blocks;
}

/// This file's per-thread buffers: V, M (or dM), the interleaved planes, the interleaved
/// outputs, the transformed filters and the filter-gradient partial sums. Capacity is kept
/// between calls, so no call pays for fresh pages.
struct Scratch;
enum Slot { slot_v, slot_m, slot_planes, slot_out, slot_filters, slot_filter_grads, slots };
template <class T>
T* buffer(std::size_t n, Slot slot) {
    return thread_scratch<Scratch, slots, T>(n, slot);
}

/// Distance between the a^2 transform-domain planes of a (P x cols) matrix: one cache line more
/// than the matrix, so that the streams written per tile never alias to the same cache sets
/// (P * cols * 4 bytes is often a multiple of 4 KiB).
inline std::int64_t plane_stride(std::int64_t cols, std::int64_t P) { return cols * P + 16; }

/// Tiles per GEMM: a block's transform-domain matrices (V and M, a^2 (Cp + Kp) values a tile) take
/// about `bytes`, so that the GEMMs read them from L2 where the transforms left them (768 KiB:
/// chosen on the reference layers against 256 KiB to 2 MiB, docs/results.md).
template <class F, class T>
std::int64_t target_tiles(std::int64_t Cp, std::int64_t Kp, std::int64_t bytes = 768 << 10) {
    return std::max<std::int64_t>(1, bytes / (F::a * F::a * (Cp + Kp) * static_cast<std::int64_t>(sizeof(T))));
}

/// The filters of every transform-domain point, U (a^2, Cp, Kp), in the calling thread's scratch.
template <class F, class T>
const T* filters(const T* w, std::int64_t K, std::int64_t C, bool flip_transpose) {
    T* U = buffer<T>(static_cast<std::size_t>(F::a * F::a * padded<T>(C) * padded<T>(K)), slot_filters);
    transform_filters<F>(w, K, C, flip_transpose, U);
    return U;
}

/// y(N, K, OH, OW) = 3x3 stride-1 convolution with padding `pad` of x(N, C, H, W) by U (from
/// transform_filters<F>). OH = H + 2 pad - 2.
template <class F, class T>
void forward_transformed(const T* x, const T* U, T* y, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                         std::int64_t K, std::int64_t pad) {
    constexpr int a2 = F::a * F::a;
    const Tiling t(C, H, W, K, pad, F::m);
    const std::int64_t tiles = t.tiles(), Cp = padded<T>(C), Kp = padded<T>(K);
    const std::int64_t ipb = images_per_block(N, tiles, target_tiles<F, T>(Cp, Kp));
    parallel_for((N + ipb - 1) / ipb, [&](std::int64_t blk) {
        const std::int64_t n0 = blk * ipb, nb = std::min(ipb, N - n0), P = nb * tiles;
        const std::int64_t vs = plane_stride(Cp, P), ms = plane_stride(Kp, P);
        T* V = buffer<T>(static_cast<std::size_t>(a2 * vs), slot_v);
        T* M = buffer<T>(static_cast<std::size_t>(a2 * ms), slot_m);
        const std::size_t planes_size = static_cast<std::size_t>(Cp * t.plane_pixels());
        T* planes = buffer<T>(planes_size, slot_planes);
        std::fill(planes, planes + planes_size, T(0));
        transform_input<F>(x + n0 * C * H * W, nb, t, planes, V, vs);
        for (int e = 0; e < a2; ++e) small_gemm(P, Kp, Cp, V + e * vs, Cp, 1, U + e * Cp * Kp, Kp, M + e * ms, Kp, false);
        T* out = buffer<T>(static_cast<std::size_t>(Kp * t.OH * t.OW), slot_out);
        for (std::int64_t j = 0; j < nb; ++j) transform_output<F>(M, t, ms, j * tiles, y + (n0 + j) * K * t.OH * t.OW, out);
    });
}

/// dU (a^2, Kp, Cp) of one tile size, summed over the batch, in the calling thread's scratch:
/// per-thread partial sums over a fixed split of the batch, then a fixed-order reduction, so
/// results do not depend on scheduling.
template <class F, class T>
const T* filter_gradients(const T* x, const T* dy, const ConvGeometry& g) {
    constexpr int a2 = F::a * F::a;
    const std::int64_t C = g.in_c, K = g.out_c, N = g.batch, Cp = padded<T>(C), Kp = padded<T>(K);
    const Tiling t(C, g.in_h, g.in_w, K, g.pad_h, F::m);
    const std::int64_t tiles = t.tiles(), usize = a2 * Kp * Cp;
    const std::int64_t ipb = std::max<std::int64_t>(1, target_tiles<F, T>(Cp, Kp) / tiles);
    const int threads = fixed_share_threads(N);
    T* dU = buffer<T>(static_cast<std::size_t>(threads * usize), slot_filter_grads);
    std::fill(dU, dU + threads * usize, T(0));
    auto work = [&](int th) {
        T* acc = dU + th * usize;
        const std::int64_t n0 = N * th / threads, n1 = N * (th + 1) / threads;
        const std::size_t planes_size = static_cast<std::size_t>(std::max(Cp * t.plane_pixels(), Kp * t.tiles() * F::m * F::m));
        T* planes = buffer<T>(planes_size, slot_planes);
        for (std::int64_t b0 = n0; b0 < n1; b0 += ipb) {
            const std::int64_t nb = std::min(ipb, n1 - b0), P = nb * tiles;
            const std::int64_t vs = plane_stride(Cp, P), ms = plane_stride(Kp, P);
            T* V = buffer<T>(static_cast<std::size_t>(a2 * vs), slot_v);
            T* dM = buffer<T>(static_cast<std::size_t>(a2 * ms), slot_m);
            std::fill(planes, planes + planes_size, T(0));
            transform_input<F>(x + b0 * C * g.in_h * g.in_w, nb, t, planes, V, vs);
            std::fill(planes, planes + planes_size, T(0));
            transform_output_grad<F>(dy + b0 * K * t.OH * t.OW, nb, t, dM, ms, planes);
            for (int e = 0; e < a2; ++e)
                small_gemm(Kp, Cp, P, dM + e * ms, 1, Kp, V + e * vs, Cp, acc + e * Kp * Cp, Cp, true);
        }
    };
    sum_fixed_shares(threads, usize, [&](int th) { return dU + th * usize; }, work);
    return dU;
}

/// dw (K, C, 3, 3) = G^T dU G for every filter, from dU (a^2, Kp, Cp).
template <class F, class T>
void filters_from_gradients(const T* dU, std::int64_t K, std::int64_t C, T* dw) {
    constexpr int a = F::a;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t Cp = padded<T>(C), plane = padded<T>(K) * Cp;
    parallel_for(K, [&](std::int64_t k) {
        for (std::int64_t c0 = 0; c0 < C; c0 += L) {
            Vec<T> r[a][3];  // (G^T dU)^T: r[j] is column j of G^T dU
            unroll<a>([&](auto j) {
                Vec<T> col[a];
                unroll<a>([&](auto i) { load(dU + (i * a + j) * plane + k * Cp + c0, col[i]); });
                F::filter_grad(col, r[j]);
            });
            T taps[9][L];  // taps[3 i + j][l]: tap (i, j) of the filter of channel c0 + l
            unroll<3>([&](auto i) {  // (G^T dU) G: row i
                Vec<T> row[a], o[3];
                unroll<a>([&](auto j) { row[j] = r[j][i]; });
                F::filter_grad(row, o);
                unroll<3>([&](auto j) { store(taps[3 * i + j], o[j]); });
            });
            for (std::int64_t l = 0; l < L && c0 + l < C; ++l)
                for (int q = 0; q < 9; ++q) dw[(k * C + c0 + l) * 9 + q] = taps[q][l];
        }
    }, 8);
}

}  // namespace detail

/// Forward convolution for a geometry that `applies`; bias may be null.
template <class T>
void forward(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace detail;
    const auto run = [&]<class F>(F) {
        const T* U = filters<F>(w, g.out_c, g.in_c, false);
        forward_transformed<F>(x, U, y, g.batch, g.in_c, g.in_h, g.in_w, g.out_c, g.pad_h);
    };
    if (tile_for(g.out_h, g.out_w) == 4) run(F4{});
    else run(F2{});
    if (bias) {
        const std::int64_t ohw = g.out_h * g.out_w;
        parallel_for(g.batch * g.out_c, [&](std::int64_t p) {
            T* yp = y + p * ohw;
            const T b = bias[p % g.out_c];
            for (std::int64_t i = 0; i < ohw; ++i) yp[i] += b;
        });
    }
}

/// dx (overwritten) for a geometry that `applies`: the convolution of dy with the flipped,
/// transposed filter and padding 2 - pad.
template <class T>
void backward_data(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
    using namespace detail;
    const auto run = [&]<class F>(F) {
        const T* U = filters<F>(w, g.in_c, g.out_c, true);
        forward_transformed<F>(dy, U, dx, g.batch, g.out_c, g.out_h, g.out_w, g.in_c, 2 - g.pad_h);
    };
    if (tile_for(g.in_h, g.in_w) == 4) run(F4{});
    else run(F2{});
}

/// dw (overwritten) for a geometry that `applies`.
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
    using namespace detail;
    const auto run = [&]<class F>(F) {
        const T* dU = filter_gradients<F>(x, dy, g);
        filters_from_gradients<F>(dU, g.out_c, g.in_c, dw);
    };
    if (tile_for(g.out_h, g.out_w) == 4) run(F4{});
    else run(F2{});
}

}  // namespace diffautoml::backend_cpu::winograd
