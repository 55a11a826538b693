#pragma once
// How JointSearch makes a policy that its Factories leave empty: from the policy's own options
// (P::options_type, JointOptions::da / nas / hpo) with the constructor its folder's concept names,
//   DA:  P(options)                                  (or P())
//   NAS: P(net, options, nas::Schedule)               (or P(net, options), or P(net))
//   HPO: P(groups, options, lr_factor)
// There is no list of known policies here: a policy of your own that has these constructors is
// made like the library's; one that has not needs a factory. Also the JSON records of a policy's
// state for logs.
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.hpp"

namespace diffautoml::search {

namespace detail {
template <class>
inline constexpr bool dependent_false = false;

/// The DA options with the run's pixel space, where they have a `pixels` member.
template <class O>
O with_pixels(O o, const da::PixelSpace& pixels) {
    if constexpr (requires { o.pixels = pixels; }) o.pixels = pixels;
    return o;
}
}  // namespace detail

template <class P>
std::unique_ptr<P> make_da(const options_of_t<P>& o, const RunOptions& run) {
    if constexpr (std::is_constructible_v<P, const options_of_t<P>&>) {
        return std::make_unique<P>(detail::with_pixels(o, run.pixels));
    } else if constexpr (std::is_default_constructible_v<P>) {
        return std::make_unique<P>();
    } else {
        static_assert(detail::dependent_false<P>,
                      "JointSearch: the DA policy is not constructible from its options_type (nor by default); give it "
                      "a constructor P(const P::options_type&) or set Factories::da");
    }
}

template <class P>
std::unique_ptr<P> make_nas(nas::Supernet<typename P::value_type, device_of_t<P>>& net, const options_of_t<P>& o,
                            const nas::Schedule& schedule) {
    using Net = nas::Supernet<typename P::value_type, device_of_t<P>>;
    using O = options_of_t<P>;
    if constexpr (std::is_constructible_v<P, Net&, const O&, const nas::Schedule&>) {
        return std::make_unique<P>(net, o, schedule);
    } else if constexpr (std::is_constructible_v<P, Net&, const O&>) {
        return std::make_unique<P>(net, o);
    } else if constexpr (std::is_constructible_v<P, Net&>) {
        return std::make_unique<P>(net);
    } else {
        static_assert(detail::dependent_false<P>,
                      "JointSearch: the NAS policy is not constructible from (net, options[, nas::Schedule]) nor from "
                      "(net); give it such a constructor or set Factories::nas");
    }
}

template <class P>
std::unique_ptr<P> make_hpo(const std::vector<optim::ParamGroup<typename P::value_type, device_of_t<P>>>& groups,
                            const options_of_t<P>& o, std::function<double(std::int64_t)> lr_factor) {
    using G = std::vector<optim::ParamGroup<typename P::value_type, device_of_t<P>>>;
    if constexpr (std::is_constructible_v<P, const G&, const options_of_t<P>&, std::function<double(std::int64_t)>>) {
        return std::make_unique<P>(groups, o, std::move(lr_factor));
    } else {
        // An HPO policy of your own with other constructor arguments: JointSearch calls this only
        // when Factories::hpo is empty (it is instantiated either way, so the check is at run time).
        throw value_error(fmt::format("JointSearch: the HPO policy '{}' has no constructor (groups, options, lr_factor) "
                                      "to make it from its options; set Factories::hpo (docs/search.md, StepDecay)",
                                      P::policy_name));
    }
}

namespace detail {
/// A policy's options as JSON (their to_json, found by ADL), or null for options that have none:
/// a checkpoint then resumes into any options of that policy.
template <class O>
nlohmann::json options_json(const O& o) {
    if constexpr (std::is_constructible_v<nlohmann::json, const O&>)
        return nlohmann::json(o);
    else
        return nullptr;
}

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
