#pragma once
// The machinery the Gumbel-softmax policies with an annealed temperature share: GDAS (gdas.hpp,
// Dong and Yang 2019, a hard sample per step) and SNAS (snas.hpp, Xie et al. 2019, the relaxed
// mixture) are thin classes over detail::GumbelPolicy.
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

}  // namespace diffautoml::nas
