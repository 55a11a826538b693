#pragma once
// One-step hypergradient optimisation of training hyperparameters (docs/algorithm.md step 6;
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
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../data/dataset.hpp"
#include "../ops.hpp"
#include "../optim/optimizer.hpp"
#include "horizon.hpp"

namespace diffautoml::hpo {

// ---------------------------------------------------------------------------------------------
// Validation data: only a held-out slice of a training set.

/// Batches of a validation slice held out from a training set. It can only be made by hold_out(),
/// which accepts only data marked Split::train, so hyperparameters cannot be tuned on test data
/// through this API.
class ValidationSet {
public:
    std::int64_t size() const { return data_->size(); }
    const data::Dataset& data() const { return *data_; }
    /// The next shuffled validation batch (cycling through the slice, reshuffled each pass).
    data::Batch next(std::int64_t batch_size) {
        DAM_CHECK(batch_size >= 1 && batch_size <= data_->size(), value_error,
                  "ValidationSet: batch size {} must be in [1, {}]", batch_size, data_->size());
        if (!loader_ || loader_batch_ != batch_size) {
            loader_ = std::make_unique<data::BatchLoader>(*data_, batch_size, true, seed_, true);
            loader_batch_ = batch_size;
            loader_->start_epoch(epoch_++);
        }
        if (!loader_->has_next()) loader_->start_epoch(epoch_++);
        return loader_->next();
    }
    std::int64_t passes() const { return epoch_; }
    /// Where the batches are, for checkpoints.
    void save_state(ByteWriter& w) const {
        w.put<std::int64_t>(epoch_);
        w.put<std::int64_t>(loader_ ? loader_batch_ : 0);
        w.put<std::int64_t>(loader_ ? loader_->epoch() : 0);
        w.put<std::int64_t>(loader_ ? loader_->position() : 0);
    }
    void load_state(ByteReader& r) {
        epoch_ = r.get<std::int64_t>();
        loader_batch_ = r.get<std::int64_t>();
        const auto e = r.get<std::int64_t>(), pos = r.get<std::int64_t>();
        loader_.reset();
        if (loader_batch_ > 0) {
            DAM_CHECK(loader_batch_ <= data_->size(), format_error, "ValidationSet: corrupt state (batch {})", loader_batch_);
            loader_ = std::make_unique<data::BatchLoader>(*data_, loader_batch_, true, seed_, true);
            loader_->seek(e, pos);
        }
    }

private:
    ValidationSet(data::Dataset d, std::uint64_t seed)
        : data_(std::make_shared<const data::Dataset>(std::move(d))), seed_(seed) {}
    friend std::pair<data::Dataset, ValidationSet> hold_out(const data::Dataset&, std::int64_t, std::uint64_t);
    std::shared_ptr<const data::Dataset> data_;  // a stable address for the loader, however the set is moved
    std::uint64_t seed_;
    std::unique_ptr<data::BatchLoader> loader_;
    std::int64_t loader_batch_ = 0, epoch_ = 0;
};

/// Splits `train` into (the images left for training, a validation slice of `size` images).
inline std::pair<data::Dataset, ValidationSet> hold_out(const data::Dataset& train, std::int64_t size, std::uint64_t seed) {
    DAM_CHECK(train.split != data::Split::test, value_error,
              "hold_out: this dataset is a test set; hyperparameters must be tuned on a slice of the training set "
              "(load it with train = true), never on the test set");
    DAM_CHECK(train.split == data::Split::train, value_error,
              "hold_out: the dataset is not marked as training data; load it with load_fashion_mnist(dir, true) or "
              "set IdxDatasetOptions::split = data::Split::train for training files (test files can never be used)");
    DAM_CHECK(size >= 1, value_error, "hold_out: the validation slice needs at least 1 image, got {}", size);
    auto [rest, val] = data::split_train_val(train, size, seed);
    return {std::move(rest), ValidationSet(std::move(val), seed ^ 0x76a1u)};
}

// ---------------------------------------------------------------------------------------------

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
                if constexpr (std::is_same_v<D, cpu>) {
                    for (std::int64_t i = 0; i < p.numel(); ++i) {
                        b[i] = mu * b[i] + g[i] + lambda * w[i];
                        w[i] -= eta * b[i];
                    }
                } else {
                    // The same update as the optimizer kernel writes it: d = g + lambda w,
                    // b = mu b + d (b starts at zero), w -= eta b.
                    sgd_step(D{}, w, g, b, p.numel(), body::SgdStep<T>{eta, lambda, mu, T(1), false, false});
                }
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
                h -= lr_.at(gi) * dot(p.grad(), dir[gi][pi]);
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
    static double dot(const Tensor<T, D>& a, const Tensor<T, D>& b) {
        double s = 0;
        for (std::int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
        return s;
    }
    /// sum over group gi's stepped parameters of grad . other(pi). On a device the partial sums
    /// stay there and one value is read back per group.
    template <class Other>
    double group_dot(std::size_t gi, Other&& other) const {
        if constexpr (std::is_same_v<D, cpu>) {
            double s = 0;
            for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) {
                const auto& p = groups_[gi][pi];
                if (!p.grad().defined() || !buffers_[gi][pi].defined()) continue;
                s += dot(p.grad(), other(pi));
            }
            return s;
        } else {
            NoGradGuard no_grad;
            Var<T, D> total;
            for (std::size_t pi = 0; pi < groups_[gi].size(); ++pi) {
                const auto& p = groups_[gi][pi];
                if (!p.grad().defined() || !buffers_[gi][pi].defined()) continue;
                const Tensor<T, D>& o = other(pi);
                auto z = ops::sum(ops::mul(Var<T, D>(p.grad().reshape({p.numel()})), Var<T, D>(o.reshape({o.numel()}))));
                total = total.defined() ? ops::add(total, z) : z;
            }
            return total.defined() ? static_cast<double>(on_host(total.value())[0]) : 0.0;
        }
    }
    double dot_with_buffers(std::size_t gi) const {
        return group_dot(gi, [&](std::size_t pi) -> const Tensor<T, D>& { return buffers_[gi][pi]; });
    }
    std::vector<std::vector<Var<T, D>>> groups_;
    std::vector<std::vector<Tensor<T, D>>> buffers_;
    std::vector<double> lr_;
    double mu_;
};

