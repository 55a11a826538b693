#pragma once
// The hypergradient policy HypergradLrWd (learning rate and weight decay per parameter group,
// one-step or forward mode, docs/algorithm.md step 6) on HyperSGD's differentiated weight step
// (hyper_sgd.hpp), and the machinery it shares with HypergradMulti (hypergrad_multi.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "concept.hpp"
#include "hyper_sgd.hpp"

namespace diffautoml::hpo {

struct HypergradOptions {
    double momentum = 0.9;
    double hyper_lr = 0.01;        ///< Adam step on log(eta), log(lambda) (about 1% per step at most)
    double smoothing_hyper_lr = 0.002;
    double lr_lo = 1e-4, lr_hi = 1.0;
    double wd_lo = 1e-6, wd_hi = 1e-2;
    double smoothing_lo = 0.0, smoothing_hi = 0.3;
    std::int64_t every = 1;        ///< hypergradient step every k weight steps
    /// Fixed eps of the training loss (1 - eps) CE + eps U of HypergradLrWd; HypergradMulti learns
    /// its own eps instead. The validation loss is always plain cross-entropy.
    double label_smoothing = 0.0;
    /// Multiplier of the learned learning rate at step t (e.g. a cosine decay); 1 by default.
    std::function<double(std::int64_t)> lr_factor;
    /// The hypergradient's horizon (horizon.hpp): forgetting 0 (the default) is the one-step
    /// method; HypergradLrWd also offers forward mode with forgetting and curvature.
    HorizonOptions horizon{};
};

inline void to_json(nlohmann::json& j, const HypergradOptions& o) {
    j = {{"momentum", o.momentum},
         {"hyper_lr", o.hyper_lr},
         {"smoothing_hyper_lr", o.smoothing_hyper_lr},
         {"lr_lo", o.lr_lo},
         {"lr_hi", o.lr_hi},
         {"wd_lo", o.wd_lo},
         {"wd_hi", o.wd_hi},
         {"smoothing_lo", o.smoothing_lo},
         {"smoothing_hi", o.smoothing_hi},
         {"every", o.every},
         {"label_smoothing", o.label_smoothing},
         {"horizon", o.horizon}};
}

namespace detail {

inline HypergradOptions with_factor(HypergradOptions o, std::function<double(std::int64_t)> f) {
    o.lr_factor = std::move(f);
    return o;
}

/// Shared machinery: groups, HyperSGD, the validation pass.
template <class T, Device D = cpu>
class HypergradBase {
public:
    using value_type = T;
    using device_type = D;

