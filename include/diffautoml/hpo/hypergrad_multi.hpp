#pragma once
// HypergradMulti: one-step hypergradients of per-group learning rates and weight decays and of
// label smoothing from one validation gradient, on the machinery of hypergrad.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hypergrad.hpp"

namespace diffautoml::hpo {

/// Per-group learning rates and weight decays plus label smoothing, all from one validation
/// gradient. The label-smoothing direction grad U - grad CE costs one extra backward pass from the
/// logits through the retained graph (no extra forward pass).
template <class T = float>
class HypergradMulti : public detail::HypergradBase<T> {
public:
    using options_type = HypergradOptions;
    static constexpr std::string_view policy_name = "hypergrad_multi";

    /// As JointSearch makes it: the run's warm-up and cosine factor on the learned rates; the
    /// learned smoothing starts at options.label_smoothing.
    HypergradMulti(const std::vector<optim::ParamGroup<T, cpu>>& groups, HypergradOptions o,
                   std::function<double(std::int64_t)> lr_factor)
        : HypergradMulti(groups, detail::with_factor(o, std::move(lr_factor)), o.label_smoothing) {}
    HypergradMulti(const std::vector<optim::ParamGroup<T, cpu>>& groups, HypergradOptions o = {},
                   double label_smoothing = 0.05)
        : detail::HypergradBase<T>(groups, o) {
        for (const auto& g : groups) {
            lrs_.push_back({"lr/" + g.name, g.lr, this->opt_.lr_lo, this->opt_.lr_hi, true});
            wds_.push_back({"weight_decay/" + g.name, std::max(g.weight_decay, this->opt_.wd_lo), this->opt_.wd_lo,
                            this->opt_.wd_hi, true});
            lrs_.back().check();
            wds_.back().check();
        }
        eps_ = {"label_smoothing", label_smoothing, this->opt_.smoothing_lo, this->opt_.smoothing_hi, false};
        eps_.check();
    }
    double label_smoothing() const override { return eps_.value; }

    /// loss.backward(), plus the direction d(grad L_train)/d eps = grad U - grad CE = J^T delta with
    /// delta = dU/dz - dCE/dz = (onehot - 1/K) / N at the logits z. Every other leaf's gradient is
    /// left exactly as the plain backward pass would leave it.
    void backward(const Var<T>& loss, const Var<T>& logits, const Tensor<std::int32_t>& labels) {
        const std::int64_t N = logits.dim(0), K = logits.dim(1);
        Tensor<T, cpu> delta = Tensor<T, cpu>::full(logits.shape(), static_cast<T>(-1.0 / static_cast<double>(K * N)));
        for (std::int64_t i = 0; i < N; ++i) delta[i * K + labels[i]] += static_cast<T>(1.0 / static_cast<double>(N));
        const auto leaves = loss.reachable_leaves();
        std::vector<Tensor<T, cpu>> saved;
        for (auto& l : leaves) {
            saved.push_back(l->grad);
            l->grad = Tensor<T, cpu>();
        }
        logits.backward(delta, true);
        auto& sgd = this->sgd();
        dir_.assign(sgd.group_count(), {});
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi)
            for (const auto& p : sgd.group(gi)) dir_[gi].push_back(p.grad().defined() ? p.grad().clone() : Tensor<T, cpu>());
        for (std::size_t i = 0; i < leaves.size(); ++i) leaves[i]->grad = saved[i];
        loss.backward();
    }

    Rates rates(std::int64_t step) const override {
        const double f = this->lr_factor(step);
        Rates r;
        for (std::size_t g = 0; g < lrs_.size(); ++g) {
            r.lr.push_back(lrs_[g].value * f);
            r.wd.push_back(this->decays_[g] ? wds_[g].value : 0.0);
        }
        return r;
    }
    void step(HpoContext<T>& ctx) {
        const double f = this->lr_factor(ctx.step);
        const std::size_t G = lrs_.size();
        const Rates r = rates(ctx.step);
        this->sgd_->step(r.lr, r.wd);
        if (!this->validation_gradient(ctx)) {
            this->sgd_->zero_grad();
            return;
        }
        const auto hl = this->sgd_->lr_hypergradients(), hw = this->sgd_->wd_hypergradients();
        for (std::size_t g = 0; g < G; ++g) {
            lrs_[g].apply(hl[g] * f, this->opt_.hyper_lr);
            if (this->decays_[g]) wds_[g].apply(hw[g], this->opt_.hyper_lr);
        }
        if (!dir_.empty()) {
            last_smoothing_ = this->sgd_->direction_hypergradient(dir_);
            eps_.apply(last_smoothing_, this->opt_.smoothing_hyper_lr);
        }
        this->sgd_->zero_grad();
    }
    std::vector<std::pair<std::string, double>> values() const {
        std::vector<std::pair<std::string, double>> out;
        for (std::size_t g = 0; g < lrs_.size(); ++g) {
            out.emplace_back(lrs_[g].name, lrs_[g].value);
            if (this->decays_[g]) out.emplace_back(wds_[g].name, wds_[g].value);
        }
        out.emplace_back(eps_.name, eps_.value);
        return out;
    }
    double last_smoothing_hypergradient() const { return last_smoothing_; }
    const std::vector<std::vector<Tensor<T, cpu>>>& smoothing_direction() const { return dir_; }

public:
    void save_state(ByteWriter& w) const {
        this->sgd_->save_state(w);
        for (const auto& h : lrs_) h.save_state(w);
        for (const auto& h : wds_) h.save_state(w);
        eps_.save_state(w);
    }
    void load_state(ByteReader& r) {
        this->sgd_->load_state(r);
        for (auto& h : lrs_) h.load_state(r);
        for (auto& h : wds_) h.load_state(r);
        eps_.load_state(r);
    }

private:
    std::vector<Hyperparameter> lrs_, wds_;
    Hyperparameter eps_;
    std::vector<std::vector<Tensor<T, cpu>>> dir_;
    double last_smoothing_ = 0;
};

static_assert(HpoPolicy<HypergradMulti<float>>);

}  // namespace diffautoml::hpo
