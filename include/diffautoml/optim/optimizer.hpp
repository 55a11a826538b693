#pragma once
// Optimizers over parameter groups: SGD (momentum, Nesterov, weight decay) and Adam/AdamW.
#include <cmath>
#include <string>
#include <vector>

#include "../autograd/variable.hpp"
#include "../core/state.hpp"
#include "../ops/cpu/optim.hpp"
#include "../ops/elementwise.hpp"

namespace diffautoml::optim {

/// Parameters that share a learning rate and weight decay (e.g. no decay on BN and biases).
template <class T, Device D = cpu>
struct ParamGroup {
    std::vector<Var<T, D>> params;
    double lr = 0.1;
    double weight_decay = 0.0;
    std::string name = "default";
};

/// Splits named parameters into (decayed: weights of rank >= 2) and (not decayed: biases, BN).
template <class T, Device D>
std::vector<ParamGroup<T, D>> decay_groups(const std::vector<std::pair<std::string, Var<T, D>>>& named, double lr,
                                           double weight_decay) {
    ParamGroup<T, D> decay{{}, lr, weight_decay, "decay"}, no_decay{{}, lr, 0.0, "no_decay"};
    for (auto& [name, p] : named) (p.shape().rank() >= 2 ? decay : no_decay).params.push_back(p);
    return {decay, no_decay};
}

template <class T, Device D = cpu>
class Optimizer {
public:
    explicit Optimizer(std::vector<ParamGroup<T, D>> groups) : groups_(std::move(groups)) {
        for (auto& g : groups_) {
            DAM_CHECK(g.lr >= 0 && std::isfinite(g.lr), value_error, "optimizer: learning rate of group '{}' is {}; it must be finite and >= 0", g.name, g.lr);
            DAM_CHECK(g.weight_decay >= 0, value_error, "optimizer: weight decay of group '{}' is {}; it must be >= 0", g.name, g.weight_decay);
        }
    }
    virtual ~Optimizer() = default;
    virtual void step() = 0;
    /// Releases every gradient (the default, as PyTorch's set_to_none): step() skips a parameter
    /// whose gradient is undefined, so a candidate the next backward pass does not reach (a
    /// supernet path that was not sampled) gets no weight decay and no momentum step.
    void zero_grad() {
        for (auto& g : groups_)
            for (auto& p : g.params) p.zero_grad();
    }
    /// Fills the defined gradients with zeros instead: such parameters keep stepping (decay and
    /// momentum) even when no later backward pass reaches them.
    void fill_grad_zero() {
        for (auto& g : groups_)
            for (auto& p : g.params) p.fill_grad_zero();
    }
    /// Sets the learning rate of every group (schedules call this each step).
    void set_lr(double lr) {
        for (auto& g : groups_) g.lr = lr;
    }
    std::vector<ParamGroup<T, D>>& groups() { return groups_; }
    const std::vector<ParamGroup<T, D>>& groups() const { return groups_; }

protected:
    std::vector<ParamGroup<T, D>> groups_;
};

struct SGDOptions {
    double momentum = 0.0;
    bool nesterov = false;
    double dampening = 0.0;
};

/// SGD with momentum, as PyTorch writes it (docs/algorithm.md step 5):
///   d = g + lambda w;  buf = mu buf + (1 - dampening) d  (buf = d on the first step);
///   w -= eta * (nesterov ? d + mu buf : buf).
template <class T, Device D = cpu>
class SGD : public Optimizer<T, D> {
public:
    SGD(std::vector<ParamGroup<T, D>> groups, SGDOptions opt = {}) : Optimizer<T, D>(std::move(groups)), opt_(opt) {
        DAM_CHECK(opt.momentum >= 0 && opt.momentum < 1, value_error, "SGD: momentum must be in [0, 1), got {}", opt.momentum);
        DAM_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0), value_error,
                  "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
        for (auto& g : this->groups_) buffers_.emplace_back(g.params.size());
    }
    void step() override {
        NoGradGuard no_grad;
        for (std::size_t gi = 0; gi < this->groups_.size(); ++gi) {
            const auto& g = this->groups_[gi];
            body::SgdStep<T> s{static_cast<T>(g.lr), static_cast<T>(g.weight_decay), static_cast<T>(opt_.momentum),
                               static_cast<T>(1 - opt_.dampening), opt_.nesterov, false};
            for (std::size_t pi = 0; pi < g.params.size(); ++pi) {
                const auto& p = g.params[pi];
                if (!p.grad().defined()) continue;
                Tensor<T, D>& buf = buffers_[gi][pi];
                s.first = !buf.defined();
                if (s.mu > 0 && s.first) buf = Tensor<T, D>(p.shape());
                sgd_step(D{}, p.value().data(), p.grad().data(), buf.defined() ? buf.data() : static_cast<T*>(nullptr),
                         p.numel(), s);
            }
        }
    }
    /// The update step() would subtract from `weights` now for gradients `grads` (one per weight,
    /// matched to the groups' parameters by identity; zero for a weight in no group), computed by
    /// the same kernel on copies, so no state changes. For unrolled (bilevel) gradients.
    std::vector<Tensor<T, D>> update_for(const std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& grads) const {
        DAM_CHECK(weights.size() == grads.size(), value_error, "SGD::update_for: {} weights with {} gradients",
                  weights.size(), grads.size());
        NoGradGuard no_grad;
        std::vector<Tensor<T, D>> out;
        for (std::size_t i = 0; i < weights.size(); ++i) {
            Tensor<T, D> u = Tensor<T, D>::zeros(weights[i].shape());
            for (std::size_t gi = 0; gi < this->groups_.size(); ++gi) {
                const auto& g = this->groups_[gi];
                for (std::size_t pi = 0; pi < g.params.size(); ++pi) {
                    if (g.params[pi].node() != weights[i].node()) continue;
                    const Tensor<T, D>& buf = buffers_[gi][pi];
                    body::SgdStep<T> s{static_cast<T>(g.lr), static_cast<T>(g.weight_decay), static_cast<T>(opt_.momentum),
                                       static_cast<T>(1 - opt_.dampening), opt_.nesterov, !buf.defined()};
                    Tensor<T, D> w = weights[i].value().clone();
                    Tensor<T, D> b = buf.defined() ? buf.clone() : Tensor<T, D>(weights[i].shape());
                    sgd_step(D{}, w.data(), grads[i].data(), s.mu > 0 ? b.data() : static_cast<T*>(nullptr), w.numel(), s);
                    u = ops::sub(Var<T, D>(weights[i].value()), Var<T, D>(w)).value();
                }
            }
            out.push_back(std::move(u));
        }
        return out;
    }
    /// The momentum buffer of parameter `pi` of group `gi` (undefined before the first step).
    const Tensor<T, D>& momentum_buffer(std::size_t gi, std::size_t pi) const { return buffers_[gi][pi]; }
    const SGDOptions& options() const { return opt_; }
    /// Momentum buffers, for checkpoints.
    void save_state(ByteWriter& w) const {
        for (const auto& g : buffers_)
            for (const auto& b : g) put_tensor(w, b);
    }
    void load_state(ByteReader& r) {
        for (auto& g : buffers_)
            for (auto& b : g) get_tensor(r, b, "SGD state");
    }

private:
    SGDOptions opt_;
    std::vector<std::vector<Tensor<T, D>>> buffers_;
};

