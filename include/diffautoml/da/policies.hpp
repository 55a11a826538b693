#pragma once
// Data augmentation policies (types satisfying DaPolicy):
//  - PairPolicyDA (DiffAutoML / DHA): a distribution over the K*K ordered op pairs, one pair per
//    image, magnitudes m ~ U(0, M), updated adversarially from the per-sample training losses;
//  - DADA (Li et al. 2020): Gumbel-softmax choice of a sub-policy (op pair), relaxed-Bernoulli
//    apply probabilities and learned magnitudes, all differentiable through the augmented images;
//  - RandAugment(N, M), StandardAugment (pad-and-random-crop + flip), NoAugment.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "../optim/optimizer.hpp"
#include "../optim/unrolled.hpp"
#include "../sampling/sampling.hpp"
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
template <class P>
concept DaPolicy = requires(P& p, const P& cp, const Tensor<typename P::value_type>& x, DaContext& ctx) {
    typename P::value_type;
    { p.augment(x, ctx) } -> std::same_as<Var<typename P::value_type>>;
    p.update(x, ctx);
    { cp.summary(std::size_t{}) } -> std::same_as<std::vector<PolicyEntry>>;
    { cp.searching() } -> std::same_as<bool>;
    { P::policy_name } -> std::convertible_to<std::string_view>;
};

