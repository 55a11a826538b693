#pragma once
// Front doors of softmax, log-softmax and cross-entropy (with label smoothing).
#include <cmath>

#include "../autograd/variable.hpp"
#include "cpu/softmax.hpp"
#include "reduce.hpp"

namespace diffautoml::ops {

namespace detail {
template <class T, Device D>
Var<T, D> softmax_impl(const Var<T, D>& x, int axis, bool log) {
    const char* name = log ? "log_softmax" : "softmax";
    const AxisView v = axis_view(x.shape(), axis, true, name);
    Tensor<T, D> y(x.shape());
    softmax_forward(D{}, x.value().data(), y.data(), v.outer, v.n, v.inner, log);
    return Var<T, D>::make_result(y, name, {x}, [xn = x.node(), y, v, log](const Tensor<T, D>& g) {
        Tensor<T, D> dx(y.shape());
        softmax_backward(D{}, y.data(), g.data(), dx.data(), v.outer, v.n, v.inner, log);
        xn->accumulate_owned(std::move(dx));
    });
}
}  // namespace detail

template <class T, Device D> Var<T, D> softmax(const Var<T, D>& x, int axis = -1) { return detail::softmax_impl(x, axis, false); }
template <class T, Device D> Var<T, D> log_softmax(const Var<T, D>& x, int axis = -1) { return detail::softmax_impl(x, axis, true); }

enum class Reduction { mean, sum, none };

struct CrossEntropyOptions {
    double label_smoothing = 0.0;  ///< eps: the target is (1 - eps) onehot + eps / K
    Reduction reduction = Reduction::mean;
};

/// Cross-entropy of logits (N, K) against integer labels (N) in [0, K). Reduction::none gives the
/// per-sample losses (N), which the adversarial DA policy needs.
template <class T, Device D>
Var<T, D> cross_entropy(const Var<T, D>& logits, const Tensor<std::int32_t, D>& labels, CrossEntropyOptions opt = {}) {
    DAM_CHECK(logits.shape().rank() == 2, shape_error, "cross_entropy: logits must be (N, K), got {}", logits.shape());
    const std::int64_t N = logits.dim(0), K = logits.dim(1);
    DAM_CHECK(labels.shape().rank() == 1 && labels.dim(0) == N, shape_error,
              "cross_entropy: labels must be ({},) to match logits {}, got {}", N, logits.shape(), labels.shape());
    DAM_CHECK(opt.label_smoothing >= 0 && opt.label_smoothing <= 1, value_error,
              "cross_entropy: label_smoothing must be in [0, 1], got {}", opt.label_smoothing);
    if constexpr (std::is_same_v<D, cpu>) {
        for (std::int64_t i = 0; i < N; ++i)
            DAM_CHECK(labels[i] >= 0 && labels[i] < K, value_error,
                      "cross_entropy: label {} of sample {} is outside [0, {}): the labels do not fit the number of "
                      "classes",
                      labels[i], i, K);
    }
    Tensor<T, D> loss(Shape{N}), prob(logits.shape());
    cross_entropy_forward(D{}, logits.value().data(), labels.data(), loss.data(), prob.data(), N, K,
                          opt.label_smoothing);
    auto per_sample = Var<T, D>::make_result(
        loss, "cross_entropy", {logits},
        [ln = logits.node(), labels, prob, N, K, eps = opt.label_smoothing](const Tensor<T, D>& g) {
            Tensor<T, D> dx(prob.shape());
            cross_entropy_backward(D{}, prob.data(), labels.data(), g.data(), true, dx.data(), N, K, eps, T(1));
            ln->accumulate_owned(std::move(dx));
        });
    switch (opt.reduction) {
        case Reduction::none: return per_sample;
        case Reduction::sum: return sum(per_sample);
        case Reduction::mean: break;
    }
    return mean(per_sample);
}

/// Number of rows of logits (N, K) whose argmax (first on ties) equals the label.
template <class T>
std::int64_t count_correct(const Tensor<T, cpu>& logits, const Tensor<std::int32_t, cpu>& labels) {
    DAM_CHECK(logits.rank() == 2 && labels.rank() == 1 && labels.dim(0) == logits.dim(0), shape_error,
              "count_correct: logits (N, K) and labels (N) needed, got {} and {}", logits.shape(), labels.shape());
    const std::int64_t K = logits.dim(1);
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < logits.dim(0); ++i) {
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < K; ++k)
            if (logits[i * K + k] > logits[i * K + best]) best = k;
        correct += best == labels[i];
    }
    return correct;
}

}  // namespace diffautoml::ops
