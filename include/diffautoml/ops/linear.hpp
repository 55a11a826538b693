#pragma once
// Front doors of matmul and linear (fully connected) layers.
#include "../autograd/variable.hpp"
#include "../core/flops.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/gemm.hpp"

namespace diffautoml::ops {

/// (M, K) x (K, N) -> (M, N).
template <class T, Device D>
Var<T, D> matmul(const Var<T, D>& a, const Var<T, D>& b) {
    DAM_CHECK(a.shape().rank() == 2 && b.shape().rank() == 2 && a.dim(1) == b.dim(0), shape_error,
              "matmul: needs (M, K) x (K, N), got {} x {}", a.shape(), b.shape());
    const std::int64_t M = a.dim(0), K = a.dim(1), N = b.dim(1);
    Tensor<T, D> y(Shape{M, N});
    count_macs(static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
    gemm(D{}, false, false, M, N, K, a.value().data(), b.value().data(), y.data(), false);
    return Var<T, D>::make_result(
        y, "matmul", {a, b}, [an = a.node(), bn = b.node(), av = a.value(), bv = b.value(), M, N, K](const Tensor<T, D>& g) {
            if (an->requires_grad) {  // dA = G B^T
                Tensor<T, D> da(Shape{M, K});
                gemm(D{}, false, true, M, K, N, g.data(), bv.data(), da.data(), false);
                an->accumulate_owned(std::move(da));
            }
            if (bn->requires_grad) {  // dB = A^T G
                Tensor<T, D> db(Shape{K, N});
                gemm(D{}, true, false, K, N, M, av.data(), g.data(), db.data(), false);
                bn->accumulate_owned(std::move(db));
            }
        });
}

/// y = x W^T + b with x (N, in), W (out, in), b (out) or undefined.
template <class T, Device D>
Var<T, D> linear(const Var<T, D>& x, const Var<T, D>& w, const Var<T, D>& b = {}) {
    DAM_CHECK(x.shape().rank() == 2 && w.shape().rank() == 2 && x.dim(1) == w.dim(1), shape_error,
              "linear: input must be (N, in) and weight (out, in); got input {} and weight {}", x.shape(), w.shape());
    const std::int64_t N = x.dim(0), I = x.dim(1), O = w.dim(0);
    DAM_CHECK(!b.defined() || (b.shape().rank() == 1 && b.dim(0) == O), shape_error,
              "linear: bias must be ({},) to match weight {}, got {}", O, w.shape(), b.shape());
    Tensor<T, D> y(Shape{N, O});
    if (b.defined()) expand_axis(D{}, b.value().data(), y.data(), 1, N, O, T(1));
    count_macs(static_cast<double>(N) * static_cast<double>(O) * static_cast<double>(I));
    gemm(D{}, false, true, N, O, I, x.value().data(), w.value().data(), y.data(), b.defined());
    return Var<T, D>::make_result(
        y, "linear", {x, w, b},
        [xn = x.node(), wn = w.node(), bn = b.defined() ? b.node() : nullptr, xv = x.value(), wv = w.value(), N, I,
         O](const Tensor<T, D>& g) {
            if (xn->requires_grad) {  // dx = G W
                Tensor<T, D> dx(Shape{N, I});
                gemm(D{}, false, false, N, I, O, g.data(), wv.data(), dx.data(), false);
                xn->accumulate_owned(std::move(dx));
            }
            if (wn->requires_grad) {  // dW = G^T x
                Tensor<T, D> dw(Shape{O, I});
                gemm(D{}, true, false, O, I, N, g.data(), xv.data(), dw.data(), false);
                wn->accumulate_owned(std::move(dw));
            }
            if (bn && bn->requires_grad) {
                Tensor<T, D> db(Shape{O});
                sum_axis(D{}, g.data(), db.data(), 1, N, O);
                bn->accumulate_owned(std::move(db));
            }
        });
}

}  // namespace diffautoml::ops
