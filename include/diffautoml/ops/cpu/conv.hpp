#pragma once
// CPU conv2d (NCHW): 3x3 stride-1 convolutions use Winograd (winograd.hpp); depthwise ones a direct
// kernel vectorised across images (depthwise.hpp); dense strided ones with enough channels an
// implicit GEMM (implicit_gemm.hpp); the rest im2col + GEMM per image block and group, images
// spread over the threads (1x1 stride-1 convolutions copy planes instead of im2col). The GEMM is
// Eigen's, or with AVX-512 (simd::wide_vectors()) simd::small_gemm over columns padded to whole
// 64-byte vectors, since our portable builds compile Eigen for AVX2.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../conv_params.hpp"
#include "depthwise.hpp"
#include "gemm.hpp"
#include "implicit_gemm.hpp"
#include "scratch.hpp"
#include "winograd.hpp"

namespace diffautoml::backend_cpu {

namespace conv_detail {

/// Output positions o in [lo, hi) whose input index o*stride - pad + offset lies in [0, in).
inline void valid_range(std::int64_t out, std::int64_t in, std::int64_t stride, std::int64_t pad,
                        std::int64_t offset, std::int64_t& lo, std::int64_t& hi) {
    const std::int64_t a = pad - offset;  // need o*stride >= a
    lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    const std::int64_t b = in - 1 + pad - offset;  // need o*stride <= b
    hi = b < 0 ? 0 : std::min(out, b / stride + 1);
    if (hi < lo) hi = lo;
}

/// A channel's zero-padded input extent (the rows and columns a strided kernel reads) split by
/// column phase: padded column X is stored at (X % stride) * n + X / stride, so the columns
/// X = stride * ow + offset of consecutive outputs ow lie side by side. im2col then copies whole
/// output rows (no strided reads, no bounds checks) and col2im adds them; strided layers spent as
/// long in im2col's strided copies as in the GEMM (`small`'s stride-2 3x3 layer, perf).
struct PhasePlane {
    std::int64_t hp, wp, s, n;  // padded rows and columns read; stride; entries per phase
    std::uint64_t phases = 0;   // bit q: some kernel column reads phase q
    explicit PhasePlane(const ConvGeometry& g)
        : hp(g.padded_rows_read()), wp(g.padded_cols_read()), s(g.stride_w), n((wp + s - 1) / s) {
        for (std::int64_t kw = 0; kw < g.kw; ++kw) phases |= std::uint64_t{1} << (kw * g.dil_w % s);
    }
    std::int64_t size() const { return hp * s * n; }
    bool reads(std::int64_t q) const { return (phases >> q) & 1; }
    /// Start of padded row r at kernel column offset o (= kw * dil_w): output ow is entry ow.
    std::int64_t at(std::int64_t r, std::int64_t o) const { return r * s * n + (o % s) * n + o / s; }
};
struct PhaseScratch;  ///< tag of the phase plane's per-thread buffer
/// Strided layers whose kernel has several columns: they read each deinterleaved row several
/// times. A 1x1 strided kernel reads each input once, so a strided copy costs less than a split.
inline bool uses_phase_plane(const ConvGeometry& g) { return g.stride_w > 1 && g.stride_w <= 64 && g.kw > 1; }

/// Calls f(padded row r, image row ih) for each image row that some kernel row reads.
template <class F>
void for_each_read_row(const ConvGeometry& g, const PhasePlane& p, F&& f) {
    const std::int64_t r0 = std::min(g.pad_h, p.hp), r1 = std::min(g.pad_h + g.in_h, p.hp);
    for (std::int64_t r = r0; r < r1; ++r) {
        bool read = false;
        for (std::int64_t kh = 0; kh < g.kh && !read; ++kh) {
            const std::int64_t t = r - kh * g.dil_h;
            read = t >= 0 && t % g.stride_h == 0 && t / g.stride_h < g.out_h;
        }
        if (read) f(r, r - g.pad_h);
    }
}

/// Calls f(offset of padded column X in its phase-split row, image column iw) for the image
/// columns of a row that some kernel column reads (a phase no kernel column reads is skipped).
/// Stride 2 with every column inside the phase arrays (the common case) runs as one loop over
/// column pairs, which GCC vectorises; the general loop reads with the stride.
template <class F>
void for_each_read_column(const ConvGeometry& g, const PhasePlane& p, F&& f) {
    const std::int64_t s = p.s, pad = g.pad_w, W = g.in_w;
    if (s == 2 && p.reads(0) && p.reads(1) && pad + W <= s * p.n) {
        // iw = 2 i + j lands at X = 2 i + j + pad: phase (j + pad) % 2, entry i + (j + pad) / 2.
        const std::int64_t a0 = (pad % 2) * p.n + pad / 2, a1 = ((1 + pad) % 2) * p.n + (1 + pad) / 2;
        const std::int64_t pairs = W / 2;
        for (std::int64_t i = 0; i < pairs; ++i) {
            f(a0 + i, 2 * i);
            f(a1 + i, 2 * i + 1);
        }
        if (W % 2) f(a0 + pairs, W - 1);
        return;
    }
    const std::int64_t x1 = std::min(pad + W, p.wp);
    for (std::int64_t q = 0; q < s; ++q) {
        if (!p.reads(q)) continue;
        std::int64_t u = q >= pad ? 0 : (pad - q + s - 1) / s;  // first X = q + s u >= pad
        for (std::int64_t X = q + s * u; X < x1; X += s, ++u) f(q * p.n + u, X - pad);
    }
}

/// col(C*KH*KW, OH*OW) from one image x(C, H, W); rows of col are `ld` apart (ld >= OH*OW lets
/// several images share one column matrix).
template <class T>
void im2col(const T* x, std::int64_t C, std::int64_t H, std::int64_t W, const ConvGeometry& g, T* col, std::int64_t ld) {
    const std::int64_t OH = g.out_h, OW = g.out_w;
    if (uses_phase_plane(g)) {
        const PhasePlane p(g);
        T* plane = thread_scratch<PhaseScratch, 1, T>(static_cast<std::size_t>(p.size()), 0);
        std::fill(plane, plane + p.size(), T(0));  // outside the image: never written below
        for (std::int64_t c = 0; c < C; ++c) {
            for_each_read_row(g, p, [&](std::int64_t r, std::int64_t ih) {
                const T* src = x + (c * H + ih) * W;
                T* row = plane + r * p.s * p.n;
                for_each_read_column(g, p, [&](std::int64_t at, std::int64_t iw) { row[at] = src[iw]; });
            });
            for (std::int64_t kh = 0; kh < g.kh; ++kh)
                for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                    T* dst = col + ((c * g.kh + kh) * g.kw + kw) * ld;
                    for (std::int64_t oh = 0; oh < OH; ++oh, dst += OW) {
                        const T* src = plane + p.at(oh * g.stride_h + kh * g.dil_h, kw * g.dil_w);
                        for (std::int64_t ow = 0; ow < OW; ++ow) dst[ow] = src[ow];
                    }
                }
        }
        return;
    }
    for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t kh = 0; kh < g.kh; ++kh)
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                T* dst = col + ((c * g.kh + kh) * g.kw + kw) * ld;
                std::int64_t lo, hi;
                valid_range(OW, W, g.stride_w, g.pad_w, kw * g.dil_w, lo, hi);
                for (std::int64_t oh = 0; oh < OH; ++oh, dst += OW) {
                    const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
                    if (ih < 0 || ih >= H) {
                        std::fill(dst, dst + OW, T(0));
                        continue;
                    }
                    const T* src = x + (c * H + ih) * W - g.pad_w + kw * g.dil_w;
                    std::fill(dst, dst + lo, T(0));
                    if (g.stride_w == 1) {
                        std::copy(src + lo, src + hi, dst + lo);
                    } else {
                        for (std::int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.stride_w];
                    }
                    std::fill(dst + hi, dst + OW, T(0));
                }
            }
}

