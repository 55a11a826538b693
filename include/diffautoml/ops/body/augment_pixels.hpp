#pragma once
// The per-pixel helpers of the augmentation ops, host/device functions that the CPU loops and the
// CUDA kernels share: 8-bit levels, grey weights, the affine warp about the image centre and its
// magnitude derivative, bilinear sampling and its scatter, PIL's enhance factor, smoothing,
// equalize table, posterize bits and the Cutout hole (docs/da.md gives each definition).
#include <array>
#include <cmath>
#include <cstdint>

#include "augment_ops.hpp"

namespace diffautoml::da {
namespace kernels {

DAM_HOST_DEVICE inline double clip01(double v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }
DAM_HOST_DEVICE inline bool inside01(double v) { return v >= 0 && v <= 1; }
/// The 8-bit level of a pixel value (NaN maps to 0 so that it can never index out of a table).
DAM_HOST_DEVICE inline int level8(double x) {
    const double v = std::floor(x * 255.0 + 0.5);
    return v > 0 ? (v > 255 ? 255 : static_cast<int>(v)) : 0;
}
/// ITU-R 601 luma weights (PIL's "L" conversion); one channel is its own grey, other channel
/// counts average.
DAM_HOST_DEVICE inline double grey_weight(std::int64_t c, std::int64_t C) {
    if (C == 3) return c == 0 ? 0.299 : (c == 1 ? 0.587 : 0.114);
    return 1.0 / static_cast<double>(C);
}

/// An affine map from output to input coordinates, both centred on the image centre:
/// (xs, ys) = (a X + b Y + c, d X + e Y + f), and its derivative in the magnitude.
struct Affine {
    double a = 1, b = 0, c = 0, d = 0, e = 1, f = 0;
    double da = 0, db = 0, dc = 0, dd = 0, de = 0, df = 0;
};

DAM_HOST_DEVICE inline Affine affine_of(Op op, double m, int sign, std::int64_t H, std::int64_t W, const MagnitudeRanges& r) {
    Affine A;
    const double s = static_cast<double>(sign);
    switch (op) {
        case Op::shear_x: A.b = s * r.shear * m; A.db = s * r.shear; break;
        case Op::shear_y: A.d = s * r.shear * m; A.dd = s * r.shear; break;
        case Op::translate_x: {
            const double k = s * r.translate * static_cast<double>(W);
            A.c = k * m;
            A.dc = k;
            break;
        }
        case Op::translate_y: {
            const double k = s * r.translate * static_cast<double>(H);
            A.f = k * m;
            A.df = k;
            break;
        }
        case Op::rotate: {
            // Counter-clockwise on screen (y grows downwards): the output pixel at angle phi reads
            // the input at phi - theta.
            const double k = s * r.rotate_degrees * 3.14159265358979323846 / 180.0, th = k * m;
            const double cs = std::cos(th), sn = std::sin(th);
            A.a = cs; A.b = -sn; A.d = sn; A.e = cs;
            A.da = -sn * k; A.db = -cs * k; A.dd = cs * k; A.de = -sn * k;
            break;
        }
        default: break;
    }
    return A;
}

/// Bilinear sample of plane p (H, W) at pixel-index coordinates (xs, ys) with `fill` outside,
/// and its partial derivatives in xs and ys.
template <class T>
DAM_HOST_DEVICE inline double bilinear(const T* p, std::int64_t H, std::int64_t W, double xs, double ys, double fill,
                                       double* dxs, double* dys) {
    const double fx = std::floor(xs), fy = std::floor(ys);
    const auto x0 = static_cast<std::int64_t>(fx), y0 = static_cast<std::int64_t>(fy);
    const double wx = xs - fx, wy = ys - fy;
    auto at = [&](std::int64_t yy, std::int64_t xx) -> double {
        return (yy >= 0 && yy < H && xx >= 0 && xx < W) ? static_cast<double>(p[yy * W + xx]) : fill;
    };
    const double p00 = at(y0, x0), p01 = at(y0, x0 + 1), p10 = at(y0 + 1, x0), p11 = at(y0 + 1, x0 + 1);
    if (dxs) *dxs = (1 - wy) * (p01 - p00) + wy * (p11 - p10);
    if (dys) *dys = (1 - wx) * (p10 - p00) + wx * (p11 - p01);
    return (1 - wy) * ((1 - wx) * p00 + wx * p01) + wy * ((1 - wx) * p10 + wx * p11);
}

/// Plain `*p += v`: the scatter's adder on one thread (the CUDA kernels pass an atomic one).
struct PlainAdd {
    template <class T>
    DAM_HOST_DEVICE void operator()(T* p, T v) const { *p += v; }
};

/// Adds g times the bilinear weights of (xs, ys) to the in-image neighbours of plane gp.
template <class T, class Add = PlainAdd>
DAM_HOST_DEVICE inline void bilinear_scatter(T* gp, std::int64_t H, std::int64_t W, double xs, double ys, double g,
                                             Add add = {}) {
    const double fx = std::floor(xs), fy = std::floor(ys);
    const auto x0 = static_cast<std::int64_t>(fx), y0 = static_cast<std::int64_t>(fy);
    const double wx = xs - fx, wy = ys - fy;
    auto put = [&](std::int64_t yy, std::int64_t xx, double w) {
        if (yy >= 0 && yy < H && xx >= 0 && xx < W) add(gp + yy * W + xx, static_cast<T>(g * w));
    };
    put(y0, x0, (1 - wy) * (1 - wx));
    put(y0, x0 + 1, (1 - wy) * wx);
    put(y0 + 1, x0, wy * (1 - wx));
    put(y0 + 1, x0 + 1, wy * wx);
}

/// The input coordinates that output pixel (i, j) reads under A, and their derivatives in m.
struct Source {
    double xs, ys, dxs_dm, dys_dm;
};
DAM_HOST_DEVICE inline Source source_of(const Affine& A, std::int64_t i, std::int64_t j, std::int64_t H, std::int64_t W) {
    const double cx = static_cast<double>(W) * 0.5, cy = static_cast<double>(H) * 0.5;
    const double X = static_cast<double>(j) + 0.5 - cx, Y = static_cast<double>(i) + 0.5 - cy;
    return {A.a * X + A.b * Y + A.c + cx - 0.5, A.d * X + A.e * Y + A.f + cy - 0.5, A.da * X + A.db * Y + A.dc,
            A.dd * X + A.de * Y + A.df};
}

/// Output pixel (i, j) of a geometric op on plane x: its value, and in *dm (when not null) its
/// derivative in the magnitude. One body for the CPU loops and the CUDA threads.
template <class T>
DAM_HOST_DEVICE inline double warp_pixel(const T* x, std::int64_t H, std::int64_t W, const Affine& A, std::int64_t i,
                                         std::int64_t j, double fill, double* dm) {
    const Source src = source_of(A, i, j, H, W);
    double dxs = 0, dys = 0;
    const double v = bilinear(x, H, W, src.xs, src.ys, fill, dm ? &dxs : nullptr, dm ? &dys : nullptr);
    if (dm) *dm = dxs * src.dxs_dm + dys * src.dys_dm;
    return v;
}

DAM_HOST_DEVICE inline bool is_geometric(Op op) {
    return op == Op::shear_x || op == Op::shear_y || op == Op::translate_x || op == Op::translate_y || op == Op::rotate;
}

/// Whether the op reads its magnitude, and whether it is differentiable in it (kOpInfo, as a
/// switch so that device code can ask).
DAM_HOST_DEVICE constexpr bool op_has_magnitude(Op op) {
    switch (op) {
        case Op::identity:
        case Op::flip_lr:
        case Op::auto_contrast:
        case Op::invert:
        case Op::equalize: return false;
        default: return true;
    }
}
DAM_HOST_DEVICE constexpr bool op_magnitude_differentiable(Op op) {
    return op_has_magnitude(op) && op != Op::solarize && op != Op::posterize && op != Op::cutout;
}

/// The PIL enhance factor and its derivative in m.
DAM_HOST_DEVICE inline double enhance_factor(double m, int sign, const MagnitudeRanges& r) { return 1.0 + sign * r.enhance * m; }

/// The 3x3 smoothing of PIL's ImageFilter.SMOOTH ([[1,1,1],[1,5,1],[1,1,1]] / 13) on the interior;
/// border pixels keep their value, as in PIL's Sharpness.
template <class T>
DAM_HOST_DEVICE void smooth_plane(const T* x, double* b, std::int64_t H, std::int64_t W) {
    for (std::int64_t i = 0; i < H; ++i)
        for (std::int64_t j = 0; j < W; ++j) {
            if (i == 0 || j == 0 || i == H - 1 || j == W - 1) {
                b[i * W + j] = static_cast<double>(x[i * W + j]);
                continue;
            }
            double s = 4.0 * static_cast<double>(x[i * W + j]);
            for (int di = -1; di <= 1; ++di)
                for (int dj = -1; dj <= 1; ++dj) s += static_cast<double>(x[(i + di) * W + j + dj]);
            b[i * W + j] = s / 13.0;
        }
}

/// PIL's ImageOps.equalize lookup table for one band from its 256-bin histogram h.
DAM_HOST_DEVICE inline void equalize_lut(const std::int64_t* h, int* lut) {
    for (int i = 0; i < 256; ++i) lut[i] = i;
    std::int64_t total = 0, last = 0, nonzero = 0;
    for (int i = 0; i < 256; ++i)
        if (h[i]) {
            total += h[i];
            last = h[i];
            ++nonzero;
        }
    if (nonzero <= 1) return;
    const std::int64_t step = (total - last) / 255;
    if (step == 0) return;
    std::int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
        lut[i] = static_cast<int>(n / step < 255 ? n / step : 255);
        n += h[i];
    }
}
inline std::array<int, 256> equalize_lut(const std::array<std::int64_t, 256>& h) {
    std::array<int, 256> lut{};
    equalize_lut(h.data(), lut.data());
    return lut;
}

/// Bits kept by Posterize at magnitude m (8 - round(m range), rounding halves away from 0).
DAM_HOST_DEVICE inline int posterize_bits(double m, const MagnitudeRanges& r) {
    const double v = m * r.posterize_bits;
    const int b = 8 - static_cast<int>(v < 0 ? -std::floor(-v + 0.5) : std::floor(v + 0.5));
    return b < 1 ? 1 : (b > 8 ? 8 : b);
}

/// The Cutout hole [y0, y1) x [x0, x1), clipped to the image.
struct Hole {
    std::int64_t y0, y1, x0, x1;
};
DAM_HOST_DEVICE inline Hole cutout_hole(double m, const OpDraw& d, std::int64_t H, std::int64_t W, const MagnitudeRanges& r) {
    const double sv = m * r.cutout * static_cast<double>(H < W ? H : W);  // >= 0: round half up
    const auto side = static_cast<std::int64_t>(std::floor(sv + 0.5));
    auto lesser = [](std::int64_t a, std::int64_t b) { return a < b ? a : b; };
    auto greater = [](std::int64_t a, std::int64_t b) { return a > b ? a : b; };
    const auto cy = lesser(H - 1, static_cast<std::int64_t>(static_cast<double>(d.v) * static_cast<double>(H)));
    const auto cx = lesser(W - 1, static_cast<std::int64_t>(static_cast<double>(d.u) * static_cast<double>(W)));
    const std::int64_t y0 = cy - side / 2, x0 = cx - side / 2;
    return {greater(0, y0), lesser(H, y0 + side), greater(0, x0), lesser(W, x0 + side)};
}

/// The indices of the first minimum and the last maximum of x[0..n) (std::minmax_element's).
template <class T>
DAM_HOST_DEVICE void minmax_index(const T* x, std::int64_t n, std::int64_t& lo, std::int64_t& hi) {
    lo = hi = 0;
    for (std::int64_t k = 1; k < n; ++k) {
        if (x[k] < x[lo]) lo = k;
        if (!(x[k] < x[hi])) hi = k;
    }
}

/// The mean of the grey image over all pixels (Contrast's blend target).
template <class T>
DAM_HOST_DEVICE double mean_grey(const T* x, std::int64_t C, std::int64_t P) {
    double mean = 0;
    for (std::int64_t c = 0; c < C; ++c) {
        double sc = 0;
        for (std::int64_t p = 0; p < P; ++p) sc += static_cast<double>(x[c * P + p]);
        mean += grey_weight(c, C) * sc;
    }
    return mean / static_cast<double>(P);
}

}  // namespace kernels
}  // namespace diffautoml::da
