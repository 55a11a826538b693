#pragma once
// How JointSearch builds each library policy when no factory is given, and the JSON records of
// a policy's state for logs.
#include <algorithm>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"

namespace diffautoml::search {

namespace detail {
template <class>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// The default construction of each library policy inside a joint search (JointSearch uses these
/// where Factories leaves a factory empty). Other policies need a factory.
template <class P>
std::unique_ptr<P> default_da(const JointOptions& o) {
    using T = typename P::value_type;
    if constexpr (std::is_same_v<P, da::PairPolicyDA<T>>) {
        da::PairPolicyOptions po;
        po.max_magnitude = o.da_max_magnitude;
        po.lr = o.da_lr;
        po.max_ratio = o.da_max_ratio;
        po.entropy_weight = o.da_entropy;
        po.fade_start = o.da_fade_start;
        po.fade_floor = o.da_fade_floor;
        po.flip_probability = o.da_flip;
        po.estimator = o.da_estimator;
        if (!o.da_ops.empty()) po.ops = o.da_ops;
        po.pixels = o.pixels;
        po.augment = o.augment;
        return std::make_unique<P>(po);
    } else if constexpr (std::is_same_v<P, da::DADA<T>>) {
        da::DADAOptions d;
        d.pixels = o.pixels;
        d.augment = o.augment;
        return std::make_unique<P>(d);
    } else if constexpr (std::is_same_v<P, da::RandAugment<T>>) {
        da::RandAugmentOptions r;
        r.n = o.ra_n;
        r.m = o.ra_m;
        r.flip_probability = o.da_flip;
        if (!o.da_ops.empty()) {
            std::erase_if(r.ops, [&](da::Op op) { return std::find(o.da_ops.begin(), o.da_ops.end(), op) == o.da_ops.end(); });
            DAM_CHECK(!r.ops.empty(), value_error,
                      "RandAugment: none of its 14 ops is among the {} ops given (da_ops); give at least one of them",
                      o.da_ops.size());
        }
        r.pixels = o.pixels;
        r.augment = o.augment;
        return std::make_unique<P>(r);
    } else if constexpr (std::is_same_v<P, da::StandardAugment<T>>) {
        da::StandardAugmentOptions st;
        st.pixels = o.pixels;
        st.fill = o.augment.fill;
        return std::make_unique<P>(st);
    } else if constexpr (std::is_default_constructible_v<P>) {
        return std::make_unique<P>();
    } else {
        static_assert(detail::dependent_false<P>, "JointSearch: no default factory for this DA policy; set Factories::da");
    }
}

template <class P>
std::unique_ptr<P> default_nas(nas::Supernet<typename P::value_type, typename P::device_type>& net, const JointOptions& o,
                               std::int64_t steps_per_epoch) {
    using Space = typename P::space_type;
    using T = typename P::value_type;
    using D = typename P::device_type;
    if constexpr (std::is_same_v<P, nas::DSNAS<Space, T, D>>) {
        nas::DSNASOptions d;
        d.lr = o.alpha_lr;
        d.warmup_steps = static_cast<std::int64_t>(o.nas_warmup_epochs * static_cast<double>(steps_per_epoch));
        return std::make_unique<P>(net, d);
    } else if constexpr (std::is_same_v<P, nas::FixedArch<Space, T, D>>) {
        auto arch = o.fixed_architecture;
        if (arch.empty()) arch.assign(net.num_decisions(), 0);
        return std::make_unique<P>(net, arch);
    } else if constexpr (std::is_constructible_v<P, nas::Supernet<T, D>&>) {
        return std::make_unique<P>(net);
    } else {
        static_assert(detail::dependent_false<P>, "JointSearch: no default factory for this NAS policy; set Factories::nas");
    }
}

template <class P>
std::unique_ptr<P> default_hpo(const std::vector<optim::ParamGroup<typename P::value_type, device_of_t<P>>>& groups,
                               const JointOptions& o, std::function<double(std::int64_t)> lr_factor) {
    using T = typename P::value_type;
    using D = device_of_t<P>;
    if constexpr (std::is_same_v<P, hpo::HypergradLrWd<T, D>> || std::is_same_v<P, hpo::HypergradMulti<T>>) {
        hpo::HypergradOptions h;
        h.momentum = o.momentum;
        h.every = o.hpo_every;
        h.horizon.forgetting = o.hpo_forgetting;
        h.horizon.curvature = o.hpo_curvature;
        h.wd_hi = o.wd_max;
        h.lr_lo = o.lr_min;
        h.label_smoothing = o.label_smoothing;
        h.lr_factor = std::move(lr_factor);
        return std::make_unique<P>(groups, h);
    } else if constexpr (std::is_same_v<P, hpo::FixedSchedule<T, D>>) {
        const double lr = o.lr;
        return std::make_unique<P>(groups, [lr, f = std::move(lr_factor)](std::int64_t s) { return lr * f(s); },
                                   o.momentum, o.label_smoothing);
    } else if constexpr (std::is_same_v<P, hpo::BaydinHD<T>>) {
        hpo::BaydinOptions b;
        b.momentum = o.momentum;
        b.lr_factor = std::move(lr_factor);  // the groups carry the run's weight decay
        return std::make_unique<P>(groups, b);
    } else {
        // An HPO policy of your own has constructor arguments only you know: JointSearch calls this
        // only when Factories::hpo is empty (it is instantiated either way, so the check is here).
        throw value_error(fmt::format("JointSearch: the HPO policy '{}' has no default factory; set Factories::hpo "
                                      "(docs/search.md, StepDecay)",
                                      P::policy_name));
    }
}

namespace detail {
template <class P>
nlohmann::json values_json(const P& hpo) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : hpo.values()) j[k] = v;
    return j;
}
inline nlohmann::json policy_json(const std::vector<da::PolicyEntry>& rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : rows) {
        nlohmann::json ops = nlohmann::json::array();
        for (da::Op o : e.ops) ops.push_back(std::string(da::op_name(o)));
        a.push_back({{"ops", ops},
                     {"probability", e.probability},
                     {"magnitudes", e.magnitudes},
                     {"apply_probabilities", e.apply_probabilities}});
    }
    return a;
}
}  // namespace detail

}  // namespace diffautoml::search