/// The transpose of im2col: dx(C, H, W) += scatter of col (rows `ld` apart).
template <class T>
void col2im(const T* col, std::int64_t C, std::int64_t H, std::int64_t W, const ConvGeometry& g, T* dx, std::int64_t ld) {
    const std::int64_t OH = g.out_h, OW = g.out_w;
    if (uses_phase_plane(g)) {
        // Sums whole output rows into the phase-split plane, then adds its inside to dx.
        const PhasePlane p(g);
        T* plane = thread_scratch<PhaseScratch, 1, T>(static_cast<std::size_t>(p.size()), 0);
        for (std::int64_t c = 0; c < C; ++c) {
            std::fill(plane, plane + p.size(), T(0));
            for (std::int64_t kh = 0; kh < g.kh; ++kh)
                for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                    const T* src = col + ((c * g.kh + kh) * g.kw + kw) * ld;
                    for (std::int64_t oh = 0; oh < OH; ++oh, src += OW) {
                        T* dst = plane + p.at(oh * g.stride_h + kh * g.dil_h, kw * g.dil_w);
                        for (std::int64_t ow = 0; ow < OW; ++ow) dst[ow] += src[ow];
                    }
                }
            for_each_read_row(g, p, [&](std::int64_t r, std::int64_t ih) {
                T* dst = dx + (c * H + ih) * W;
                const T* row = plane + r * p.s * p.n;
                for_each_read_column(g, p, [&](std::int64_t at, std::int64_t iw) { dst[iw] += row[at]; });
            });
        }
        return;
    }
    for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t kh = 0; kh < g.kh; ++kh)
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T* src = col + ((c * g.kh + kh) * g.kw + kw) * ld;
                std::int64_t lo, hi;
                valid_range(OW, W, g.stride_w, g.pad_w, kw * g.dil_w, lo, hi);
                for (std::int64_t oh = 0; oh < OH; ++oh, src += OW) {
                    const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
                    if (ih < 0 || ih >= H) continue;
                    T* dst = dx + (c * H + ih) * W - g.pad_w + kw * g.dil_w;
                    for (std::int64_t ow = lo; ow < hi; ++ow) dst[ow * g.stride_w] += src[ow];
                }
            }
}

