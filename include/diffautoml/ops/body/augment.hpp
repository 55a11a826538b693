#pragma once
// The augmentation operations of AutoAugment / DADA on one image (C, H, W) with pixel values in
// [0, 1], forward and backward. Definitions (docs/da.md gives each equation):
//  - geometric ops are affine warps about the image centre, sampled bilinearly, with a fill
//    value outside the image; differentiable in the image and in the magnitude;
//  - colour ops follow PIL: Brightness blends with black, Contrast with the mean grey level,
//    Color with the grey image, Sharpness with the 3x3 smoothed image; results are clipped to
//    [0, 1] and differentiable in the image and the magnitude where not clipped;
//  - Solarize, Posterize, Equalize and Cutout are piecewise constant in their magnitude: their
//    magnitude gradient is the straight-through one, dL/dm = sum_p dL/dy_p (DADA's
//    y = stopgrad(T(x, m) - m) + m); Posterize and Equalize pass the image gradient straight
//    through too (dy/dx = 1), Cutout zeroes it inside the hole.
// Pixel arithmetic is per image and serial; the batch front door (augment.hpp) runs images in
// parallel. forward() and backward() and their helpers are host/device functions: the CUDA
// kernels (cuda/augment.cuh) run the same code, one thread per image for the colour ops.
// The file sits at the ops level (it needs only core/) so that both backends can include it
// without reaching up into da/; its names stay in diffautoml::da, where the policies use them,
// and da/kernels.hpp includes it for code that names the old path.
// The ops' catalogue is in augment_ops.hpp and their per-pixel helpers in augment_pixels.hpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "augment_ops.hpp"
#include "augment_pixels.hpp"

