#pragma once
// The weight step the hypergradient policies differentiate (HyperSGD) and bounded hyperparameters
// (Hyperparameter): one-step hypergradients of training hyperparameters (docs/algorithm.md step 6;
// Luketina et al. 2016, Baydin et al. 2018), several at once and per parameter group.
//
// The weight step is momentum SGD written as a function of the hyperparameters:
//     d = g + lambda w,   buf' = mu buf + d,   w' = w - eta buf'
// so with v = grad_w L_val(w') from one clean validation batch (the Hessian term dropped):
//     dL_val/d eta    = -v . buf'
//     dL_val/d lambda = -eta v . w       (w = w' + eta buf', so nothing extra is stored)
//     dL_val/d eps    = -eta v . (grad U - grad CE)   for label smoothing, L_train = (1 - eps) CE + eps U
// summed within each parameter group that shares the hyperparameter.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../ops.hpp"
#include "../optim/optimizer.hpp"
#include "horizon.hpp"

namespace diffautoml::hpo {

/// A hyperparameter kept in [lo, hi]. Hypergradient steps use Adam on u = log(value) (log_scale)
/// or on the value itself, then clamp: a bounded parametrisation whose step size does not depend
/// on the hypergradient's scale.
struct Hyperparameter {
    std::string name;
    double value = 0, lo = 0, hi = 1;
    bool log_scale = true;
    double m = 0, v = 0;
    std::int64_t t = 0;

    void check() const {
        DAM_CHECK(std::isfinite(value) && lo <= value && value <= hi && (!log_scale || lo > 0), value_error,
                  "hyperparameter '{}': the value {} must be finite and lie in its range [{}, {}]{}; start it inside "
                  "the range (--lr, --wd) or move the range's bounds (--lr-min, --wd-max)",
                  name, value, lo, hi, log_scale ? " with a positive lower bound (log scale)" : "");
    }
    /// One Adam step against dL/d value; returns the new value.
    double apply(double dl_dvalue, double lr, double beta1 = 0.9, double beta2 = 0.999) {
        DAM_CHECK(std::isfinite(dl_dvalue), value_error,
                  "hyperparameter '{}': the hypergradient is {}; the validation loss diverged (lower the learning "
                  "rate range or the hyper learning rate)",
                  name, dl_dvalue);
        const double g = log_scale ? dl_dvalue * value : dl_dvalue;  // chain rule for u = log(value)
        ++t;
        m = beta1 * m + (1 - beta1) * g;
        v = beta2 * v + (1 - beta2) * g * g;
        const double step = lr * (m / (1 - std::pow(beta1, static_cast<double>(t)))) /
                            (std::sqrt(v / (1 - std::pow(beta2, static_cast<double>(t)))) + 1e-12);
        value = log_scale ? std::exp(std::log(value) - step) : value - step;
        value = std::clamp(value, lo, hi);
        return value;
    }
    void save_state(ByteWriter& w) const {
        w.put(value);
        w.put(m);
        w.put(v);
        w.put(t);
    }
    void load_state(ByteReader& r) {
        value = r.get<double>();
        m = r.get<double>();
        v = r.get<double>();
        t = r.get<std::int64_t>();
        DAM_CHECK(std::isfinite(value) && lo <= value && value <= hi, format_error,
                  "hyperparameter '{}': the checkpoint holds {} outside [{}, {}]", name, value, lo, hi);
    }
};

/// The differentiable momentum-SGD step of the file comment, per parameter group, on any device
/// (the dot products are float sums on a GPU, double sums on the CPU).
template <class T, Device D = cpu>
class HyperSGD {
public:
    HyperSGD(std::vector<std::vector<Var<T, D>>> groups, double momentum) : groups_(std::move(groups)), mu_(momentum) {
        DAM_CHECK(momentum >= 0 && momentum < 1, value_error, "HyperSGD: momentum must be in [0, 1), got {}", momentum);
        for (auto& g : groups_) buffers_.emplace_back(g.size());
    }
    std::size_t group_count() const { return groups_.size(); }
    const std::vector<Var<T, D>>& group(std::size_t gi) const { return groups_[gi]; }
    const Tensor<T, D>& buffer(std::size_t gi, std::size_t pi) const { return buffers_[gi][pi]; }
    double momentum() const { return mu_; }