// ---------------------------------------------------------------------------------------------
// Policies

/// What an HPO policy may use in one step: the network's forward pass for validation batches.
template <class T, Device D = cpu>
struct HpoContext {
    std::int64_t step = 0;
    ValidationSet* validation = nullptr;  ///< hypergradient policies need it
    std::int64_t validation_batch = 128;
    /// The network (current architecture) on a batch of dataset images (host, always float; the
    /// forward pass moves them to the network's device).
    std::function<Var<T, D>(const Tensor<float, cpu>&)> forward;
    /// The weights still step but the hyperparameters stay where they are (no validation pass):
    /// set once the validation images have joined training, where a hypergradient on them would
    /// measure the training fit.
    bool frozen = false;
    /// The step's training loss at the current weights (the same batch, augmentation and path):
    /// what Curvature::finite_difference differentiates at shifted weights (horizon.hpp).
    std::function<Var<T, D>()> train_loss;
    /// The loss of a fresh validation batch. When set it replaces `validation` and `forward`
    /// (e.g. a regression loss); the caller is then responsible for it being held-out data.
    std::function<Var<T, D>()> val_loss;
};

/// Contract of an HPO policy. Per training step the trainer calls
///     loss = p.training_loss(logits, labels)   mean cross-entropy with the policy's label smoothing
///     p.backward(loss, logits, labels)         the one training backward pass (+ what the policy needs)
///     p.step(ctx)                              weight update, then the hyperparameter update (none
///                                              while ctx.frozen)
/// step() consumes the weights' gradients and leaves them zero for the next backward pass.
/// values() names every hyperparameter and its current value (for logs).
template <class P>
concept HpoPolicy = requires(P& p, const P& cp, const Var<typename P::value_type, device_of_t<P>>& v,
                             const Tensor<std::int32_t, device_of_t<P>>& labels,
                             HpoContext<typename P::value_type, device_of_t<P>>& ctx) {
    typename P::value_type;
    { p.training_loss(v, labels) } -> std::same_as<Var<typename P::value_type, device_of_t<P>>>;
    p.backward(v, v, labels);
    p.step(ctx);
    { cp.values() } -> std::same_as<std::vector<std::pair<std::string, double>>>;
    { P::policy_name } -> std::convertible_to<std::string_view>;
};

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

/// Per-group learning rates and weight decays of one weight step.
struct Rates {
    std::vector<double> lr, wd;
};

