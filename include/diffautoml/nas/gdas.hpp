#pragma once
// GDAS (Dong and Yang, CVPR 2019): a hard Gumbel-softmax sample per decision and step, bilevel.
#include <string_view>

#include <nlohmann/json.hpp>

#include "concept.hpp"
#include "gumbel.hpp"

namespace diffautoml::nas {

struct GDASOptions {
    double lr = 3e-4, beta1 = 0.5, weight_decay = 1e-3;  ///< Adam on alpha (GDAS: 3e-4, (0.5, 0.999), 1e-3)
    double tau_start = 10.0, tau_end = 0.1;             ///< GDAS: 10 -> 0.1
    Anneal anneal = Anneal::linear;                     ///< GDAS lowers tau linearly over the search
    /// true (GDAS): alpha steps on a validation batch in prepare(), alternating with the weight
    /// steps; false: single level, alpha steps on the training loss's gradient in update().
    bool bilevel = true;
};

inline void to_json(nlohmann::json& j, const GDASOptions& o) {
    j = {{"lr", o.lr}, {"beta1", o.beta1}, {"weight_decay", o.weight_decay}, {"tau_start", o.tau_start},
         {"tau_end", o.tau_end}, {"anneal", o.anneal == Anneal::linear ? "linear" : "exponential"}, {"bilevel", o.bilevel}};
}
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

}  // namespace diffautoml::nas
