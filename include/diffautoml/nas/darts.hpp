#pragma once
// DARTS (Liu et al. 2019): the continuous relaxation, alpha stepped on a validation batch, first
// or second order (through one unrolled weight step).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../optim/unrolled.hpp"
#include "alpha_policy.hpp"

namespace diffautoml::nas {

struct DARTSOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha, as in DARTS
    bool second_order = false;
    /// The finite difference of the Hessian-vector term steps the weights by this / ||v|| (DARTS: 0.01).
    double hessian_step = 0.01;
};

inline void to_json(nlohmann::json& j, const DARTSOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"second_order", o.second_order},
         {"hessian_step", o.hessian_step}};
}

/// The DARTS Hessian-vector term (Liu et al., 2019, eq. 8):
///     (grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps),  eps = 0.01 / ||v||,
/// a central difference for (d^2 L_train / d alpha d w) v. Weights are restored afterwards and no
/// leaf's accumulated gradient changes.
template <class T, Device D>
std::vector<Tensor<T, D>> darts_hessian_vector_product(std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& v,
                                                       const std::vector<Var<T, D>>& alphas,
                                                       const std::function<Var<T, D>()>& train_loss) {
    return optim::mixed_hessian_vector_product(weights, v, [&] { return grad(train_loss(), alphas); });
}

/// DARTS (Liu et al., ICLR 2019): every candidate runs, mixed by softmax(alpha). Before each
/// training step alpha takes an Adam step on a validation batch:
///   first order:  grad alpha = grad_alpha L_val(w, alpha);
///   second order: grad alpha = grad_alpha L_val(w', alpha) - (d^2 L_train / d alpha d w) C v, with
///                 w' = w - u(grad_w L_train(w)) the weight optimizer's real next step (momentum,
///                 weight decay and the scheduled rate: ctx.weight_update), C v = u(v) - u(0) and
///                 v = grad_w' L_val(w', alpha) (for plain SGD, C v = xi v as in DARTS eq. 7).
/// Only alpha's gradients are computed in these passes: the weights' accumulated gradients are
/// left as they were, so the weight step uses the training gradient alone.
template <class Space, class T = float, Device D = cpu>
class DARTS : public AlphaPolicy<T, D> {
public:
    using space_type = Space;
    using options_type = DARTSOptions;
    static constexpr std::string_view policy_name = "darts";

    DARTS(Supernet<T, D>& net, DARTSOptions o = {}) : AlphaPolicy<T, D>(net, o.lr, o.beta1, o.weight_decay), opt_(o) {
        this->fixed_.assign(this->alphas_.size(), -1);
    }

    void prepare(NasContext<T, D>& ctx) {
        DAM_CHECK(ctx.val_loss, value_error, "DARTS::prepare: the context needs a validation loss (val_loss)");
        std::vector<Tensor<T, D>> g;
        if (!opt_.second_order) {
            set_gates(true);
            g = grad(ctx.val_loss(), this->alphas_);
        } else {
            DAM_CHECK(ctx.train_loss && !ctx.weights.empty(), value_error,
                      "DARTS (second order): the context needs train_loss and the network weights");
            g = second_order_gradient(ctx);
        }
        for (std::size_t d = 0; d < g.size(); ++d) this->alphas_[d].grad() = g[d];
        this->adam_->step();
        this->zero_alpha_grads();
        this->check_alphas("DARTS");
        set_gates(false);  // the weight step sees the mixture but does not train alpha
    }
    void update(NasContext<T, D>&) {}
    const DARTSOptions& options() const { return opt_; }

    /// Mixes every decision with softmax(alpha): with the graph to alpha (architecture steps) or
    /// with detached weights (weight steps, evaluation of the supernet).
    void set_gates(bool differentiable) {
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            Var<T, D> w = ops::softmax(this->alphas_[d], 0);
            this->net_->set_gate(d, {-1, differentiable ? w : w.detach()});
        }
    }

    /// The second-order architecture gradient of the class comment at the current weights (which
    /// it leaves as they were); exposed for tests.
    std::vector<Tensor<T, D>> second_order_gradient(NasContext<T, D>& ctx) {
        auto& ws = ctx.weights;
        const optim::UpdateFn<T, D> update = ctx.weight_update ? ctx.weight_update : plain_sgd(ctx.weight_lr);
        std::vector<Tensor<T, D>> saved;
        for (auto& w : ws) saved.push_back(w.value().clone());
        // w' = w - u(grad_w L_train(w))
        set_gates(true);
        const auto u = update(grad(ctx.train_loss(), ws));
        {
            NoGradGuard no_grad;
            for (std::size_t i = 0; i < ws.size(); ++i)
                ws[i].value().copy_from(ops::sub(Var<T, D>(saved[i]), Var<T, D>(u[i])).value());
        }
        // grad_alpha L_val(w') and v = grad_w' L_val(w')
        std::vector<Var<T, D>> both(this->alphas_.begin(), this->alphas_.end());
        both.insert(both.end(), ws.begin(), ws.end());
        std::vector<Tensor<T, D>> g;
        try {
            set_gates(true);
            g = grad(ctx.val_loss(), both);
        } catch (...) {
            for (std::size_t i = 0; i < ws.size(); ++i) ws[i].value().copy_from(saved[i]);
            throw;
        }
        for (std::size_t i = 0; i < ws.size(); ++i) ws[i].value().copy_from(saved[i]);
        const std::vector<Tensor<T, D>> v(g.begin() + static_cast<std::ptrdiff_t>(this->alphas_.size()), g.end());
        g.resize(this->alphas_.size());
        const auto hv = optim::mixed_hessian_vector_product(
            ws, optim::update_jacobian_product(update, v),
            [&] {
                set_gates(true);
                return grad(ctx.train_loss(), this->alphas_);
            },
            opt_.hessian_step);
        NoGradGuard no_grad;
        for (std::size_t d = 0; d < g.size(); ++d) g[d] = ops::sub(Var<T, D>(g[d]), Var<T, D>(hv[d])).value();
        return g;
    }

private:
    static optim::UpdateFn<T, D> plain_sgd(double lr) {
        return [lr](const std::vector<Tensor<T, D>>& grads) {
            NoGradGuard no_grad;
            std::vector<Tensor<T, D>> u;
            for (const auto& g : grads) u.push_back(ops::mul_scalar(Var<T, D>(g), lr).value());
            return u;
        };
    }
    DARTSOptions opt_;
};

}  // namespace diffautoml::nas