/// A DA policy that can augment batches held on device D (every policy can on the CPU;
/// PairPolicyDA and NoAugment also on a GPU). The policy's own state stays on the host.
template <class P, class D>
concept DaPolicyOn = DaPolicy<P> && requires(P& p, const Tensor<typename P::value_type, D>& x, DaContext& ctx) {
    { p.augment(x, ctx) } -> std::same_as<Var<typename P::value_type, D>>;
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

// ---------------------------------------------------------------------------------------------

struct PairPolicyOptions {
    std::vector<Op> ops = all_ops();  ///< the K ops; the policy is over the K*K ordered pairs
    double max_magnitude = 1.0;       ///< M: each op's magnitude is drawn from U(0, M)
    /// SGD step on the pair logits. L_DA's gradient carries a factor P[pair] (about 1/K^2 at the
    /// start), so the rate is large compared with those of the weights.
    double lr = 20.0;
    /// beta of an added beta * KL(P || uniform) = beta * (log K^2 - H(P)) term in L_DA (0: the
    /// update exactly as docs/algorithm.md states it). It pulls P toward uniform with a force that
    /// grows like log P_j, against L_DA's pull that grows like P_j (docs/da.md).
    double entropy_weight = 0.0;
    /// If > 0, the logits are clamped to [-c, c], c = log(max_ratio) / 2 after every update, so
    /// that no pair is more than max_ratio times as likely as another: the adversarial update is
    /// rich-get-richer and otherwise can put nearly all images on one pair (0: no clamp).
    double max_ratio = 0.0;
    /// Fading out (1: never, the policy as docs/algorithm.md states it). From this fraction f of the
    /// planned steps on, each image is augmented only with probability
    ///     p(t) = (1 + cos(pi (t/T - f) / (1 - f))) / 2,
    /// which falls from 1 to 0 at the last step, so that the last epochs train on the clean images
    /// the network is tested on. Images left clean take no part in L_DA.
    double fade_start = 1.0;
    /// The share of images still augmented at the last step of a fade (0: none, clean images at
    /// the end): p(t) = floor + (1 - floor) (1 + cos(pi (t/T - f) / (1 - f))) / 2.
    double fade_floor = 0.0;
    /// A base augmentation under the policy (0: none, the policy as docs/algorithm.md states it): each
    /// image is mirrored left-right with this probability before its pair is applied, at every
    /// step and whether or not fading leaves its pair out, the way AutoAugment's policies run on
    /// top of standard flips. The flip takes no part in L_DA.
    double flip_probability = 0.0;
    /// How L_DA's gradient in the logits is estimated:
    ///  - direct: the gradient of mean_i(-l_i P[pair_i]) as docs/algorithm.md step 4 states it (DHA's
    ///    code); its expected step on pair k is about P_k^2 l_k, so probable pairs grow faster than
    ///    their loss warrants (rich get richer), which max_ratio and the fade hold in check;
    ///  - score_function: the unbiased REINFORCE estimate of grad_pi E_P[l],
    ///    mean_i((l_i - b) grad log P[pair_i]), b a running mean of the losses (Williams 1992),
    ///    ascended: probability moves toward pairs whose loss is above the baseline.
    enum class Estimator { direct, score_function };
    Estimator estimator = Estimator::direct;
    /// score_function: b <- m b + (1 - m) mean(l) after each update (b starts at the first batch's
    /// mean, used from the second update on).
    double baseline_momentum = 0.9;
    AugmentOptions augment{};
    PixelSpace pixels{};
};

/// DiffAutoML's DA policy. Each image draws one ordered pair (o1, o2) by the Gumbel-max trick on
/// log P, P = softmax(pi) (the same as sampling Cat(P)), and gets o2(o1(x; m1); m2) with
/// m ~ U(0, M) and a random sign for symmetric ops. update() takes one SGD step on
///     L_DA = mean_i(-stopgrad(l_i) * P[pair_i]),
/// raising the probability of pairs whose images have a high training loss (docs/algorithm.md step 4).
template <class T = float>
class PairPolicyDA {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "pair_policy";

    explicit PairPolicyDA(PairPolicyOptions o = {}) : opt_(std::move(o)) {
        detail::check_ops(opt_.ops, "PairPolicyDA");
        DAM_CHECK(opt_.max_magnitude >= 0 && opt_.max_magnitude <= 1, value_error,
                  "PairPolicyDA: max_magnitude {} must be in [0, 1] (a fraction of each op's range)", opt_.max_magnitude);
        DAM_CHECK(std::isfinite(opt_.lr) && opt_.lr >= 0, value_error, "PairPolicyDA: lr must be finite and >= 0, got {}",
                  opt_.lr);
        DAM_CHECK(opt_.pixels.std > 0, value_error, "PairPolicyDA: pixel std must be > 0, got {}", opt_.pixels.std);
        DAM_CHECK(std::isfinite(opt_.entropy_weight) && opt_.entropy_weight >= 0, value_error,
                  "PairPolicyDA: entropy_weight must be finite and >= 0, got {}", opt_.entropy_weight);
        DAM_CHECK(opt_.max_ratio == 0 || (std::isfinite(opt_.max_ratio) && opt_.max_ratio >= 1), value_error,
                  "PairPolicyDA: max_ratio must be 0 (no clamp) or a finite ratio >= 1, got {}", opt_.max_ratio);
        DAM_CHECK(opt_.flip_probability >= 0 && opt_.flip_probability <= 1, value_error,
                  "PairPolicyDA: flip_probability must be a probability in [0, 1] (0: no base flips), got {}",
                  opt_.flip_probability);
        DAM_CHECK(opt_.fade_start >= 0 && opt_.fade_start <= 1, value_error,
                  "PairPolicyDA: fade_start must be a fraction of the steps in [0, 1] (1: no fading), got {}",
                  opt_.fade_start);
        DAM_CHECK(opt_.baseline_momentum >= 0 && opt_.baseline_momentum < 1, value_error,
                  "PairPolicyDA: baseline_momentum must be in [0, 1), got {}", opt_.baseline_momentum);
        DAM_CHECK(opt_.fade_floor >= 0 && opt_.fade_floor <= 1, value_error,
                  "PairPolicyDA: fade_floor must be a probability in [0, 1] (0: clean images at the end), got {}",
                  opt_.fade_floor);
        detail::check_options(opt_.augment, "PairPolicyDA");
        logits_.assign(static_cast<std::size_t>(pair_count()), 0.0);
    }

    std::int64_t op_count() const { return static_cast<std::int64_t>(opt_.ops.size()); }
    std::int64_t pair_count() const { return op_count() * op_count(); }
    /// The ops of pair k (first applied first).
    std::pair<Op, Op> pair(std::int64_t k) const {
        return {opt_.ops[static_cast<std::size_t>(k / op_count())], opt_.ops[static_cast<std::size_t>(k % op_count())]};
    }
    /// P = softmax(pi) over the pairs.
    std::vector<double> probabilities() const { return sampling::softmax_row(logits_); }
    const std::vector<double>& logits() const { return logits_; }
    void set_logits(const std::vector<double>& l) {
        DAM_CHECK(static_cast<std::int64_t>(l.size()) == pair_count(), shape_error,
                  "PairPolicyDA::set_logits: {} logits for {} pairs", l.size(), pair_count());
        for (double v : l) DAM_CHECK(std::isfinite(v), value_error, "PairPolicyDA::set_logits: non-finite logit {}", v);
        logits_ = l;
    }
    /// The pair index each image of the last augmented batch drew.
    const std::vector<std::int64_t>& last_pairs() const { return pairs_; }
    /// Whether each image of the last batch was augmented (all of them unless fading).
    const std::vector<bool>& last_applied() const { return applied_; }
    /// Whether each image of the last batch was mirrored by the base flip (see flip_probability).
    const std::vector<bool>& last_flipped() const { return flipped_; }
    /// The probability of augmenting an image at this step of that many (see fade_start).
    double apply_probability(std::int64_t step, std::int64_t total_steps) const {
        const double f = opt_.fade_start;
        if (f >= 1 || total_steps <= 0) return 1.0;
        const double t = std::clamp(static_cast<double>(step) / static_cast<double>(total_steps), 0.0, 1.0);
        if (t <= f) return 1.0;
        const double c = 0.5 * (1 + std::cos(std::numbers::pi * (t - f) / (1 - f)));
        return opt_.fade_floor + (1 - opt_.fade_floor) * c;
    }
    /// The apply probability of the last augmented batch.
    double last_apply_probability() const { return last_p_; }
    const PairPolicyOptions& options() const { return opt_; }
    bool searching() const { return opt_.lr > 0; }
    /// The score-function baseline b (NaN until the first update).
    double baseline() const { return baseline_; }
    /// The magnitudes of each image's pair in the last batch (2 per image, first op first).
    const std::vector<double>& last_magnitudes() const { return magnitudes_; }
    void save_state(ByteWriter& w) const {
        put_doubles(w, logits_);
        if (opt_.estimator == PairPolicyOptions::Estimator::score_function) w.put(baseline_);
    }
    void load_state(ByteReader& r) {
        get_doubles(r, logits_, "PairPolicyDA state");
        if (opt_.estimator == PairPolicyOptions::Estimator::score_function) baseline_ = r.get<double>();
    }

    /// The augmented batch, on the device the images are on (the draws are made on the host, so a
    /// GPU batch gets exactly the ops and magnitudes a CPU batch would).
    template <Device D = cpu>
    Var<T, D> augment(const Tensor<T, D>& x, DaContext& ctx) {
        detail::check_context(ctx, "PairPolicyDA::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "PairPolicyDA::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), K2 = pair_count();
        const auto noise = ctx.gen->next_stream(), mags = ctx.gen->next_stream(), draws_s = ctx.gen->next_stream();
        std::vector<double> logp = sampling::softmax_row(logits_);
        for (auto& p : logp) p = std::log(std::max(p, 1e-300));
        pairs_.assign(static_cast<std::size_t>(N), 0);
        last_p_ = apply_probability(ctx.step, ctx.total_steps);
        applied_.assign(static_cast<std::size_t>(N), true);
        // S ops per image: the base flip (or identity) first when flips are on, then the pair.
        const bool flips = opt_.flip_probability > 0;
        const std::int64_t S = flips ? 3 : 2, first = flips ? 1 : 0;
        flipped_.assign(static_cast<std::size_t>(N), false);
        magnitudes_.assign(static_cast<std::size_t>(2 * N), 0.0);
        std::vector<OpDraw> draws(static_cast<std::size_t>(S * N));
        std::vector<double> m(static_cast<std::size_t>(S * N), 0.0);
        for (std::int64_t i = 0; i < N; ++i) {
            // Gumbel-max: argmax_k (log P_k + g_k) ~ Cat(P); the temperature of the soft relaxation
            // does not move the argmax, so none is needed to draw the pair.
            std::int64_t best = 0;
            double best_v = -std::numeric_limits<double>::infinity();
            for (std::int64_t k = 0; k < K2; ++k) {
                const double v = logp[static_cast<std::size_t>(k)] +
                                 sampling::gumbel_from_uniform(noise.uniform_double(static_cast<std::uint64_t>(i * K2 + k)));
                if (v > best_v) {
                    best_v = v;
                    best = k;
                }
            }
            pairs_[static_cast<std::size_t>(i)] = best;
            // The apply decision reads indices 2N.. of the magnitude stream, so that without fading
            // every draw is what it was before fading existed.
            const bool apply =
                last_p_ >= 1 || mags.uniform_double(static_cast<std::uint64_t>(2 * N + i)) < last_p_;
            applied_[static_cast<std::size_t>(i)] = apply;
            const auto [o1, o2] = apply ? pair(best) : std::pair<Op, Op>{Op::identity, Op::identity};
            for (int s = 0; s < 2; ++s) {
                // The pair's draws and magnitudes keep indices 2i, 2i + 1 of their streams.
                const auto k = static_cast<std::size_t>(2 * i + s);
                const auto at = static_cast<std::size_t>(S * i + first + s);
                draws[at] = random_draw(s == 0 ? o1 : o2, draws_s, k);
                m[at] = opt_.max_magnitude * mags.uniform_double(k);
                magnitudes_[k] = m[at];
            }
            if (flips) {
                // Indices 3N.. of the magnitude stream: without flips no draw changes.
                const bool flip = mags.uniform_double(static_cast<std::uint64_t>(3 * N + i)) < opt_.flip_probability;
                flipped_[static_cast<std::size_t>(i)] = flip;
                draws[static_cast<std::size_t>(S * i)].op = flip ? Op::flip_lr : Op::identity;
            }
        }
        if constexpr (std::is_same_v<D, cpu>) {
            Tensor<T> y = augment_images<T>(to_pixels(x, opt_.pixels), draws, m, S, opt_.augment);
            from_pixels_(y, opt_.pixels);
            return Var<T>(y, false);
        } else {
            // The device kernels apply one op per image: the S ops in turn, ping-ponging buffers.
            Tensor<T, D> a = to_pixels(x, opt_.pixels), b(x.shape());
            const std::int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3);
            std::vector<OpDraw> ds(static_cast<std::size_t>(N));
            std::vector<double> ms(static_cast<std::size_t>(N));
            for (std::int64_t s = 0; s < S; ++s) {
                for (std::int64_t i = 0; i < N; ++i) {
                    ds[static_cast<std::size_t>(i)] = draws[static_cast<std::size_t>(S * i + s)];
                    ms[static_cast<std::size_t>(i)] = m[static_cast<std::size_t>(S * i + s)];
                }
                augment_forward(D{}, a.data(), b.data(), ds, ms, N, C, H, W, opt_.augment);
                std::swap(a, b);
            }
            from_pixels_(a, opt_.pixels);
            return Var<T, D>(a, false);
        }
    }

    /// dL_DA/dpi_j = mean_i(-l_i P[k_i] (delta(k_i, j) - P_j)) + beta P_j (log P_j + H(P)), the
    /// mean over the augmented images, then pi -= lr * dL_DA/dpi and, with max_ratio, the clamp.
    void update(const Tensor<T>& losses, DaContext&) {
        const auto N = static_cast<std::int64_t>(pairs_.size());
        detail::check_losses(losses, N, "PairPolicyDA::update");
        const std::vector<double> grad = gradient(losses);
        for (std::size_t j = 0; j < logits_.size(); ++j) logits_[j] -= opt_.lr * grad[j];
        if (opt_.estimator == PairPolicyOptions::Estimator::score_function) {
            double sum = 0;
            std::int64_t n = 0;
            for (std::int64_t i = 0; i < N; ++i)
                if (applied_[static_cast<std::size_t>(i)]) {
                    sum += static_cast<double>(losses[i]);
                    ++n;
                }
            if (n > 0) {
                const double mean = sum / static_cast<double>(n);
                baseline_ = std::isnan(baseline_) ? mean
                                                  : opt_.baseline_momentum * baseline_ + (1 - opt_.baseline_momentum) * mean;
            }
        }
        for (double v : logits_)
            DAM_CHECK(std::isfinite(v), value_error,
                      "PairPolicyDA::update: the pair logits became non-finite; lower PairPolicyOptions::lr");
        if (opt_.max_ratio > 0) {
            const double c = std::log(opt_.max_ratio) / 2;
            for (double& v : logits_) v = std::clamp(v, -c, c);
        }
    }

    /// The descent direction of the update in the logits for the last batch and these losses
    /// (exposed for tests), over the augmented images: direct, the gradient of L_DA =
    /// mean_i(-l_i P[k_i]); score_function, -mean_i((l_i - b) (e_{k_i} - P)) with b the baseline
    /// (0 before the first update). Plus the entropy term.
    std::vector<double> gradient(const Tensor<T>& losses) const {
        const auto N = static_cast<std::int64_t>(pairs_.size());
        detail::check_losses(losses, N, "PairPolicyDA::gradient");
        const std::vector<double> P = probabilities();
        std::vector<double> g(P.size(), 0.0);
        const auto augmented = static_cast<std::int64_t>(std::count(applied_.begin(), applied_.end(), true));
        const bool score = opt_.estimator == PairPolicyOptions::Estimator::score_function;
        const double b = std::isnan(baseline_) ? 0.0 : baseline_;
        for (std::int64_t i = 0; i < N; ++i) {
            if (!applied_[static_cast<std::size_t>(i)]) continue;
            const auto k = static_cast<std::size_t>(pairs_[static_cast<std::size_t>(i)]);
            // d(-l P_k)/dpi_j = -l P_k (e_k - P)_j;  score function: -(l - b) (e_k - P)_j.
            const double l = static_cast<double>(losses[i]);
            const double c = (score ? -(l - b) : -l * P[k]) / static_cast<double>(augmented);
            for (std::size_t j = 0; j < P.size(); ++j) g[j] -= c * P[j];
            g[k] += c;
        }
        if (opt_.entropy_weight > 0) {
            // d(-H)/dpi_j = P_j (log P_j + H), H = -sum_k P_k log P_k.
            double H = 0;
            for (double p : P) H -= p > 0 ? p * std::log(p) : 0.0;
            for (std::size_t j = 0; j < P.size(); ++j)
                g[j] += opt_.entropy_weight * (P[j] > 0 ? P[j] * (std::log(P[j]) + H) : 0.0);
        }
        return g;
    }

    std::vector<PolicyEntry> summary(std::size_t top) const {
        const auto P = probabilities();
        std::vector<PolicyEntry> out;
        for (std::size_t k : detail::top_indices(P, top)) {
            const auto [o1, o2] = pair(static_cast<std::int64_t>(k));
            const double mean_m = opt_.max_magnitude / 2;
            out.push_back({{o1, o2}, P[k], {mean_m, mean_m}, {last_p_, last_p_}});
        }
        return out;
    }

private:
    PairPolicyOptions opt_;
    std::vector<double> logits_;
    std::vector<std::int64_t> pairs_;
    std::vector<bool> applied_, flipped_;
    std::vector<double> magnitudes_;
    double last_p_ = 1.0;
    double baseline_ = std::numeric_limits<double>::quiet_NaN();
};