inline bool is_pointwise(const ConvGeometry& g) {
    return g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}

/// im2col of one image into columns `ld` apart; a pointwise convolution's columns are the image's
/// planes, copied whole (im2col would copy them a row at a time: 7 or 14 values per call).
template <class T>
void image_columns(const T* x, std::int64_t C, const ConvGeometry& g, T* col, std::int64_t ld) {
    if (!is_pointwise(g)) {
        im2col(x, C, g.in_h, g.in_w, g, col, ld);
        return;
    }
    const std::int64_t hw = g.in_h * g.in_w;
    for (std::int64_t c = 0; c < C; ++c) std::copy(x + c * hw, x + (c + 1) * hw, col + c * ld);
}
/// dx(C, H, W) = col2im of columns `ld` apart, overwriting dx; for a pointwise convolution a copy
/// of whole planes (no zero fill and scatter-add).
template <class T>
void image_from_columns(const T* col, std::int64_t C, const ConvGeometry& g, T* dx, std::int64_t ld) {
    const std::int64_t hw = g.in_h * g.in_w;
    if (!is_pointwise(g)) {
        std::fill(dx, dx + C * hw, T(0));
        col2im(col, C, g.in_h, g.in_w, g, dx, ld);
        return;
    }
    for (std::int64_t c = 0; c < C; ++c) std::copy(col + c * ld, col + c * ld + hw, dx + c * hw);
}

