#pragma once
// NAS policies: how the architecture logits alpha are sampled and updated. Each satisfies
// NasPolicy; the trainer (examples/nas_search, search/JointSearch) calls, per training step,
//     prepare(ctx)   before the training forward pass: set the supernet's gates (and, for DARTS,
//                    take the architecture step on a validation batch first);
//     update(ctx)    after the training backward pass, before the weight step: use the gradients
//                    of that backward pass (DSNAS, GDAS) to step alpha.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../optim/optimizer.hpp"
#include "../optim/unrolled.hpp"
#include "../sampling/sampling.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

/// What a policy may use during one training step.
template <class T, Device D = cpu>
struct NasContext {
    Generator* gen = nullptr;
    std::int64_t step = 0;         ///< 0-based training step
    std::int64_t total_steps = 1;  ///< planned steps of the search (temperature schedules)
    double weight_lr = 0.0;        ///< current (scheduled) learning rate of the weights
    /// forward + loss of this step's training batch, as the weight step will see it (augmented)
    std::function<Var<T, D>()> train_loss;
    std::function<Var<T, D>()> val_loss;    ///< forward + loss of a validation batch
    std::vector<Var<T, D>> weights;         ///< the network weights (DARTS second order perturbs them)
    /// The weight optimizer's next update for gradients given in `weights` order, without changing
    /// its state (DARTS' second order unrolls through it). Empty: plain SGD, weight_lr * g.
    optim::UpdateFn<T, D> weight_update;
};

/// Contract of a NAS policy. Requires: value/device types; prepare(ctx) and update(ctx) as above;
/// probabilities() (one row per decision: the current distribution over its choices); derived()
/// (the argmax architecture, one choice per decision); searching() (false once every decision is
/// fixed, after which the policy costs nothing). Guarantees: after prepare(), a forward pass of
/// the supernet runs the architecture (or mixture) the policy chose for this step.
template <class P>
concept NasPolicy = requires(P& p, const P& cp, NasContext<typename P::value_type, typename P::device_type>& ctx) {
    typename P::value_type;
    typename P::device_type;
    p.prepare(ctx);
    p.update(ctx);
    { cp.probabilities() } -> std::same_as<std::vector<std::vector<double>>>;
    { cp.derived() } -> std::same_as<std::vector<std::int64_t>>;
    { cp.searching() } -> std::same_as<bool>;
    { P::policy_name } -> std::convertible_to<std::string_view>;
};

/// Shared state of the policies that learn alpha: one (K_d,) logit vector per decision, zero at
/// the start (uniform), stepped by Adam.
template <class T, Device D = cpu>
class AlphaPolicy {
public:
    using value_type = T;
    using device_type = D;

    AlphaPolicy(Supernet<T, D>& net, double lr, double beta1, double weight_decay) : net_(&net) {
        DAM_CHECK(lr > 0 && std::isfinite(lr), value_error, "NAS policy: architecture learning rate must be > 0, got {}", lr);
        for (const auto& d : net.decisions()) alphas_.emplace_back(Tensor<T, D>::zeros({d.size()}), true);
        optim::ParamGroup<T, D> group{alphas_, lr, weight_decay, "alpha"};
        adam_ = std::make_unique<optim::Adam<T, D>>(std::vector<optim::ParamGroup<T, D>>{group},
                                                 optim::AdamOptions{beta1, 0.999, 1e-8, false});
        fixed_.assign(alphas_.size(), -1);
    }