    /// w' = w - eta_g (mu buf + g + lambda_g w) for every parameter with a gradient.
    void step(const std::vector<double>& lr, const std::vector<double>& wd) {
        DAM_CHECK(lr.size() == groups_.size() && wd.size() == groups_.size(), value_error,
                  "HyperSGD: {} groups need {} learning rates and weight decays, got {} and {}", groups_.size(),
                  groups_.size(), lr.size(), wd.size());
        NoGradGuard no_grad;
        lr_ = lr;
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
            const T eta = static_cast<T>(lr[gi]), lambda = static_cast<T>(wd[gi]), mu = static_cast<T>(mu_);
            for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) {
                const auto& p = groups_[gi][pi];
                if (!p.grad().defined()) continue;
                auto& buf = buffers_[gi][pi];
                if (!buf.defined()) buf = Tensor<T, D>::zeros(p.shape());
                T* w = p.value().data();
                T* b = buf.data();
                const T* g = p.grad().data();
                // The optimizer kernel's update on every device: d = g + lambda w, b = mu b + d (b
                // starts at zero), w -= eta b.
                sgd_step(D{}, w, g, b, p.numel(), body::SgdStep<T>{eta, lambda, mu, T(1), false, false});
            }
        }
    }
    /// The update step(lr, wd) would subtract from `weights` for the gradients `grads` (one per
    /// weight, matched to the groups' parameters by identity), u = eta_g (mu buf + g + lambda_g w),
    /// without changing any state; zero for a weight in no group. For unrolled (bilevel) gradients.
    std::vector<Tensor<T, D>> update_for(const std::vector<double>& lr, const std::vector<double>& wd,
                                         const std::vector<Var<T, D>>& weights,
                                         const std::vector<Tensor<T, D>>& grads) const {
        DAM_CHECK(weights.size() == grads.size() && lr.size() == groups_.size() && wd.size() == groups_.size(),
                  value_error, "HyperSGD::update_for: {} weights with {} gradients, {} groups with {} rates and {} decays",
                  weights.size(), grads.size(), groups_.size(), lr.size(), wd.size());
        NoGradGuard no_grad;
        std::unordered_map<const void*, std::pair<std::size_t, std::size_t>> where;
        for (std::size_t gi = 0; gi < groups_.size(); ++gi)
            for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) where[groups_[gi][pi].node()] = {gi, pi};
        std::vector<Tensor<T, D>> out;
        for (std::size_t i = 0; i < weights.size(); ++i) {
            const auto it = where.find(weights[i].node());
            if (it == where.end()) {
                out.push_back(Tensor<T, D>::zeros(weights[i].shape()));
                continue;
            }
            const auto [gi, pi] = it->second;
            Var<T, D> d = ops::add(Var<T, D>(grads[i]), ops::mul_scalar(Var<T, D>(weights[i].value()), wd[gi]));
            if (buffers_[gi][pi].defined()) d = ops::add(d, ops::mul_scalar(Var<T, D>(buffers_[gi][pi]), mu_));
            out.push_back(ops::mul_scalar(d, lr[gi]).value());
        }
        return out;
    }
    /// With v = the parameters' current gradients (grad L_val at w'): dL_val/d eta_g = -v_g . buf_g.
    std::vector<double> lr_hypergradients() const {
        std::vector<double> h(groups_.size(), 0.0);
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) h[gi] = -dot_with_buffers(gi);
        return h;
    }
    /// dL_val/d lambda_g = -eta_g v_g . w_g with w_g = w'_g + eta_g buf_g the weights before the step.
    std::vector<double> wd_hypergradients() const {
        std::vector<double> h(groups_.size(), 0.0);
        for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
            const double vw = group_dot(gi, [&](std::size_t pi) -> const Tensor<T, D>& { return groups_[gi][pi].value(); });
            h[gi] = -lr_.at(gi) * (vw + lr_.at(gi) * dot_with_buffers(gi));
        }
        return h;
    }
    /// dL_val/d h for a hyperparameter that enters the step through the gradient as g + h dir:
    /// -sum_g eta_g v_g . dir_g (dir holds one tensor per parameter, in group order; empty = 0).
    double direction_hypergradient(const std::vector<std::vector<Tensor<T, D>>>& dir) const {
        double h = 0;
        for (std::size_t gi = 0; gi < groups_.size(); ++gi)
            for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) {
                const auto& p = groups_[gi][pi];
                if (!p.grad().defined() || !dir[gi][pi].defined()) continue;
                h -= lr_.at(gi) * dot_sum(D{}, std::vector<const T*>{p.grad().data()},
                                          std::vector<const T*>{dir[gi][pi].data()}, std::vector<std::int64_t>{p.numel()});
            }
        return h;
    }
    /// Releases every gradient (PyTorch's set_to_none): a parameter that the next backward pass
    /// does not reach, such as a candidate the supernet did not sample, then gets no update, no
    /// decay and no momentum step, and the state of a run is exactly what a checkpoint holds.
    void zero_grad() {
        for (auto& g : groups_)
            for (auto& p : g) p.grad() = Tensor<T, D>();
    }
    /// Momentum buffers and the last rates, for checkpoints.
    void save_state(ByteWriter& w) const {
        for (const auto& g : buffers_)
            for (const auto& b : g) put_tensor(w, b);
        put_doubles(w, lr_);
    }
    void load_state(ByteReader& r) {
        for (auto& g : buffers_)
            for (auto& b : g) get_tensor(r, b, "HyperSGD state");
        std::vector<double> lr;
        get_doubles(r, lr, "HyperSGD state");
        lr_ = lr;
    }

private:
    /// sum over group gi's stepped parameters of grad . other(pi), in double; on a device the
    /// partial sums stay there and one value is read back per group.
    template <class Other>
    double group_dot(std::size_t gi, Other&& other) const {
        std::vector<const T*> a, b;
        std::vector<std::int64_t> n;
        for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) {
            const auto& p = groups_[gi][pi];
            if (!p.grad().defined() || !buffers_[gi][pi].defined()) continue;
            const Tensor<T, D>& o = other(pi);
            a.push_back(p.grad().data());
            b.push_back(o.data());
            n.push_back(p.numel());
        }
        return dot_sum(D{}, a, b, n);
    }
    double dot_with_buffers(std::size_t gi) const {
        return group_dot(gi, [&](std::size_t pi) -> const Tensor<T, D>& { return buffers_[gi][pi]; });
    }
    std::vector<std::vector<Var<T, D>>> groups_;
    std::vector<std::vector<Tensor<T, D>>> buffers_;
    std::vector<double> lr_;
    double mu_;
};

/// Per-group learning rates and weight decays of one weight step.
struct Rates {
    std::vector<double> lr, wd;
};

}  // namespace diffautoml::hpo