/// GEMMs narrower than this many columns run well below Eigen's peak, so images with small
/// outputs (7x7, 14x14) are batched: one GEMM then covers several images side by side. Batching
/// costs a copy of every plane in and out, so the GEMMs need only be wide enough: 128 columns (three
/// 7x7 images, one 14x14) trained `shuffle` 6-18% faster than 512 and `mbv2` 1-4% faster, `small`
/// the same (train_throughput, alternated; 64 and 256 between 128 and 512, 1024 slower still).
inline std::int64_t& min_gemm_columns() {
    static std::int64_t columns = 128;
    return columns;
}
/// Images per GEMM: enough for min_gemm_columns(), but leaving every thread at least one block.
inline std::int64_t images_per_gemm(const ConvGeometry& g) {
    const std::int64_t ohw = g.out_h * g.out_w;
    const std::int64_t want = (min_gemm_columns() + ohw - 1) / ohw;
    const std::int64_t threads = std::max(1, omp_get_max_threads());
    const std::int64_t cap = std::max<std::int64_t>(1, (g.batch + threads - 1) / threads);
    return std::max<std::int64_t>(1, std::min(want, cap));
}

struct Scratch;  ///< tag of this file's per-thread buffers
/// A per-thread scratch buffer that keeps its capacity between calls.
template <class T>
T* scratch(std::size_t n, int slot = 0) {
    return thread_scratch<Scratch, 2, T>(n, slot);
}

/// Columns of a block of nb images' GEMM: nb * OHW, padded to whole 64-byte vectors when the small
/// GEMM takes it (`wide`: see conv2d_forward).
inline std::int64_t block_columns(const ConvGeometry& g, std::int64_t nb, bool wide) {
    const std::int64_t n = nb * g.out_h * g.out_w;
    return wide ? (n + 15) / 16 * 16 : n;
}

/// Runs f(first image, images in block, columns, col scratch, tmp scratch) for blocks of `ipb`
/// images spread over the threads; col holds K x columns values and tmp cout_g x columns.
template <class T, class F>
void for_each_image_block(const ConvGeometry& g, std::int64_t ipb, std::int64_t K, std::int64_t cout_g, bool wide, F&& f) {
    parallel_for((g.batch + ipb - 1) / ipb, [&](std::int64_t blk) {
        const std::int64_t n0 = blk * ipb, nb = std::min(ipb, g.batch - n0), ld = block_columns(g, nb, wide);
        T* col = scratch<T>(static_cast<std::size_t>(K * ld), 0);
        T* tmp = scratch<T>(static_cast<std::size_t>(cout_g * ld), 1);
        f(n0, nb, ld, col, tmp);
    });
}
/// Zeroes columns [from, ld) of the rows x ld matrix m (the padding of a wide block).
template <class T>
void zero_columns(T* m, std::int64_t rows, std::int64_t from, std::int64_t ld) {
    if (from < ld)
        for (std::int64_t r = 0; r < rows; ++r) std::fill(m + r * ld + from, m + (r + 1) * ld, T(0));
}
/// tmp(cout_g, ld) <- the output-gradient planes of group gi of images n0 .. n0+nb side by side
/// (ld >= nb * OHW; columns past them are left alone).
template <class T>
void gather_output_block(const T* dy, T* tmp, const ConvGeometry& g, std::int64_t n0, std::int64_t nb, std::int64_t gi,
                         std::int64_t cout_g, std::int64_t ld) {
    const std::int64_t ohw = g.out_h * g.out_w;
    for (std::int64_t j = 0; j < nb; ++j)
        for (std::int64_t co = 0; co < cout_g; ++co) {
            const T* src = dy + ((n0 + j) * g.out_c + gi * cout_g + co) * ohw;
            std::copy(src, src + ohw, tmp + co * ld + j * ohw);
        }
}

/// With AVX-512 the pointwise layers' weight gradient runs on the small GEMM too (their forward and
/// data gradient take the block path with the other GEMM-based layers, conv2d_forward).
inline bool pointwise_on_wide_gemm(const ConvGeometry& g) { return is_pointwise(g) && simd::wide_vectors(); }

