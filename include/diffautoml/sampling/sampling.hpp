#pragma once
// Random relaxations shared by NAS and DA: Gumbel noise, Gumbel-softmax (soft, and hard with a
// straight-through gradient), categorical sampling, the relaxed Bernoulli, and temperature
// schedules. All randomness comes from one Philox stream per call, so results are reproducible
// and independent of the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "../ops.hpp"
#include "../ops/body/gumbel.hpp"
#include "../ops/cpu/sampling.hpp"

namespace diffautoml::sampling {

using body::clamp_uniform;
using body::gumbel_from_uniform;
using body::kUniformClamp;
using body::logistic_from_uniform;

namespace detail {
inline void check_tau(double tau, const char* op) {
    DAM_CHECK(std::isfinite(tau) && tau > 0, value_error, "{}: temperature must be finite and > 0, got {}", op, tau);
}
template <class T, Device D>
void check_logits(const Var<T, D>& logits, const char* op) {
    DAM_CHECK(logits.defined() && logits.shape().rank() >= 1 && logits.numel() > 0, shape_error,
              "{}: logits must be a non-empty tensor whose last axis holds the categories, got {}", op,
              logits.defined() ? logits.shape() : Shape{});
    const Tensor<T> h = on_host(logits.value());
    const T* p = h.data();
    for (std::int64_t i = 0; i < h.numel(); ++i)
        DAM_CHECK(std::isfinite(static_cast<double>(p[i])), value_error,
                  "{}: logits contain a non-finite value ({} at flat index {}); check the architecture or policy "
                  "parameters for divergence",
                  op, static_cast<double>(p[i]), i);
}
}  // namespace detail

/// A tensor of i.i.d. Gumbel(0, 1) noise on device D (element i uses uniform i of the stream, on
/// every device).
template <class T, Device D = cpu>
Tensor<T, D> gumbel_noise(const Shape& shape, const PhiloxStream& s) {
    Tensor<T, D> t(shape);
    philox_noise(D{}, t.data(), t.numel(), s, body::Noise::gumbel);
    return t;
}

/// A tensor of i.i.d. Logistic(0, 1) noise on device D.
template <class T, Device D = cpu>
Tensor<T, D> logistic_noise(const Shape& shape, const PhiloxStream& s) {
    Tensor<T, D> t(shape);
    philox_noise(D{}, t.data(), t.numel(), s, body::Noise::logistic);
    return t;
}

/// One-hot rows (..., K) with a 1 at the argmax of each row of x (first index on ties).
template <class T, Device D = cpu>
Tensor<T, D> one_hot_argmax(const Tensor<T, D>& x) {
    const std::int64_t K = x.dim(x.shape().rank() - 1), rows = x.numel() / K;
    Tensor<T, D> y = Tensor<T, D>::zeros(x.shape());
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* row = x.data() + r * K;
        y[r * K + (std::max_element(row, row + K) - row)] = T(1);
    }
    return y;
}

/// Straight-through estimator: the value is one_hot(argmax(soft)) exactly, and the gradient
/// passes to `soft` unchanged (d out / d soft = I), as in Jang et al. (2017) and GDAS.
template <class T, Device D>
Var<T, D> straight_through_hard(const Var<T, D>& soft) {
    return Var<T, D>::make_result(one_hot_argmax(soft.value()), "straight_through_hard", {soft},
                                  [sn = soft.node()](const Tensor<T, D>& g) {
                                      if (sn->requires_grad) sn->accumulate(g);
                                  });
}

/// Gumbel-softmax over the last axis: y = softmax((logits + g) / tau), g ~ Gumbel(0, 1)
/// (Jang et al., 2017; Maddison et al., 2017), one fused op on the logits' device (row r of the
/// (rows, K) view uses uniforms r K .. r K + K - 1 of the stream, as gumbel_noise does). With
/// hard = true the value is the one-hot argmax of y (first index on ties) and the gradient is that
/// of the soft y (straight-through).
template <class T, Device D>
Var<T, D> gumbel_softmax(const Var<T, D>& logits, double tau, const PhiloxStream& s, bool hard = false) {
    detail::check_tau(tau, "gumbel_softmax");
    detail::check_logits(logits, "gumbel_softmax");
    const std::int64_t K = logits.dim(logits.shape().rank() - 1), rows = logits.numel() / K;
    Tensor<T, D> soft(logits.shape());
    Tensor<T, D> out = hard ? Tensor<T, D>(logits.shape()) : soft;
    gumbel_softmax_forward(D{}, logits.value().data(), rows, K, tau, s, soft.data(), hard ? out.data() : nullptr, nullptr);
    return Var<T, D>::make_result(out, hard ? "gumbel_softmax_hard" : "gumbel_softmax", {logits},
                                  [ln = logits.node(), soft, rows, K, tau](const Tensor<T, D>& g) {
                                      if (!ln->requires_grad) return;
                                      Tensor<T, D> dz(soft.shape());
                                      gumbel_softmax_backward(D{}, soft.data(), g.data(), rows, K, tau, dz.data());
                                      ln->accumulate_owned(std::move(dz));
                                  });
}

