#pragma once
// The contract of a NAS policy: how the architecture logits alpha are sampled and updated. Each
// policy satisfies NasPolicy; the trainer (examples/nas_search, search/JointSearch) calls, per
// training step,
//     prepare(ctx)   before the training forward pass: set the supernet's gates (and, for DARTS,
//                    take the architecture step on a validation batch first);
//     update(ctx)    after the training backward pass, before the weight step: use the gradients
//                    of that backward pass (DSNAS, GDAS) to step alpha.
// A new policy satisfies NasPolicy in its own header (fixed.hpp is the smallest model to copy).
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/rng.hpp"
#include "../optim/unrolled.hpp"
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

/// The shape of the run a policy is made for (JointSearch passes it to a constructor
/// P(net, options, Schedule) where a policy has one, so that options may be stated in epochs).
struct Schedule {
    std::int64_t steps_per_epoch = 1;
    std::int64_t total_steps = 1;
};

/// Contract of a search space S (spaces.hpp's ShuffleSpace and MobileNetV2Space, darts_space.hpp's
/// DartsSpace): a name, an Options type with the data's shape (in_channels, classes, image: the
/// trainer sets them from the dataset) and a JSON record (model files and checkpoints keep it),
/// default options, and build<T, D>(options, gen), which makes the supernet on device D.
template <class S>
concept SearchSpace = requires(typename S::Options o, const typename S::Options& co, Generator& gen) {
    { S::name } -> std::convertible_to<std::string_view>;
    { S::default_options() } -> std::same_as<typename S::Options>;
    { co.to_json() } -> std::same_as<nlohmann::json>;
    o.in_channels = std::int64_t{};
    o.classes = std::int64_t{};
    o.image = std::int64_t{};
    { S::template build<float, cpu>(co, gen) } -> std::convertible_to<std::shared_ptr<Supernet<float, cpu>>>;
};

/// Contract of a NAS policy on device D (its device_of_t: P::device_type, the CPU when it names
/// none; every concept of da/, nas/ and hpo/ takes the device this way). Requires: value_type, a
/// search space (space_type, a SearchSpace); prepare(ctx) and update(ctx) as above;
/// probabilities() (one row per decision: the current distribution over its choices); derived()
/// (the argmax architecture, one choice per decision); searching() (false once every decision is
/// fixed, after which the policy costs nothing). A policy that JointSearch can make without a
/// factory names its options (`options_type`) and is constructible from (net, options[, Schedule])
/// (search/make.hpp). Guarantees: after prepare(), a forward pass of the supernet runs the
/// architecture (or mixture) the policy chose for this step.
template <class P, class D = device_of_t<P>>
concept NasPolicy = std::same_as<D, device_of_t<P>> && SearchSpace<typename P::space_type> &&
                    requires(P& p, const P& cp, NasContext<typename P::value_type, D>& ctx) {
                        typename P::value_type;
                        p.prepare(ctx);
                        p.update(ctx);
                        { cp.probabilities() } -> std::same_as<std::vector<std::vector<double>>>;
                        { cp.derived() } -> std::same_as<std::vector<std::int64_t>>;
                        { cp.searching() } -> std::same_as<bool>;
                        { P::policy_name } -> std::convertible_to<std::string_view>;
                    };

}  // namespace diffautoml::nas