    std::vector<std::vector<double>> probabilities() const {
        std::vector<std::vector<double>> out;
        for (const auto& a : alphas_) out.push_back(sampling::softmax_row(row(a)));
        return out;
    }
    /// The space's derivation (Supernet::derive_architecture: argmax per decision unless the
    /// space says otherwise) of the current distributions, fixed decisions one-hot on their choice.
    std::vector<std::int64_t> derived() const {
        auto probs = probabilities();
        for (std::size_t d = 0; d < alphas_.size(); ++d)
            if (fixed_[d] >= 0) {
                std::fill(probs[d].begin(), probs[d].end(), 0.0);
                probs[d][static_cast<std::size_t>(fixed_[d])] = 1.0;
            }
        return net_->derive_architecture(probs);
    }
    bool searching() const {
        return std::any_of(fixed_.begin(), fixed_.end(), [](std::int64_t f) { return f < 0; });
    }
    /// Decisions fixed so far (-1: still searched).
    const std::vector<std::int64_t>& fixed() const { return fixed_; }
    std::vector<Var<T, D>>& alphas() { return alphas_; }
    const std::vector<Var<T, D>>& alphas() const { return alphas_; }
    Supernet<T, D>& net() { return *net_; }
    /// Logits, optimiser state and fixed decisions, for checkpoints.
    void save_state(ByteWriter& w) const {
        for (const auto& a : alphas_) put_tensor(w, a.value());
        adam_->save_state(w);
        put_ints(w, fixed_);
    }
    void load_state(ByteReader& r) {
        for (auto& a : alphas_) {
            Tensor<T, D> v = a.value();  // shares the storage: read in place
            get_tensor(r, v, "NAS policy state");
        }
        adam_->load_state(r);
        get_ints(r, fixed_, "NAS policy state");
    }

protected:
    static std::vector<double> row(const Var<T, D>& a) {
        const Tensor<T, cpu> h = on_host(a.value());  // alpha is tiny: read it on the host
        std::vector<double> r(static_cast<std::size_t>(h.numel()));
        for (std::int64_t k = 0; k < h.numel(); ++k) r[static_cast<std::size_t>(k)] = static_cast<double>(h[k]);
        return r;
    }
    void zero_alpha_grads() {
        for (auto& a : alphas_) a.zero_grad();
    }
    void check_alphas(const char* who) const {
        for (std::size_t d = 0; d < alphas_.size(); ++d)
            for (double v : row(alphas_[d]))
                DAM_CHECK(std::isfinite(v), value_error,
                          "{}: architecture logits of decision '{}' became non-finite; lower the architecture learning "
                          "rate or check the loss for NaN",
                          who, net_->decisions()[d].name);
    }

    Supernet<T, D>* net_;
    std::vector<Var<T, D>> alphas_;
    std::unique_ptr<optim::Adam<T, D>> adam_;
    std::vector<std::int64_t> fixed_;
};

// ---------------------------------------------------------------------------------------------

struct DSNASOptions {
    double lr = 3e-3;              ///< Adam learning rate of alpha
    double beta1 = 0.5;            ///< Adam beta1 (DSNAS and DARTS use 0.5)
    double weight_decay = 0.0;     ///< L2 on alpha
    double flops_penalty = 0.0;    ///< beta of the resource term beta * sum_l E_{p_l}[macs_l] / max path MACs
    double fix_threshold = 0.3;    ///< fix a decision once top-1 minus top-2 probability exceeds this (> 1: never)
    std::int64_t warmup_steps = 0; ///< steps of uniform sampling before alpha is updated
};

/// DSNAS (Hu et al., CVPR 2020): per decision l a one-hot Z_l ~ Cat(softmax(alpha_l)) is shared
/// by the batch; only the chosen candidate k runs and its output is multiplied by Z_l[k] (= 1), so
/// one backward pass gives dL/dZ_l[k] = <dL/dy_l, candidate_k(x)>. The architecture gradient is
///     grad alpha_l = (dL/dZ_l[k]) * grad_alpha log softmax(alpha_l)[k] = dL/dZ_l[k] (e_k - p_l)
/// plus the resource term beta * p_l (.) (m_l - <p_l, m_l>) / M for the per-choice MACs m_l.
/// For losses that are linear in each gate (so in particular to first order) this is an unbiased
/// estimate of grad_alpha E_Z[L]; tests/test_nas.cpp checks it by enumerating a toy supernet.
template <class Space, class T = float, Device D = cpu>
class DSNAS : public AlphaPolicy<T, D> {
public:
    using space_type = Space;
    static constexpr std::string_view policy_name = "dsnas";

    DSNAS(Supernet<T, D>& net, DSNASOptions o = {}) : AlphaPolicy<T, D>(net, o.lr, o.beta1, o.weight_decay), opt_(o) {
        DAM_CHECK(o.flops_penalty >= 0 && o.fix_threshold > 0 && o.warmup_steps >= 0, value_error,
                  "DSNAS: flops_penalty {} must be >= 0, fix_threshold {} > 0 and warmup_steps {} >= 0", o.flops_penalty,
                  o.fix_threshold, o.warmup_steps);
        for (const auto& d : net.decisions()) max_path_macs_ += *std::max_element(d.macs.begin(), d.macs.end());
    }

