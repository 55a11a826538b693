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
#include "../sampling/sampling.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

/// What a policy may use during one training step.
template <class T, Device D = cpu>
struct NasContext {
    Generator* gen = nullptr;
    std::int64_t step = 0;         ///< 0-based training step
    std::int64_t total_steps = 1;  ///< planned steps of the search (temperature schedules)
    double weight_lr = 0.0;        ///< current learning rate of the weights (DARTS' xi)
    std::function<Var<T, D>()> train_loss;  ///< forward + loss of this step's training batch
    std::function<Var<T, D>()> val_loss;    ///< forward + loss of a validation batch
    std::vector<Var<T, D>> weights;         ///< the network weights (DARTS second order perturbs them)
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
    std::vector<std::int64_t> derived() const {
        std::vector<std::int64_t> arch;
        for (std::size_t d = 0; d < alphas_.size(); ++d) {
            if (fixed_[d] >= 0) {
                arch.push_back(fixed_[d]);
                continue;
            }
            const auto r = row(alphas_[d]);
            arch.push_back(std::max_element(r.begin(), r.end()) - r.begin());
        }
        return arch;
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
};

/// The DARTS Hessian-vector term (Liu et al., 2019, eq. 8):
///     (grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps),  eps = 0.01 / ||v||,
/// a central difference for (d^2 L_train / d alpha d w) v. Weights are restored afterwards.
template <class T, Device D>
std::vector<Tensor<T, D>> darts_hessian_vector_product(std::vector<Var<T, D>>& weights, const std::vector<Tensor<T, D>>& v,
                                                       std::vector<Var<T, D>>& alphas,
                                                       const std::function<Var<T, D>()>& train_loss) {
    DAM_CHECK(weights.size() == v.size(), shape_error, "darts_hessian_vector_product: {} weights but {} directions",
              weights.size(), v.size());
    double norm2 = 0;
    for (const auto& t : v)
        for (std::int64_t i = 0; i < t.numel(); ++i) norm2 += static_cast<double>(t[i]) * static_cast<double>(t[i]);
    const double norm = std::sqrt(norm2);
    std::vector<Tensor<T, D>> out;
    for (const auto& a : alphas) out.push_back(Tensor<T, D>::zeros(a.shape()));
    if (norm == 0) return out;
    const double eps = 0.01 / norm;
    std::vector<Tensor<T, D>> saved;
    for (const auto& w : weights) saved.push_back(w.value().clone());
    auto shift = [&](double s) {
        for (std::size_t i = 0; i < weights.size(); ++i) {
            T* p = weights[i].value().data();
            const T* o = saved[i].data();
            const T* d = v[i].data();
            for (std::int64_t j = 0; j < weights[i].numel(); ++j) p[j] = static_cast<T>(o[j] + s * d[j]);
        }
    };
    for (const double sign : {1.0, -1.0}) {
        shift(sign * eps);
        for (auto& a : alphas) a.zero_grad();
        if (Var<T, D> l = train_loss(); l.requires_grad()) l.backward();
        for (std::size_t i = 0; i < alphas.size(); ++i) {
            const auto& g = alphas[i].grad();
            if (!g.defined()) continue;
            for (std::int64_t j = 0; j < g.numel(); ++j) out[i][j] += static_cast<T>(sign * g[j] / (2 * eps));
        }
    }
    shift(0.0);
    for (auto& a : alphas) a.zero_grad();
    return out;
}

/// DARTS (Liu et al., ICLR 2019): every candidate runs, mixed by softmax(alpha). Before each
/// training step alpha takes an Adam step on a validation batch:
///   first order:  grad alpha = grad_alpha L_val(w, alpha);
///   second order: grad alpha = grad_alpha L_val(w', alpha) - xi H v, with w' = w - xi grad_w L_train(w),
///                 v = grad_w' L_val(w', alpha) and H v from darts_hessian_vector_product; xi is the
///                 current weight learning rate (the unrolled step ignores momentum and weight decay).
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
        this->zero_alpha_grads();
        if (!opt_.second_order) {
            set_gates(true);
            ctx.val_loss().backward();
        } else {
            DAM_CHECK(ctx.train_loss && !ctx.weights.empty(), value_error,
                      "DARTS (second order): the context needs train_loss and the network weights");
            second_order_gradient(ctx);
        }
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

private:
    void second_order_gradient(NasContext<T, D>& ctx) {
        auto& ws = ctx.weights;
        std::vector<Tensor<T, D>> saved;
        for (auto& w : ws) saved.push_back(w.value().clone());
        // w' = w - xi grad_w L_train(w)
        set_gates(false);
        for (auto& w : ws) w.zero_grad();
        if (Var<T, D> lt = ctx.train_loss(); lt.requires_grad()) lt.backward();  // else no weight reaches the loss
        const T xi = static_cast<T>(ctx.weight_lr);
        for (auto& w : ws) {
            if (!w.grad().defined()) continue;
            T* p = w.value().data();
            const T* g = w.grad().data();
            for (std::int64_t i = 0; i < w.numel(); ++i) p[i] -= xi * g[i];
        }
        // grad_alpha L_val(w') and v = grad_w' L_val(w')
        for (auto& w : ws) w.zero_grad();
        set_gates(true);
        ctx.val_loss().backward();
        std::vector<Tensor<T, D>> dalpha, v;
        for (auto& a : this->alphas_) dalpha.push_back(a.grad().defined() ? a.grad().clone() : Tensor<T, D>::zeros(a.shape()));
        for (auto& w : ws) v.push_back(w.grad().defined() ? w.grad().clone() : Tensor<T, D>::zeros(w.shape()));
        for (std::size_t i = 0; i < ws.size(); ++i) ws[i].value().copy_from(saved[i]);
        auto hv = darts_hessian_vector_product(ws, v, this->alphas_, ctx.train_loss);
        for (auto& w : ws) w.zero_grad();
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            for (std::int64_t k = 0; k < dalpha[d].numel(); ++k) dalpha[d][k] -= xi * hv[d][k];
            this->alphas_[d].grad() = dalpha[d];
        }
    }
    DARTSOptions opt_;
};

