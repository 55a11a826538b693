#pragma once
// CPU conv2d (NCHW): 3x3 stride-1 convolutions use Winograd F(2x2, 3x3) (winograd.hpp); the rest
// use im2col + Eigen GEMM per image and group, images spread over the threads; 1x1 stride-1
// convolutions skip im2col; depthwise convolutions use a direct kernel.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../conv_params.hpp"
#include "gemm.hpp"
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

/// col(C*KH*KW, OH*OW) from one image x(C, H, W); rows of col are `ld` apart (ld >= OH*OW lets
/// several images share one column matrix).
template <class T>
void im2col(const T* x, std::int64_t C, std::int64_t H, std::int64_t W, const ConvGeometry& g, T* col, std::int64_t ld) {
    const std::int64_t OH = g.out_h, OW = g.out_w;
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
inline bool is_depthwise(const ConvGeometry& g) { return g.groups == g.in_c && g.groups == g.out_c; }

/// GEMMs narrower than this many columns run well below Eigen's peak, so images with small
/// outputs (7x7, 14x14) are batched: one GEMM then covers several images side by side.
inline std::int64_t& min_gemm_columns() {
    static std::int64_t columns = 512;
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

/// A per-thread scratch buffer that keeps its capacity between calls.
template <class T>
T* scratch(std::size_t n, int slot = 0) {
    thread_local std::vector<T> buffers[2];
    auto& b = buffers[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
}

/// Runs f(first image, images in block, col scratch, tmp scratch) for blocks of `ipb` images spread
/// over the threads; col holds K x (block * OHW) values and tmp cout_g x (block * OHW).
template <class T, class F>
void for_each_image_block(const ConvGeometry& g, std::int64_t ipb, std::int64_t K, std::int64_t cout_g, F&& f) {
    const std::int64_t ohw = g.out_h * g.out_w;
    parallel_for((g.batch + ipb - 1) / ipb, [&](std::int64_t blk) {
        const std::int64_t n0 = blk * ipb, nb = std::min(ipb, g.batch - n0);
        T* col = scratch<T>(static_cast<std::size_t>(K * nb * ohw), 0);
        T* tmp = scratch<T>(static_cast<std::size_t>(cout_g * nb * ohw), 1);
        f(n0, nb, col, tmp);
    });
}
/// tmp(cout_g, nb * OHW) <- the output-gradient planes of group gi of images n0 .. n0+nb.
template <class T>
void gather_output_block(const T* dy, T* tmp, const ConvGeometry& g, std::int64_t n0, std::int64_t nb, std::int64_t gi,
                         std::int64_t cout_g) {
    const std::int64_t ohw = g.out_h * g.out_w, ld = nb * ohw;
    for (std::int64_t j = 0; j < nb; ++j)
        for (std::int64_t co = 0; co < cout_g; ++co) {
            const T* src = dy + ((n0 + j) * g.out_c + gi * cout_g + co) * ohw;
            std::copy(src, src + ohw, tmp + co * ld + j * ohw);
        }
}

// ---- depthwise: one (n, c) plane at a time, through a zero-padded copy ----
// The padded plane covers exactly the rows and columns the kernel reads, so the inner loops run
// without bounds checks and vectorise. With stride 1 a plane is handled as one flat vector: the
// output is computed with the padded row width wp (the extra columns are discarded), so output
// o = oh * wp + ow reads padded input o + kh * dil * wp + kw * dil, and every kernel tap becomes
// one long contiguous axpy (or dot product) instead of OH short ones (7x7 planes matter here).

/// Rows and columns of the zero-padded input extent that a depthwise kernel reads.
inline void padded_extent(const ConvGeometry& g, std::int64_t& hp, std::int64_t& wp) {
    hp = (g.out_h - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1;
    wp = (g.out_w - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1;
}
inline bool depthwise_flat(const ConvGeometry& g) { return g.stride_h == 1 && g.stride_w == 1; }
/// Scratch a depthwise plane needs: the padded plane (+ slack read by the flat form's extra
/// columns) and, for the flat form, one (OH x wp) output-shaped plane.
inline std::int64_t depthwise_scratch(const ConvGeometry& g) {
    std::int64_t hp, wp;
    padded_extent(g, hp, wp);
    return hp * wp + wp + (depthwise_flat(g) ? g.out_h * wp : 0);
}
/// out(hp, wp) = the input plane x(H, W) shifted by the padding, zero outside the image, followed
/// by wp zeros of slack.
template <class T>
void pad_plane(const T* x, const ConvGeometry& g, std::int64_t hp, std::int64_t wp, T* out) {
    const std::int64_t c0 = std::min(wp, g.pad_w), c1 = std::min(wp, g.pad_w + g.in_w);
    for (std::int64_t r = 0; r < hp; ++r) {
        T* o = out + r * wp;
        const std::int64_t ih = r - g.pad_h;
        if (ih < 0 || ih >= g.in_h) {
            std::fill(o, o + wp, T(0));
            continue;
        }
        std::fill(o, o + c0, T(0));
        std::copy(x + ih * g.in_w, x + ih * g.in_w + (c1 - c0), o + c0);
        std::fill(o + c1, o + wp, T(0));
    }
    std::fill(out + hp * wp, out + hp * wp + wp, T(0));
}
/// y (already holding the bias) += depthwise conv of one plane; `buf` has depthwise_scratch(g).
template <class T>
void depthwise_plane_forward(const T* x, const T* w, T* y, const ConvGeometry& g, T* buf) {
    std::int64_t hp, wp;
    padded_extent(g, hp, wp);
    T* pad = buf;
    pad_plane(x, g, hp, wp, pad);
    const std::int64_t OW = g.out_w, s = g.stride_w;
    if (depthwise_flat(g)) {
        T* out = buf + hp * wp + wp;
        const std::int64_t n = g.out_h * wp;
        std::fill(out, out + n, T(0));
        for (std::int64_t kh = 0; kh < g.kh; ++kh)
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T wv = w[kh * g.kw + kw];
                const T* src = pad + kh * g.dil_h * wp + kw * g.dil_w;
#pragma omp simd
                for (std::int64_t o = 0; o < n; ++o) out[o] += wv * src[o];
            }
        for (std::int64_t oh = 0; oh < g.out_h; ++oh)
            for (std::int64_t ow = 0; ow < OW; ++ow) y[oh * OW + ow] += out[oh * wp + ow];
        return;
    }
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        T* dst = y + oh * OW;
        for (std::int64_t kh = 0; kh < g.kh; ++kh) {
            const T* row = pad + (oh * g.stride_h + kh * g.dil_h) * wp;
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T wv = w[kh * g.kw + kw];
                const T* src = row + kw * g.dil_w;
#pragma omp simd
                for (std::int64_t ow = 0; ow < OW; ++ow) dst[ow] += wv * src[ow * s];
            }
        }
    }
}
/// dx (overwritten) of one plane; `buf` has depthwise_scratch(g).
template <class T>
void depthwise_plane_backward_data(const T* dy, const T* w, T* dx, const ConvGeometry& g, T* buf) {
    std::int64_t hp, wp;
    padded_extent(g, hp, wp);
    T* pad = buf;
    std::fill(pad, pad + hp * wp + wp, T(0));
    const std::int64_t OW = g.out_w, s = g.stride_w;
    if (depthwise_flat(g)) {
        // dy laid out with row width wp; the extra columns are zero so they add nothing.
        T* dyw = buf + hp * wp + wp;
        const std::int64_t n = g.out_h * wp;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
            std::copy(dy + oh * OW, dy + (oh + 1) * OW, dyw + oh * wp);
            std::fill(dyw + oh * wp + OW, dyw + (oh + 1) * wp, T(0));
        }
        for (std::int64_t kh = 0; kh < g.kh; ++kh)
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T wv = w[kh * g.kw + kw];
                T* dst = pad + kh * g.dil_h * wp + kw * g.dil_w;
#pragma omp simd
                for (std::int64_t o = 0; o < n; ++o) dst[o] += wv * dyw[o];
            }
    } else {
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
            const T* src = dy + oh * OW;
            for (std::int64_t kh = 0; kh < g.kh; ++kh) {
                T* row = pad + (oh * g.stride_h + kh * g.dil_h) * wp;
                for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                    const T wv = w[kh * g.kw + kw];
                    T* dst = row + kw * g.dil_w;
                    for (std::int64_t ow = 0; ow < OW; ++ow) dst[ow * s] += wv * src[ow];
                }
            }
        }
    }
    // Input pixels outside the padded extent are never read: their gradient is 0.
    const std::int64_t c0 = std::min(wp, g.pad_w), c1 = std::min(wp, g.pad_w + g.in_w);
    for (std::int64_t ih = 0; ih < g.in_h; ++ih) {
        T* o = dx + ih * g.in_w;
        const std::int64_t r = ih + g.pad_h;
        if (r >= hp) {
            std::fill(o, o + g.in_w, T(0));
            continue;
        }
        std::copy(pad + r * wp + c0, pad + r * wp + c1, o);
        std::fill(o + (c1 - c0), o + g.in_w, T(0));
    }
}
/// acc(KH*KW, OW) += per-column products of dy and the padded x of one plane (the caller sums
/// the columns); the flat form adds its dot products to column 0. `buf` has depthwise_scratch(g).
template <class T>
void depthwise_plane_backward_weight(const T* x, const T* dy, T* acc, const ConvGeometry& g, T* buf) {
    std::int64_t hp, wp;
    padded_extent(g, hp, wp);
    T* pad = buf;
    pad_plane(x, g, hp, wp, pad);
    const std::int64_t OW = g.out_w, s = g.stride_w;
    if (depthwise_flat(g)) {
        T* dyw = buf + hp * wp + wp;
        const std::int64_t n = g.out_h * wp;
        for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
            std::copy(dy + oh * OW, dy + (oh + 1) * OW, dyw + oh * wp);
            std::fill(dyw + oh * wp + OW, dyw + (oh + 1) * wp, T(0));
        }
        for (std::int64_t kh = 0; kh < g.kh; ++kh)
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T* src = pad + kh * g.dil_h * wp + kw * g.dil_w;
                T sum = 0;
#pragma omp simd reduction(+ : sum)
                for (std::int64_t o = 0; o < n; ++o) sum += dyw[o] * src[o];
                acc[(kh * g.kw + kw) * OW] += sum;
            }
        return;
    }
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* d = dy + oh * OW;
        for (std::int64_t kh = 0; kh < g.kh; ++kh) {
            const T* row = pad + (oh * g.stride_h + kh * g.dil_h) * wp;
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                T* a = acc + (kh * g.kw + kw) * OW;
                const T* src = row + kw * g.dil_w;
#pragma omp simd
                for (std::int64_t ow = 0; ow < OW; ++ow) a[ow] += d[ow] * src[ow * s];
            }
        }
    }
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
    if (is_depthwise(g)) {
        parallel_for(g.batch * g.out_c, [&](std::int64_t p) {
            const std::int64_t c = p % g.out_c;
            T* yp = y + p * ohw;
            std::fill(yp, yp + ohw, bias ? bias[c] : T(0));
            depthwise_plane_forward(x + p * hw, w + c * g.kh * g.kw, yp, g,
                                    scratch<T>(static_cast<std::size_t>(depthwise_scratch(g))));
        });
        return;
    }
    const std::int64_t ipb = images_per_gemm(g);
    if (ipb > 1) {
        // Several images per GEMM: col(K, ipb*OHW) and a (Cout_g, ipb*OHW) result scattered back.
        for_each_image_block<T>(g, ipb, K, cout_g, [&](std::int64_t n0, std::int64_t nb, T* col, T* tmp) {
            const std::int64_t ld = nb * ohw;
            for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                for (std::int64_t j = 0; j < nb; ++j)
                    im2col(x + ((n0 + j) * g.in_c + gi * cin_g) * hw, cin_g, g.in_h, g.in_w, g, col + j * ohw, ld);
                gemm(cpu{}, false, false, cout_g, ld, K, w + gi * cout_g * K, col, tmp, false);
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
    if (is_depthwise(g)) {
        parallel_for(g.batch * g.out_c, [&](std::int64_t p) {
            const std::int64_t c = p % g.out_c;
            depthwise_plane_backward_data(dy + p * ohw, w + c * g.kh * g.kw, dx + p * hw, g,
                                          scratch<T>(static_cast<std::size_t>(depthwise_scratch(g))));
        });
        return;
    }
    const std::int64_t ipb = images_per_gemm(g);
    if (ipb > 1) {
        for_each_image_block<T>(g, ipb, K, cout_g, [&](std::int64_t n0, std::int64_t nb, T* col, T* tmp) {
            const std::int64_t ld = nb * ohw;
            for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                gather_output_block(dy, tmp, g, n0, nb, gi, cout_g);
                gemm(cpu{}, true, false, K, ld, cout_g, w + gi * cout_g * K, tmp, col, false);
                for (std::int64_t j = 0; j < nb; ++j) {
                    T* dxg = dx + ((n0 + j) * g.in_c + gi * cin_g) * hw;
                    std::fill(dxg, dxg + cin_g * hw, T(0));
                    col2im(col + j * ohw, cin_g, g.in_h, g.in_w, g, dxg, ld);
                }
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
    if (is_depthwise(g)) {
        // Each thread owns whole channels: no reduction across threads needed.
        parallel_for(g.out_c, [&](std::int64_t c) {
            const std::int64_t taps = g.kh * g.kw;
            T* acc = scratch<T>(static_cast<std::size_t>(taps * g.out_w), 1);
            std::fill(acc, acc + taps * g.out_w, T(0));
            T* pad = scratch<T>(static_cast<std::size_t>(depthwise_scratch(g)), 0);
            for (std::int64_t n = 0; n < g.batch; ++n) {
                const std::int64_t p = n * g.out_c + c;
                depthwise_plane_backward_weight(x + p * hw, dy + p * ohw, acc, g, pad);
            }
            for (std::int64_t t = 0; t < taps; ++t) {
                T sum = 0;
                for (std::int64_t ow = 0; ow < g.out_w; ++ow) sum += acc[t * g.out_w + ow];
                dw[c * taps + t] = sum;
            }
        });
        return;
    }
    const bool pointwise = is_pointwise(g);
    const std::int64_t ipb = images_per_gemm(g);
    const int threads = omp_in_parallel() ? 1 : std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(g.batch)));
    // Per-thread partial sums over a fixed split of the batch, then a fixed-order reduction.
    std::vector<T> partial(static_cast<std::size_t>(threads > 1 ? (threads - 1) * wsize : 0));
    auto work = [&](int t) {
        T* acc = t == 0 ? dw : partial.data() + (t - 1) * wsize;
        std::fill(acc, acc + wsize, T(0));
        const std::int64_t n0 = g.batch * t / threads, n1 = g.batch * (t + 1) / threads;
        if (ipb > 1) {
            for (std::int64_t b0 = n0; b0 < n1; b0 += ipb) {
                const std::int64_t nb = std::min(ipb, n1 - b0), ld = nb * ohw;
                T* col = scratch<T>(static_cast<std::size_t>(K * ld), 0);
                T* tmp = scratch<T>(static_cast<std::size_t>(cout_g * ld), 1);
                for (std::int64_t gi = 0; gi < g.groups; ++gi) {
                    for (std::int64_t j = 0; j < nb; ++j)
                        im2col(x + ((b0 + j) * g.in_c + gi * cin_g) * hw, cin_g, g.in_h, g.in_w, g, col + j * ohw, ld);
                    gather_output_block(dy, tmp, g, b0, nb, gi, cout_g);
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
    if (threads == 1) {
        work(0);
    } else {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (int t = 0; t < threads; ++t) work(t);
        for (int t = 1; t < threads; ++t) {
            const T* p = partial.data() + (t - 1) * wsize;
            for (std::int64_t i = 0; i < wsize; ++i) dw[i] += p[i];
        }
    }
}

}  // namespace diffautoml::backend_cpu