    void prepare(NasContext<T, D>& ctx) {
        DAM_CHECK(ctx.gen, value_error, "DSNAS::prepare: the context needs a generator");
        const PhiloxStream s = ctx.gen->next_stream();
        const auto probs = this->probabilities();
        chosen_.assign(this->alphas_.size(), -1);
        gates_.assign(this->alphas_.size(), Var<T, D>());
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (this->fixed_[d] >= 0) {
                this->net_->set_gate(d, {this->fixed_[d], Var<T, D>()});  // a fixed layer costs one path, no gate
                continue;
            }
            const std::int64_t k = sampling::categorical_index(probs[d], s.uniform_double(d));
            auto z = Tensor<T, cpu>::zeros({this->alphas_[d].numel()});
            z[k] = T(1);
            gates_[d] = Var<T, D>(on_device<D>(z), true);
            chosen_[d] = k;
            this->net_->set_gate(d, {k, gates_[d]});
        }
    }

    void update(NasContext<T, D>& ctx) {
        if (ctx.step < opt_.warmup_steps) return;
        if (!compute_alpha_gradients()) return;
        this->adam_->step();
        for (auto& a : this->alphas_) a.grad() = Tensor<T, D>();  // fixed decisions must not keep a stale gradient
        this->check_alphas("DSNAS");
        // Early fixing (DSNAS section 4): a decision whose top-1 minus top-2 probability exceeds
        // the threshold keeps its top-1 choice from now on.
        const auto after = this->probabilities();
        for (std::size_t d = 0; d < after.size(); ++d) {
            if (this->fixed_[d] >= 0 || after[d].size() < 2) continue;
            auto sorted = after[d];
            std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
            if (sorted[0] - sorted[1] > opt_.fix_threshold)
                this->fixed_[d] = std::max_element(after[d].begin(), after[d].end()) - after[d].begin();
        }
    }

    /// Writes the DSNAS estimate of grad alpha (with the resource term) into each searched
    /// decision's alpha.grad() from the gates of the last prepare() and the backward pass since;
    /// returns whether any decision was searched. update() calls it, then steps Adam.
    bool compute_alpha_gradients() {
        const auto probs = this->probabilities();
        bool any = false;
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (chosen_.size() <= d || chosen_[d] < 0) continue;
            const auto& zg = gates_[d].grad();
            const double dl_dz = zg.defined() ? static_cast<double>(on_host(zg)[chosen_[d]]) : 0.0;
            DAM_CHECK(std::isfinite(dl_dz), value_error,
                      "DSNAS: dL/dZ of decision '{}' is {}; the loss diverged (lower the weight learning rate)",
                      this->net_->decisions()[d].name, dl_dz);
            const auto& p = probs[d];
            const auto& m = this->net_->decisions()[d].macs;
            double expected_m = 0;
            for (std::size_t k = 0; k < p.size(); ++k) expected_m += p[k] * m[k];
            Tensor<T, cpu> g(Shape{static_cast<std::int64_t>(p.size())});
            for (std::size_t k = 0; k < p.size(); ++k) {
                const double score = (static_cast<std::int64_t>(k) == chosen_[d] ? 1.0 : 0.0) - p[k];
                double gk = dl_dz * score;
                if (opt_.flops_penalty > 0 && max_path_macs_ > 0)
                    gk += opt_.flops_penalty * p[k] * (m[k] - expected_m) / max_path_macs_;
                g[static_cast<std::int64_t>(k)] = static_cast<T>(gk);
            }
            this->alphas_[d].grad() = on_device<D>(g);
            any = true;
        }
        return any;
    }
    /// The choices sampled by the last prepare() (-1 for fixed decisions).
    const std::vector<std::int64_t>& sampled() const { return chosen_; }
    const DSNASOptions& options() const { return opt_; }

private:
    DSNASOptions opt_;
    double max_path_macs_ = 0;
    std::vector<std::int64_t> chosen_;
    std::vector<Var<T, D>> gates_;
};

