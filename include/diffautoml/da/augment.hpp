#pragma once
// Front door of the augmentation ops on image batches (N, C, H, W) with pixel values in [0, 1]:
//  - augment_images(): S ops in sequence per image on a plain tensor (no gradient; the fast path
//    of policies whose parameters do not need the image gradient: PairPolicyDA, RandAugment);
//  - augment(): one op per image as an autograd op, differentiable in the image and in the
//    per-image magnitudes (DADA, and the gradient checker).
// The per-image randomness (magnitude sign, Cutout centre) is part of the OpDraw; random_draw()
// makes it from a Philox stream so that the same seed gives the same batch on any thread count.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/variable.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/body/augment.hpp"
#include "../ops/cpu/augment.hpp"
#include "../ops/functors.hpp"

namespace diffautoml::da {

/// Datasets are often normalised; PixelSpace says how: stored x = (pixel - mean) / std. The ops
/// work on pixels in [0, 1], so policies convert on the way in and out.
struct PixelSpace {
    double mean = 0.0;
    double std = 1.0;
};

// JSON records of the options (result.json's config; a checkpoint resumes only into the same one).
inline void to_json(nlohmann::json& j, const PixelSpace& p) { j = {{"mean", p.mean}, {"std", p.std}}; }
inline void to_json(nlohmann::json& j, Op op) { j = std::string(op_name(op)); }
inline void to_json(nlohmann::json& j, const MagnitudeRanges& r) {
    j = {{"shear", r.shear},         {"translate", r.translate}, {"rotate_degrees", r.rotate_degrees},
         {"enhance", r.enhance},     {"solarize", r.solarize},   {"posterize_bits", r.posterize_bits},
         {"cutout", r.cutout}};
}
inline void to_json(nlohmann::json& j, const AugmentOptions& o) { j = {{"ranges", o.ranges}, {"fill", o.fill}}; }

namespace detail {

inline void check_options(const AugmentOptions& o, const char* who) {
    DAM_CHECK(std::isfinite(o.fill), value_error, "{}: the fill value must be finite, got {}", who, o.fill);
    const MagnitudeRanges& r = o.ranges;
    for (double v : {r.shear, r.translate, r.rotate_degrees, r.enhance, r.solarize, r.posterize_bits, r.cutout})
        DAM_CHECK(std::isfinite(v) && v >= 0, value_error,
                  "{}: magnitude ranges must be finite and >= 0, got {}; see da::MagnitudeRanges", who, v);
}

template <class T>
void check_batch(const Shape& s, std::int64_t draws, std::int64_t ops_per_image, const char* who) {
    DAM_CHECK(s.rank() == 4, shape_error, "{}: images must be (N, C, H, W), got {}", who, s);
    DAM_CHECK(s[1] >= 1 && s[2] >= 1 && s[3] >= 1, shape_error, "{}: images {} have an empty axis", who, s);
    DAM_CHECK(ops_per_image >= 1, value_error, "{}: ops per image must be >= 1, got {}", who, ops_per_image);
    DAM_CHECK(draws == s[0] * ops_per_image, shape_error,
              "{}: {} images with {} op(s) each need {} draws, got {}", who, s[0], ops_per_image, s[0] * ops_per_image,
              draws);
}

inline void check_draw(const OpDraw& d, std::int64_t k, const char* who) {
    DAM_CHECK(static_cast<int>(d.op) < kOpCount, value_error, "{}: draw {} has an unknown op code {}", who, k,
              static_cast<int>(d.op));
    DAM_CHECK(d.sign == 1 || d.sign == -1, value_error, "{}: draw {} has sign {}; it must be +1 or -1", who, k,
              static_cast<int>(d.sign));
    DAM_CHECK(d.u >= 0 && d.u < 1 && d.v >= 0 && d.v < 1, value_error,
              "{}: draw {} has a Cutout centre ({}, {}) outside [0, 1)", who, k, d.u, d.v);
}

inline void check_magnitude(double m, std::int64_t k, const char* who) {
    DAM_CHECK(std::isfinite(m) && m >= 0 && m <= 1, value_error,
              "{}: magnitude {} of draw {} is outside [0, 1] (magnitudes are fractions of the op's range; set "
              "MagnitudeRanges to change the range)",
              who, m, k);
}

}  // namespace detail

/// The draw of `op` for item k of stream s: a random sign (when the op is symmetric) and a random
/// Cutout centre. The same (stream, k) always gives the same draw.
inline OpDraw random_draw(Op op, const PhiloxStream& s, std::uint64_t k) {
    const auto w = s.block(k);
    OpDraw d;
    d.op = op;
    d.sign = (info(op).symmetric && (w[0] & 1u)) ? std::int8_t{-1} : std::int8_t{1};
    d.u = uint_to_unit_float(w[1]);
    d.v = uint_to_unit_float(w[2]);
    return d;
}

namespace detail {
template <class T, Device D>
void check_draws(const Tensor<T, D>& x, std::span<const OpDraw> draws, std::span<const double> m,
                 std::int64_t ops_per_image, const AugmentOptions& o, const char* who) {
    check_batch<T>(x.shape(), static_cast<std::int64_t>(draws.size()), ops_per_image, who);
    DAM_CHECK(m.size() == draws.size(), shape_error, "{}: {} draws but {} magnitudes", who, draws.size(), m.size());
    check_options(o, who);
    for (std::size_t k = 0; k < draws.size(); ++k) {
        check_draw(draws[k], static_cast<std::int64_t>(k), who);
        check_magnitude(m[k], static_cast<std::int64_t>(k), who);
    }
}
}  // namespace detail

/// Applies, to each image n, the ops draws[n*S .. n*S+S) in order with magnitudes m[n*S + s], on
/// the device of x (draws and magnitudes are host values).
template <class T, Device D>
Tensor<T, D> augment_images(const Tensor<T, D>& x, std::span<const OpDraw> draws, std::span<const double> m,
                            std::int64_t ops_per_image, const AugmentOptions& o = {}) {
    detail::check_draws(x, draws, m, ops_per_image, o, "augment_images");
    Tensor<T, D> y(x.shape());
    augment_forward(D{}, x.data(), y.data(), draws, m, x.dim(0), ops_per_image, x.dim(1), x.dim(2), x.dim(3), o);
    return y;
}

/// One op per image as an autograd op: y_n = op_n(x_n; m_n). `m` has shape (N,) with values in
/// [0, 1]; gradients flow to x and to m (see MagnitudeGradient).
template <class T, Device D>
Var<T, D> augment(const Var<T, D>& x, std::span<const OpDraw> draws, const Var<T, D>& m, const AugmentOptions& o = {},
                  MagnitudeGradient mode = MagnitudeGradient::exact) {
    const char* who = "augment";
    DAM_CHECK(x.defined() && m.defined(), value_error, "{}: images and magnitudes must be defined", who);
    DAM_CHECK(m.shape().rank() == 1 && m.dim(0) == x.dim(0), shape_error,
              "{}: magnitudes must have shape ({},), one per image, got {}", who, x.dim(0), m.shape());
    std::vector<OpDraw> d(draws.begin(), draws.end());
    const Tensor<T> mh = on_host(m.value());
    std::vector<double> mv(static_cast<std::size_t>(m.numel()));
    for (std::int64_t k = 0; k < m.numel(); ++k) mv[static_cast<std::size_t>(k)] = static_cast<double>(mh[k]);
    detail::check_draws(x.value(), d, mv, 1, o, who);
    Tensor<T, D> y(x.shape());
    const std::int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    augment_forward(D{}, x.value().data(), y.data(), std::span<const OpDraw>(d), std::span<const double>(mv), N, 1, C, H,
                    W, o);
    return Var<T, D>::make_result(
        y, "augment", {x, m},
        [xv = x.value(), xn = x.node(), mn = m.node(), d = std::move(d), mv = std::move(mv), o, mode](const Tensor<T, D>& g) {
            const std::int64_t N = xv.dim(0), C = xv.dim(1), H = xv.dim(2), W = xv.dim(3);
            Tensor<T, D> gx;
            if (xn->requires_grad) gx = Tensor<T, D>::zeros(xv.shape());
            const std::vector<double> gmd =
                augment_backward(D{}, xv.data(), g.data(), gx.defined() ? gx.data() : nullptr, std::span<const OpDraw>(d),
                                 std::span<const double>(mv), N, C, H, W, o, mode);
            if (xn->requires_grad) xn->accumulate_owned(std::move(gx));
            if (mn->requires_grad) {
                Tensor<T> gm(Shape{N});
                for (std::int64_t i = 0; i < N; ++i) gm[i] = static_cast<T>(gmd[static_cast<std::size_t>(i)]);
                mn->accumulate_owned(on_device<D>(gm));
            }
        });
}

/// x * std + mean: stored values to pixels (on any device).
template <class T, Device D>
Tensor<T, D> to_pixels(const Tensor<T, D>& x, const PixelSpace& ps) {
    Tensor<T, D> y(x.shape());
    unary_forward(D{}, fn::ScaleShift{ps.std, ps.mean}, x.data(), y.data(), x.numel());
    return y;
}
/// (p - mean) / std in place: pixels back to stored values (on any device).
template <class T, Device D>
void from_pixels_(const Tensor<T, D>& p, const PixelSpace& ps) {
    unary_forward(D{}, fn::ShiftScale{-ps.mean, 1.0 / ps.std}, p.data(), p.data(), p.numel());
}

}  // namespace diffautoml::da