// ---------------------------------------------------------------------------------------------

struct DADAOptions {
    std::vector<Op> ops = all_ops();  ///< sub-policies are the K*K ordered pairs of these ops
    double tau = 0.5;                 ///< Gumbel-softmax temperature of the sub-policy choice (DADA: 0.5)
    double lambda = 0.5;              ///< relaxed-Bernoulli temperature of the apply decisions
    double lr = 5e-3;                 ///< Adam on every policy parameter (DADA: 0.005)
    double initial_magnitude = 0.5;
    double initial_probability = 0.5;
    /// What the policy's parameters d descend on:
    ///  - validation (DADA): F(d) = L_val(w - u(grad_w L_train(w, d))), the validation loss after
    ///    the next weight step, through DaContext::unrolled_image_gradient (DADA eq. 10-11: the
    ///    one-step unrolled bilevel gradient with the finite-difference Hessian-vector product);
    ///  - adversarial: -L_train (raise the training loss, the DiffAutoML convention for DA; the
    ///    gradients come from the one training backward pass);
    ///  - training: L_train (lower it).
    enum class Objective { validation, adversarial, training };
    Objective objective = Objective::validation;
    MagnitudeGradient magnitude_gradient = MagnitudeGradient::straight_through;  ///< DADA's estimator
    AugmentOptions augment{};
    PixelSpace pixels{};
};