// ---------------------------------------------------------------------------------------------

struct DARTSOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha, as in DARTS
    bool second_order = false;
    /// The finite difference of the Hessian-vector term steps the weights by this / ||v|| (DARTS: 0.01).
    double hessian_step = 0.01;
};

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

// ---------------------------------------------------------------------------------------------

/// How a temperature falls from tau_start to tau_end over the search steps.
enum class Anneal { linear, exponential };

struct GDASOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha (GDAS: 3e-4, (0.5, 0.999), 1e-3)
    double tau_start = 10.0, tau_end = 0.1;             ///< GDAS: 10 -> 0.1
    Anneal anneal = Anneal::linear;                     ///< GDAS lowers tau linearly over the search
    /// true (GDAS): alpha steps on a validation batch in prepare(), alternating with the weight
    /// steps; false: single level, alpha steps on the training loss's gradient in update().
    bool bilevel = true;
};

struct SNASOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha
    double tau_start = 1.0, tau_end = 0.03;             ///< SNAS: from 1, lowered exponentially
    Anneal anneal = Anneal::exponential;
};

namespace detail {
/// Shared machinery of the Gumbel-softmax policies: per decision a sample
/// h = gumbel_softmax(alpha, tau) gates the supernet, hard (one candidate runs, multiplied by
/// h_k = 1; the straight-through gradient reaches alpha through the soft sample) or relaxed (every
/// candidate runs, mixed by the soft h).
template <class T, Device D>
class GumbelPolicy : public AlphaPolicy<T, D> {
public:
    struct Config {
        double lr, beta1, weight_decay, tau_start, tau_end;
        Anneal anneal;
        bool hard, bilevel;
    };
    GumbelPolicy(Supernet<T, D>& net, Config c) : AlphaPolicy<T, D>(net, c.lr, c.beta1, c.weight_decay), c_(c) {
        DAM_CHECK(c.tau_start > 0 && c.tau_end > 0 && std::isfinite(c.tau_start) && std::isfinite(c.tau_end), value_error,
                  "Gumbel NAS policy: temperatures {} -> {} must be finite and > 0", c.tau_start, c.tau_end);
    }
    /// The temperature of the last prepare().
    double temperature() const { return tau_; }
    /// tau at `step` of a search of `steps` steps.
    double temperature_at(std::int64_t step, std::int64_t steps) const {
        steps = std::max<std::int64_t>(1, steps);
        return c_.anneal == Anneal::linear ? sampling::LinearAnneal{c_.tau_start, c_.tau_end, steps}(step)
                                           : sampling::ExponentialAnneal{c_.tau_start, c_.tau_end, steps}(step);
    }

    void prepare(NasContext<T, D>& ctx) {
        DAM_CHECK(ctx.gen, value_error, "{}::prepare: the context needs a generator", name());
        tau_ = temperature_at(ctx.step, ctx.total_steps);
        this->zero_alpha_grads();
        if (c_.bilevel) {
            // Alternating (GDAS Algorithm 1): alpha first, on a validation batch through its own
            // sample; then a fresh sample gates the weight step, detached from alpha.
            DAM_CHECK(ctx.val_loss, value_error,
                      "{} (bilevel): the context needs a validation loss (val_loss); set bilevel = false to update "
                      "alpha on the training loss",
                      name());
            sample(ctx, true);
            const auto g = grad(ctx.val_loss(), this->alphas_);
            for (std::size_t d = 0; d < g.size(); ++d) this->alphas_[d].grad() = g[d];
            this->adam_->step();
            this->zero_alpha_grads();
            this->check_alphas(name());
            sample(ctx, false);
        } else {
            sample(ctx, true);
        }
    }
    void update(NasContext<T, D>&) {
        if (c_.bilevel) return;
        this->adam_->step();
        this->zero_alpha_grads();
        this->check_alphas(name());
    }

private:
    const char* name() const { return c_.hard ? "GDAS" : "SNAS"; }
    void sample(NasContext<T, D>& ctx, bool differentiable) {
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            Var<T, D> h = sampling::gumbel_softmax(this->alphas_[d], tau_, ctx.gen->next_stream(), c_.hard);
            if (!differentiable) h = h.detach();
            if (!c_.hard) {
                this->net_->set_gate(d, {-1, h});
                continue;
            }
            const Tensor<T, cpu> hv = on_host(h.value());
            const std::int64_t k = std::max_element(hv.data(), hv.data() + hv.numel()) - hv.data();
            this->net_->set_gate(d, {k, h});
        }
    }
    Config c_;
    double tau_ = 0;
};
}  // namespace detail

