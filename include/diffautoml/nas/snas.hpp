#pragma once
// SNAS (Xie et al., ICLR 2019), the relaxed form: a soft Gumbel-softmax mixture, single level.
#include <string_view>

#include <nlohmann/json.hpp>

#include "concept.hpp"
#include "gumbel.hpp"

namespace diffautoml::nas {

struct SNASOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha
    double tau_start = 1.0, tau_end = 0.03;             ///< SNAS: from 1, lowered exponentially
    Anneal anneal = Anneal::exponential;
};

inline void to_json(nlohmann::json& j, const SNASOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"tau_start", o.tau_start},
         {"tau_end", o.tau_end}, {"anneal", o.anneal == Anneal::linear ? "linear" : "exponential"}};
}

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
