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
#include "gemm.hpp"
#include "scratch.hpp"

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
    template <class V>
    static void filter(const V* g, V* u) {  // G g
        u[0] = g[0] / 4;
        u[1] = -(g[0] + g[1] + g[2]) / 6;
        u[2] = -(g[0] - g[1] + g[2]) / 6;
        u[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
        u[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
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
        g[0] = u[0] / 4 - (u[1] + u[2]) / 6 + (u[3] + u[4]) / 24;
        g[1] = (u[2] - u[1]) / 6 + (u[3] - u[4]) / 12;
        g[2] = (u[3] + u[4] - u[1] - u[2]) / 6 + u[5];
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

/// Calls f(integral_constant<int, 0>) .. f(integral_constant<int, N - 1>) as straight-line code,
/// so that the small per-tile arrays below live in registers.
template <int N, class Fn>
[[gnu::always_inline]] inline void unroll(Fn&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }(
        std::make_integer_sequence<int, N>{});
}

/// The transforms run on the tiles of a tile row side by side, `lanes<T>` tiles a vector (32
/// bytes: one AVX register; GCC splits it where the target has narrower ones).
template <class T>
struct Lanes {
    typedef T type __attribute__((vector_size(32)));
};
template <class T>
using Vec = typename Lanes<T>::type;
template <class T>
inline constexpr std::int64_t lanes = static_cast<std::int64_t>(32 / sizeof(T));
/// Length of one phase of a scratch row: tw rounded up to whole vectors, so that no vector spills
/// into the next phase.
template <class T>
inline std::int64_t phase_length(std::int64_t tw) {
    return (tw + lanes<T> - 1) / lanes<T> * lanes<T>;
}
/// v = the lanes<T> values at p (an out-parameter: a vector returned by value draws GCC's ABI
/// warning in translation units built without AVX).
template <class T>
[[gnu::always_inline]] inline void load(const T* p, Vec<T>& v) {
    std::memcpy(&v, p, sizeof v);
}
template <class T>
[[gnu::always_inline]] inline void store(T* p, const Vec<T>& v) {
    std::memcpy(p, &v, sizeof v);
}

/// Geometry of one tiled convolution: input (C, H, W) per image, output (K, OH, OW), padding p,
/// tiles of m x m outputs.
///
/// The transforms vectorise across the tiles of a tile row, so every value a tile reads or writes
/// is kept split by column phase: column X of a row is stored at (X % m) * (tw + 1) + X / m, which
/// puts column m tx + q of the tiles tx = 0, 1, ... side by side (the columns of tile tx are
/// q = 0 .. a-1, so the phase arrays hold tw + 1 entries).
struct Tiling {
    std::int64_t C, H, W, K, OH, OW, pad, m;
    std::int64_t th, tw, ph, rs;  // tiles per column and row; padded rows; row length split by phase
    Tiling(std::int64_t C_, std::int64_t H_, std::int64_t W_, std::int64_t K_, std::int64_t pad_, std::int64_t m_)
        : C(C_), H(H_), W(W_), K(K_), OH(H_ + 2 * pad_ - 2), OW(W_ + 2 * pad_ - 2), pad(pad_), m(m_) {
        th = (OH + m - 1) / m;
        tw = (OW + m - 1) / m;
        ph = m * th + 2;
        rs = m * (tw + 1);
    }
    std::int64_t tiles() const { return th * tw; }
    std::int64_t plane_size() const { return ph * rs; }
};

/// U[e][k][c] = (G g G^T)_e for the filter g = w[k][c] (flip_transpose: g = w[c][k] rotated 180
/// degrees, the filter of the data gradient; then w is (C, K, 3, 3)).
template <class F, class T>
void transform_filters(const T* w, std::int64_t K, std::int64_t C, bool flip_transpose, T* U) {
    constexpr int a = F::a;
    const std::int64_t KC = K * C;
    parallel_for(K, [&](std::int64_t k) {
        for (std::int64_t c = 0; c < C; ++c) {
            T gt[3][3];  // the filter transposed: gt[j] is column j
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    gt[j][i] = flip_transpose ? w[(c * K + k) * 9 + (2 - i) * 3 + (2 - j)] : w[(k * C + c) * 9 + i * 3 + j];
            T t[3][a];  // (G g)^T: row j holds column j of G g
            for (int j = 0; j < 3; ++j) F::filter(gt[j], t[j]);
            for (int i = 0; i < a; ++i) {  // (G g) G^T, row i
                T col[3] = {t[0][i], t[1][i], t[2][i]}, u[a];
                F::filter(col, u);
                for (int j = 0; j < a; ++j) U[(i * a + j) * KC + k * C + c] = u[j];
            }
        }
    }, 4);
}

/// V[e][c][j * tiles + tile] = (B^T d B)_e for every tile of the nb images x(nb, C, H, W); V rows
/// are `ldv` apart and the a^2 planes `ps` apart, with at least lanes<T> values of slack after the
/// last row (plane_stride). `plane` is a zeroed scratch buffer of t.plane_size() values (a padded
/// channel, split by phase; positions outside the image are never written, so stay zero).
///
/// The last vector of a tile row writes up to lanes<T> - 1 values past the row's tiles, into the
/// next tile row, the next image's first tiles, or (after the last image) the next channel's row:
/// all written later, since channels are the outer loop and images and tile rows ascend.
template <class F, class T>
void transform_input(const T* x, std::int64_t nb, const Tiling& t, T* plane, T* V, std::int64_t ldv, std::int64_t ps) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t n = t.tw + 1, tiles = t.tiles(), chw = t.C * t.H * t.W;
    for (std::int64_t c = 0; c < t.C; ++c)
        for (std::int64_t im = 0; im < nb; ++im) {
            const T* xc = x + im * chw + c * t.H * t.W;
            for (std::int64_t h = 0; h < t.H; ++h) {
                T* dst = plane + (h + t.pad) * t.rs;
                const T* src = xc + h * t.W;
                // Phase q holds the padded columns X = q, q + m, ...: input columns X - pad.
                for (int q = 0; q < m; ++q) {
                    std::int64_t u = q >= t.pad ? 0 : (t.pad - q + m - 1) / m;  // first X = q + m u >= pad
                    for (std::int64_t ix = q + m * u - t.pad; ix < t.W; ix += m, ++u) dst[q * n + u] = src[ix];
                }
            }
            T* vc = V + c * ldv + im * tiles;
            for (std::int64_t ty = 0; ty < t.th; ++ty) {
                const T* r = plane + m * ty * t.rs;
                T* v = vc + ty * t.tw;
                for (std::int64_t tx = 0; tx < t.tw; tx += L) {
                    Vec<T> d[a][a];  // B^T d, transposed: d[j] is column j
                    unroll<a>([&](auto j) {
                        Vec<T> col[a];
                        unroll<a>([&](auto i) { load(r + i * t.rs + (j % m) * n + j / m + tx, col[i]); });
                        F::input(col, d[j]);
                    });
                    unroll<a>([&](auto i) {  // (B^T d) B: row i
                        Vec<T> row[a], out[a];
                        unroll<a>([&](auto j) { row[j] = d[j][i]; });
                        F::input(row, out);
                        unroll<a>([&](auto j) { store(v + tx + (i * a + j) * ps, out[j]); });
                    });
                }
            }
        }
}

/// y(K, OH, OW) of one image from M[e][k][p0 + tile] (rows `ldm` apart, planes `ps` apart; the last
/// vector of a tile row reads up to lanes<T> - 1 values past it, into the next tile row or the
/// planes' slack, and its extra lanes are never copied out). `rows` is scratch for m output rows
/// of m phases of `phase_length<T>(tw)` values each.
template <class F, class T>
void transform_output(const T* M, const Tiling& t, std::int64_t ldm, std::int64_t ps, std::int64_t p0, T* y, T* rows) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t tw = t.tw, tp = phase_length<T>(tw), full = t.OW / m;
    for (std::int64_t k = 0; k < t.K; ++k) {
        T* yk = y + k * t.OH * t.OW;
        for (std::int64_t ty = 0; ty < t.th; ++ty) {
            const T* mk = M + k * ldm + p0 + ty * tw;
            for (std::int64_t tx = 0; tx < tw; tx += L) {
                Vec<T> s[a][m];  // (A^T M)^T: s[j] is column j of A^T M
                unroll<a>([&](auto j) {
                    Vec<T> col[a];
                    unroll<a>([&](auto i) { load(mk + (i * a + j) * ps + tx, col[i]); });
                    F::output(col, s[j]);
                });
                unroll<m>([&](auto i) {  // (A^T M) A: row i
                    Vec<T> row[a], out[m];
                    unroll<a>([&](auto j) { row[j] = s[j][i]; });
                    F::output(row, out);
                    unroll<m>([&](auto q) { store(rows + (i * m + q) * tp + tx, out[q]); });
                });
            }
            for (std::int64_t i = 0; i < m && m * ty + i < t.OH; ++i) {
                T* dst = yk + (m * ty + i) * t.OW;
                const T* src = rows + i * m * tp;
                for (std::int64_t tx = 0; tx < full; ++tx)
                    for (int q = 0; q < m; ++q) dst[m * tx + q] = src[q * tp + tx];
                for (std::int64_t X = full * m; X < t.OW; ++X) dst[X] = src[X % m * tp + X / m];
            }
        }
    }
}