/// dW_g (cout_g, cin_g) += the pointwise weight gradient of images n0 .. n1 on the wide GEMM:
/// dW_g = sum over images of dY (cout_g, pixels) X^T (pixels, cin_g), dY read in place and X^T
/// built through the register transposes with its channels padded to whole vectors (the GEMM reads
/// its right-hand side by rows); `acc` is cout_g x cin_g.
template <class T>
void pointwise_weight_wide(const T* x, const T* dy, T* acc, const ConvGeometry& g, std::int64_t gi, std::int64_t n0,
                           std::int64_t n1) {
    const std::int64_t hw = g.out_h * g.out_w, cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    const std::int64_t cp = simd::padded<T>(cin_g);
    T* padded_acc = scratch<T>(static_cast<std::size_t>(cout_g * cp), 0);
    T* xt = scratch<T>(static_cast<std::size_t>(hw * cp), 1);
    std::fill(padded_acc, padded_acc + cout_g * cp, T(0));
    for (std::int64_t n = n0; n < n1; ++n) {
        const T* xn = x + (n * g.in_c + gi * cin_g) * hw;
        for (std::int64_t c0 = 0; c0 < cin_g; c0 += simd::lanes<T>)  // padding channels come out as zeros
            simd::interleave(xn + c0 * hw, std::min(simd::lanes<T>, cin_g - c0), 1, hw, xt + c0, hw, 0, 0, cp);
        simd::small_gemm(cout_g, cp, hw, dy + (n * g.out_c + gi * cout_g) * hw, hw, 1, xt, cp, padded_acc, cp, true);
    }
    for (std::int64_t co = 0; co < cout_g; ++co)
        for (std::int64_t c = 0; c < cin_g; ++c) acc[co * cin_g + c] += padded_acc[co * cp + c];
}

}  // namespace conv_detail

/// y(N, Cout, OH, OW) = conv(x(N, Cin, H, W), w(Cout, Cin/groups, KH, KW)) + bias (may be null).
template <class T>
void conv2d_forward(cpu, const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace conv_detail;
    const std::int64_t ohw = g.out_h * g.out_w, hw = g.in_h * g.in_w;
    const std::int64_t cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    const std::int64_t K = cin_g * g.kh * g.kw;
    if (winograd::applies(g)) {
        winograd::forward(x, w, bias, y, g);
        return;
    }
    if (depthwise::applies(g)) {
        depthwise::forward(x, w, bias, y, g);
        return;
    }
    if (implicit_gemm::applies(g)) {
        implicit_gemm::forward(x, w, bias, y, g);
        return;
    }
    const std::int64_t ipb = images_per_gemm(g);
    // With AVX-512 every layer left here takes the block path on the small GEMM (Eigen's is AVX2
    // code), its columns padded to whole vectors: the strided 1x1 shortcuts and dilated layers.
    const bool wide = simd::wide_vectors();
    if (ipb > 1 || wide) {
        // Several images per GEMM: col(K, ipb*OHW) and a (Cout_g, ipb*OHW) result scattered back.
        for_each_image_block<T>(g, ipb, K, cout_g, wide, [&](std::int64_t n0, std::int64_t nb, std::int64_t ld, T* col, T* tmp) {
            for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                for (std::int64_t j = 0; j < nb; ++j)
                    image_columns(x + ((n0 + j) * g.in_c + gi * cin_g) * hw, cin_g, g, col + j * ohw, ld);
                if (wide) {
                    zero_columns(col, K, nb * ohw, ld);
                    simd::small_gemm(cout_g, ld, K, w + gi * cout_g * K, K, 1, col, ld, tmp, ld, false);
                } else {
                    gemm(cpu{}, false, false, cout_g, ld, K, w + gi * cout_g * K, col, tmp, false);
                }
                for (std::int64_t j = 0; j < nb; ++j)
                    for (std::int64_t co = 0; co < cout_g; ++co) {
                        const std::int64_t c = gi * cout_g + co;
                        const T* src = tmp + co * ld + j * ohw;
                        T* dst = y + ((n0 + j) * g.out_c + c) * ohw;
                        const T b = bias ? bias[c] : T(0);
                        for (std::int64_t i = 0; i < ohw; ++i) dst[i] = src[i] + b;
                    }
            }
        });
        return;
    }
    const bool pointwise = is_pointwise(g);
    parallel_for(g.batch, [&](std::int64_t n) {
        const T* xn = x + n * g.in_c * hw;
        T* yn = y + n * g.out_c * ohw;
        T* col = pointwise ? nullptr : scratch<T>(static_cast<std::size_t>(K * ohw));
        for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            const T* xg = xn + gi * cin_g * hw;
            if (!pointwise) im2col(xg, cin_g, g.in_h, g.in_w, g, col, ohw);
            gemm(cpu{}, false, false, cout_g, ohw, K, w + gi * cout_g * K, pointwise ? xg : col,
                 yn + gi * cout_g * ohw, false);
        }
        if (bias)
            for (std::int64_t c = 0; c < g.out_c; ++c) {
                T* yc = yn + c * ohw;
                for (std::int64_t i = 0; i < ohw; ++i) yc[i] += bias[c];
            }
    });
}