/// DADA: each image draws a sub-policy k with a hard Gumbel-softmax sample w = ST(softmax((pi +
/// g) / tau)); sub-policy k applies op j with a relaxed-Bernoulli gate b_j = sigmoid((beta_kj +
/// logistic noise) / lambda) and magnitude m_kj:  a_j = b_j T_j(a_{j-1}; m_kj) + (1 - b_j) a_{j-1},
/// and the image is w_k a_2 (= a_2 in value). One backward pass through the network gives the
/// gradients of pi (straight-through), beta (relaxation) and m (straight-through or exact).
template <class T = float>
class DADA {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "dada";

    explicit DADA(DADAOptions o = {}) : opt_(std::move(o)) {
        detail::check_ops(opt_.ops, "DADA");
        DAM_CHECK(opt_.tau > 0 && opt_.lambda > 0 && std::isfinite(opt_.tau) && std::isfinite(opt_.lambda), value_error,
                  "DADA: temperatures tau {} and lambda {} must be finite and > 0", opt_.tau, opt_.lambda);
        DAM_CHECK(opt_.initial_magnitude >= 0 && opt_.initial_magnitude <= 1, value_error,
                  "DADA: initial magnitude {} must be in [0, 1]", opt_.initial_magnitude);
        DAM_CHECK(opt_.initial_probability > 0 && opt_.initial_probability < 1, value_error,
                  "DADA: initial apply probability {} must be in (0, 1)", opt_.initial_probability);
        DAM_CHECK(opt_.lr > 0 && std::isfinite(opt_.lr), value_error, "DADA: lr must be > 0, got {}", opt_.lr);
        DAM_CHECK(opt_.pixels.std > 0, value_error, "DADA: pixel std must be > 0, got {}", opt_.pixels.std);
        detail::check_options(opt_.augment, "DADA");
        const std::int64_t K = static_cast<std::int64_t>(opt_.ops.size()), S = K * K;
        const double p = opt_.initial_probability;
        pi_ = Var<T>(Tensor<T>::zeros(Shape{S}), true);
        beta_ = Var<T>(Tensor<T>::full(Shape{S, 2}, static_cast<T>(std::log(p / (1 - p)))), true);
        mag_ = Var<T>(Tensor<T>::full(Shape{S, 2}, static_cast<T>(opt_.initial_magnitude)), true);
        adam_ = std::make_unique<optim::Adam<T>>(
            std::vector<optim::ParamGroup<T, cpu>>{{{pi_, beta_, mag_}, opt_.lr, 0.0, "dada"}},
            optim::AdamOptions{0.5, 0.999, 1e-8, false});
    }

