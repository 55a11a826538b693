#pragma once
// One-step unrolled (bilevel) gradients, shared by the policies that minimise a validation loss
// through the next weight step: DARTS' second order (Liu et al., 2019, eq. 7-8) and DADA (Li et
// al., 2020, eq. 10-11). With the weight step w' = w - u(g), g = grad_w L_train(w, a), and u affine
// in g (momentum SGD: u(g) = eta (mu buf + g + lambda w)), the chain rule gives
//     d L_val(w', a) / d a = grad_a L_val(w', a) - (d^2 L_train / d a d w) C v,
//     v = grad_w' L_val(w', a),   C v = u(v) - u(0)   (C = du/dg, exact for affine u),
// and the mixed second derivative times a direction is a central difference in the weights.
#include <cmath>
#include <functional>
#include <vector>

#include "../autograd/variable.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"

namespace diffautoml::optim {

/// The optimizer's next update for given gradients (one per weight): the amount it would subtract
/// from the weights now, without changing its state.
template <class T, Device D = cpu>
using UpdateFn = std::function<std::vector<Tensor<T, D>>(const std::vector<Tensor<T, D>>& grads)>;

namespace detail {
template <class T, Device D>
double squared_norm(const std::vector<Tensor<T, D>>& v) {
    NoGradGuard no_grad;
    double s = 0;
    for (const auto& t : v) {
        if (!t.defined() || t.numel() == 0) continue;
        const Var<T, D> x(t.reshape({t.numel()}));
        s += static_cast<double>(on_host(ops::sum(ops::mul(x, x)).value())[0]);
    }
    return s;
}
/// weights[i] = base[i] + s * dir[i] (dir[i] undefined: base[i]).
template <class T, Device D>
void set_shifted(std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& base,
                 const std::vector<Tensor<T, D>>& dir, double s) {
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        if (!dir[i].defined()) {
            weights[i].value().copy_from(base[i]);
            continue;
        }
        const Var<T, D> shifted = ops::add(Var<T, D>(base[i]), ops::mul_scalar(Var<T, D>(dir[i]), s));
        weights[i].value().copy_from(shifted.value());
    }
}
}  // namespace detail

/// The mixed second derivative (d^2 L / d a d w) v by the central difference
///     (grads(w + eps v) - grads(w - eps v)) / (2 eps),   eps = step / ||v||   (DARTS eq. 8: 0.01),
/// where grads() returns the gradients with respect to `a` at the weights' current values. The
/// weights are restored afterwards (also when grads() throws). Zero when v is zero.
template <class T, Device D, class Grads>
std::vector<Tensor<T, D>> mixed_hessian_vector_product(std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& v,
                                                       Grads&& grads, double step = 0.01) {
    DAM_CHECK(step > 0 && std::isfinite(step), value_error, "mixed_hessian_vector_product: step must be > 0, got {}", step);
    DAM_CHECK(weights.size() == v.size(), shape_error, "mixed_hessian_vector_product: {} weights but {} directions",
              weights.size(), v.size());
    const double norm = std::sqrt(detail::squared_norm(v));
    std::vector<Tensor<T, D>> saved;
    for (const auto& w : weights) saved.push_back(w.value().clone());
    struct Restore {
        std::vector<Var<T, D>>& w;
        const std::vector<Tensor<T, D>>& s;
        ~Restore() {
            for (std::size_t i = 0; i < w.size(); ++i) w[i].value().copy_from(s[i]);
        }
    } restore{weights, saved};
    if (norm == 0) {
        std::vector<Tensor<T, D>> zero = grads();
        for (auto& z : zero) z = Tensor<T, D>::zeros(z.shape());
        return zero;
    }
    const double eps = step / norm;
    detail::set_shifted(weights, saved, v, eps);
    std::vector<Tensor<T, D>> plus = grads();
    detail::set_shifted(weights, saved, v, -eps);
    const std::vector<Tensor<T, D>> minus = grads();
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < plus.size(); ++i)
        plus[i] = ops::mul_scalar(ops::sub(Var<T, D>(plus[i]), Var<T, D>(minus[i])), 1.0 / (2 * eps)).value();
    return plus;
}

/// C v = u(v) - u(0) for an update u that is affine in the gradients (see the file comment).
template <class T, Device D>
std::vector<Tensor<T, D>> update_jacobian_product(const UpdateFn<T, D>& update, const std::vector<Tensor<T, D>>& v) {
    std::vector<Tensor<T, D>> zero;
    for (const auto& t : v) zero.push_back(Tensor<T, D>::zeros(t.shape()));
    auto uv = update(v);
    const auto u0 = update(zero);
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < uv.size(); ++i) uv[i] = ops::sub(Var<T, D>(uv[i]), Var<T, D>(u0[i])).value();
    return uv;
}

/// dF/dx for F = L_val(w - u(g)) with g = grad_w L_train(w, x), the validation loss one weight
/// step ahead as a function of an input x of the training loss (DADA's augmented images):
///     dF/dx = -(d^2 L_train / d x d w) C v,   v = grad_w' L_val(w'),  C v = u(v) - u(0).
/// `train_grads` are the training gradients g at the current weights (one per weight),
/// `train_loss_of(x)` the training loss of the same batch as a function of the input, `val_loss()`
/// the loss of a validation batch. The weights are left as they were.
template <class T, Device D>
Tensor<T, D> unrolled_input_gradient(std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& train_grads,
                                     const UpdateFn<T, D>& update, const std::function<Var<T, D>()>& val_loss,
                                     const std::function<Var<T, D>(const Var<T, D>&)>& train_loss_of,
                                     const Tensor<T, D>& x, double step = 0.01) {
    DAM_CHECK(weights.size() == train_grads.size(), shape_error,
              "unrolled_input_gradient: {} weights with {} training gradients", weights.size(), train_grads.size());
    std::vector<Tensor<T, D>> saved;
    for (const auto& w : weights) saved.push_back(w.value().clone());
    std::vector<Tensor<T, D>> v;
    {
        struct Restore {
            std::vector<Var<T, D>>& w;
            const std::vector<Tensor<T, D>>& s;
            ~Restore() {
                for (std::size_t i = 0; i < w.size(); ++i) w[i].value().copy_from(s[i]);
            }
        } restore{weights, saved};
        const auto u = update(train_grads);
        {
            NoGradGuard no_grad;
            for (std::size_t i = 0; i < weights.size(); ++i)
                weights[i].value().copy_from(ops::sub(Var<T, D>(saved[i]), Var<T, D>(u[i])).value());
        }
        v = grad(val_loss(), weights);
    }
    auto hv = mixed_hessian_vector_product(weights, update_jacobian_product(update, v), [&] {
        const Var<T, D> xv(x, true);
        return grad(train_loss_of(xv), std::vector<Var<T, D>>{xv});
    }, step);
    NoGradGuard no_grad;
    return ops::neg(Var<T, D>(hv[0])).value();
}

}  // namespace diffautoml::optim