/// dx = conv2d^T(dy, w). Overwrites dx.
template <class T>
void conv2d_backward_data(cpu, const T* dy, const T* w, T* dx, const ConvGeometry& g) {
    using namespace conv_detail;
    const std::int64_t ohw = g.out_h * g.out_w, hw = g.in_h * g.in_w;
    const std::int64_t cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    const std::int64_t K = cin_g * g.kh * g.kw;
    if (winograd::applies(g)) {
        winograd::backward_data(dy, w, dx, g);
        return;
    }
    if (depthwise::applies(g)) {
        depthwise::backward_data(dy, w, dx, g);
        return;
    }
    const std::int64_t ipb = images_per_gemm(g);
    const bool wide = simd::wide_vectors();  // as in conv2d_forward: the strided layers' data gradient
    if (ipb > 1 || wide) {
        for_each_image_block<T>(g, ipb, K, cout_g, wide, [&](std::int64_t n0, std::int64_t nb, std::int64_t ld, T* col, T* tmp) {
            for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                gather_output_block(dy, tmp, g, n0, nb, gi, cout_g, ld);
                if (wide) {
                    zero_columns(tmp, cout_g, nb * ohw, ld);
                    simd::small_gemm(K, ld, cout_g, w + gi * cout_g * K, 1, K, tmp, ld, col, ld, false);
                } else {
                    gemm(cpu{}, true, false, K, ld, cout_g, w + gi * cout_g * K, tmp, col, false);
                }
                for (std::int64_t j = 0; j < nb; ++j)
                    image_from_columns(col + j * ohw, cin_g, g, dx + ((n0 + j) * g.in_c + gi * cin_g) * hw, ld);
            }
        });
        return;
    }
    const bool pointwise = is_pointwise(g);
    parallel_for(g.batch, [&](std::int64_t n) {
        const T* dyn = dy + n * g.out_c * ohw;
        T* dxn = dx + n * g.in_c * hw;
        T* col = pointwise ? nullptr : scratch<T>(static_cast<std::size_t>(K * ohw));
        for (std::int64_t gi = 0; gi < g.groups; ++gi) {
            T* dxg = dxn + gi * cin_g * hw;
            // col(K, OHW) = W_g^T (K, Cout_g) * dY_g (Cout_g, OHW)
            gemm(cpu{}, true, false, K, ohw, cout_g, w + gi * cout_g * K, dyn + gi * cout_g * ohw,
                 pointwise ? dxg : col, false);
            if (!pointwise) {
                std::fill(dxg, dxg + cin_g * hw, T(0));
                col2im(col, cin_g, g.in_h, g.in_w, g, dxg, ohw);
            }
        }
    });
}

