#pragma once
// CPU depthwise conv2d (groups == in_c == out_c), vectorised across images.
//
// A depthwise plane is small (7x7 to 28x28 here) and a stride-2 plane is read with a stride, so
// vectorising along a row gives short or strided vectors. Instead, 16 images of one channel are
// interleaved: buffer element (r, col, j) holds pixel (r, col) of image n0 + j. Every kernel tap
// then becomes one contiguous 16-lane multiply-add with a scalar weight, whatever the stride,
// dilation or plane size, and several outputs (forward) or taps (weight gradient) are kept in
// registers across the taps. The padded buffer covers exactly the rows and columns a kernel
// reads, zero outside the image and in lanes past the end of the batch, so no loop needs a bounds
// check. Results do not depend on the thread count: each (channel, image group) is computed by
// one thread, and the weight gradient of a channel sums its lanes and groups in a fixed order.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../../core/parallel.hpp"
#include "../conv_params.hpp"
#include "scratch.hpp"

namespace diffautoml::backend_cpu::depthwise {

/// Images per interleaved group (the vector width of every inner loop).
inline constexpr std::int64_t lanes = 16;

inline bool applies(const ConvGeometry& g) { return g.groups == g.in_c && g.groups == g.out_c; }

namespace detail {

struct Scratch;  ///< tag of this file's per-thread buffers
template <class T>
T* buffer(std::size_t n, int slot) {
    return thread_scratch<Scratch, 3, T>(n, slot);
}

/// Rows and columns of the zero-padded input extent that the kernel reads.
struct Padded {
    std::int64_t hp, wp;
    explicit Padded(const ConvGeometry& g) : hp(g.padded_rows_read()), wp(g.padded_cols_read()) {}
    std::int64_t size() const { return hp * wp * lanes; }
    /// Input rows/columns that land inside the extent (the rest is never read; with a padding
    /// larger than the extent, none is).
    std::int64_t rows(const ConvGeometry& g) const { return std::clamp<std::int64_t>(hp - g.pad_h, 0, g.in_h); }
    std::int64_t cols(const ConvGeometry& g) const { return std::clamp<std::int64_t>(wp - g.pad_w, 0, g.in_w); }
};

inline std::int64_t groups_of(const ConvGeometry& g) { return (g.batch + lanes - 1) / lanes; }

/// buf(hp, wp, lanes) = channel c of images [n0, n0 + lanes) of a(N, C, H, W) shifted by the
/// padding; zero outside the images and in lanes past the batch.
template <class T>
void gather_input(const T* a, const ConvGeometry& g, const Padded& p, std::int64_t c, std::int64_t n0, T* buf) {
    const std::int64_t nb = std::min(lanes, g.batch - n0), rows = p.rows(g), cols = p.cols(g);
    const std::int64_t hw = g.in_h * g.in_w;
    const T* plane = a + (n0 * g.in_c + c) * hw;
    const std::int64_t next = g.in_c * hw;  // from one image's plane to the next image's
    const std::int64_t top = std::min(g.pad_h, p.hp), left = std::min(g.pad_w, p.wp);
    auto zero = [&](std::int64_t from, std::int64_t to) { std::fill(buf + from * lanes, buf + to * lanes, T(0)); };
    zero(0, top * p.wp);
    for (std::int64_t ih = 0; ih < rows; ++ih) {
        const std::int64_t r = ih + g.pad_h;
        zero(r * p.wp, r * p.wp + left);
        for (std::int64_t iw = 0; iw < cols; ++iw) {
            T* dst = buf + (r * p.wp + g.pad_w + iw) * lanes;
            const T* src = plane + ih * g.in_w + iw;
            std::int64_t j = 0;
            for (; j < nb; ++j) dst[j] = src[j * next];
            for (; j < lanes; ++j) dst[j] = T(0);
        }
        zero(r * p.wp + left + cols, (r + 1) * p.wp);
    }
    zero((top + rows) * p.wp, p.hp * p.wp);
}

/// buf(OH, OW, lanes) = channel c of images [n0, n0 + lanes) of d(N, C, OH, OW), zero lanes past
/// the batch.
template <class T>
void gather_output(const T* d, const ConvGeometry& g, std::int64_t c, std::int64_t n0, T* buf) {
    const std::int64_t ohw = g.out_h * g.out_w, nb = std::min(lanes, g.batch - n0), next = g.out_c * ohw;
    const T* src = d + (n0 * g.out_c + c) * ohw;
    for (std::int64_t i = 0; i < ohw; ++i) {
        T* dst = buf + i * lanes;
        std::int64_t j = 0;
        for (; j < nb; ++j) dst[j] = src[i + j * next];
        for (; j < lanes; ++j) dst[j] = T(0);
    }
}

/// out(lanes) for B outputs starting at `in` (the padded buffer at the first output's top-left
/// tap), each B outputs apart by the stride: sum over the taps of w[tap] * in[tap offset].
template <int B, class T>
inline void forward_outputs(const T* in, const T* wc, const ConvGeometry& g, std::int64_t wp, T b0, T* out) {
    T acc[B][lanes];
    for (int b = 0; b < B; ++b)
        for (std::int64_t j = 0; j < lanes; ++j) acc[b][j] = b0;
    const std::int64_t step = g.stride_w * lanes;
    for (std::int64_t kh = 0; kh < g.kh; ++kh) {
        const T* row = in + kh * g.dil_h * wp * lanes;
        for (std::int64_t kw = 0; kw < g.kw; ++kw) {
            const T wv = wc[kh * g.kw + kw];
            const T* s = row + kw * g.dil_w * lanes;
            for (int b = 0; b < B; ++b)
#pragma omp simd
                for (std::int64_t j = 0; j < lanes; ++j) acc[b][j] += wv * s[b * step + j];
        }
    }
    for (int b = 0; b < B; ++b)
        for (std::int64_t j = 0; j < lanes; ++j) out[b * lanes + j] = acc[b][j];
}

/// out(OH, OW, lanes) = depthwise conv of the padded buffer with the channel's kernel, + bias.
template <class T>
void forward_group(const T* buf, const T* wc, T bias, const ConvGeometry& g, const Padded& p, T* out) {
    // Up to 7 outputs of a row at once: a 7-wide row (the main job's 7x7 planes) in one pass.
    constexpr int B = 7;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* in = buf + oh * g.stride_h * p.wp * lanes;
        T* o = out + oh * g.out_w * lanes;
        std::int64_t ow = 0;
        auto run = [&]<int N>() { forward_outputs<N>(in + ow * g.stride_w * lanes, wc, g, p.wp, bias, o + ow * lanes); };
        for (; ow + B <= g.out_w; ow += B) run.template operator()<B>();
        switch (g.out_w - ow) {
            case 6: run.template operator()<6>(); break;
            case 5: run.template operator()<5>(); break;
            case 4: run.template operator()<4>(); break;
            case 3: run.template operator()<3>(); break;
            case 2: run.template operator()<2>(); break;
            case 1: run.template operator()<1>(); break;
            default: break;
        }
    }
}

/// acc[q] (lanes each) += sum over outputs of dy * x at tap (kh, kw0 + q), q < Q.
template <int Q, class T>
inline void weight_taps(const T* xbuf, const T* dybuf, const ConvGeometry& g, std::int64_t wp, std::int64_t kh,
                        std::int64_t kw0, T* acc) {
    T a[Q][lanes];
    for (int q = 0; q < Q; ++q)
        for (std::int64_t j = 0; j < lanes; ++j) a[q][j] = acc[q * lanes + j];
    const std::int64_t tap_step = g.dil_w * lanes;
    for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        const T* row = xbuf + ((oh * g.stride_h + kh * g.dil_h) * wp + kw0 * g.dil_w) * lanes;
        const T* d = dybuf + oh * g.out_w * lanes;
        for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
            const T* s = row + ow * g.stride_w * lanes;
            const T* dv = d + ow * lanes;
            for (int q = 0; q < Q; ++q)
#pragma omp simd
                for (std::int64_t j = 0; j < lanes; ++j) a[q][j] += dv[j] * s[q * tap_step + j];
        }
    }
    for (int q = 0; q < Q; ++q)
        for (std::int64_t j = 0; j < lanes; ++j) acc[q * lanes + j] = a[q][j];
}

