#pragma once
// Winograd F(2x2, 3x3) for 3x3, stride-1, undilated, ungrouped convolutions (Lavin & Gray, 2016).
//
// Each 2x2 output tile is  Y = A^T [ (G g G^T) (.) (B^T d B) ] A  for the 4x4 input patch d and the
// 3x3 filter g, so a layer becomes 16 independent GEMMs (one per point e of the 4x4 transform
// domain) over 2.25x fewer multiplications than im2col:
//     M_e (K x P) = U_e (K x C) * V_e (C x P),   U = G g G^T,  V = B^T d B,  P = number of tiles.
// The backward passes reuse the same transforms:
//   - data:   dx is the convolution of dy with the flipped, transposed filter and padding 2 - pad,
//             which is again a 3x3 stride-1 convolution (run by `forward`);
//   - weight: dU_e (K x C) = dM_e (K x P) * V_e^T (P x C) with dM = A dY A^T per tile, and
//             dg = G^T dU G.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "../../core/parallel.hpp"
#include "../conv_params.hpp"
#include "gemm.hpp"
#include "scratch.hpp"

namespace diffautoml::backend_cpu::winograd {

/// Which convolution algorithm 3x3 stride-1 convolutions use on the CPU.
enum class Mode { automatic, always, never };
inline Mode& mode() {
    static Mode m = Mode::automatic;
    return m;
}

/// Whether g can run as F(2x2, 3x3), and (in automatic mode) whether that is expected to be faster
/// than im2col: very narrow layers spend their time in the transforms, not in the GEMMs.
inline bool applies(const ConvGeometry& g) {
    const bool possible = g.groups == 1 && g.kh == 3 && g.kw == 3 && g.stride_h == 1 && g.stride_w == 1 &&
                          g.dil_h == 1 && g.dil_w == 1 && g.pad_h == g.pad_w && g.pad_h <= 2;
    if (!possible || mode() == Mode::never) return false;
    if (mode() == Mode::always) return true;
    // Measured (2 cores, batch 128): faster than im2col from 8 channels up, at 28x28, 14x14 and
    // 7x7 alike (1.3-1.8x); with fewer channels the transforms dominate.
    return g.in_c >= 8 && g.out_c >= 8;
}

namespace detail {

/// Geometry of one tiled convolution: input (C, H, W) per image, output (K, OH, OW), padding p.
struct Tiling {
    std::int64_t C, H, W, K, OH, OW, pad;
    std::int64_t th, tw, ph, pw;  // tiles per column and row; zero-padded plane size
    Tiling(std::int64_t C_, std::int64_t H_, std::int64_t W_, std::int64_t K_, std::int64_t pad_)
        : C(C_), H(H_), W(W_), K(K_), OH(H_ + 2 * pad_ - 2), OW(W_ + 2 * pad_ - 2), pad(pad_) {
        th = (OH + 1) / 2;
        tw = (OW + 1) / 2;
        ph = 2 * th + 2;
        pw = 2 * tw + 2;
    }
    std::int64_t tiles() const { return th * tw; }
};

/// U[e][k][c] = (G g G^T)_e for the filter g = w[k][c] (flip_transpose: g = w[c][k] rotated 180
/// degrees, the filter of the data gradient; then w is (C, K, 3, 3)).
template <class T>
void transform_filters(const T* w, std::int64_t K, std::int64_t C, bool flip_transpose, T* U) {
    const std::int64_t KC = K * C;
    parallel_for(K, [&](std::int64_t k) {
        for (std::int64_t c = 0; c < C; ++c) {
            T g[3][3];
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    g[i][j] = flip_transpose ? w[(c * K + k) * 9 + (2 - i) * 3 + (2 - j)] : w[(k * C + c) * 9 + i * 3 + j];
            T t[4][3];  // G g
            for (int j = 0; j < 3; ++j) {
                t[0][j] = g[0][j];
                t[1][j] = T(0.5) * (g[0][j] + g[1][j] + g[2][j]);
                t[2][j] = T(0.5) * (g[0][j] - g[1][j] + g[2][j]);
                t[3][j] = g[2][j];
            }
            for (int i = 0; i < 4; ++i) {  // (G g) G^T
                T* u = U + (i * 4) * KC + k * C + c;
                u[0 * KC] = t[i][0];
                u[1 * KC] = T(0.5) * (t[i][0] + t[i][1] + t[i][2]);
                u[2 * KC] = T(0.5) * (t[i][0] - t[i][1] + t[i][2]);
                u[3 * KC] = t[i][2];
            }
        }
    }, 4);
}

/// V[e][c][p0 + tile] = (B^T d B)_e for every tile of one image x(C, H, W); V rows are `ldv` apart
/// and the 16 planes `plane_stride` apart. `plane` is a zeroed (ph x pw) scratch buffer.
template <class T>
void transform_input(const T* x, const Tiling& t, T* plane, T* V, std::int64_t ldv, std::int64_t plane_stride,
                     std::int64_t p0) {
    for (std::int64_t c = 0; c < t.C; ++c) {
        const T* xc = x + c * t.H * t.W;
        for (std::int64_t h = 0; h < t.H; ++h)
            std::copy(xc + h * t.W, xc + (h + 1) * t.W, plane + (h + t.pad) * t.pw + t.pad);
        T* vc = V + c * ldv + p0;
        for (std::int64_t ty = 0; ty < t.th; ++ty) {
            const T* r0 = plane + (2 * ty) * t.pw;
            const T* r1 = r0 + t.pw;
            const T* r2 = r1 + t.pw;
            const T* r3 = r2 + t.pw;
            T* v = vc + ty * t.tw;
#pragma omp simd
            for (std::int64_t tx = 0; tx < t.tw; ++tx) {
                const std::int64_t s = 2 * tx;
                T d[4][4];  // B^T d: rows
                for (int j = 0; j < 4; ++j) {
                    d[0][j] = r0[s + j] - r2[s + j];
                    d[1][j] = r1[s + j] + r2[s + j];
                    d[2][j] = r2[s + j] - r1[s + j];
                    d[3][j] = r1[s + j] - r3[s + j];
                }
                for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
                    T* out = v + tx + (i * 4) * plane_stride;
                    out[0 * plane_stride] = d[i][0] - d[i][2];
                    out[1 * plane_stride] = d[i][1] + d[i][2];
                    out[2 * plane_stride] = d[i][2] - d[i][1];
                    out[3 * plane_stride] = d[i][1] - d[i][3];
                }
            }
        }
    }
}

/// y(K, OH, OW) of one image from M[e][k][p0 + tile] (rows `ldm` apart, planes `ps` apart).
/// `rows` is scratch for two output rows of 2 * tw values (edge tiles spill into it).
template <class T>
void transform_output(const T* M, const Tiling& t, std::int64_t ldm, std::int64_t ps, std::int64_t p0, T* y, T* rows) {
    const std::int64_t w2 = 2 * t.tw;
    T* row0 = rows;
    T* row1 = rows + w2;
    for (std::int64_t k = 0; k < t.K; ++k) {
        T* yk = y + k * t.OH * t.OW;
        for (std::int64_t ty = 0; ty < t.th; ++ty) {
            const T* m = M + k * ldm + p0 + ty * t.tw;
#pragma omp simd
            for (std::int64_t tx = 0; tx < t.tw; ++tx) {
                T s0[4], s1[4];  // A^T m: rows
                for (int j = 0; j < 4; ++j) {
                    const T m0 = m[j * ps + tx], m1 = m[(4 + j) * ps + tx], m2 = m[(8 + j) * ps + tx],
                            m3 = m[(12 + j) * ps + tx];
                    s0[j] = m0 + m1 + m2;
                    s1[j] = m1 - m2 - m3;
                }
                row0[2 * tx] = s0[0] + s0[1] + s0[2];
                row0[2 * tx + 1] = s0[1] - s0[2] - s0[3];
                row1[2 * tx] = s1[0] + s1[1] + s1[2];
                row1[2 * tx + 1] = s1[1] - s1[2] - s1[3];
            }
            const std::int64_t oh = 2 * ty;
            std::copy(row0, row0 + t.OW, yk + oh * t.OW);
            if (oh + 1 < t.OH) std::copy(row1, row1 + t.OW, yk + (oh + 1) * t.OW);
        }
    }
}

/// dM[e][k][p0 + tile] = (A dY A^T)_e for the output gradient dy(K, OH, OW) of one image. `rows`
/// is scratch for two zero-padded rows of 2 * tw values.
template <class T>
void transform_output_grad(const T* dy, const Tiling& t, T* dM, std::int64_t ldm, std::int64_t ps, std::int64_t p0,
                           T* rows) {
    const std::int64_t w2 = 2 * t.tw;
    T* g0 = rows;
    T* g1 = rows + w2;
    std::fill(rows, rows + 2 * w2, T(0));
    for (std::int64_t k = 0; k < t.K; ++k) {
        const T* dk = dy + k * t.OH * t.OW;
        for (std::int64_t ty = 0; ty < t.th; ++ty) {
            const std::int64_t oh = 2 * ty;
            std::copy(dk + oh * t.OW, dk + (oh + 1) * t.OW, g0);
            if (oh + 1 < t.OH) std::copy(dk + (oh + 1) * t.OW, dk + (oh + 2) * t.OW, g1);
            else std::fill(g1, g1 + t.OW, T(0));
            T* m = dM + k * ldm + p0 + ty * t.tw;
#pragma omp simd
            for (std::int64_t tx = 0; tx < t.tw; ++tx) {
                const T a0 = g0[2 * tx], a1 = g0[2 * tx + 1], b0 = g1[2 * tx], b1 = g1[2 * tx + 1];
                const T r[4][2] = {{a0, a1}, {a0 + b0, a1 + b1}, {a0 - b0, a1 - b1}, {-b0, -b1}};  // A g
                for (int i = 0; i < 4; ++i) {  // (A g) A^T
                    m[(i * 4 + 0) * ps + tx] = r[i][0];
                    m[(i * 4 + 1) * ps + tx] = r[i][0] + r[i][1];
                    m[(i * 4 + 2) * ps + tx] = r[i][0] - r[i][1];
                    m[(i * 4 + 3) * ps + tx] = -r[i][1];
                }
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

/// Distance between the 16 transform-domain planes of an (rows x P) matrix: one cache line more
/// than the matrix, so that the 16 streams written per tile never alias to the same cache sets
/// (P * rows * 4 bytes is often a multiple of 4 KiB).
inline std::int64_t plane_stride(std::int64_t rows, std::int64_t P) { return rows * P + 16; }

/// Tiles per GEMM. A block's V and M planes (16 * (C + K) * tiles values) should stay near L2 size.
inline std::int64_t target_tiles(std::int64_t C, std::int64_t K) {
    return std::clamp<std::int64_t>((1 << 17) / (C + K), 128, 1024);
}

}  // namespace detail

/// y(N, K, OH, OW) = 3x3 stride-1 convolution with padding `pad` of x(N, C, H, W) by U (from
/// transform_filters). OH = H + 2 pad - 2.
template <class T>
void forward_transformed(const T* x, const T* U, T* y, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
                         std::int64_t K, std::int64_t pad) {
    using namespace detail;
    const Tiling t(C, H, W, K, pad);
    const std::int64_t tiles = t.tiles();
    const std::int64_t ipb = images_per_block(N, tiles, target_tiles(C, K));
    parallel_for((N + ipb - 1) / ipb, [&](std::int64_t blk) {
        const std::int64_t n0 = blk * ipb, nb = std::min(ipb, N - n0), P = nb * tiles;
        const std::int64_t vs = plane_stride(C, P), ms = plane_stride(K, P);
        T* V = buffer<T>(static_cast<std::size_t>(16 * vs), 0);
        T* M = buffer<T>(static_cast<std::size_t>(16 * ms), 1);
        T* plane = buffer<T>(static_cast<std::size_t>(t.ph * t.pw), 2);
        std::fill(plane, plane + t.ph * t.pw, T(0));
        for (std::int64_t j = 0; j < nb; ++j) transform_input(x + (n0 + j) * C * H * W, t, plane, V, P, vs, j * tiles);
        for (int e = 0; e < 16; ++e) gemm(cpu{}, false, false, K, P, C, U + e * K * C, V + e * vs, M + e * ms, false);
        T* rows = buffer<T>(static_cast<std::size_t>(4 * t.tw), 3);
        for (std::int64_t j = 0; j < nb; ++j)
            transform_output(M, t, P, ms, j * tiles, y + (n0 + j) * K * t.OH * t.OW, rows);
    });
}

/// Forward convolution for a geometry that `applies`; bias may be null.
template <class T>
void forward(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    std::vector<T> U(static_cast<std::size_t>(16 * g.out_c * g.in_c));
    detail::transform_filters(w, g.out_c, g.in_c, false, U.data());
    forward_transformed(x, U.data(), y, g.batch, g.in_c, g.in_h, g.in_w, g.out_c, g.pad_h);
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
    std::vector<T> U(static_cast<std::size_t>(16 * g.out_c * g.in_c));
    detail::transform_filters(w, g.in_c, g.out_c, true, U.data());
    forward_transformed(dy, U.data(), dx, g.batch, g.out_c, g.out_h, g.out_w, g.in_c, 2 - g.pad_h);
}

/// dw (overwritten) for a geometry that `applies`. Per-thread partial sums over a fixed split of
/// the batch, then a fixed-order reduction, so results do not depend on scheduling.
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
    using namespace detail;
    const std::int64_t C = g.in_c, K = g.out_c, N = g.batch;
    const Tiling t(C, g.in_h, g.in_w, K, g.pad_h);
    const std::int64_t tiles = t.tiles(), usize = 16 * K * C;
    const std::int64_t ipb = std::max<std::int64_t>(1, target_tiles(C, K) / tiles);
    const int threads = omp_in_parallel() ? 1 : std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(N)));
    std::vector<T> dU(static_cast<std::size_t>(threads * usize), T(0));
    auto work = [&](int th) {
        T* acc = dU.data() + th * usize;
        const std::int64_t n0 = N * th / threads, n1 = N * (th + 1) / threads;
        T* plane = buffer<T>(static_cast<std::size_t>(t.ph * t.pw), 2);
        std::fill(plane, plane + t.ph * t.pw, T(0));
        T* rows = buffer<T>(static_cast<std::size_t>(4 * t.tw), 3);
        for (std::int64_t b0 = n0; b0 < n1; b0 += ipb) {
            const std::int64_t nb = std::min(ipb, n1 - b0), P = nb * tiles;
            const std::int64_t vs = plane_stride(C, P), ms = plane_stride(K, P);
            T* V = buffer<T>(static_cast<std::size_t>(16 * vs), 0);
            T* dM = buffer<T>(static_cast<std::size_t>(16 * ms), 1);
            for (std::int64_t j = 0; j < nb; ++j) {
                transform_input(x + (b0 + j) * C * g.in_h * g.in_w, t, plane, V, P, vs, j * tiles);
                transform_output_grad(dy + (b0 + j) * K * t.OH * t.OW, t, dM, P, ms, j * tiles, rows);
            }
            for (int e = 0; e < 16; ++e)
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
    // dg = G^T dU G, G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
    const std::int64_t KC = K * C;
    parallel_for(K, [&](std::int64_t k) {
        for (std::int64_t c = 0; c < C; ++c) {
            T u[4][4];
            for (int e = 0; e < 16; ++e) u[e / 4][e % 4] = dU[static_cast<std::size_t>(e * KC + k * C + c)];
            T r[3][4];
            for (int j = 0; j < 4; ++j) {
                r[0][j] = u[0][j] + T(0.5) * (u[1][j] + u[2][j]);
                r[1][j] = T(0.5) * (u[1][j] - u[2][j]);
                r[2][j] = T(0.5) * (u[1][j] + u[2][j]) + u[3][j];
            }
            T* out = dw + (k * C + c) * 9;
            for (int i = 0; i < 3; ++i) {
                out[i * 3 + 0] = r[i][0] + T(0.5) * (r[i][1] + r[i][2]);
                out[i * 3 + 1] = T(0.5) * (r[i][1] - r[i][2]);
                out[i * 3 + 2] = T(0.5) * (r[i][1] + r[i][2]) + r[i][3];
            }
        }
    }, 4);
}

}  // namespace diffautoml::backend_cpu::winograd
