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
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/error.hpp"

namespace diffautoml::da {

/// The augmentation operations (the DADA / AutoAugment set plus Identity and FlipLR).
enum class Op : std::uint8_t {
    identity,
    flip_lr,
    shear_x,
    shear_y,
    translate_x,
    translate_y,
    rotate,
    auto_contrast,
    invert,
    equalize,
    solarize,
    posterize,
    contrast,
    color,
    brightness,
    sharpness,
    cutout,
};
inline constexpr int kOpCount = 17;

/// What each op is: whether it reads its magnitude, whether the magnitude takes a random sign
/// per image (the op is symmetric about magnitude 0), and whether it is differentiable in it.
struct OpInfo {
    std::string_view name;
    bool has_magnitude;
    bool symmetric;
    bool magnitude_differentiable;
};
inline constexpr std::array<OpInfo, kOpCount> kOpInfo{{
    {"Identity", false, false, false},
    {"FlipLR", false, false, false},
    {"ShearX", true, true, true},
    {"ShearY", true, true, true},
    {"TranslateX", true, true, true},
    {"TranslateY", true, true, true},
    {"Rotate", true, true, true},
    {"AutoContrast", false, false, false},
    {"Invert", false, false, false},
    {"Equalize", false, false, false},
    {"Solarize", true, false, false},
    {"Posterize", true, false, false},
    {"Contrast", true, true, true},
    {"Color", true, true, true},
    {"Brightness", true, true, true},
    {"Sharpness", true, true, true},
    {"Cutout", true, false, false},
}};

inline const OpInfo& info(Op op) { return kOpInfo[static_cast<std::size_t>(op)]; }
inline std::string_view op_name(Op op) { return info(op).name; }

/// Every op, in enum order.
inline std::vector<Op> all_ops() {
    std::vector<Op> v;
    for (int k = 0; k < kOpCount; ++k) v.push_back(static_cast<Op>(k));
    return v;
}

/// The ops that keep a dark-background grey image (Fashion-MNIST, MNIST) in the distribution it
/// is tested on: all ops except Invert and Solarize (they turn the black background white, which
/// no test image has) and Color (the identity on one channel). On Fashion-MNIST an adversarial
/// pair policy over all ops collapsed onto Invert (docs/results.md).
inline std::vector<Op> grey_ops() {
    std::vector<Op> v;
    for (Op o : all_ops())
        if (o != Op::invert && o != Op::solarize && o != Op::color) v.push_back(o);
    return v;
}

/// The op of a name (as op_name prints it, case-sensitive).
inline Op op_from_name(std::string_view name) {
    std::string known;
    for (int k = 0; k < kOpCount; ++k) {
        if (kOpInfo[static_cast<std::size_t>(k)].name == name) return static_cast<Op>(k);
        known += (k ? ", " : "") + std::string(kOpInfo[static_cast<std::size_t>(k)].name);
    }
    throw value_error(DAM_FORMAT("augmentation op '{}' does not exist; the ops are {}", name, known));
}

/// Magnitude m in [0, 1] to the op's parameter; the defaults are AutoAugment's ranges
/// (Cubuk et al. 2019, table of operations) with pixel values in [0, 1].
struct MagnitudeRanges {
    double shear = 0.3;                  ///< shear factor at m = 1
    double translate = 150.0 / 331.0;    ///< shift as a fraction of the image side at m = 1
    double rotate_degrees = 30.0;        ///< angle at m = 1 (counter-clockwise for a positive sign)
    double enhance = 0.9;                ///< PIL enhance factor 1 + sign * 0.9 m, in [0.1, 1.9]
    double solarize = 1.0;               ///< 8-bit threshold 256 (1 - solarize m): m = 0 inverts nothing
    double posterize_bits = 4.0;         ///< bits kept: 8 - round(4 m), in [4, 8]
    double cutout = 20.0 / 32.0;         ///< side of the square hole as a fraction of min(H, W)
};

/// How an augmentation treats the pixels it has no data for, and its magnitude ranges.
struct AugmentOptions {
    MagnitudeRanges ranges{};
    double fill = 0.5;  ///< pixel value outside the image (warps) and in the Cutout hole; AutoAugment uses grey
};

/// How the magnitude gradient is formed: `exact` differentiates the op where it is differentiable
/// in m and uses the straight-through rule (dL/dm = sum dL/dy) where not, and gives no gradient to
/// ops without a magnitude; `straight_through` uses the straight-through rule for every op (DADA).
enum class MagnitudeGradient { exact, straight_through };

/// One op applied to one image: the op, the sign of its magnitude (symmetric ops) and, for
/// Cutout, the hole's centre as fractions (u of the width, v of the height) in [0, 1).
struct OpDraw {
    Op op = Op::identity;
    std::int8_t sign = 1;
    float u = 0.5f, v = 0.5f;
};

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
