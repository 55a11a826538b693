#pragma once
// Front doors of max/avg pooling and global average pooling.
#include "../autograd/variable.hpp"
#include "conv_params.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/pool.hpp"

namespace diffautoml::ops {

namespace detail {
inline PoolGeometry pool_geometry(const Shape& x, const Pool2dOptions& o, const char* op) {
    DAM_CHECK(x.rank() == 4, shape_error, "{}: input must be (N, C, H, W), got {}", op, x);
    const std::int64_t s = o.stride ? o.stride : o.kernel;
    DAM_CHECK(o.kernel >= 1 && s >= 1 && o.padding >= 0 && 2 * o.padding <= o.kernel, value_error,
              "{}: kernel {} and stride {} must be >= 1 and padding {} at most half the kernel", op, o.kernel, s,
              o.padding);
    DAM_CHECK(x[2] + 2 * o.padding >= o.kernel && x[3] + 2 * o.padding >= o.kernel, shape_error,
              "{}: input {} is smaller than the {}x{} window (padding {})", op, x, o.kernel, o.kernel, o.padding);
    PoolGeometry g{x[0] * x[1], x[2], x[3], 0, 0, o.kernel, s, o.padding};
    g.out_h = (g.in_h + 2 * g.pad - g.k) / s + 1;
    g.out_w = (g.in_w + 2 * g.pad - g.k) / s + 1;
    DAM_CHECK(g.out_h >= 1 && g.out_w >= 1, shape_error, "{}: input {} is smaller than the {}x{} window", op, x,
              o.kernel, o.kernel);
    return g;
}
}  // namespace detail

template <class T, Device D>
Var<T, D> max_pool2d(const Var<T, D>& x, Pool2dOptions opt) {
    const auto g = detail::pool_geometry(x.shape(), opt, "max_pool2d");
    Tensor<T, D> y(Shape{x.dim(0), x.dim(1), g.out_h, g.out_w});
    Tensor<std::int32_t, D> argmax(y.shape());
    max_pool2d_forward(D{}, x.value().data(), y.data(), argmax.data(), g);
    return Var<T, D>::make_result(y, "max_pool2d", {x}, [xn = x.node(), argmax, g](const Tensor<T, D>& dy) {
        Tensor<T, D> dx(xn->value.shape());
        max_pool2d_backward(D{}, dy.data(), argmax.data(), dx.data(), g);
        xn->accumulate_owned(std::move(dx));
    });
}

template <class T, Device D>
Var<T, D> avg_pool2d(const Var<T, D>& x, Pool2dOptions opt) {
    const auto g = detail::pool_geometry(x.shape(), opt, "avg_pool2d");
    Tensor<T, D> y(Shape{x.dim(0), x.dim(1), g.out_h, g.out_w});
    avg_pool2d_forward(D{}, x.value().data(), y.data(), g);
    return Var<T, D>::make_result(y, "avg_pool2d", {x}, [xn = x.node(), g](const Tensor<T, D>& dy) {
        Tensor<T, D> dx(xn->value.shape());
        avg_pool2d_backward(D{}, dy.data(), dx.data(), g);
        xn->accumulate_owned(std::move(dx));
    });
}

/// (N, C, H, W) -> (N, C): the mean of each plane.
template <class T, Device D>
Var<T, D> global_avg_pool2d(const Var<T, D>& x) {
    DAM_CHECK(x.shape().rank() == 4, shape_error, "global_avg_pool2d: input must be (N, C, H, W), got {}", x.shape());
    const std::int64_t P = x.dim(0) * x.dim(1), HW = x.dim(2) * x.dim(3);
    Tensor<T, D> y(Shape{x.dim(0), x.dim(1)});
    sum_axis(D{}, x.value().data(), y.data(), P, HW, 1);
    unary_forward(D{}, fn::MulScalar{1.0 / static_cast<double>(HW)}, y.data(), y.data(), P);
    return Var<T, D>::make_result(y, "global_avg_pool2d", {x}, [xn = x.node(), P, HW](const Tensor<T, D>& dy) {
        Tensor<T, D> dx(xn->value.shape());
        expand_axis(D{}, dy.data(), dx.data(), P, HW, 1, static_cast<T>(1.0 / static_cast<double>(HW)));
        xn->accumulate_owned(std::move(dx));
    });
}

}  // namespace diffautoml::ops
