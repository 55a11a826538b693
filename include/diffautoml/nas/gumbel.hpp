#pragma once
// The Gumbel-softmax policies with an annealed temperature: GDAS (Dong and Yang 2019, a hard
// sample per step) and SNAS (Xie et al. 2019, the relaxed mixture).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../sampling/sampling.hpp"
#include "alpha_policy.hpp"

namespace diffautoml::nas {

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

inline void to_json(nlohmann::json& j, const GDASOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"tau_start", o.tau_start},
         {"tau_end", o.tau_end}, {"anneal", o.anneal == Anneal::linear ? "linear" : "exponential"}, {"bilevel", o.bilevel}};
}
inline void to_json(nlohmann::json& j, const SNASOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"tau_start", o.tau_start},
         {"tau_end", o.tau_end}, {"anneal", o.anneal == Anneal::linear ? "linear" : "exponential"}};
}

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
    using options_type = GDASOptions;
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
    using options_type = SNASOptions;
    static constexpr std::string_view policy_name = "snas";

    SNAS(Supernet<T, D>& net, SNASOptions o = {})
        : detail::GumbelPolicy<T, D>(net, {o.lr, o.beta1, o.weight_decay, o.tau_start, o.tau_end, o.anneal, false, false}),
          opt_(o) {}
    const SNASOptions& options() const { return opt_; }

private:
    SNASOptions opt_;
};

}  // namespace diffautoml::nas
