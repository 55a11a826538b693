#pragma once
// The contract of an HPO policy: the HpoPolicy concept (what the trainer calls, in which order)
// and HpoContext (what a policy may use in a step). A new policy satisfies HpoPolicy in its own
// header (fixed.hpp is the smallest model to copy).
#include <concepts>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../autograd/variable.hpp"
#include "validation.hpp"

namespace diffautoml::hpo {

/// What an HPO policy may use in one step: the network's forward pass for validation batches.
template <class T, Device D = cpu>
struct HpoContext {
    std::int64_t step = 0;
    ValidationSet* validation = nullptr;  ///< hypergradient policies need it
    std::int64_t validation_batch = 128;
    /// The network (current architecture) on a batch of dataset images (host, always float; the
    /// forward pass moves them to the network's device).
    std::function<Var<T, D>(const Tensor<float, cpu>&)> forward;
    /// The weights still step but the hyperparameters stay where they are (no validation pass):
    /// set once the validation images have joined training, where a hypergradient on them would
    /// measure the training fit.
    bool frozen = false;
    /// The step's training loss at the current weights (the same batch, augmentation and path):
    /// what Curvature::finite_difference differentiates at shifted weights (horizon.hpp).
    std::function<Var<T, D>()> train_loss;
    /// The loss of a fresh validation batch. When set it replaces `validation` and `forward`
    /// (e.g. a regression loss); the caller is then responsible for it being held-out data.
    std::function<Var<T, D>()> val_loss;
    /// A sharded step (data-parallel ranks or micro-batches, docs/distributed.md). When set, it
    /// replaces `validation`, `forward` and `val_loss`: it runs this rank's share of a validation
    /// batch forward and backward, leaving in the weights' gradients its part of grad L_val (the
    /// parts of all ranks sum to the gradient of the global batch's mean loss).
    std::function<void()> validation_backward;
    /// With validation_backward: sums `values` over the ranks in place. A hypergradient, linear in
    /// grad L_val, is summed this way from every rank's part.
    std::function<void(std::span<double> values)> reduce;
    /// With reduce: a hypergradient step does not reduce or apply its hypergradient; it keeps this
    /// rank's parts (HypergradLrWd::pending()) for the trainer to sum with its next allreduce and
    /// hand back (apply_pending()) before the next weight step, which then uses the same rates as
    /// without deferral. JointSearch defers, so that a step is one collective.
    bool defer_reduce = false;
};

/// Contract of an HPO policy. Per training step the trainer calls
///     loss = p.training_loss(logits, labels)   mean cross-entropy with the policy's label smoothing
///     p.backward(loss, logits, labels)         the one training backward pass (+ what the policy needs)
///     p.step(ctx)                              weight update, then the hyperparameter update (none
///                                              while ctx.frozen)
/// step() consumes the weights' gradients and leaves them zero for the next backward pass.
/// values() names every hyperparameter and its current value (for logs).
/// D is the device of the weights it steps: device_of_t<P> (P::device_type, the CPU when it names
/// none), the convention of every concept of da/, nas/ and hpo/.
template <class P, class D = device_of_t<P>>
concept HpoPolicy = std::same_as<D, device_of_t<P>> &&
                    requires(P& p, const P& cp, const Var<typename P::value_type, D>& v,
                             const Tensor<std::int32_t, D>& labels, HpoContext<typename P::value_type, D>& ctx) {
                        typename P::value_type;
                        { p.training_loss(v, labels) } -> std::same_as<Var<typename P::value_type, D>>;
                        p.backward(v, v, labels);
                        p.step(ctx);
                        { cp.values() } -> std::same_as<std::vector<std::pair<std::string, double>>>;
                        { P::policy_name } -> std::convertible_to<std::string_view>;
                    };

}  // namespace diffautoml::hpo