namespace detail {

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
    static constexpr std::string_view policy_name = "hypergrad_lr_wd";

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
        }
        last_ = {dlr, dwd};
        lr_.apply(dlr, this->opt_.hyper_lr);
        wd_.apply(dwd, this->opt_.hyper_lr);
        this->sgd_->zero_grad();
    }
    std::vector<std::pair<std::string, double>> values() const { return {{"lr", lr_.value}, {"weight_decay", wd_.value}}; }
    /// The hypergradients (dL/d lr, dL/d weight_decay) of the last hyper step.
    std::pair<double, double> last_hypergradients() const { return last_; }
    Hyperparameter& lr() { return lr_; }
    Hyperparameter& weight_decay() { return wd_; }
    void save_state(ByteWriter& w) const {
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
    Hyperparameter lr_, wd_;
    std::pair<double, double> last_{0, 0};
    detail::ForwardTangents<T, D> tangents_;
};

/// Per-group learning rates and weight decays plus label smoothing, all from one validation
/// gradient. The label-smoothing direction grad U - grad CE costs one extra backward pass from the
/// logits through the retained graph (no extra forward pass).
template <class T = float>
class HypergradMulti : public detail::HypergradBase<T> {
public:
    static constexpr std::string_view policy_name = "hypergrad_multi";

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

struct BaydinOptions {
    double momentum = 0.0;
    double beta = 1e-4;  ///< hyper learning rate of eta (Baydin et al.'s beta)
    double lr_lo = 1e-5, lr_hi = 1.0;
    /// Multiplier of the learned rate at step t (warm-up, cosine decay); 1 by default. The
    /// hypergradient of the learned base rate carries the factor of the step it moved.
    std::function<double(std::int64_t)> lr_factor;
};

/// Hypergradient descent (Baydin et al., ICLR 2018), no validation set: the training gradient at
/// step t is also the hypergradient of the previous step's learning rate,
///     dL(w_t)/d eta_{t-1} = -g_t . u_{t-1},   eta_t = eta_{t-1} + beta g_t . u_{t-1},
/// with u the previous update direction (u = g for plain SGD: h_t = g_t . g_{t-1}; with momentum
/// the buffer, which holds the weight decay term too). Each group keeps the weight decay it was
/// given; with a schedule the step's rate is f(t) eta and the base rate moves by beta f(t-1) g_t . u_{t-1}.
template <class T = float>
class BaydinHD {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "baydin_hd";

    BaydinHD(const std::vector<optim::ParamGroup<T, cpu>>& groups, BaydinOptions o = {}) : opt_(std::move(o)) {
        DAM_CHECK(!groups.empty(), value_error, "BaydinHD: needs at least one parameter group");
        DAM_CHECK(std::isfinite(opt_.beta) && opt_.beta >= 0, value_error, "BaydinHD: beta must be finite and >= 0, got {}",
                  opt_.beta);
        std::vector<std::vector<Var<T>>> params;
        for (const auto& g : groups) {
            params.push_back(g.params);
            wds_.push_back(g.weight_decay);
        }
        sgd_ = std::make_unique<HyperSGD<T>>(params, opt_.momentum);
        lr_ = {"lr", groups.front().lr, opt_.lr_lo, opt_.lr_hi, false};
        lr_.check();
    }
    Var<T> training_loss(const Var<T>& logits, const Tensor<std::int32_t>& labels) const {
        return ops::cross_entropy(logits, labels);
    }
    void backward(const Var<T>& loss, const Var<T>&, const Tensor<std::int32_t>&) { loss.backward(); }
    double lr_factor(std::int64_t step) const { return opt_.lr_factor ? opt_.lr_factor(step) : 1.0; }
    Rates rates(std::int64_t step) const {
        return {std::vector<double>(sgd_->group_count(), lr_.value * lr_factor(step)), wds_};
    }
    std::vector<Tensor<T>> weight_update(std::int64_t step, const std::vector<Var<T>>& weights,
                                         const std::vector<Tensor<T>>& grads) const {
        const Rates r = rates(step);
        return sgd_->update_for(r.lr, r.wd, weights, grads);
    }
    void step(HpoContext<T>& ctx) {
        // h = -g_t . u_{t-1}: the buffers still hold the previous update direction.
        if (started_) {
            double h = 0;
            for (const double x : sgd_->lr_hypergradients()) h += x;  // -g . buf per group
            last_h_ = h * last_factor_;
            lr_.value = std::clamp(lr_.value - opt_.beta * last_h_, lr_.lo, lr_.hi);
        }
        const Rates r = rates(ctx.step);
        last_factor_ = lr_factor(ctx.step);
        sgd_->step(r.lr, r.wd);
        sgd_->zero_grad();
        started_ = true;
    }
    std::vector<std::pair<std::string, double>> values() const {
        return {{"lr", lr_.value}, {"weight_decay", *std::max_element(wds_.begin(), wds_.end())}};
    }
    /// dL/d(base rate) of the last step (0 before the second step).
    double last_hypergradient() const { return last_h_; }
    HyperSGD<T>& sgd() { return *sgd_; }
    void save_state(ByteWriter& w) const {
        sgd_->save_state(w);
        lr_.save_state(w);
        w.put<std::uint8_t>(started_ ? 1 : 0);
        w.put(last_h_);
        w.put(last_factor_);
    }
    void load_state(ByteReader& r) {
        sgd_->load_state(r);
        lr_.load_state(r);
        started_ = r.get<std::uint8_t>() != 0;
        last_h_ = r.get<double>();
        last_factor_ = r.get<double>();
    }

private:
    BaydinOptions opt_;
    std::unique_ptr<HyperSGD<T>> sgd_;
    Hyperparameter lr_;
    std::vector<double> wds_;
    bool started_ = false;
    double last_h_ = 0, last_factor_ = 1;
};

/// The baseline: fixed weight decay and a learning-rate schedule (constant, step or cosine).
template <class T = float, Device D = cpu>
class FixedSchedule {
public:
    using value_type = T;
    using device_type = D;
    static constexpr std::string_view policy_name = "fixed";