    std::int64_t subpolicy_count() const { return pi_.numel(); }
    std::pair<Op, Op> subpolicy(std::int64_t k) const {
        const auto K = static_cast<std::int64_t>(opt_.ops.size());
        return {opt_.ops[static_cast<std::size_t>(k / K)], opt_.ops[static_cast<std::size_t>(k % K)]};
    }
    std::vector<double> probabilities() const {
        std::vector<double> l(static_cast<std::size_t>(pi_.numel()));
        for (std::int64_t k = 0; k < pi_.numel(); ++k) l[static_cast<std::size_t>(k)] = static_cast<double>(pi_.value()[k]);
        return sampling::softmax_row(l);
    }
    /// The learnable parameters: sub-policy logits (S,), apply logits (S, 2), magnitudes (S, 2).
    Var<T>& logits() { return pi_; }
    Var<T>& apply_logits() { return beta_; }
    Var<T>& magnitudes() { return mag_; }
    /// The sub-policy each image of the last batch drew.
    const std::vector<std::int64_t>& last_subpolicies() const { return chosen_; }
    bool searching() const { return true; }
    /// Whether update() needs DaContext::unrolled_image_gradient (the validation objective).
    bool needs_unrolled_gradient() const { return opt_.objective == DADAOptions::Objective::validation; }
    const DADAOptions& options() const { return opt_; }
    void save_state(ByteWriter& w) const {
        for (const auto* v : {&pi_, &beta_, &mag_}) put_tensor(w, v->value());
        adam_->save_state(w);
    }
    void load_state(ByteReader& r) {
        for (auto* v : {&pi_, &beta_, &mag_}) {
            Tensor<T> t = v->value();
            get_tensor(r, t, "DADA state");
        }
        adam_->load_state(r);
    }

    Var<T> augment(const Tensor<T>& x, DaContext& ctx) {
        detail::check_context(ctx, "DADA::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "DADA::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), n = C * H * W, S = subpolicy_count();
        const auto gumbel = ctx.gen->next_stream(), logistic = ctx.gen->next_stream(), draws_s = ctx.gen->next_stream();
        auto st = std::make_shared<State>();
        st->N = N;
        st->n = n;
        st->a0 = to_pixels(x, opt_.pixels);
        st->t1 = Tensor<T>(x.shape());
        st->a1 = Tensor<T>(x.shape());
        st->t2 = Tensor<T>(x.shape());
        Tensor<T> a2(x.shape());
        chosen_.assign(static_cast<std::size_t>(N), 0);
        st->soft.assign(static_cast<std::size_t>(N * S), 0.0);
        st->b.assign(static_cast<std::size_t>(2 * N), 0.0);
        st->m.assign(static_cast<std::size_t>(2 * N), 0.0);
        st->draws.resize(static_cast<std::size_t>(2 * N));
        for (std::int64_t i = 0; i < N; ++i) {
            // Gumbel-softmax over the sub-policies; the hard sample is its argmax.
            double* soft = st->soft.data() + i * S;
            double mx = -std::numeric_limits<double>::infinity();
            for (std::int64_t k = 0; k < S; ++k) {
                soft[k] = (static_cast<double>(pi_.value()[k]) +
                           sampling::gumbel_from_uniform(gumbel.uniform_double(static_cast<std::uint64_t>(i * S + k)))) /
                          opt_.tau;
                mx = std::max(mx, soft[k]);
            }
            double z = 0;
            for (std::int64_t k = 0; k < S; ++k) z += (soft[k] = std::exp(soft[k] - mx));
            for (std::int64_t k = 0; k < S; ++k) soft[k] /= z;
            const std::int64_t k = std::max_element(soft, soft + S) - soft;
            chosen_[static_cast<std::size_t>(i)] = k;
            const auto [o1, o2] = subpolicy(k);
            for (int j = 0; j < 2; ++j) {
                const auto q = static_cast<std::size_t>(2 * i + j);
                const double l = sampling::logistic_from_uniform(logistic.uniform_double(q));
                st->b[q] = 1.0 / (1.0 + std::exp(-(static_cast<double>(beta_.value()[2 * k + j]) + l) / opt_.lambda));
                st->m[q] = std::clamp(static_cast<double>(mag_.value()[2 * k + j]), 0.0, 1.0);
                st->draws[q] = random_draw(j == 0 ? o1 : o2, draws_s, q);
            }
        }
        parallel_for(N, [&](std::int64_t i) {
            thread_local kernels::Scratch scratch;
            const T* a0 = st->a0.data() + i * n;
            T *t1 = st->t1.data() + i * n, *a1 = st->a1.data() + i * n, *t2 = st->t2.data() + i * n, *y = a2.data() + i * n;
            const double b1 = st->b[static_cast<std::size_t>(2 * i)], b2 = st->b[static_cast<std::size_t>(2 * i + 1)];
            kernels::forward(st->draws[static_cast<std::size_t>(2 * i)], st->m[static_cast<std::size_t>(2 * i)], a0, t1, C,
                             H, W, opt_.augment, scratch);
            for (std::int64_t p = 0; p < n; ++p) a1[p] = static_cast<T>(b1 * t1[p] + (1 - b1) * a0[p]);
            kernels::forward(st->draws[static_cast<std::size_t>(2 * i + 1)], st->m[static_cast<std::size_t>(2 * i + 1)], a1,
                             t2, C, H, W, opt_.augment, scratch);
            for (std::int64_t p = 0; p < n; ++p) y[p] = static_cast<T>(b2 * t2[p] + (1 - b2) * a1[p]);
        });
        Tensor<T> out = a2.clone();
        from_pixels_(out, opt_.pixels);
        st->a2 = a2;
        st->chosen = chosen_;
        st->S = S;
        st->C = C;
        st->H = H;
        st->W = W;
        last_ = st;
        // With the validation objective the gradients come from update(), not from the training
        // backward pass: the batch is a constant there.
        if (opt_.objective == DADAOptions::Objective::validation) return Var<T>(out, false);
        return Var<T>::make_result(out, "dada_augment", {pi_, beta_, mag_},
                                   [st, opt = opt_, pn = pi_.node(), bn = beta_.node(), mn = mag_.node()](const Tensor<T>& g) {
                                       auto [gpi, gbeta, gmag] = parameter_gradients(*st, opt, g);
                                       if (pn->requires_grad) pn->accumulate_owned(std::move(gpi));
                                       if (bn->requires_grad) bn->accumulate_owned(std::move(gbeta));
                                       if (mn->requires_grad) mn->accumulate_owned(std::move(gmag));
                                   });
    }