    HypergradBase(const std::vector<optim::ParamGroup<T, D>>& groups, HypergradOptions o) : opt_(std::move(o)) {
        DAM_CHECK(!groups.empty(), value_error, "hypergradient HPO: needs at least one parameter group");
        DAM_CHECK(opt_.every >= 1 && opt_.hyper_lr > 0, value_error, "hypergradient HPO: every {} must be >= 1 and hyper_lr {} > 0",
                  opt_.every, opt_.hyper_lr);
        DAM_CHECK(opt_.label_smoothing >= 0 && opt_.label_smoothing < 1, value_error,
                  "hypergradient HPO: label_smoothing must be in [0, 1), got {}", opt_.label_smoothing);
        opt_.horizon.check();
        std::vector<std::vector<Var<T, D>>> params;
        for (const auto& g : groups) {
            params.push_back(g.params);
            names_.push_back(g.name);
            decays_.push_back(g.weight_decay > 0);
        }
        sgd_ = std::make_unique<HyperSGD<T, D>>(params, opt_.momentum);
    }
    Var<T, D> training_loss(const Var<T, D>& logits, const Tensor<std::int32_t, D>& labels) const {
        return ops::cross_entropy(logits, labels, {label_smoothing(), ops::Reduction::mean});
    }
    virtual double label_smoothing() const { return opt_.label_smoothing; }
    void backward(const Var<T, D>& loss, const Var<T, D>&, const Tensor<std::int32_t, D>&) { loss.backward(); }
    HyperSGD<T, D>& sgd() { return *sgd_; }
    /// The options it was made with (ranges, rates, schedule).
    const HypergradOptions& options() const { return opt_; }
    double lr_factor(std::int64_t step) const { return opt_.lr_factor ? opt_.lr_factor(step) : 1.0; }
    /// The per-group learning rates (schedule applied) and weight decays of the weight step at `step`.
    virtual Rates rates(std::int64_t step) const = 0;
    /// The update the weight step at `step` would subtract for gradients `grads` (one per weight of
    /// `weights`), without changing any state: what bilevel NAS and DA policies unroll through.
    std::vector<Tensor<T, D>> weight_update(std::int64_t step, const std::vector<Var<T, D>>& weights,
                                            const std::vector<Tensor<T, D>>& grads) const {
        const Rates r = rates(step);
        return sgd_->update_for(r.lr, r.wd, weights, grads);
    }
    virtual ~HypergradBase() = default;

protected:
    /// The validation gradient v = grad L_val(w') in the parameters' grads; false when skipped.
    bool validation_gradient(HpoContext<T, D>& ctx) {
        if (ctx.frozen || ctx.step % opt_.every != 0) return false;
        sgd_->zero_grad();
        if (ctx.validation_backward) {
            ctx.validation_backward();
            return true;
        }
        if (ctx.val_loss) {
            auto loss = ctx.val_loss();
            if (loss.requires_grad()) loss.backward();
            return true;
        }
        DAM_CHECK(ctx.validation && ctx.forward, value_error,
                  "hypergradient HPO: the context needs a ValidationSet (hpo::hold_out) and the network's forward, "
                  "or a validation loss (HpoContext::val_loss)");
        auto b = ctx.validation->next(ctx.validation_batch);
        auto loss = ops::cross_entropy(ctx.forward(b.images), on_device<D>(b.labels));
        if (loss.requires_grad()) loss.backward();
        return true;
    }
    HypergradOptions opt_;
    std::unique_ptr<HyperSGD<T, D>> sgd_;
    std::vector<std::string> names_;
    std::vector<bool> decays_;
};

}  // namespace detail

/// DiffAutoML's HPO: one learning rate for every group and one weight decay for the groups that
/// decay, both learned from the one-step validation hypergradient.
template <class T = float, Device D = cpu>
class HypergradLrWd : public detail::HypergradBase<T, D> {
public:
    using options_type = HypergradOptions;
    static constexpr std::string_view policy_name = "hypergrad_lr_wd";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// the one-step hypergradient is summed over the ranks through HpoContext::reduce, or with
    /// defer_reduce left pending for the trainer's next allreduce (pending(), apply_pending()).
    static constexpr bool data_parallel = true;

