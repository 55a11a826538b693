#pragma once
// DADA (Li et al. 2020): Gumbel-softmax choice of a sub-policy (op pair), relaxed-Bernoulli
// apply probabilities and learned magnitudes, all differentiable through the augmented images.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string_view>
#include <vector>

#include "../optim/optimizer.hpp"
#include "../sampling/sampling.hpp"
#include "../core/state.hpp"
#include "concept.hpp"

namespace diffautoml::da {

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

inline void to_json(nlohmann::json& j, const DADAOptions& o) {
    constexpr const char* objectives[] = {"validation", "adversarial", "training"};
    j = {{"ops", o.ops},
         {"tau", o.tau},
         {"lambda", o.lambda},
         {"lr", o.lr},
         {"initial_magnitude", o.initial_magnitude},
         {"initial_probability", o.initial_probability},
         {"objective", objectives[static_cast<int>(o.objective)]},
         {"magnitude_gradient", o.magnitude_gradient == MagnitudeGradient::exact ? "exact" : "straight_through"},
         {"augment", o.augment},
         {"pixels", o.pixels}};
}

/// DADA: each image draws a sub-policy k with a hard Gumbel-softmax sample w = ST(softmax((pi +
/// g) / tau)); sub-policy k applies op j with a relaxed-Bernoulli gate b_j = sigmoid((beta_kj +
/// logistic noise) / lambda) and magnitude m_kj:  a_j = b_j T_j(a_{j-1}; m_kj) + (1 - b_j) a_{j-1},
/// and the image is w_k a_2 (= a_2 in value). One backward pass through the network gives the
/// gradients of pi (straight-through), beta (relaxation) and m (straight-through or exact).
template <class T = float>
class DADA {
public:
    using value_type = T;
    using options_type = DADAOptions;
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
        const std::int64_t g0 = detail::image_range(ctx, N, "DADA::augment").first;  // draws keyed by global index
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
                           sampling::gumbel_from_uniform(gumbel.uniform_double(static_cast<std::uint64_t>((g0 + i) * S + k)))) /
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
                const auto gq = static_cast<std::uint64_t>(2 * (g0 + i) + j);
                const double l = sampling::logistic_from_uniform(logistic.uniform_double(gq));
                st->b[q] = 1.0 / (1.0 + std::exp(-(static_cast<double>(beta_.value()[2 * k + j]) + l) / opt_.lambda));
                st->m[q] = std::clamp(static_cast<double>(mag_.value()[2 * k + j]), 0.0, 1.0);
                st->draws[q] = random_draw(j == 0 ? o1 : o2, draws_s, gq);
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

static_assert(DaPolicy<DADA<>>);

}  // namespace diffautoml::da