    /// The gradients (pi, beta, magnitudes) that an image gradient g = dL/d(output) of the last
    /// augmented batch gives, without touching the parameters' accumulated gradients.
    std::array<Tensor<T>, 3> backward_images(const Tensor<T>& g) const {
        DAM_CHECK(last_ != nullptr, value_error, "DADA::backward_images: no batch was augmented yet");
        DAM_CHECK(g.defined() && g.numel() == last_->N * last_->n, shape_error,
                  "DADA::backward_images: the image gradient has shape {}, the last batch {} images of {} values",
                  g.defined() ? g.shape() : Shape{}, last_->N, last_->n);
        return parameter_gradients(*last_, opt_, g);
    }
    /// The soft Gumbel-softmax weights of each image of the last batch over the sub-policies
    /// (N x S, row-major); the hard sample is each row's argmax.
    const std::vector<double>& last_soft_weights() const {
        static const std::vector<double> none;
        return last_ ? last_->soft : none;
    }

    /// One Adam step on every parameter, magnitudes clamped to [0, 1]; the gradients are cleared.
    /// Validation objective: the gradients come from ctx.unrolled_image_gradient(); otherwise the
    /// training backward pass left them (negated for ascent when adversarial). The losses are
    /// checked.
    void update(const Tensor<T>& losses, DaContext& ctx) {
        detail::check_losses(losses, static_cast<std::int64_t>(chosen_.size()), "DADA::update");
        if (opt_.objective == DADAOptions::Objective::validation) {
            DAM_CHECK(static_cast<bool>(ctx.unrolled_image_gradient), value_error,
                      "DADA::update: the validation objective needs DaContext::unrolled_image_gradient from the trainer "
                      "(JointSearch sets it); or choose DADAOptions::Objective::adversarial");
            const Tensor<double> gd = ctx.unrolled_image_gradient();
            Tensor<T> g(gd.shape());
            for (std::int64_t k = 0; k < gd.numel(); ++k) g[k] = static_cast<T>(gd[k]);
            auto [gpi, gbeta, gmag] = backward_images(g);
            pi_.grad() = std::move(gpi);
            beta_.grad() = std::move(gbeta);
            mag_.grad() = std::move(gmag);
        }
        for (auto* v : {&pi_, &beta_, &mag_}) {
            if (!v->grad().defined()) continue;
            T* gp = v->grad().data();
            for (std::int64_t k = 0; k < v->numel(); ++k) {
                DAM_CHECK(std::isfinite(static_cast<double>(gp[k])), value_error,
                          "DADA::update: a policy gradient is non-finite; lower the learning rate or check the loss");
                if (opt_.objective == DADAOptions::Objective::adversarial) gp[k] = -gp[k];
            }
        }
        adam_->step();
        T* m = mag_.value().data();
        for (std::int64_t k = 0; k < mag_.numel(); ++k) m[k] = std::clamp(m[k], T(0), T(1));
        for (auto* v : {&pi_, &beta_, &mag_}) v->zero_grad();
    }

    std::vector<PolicyEntry> summary(std::size_t top) const {
        const auto P = probabilities();
        std::vector<PolicyEntry> out;
        for (std::size_t k : detail::top_indices(P, top)) {
            const auto [o1, o2] = subpolicy(static_cast<std::int64_t>(k));
            PolicyEntry e{{o1, o2}, P[k], {}, {}};
            for (std::size_t j = 0; j < 2; ++j) {
                e.magnitudes.push_back(static_cast<double>(mag_.value()[static_cast<std::int64_t>(2 * k + j)]));
                e.apply_probabilities.push_back(
                    1.0 / (1.0 + std::exp(-static_cast<double>(beta_.value()[static_cast<std::int64_t>(2 * k + j)]))));
            }
            out.push_back(std::move(e));
        }
        return out;
    }

private:
    /// What the backward pass of one augmented batch needs.
    struct State {
        std::int64_t N = 0, n = 0, S = 0, C = 0, H = 0, W = 0;
        Tensor<T> a0, t1, a1, t2, a2;  ///< pixels: input, op 1 output, after gate 1, op 2 output, result
        std::vector<double> soft, b, m;
        std::vector<OpDraw> draws;
        std::vector<std::int64_t> chosen;
    };