namespace diffautoml::da {
namespace kernels {

/// Scratch memory of one worker (reused across images): forward() and backward() need 2 H W doubles.
struct Scratch {
    std::vector<double> a;
    double* ensure(std::int64_t plane) {
        if (static_cast<std::int64_t>(a.size()) < 2 * plane) a.resize(static_cast<std::size_t>(2 * plane));
        return a.data();
    }
};

/// y = op(x; m) for one image of C planes H x W; x and y may not alias. work: 2 H W doubles.
template <class T>
DAM_HOST_DEVICE void forward(const OpDraw& d, double m, const T* x, T* y, std::int64_t C, std::int64_t H, std::int64_t W,
                             const AugmentOptions& o, double* work) {
    const std::int64_t P = H * W, n = C * P;
    const MagnitudeRanges& r = o.ranges;
    switch (d.op) {
        case Op::identity:
            for (std::int64_t k = 0; k < n; ++k) y[k] = x[k];
            return;
        case Op::flip_lr:
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t i = 0; i < H; ++i)
                    for (std::int64_t j = 0; j < W; ++j) y[c * P + i * W + j] = x[c * P + i * W + (W - 1 - j)];
            return;
        case Op::shear_x:
        case Op::shear_y:
        case Op::translate_x:
        case Op::translate_y:
        case Op::rotate: {
            const Affine A = affine_of(d.op, m, d.sign, H, W, r);
            for (std::int64_t i = 0; i < H; ++i)
                for (std::int64_t j = 0; j < W; ++j)
                    for (std::int64_t c = 0; c < C; ++c)
                        y[c * P + i * W + j] = static_cast<T>(warp_pixel(x + c * P, H, W, A, i, j, o.fill, nullptr));
            return;
        }
        case Op::auto_contrast:
            for (std::int64_t c = 0; c < C; ++c) {
                const T* xc = x + c * P;
                std::int64_t lo = 0, hi = 0;
                minmax_index(xc, P, lo, hi);
                const double l = static_cast<double>(xc[lo]), range = static_cast<double>(xc[hi]) - l;
                for (std::int64_t p = 0; p < P; ++p)
                    y[c * P + p] = range > 0 ? static_cast<T>((static_cast<double>(xc[p]) - l) / range) : xc[p];
            }
            return;
        case Op::invert:
            for (std::int64_t k = 0; k < n; ++k) y[k] = static_cast<T>(1.0 - static_cast<double>(x[k]));
            return;
        case Op::equalize:
            for (std::int64_t c = 0; c < C; ++c) {
                std::int64_t h[256] = {};
                int lut[256];
                for (std::int64_t p = 0; p < P; ++p) ++h[level8(static_cast<double>(x[c * P + p]))];
                equalize_lut(h, lut);
                for (std::int64_t p = 0; p < P; ++p) y[c * P + p] = static_cast<T>(lut[level8(static_cast<double>(x[c * P + p]))] / 255.0);
            }
            return;
        case Op::solarize: {
            const double threshold = 256.0 * (1.0 - r.solarize * m);
            for (std::int64_t k = 0; k < n; ++k) {
                const double v = static_cast<double>(x[k]);
                y[k] = static_cast<T>(v * 255.0 >= threshold ? 1.0 - v : v);
            }
            return;
        }
        case Op::posterize: {
            const int bits = posterize_bits(m, r);
            const int mask = (0xFF << (8 - bits)) & 0xFF;
            for (std::int64_t k = 0; k < n; ++k) y[k] = static_cast<T>((level8(static_cast<double>(x[k])) & mask) / 255.0);
            return;
        }
        case Op::contrast: {
            const double f = enhance_factor(m, d.sign, r);
            const double mean = mean_grey(x, C, P);
            for (std::int64_t k = 0; k < n; ++k) y[k] = static_cast<T>(clip01(mean + f * (static_cast<double>(x[k]) - mean)));
            return;
        }
        case Op::color: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t p = 0; p < P; ++p) {
                double g = 0;
                for (std::int64_t c = 0; c < C; ++c) g += grey_weight(c, C) * static_cast<double>(x[c * P + p]);
                for (std::int64_t c = 0; c < C; ++c)
                    y[c * P + p] = static_cast<T>(clip01(g + f * (static_cast<double>(x[c * P + p]) - g)));
            }
            return;
        }
        case Op::brightness: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t k = 0; k < n; ++k) y[k] = static_cast<T>(clip01(f * static_cast<double>(x[k])));
            return;
        }
        case Op::sharpness: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t c = 0; c < C; ++c) {
                smooth_plane(x + c * P, work, H, W);
                for (std::int64_t p = 0; p < P; ++p) {
                    const double b = work[p];
                    y[c * P + p] = static_cast<T>(clip01(b + f * (static_cast<double>(x[c * P + p]) - b)));
                }
            }
            return;
        }
        case Op::cutout: {
            for (std::int64_t k = 0; k < n; ++k) y[k] = x[k];
            const Hole h = cutout_hole(m, d, H, W, r);
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t i = h.y0; i < h.y1; ++i)
                    for (std::int64_t j = h.x0; j < h.x1; ++j) y[c * P + i * W + j] = static_cast<T>(o.fill);
            return;
        }
    }
}

