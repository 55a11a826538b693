#pragma once
// PairPolicyDA (DiffAutoML / DHA): a distribution over the K*K ordered op pairs, one pair per
// image, magnitudes m ~ U(0, M), updated adversarially from the per-sample training losses.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string_view>
#include <tuple>
#include <vector>

#include "../sampling/sampling.hpp"
#include "../core/state.hpp"
#include "concept.hpp"

namespace diffautoml::da {

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

inline void to_json(nlohmann::json& j, const PairPolicyOptions& o) {
    j = {{"ops", o.ops},
         {"max_magnitude", o.max_magnitude},
         {"lr", o.lr},
         {"entropy_weight", o.entropy_weight},
         {"max_ratio", o.max_ratio},
         {"fade_start", o.fade_start},
         {"fade_floor", o.fade_floor},
         {"flip_probability", o.flip_probability},
         {"estimator", o.estimator == PairPolicyOptions::Estimator::direct ? "direct" : "score_function"},
         {"baseline_momentum", o.baseline_momentum},
         {"augment", o.augment},
         {"pixels", o.pixels}};
}

/// DiffAutoML's DA policy. Each image draws one ordered pair (o1, o2) by the Gumbel-max trick on
/// log P, P = softmax(pi) (the same as sampling Cat(P)), and gets o2(o1(x; m1); m2) with
/// m ~ U(0, M) and a random sign for symmetric ops. update() takes one SGD step on
///     L_DA = mean_i(-stopgrad(l_i) * P[pair_i]),
/// raising the probability of pairs whose images have a high training loss (docs/algorithm.md step 4).
template <class T = float>
class PairPolicyDA {
public:
    using value_type = T;
    using options_type = PairPolicyOptions;
    static constexpr std::string_view policy_name = "pair_policy";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// update() sums its terms over the ranks through DaContext::reduce.
    static constexpr bool data_parallel = true;

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
        // Stream indices use the global image index gi = g0 + i and the global batch size G (i and
        // N when the batch is the whole global batch).
        const auto [g0, G] = detail::image_range(ctx, N, "PairPolicyDA::augment");
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
            const std::int64_t gi = g0 + i;  // the image's global index
            // Gumbel-max: argmax_k (log P_k + g_k) ~ Cat(P); the temperature of the soft relaxation
            // does not move the argmax, so none is needed to draw the pair.
            std::int64_t best = 0;
            double best_v = -std::numeric_limits<double>::infinity();
            for (std::int64_t k = 0; k < K2; ++k) {
                const double v = logp[static_cast<std::size_t>(k)] +
                                 sampling::gumbel_from_uniform(noise.uniform_double(static_cast<std::uint64_t>(gi * K2 + k)));
                if (v > best_v) {
                    best_v = v;
                    best = k;
                }
            }
            pairs_[static_cast<std::size_t>(i)] = best;
            // The apply decision reads indices 2G.. of the magnitude stream, so that without fading
            // every draw is what it was before fading existed.
            const bool apply =
                last_p_ >= 1 || mags.uniform_double(static_cast<std::uint64_t>(2 * G + gi)) < last_p_;
            applied_[static_cast<std::size_t>(i)] = apply;
            const auto [o1, o2] = apply ? pair(best) : std::pair<Op, Op>{Op::identity, Op::identity};
            for (int s = 0; s < 2; ++s) {
                // The pair's draws and magnitudes keep indices 2 gi, 2 gi + 1 of their streams.
                const auto k = static_cast<std::uint64_t>(2 * gi + s);
                const auto at = static_cast<std::size_t>(S * i + first + s);
                draws[at] = random_draw(s == 0 ? o1 : o2, draws_s, k);
                m[at] = opt_.max_magnitude * mags.uniform_double(k);
                magnitudes_[static_cast<std::size_t>(2 * i + s)] = m[at];
            }
            if (flips) {
                // Indices 3G.. of the magnitude stream: without flips no draw changes.
                const bool flip = mags.uniform_double(static_cast<std::uint64_t>(3 * G + gi)) < opt_.flip_probability;
                flipped_[static_cast<std::size_t>(i)] = flip;
                draws[static_cast<std::size_t>(S * i)].op = flip ? Op::flip_lr : Op::identity;
            }
        }
        Tensor<T, D> y = augment_images<T>(to_pixels(x, opt_.pixels), draws, m, S, opt_.augment);
        from_pixels_(y, opt_.pixels);
        return Var<T, D>(y, false);
    }

    /// dL_DA/dpi_j = mean_i(-l_i P[k_i] (delta(k_i, j) - P_j)) + beta P_j (log P_j + H(P)), the
    /// mean over the augmented images, then pi -= lr * dL_DA/dpi and, with max_ratio, the clamp.
    /// In a sharded step (ctx.reduce set) the mean is over the augmented images of every rank: the
    /// per-image sums, the count and the loss sum of the baseline are summed over the ranks first.
    void update(const Tensor<T>& losses, DaContext& ctx) {
        detail::check_losses(losses, static_cast<std::int64_t>(pairs_.size()), "PairPolicyDA::update");
        std::vector<double> grad;
        std::int64_t n = 0;
        double sum = 0;
        if (ctx.reduce) {
            std::vector<double> buf = reduced_terms(losses);  // [count, loss sum, terms]
            ctx.reduce(std::span<double>(buf));
            n = std::llround(buf[0]);
            sum = buf[1];
            grad.assign(buf.begin() + 2, buf.end());
            for (double& g : grad) g = n > 0 ? g / static_cast<double>(n) : 0.0;
            add_entropy_gradient(grad);
        } else {
            std::tie(n, sum) = augmented_losses(losses);
            grad = gradient(losses);
        }
        for (std::size_t j = 0; j < logits_.size(); ++j) logits_[j] -= opt_.lr * grad[j];
        if (opt_.estimator == PairPolicyOptions::Estimator::score_function) {
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

    /// What a sharded update() sums over the ranks, for the last batch and these losses: [count of
    /// augmented images, their loss sum, the per-image terms of the gradient without the 1 / count].
    /// A trainer may sum it with its gradient allreduce and hand the sums to update() through a
    /// DaContext::reduce that returns them (JointSearch does: one collective a step).
    std::vector<double> reduced_terms(const Tensor<T>& losses) const {
        const auto N = static_cast<std::int64_t>(pairs_.size());
        detail::check_losses(losses, N, "PairPolicyDA::reduced_terms");
        const auto [n, sum] = augmented_losses(losses);
        std::vector<double> buf{static_cast<double>(n), sum};
        const auto terms = image_terms(losses, 1.0);
        buf.insert(buf.end(), terms.begin(), terms.end());
        return buf;
    }

    /// The count of the last batch's augmented images and the sum of their losses.
    std::pair<std::int64_t, double> augmented_losses(const Tensor<T>& losses) const {
        double sum = 0;
        std::int64_t n = 0;
        for (std::size_t i = 0; i < pairs_.size(); ++i)
            if (applied_[i]) {
                sum += static_cast<double>(losses[static_cast<std::int64_t>(i)]);
                ++n;
            }
        return {n, sum};
    }

    /// The descent direction of the update in the logits for the last batch and these losses
    /// (exposed for tests), over the augmented images: direct, the gradient of L_DA =
    /// mean_i(-l_i P[k_i]); score_function, -mean_i((l_i - b) (e_{k_i} - P)) with b the baseline
    /// (0 before the first update). Plus the entropy term.
    std::vector<double> gradient(const Tensor<T>& losses) const {
        detail::check_losses(losses, static_cast<std::int64_t>(pairs_.size()), "PairPolicyDA::gradient");
        const auto augmented = static_cast<std::int64_t>(std::count(applied_.begin(), applied_.end(), true));
        std::vector<double> g = image_terms(losses, static_cast<double>(augmented));
        add_entropy_gradient(g);
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
    /// sum_i over the augmented images of d(-l_i P[k_i])/dpi / count (direct; score function:
    /// -(l_i - b) (e_{k_i} - P) / count): the mean when count is the number of augmented images,
    /// the plain sum when it is 1 (a sharded step divides after summing over the ranks).
    std::vector<double> image_terms(const Tensor<T>& losses, double count) const {
        const auto N = static_cast<std::int64_t>(pairs_.size());
        const std::vector<double> P = probabilities();
        std::vector<double> g(P.size(), 0.0);
        const bool score = opt_.estimator == PairPolicyOptions::Estimator::score_function;
        const double b = std::isnan(baseline_) ? 0.0 : baseline_;
        for (std::int64_t i = 0; i < N; ++i) {
            if (!applied_[static_cast<std::size_t>(i)]) continue;
            const auto k = static_cast<std::size_t>(pairs_[static_cast<std::size_t>(i)]);
            // d(-l P_k)/dpi_j = -l P_k (e_k - P)_j;  score function: -(l - b) (e_k - P)_j.
            const double l = static_cast<double>(losses[i]);
            const double c = (score ? -(l - b) : -l * P[k]) / count;
            for (std::size_t j = 0; j < P.size(); ++j) g[j] -= c * P[j];
            g[k] += c;
        }
        return g;
    }
    /// Adds the entropy term's gradient beta d(-H)/dpi_j = beta P_j (log P_j + H), H = -sum_k P_k log P_k.
    void add_entropy_gradient(std::vector<double>& g) const {
        if (opt_.entropy_weight <= 0) return;
        const std::vector<double> P = probabilities();
        double H = 0;
        for (double p : P) H -= p > 0 ? p * std::log(p) : 0.0;
        for (std::size_t j = 0; j < P.size(); ++j)
            g[j] += opt_.entropy_weight * (P[j] > 0 ? P[j] * (std::log(P[j]) + H) : 0.0);
    }
    PairPolicyOptions opt_;
    std::vector<double> logits_;
    std::vector<std::int64_t> pairs_;
    std::vector<bool> applied_, flipped_;
    std::vector<double> magnitudes_;
    double last_p_ = 1.0;
    double baseline_ = std::numeric_limits<double>::quiet_NaN();
};

static_assert(DaPolicy<PairPolicyDA<>>);

}  // namespace diffautoml::da
