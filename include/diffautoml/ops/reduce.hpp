#pragma once
// Front doors of sum and mean, over everything or along one axis, and the finiteness check.
#include <cmath>
#include <vector>

#include "../autograd/variable.hpp"
#include "cpu/elementwise.hpp"
#include "elementwise.hpp"

namespace diffautoml::ops {

namespace detail {
struct AxisView {
    std::int64_t outer = 1, n = 1, inner = 1;
    Shape reduced;  ///< with the axis removed, or set to 1 when keepdim
};
inline AxisView axis_view(const Shape& s, int axis, bool keepdim, const char* op) {
    const int a = axis < 0 ? axis + s.rank() : axis;
    DAM_CHECK(a >= 0 && a < s.rank(), shape_error, "{}: axis {} is out of range for shape {}", op, axis, s);
    AxisView v;
    for (int i = 0; i < s.rank(); ++i) {
        if (i < a) v.outer *= s[i];
        if (i > a) v.inner *= s[i];
        if (i == a) {
            v.n = s[i];
            if (keepdim) v.reduced.push_back(1);
        } else {
            v.reduced.push_back(s[i]);
        }
    }
    return v;
}
template <class T, Device D>
Var<T, D> sum_scaled(const Var<T, D>& x, double scale, const char* name) {
    Tensor<T, D> y(Shape{});
    // A one-element result written through the same axis kernel keeps this device-generic.
    sum_axis(D{}, x.value().data(), y.data(), 1, x.numel(), 1);
    if (scale != 1.0) unary_forward(D{}, fn::MulScalar{scale}, y.data(), y.data(), 1);
    return Var<T, D>::make_result(y, name, {x}, [xn = x.node(), scale](const Tensor<T, D>& g) {
        Tensor<T, D> dx(xn->value.shape());
        expand_axis(D{}, g.data(), dx.data(), 1, dx.numel(), 1, static_cast<T>(scale));
        xn->accumulate_owned(std::move(dx));
    });
}
template <class T, Device D>
Var<T, D> sum_axis_scaled(const Var<T, D>& x, int axis, bool keepdim, double scale, const char* name) {
    const AxisView v = axis_view(x.shape(), axis, keepdim, name);
    Tensor<T, D> y(v.reduced);
    sum_axis(D{}, x.value().data(), y.data(), v.outer, v.n, v.inner);
    if (scale != 1.0) unary_forward(D{}, fn::MulScalar{scale}, y.data(), y.data(), y.numel());
    return Var<T, D>::make_result(y, name, {x}, [xn = x.node(), v, scale](const Tensor<T, D>& g) {
        Tensor<T, D> dx(xn->value.shape());
        expand_axis(D{}, g.data(), dx.data(), v.outer, v.n, v.inner, static_cast<T>(scale));
        xn->accumulate_owned(std::move(dx));
    });
}
}  // namespace detail

/// Sum of all elements (a one-element result of rank 0).
template <class T, Device D> Var<T, D> sum(const Var<T, D>& x) { return detail::sum_scaled(x, 1.0, "sum"); }
/// Mean of all elements.
template <class T, Device D> Var<T, D> mean(const Var<T, D>& x) {
    DAM_CHECK(x.numel() > 0, shape_error, "mean: the input {} is empty", x.shape());
    return detail::sum_scaled(x, 1.0 / static_cast<double>(x.numel()), "mean");
}
/// Whether every value of every defined tensor of `ts` is finite (no NaN, no Inf): the divergence
/// check of a training step. On the CPU one pass over the values; on another device one sum of
/// 0 * t over all of them (NaN exactly when some value is NaN or Inf), read back once.
template <class T, Device D>
bool all_finite(const std::vector<Tensor<T, D>>& ts) {
    if constexpr (std::is_same_v<D, cpu>) {
        for (const auto& t : ts) {
            if (!t.defined()) continue;
            const T* p = t.data();
            bool ok = true;
            for (std::int64_t i = 0; i < t.numel(); ++i) ok &= std::isfinite(p[i]);
            if (!ok) return false;
        }
        return true;
    } else {
        NoGradGuard no_grad;
        Var<T, D> total;
        for (const auto& t : ts) {
            if (!t.defined()) continue;
            auto z = sum(mul_scalar(Var<T, D>(t), 0.0));
            total = total.defined() ? add(total, z) : z;
        }
        return !total.defined() || std::isfinite(static_cast<double>(on_host(total.value())[0]));
    }
}

/// Sum along `axis` (negative counts from the end).
template <class T, Device D> Var<T, D> sum(const Var<T, D>& x, int axis, bool keepdim = false) {
    return detail::sum_axis_scaled(x, axis, keepdim, 1.0, "sum");
}
/// Mean along `axis`.
template <class T, Device D> Var<T, D> mean(const Var<T, D>& x, int axis, bool keepdim = false) {
    const std::int64_t n = x.shape().dim(axis);
    DAM_CHECK(n > 0, shape_error, "mean: axis {} of {} is empty", axis, x.shape());
    return detail::sum_axis_scaled(x, axis, keepdim, 1.0 / static_cast<double>(n), "mean");
}

}  // namespace diffautoml::ops