struct AdamOptions {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    bool decoupled_weight_decay = false;  ///< AdamW (Loshchilov & Hutter) instead of L2 in the gradient
};

/// Adam (Kingma & Ba 2015) with bias correction.
template <class T, Device D = cpu>
class Adam : public Optimizer<T, D> {
public:
    Adam(std::vector<ParamGroup<T, D>> groups, AdamOptions opt = {}) : Optimizer<T, D>(std::move(groups)), opt_(opt) {
        DAM_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1 && opt.eps > 0, value_error,
                  "Adam: betas ({}, {}) must be in [0, 1) and eps {} > 0", opt.beta1, opt.beta2, opt.eps);
        for (auto& g : this->groups_) state_.emplace_back(g.params.size());
    }
    void step() override {
        NoGradGuard no_grad;
        ++t_;
        const double c1 = 1 - std::pow(opt_.beta1, static_cast<double>(t_));
        const double c2 = 1 - std::pow(opt_.beta2, static_cast<double>(t_));
        for (std::size_t gi = 0; gi < this->groups_.size(); ++gi) {
            const auto& g = this->groups_[gi];
            const body::AdamStep<T> s{static_cast<T>(g.lr),         static_cast<T>(g.lr / c1),
                                      static_cast<T>(g.weight_decay), static_cast<T>(opt_.beta1),
                                      static_cast<T>(opt_.beta2),     static_cast<T>(opt_.eps),
                                      static_cast<T>(1.0 / std::sqrt(c2)), opt_.decoupled_weight_decay};
            for (std::size_t pi = 0; pi < g.params.size(); ++pi) {
                const auto& p = g.params[pi];
                if (!p.grad().defined()) continue;
                auto& [m, v] = state_[gi][pi];
                if (!m.defined()) {
                    m = Tensor<T, D>::zeros(p.shape());
                    v = Tensor<T, D>::zeros(p.shape());
                }
                adam_step(D{}, p.value().data(), p.grad().data(), m.data(), v.data(), p.numel(), s);
            }
        }
    }
    std::int64_t steps() const { return t_; }
    /// Step count and moments, for checkpoints.
    void save_state(ByteWriter& w) const {
        w.put<std::int64_t>(t_);
        for (const auto& g : state_)
            for (const auto& [m, v] : g) {
                put_tensor(w, m);
                put_tensor(w, v);
            }
    }
    void load_state(ByteReader& r) {
        t_ = r.get<std::int64_t>();
        for (auto& g : state_)
            for (auto& [m, v] : g) {
                get_tensor(r, m, "Adam state");
                get_tensor(r, v, "Adam state");
            }
    }

private:
    AdamOptions opt_;
    std::int64_t t_ = 0;
    std::vector<std::vector<std::pair<Tensor<T, D>, Tensor<T, D>>>> state_;
};

}  // namespace diffautoml::optim
