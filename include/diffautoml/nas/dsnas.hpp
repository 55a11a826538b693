#pragma once
// DSNAS (Hu et al. 2020): one architecture sampled per step, alpha stepped from the same backward
// pass as the weights, decisions fixed early once confident.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../sampling/sampling.hpp"
#include "alpha_policy.hpp"

namespace diffautoml::nas {

struct DSNASOptions {
    double lr = 3e-3;              ///< Adam learning rate of alpha
    double beta1 = 0.5;            ///< Adam beta1 (DSNAS and DARTS use 0.5)
    double weight_decay = 0.0;     ///< L2 on alpha
    double flops_penalty = 0.0;    ///< beta of the resource term beta * sum_l E_{p_l}[macs_l] / max path MACs
    double fix_threshold = 0.3;    ///< fix a decision once top-1 minus top-2 probability exceeds this (> 1: never)
    std::int64_t warmup_steps = 0; ///< steps of uniform sampling before alpha is updated
    /// The warm-up in epochs instead (>= 0: replaces warmup_steps when the policy is made with a
    /// Schedule, as JointSearch makes it; -1: warmup_steps holds).
    double warmup_epochs = -1;
    /// In a sharded step (data-parallel ranks or micro-batches, docs/distributed.md), each piece of
    /// the global batch (a rank's micro-batch) draws its own path, as DSNAS's multi-GPU search does:
    /// the architecture gradient is then the mean of one estimate a piece (lower variance), and
    /// alpha's gradients, not the gates', are summed over the ranks. false: one path shared by the
    /// whole global batch. One piece (one rank, one micro-batch) draws what false draws.
    bool per_rank_samples = false;
};

inline void to_json(nlohmann::json& j, const DSNASOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"flops_penalty", o.flops_penalty},
         {"fix_threshold", o.fix_threshold}, {"warmup_steps", o.warmup_steps}, {"warmup_epochs", o.warmup_epochs}};
    // Written only when set, so that checkpoints and results made before the option still match.
    if (o.per_rank_samples) j["per_rank_samples"] = true;
}

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
    using options_type = DSNASOptions;
    static constexpr std::string_view policy_name = "dsnas";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// the gates of reduced_variables() are summed with the weights' gradients.
    static constexpr bool data_parallel = true;

    /// With the run's schedule: options.warmup_epochs (when >= 0) becomes the warm-up in steps.
    DSNAS(Supernet<T, D>& net, DSNASOptions o, const Schedule& s) : DSNAS(net, in_steps(o, s)) {}
    DSNAS(Supernet<T, D>& net, DSNASOptions o = {}) : AlphaPolicy<T, D>(net, o.lr, o.beta1, o.weight_decay), opt_(o) {
        DAM_CHECK(o.flops_penalty >= 0 && o.fix_threshold > 0 && o.warmup_steps >= 0, value_error,
                  "DSNAS: flops_penalty {} must be >= 0, fix_threshold {} > 0 and warmup_steps {} >= 0", o.flops_penalty,
                  o.fix_threshold, o.warmup_steps);
        for (const auto& d : net.decisions()) max_path_macs_ += *std::max_element(d.macs.begin(), d.macs.end());
    }

    void prepare(NasContext<T, D>& ctx) {
        DAM_CHECK(ctx.gen, value_error, "DSNAS::prepare: the context needs a generator");
        stream_ = ctx.gen->next_stream();
        probs_ = this->probabilities();
        fixed_at_prepare_ = this->fixed_;  // update() may fix decisions: a piece's path stays this step's
        accumulated_ = false;
        sample_piece(0);
    }

    /// With per_rank_samples: draws piece `piece`'s path (the stream of this step's prepare(), at
    /// indices piece * decisions + d, so piece 0 draws prepare()'s path) and sets the gates to it.
    /// A sharded trainer calls it before each piece's forward pass, accumulate_piece() after its
    /// backward pass, and sums alpha's gradients over the ranks (reduced_variables()).
    void sample_piece(std::int64_t piece) {
        DAM_CHECK(piece >= 0 && (piece == 0 || opt_.per_rank_samples) && !probs_.empty(), value_error,
                  "DSNAS::sample_piece({}): call prepare() first; pieces other than 0 need per_rank_samples", piece);
        const auto A = static_cast<std::uint64_t>(this->alphas_.size());
        chosen_.assign(this->alphas_.size(), -1);
        gates_.assign(this->alphas_.size(), Var<T, D>());
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (fixed_at_prepare_[d] >= 0) {
                this->net_->set_gate(d, {fixed_at_prepare_[d], Var<T, D>()});  // a fixed layer costs one path, no gate
                continue;
            }
            const std::uint64_t at = static_cast<std::uint64_t>(piece) * A + d;
            const std::int64_t k = sampling::categorical_index(probs_[d], stream_.uniform_double(at));
            auto z = Tensor<T, cpu>::zeros({this->alphas_[d].numel()});
            z[k] = T(1);
            gates_[d] = Var<T, D>(on_device<D>(z), true);
            chosen_[d] = k;
            this->net_->set_gate(d, {k, gates_[d]});
        }
    }

    /// With per_rank_samples: adds the current piece's estimate dL/dZ_l[k] (e_k - p_l) (its loss
    /// as scaled for the step; no resource term: update() adds it once) to each searched
    /// decision's alpha.grad().
    void accumulate_piece() {
        DAM_CHECK(opt_.per_rank_samples, value_error, "DSNAS::accumulate_piece: only with per_rank_samples");
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (chosen_.size() <= d || chosen_[d] < 0) continue;
            Tensor<T, cpu> g = score_gradient(d);
            auto& a = this->alphas_[d].grad();
            if (a.defined()) {
                const Tensor<T> before = on_host(a);
                for (std::int64_t k = 0; k < g.numel(); ++k) g[k] += before[k];
            }
            a = on_device<D>(g);
        }
        accumulated_ = true;
    }
    /// Whether a sharded trainer must sample and accumulate each piece (per_rank_samples).
    bool samples_per_piece() const { return opt_.per_rank_samples; }

    void update(NasContext<T, D>& ctx) {
        if (ctx.step < opt_.warmup_steps) {
            for (auto& a : this->alphas_) a.grad() = Tensor<T, D>();  // pieces' estimates of a warm-up step
            return;
        }
        if (!(accumulated_ ? add_resource_gradients() : compute_alpha_gradients())) return;
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
        bool any = false;
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (chosen_.size() <= d || chosen_[d] < 0) continue;
            Tensor<T, cpu> g = score_gradient(d);
            add_resource_term(d, g);
            this->alphas_[d].grad() = on_device<D>(g);
            any = true;
        }
        return any;
    }
    /// The variables whose gradients a sharded trainer sums over the ranks with the weights'
    /// (docs/distributed.md): the gates of the decisions the last prepare() sampled (dL/dZ is
    /// linear in the loss, so the sum of the ranks' parts is that of the global batch); with
    /// per_rank_samples, alpha itself, whose gradient holds this rank's pieces' estimates.
    std::vector<Var<T, D>> reduced_variables() const {
        if (opt_.per_rank_samples) return this->alphas_;
        std::vector<Var<T, D>> out;
        for (std::size_t d = 0; d < gates_.size(); ++d)
            if (chosen_[d] >= 0) out.push_back(gates_[d]);
        return out;
    }
    /// The choices sampled by the last prepare() (-1 for fixed decisions).
    const std::vector<std::int64_t>& sampled() const { return chosen_; }
    const DSNASOptions& options() const { return opt_; }