/// acc(KH * KW, lanes) += per-lane weight gradient of one image group.
template <class T>
void weight_group(const T* xbuf, const T* dybuf, const ConvGeometry& g, const Padded& p, T* acc) {
    constexpr std::int64_t Q = 4;
    for (std::int64_t kh = 0; kh < g.kh; ++kh) {
        std::int64_t kw = 0;
        for (; kw + Q <= g.kw; kw += Q) weight_taps<Q>(xbuf, dybuf, g, p.wp, kh, kw, acc + (kh * g.kw + kw) * lanes);
        T* a = acc + (kh * g.kw + kw) * lanes;
        switch (g.kw - kw) {
            case 3: weight_taps<3>(xbuf, dybuf, g, p.wp, kh, kw, a); break;
            case 2: weight_taps<2>(xbuf, dybuf, g, p.wp, kh, kw, a); break;
            case 1: weight_taps<1>(xbuf, dybuf, g, p.wp, kh, kw, a); break;
            default: break;
        }
    }
}

/// dxpad(hp, wp, lanes) = transposed depthwise conv of dy(OH, OW, lanes): each output's gradient
/// spread over the inputs its taps read.
template <class T>
void backward_data_group(const T* dybuf, const T* wc, const ConvGeometry& g, const Padded& p, T* dxpad) {
    std::fill(dxpad, dxpad + p.size(), T(0));
    for (std::int64_t oh = 0; oh < g.out_h; ++oh)
        for (std::int64_t kh = 0; kh < g.kh; ++kh) {
            T* row = dxpad + (oh * g.stride_h + kh * g.dil_h) * p.wp * lanes;
            const T* d = dybuf + oh * g.out_w * lanes;
            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                const T wv = wc[kh * g.kw + kw];
                T* r = row + kw * g.dil_w * lanes;
                for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
                    T* dst = r + ow * g.stride_w * lanes;
                    const T* dv = d + ow * lanes;
#pragma omp simd
                    for (std::int64_t j = 0; j < lanes; ++j) dst[j] += wv * dv[j];
                }
            }
        }
}

}  // namespace detail

