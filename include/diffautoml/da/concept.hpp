#pragma once
// The contract of a data augmentation policy: the DaPolicy concept (what the trainer calls, in
// which order), DaContext (what a policy may use during a step), PolicyEntry (what summary()
// reports), and the helpers every policy shares. DaPolicy<P, D> names the device of the batches.
// A new policy satisfies DaPolicy in its own header (pair_policy.hpp is the model to copy).
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "../optim/unrolled.hpp"
#include "augment.hpp"

namespace diffautoml::da {

/// What a policy may use during one training step.
struct DaContext {
    Generator* gen = nullptr;      ///< every random draw of the step comes from streams of this generator
    std::int64_t step = 0;         ///< 0-based training step
    std::int64_t total_steps = 1;  ///< planned steps (temperature schedules)
    /// For policies that minimise the validation loss through the next weight step (DADA's
    /// bilevel objective): dF/dx for the last augmented batch x, F = L_val(w - u(grad_w L_train(w,
    /// x))) unrolled one step (optim::unrolled_input_gradient), in the stored space, shape (N, C, H,
    /// W). The trainer sets it; policies with other objectives ignore it.
    std::function<Tensor<double>()> unrolled_image_gradient{};
    /// A data-parallel run (docs/distributed.md): the batch handed to augment() is images
    /// [first_image, first_image + N) of a global batch of global_images (0: the batch is the
    /// whole of it). Per-image draws are keyed by the global index, so an image is augmented the
    /// same way however the global batch is split across ranks.
    std::int64_t first_image = 0;
    std::int64_t global_images = 0;
    /// A sharded step (data-parallel ranks or micro-batches, docs/distributed.md): sums `values`
    /// over the ranks in place. A policy that learns from its batch gives its per-image sums (and
    /// their counts) to it, so that every rank takes the step of the global batch. Empty: the batch
    /// is the whole global batch, in one piece.
    std::function<void(std::span<double> values)> reduce{};
};

/// One row of a learned policy: ops applied in sequence, how likely the row is, and per op the
/// magnitude (its mean where magnitudes are sampled) and the probability that it is applied.
struct PolicyEntry {
    std::vector<Op> ops;
    double probability = 0;
    std::vector<double> magnitudes;
    std::vector<double> apply_probabilities;
};

/// Contract of a DA policy. Per training step the trainer calls
///     x_aug = p.augment(images, ctx)   the stored (normalised) batch in, the augmented batch out,
///                                      in the same space; a constant unless the policy learns
///                                      through the images (DADA), then connected to its parameters
///     ... forward, loss, the one backward pass ...
///     p.update(losses, ctx)            the per-sample training losses (N,) of that batch; updates
///                                      the policy's parameters and clears their gradients
/// summary(k) lists the k most likely rows of the policy; searching() says whether it learns.
/// The device is a parameter, as in every concept of da/, nas/ and hpo/: DaPolicy<P, D> says that P
/// augments batches held on D (D defaults to device_of_t<P>, the CPU for a policy that names no
/// device_type). Every policy can on the CPU; PairPolicyDA and NoAugment also on a GPU. The
/// policy's own state stays on the host.
template <class P, class D = device_of_t<P>>
concept DaPolicy = requires(P& p, const P& cp, const Tensor<typename P::value_type, D>& x,
                            const Tensor<typename P::value_type>& losses, DaContext& ctx) {
    typename P::value_type;
    { p.augment(x, ctx) } -> std::same_as<Var<typename P::value_type, D>>;
    p.update(losses, ctx);
    { cp.summary(std::size_t{}) } -> std::same_as<std::vector<PolicyEntry>>;
    { cp.searching() } -> std::same_as<bool>;
    { P::policy_name } -> std::convertible_to<std::string_view>;
};

/// What a trainer sets as DaContext::unrolled_image_gradient for the batch x it trains on: the
/// weights' current gradients (from the training backward pass, undefined = 0) are g, `update` the
/// weight optimizer's next update, and the result optim::unrolled_input_gradient's dF/dx on the host.
template <class T, Device D>
std::function<Tensor<double>()> unrolled_image_gradient(std::vector<Var<T, D>> weights, optim::UpdateFn<T, D> update,
                                                        std::function<Var<T, D>()> val_loss,
                                                        std::function<Var<T, D>(const Var<T, D>&)> train_loss_of,
                                                        Tensor<T, D> x) {
    return [=]() mutable {
        std::vector<Tensor<T, D>> g;
        for (const auto& w : weights) g.push_back(w.grad().defined() ? w.grad() : Tensor<T, D>::zeros(w.shape()));
        const Tensor<T, cpu> dx = on_host(optim::unrolled_input_gradient(weights, g, update, val_loss, train_loss_of, x));
        Tensor<double> out(dx.shape());
        for (std::int64_t k = 0; k < dx.numel(); ++k) out[k] = static_cast<double>(dx[k]);
        return out;
    };
}

namespace detail {

inline void check_ops(const std::vector<Op>& ops, const char* who) {
    DAM_CHECK(!ops.empty(), value_error, "{}: the op list is empty; use da::all_ops() or name at least one op", who);
    for (Op op : ops)
        DAM_CHECK(static_cast<int>(op) < kOpCount, value_error, "{}: unknown op code {}", who, static_cast<int>(op));
}
inline void check_context(const DaContext& ctx, const char* who) {
    DAM_CHECK(ctx.gen != nullptr, value_error, "{}: the DaContext has no generator", who);
}
/// The global index of the batch's first image and the global batch size for a batch of N.
struct ImageRange {
    std::int64_t first, global;
};
inline ImageRange image_range(const DaContext& ctx, std::int64_t N, const char* who) {
    const std::int64_t G = ctx.global_images == 0 ? N : ctx.global_images;
    DAM_CHECK(ctx.first_image >= 0 && ctx.first_image + N <= G, value_error,
              "{}: a batch of {} images at global index {} does not fit a global batch of {} (DaContext::first_image, "
              "global_images)",
              who, N, ctx.first_image, G);
    return {ctx.first_image, G};
}
template <class T>
void check_losses(const Tensor<T>& losses, std::int64_t n, const char* who) {
    DAM_CHECK(n > 0, value_error, "{}: update() called before augment()", who);
    DAM_CHECK(losses.defined() && losses.shape().rank() == 1 && losses.dim(0) == n, shape_error,
              "{}: update() needs the per-sample losses ({},) of the last augmented batch, got {}", who, n,
              losses.defined() ? losses.shape() : Shape{});
    for (std::int64_t i = 0; i < n; ++i)
        DAM_CHECK(std::isfinite(static_cast<double>(losses[i])), value_error,
                  "{}: the loss of sample {} is {}; the policy is not updated with non-finite losses (lower the "
                  "learning rate)",
                  who, i, static_cast<double>(losses[i]));
}
/// Indices of the k largest values, largest first.
inline std::vector<std::size_t> top_indices(const std::vector<double>& v, std::size_t k) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    k = std::min(k, v.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                      [&](std::size_t a, std::size_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
    idx.resize(k);
    return idx;
}
}  // namespace detail

}  // namespace diffautoml::da
