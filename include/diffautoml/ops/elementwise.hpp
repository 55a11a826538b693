#pragma once
// Front doors of the elementwise ops: unary maps, broadcast binary ops, scalar ops, operators.
#include "../autograd/variable.hpp"
#include "broadcast.hpp"
#include "cpu/elementwise.hpp"
#include "functors.hpp"

namespace diffautoml::ops {

/// y = op(x) elementwise, with dL/dx = op.bwd(x, y, dL/dy).
template <class Op, class T, Device D>
Var<T, D> unary(const Var<T, D>& x, Op op = {}) {
    Tensor<T, D> y(x.shape());
    unary_forward(D{}, op, x.value().data(), y.data(), x.numel());
    return Var<T, D>::make_result(y, Op::name, {x}, [xn = x.node(), xv = x.value(), y, op](const Tensor<T, D>& g) {
        Tensor<T, D> dx(xv.shape());
        unary_backward(D{}, op, xv.data(), y.data(), g.data(), dx.data(), xv.numel());
        xn->accumulate_owned(std::move(dx));
    });
}

template <class T, Device D> Var<T, D> exp(const Var<T, D>& x) { return unary(x, fn::Exp{}); }
template <class T, Device D> Var<T, D> log(const Var<T, D>& x) { return unary(x, fn::Log{}); }
template <class T, Device D> Var<T, D> sigmoid(const Var<T, D>& x) { return unary(x, fn::Sigmoid{}); }
template <class T, Device D> Var<T, D> tanh(const Var<T, D>& x) { return unary(x, fn::Tanh{}); }
template <class T, Device D> Var<T, D> relu(const Var<T, D>& x) { return unary(x, fn::Relu{}); }
template <class T, Device D> Var<T, D> relu6(const Var<T, D>& x) { return unary(x, fn::Relu6{}); }
template <class T, Device D> Var<T, D> neg(const Var<T, D>& x) { return unary(x, fn::Neg{}); }
template <class T, Device D> Var<T, D> square(const Var<T, D>& x) { return unary(x, fn::Square{}); }
template <class T, Device D> Var<T, D> sqrt(const Var<T, D>& x) { return unary(x, fn::Sqrt{}); }
template <class T, Device D> Var<T, D> add_scalar(const Var<T, D>& x, double s) { return unary(x, fn::AddScalar{s}); }
template <class T, Device D> Var<T, D> mul_scalar(const Var<T, D>& x, double s) { return unary(x, fn::MulScalar{s}); }
template <class T, Device D> Var<T, D> pow(const Var<T, D>& x, double p) { return unary(x, fn::PowScalar{p}); }

namespace detail {
/// dL/d(operand) from a gradient laid out as the broadcast output: sums over broadcast axes.
template <class T, Device D>
void accumulate_broadcast(Node<T, D>* node, Tensor<T, D>&& full, const Shape& out) {
    const Shape& target = node->value.shape();
    if (target.numel() == out.numel()) {
        node->accumulate_owned(full.reshape(target));
        return;
    }
    Tensor<T, D> reduced(target);
    sum_to(D{}, BroadcastPlan::make(target, out, "broadcast gradient"), full.data(), reduced.data(),
           reduced.numel());
    node->accumulate_owned(std::move(reduced));
}
}  // namespace detail

/// y = op(a, b) with NumPy broadcasting (e.g. (N, C, H, W) with (C, 1, 1) for per-channel ops).
template <class Op, class T, Device D>
Var<T, D> binary(const Var<T, D>& a, const Var<T, D>& b, Op op = {}) {
    const BroadcastPlan plan = BroadcastPlan::make(a.shape(), b.shape(), Op::name);
    Tensor<T, D> y(plan.out);
    binary_forward(D{}, op, plan, a.value().data(), b.value().data(), y.data());
    return Var<T, D>::make_result(
        y, Op::name, {a, b},
        [an = a.node(), bn = b.node(), av = a.value(), bv = b.value(), plan, op](const Tensor<T, D>& g) {
            const bool need_a = an->requires_grad, need_b = bn->requires_grad;
            Tensor<T, D> ga, gb;
            if (need_a) ga = Tensor<T, D>(plan.out);
            if (need_b) gb = Tensor<T, D>(plan.out);
            binary_backward_full(D{}, op, plan, av.data(), bv.data(), g.data(), ga.data(), gb.data());
            if (need_a) detail::accumulate_broadcast(an, std::move(ga), plan.out);
            if (need_b) detail::accumulate_broadcast(bn, std::move(gb), plan.out);
        });
}

template <class T, Device D> Var<T, D> add(const Var<T, D>& a, const Var<T, D>& b) { return binary(a, b, fn::Add{}); }
template <class T, Device D> Var<T, D> sub(const Var<T, D>& a, const Var<T, D>& b) { return binary(a, b, fn::Sub{}); }
template <class T, Device D> Var<T, D> mul(const Var<T, D>& a, const Var<T, D>& b) { return binary(a, b, fn::Mul{}); }
template <class T, Device D> Var<T, D> div(const Var<T, D>& a, const Var<T, D>& b) { return binary(a, b, fn::Div{}); }

}  // namespace diffautoml::ops

namespace diffautoml {
// Operators on Var, for readable model code: (x - mean) / std * gamma + beta.
template <class T, Device D> Var<T, D> operator+(const Var<T, D>& a, const Var<T, D>& b) { return ops::add(a, b); }
template <class T, Device D> Var<T, D> operator-(const Var<T, D>& a, const Var<T, D>& b) { return ops::sub(a, b); }
template <class T, Device D> Var<T, D> operator*(const Var<T, D>& a, const Var<T, D>& b) { return ops::mul(a, b); }
template <class T, Device D> Var<T, D> operator/(const Var<T, D>& a, const Var<T, D>& b) { return ops::div(a, b); }
template <class T, Device D> Var<T, D> operator-(const Var<T, D>& a) { return ops::neg(a); }
template <class T, Device D> Var<T, D> operator+(const Var<T, D>& a, double s) { return ops::add_scalar(a, s); }
template <class T, Device D> Var<T, D> operator+(double s, const Var<T, D>& a) { return ops::add_scalar(a, s); }
template <class T, Device D> Var<T, D> operator-(const Var<T, D>& a, double s) { return ops::add_scalar(a, -s); }
template <class T, Device D> Var<T, D> operator-(double s, const Var<T, D>& a) { return ops::add_scalar(ops::neg(a), s); }
template <class T, Device D> Var<T, D> operator*(const Var<T, D>& a, double s) { return ops::mul_scalar(a, s); }
template <class T, Device D> Var<T, D> operator*(double s, const Var<T, D>& a) { return ops::mul_scalar(a, s); }
template <class T, Device D> Var<T, D> operator/(const Var<T, D>& a, double s) { return ops::mul_scalar(a, 1.0 / s); }
template <class T, Device D> Var<T, D> operator/(double s, const Var<T, D>& a) { return ops::unary(a, fn::RdivScalar{s}); }
}  // namespace diffautoml