/// y(N, C, OH, OW) = depthwise conv(x(N, C, H, W), w(C, 1, KH, KW)) + bias (may be null).
template <class T>
void forward(const T* x, const T* w, const T* bias, T* y, const ConvGeometry& g) {
    using namespace detail;
    const Padded p(g);
    const std::int64_t ohw = g.out_h * g.out_w, groups = groups_of(g), taps = g.kh * g.kw;
    parallel_for(g.out_c * groups, [&](std::int64_t i) {
        const std::int64_t c = i / groups, n0 = (i % groups) * lanes, nb = std::min(lanes, g.batch - n0);
        T* buf = buffer<T>(static_cast<std::size_t>(p.size()), 0);
        T* out = buffer<T>(static_cast<std::size_t>(ohw * lanes), 1);
        gather_input(x, g, p, c, n0, buf);
        forward_group(buf, w + c * taps, bias ? bias[c] : T(0), g, p, out);
        for (std::int64_t j = 0; j < nb; ++j) {
            T* dst = y + ((n0 + j) * g.out_c + c) * ohw;
            for (std::int64_t o = 0; o < ohw; ++o) dst[o] = out[o * lanes + j];
        }
    });
}

/// dx(N, C, H, W) = transposed depthwise conv of dy with w. Overwrites dx.
template <class T>
void backward_data(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
    using namespace detail;
    const std::int64_t taps = g.kh * g.kw;
    // Stride 1: the transposed convolution is the forward convolution of dy with the kernel
    // flipped and padding (K - 1) dil - pad, whose outputs stay in registers across the taps; the
    // scatter below loads and stores the gradient buffer at every tap (2.3x the forward's time in
    // the shuffle network's profile).
    if (g.stride_h == 1 && g.stride_w == 1 && (g.kh - 1) * g.dil_h >= g.pad_h && (g.kw - 1) * g.dil_w >= g.pad_w) {
        ConvGeometry t = g;
        t.in_h = g.out_h;
        t.in_w = g.out_w;
        t.out_h = g.in_h;
        t.out_w = g.in_w;
        t.pad_h = (g.kh - 1) * g.dil_h - g.pad_h;
        t.pad_w = (g.kw - 1) * g.dil_w - g.pad_w;
        std::vector<T> flipped(static_cast<std::size_t>(g.out_c * taps));
        for (std::int64_t c = 0; c < g.out_c; ++c)
            for (std::int64_t k = 0; k < taps; ++k) flipped[static_cast<std::size_t>(c * taps + taps - 1 - k)] = w[c * taps + k];
        forward(dy, flipped.data(), static_cast<const T*>(nullptr), dx, t);
        return;
    }
    const Padded p(g);
    const std::int64_t ohw = g.out_h * g.out_w, groups = groups_of(g);
    const std::int64_t rows = p.rows(g), cols = p.cols(g);
    parallel_for(g.out_c * groups, [&](std::int64_t i) {
        const std::int64_t c = i / groups, n0 = (i % groups) * lanes, nb = std::min(lanes, g.batch - n0);
        T* dybuf = buffer<T>(static_cast<std::size_t>(ohw * lanes), 1);
        T* dxpad = buffer<T>(static_cast<std::size_t>(p.size()), 0);
        gather_output(dy, g, c, n0, dybuf);
        backward_data_group(dybuf, w + c * taps, g, p, dxpad);
        // Input pixels outside the padded extent are never read: their gradient is 0.
        for (std::int64_t j = 0; j < nb; ++j) {
            T* dst = dx + ((n0 + j) * g.in_c + c) * g.in_h * g.in_w;
            for (std::int64_t ih = 0; ih < rows; ++ih) {
                const T* src = dxpad + ((ih + g.pad_h) * p.wp + g.pad_w) * lanes + j;
                T* row = dst + ih * g.in_w;
                for (std::int64_t iw = 0; iw < cols; ++iw) row[iw] = src[iw * lanes];
                std::fill(row + cols, row + g.in_w, T(0));
            }
            std::fill(dst + rows * g.in_w, dst + g.in_h * g.in_w, T(0));
        }
    });
}