// ---------------------------------------------------------------------------------------------

struct GDASOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha
    double tau_start = 10.0, tau_end = 0.1;             ///< exponential anneal over ctx.total_steps (GDAS: 10 -> 0.1)
};

/// GDAS (Dong & Yang, CVPR 2019): per decision h = gumbel_softmax(alpha, tau, hard): the one-hot
/// value picks one candidate that runs alone, multiplied by h_k (= 1); the straight-through
/// gradient reaches alpha through the soft sample. Alpha takes an Adam step after each training
/// backward (single-level: the training loss; GDAS proper alternates with a validation batch).
template <class Space, class T = float, Device D = cpu>
class GDAS : public AlphaPolicy<T, D> {
public:
    using space_type = Space;
    static constexpr std::string_view policy_name = "gdas";

    GDAS(Supernet<T, D>& net, GDASOptions o = {}) : AlphaPolicy<T, D>(net, o.lr, o.beta1, o.weight_decay), opt_(o) {}

    void prepare(NasContext<T, D>& ctx) {
        DAM_CHECK(ctx.gen, value_error, "GDAS::prepare: the context needs a generator");
        tau_ = sampling::ExponentialAnneal{opt_.tau_start, opt_.tau_end, std::max<std::int64_t>(1, ctx.total_steps)}(ctx.step);
        this->zero_alpha_grads();
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            Var<T, D> h = sampling::gumbel_softmax(this->alphas_[d], tau_, ctx.gen->next_stream(), true);
            const T* hv = h.value().data();
            const std::int64_t k = std::max_element(hv, hv + h.numel()) - hv;
            this->net_->set_gate(d, {k, h});
        }
    }
    void update(NasContext<T, D>&) {
        this->adam_->step();
        this->zero_alpha_grads();
        this->check_alphas("GDAS");
    }
    double temperature() const { return tau_; }

private:
    GDASOptions opt_;
    double tau_ = 0;
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