    /// dL/dw_i = <g_i, a2_i> (pixels) feeds pi through the soft sample; the gates and ops are
    /// differentiated back from a2 to a0 (the images themselves need no gradient).
    static std::array<Tensor<T>, 3> parameter_gradients(const State& st, const DADAOptions& opt, const Tensor<T>& g) {
        const std::int64_t N = st.N, n = st.n, S = st.S, C = st.C, H = st.H, W = st.W;
        const double to_pix = 1.0 / opt.pixels.std;  // dL/d(pixels) = dL/d(stored) / std
        std::vector<double> dw(static_cast<std::size_t>(N)), db(static_cast<std::size_t>(2 * N)),
            dm(static_cast<std::size_t>(2 * N));
        parallel_for(N, [&](std::int64_t i) {
            thread_local kernels::Scratch scratch;
            thread_local std::vector<T> gp, ga1;
            gp.assign(static_cast<std::size_t>(n), T(0));
            ga1.assign(static_cast<std::size_t>(n), T(0));
            const T* gi = g.data() + i * n;
            const T *a0 = st.a0.data() + i * n, *t1 = st.t1.data() + i * n, *a1 = st.a1.data() + i * n,
                    *t2 = st.t2.data() + i * n, *a2 = st.a2.data() + i * n;
            const auto q1 = static_cast<std::size_t>(2 * i), q2 = q1 + 1;
            double w = 0, g_b2 = 0;
            for (std::int64_t p = 0; p < n; ++p) {
                const double gg = static_cast<double>(gi[p]) * to_pix;
                w += gg * static_cast<double>(a2[p]);
                g_b2 += gg * (static_cast<double>(t2[p]) - static_cast<double>(a1[p]));
                gp[static_cast<std::size_t>(p)] = static_cast<T>(st.b[q2] * gg);  // dL/dt2
                ga1[static_cast<std::size_t>(p)] = static_cast<T>((1 - st.b[q2]) * gg);
            }
            dw[static_cast<std::size_t>(i)] = w;
            db[q2] = g_b2;
            dm[q2] = kernels::backward(st.draws[q2], st.m[q2], a1, gp.data(), ga1.data(), C, H, W, opt.augment,
                                       opt.magnitude_gradient, scratch);
            double g_b1 = 0;
            for (std::int64_t p = 0; p < n; ++p) {
                const double gg = static_cast<double>(ga1[static_cast<std::size_t>(p)]);
                g_b1 += gg * (static_cast<double>(t1[p]) - static_cast<double>(a0[p]));
                gp[static_cast<std::size_t>(p)] = static_cast<T>(st.b[q1] * gg);  // dL/dt1
            }
            db[q1] = g_b1;
            dm[q1] = kernels::backward(st.draws[q1], st.m[q1], a0, gp.data(), static_cast<T*>(nullptr), C, H, W,
                                       opt.augment, opt.magnitude_gradient, scratch);
        });
        Tensor<T> gpi = Tensor<T>::zeros(Shape{S}), gbeta = Tensor<T>::zeros(Shape{S, 2}), gmag = Tensor<T>::zeros(Shape{S, 2});
        for (std::int64_t i = 0; i < N; ++i) {
            const std::int64_t k = st.chosen[static_cast<std::size_t>(i)];
            const double* soft = st.soft.data() + i * S;
            // Straight-through: d w_k / d pi_j = soft_k (delta_kj - soft_j) / tau.
            const double c = dw[static_cast<std::size_t>(i)] * soft[k] / opt.tau;
            for (std::int64_t j = 0; j < S; ++j) gpi[j] -= static_cast<T>(c * soft[j]);
            gpi[k] += static_cast<T>(c);
            for (std::int64_t j = 0; j < 2; ++j) {
                const auto q = static_cast<std::size_t>(2 * i + j);
                gbeta[2 * k + j] += static_cast<T>(db[q] * st.b[q] * (1 - st.b[q]) / opt.lambda);
                gmag[2 * k + j] += static_cast<T>(dm[q]);
            }
        }
        return {std::move(gpi), std::move(gbeta), std::move(gmag)};
    }

    DADAOptions opt_;
    Var<T> pi_, beta_, mag_;
    std::unique_ptr<optim::Adam<T>> adam_;
    std::vector<std::int64_t> chosen_;
    std::shared_ptr<const State> last_;  ///< what the last augmented batch's gradients need
};

// ---------------------------------------------------------------------------------------------

struct RandAugmentOptions {
    /// RandAugment's 14 ops (Cubuk et al. 2020): no FlipLR, Invert or Cutout.
    std::vector<Op> ops{Op::identity,  Op::auto_contrast, Op::equalize, Op::rotate,     Op::solarize,
                        Op::color,     Op::posterize,     Op::contrast, Op::brightness, Op::sharpness,
                        Op::shear_x,   Op::shear_y,       Op::translate_x, Op::translate_y};
    int n = 2;           ///< ops per image, drawn uniformly with replacement
    double m = 9.0;      ///< magnitude on AutoAugment's 0..10 scale (m / 10 of each op's range)
    /// Each image is first mirrored left-right with this probability (the base flip that
    /// RandAugment's paper keeps under its N ops on CIFAR; 0: none, every draw as without it).
    double flip_probability = 0.0;
    AugmentOptions augment{};
    PixelSpace pixels{};
};

/// RandAugment(N, M): N uniformly chosen ops per image, each at magnitude M / 10, random sign.
template <class T = float>
class RandAugment {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "randaugment";

    explicit RandAugment(RandAugmentOptions o = {}) : opt_(std::move(o)) {
        detail::check_ops(opt_.ops, "RandAugment");
        DAM_CHECK(opt_.n >= 1 && opt_.n <= 16, value_error, "RandAugment: N = {} ops per image must be in [1, 16]", opt_.n);
        DAM_CHECK(opt_.m >= 0 && opt_.m <= 10, value_error, "RandAugment: M = {} must be in [0, 10]", opt_.m);
        DAM_CHECK(opt_.flip_probability >= 0 && opt_.flip_probability <= 1, value_error,
                  "RandAugment: flip_probability must be a probability in [0, 1] (0: no base flip), got {}",
                  opt_.flip_probability);
        DAM_CHECK(opt_.pixels.std > 0, value_error, "RandAugment: pixel std must be > 0, got {}", opt_.pixels.std);
        detail::check_options(opt_.augment, "RandAugment");
    }
    bool searching() const { return false; }