    /// label_smoothing: eps of the training loss (1 - eps) CE + eps U, fixed.
    FixedSchedule(const std::vector<optim::ParamGroup<T, D>>& groups, std::function<double(std::int64_t)> lr,
                  double momentum = 0.9, double label_smoothing = 0.0)
        : lr_(std::move(lr)), eps_(label_smoothing) {
        DAM_CHECK(static_cast<bool>(lr_), value_error, "FixedSchedule: needs a learning-rate schedule");
        DAM_CHECK(eps_ >= 0 && eps_ < 1, value_error, "FixedSchedule: label_smoothing must be in [0, 1), got {}", eps_);
        std::vector<std::vector<Var<T, D>>> params;
        for (const auto& g : groups) {
            params.push_back(g.params);
            wds_.push_back(g.weight_decay);
        }
        sgd_ = std::make_unique<HyperSGD<T, D>>(params, momentum);
    }
    Var<T, D> training_loss(const Var<T, D>& logits, const Tensor<std::int32_t, D>& labels) const {
        return ops::cross_entropy(logits, labels, {eps_, ops::Reduction::mean});
    }
    void backward(const Var<T, D>& loss, const Var<T, D>&, const Tensor<std::int32_t, D>&) { loss.backward(); }
    Rates rates(std::int64_t step) const { return {std::vector<double>(wds_.size(), lr_(step)), wds_}; }
    std::vector<Tensor<T, D>> weight_update(std::int64_t step, const std::vector<Var<T, D>>& weights,
                                            const std::vector<Tensor<T, D>>& grads) const {
        const Rates r = rates(step);
        return sgd_->update_for(r.lr, r.wd, weights, grads);
    }
    void step(HpoContext<T, D>& ctx) {
        current_ = lr_(ctx.step);
        sgd_->step(std::vector<double>(wds_.size(), current_), wds_);
        sgd_->zero_grad();
    }
    std::vector<std::pair<std::string, double>> values() const {
        return {{"lr", current_}, {"weight_decay", wds_.empty() ? 0.0 : *std::max_element(wds_.begin(), wds_.end())}};
    }
    void save_state(ByteWriter& w) const {
        sgd_->save_state(w);
        w.put(current_);
    }
    void load_state(ByteReader& r) {
        sgd_->load_state(r);
        current_ = r.get<double>();
    }

private:
    std::function<double(std::int64_t)> lr_;
    double eps_ = 0.0;
    std::unique_ptr<HyperSGD<T, D>> sgd_;
    std::vector<double> wds_;
    double current_ = 0;
};

static_assert(HpoPolicy<HypergradLrWd<float>> && HpoPolicy<HypergradMulti<float>> && HpoPolicy<BaydinHD<float>> &&
              HpoPolicy<FixedSchedule<float>>);

}  // namespace diffautoml::hpo