/// dw(C, 1, KH, KW) = correlation of x and dy over the batch. Overwrites dw.
template <class T>
void backward_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
    using namespace detail;
    const Padded p(g);
    const std::int64_t ohw = g.out_h * g.out_w, groups = groups_of(g), taps = g.kh * g.kw;
    // Each thread owns whole channels: no reduction across threads.
    parallel_for(g.out_c, [&](std::int64_t c) {
        T* xbuf = buffer<T>(static_cast<std::size_t>(p.size()), 0);
        T* dybuf = buffer<T>(static_cast<std::size_t>(ohw * lanes), 1);
        T* acc = buffer<T>(static_cast<std::size_t>(taps * lanes), 2);
        std::fill(acc, acc + taps * lanes, T(0));
        for (std::int64_t gi = 0; gi < groups; ++gi) {
            gather_input(x, g, p, c, gi * lanes, xbuf);
            gather_output(dy, g, c, gi * lanes, dybuf);
            weight_group(xbuf, dybuf, g, p, acc);
        }
        for (std::int64_t t = 0; t < taps; ++t) {
            T s = 0;
            for (std::int64_t j = 0; j < lanes; ++j) s += acc[t * lanes + j];
            dw[c * taps + t] = s;
        }
    });
}

}  // namespace diffautoml::backend_cpu::depthwise