/// Backward of forward(): adds dL/dx to gx (when not null) and returns dL/dm, given gy = dL/dy.
/// work: 2 H W doubles.
template <class T>
DAM_HOST_DEVICE double backward(const OpDraw& d, double m, const T* x, const T* gy, T* gx, std::int64_t C, std::int64_t H,
                                std::int64_t W, const AugmentOptions& o, MagnitudeGradient mode, double* work) {
    const std::int64_t P = H * W, n = C * P;
    const MagnitudeRanges& r = o.ranges;
    double sum_g = 0;
    for (std::int64_t k = 0; k < n; ++k) sum_g += static_cast<double>(gy[k]);
    const bool straight = mode == MagnitudeGradient::straight_through ||
                          (op_has_magnitude(d.op) && !op_magnitude_differentiable(d.op));
    double gm = 0;
    switch (d.op) {
        case Op::identity:
        case Op::posterize:
        case Op::equalize:
            if (gx)
                for (std::int64_t k = 0; k < n; ++k) gx[k] += gy[k];
            break;
        case Op::flip_lr:
            if (gx)
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t i = 0; i < H; ++i)
                        for (std::int64_t j = 0; j < W; ++j) gx[c * P + i * W + (W - 1 - j)] += gy[c * P + i * W + j];
            break;
        case Op::shear_x:
        case Op::shear_y:
        case Op::translate_x:
        case Op::translate_y:
        case Op::rotate: {
            const Affine A = affine_of(d.op, m, d.sign, H, W, r);
            for (std::int64_t i = 0; i < H; ++i)
                for (std::int64_t j = 0; j < W; ++j) {
                    const Source src = source_of(A, i, j, H, W);
                    for (std::int64_t c = 0; c < C; ++c) {
                        const double g = static_cast<double>(gy[c * P + i * W + j]);
                        double dm = 0;
                        warp_pixel(x + c * P, H, W, A, i, j, o.fill, &dm);
                        gm += g * dm;
                        if (gx) bilinear_scatter(gx + c * P, H, W, src.xs, src.ys, g);
                    }
                }
            break;
        }
        case Op::auto_contrast:
            if (gx)
                for (std::int64_t c = 0; c < C; ++c) {
                    const T* xc = x + c * P;
                    const T* gc = gy + c * P;
                    std::int64_t lo = 0, hi = 0;
                    minmax_index(xc, P, lo, hi);
                    const double l = static_cast<double>(xc[lo]), h = static_cast<double>(xc[hi]), range = h - l;
                    if (!(range > 0)) {
                        for (std::int64_t p = 0; p < P; ++p) gx[c * P + p] += gc[p];
                        continue;
                    }
                    // y = (x - lo) / (hi - lo): lo and hi are the first minimum and maximum.
                    double glo = 0, ghi = 0;
                    for (std::int64_t p = 0; p < P; ++p) {
                        const double g = static_cast<double>(gc[p]), v = static_cast<double>(xc[p]);
                        gx[c * P + p] += static_cast<T>(g / range);
                        glo += g * (v - h) / (range * range);
                        ghi -= g * (v - l) / (range * range);
                    }
                    gx[c * P + lo] += static_cast<T>(glo);
                    gx[c * P + hi] += static_cast<T>(ghi);
                }
            break;
        case Op::invert:
            if (gx)
                for (std::int64_t k = 0; k < n; ++k) gx[k] -= gy[k];
            break;
        case Op::solarize:
            if (gx) {
                const double threshold = 256.0 * (1.0 - r.solarize * m);
                for (std::int64_t k = 0; k < n; ++k)
                    gx[k] += static_cast<double>(x[k]) * 255.0 >= threshold ? -gy[k] : gy[k];
            }
            break;
        case Op::contrast: {
            const double f = enhance_factor(m, d.sign, r);
            const double mean = mean_grey(x, C, P);
            double s_in = 0;  // sum of dL/dy over unclipped outputs
            for (std::int64_t k = 0; k < n; ++k) {
                const double v = static_cast<double>(x[k]);
                if (!inside01(mean + f * (v - mean))) continue;
                const double g = static_cast<double>(gy[k]);
                s_in += g;
                gm += g * (v - mean);
                if (gx) gx[k] += static_cast<T>(f * g);
            }
            gm *= d.sign * r.enhance;
            if (gx)
                for (std::int64_t c = 0; c < C; ++c) {
                    const double add = (1 - f) * grey_weight(c, C) / static_cast<double>(P) * s_in;
                    for (std::int64_t p = 0; p < P; ++p) gx[c * P + p] += static_cast<T>(add);
                }
            break;
        }
        case Op::color: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t p = 0; p < P; ++p) {
                double g = 0;
                for (std::int64_t c = 0; c < C; ++c) g += grey_weight(c, C) * static_cast<double>(x[c * P + p]);
                double s_in = 0;
                for (std::int64_t c = 0; c < C; ++c) {
                    const double v = static_cast<double>(x[c * P + p]);
                    if (!inside01(g + f * (v - g))) continue;
                    const double gg = static_cast<double>(gy[c * P + p]);
                    s_in += gg;
                    gm += gg * (v - g);
                    if (gx) gx[c * P + p] += static_cast<T>(f * gg);
                }
                if (gx)
                    for (std::int64_t c = 0; c < C; ++c) gx[c * P + p] += static_cast<T>((1 - f) * grey_weight(c, C) * s_in);
            }
            gm *= d.sign * r.enhance;
            break;
        }
        case Op::brightness: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t k = 0; k < n; ++k) {
                const double v = static_cast<double>(x[k]);
                if (!inside01(f * v)) continue;
                const double g = static_cast<double>(gy[k]);
                gm += g * v;
                if (gx) gx[k] += static_cast<T>(f * g);
            }
            gm *= d.sign * r.enhance;
            break;
        }
        case Op::sharpness: {
            const double f = enhance_factor(m, d.sign, r);
            for (std::int64_t c = 0; c < C; ++c) {
                double* b = work;
                double* gin = work + P;  // dL/dy on unclipped outputs
                smooth_plane(x + c * P, b, H, W);
                for (std::int64_t p = 0; p < P; ++p) {
                    const double v = static_cast<double>(x[c * P + p]);
                    const double g = inside01(b[p] + f * (v - b[p])) ? static_cast<double>(gy[c * P + p]) : 0.0;
                    gin[p] = g;
                    gm += g * (v - b[p]);
                }
                if (!gx) continue;
                // y = (1 - f) b + f x, and b = S x with the symmetric smoothing S (identity on the border).
                T* gxc = gx + c * P;
                for (std::int64_t i = 0; i < H; ++i)
                    for (std::int64_t j = 0; j < W; ++j) {
                        const std::int64_t p = i * W + j;
                        gxc[p] += static_cast<T>(f * gin[p]);
                        if (i == 0 || j == 0 || i == H - 1 || j == W - 1) {
                            gxc[p] += static_cast<T>((1 - f) * gin[p]);
                            continue;
                        }
                        const double w = (1 - f) * gin[p] / 13.0;
                        for (int di = -1; di <= 1; ++di)
                            for (int dj = -1; dj <= 1; ++dj) gxc[(i + di) * W + j + dj] += static_cast<T>(w);
                        gxc[p] += static_cast<T>(4.0 * w);
                    }
            }
            gm *= d.sign * r.enhance;
            break;
        }
        case Op::cutout:
            if (gx) {
                const Hole h = cutout_hole(m, d, H, W, r);
                for (std::int64_t c = 0; c < C; ++c)
                    for (std::int64_t i = 0; i < H; ++i)
                        for (std::int64_t j = 0; j < W; ++j) {
                            const bool hole = i >= h.y0 && i < h.y1 && j >= h.x0 && j < h.x1;
                            if (!hole) gx[c * P + i * W + j] += gy[c * P + i * W + j];
                        }
            }
            break;
    }
    if (straight) return sum_g;
    return op_has_magnitude(d.op) ? gm : 0.0;
}

/// forward() with a worker's scratch.
template <class T>
void forward(const OpDraw& d, double m, const T* x, T* y, std::int64_t C, std::int64_t H, std::int64_t W,
             const AugmentOptions& o, Scratch& s) {
    forward(d, m, x, y, C, H, W, o, s.ensure(H * W));
}
/// backward() with a worker's scratch.
template <class T>
double backward(const OpDraw& d, double m, const T* x, const T* gy, T* gx, std::int64_t C, std::int64_t H, std::int64_t W,
                const AugmentOptions& o, MagnitudeGradient mode, Scratch& s) {
    return backward(d, m, x, gy, gx, C, H, W, o, mode, s.ensure(H * W));
}

}  // namespace kernels
}  // namespace diffautoml::da