private:
    /// dL/dZ_l[k] (e_k - p_l) for decision d from its gate's gradient since the last sample.
    Tensor<T, cpu> score_gradient(std::size_t d) const {
        const auto& zg = gates_[d].grad();
        const double dl_dz = zg.defined() ? static_cast<double>(on_host(zg)[chosen_[d]]) : 0.0;
        DAM_CHECK(std::isfinite(dl_dz), value_error,
                  "DSNAS: dL/dZ of decision '{}' is {}; the loss diverged (lower the weight learning rate)",
                  this->net_->decisions()[d].name, dl_dz);
        const auto& p = probs_[d];
        Tensor<T, cpu> g(Shape{static_cast<std::int64_t>(p.size())});
        for (std::size_t k = 0; k < p.size(); ++k)
            g[static_cast<std::int64_t>(k)] =
                static_cast<T>(dl_dz * ((static_cast<std::int64_t>(k) == chosen_[d] ? 1.0 : 0.0) - p[k]));
        return g;
    }
    /// Adds the resource term beta p (.) (m - <p, m>) / M of decision d to g.
    void add_resource_term(std::size_t d, Tensor<T, cpu>& g) const {
        if (!(opt_.flops_penalty > 0 && max_path_macs_ > 0)) return;
        const auto& p = probs_[d];
        const auto& m = this->net_->decisions()[d].macs;
        double expected_m = 0;
        for (std::size_t k = 0; k < p.size(); ++k) expected_m += p[k] * m[k];
        for (std::size_t k = 0; k < p.size(); ++k)
            g[static_cast<std::int64_t>(k)] += static_cast<T>(opt_.flops_penalty * p[k] * (m[k] - expected_m) / max_path_macs_);
    }
    /// After accumulate_piece() (and the sum over the ranks): the resource term, once, on every
    /// searched decision's gradient. Whether any decision was searched.
    bool add_resource_gradients() {
        bool any = false;
        for (std::size_t d = 0; d < this->alphas_.size(); ++d) {
            if (this->fixed_[d] >= 0) continue;
            auto& a = this->alphas_[d].grad();
            Tensor<T, cpu> g = a.defined() ? on_host(a) : Tensor<T, cpu>::zeros({this->alphas_[d].numel()});
            add_resource_term(d, g);
            a = on_device<D>(g);
            any = true;
        }
        return any;
    }

    static DSNASOptions in_steps(DSNASOptions o, const Schedule& s) {
        DAM_CHECK(std::isfinite(o.warmup_epochs) && (o.warmup_epochs >= 0 || o.warmup_epochs == -1), value_error,
                  "DSNAS: warmup_epochs must be >= 0 (or -1: warmup_steps holds), got {}", o.warmup_epochs);
        if (o.warmup_epochs >= 0)
            o.warmup_steps = static_cast<std::int64_t>(o.warmup_epochs * static_cast<double>(s.steps_per_epoch));
        return o;
    }

    DSNASOptions opt_;
    double max_path_macs_ = 0;
    std::vector<std::int64_t> chosen_;
    std::vector<Var<T, D>> gates_;
    PhiloxStream stream_{};                 ///< this step's draws (prepare())
    std::vector<std::vector<double>> probs_;  ///< this step's distributions (prepare())
    std::vector<std::int64_t> fixed_at_prepare_;  ///< the decisions fixed when this step began
    bool accumulated_ = false;              ///< alpha.grad() holds pieces' estimates (accumulate_piece())
};

}  // namespace diffautoml::nas