    /// As JointSearch makes it: the run's warm-up and cosine factor on the learned rate.
    HypergradLrWd(const std::vector<optim::ParamGroup<T, D>>& groups, HypergradOptions o,
                  std::function<double(std::int64_t)> lr_factor)
        : HypergradLrWd(groups, detail::with_factor(std::move(o), std::move(lr_factor))) {}
    HypergradLrWd(const std::vector<optim::ParamGroup<T, D>>& groups, HypergradOptions o = {})
        : detail::HypergradBase<T, D>(groups, o) {
        double wd = 0;
        for (const auto& g : groups) wd = std::max(wd, g.weight_decay);
        lr_ = {"lr", groups.front().lr, this->opt_.lr_lo, this->opt_.lr_hi, true};
        wd_ = {"weight_decay", std::max(wd, this->opt_.wd_lo), this->opt_.wd_lo, this->opt_.wd_hi, true};
        lr_.check();
        wd_.check();
        if (!this->opt_.horizon.one_step()) tangents_ = detail::ForwardTangents<T, D>(this->opt_.horizon, 2);
    }
    Rates rates(std::int64_t step) const override {
        const std::size_t G = this->sgd_->group_count();
        Rates r{std::vector<double>(G, lr_.value * this->lr_factor(step)), std::vector<double>(G, 0.0)};
        for (std::size_t g = 0; g < G; ++g) r.wd[g] = this->decays_[g] ? wd_.value : 0.0;
        return r;
    }
    void step(HpoContext<T, D>& ctx) {
        const double f = this->lr_factor(ctx.step);
        const std::size_t G = this->sgd_->group_count();
        const Rates r = rates(ctx.step);
        // Forward mode (horizon.hpp): the tangents follow every weight step, the hyperparameters
        // move every `every` steps. Hyperparameter 0 is the base rate (group rate f * lr), 1 the decay.
        const bool forward = !this->opt_.horizon.one_step() && !ctx.frozen;
        DAM_CHECK(!forward || !ctx.validation_backward, value_error,
                  "HypergradLrWd: the forward-mode hypergradient (horizon forgetting > 0) does not run sharded yet "
                  "(data-parallel ranks or micro-batches): its tangents would need a reduction of a whole model a "
                  "step; use the one-step method (forgetting 0) or one rank without micro-batches");
        std::vector<Sensitivity> sens;
        if (forward) {
            sens.assign(2, Sensitivity{std::vector<double>(G, 0.0), std::vector<double>(G, 0.0)});
            for (std::size_t g = 0; g < G; ++g) {
                sens[0].rate[g] = f;
                sens[1].decay[g] = this->decays_[g] ? 1.0 : 0.0;
            }
            tangents_.before_step(*this->sgd_, r.lr, r.wd, sens, ctx.train_loss);
        }
        this->sgd_->step(r.lr, r.wd);
        if (forward) tangents_.after_step(*this->sgd_, r.lr, sens);
        if (!this->validation_gradient(ctx)) {
            this->sgd_->zero_grad();
            return;
        }
        double dlr = 0, dwd = 0;
        if (forward) {
            const auto h = tangents_.hypergradients(*this->sgd_);
            dlr = h[0];
            dwd = h[1];
        } else {
            const auto hl = this->sgd_->lr_hypergradients(), hw = this->sgd_->wd_hypergradients();
            for (std::size_t g = 0; g < G; ++g) {
                dlr += hl[g] * f;  // the group's rate is f * lr
                if (this->decays_[g]) dwd += hw[g];
            }
            if (ctx.reduce && ctx.defer_reduce) {  // the trainer sums it with its next allreduce
                pending_ = {dlr, dwd};
                this->sgd_->zero_grad();
                return;
            }
            if (ctx.reduce) {  // linear in grad L_val: the ranks' parts sum to the global batch's
                double h[2] = {dlr, dwd};
                ctx.reduce(std::span<double>(h));
                dlr = h[0];
                dwd = h[1];
            }
        }
        apply(dlr, dwd);
        this->sgd_->zero_grad();
    }
    /// A hypergradient step left pending by HpoContext::defer_reduce: this rank's parts of (dL/d lr,
    /// dL/d weight_decay), empty when there is none.
    const std::vector<double>& pending() const { return pending_; }
    /// Applies the pending hypergradient step with `sums`, its parts summed over the ranks; then
    /// nothing is pending.
    void apply_pending(std::span<const double> sums) {
        DAM_CHECK(pending_.size() == 2 && sums.size() == 2, value_error,
                  "HypergradLrWd::apply_pending: {} sums for {} pending hypergradients", sums.size(), pending_.size());
        pending_.clear();
        apply(sums[0], sums[1]);
    }
    std::vector<std::pair<std::string, double>> values() const { return {{"lr", lr_.value}, {"weight_decay", wd_.value}}; }
    /// The hypergradients (dL/d lr, dL/d weight_decay) of the last hyper step.
    std::pair<double, double> last_hypergradients() const { return last_; }
    Hyperparameter& lr() { return lr_; }
    Hyperparameter& weight_decay() { return wd_; }
    void save_state(ByteWriter& w) const {
        DAM_CHECK(pending_.empty(), value_error,
                  "HypergradLrWd::save_state: a deferred hypergradient is pending; apply it (apply_pending) first");
        this->sgd_->save_state(w);
        lr_.save_state(w);
        wd_.save_state(w);
        if (!this->opt_.horizon.one_step()) tangents_.save_state(w);
    }
    void load_state(ByteReader& r) {
        this->sgd_->load_state(r);
        lr_.load_state(r);
        wd_.load_state(r);
        if (!this->opt_.horizon.one_step()) tangents_.load_state(r);
    }
    /// The forward-mode tangents (empty with the one-step method).
    const detail::ForwardTangents<T, D>& tangents() const { return tangents_; }

private:
    void apply(double dlr, double dwd) {
        last_ = {dlr, dwd};
        lr_.apply(dlr, this->opt_.hyper_lr);
        wd_.apply(dwd, this->opt_.hyper_lr);
    }

    Hyperparameter lr_, wd_;
    std::pair<double, double> last_{0, 0};
    std::vector<double> pending_;  ///< a deferred hypergradient's local parts (HpoContext::defer_reduce)
    detail::ForwardTangents<T, D> tangents_;
};

static_assert(HpoPolicy<HypergradLrWd<float>>);

}  // namespace diffautoml::hpo