    Var<T> augment(const Tensor<T>& x, DaContext& ctx) {
        detail::check_context(ctx, "RandAugment::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "RandAugment::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), n = opt_.n, K = static_cast<std::int64_t>(opt_.ops.size());
        const auto choice = ctx.gen->next_stream(), draws_s = ctx.gen->next_stream();
        // Op j of image i is draws_s's draw n i + j whether or not the base flip is on; with it,
        // each image's ops are preceded by flip_lr or identity (choice's uniform N n + i, past the
        // words the op choices read).
        const bool flips = opt_.flip_probability > 0;
        const std::int64_t S = flips ? n + 1 : n, first = flips ? 1 : 0;
        std::vector<OpDraw> draws(static_cast<std::size_t>(N * S));
        std::vector<double> m(draws.size(), opt_.m / 10.0);
        last_.assign(static_cast<std::size_t>(N * n), OpDraw{});
        for (std::int64_t i = 0; i < N; ++i) {
            for (std::int64_t j = 0; j < n; ++j) {
                const auto k = static_cast<std::uint64_t>(i * n + j);
                const auto at = static_cast<std::size_t>(i * S + first + j);
                draws[at] = random_draw(opt_.ops[choice.word(k) % static_cast<std::uint32_t>(K)], draws_s, k);
                last_[k] = draws[at];
            }
            if (flips) {
                const bool flip = choice.uniform_double(static_cast<std::uint64_t>(N * n + i)) < opt_.flip_probability;
                draws[static_cast<std::size_t>(i * S)] = OpDraw{flip ? Op::flip_lr : Op::identity};
                m[static_cast<std::size_t>(i * S)] = 0.0;
            }
        }
        Tensor<T> y = augment_images<T>(to_pixels(x, opt_.pixels), draws, m, S, opt_.augment);
        from_pixels_(y, opt_.pixels);
        return Var<T>(y, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    /// The ops of the last batch, N per image (the base flip not included).
    const std::vector<OpDraw>& last_draws() const { return last_; }

    std::vector<PolicyEntry> summary(std::size_t top) const {
        std::vector<PolicyEntry> out;
        const double p = 1.0 / static_cast<double>(opt_.ops.size());
        for (std::size_t k = 0; k < std::min(top, opt_.ops.size()); ++k)
            out.push_back({{opt_.ops[k]}, p, {opt_.m / 10.0}, {1.0}});
        return out;
    }

private:
    RandAugmentOptions opt_;
    std::vector<OpDraw> last_;
};

// ---------------------------------------------------------------------------------------------

struct StandardAugmentOptions {
    std::int64_t pad = 2;   ///< zero-pad this many pixels per side, then crop at a random offset
    bool flip = true;       ///< random horizontal flip with probability 1/2
    double fill = 0.0;      ///< pixel value of the padding (black)
    PixelSpace pixels{};
};

/// The standard training augmentation: random crop of the padded image (a shift by up to `pad`
/// pixels each way) and a random horizontal flip. It moves stored values without arithmetic.
template <class T = float>
class StandardAugment {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "standard";

    explicit StandardAugment(StandardAugmentOptions o = {}) : opt_(o) {
        DAM_CHECK(opt_.pad >= 0, value_error, "StandardAugment: pad must be >= 0, got {}", opt_.pad);
        DAM_CHECK(opt_.pixels.std > 0 && std::isfinite(opt_.fill), value_error,
                  "StandardAugment: pixel std {} must be > 0 and the fill {} finite", opt_.pixels.std, opt_.fill);
    }
    bool searching() const { return false; }

    /// Image n uses block n of one stream: word 0 bit 0 flips, words 1 and 2 give the shifts.
    Var<T> augment(const Tensor<T>& x, DaContext& ctx) {
        detail::check_context(ctx, "StandardAugment::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "StandardAugment::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
        const auto s = ctx.gen->next_stream();
        const auto span = static_cast<std::uint32_t>(2 * opt_.pad + 1);
        const T fill = static_cast<T>((opt_.fill - opt_.pixels.mean) / opt_.pixels.std);
        Tensor<T> y(x.shape());
        parallel_for(N, [&](std::int64_t n) {
            const auto r = s.block(static_cast<std::uint64_t>(n));
            const bool flip = opt_.flip && (r[0] & 1u);
            const std::int64_t dy = static_cast<std::int64_t>(r[1] % span) - opt_.pad;
            const std::int64_t dx = static_cast<std::int64_t>(r[2] % span) - opt_.pad;
            for (std::int64_t c = 0; c < C; ++c) {
                const T* p = x.data() + (n * C + c) * H * W;
                T* q = y.data() + (n * C + c) * H * W;
                for (std::int64_t i = 0; i < H; ++i)
                    for (std::int64_t j = 0; j < W; ++j) {
                        const std::int64_t si = i + dy, sj0 = j + dx, sj = flip ? W - 1 - sj0 : sj0;
                        q[i * W + j] = (si >= 0 && si < H && sj0 >= 0 && sj0 < W) ? p[si * W + sj] : fill;
                    }
            }
        });
        return Var<T>(y, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    std::vector<PolicyEntry> summary(std::size_t) const { return {}; }

private:
    StandardAugmentOptions opt_;
};

/// No augmentation: the batch as it is.
template <class T = float>
class NoAugment {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "none";
    bool searching() const { return false; }
    template <Device D = cpu>
    Var<T, D> augment(const Tensor<T, D>& x, DaContext&) {
        return Var<T, D>(x, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    std::vector<PolicyEntry> summary(std::size_t) const { return {}; }
};

static_assert(DaPolicy<PairPolicyDA<>> && DaPolicy<DADA<>> && DaPolicy<RandAugment<>> && DaPolicy<StandardAugment<>> &&
              DaPolicy<NoAugment<>>);

}  // namespace diffautoml::da