/// GDAS (Dong & Yang, CVPR 2019): per decision h = gumbel_softmax(alpha, tau, hard): the one-hot
/// value picks one candidate that runs alone, multiplied by h_k (= 1); the straight-through
/// gradient reaches alpha through the soft sample. Bilevel by default, as in GDAS: before each
/// weight step alpha takes an Adam step on a validation batch, grad alpha = grad_alpha L_val(w,
/// alpha) through its own sample; tau falls linearly from 10 to 0.1 over the search.
/// With bilevel = false alpha steps on the training loss instead (after the training backward).
template <class Space, class T = float, Device D = cpu>
class GDAS : public detail::GumbelPolicy<T, D> {
public:
    using space_type = Space;
    static constexpr std::string_view policy_name = "gdas";

    GDAS(Supernet<T, D>& net, GDASOptions o = {})
        : detail::GumbelPolicy<T, D>(net, {o.lr, o.beta1, o.weight_decay, o.tau_start, o.tau_end, o.anneal, true, o.bilevel}),
          opt_(o) {}
    const GDASOptions& options() const { return opt_; }

private:
    GDASOptions opt_;
};

/// SNAS (Xie et al., ICLR 2019), the relaxed form: per decision a soft sample
/// z = softmax((alpha + g) / tau), g ~ Gumbel, mixes every candidate (as DARTS' weighted sum, so
/// it costs every candidate's memory); one training backward pass gives the gradients of the
/// weights and of alpha (single level: both lower the training loss), tau falls exponentially.
/// SNAS's resource constraint is not included (DSNAS offers one).
template <class Space, class T = float, Device D = cpu>
class SNAS : public detail::GumbelPolicy<T, D> {
public:
    using space_type = Space;
    static constexpr std::string_view policy_name = "snas";

    SNAS(Supernet<T, D>& net, SNASOptions o = {})
        : detail::GumbelPolicy<T, D>(net, {o.lr, o.beta1, o.weight_decay, o.tau_start, o.tau_end, o.anneal, false, false}),
          opt_(o) {}
    const SNASOptions& options() const { return opt_; }

private:
    SNASOptions opt_;
};

// ---------------------------------------------------------------------------------------------

/// No search: a fixed architecture (the baseline, and the state after the search phase).
template <class Space, class T = float, Device D = cpu>
class FixedArch {
public:
    using space_type = Space;
    using value_type = T;
    using device_type = D;
    static constexpr std::string_view policy_name = "fixed";

    FixedArch(Supernet<T, D>& net, std::vector<std::int64_t> arch) : net_(&net), arch_(std::move(arch)) {
        net.check_architecture(arch_);
    }
    void prepare(NasContext<T, D>&) { net_->set_architecture(arch_); }
    void update(NasContext<T, D>&) {}
    std::vector<std::vector<double>> probabilities() const {
        std::vector<std::vector<double>> out;
        for (std::size_t d = 0; d < arch_.size(); ++d) {
            std::vector<double> p(static_cast<std::size_t>(net_->decisions()[d].size()), 0.0);
            p[static_cast<std::size_t>(arch_[d])] = 1.0;
            out.push_back(p);
        }
        return out;
    }
    std::vector<std::int64_t> derived() const { return arch_; }
    bool searching() const { return false; }
    void save_state(ByteWriter& w) const { put_ints(w, arch_); }
    void load_state(ByteReader& r) {
        std::vector<std::int64_t> a;
        get_ints(r, a, "FixedArch state");
        DAM_CHECK(a == arch_, format_error, "FixedArch: the checkpoint's architecture differs from this run's");
    }

private:
    Supernet<T, D>* net_;
    std::vector<std::int64_t> arch_;
};

}  // namespace diffautoml::nas