/// dw (+)= correlation of x and dy; db (+)= sum of dy (db may be null). Overwrites dw and db.
template <class T>
void conv2d_backward_weight(cpu, const T* x, const T* dy, T* dw, T* db, const ConvGeometry& g) {
    using namespace conv_detail;
    const std::int64_t ohw = g.out_h * g.out_w, hw = g.in_h * g.in_w;
    const std::int64_t cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    const std::int64_t K = cin_g * g.kh * g.kw;
    const std::int64_t wsize = g.out_c * K;
    if (db) {
        parallel_for(g.out_c, [&](std::int64_t c) {
            T s = 0;
            for (std::int64_t n = 0; n < g.batch; ++n) {
                const T* d = dy + (n * g.out_c + c) * ohw;
                for (std::int64_t i = 0; i < ohw; ++i) s += d[i];
            }
            db[c] = s;
        });
    }
    if (winograd::applies(g)) {
        winograd::backward_weight(x, dy, dw, g);
        return;
    }
    if (depthwise::applies(g)) {
        depthwise::backward_weight(x, dy, dw, g);
        return;
    }
    if (implicit_gemm::applies(g)) {
        implicit_gemm::backward_weight(x, dy, dw, g);
        return;
    }
    const bool pointwise = is_pointwise(g);
    const std::int64_t ipb = images_per_gemm(g);
    const int threads = fixed_share_threads(g.batch);
    // Per-thread partial sums over a fixed split of the batch, then a fixed-order reduction.
    std::vector<T> partial(static_cast<std::size_t>(threads > 1 ? (threads - 1) * wsize : 0));
    auto work = [&](int t) {
        T* acc = t == 0 ? dw : partial.data() + (t - 1) * wsize;
        std::fill(acc, acc + wsize, T(0));
        const std::int64_t n0 = g.batch * t / threads, n1 = g.batch * (t + 1) / threads;
        if (pointwise_on_wide_gemm(g)) {
            for (std::int64_t gi = 0; gi < g.groups; ++gi)
                pointwise_weight_wide(x, dy, acc + gi * cout_g * K, g, gi, n0, n1);
            return;
        }
        if (ipb > 1) {
            for (std::int64_t b0 = n0; b0 < n1; b0 += ipb) {
                const std::int64_t nb = std::min(ipb, n1 - b0), ld = nb * ohw;
                T* col = scratch<T>(static_cast<std::size_t>(K * ld), 0);
                T* tmp = scratch<T>(static_cast<std::size_t>(cout_g * ld), 1);
                for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                    for (std::int64_t j = 0; j < nb; ++j)
                        image_columns(x + ((b0 + j) * g.in_c + gi * cin_g) * hw, cin_g, g, col + j * ohw, ld);
                    gather_output_block(dy, tmp, g, b0, nb, gi, cout_g, ld);
                    gemm(cpu{}, false, true, cout_g, K, ld, tmp, col, acc + gi * cout_g * K, true);
                }
            }
            return;
        }
        T* col = pointwise ? nullptr : scratch<T>(static_cast<std::size_t>(K * ohw));
        for (std::int64_t n = n0; n < n1; ++n) {
            const T* xn = x + n * g.in_c * hw;
            const T* dyn = dy + n * g.out_c * ohw;
            for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                const T* xg = xn + gi * cin_g * hw;
                if (!pointwise) im2col(xg, cin_g, g.in_h, g.in_w, g, col, ohw);
                // dW_g (Cout_g, K) += dY_g (Cout_g, OHW) * col^T (OHW, K)
                gemm(cpu{}, false, true, cout_g, K, ohw, dyn + gi * cout_g * ohw, pointwise ? xg : col,
                     acc + gi * cout_g * K, true);
            }
        }
    };
    sum_fixed_shares(threads, wsize, [&](int t) { return t == 0 ? dw : partial.data() + (t - 1) * wsize; }, work);
}

}  // namespace diffautoml::backend_cpu