/// Relaxed Bernoulli (binary Concrete): y = sigmoid((logit + log u - log(1 - u)) / tau), elementwise.
template <class T, Device D>
Var<T, D> relaxed_bernoulli(const Var<T, D>& logits, double tau, const PhiloxStream& s) {
    detail::check_tau(tau, "relaxed_bernoulli");
    detail::check_logits(logits, "relaxed_bernoulli");
    const Var<T, D> noisy = logits + Var<T, D>(logistic_noise<T, D>(logits.shape(), s));
    return ops::sigmoid(noisy * (1.0 / tau));
}

/// Softmax of one row of logits, in double (for sampling and reporting).
inline std::vector<double> softmax_row(std::span<const double> logits) {
    std::vector<double> p(logits.begin(), logits.end());
    const double m = *std::max_element(p.begin(), p.end());
    double z = 0;
    for (double& v : p) z += (v = std::exp(v - m));
    for (double& v : p) v /= z;
    return p;
}

/// Index drawn from the categorical distribution `probs` by inverse CDF with the uniform u.
inline std::int64_t categorical_index(std::span<const double> probs, double u) {
    DAM_CHECK(!probs.empty(), value_error, "categorical_index: no categories");
    double total = 0;
    for (double p : probs) {
        DAM_CHECK(std::isfinite(p) && p >= 0, value_error,
                  "categorical_index: probabilities must be finite and >= 0, got {}", p);
        total += p;
    }
    DAM_CHECK(total > 0, value_error, "categorical_index: probabilities sum to 0");
    const double target = u * total;
    double c = 0;
    for (std::size_t k = 0; k < probs.size(); ++k) {
        c += probs[k];
        if (target < c) return static_cast<std::int64_t>(k);
    }
    // u * total can round to exactly the last partial sum: return the last non-zero category.
    for (std::size_t k = probs.size(); k-- > 0;)
        if (probs[k] > 0) return static_cast<std::int64_t>(k);
    return 0;
}

/// One category per row of `probs` (rows x K, each row a distribution), row r using uniform r.
template <class T>
std::vector<std::int64_t> categorical(const Tensor<T, cpu>& probs, const PhiloxStream& s) {
    DAM_CHECK(probs.shape().rank() == 2, shape_error, "categorical: probs must be (rows, K), got {}", probs.shape());
    const std::int64_t R = probs.dim(0), K = probs.dim(1);
    std::vector<std::int64_t> out(static_cast<std::size_t>(R));
    std::vector<double> row(static_cast<std::size_t>(K));
    for (std::int64_t r = 0; r < R; ++r) {
        for (std::int64_t k = 0; k < K; ++k) row[static_cast<std::size_t>(k)] = static_cast<double>(probs[r * K + k]);
        out[static_cast<std::size_t>(r)] = categorical_index(row, s.uniform_double(static_cast<std::uint64_t>(r)));
    }
    return out;
}

/// A temperature schedule: tau(step) for step >= 0.
template <class S>
concept TemperatureSchedule = requires(const S& s, std::int64_t step) {
    { s(step) } -> std::convertible_to<double>;
};

/// tau = start * (end / start)^(t / steps), then constant at `end` (SNAS and GDAS anneal so).
struct ExponentialAnneal {
    double start = 5.0, end = 0.5;
    std::int64_t steps = 1;
    double operator()(std::int64_t step) const {
        DAM_CHECK(start > 0 && end > 0 && steps > 0, value_error,
                  "ExponentialAnneal: start {} and end {} must be > 0 and steps {} >= 1", start, end, steps);
        const double f = static_cast<double>(std::clamp<std::int64_t>(step, 0, steps)) / static_cast<double>(steps);
        return start * std::pow(end / start, f);
    }
};

/// tau = start + (end - start) * t / steps, then constant at `end`.
struct LinearAnneal {
    double start = 5.0, end = 0.5;
    std::int64_t steps = 1;
    double operator()(std::int64_t step) const {
        DAM_CHECK(start > 0 && end > 0 && steps > 0, value_error,
                  "LinearAnneal: start {} and end {} must be > 0 and steps {} >= 1", start, end, steps);
        const double f = static_cast<double>(std::clamp<std::int64_t>(step, 0, steps)) / static_cast<double>(steps);
        return start + (end - start) * f;
    }
};

static_assert(TemperatureSchedule<ExponentialAnneal> && TemperatureSchedule<LinearAnneal>);

}  // namespace diffautoml::sampling
