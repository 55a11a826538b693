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
#include <string_view>
#include <vector>

#include "../core/rng.hpp"
#include "../optim/unrolled.hpp"

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

}  // namespace diffautoml::nas