/// dM[e][k][j * tiles + tile] = (A dY A^T)_e for the output gradients dy(nb, K, OH, OW) of nb
/// images (rows `ldm` apart, planes `ps` apart, slack as for transform_input, whose order of
/// writes this follows). `rows` is scratch for m rows of m phases of `phase_length<T>(tw)` values
/// each (zero past the output's edge).
template <class F, class T>
void transform_output_grad(const T* dy, std::int64_t nb, const Tiling& t, T* dM, std::int64_t ldm, std::int64_t ps,
                           T* rows) {
    constexpr int a = F::a, m = F::m;
    constexpr std::int64_t L = lanes<T>;
    const std::int64_t tw = t.tw, tp = phase_length<T>(tw), full = t.OW / m, tiles = t.tiles(), ohw = t.OH * t.OW;
    std::fill(rows, rows + m * m * tp, T(0));
    for (std::int64_t k = 0; k < t.K; ++k)
        for (std::int64_t im = 0; im < nb; ++im) {
            const T* dk = dy + (im * t.K + k) * ohw;
            for (std::int64_t ty = 0; ty < t.th; ++ty) {
                for (std::int64_t i = 0; i < m; ++i) {
                    const std::int64_t oh = m * ty + i;
                    T* dst = rows + i * m * tp;
                    if (oh >= t.OH) {
                        std::fill(dst, dst + m * tp, T(0));
                        continue;
                    }
                    const T* src = dk + oh * t.OW;
                    for (std::int64_t tx = 0; tx < full; ++tx)
                        for (int q = 0; q < m; ++q) dst[q * tp + tx] = src[m * tx + q];
                    for (std::int64_t X = full * m; X < t.OW; ++X) dst[X % m * tp + X / m] = src[X];
                }
                T* mk = dM + k * ldm + im * tiles + ty * tw;
                for (std::int64_t tx = 0; tx < tw; tx += L) {
                    Vec<T> r[m][a];  // (A g)^T: r[q] is column q of A g
                    unroll<m>([&](auto q) {
                        Vec<T> col[m];
                        unroll<m>([&](auto i) { load(rows + (i * m + q) * tp + tx, col[i]); });
                        F::output_grad(col, r[q]);
                    });
                    unroll<a>([&](auto i) {  // (A g) A^T: row i
                        Vec<T> row[m], out[a];
                        unroll<m>([&](auto q) { row[q] = r[q][i]; });
                        F::output_grad(row, out);
                        unroll<a>([&](auto j) { store(mk + (i * a + j) * ps + tx, out[j]); });
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

struct Scratch;  ///< tag of this file's per-thread buffers
template <class T>
T* buffer(std::size_t n, int slot) {
    return thread_scratch<Scratch, 4, T>(n, slot);
}

/// Distance between the a^2 transform-domain planes of an (rows x P) matrix: one cache line more
/// than the matrix, so that the streams written per tile never alias to the same cache sets
/// (P * rows * 4 bytes is often a multiple of 4 KiB); it is also the slack the transforms' last
/// vector may write into (16 values >= lanes<T>).
inline std::int64_t plane_stride(std::int64_t rows, std::int64_t P) { return rows * P + 16; }

/// Tiles per GEMM. A block's V and M planes (a^2 * (C + K) * tiles values) should stay near L2
/// size; F4 tiles cover 4 times F2's outputs, so it takes a quarter of F2's tiles.
template <class F>
std::int64_t target_tiles(std::int64_t C, std::int64_t K) {
    constexpr std::int64_t q = F::m * F::m / 4;
    return std::clamp<std::int64_t>((1 << 17) / (C + K) / q, 128 / q, 1024 / q);
}

/// The filters of every transform-domain point: U (a^2, K, C).
template <class F, class T>
std::vector<T> filters(const T* w, std::int64_t K, std::int64_t C, bool flip_transpose) {
    std::vector<T> U(static_cast<std::size_t>(F::a * F::a * K * C));
    transform_filters<F>(w, K, C, flip_transpose, U.data());
    return U;
}

/// y(N, K, OH, OW) = 3x3 stride-1 convolution with padding `pad` of x(N, C, H, W) by U (from
/// transform_filters<F>). OH = H + 2 pad - 2.
template <class F, class T>
void forward_transformed(const T* x, const T* U, T* y, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                         std::int64_t K, std::int64_t pad) {
    constexpr int a2 = F::a * F::a;
    const Tiling t(C, H, W, K, pad, F::m);
    const std::int64_t tiles = t.tiles();
    const std::int64_t ipb = images_per_block(N, tiles, target_tiles<F>(C, K));
    parallel_for((N + ipb - 1) / ipb, [&](std::int64_t blk) {
        const std::int64_t n0 = blk * ipb, nb = std::min(ipb, N - n0), P = nb * tiles;
        const std::int64_t vs = plane_stride(C, P), ms = plane_stride(K, P);
        T* V = buffer<T>(static_cast<std::size_t>(a2 * vs), 0);
        T* M = buffer<T>(static_cast<std::size_t>(a2 * ms), 1);
        T* plane = buffer<T>(static_cast<std::size_t>(t.plane_size() + 2 * lanes<T>), 2);
        std::fill(plane, plane + t.plane_size() + 2 * lanes<T>, T(0));
        transform_input<F>(x + n0 * C * H * W, nb, t, plane, V, P, vs);
        for (int e = 0; e < a2; ++e) gemm(cpu{}, false, false, K, P, C, U + e * K * C, V + e * vs, M + e * ms, false);
        T* rows = buffer<T>(static_cast<std::size_t>(F::m * F::m * phase_length<T>(t.tw)), 3);
        for (std::int64_t j = 0; j < nb; ++j)
            transform_output<F>(M, t, P, ms, j * tiles, y + (n0 + j) * K * t.OH * t.OW, rows);
    });
}

/// dU (a^2, K, C) of one tile size, summed over the batch: per-thread partial sums over a fixed
/// split of the batch, then a fixed-order reduction, so results do not depend on scheduling.
template <class F, class T>
std::vector<T> filter_gradients(const T* x, const T* dy, const ConvGeometry& g) {
    constexpr int a2 = F::a * F::a;
    const std::int64_t C = g.in_c, K = g.out_c, N = g.batch;
    const Tiling t(C, g.in_h, g.in_w, K, g.pad_h, F::m);
    const std::int64_t tiles = t.tiles(), usize = a2 * K * C;
    const std::int64_t ipb = std::max<std::int64_t>(1, target_tiles<F>(C, K) / tiles);
    const int threads = omp_in_parallel() ? 1 : std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(N)));
    std::vector<T> dU(static_cast<std::size_t>(threads * usize), T(0));
    auto work = [&](int th) {
        T* acc = dU.data() + th * usize;
        const std::int64_t n0 = N * th / threads, n1 = N * (th + 1) / threads;
        T* plane = buffer<T>(static_cast<std::size_t>(t.plane_size() + 2 * lanes<T>), 2);
        std::fill(plane, plane + t.plane_size() + 2 * lanes<T>, T(0));
        T* rows = buffer<T>(static_cast<std::size_t>(F::m * F::m * phase_length<T>(t.tw)), 3);
        for (std::int64_t b0 = n0; b0 < n1; b0 += ipb) {
            const std::int64_t nb = std::min(ipb, n1 - b0), P = nb * tiles;
            const std::int64_t vs = plane_stride(C, P), ms = plane_stride(K, P);
            T* V = buffer<T>(static_cast<std::size_t>(a2 * vs), 0);
            T* dM = buffer<T>(static_cast<std::size_t>(a2 * ms), 1);
            transform_input<F>(x + b0 * C * g.in_h * g.in_w, nb, t, plane, V, P, vs);
            transform_output_grad<F>(dy + b0 * K * t.OH * t.OW, nb, t, dM, P, ms, rows);
            for (int e = 0; e < a2; ++e)
                gemm(cpu{}, false, true, K, C, P, dM + e * ms, V + e * vs, acc + e * K * C, true);
        }
    };
    if (threads == 1) {
        work(0);
    } else {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (int th = 0; th < threads; ++th) work(th);
        for (int th = 1; th < threads; ++th) {
            const T* p = dU.data() + th * usize;
            for (std::int64_t i = 0; i < usize; ++i) dU[static_cast<std::size_t>(i)] += p[i];
        }
    }
    dU.resize(static_cast<std::size_t>(usize));
    return dU;
}

/// dw (K, C, 3, 3) = G^T dU G for every filter.
template <class F, class T>
void filters_from_gradients(const T* dU, std::int64_t K, std::int64_t C, T* dw) {
    constexpr int a = F::a;
    const std::int64_t KC = K * C;
    parallel_for(K, [&](std::int64_t k) {
        for (std::int64_t c = 0; c < C; ++c) {
            T r[a][3];  // (G^T dU)^T: r[j] is column j of G^T dU
            for (int j = 0; j < a; ++j) {
                T col[a];
                for (int i = 0; i < a; ++i) col[i] = dU[(i * a + j) * KC + k * C + c];
                F::filter_grad(col, r[j]);
            }
            T* out = dw + (k * C + c) * 9;
            for (int i = 0; i < 3; ++i) {  // (G^T dU) G: row i
                T row[a], o[3];
                for (int j = 0; j < a; ++j) row[j] = r[j][i];
                F::filter_grad(row, o);
                for (int j = 0; j < 3; ++j) out[i * 3 + j] = o[j];
            }
        }
    }, 4);
}

}  // namespace detail

/// Forward convolution for a geometry that `applies`; bias may be null.
template <class T>
void forward(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace detail;
    const auto run = [&]<class F>(F) {
        const auto U = filters<F>(w, g.out_c, g.in_c, false);
        forward_transformed<F>(x, U.data(), y, g.batch, g.in_c, g.in_h, g.in_w, g.out_c, g.pad_h);
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
        const auto U = filters<F>(w, g.in_c, g.out_c, true);
        forward_transformed<F>(dy, U.data(), dx, g.batch, g.out_c, g.out_h, g.out_w, g.in_c, 2 - g.pad_h);
    };
    if (tile_for(g.in_h, g.in_w) == 4) run(F4{});
    else run(F2{});
}

/// dw (overwritten) for a geometry that `applies`.
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
    using namespace detail;
    const auto run = [&]<class F>(F) {
        const auto dU = filter_gradients<F>(x, dy, g);
        filters_from_gradients<F>(dU.data(), g.out_c, g.in_c, dw);
    };
    if (tile_for(g.out_h, g.out_w) == 4) run(F4{});
    else run(F2{});
}

}  // namespace diffautoml::backend_cpu::winograd
