#pragma once
// Front door of 2-d batch normalisation (Ioffe & Szegedy 2015).
#include "../autograd/variable.hpp"
#include "cpu/norm.hpp"
#include "elementwise.hpp"

#include <functional>
#include <span>
#include <vector>

namespace diffautoml::ops {

struct BatchNormOptions {
    bool training = true;
    double momentum = 0.1;  ///< running = (1 - momentum) * running + momentum * batch statistic
    double eps = 1e-5;
    bool relu = false;  ///< apply max(0, .) to the output (fused: saves a pass over the data each way)
};

namespace detail {
/// The checks both batch norms make of their arguments.
template <class T, Device D>
void check_batchnorm(const Var<T, D>& x, const Var<T, D>& gamma, const Var<T, D>& beta, const Tensor<T, D>& running_mean,
                     const Tensor<T, D>& running_var, const BatchNormOptions& opt) {
    DAM_CHECK(x.shape().rank() == 4, shape_error, "batchnorm2d: input must be (N, C, H, W), got {}", x.shape());
    const std::int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    auto check_c = [&](const Shape& s, const char* what) {
        DAM_CHECK(s.rank() == 1 && s[0] == C, shape_error, "batchnorm2d: {} must be ({},) for input {}, got {}", what,
                  C, x.shape(), s);
    };
    if (gamma.defined()) check_c(gamma.shape(), "weight (gamma)");
    if (beta.defined()) check_c(beta.shape(), "bias (beta)");
    if (running_mean.defined()) check_c(running_mean.shape(), "running_mean");
    if (running_var.defined()) check_c(running_var.shape(), "running_var");
    DAM_CHECK(opt.eps > 0 && opt.momentum >= 0 && opt.momentum <= 1, value_error,
              "batchnorm2d: eps {} must be > 0 and momentum {} in [0, 1]", opt.eps, opt.momentum);
    DAM_CHECK(!opt.training || N * HW > 1, shape_error,
              "batchnorm2d: training needs more than one value per channel, input is {}", x.shape());
    DAM_CHECK(opt.training || (running_mean.defined() && running_var.defined()), value_error,
              "batchnorm2d: evaluation mode needs running_mean and running_var");
    DAM_CHECK(running_mean.defined() == running_var.defined(), value_error,
              "batchnorm2d: give both running statistics or neither");
}
}  // namespace detail

/// Normalises each channel of x (N, C, H, W). In training mode with batch statistics (and updates
/// running_mean / running_var in place when they are defined); in evaluation mode with the running
/// statistics. gamma and beta (C) may be undefined (no affine transform).
template <class T, Device D>
Var<T, D> batchnorm2d(const Var<T, D>& x, const Var<T, D>& gamma, const Var<T, D>& beta,
                      const Tensor<T, D>& running_mean, const Tensor<T, D>& running_var, BatchNormOptions opt = {}) {
    detail::check_batchnorm(x, gamma, beta, running_mean, running_var, opt);
    const std::int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);

    Tensor<T, D> y(x.shape()), mean(Shape{C}), invstd(Shape{C});
    const T* gp = gamma.defined() ? gamma.value().data() : nullptr;
    const T* bp = beta.defined() ? beta.value().data() : nullptr;
    if (opt.training) {
        batchnorm2d_forward_train(D{}, x.value().data(), gp, bp, y.data(), mean.data(), invstd.data(),
                                  running_mean.data(), running_var.data(), N, C, HW, opt.momentum, opt.eps, opt.relu);
    } else {
        batchnorm2d_forward_eval(D{}, x.value().data(), gp, bp, y.data(), mean.data(), invstd.data(),
                                 running_mean.data(), running_var.data(), N, C, HW, opt.eps, opt.relu);
    }
    return Var<T, D>::make_result(
        y, opt.relu ? "batchnorm2d_relu" : "batchnorm2d", {x, gamma, beta},
        [xn = x.node(), gn = gamma.defined() ? gamma.node() : nullptr, bn = beta.defined() ? beta.node() : nullptr,
         xv = x.value(), gv = gamma.defined() ? gamma.value() : Tensor<T, D>(), mean, invstd, N, C, HW,
         training = opt.training, yv = opt.relu ? y : Tensor<T, D>()](const Tensor<T, D>& dy) {
            Tensor<T, D> dx, dg, db;
            if (xn->requires_grad) dx = Tensor<T, D>(xv.shape());
            if (gn && gn->requires_grad) dg = Tensor<T, D>(Shape{C});
            if (bn && bn->requires_grad) db = Tensor<T, D>(Shape{C});
            batchnorm2d_backward(D{}, xv.data(), yv.data(), dy.data(), gv.data(), mean.data(), invstd.data(), dx.data(),
                                 dg.data(), db.data(), N, C, HW, training);
            if (dx.defined()) xn->accumulate_owned(std::move(dx));
            if (dg.defined()) gn->accumulate_owned(std::move(dg));
            if (db.defined()) bn->accumulate_owned(std::move(db));
        });
}

/// Sums a buffer over the ranks of a data-parallel run, in place (an allreduce with sum); what
/// synchronised batch norm calls, twice a layer: once forward, once backward.
using ChannelReduce = std::function<void(std::span<double>)>;

namespace detail {
inline thread_local ChannelReduce batchnorm_sync{};
}

/// While alive, every nn::BatchNorm2d in training mode on this thread normalises with the
/// statistics of the global batch, summed over the ranks through (a copy of) `reduce`
/// (batchnorm2d_sync). Every rank must then run the same layers in the same order (JointSearch
/// holds one around a sharded step when RunOptions::sync_batch_norm is set).
class SyncBatchNormScope {
public:
    explicit SyncBatchNormScope(ChannelReduce reduce) : previous_(std::move(detail::batchnorm_sync)) {
        detail::batchnorm_sync = std::move(reduce);
    }
    ~SyncBatchNormScope() { detail::batchnorm_sync = std::move(previous_); }
    SyncBatchNormScope(const SyncBatchNormScope&) = delete;
    SyncBatchNormScope& operator=(const SyncBatchNormScope&) = delete;

private:
    ChannelReduce previous_;
};

/// The reduction of the innermost SyncBatchNormScope on this thread (null: none).
inline const ChannelReduce* batchnorm_sync() { return detail::batchnorm_sync ? &detail::batchnorm_sync : nullptr; }

/// Synchronised batch norm in training mode: batchnorm2d with the mean and variance of the global
/// batch, the union of every rank's x, and its exact gradient. Forward: each rank's count, and
/// its sums of (x - K) and (x - K)^2 with K the running mean (the same on every rank; 0 without
/// running statistics), are summed over the ranks in one reduce of 2C + 1 doubles; the running
/// statistics are updated with the global mean and unbiased variance. Backward:
///   dx = gamma * invstd * (g - (S1 + xhat * S2) / M),  S1 = sum(g), S2 = sum(g * xhat)
/// over the M values of a channel on every rank (one reduce of 2C doubles), g the incoming
/// gradient (masked by y > 0 with a fused ReLU); dgamma and dbeta are this rank's own sums (the
/// trainer sums parameter gradients over the ranks). With one rank (`reduce` the identity) it is
/// batchnorm2d in training mode. Each rank's statistics come from its local pass
/// (1 / sqrt(var + eps) read back as var), about eps(T) (1 + eps / var) relative in the variance.
template <class T, Device D>
Var<T, D> batchnorm2d_sync(const Var<T, D>& x, const Var<T, D>& gamma, const Var<T, D>& beta,
                           const Tensor<T, D>& running_mean, const Tensor<T, D>& running_var, BatchNormOptions opt,
                           const ChannelReduce& reduce) {
    detail::check_batchnorm(x, gamma, beta, running_mean, running_var, opt);
    DAM_CHECK(opt.training, value_error, "batchnorm2d_sync: evaluation mode uses the running statistics: call batchnorm2d");
    DAM_CHECK(static_cast<bool>(reduce), value_error, "batchnorm2d_sync: needs a reduction over the ranks");
    const std::int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    const auto Cs = static_cast<std::size_t>(C);
    const double M = static_cast<double>(N * HW);

    // This rank's mean and variance (the running statistics untouched: null here).
    Tensor<T, D> y(x.shape()), mean(Shape{C}), invstd(Shape{C});
    batchnorm2d_forward_train(D{}, x.value().data(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr),
                              y.data(), mean.data(), invstd.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr), N,
                              C, HW, 0.0, opt.eps, false);
    const Tensor<T> local_mean = on_host(mean), local_invstd = on_host(invstd);
    const bool running = running_mean.defined();
    Tensor<T> rm = running ? on_host(running_mean) : Tensor<T>(), rv = running ? on_host(running_var) : Tensor<T>();
    std::vector<double> buf(1 + 2 * Cs);
    buf[0] = M;
    for (std::size_t c = 0; c < Cs; ++c) {
        const auto ci = static_cast<std::int64_t>(c);
        const double K = running ? static_cast<double>(rm[ci]) : 0.0;
        const double is = static_cast<double>(local_invstd[ci]);
        const double var = std::max(0.0, 1.0 / (is * is) - opt.eps), d = static_cast<double>(local_mean[ci]) - K;
        buf[1 + c] = M * d;
        buf[1 + Cs + c] = M * var + M * d * d;
    }
    reduce(std::span<double>(buf));
    const double total = buf[0];
    Tensor<T> global_mean(Shape{C}), global_var(Shape{C});
    for (std::size_t c = 0; c < Cs; ++c) {
        const auto ci = static_cast<std::int64_t>(c);
        const double K = running ? static_cast<double>(rm[ci]) : 0.0;
        const double s1 = buf[1 + c], m2 = std::max(0.0, buf[1 + Cs + c] - s1 * s1 / total);
        const double mu = K + s1 / total, var = m2 / total;
        global_mean[ci] = static_cast<T>(mu);
        global_var[ci] = static_cast<T>(var);
        if (running) {
            const double unbiased = total > 1 ? m2 / (total - 1) : var;
            rm[ci] = static_cast<T>((1 - opt.momentum) * static_cast<double>(rm[ci]) + opt.momentum * mu);
            rv[ci] = static_cast<T>((1 - opt.momentum) * static_cast<double>(rv[ci]) + opt.momentum * unbiased);
        }
    }
    // The output with the global statistics: evaluation mode's affine map.
    const Tensor<T, D> mean_d = on_device<D>(global_mean), var_d = on_device<D>(global_var);
    const T* gp = gamma.defined() ? gamma.value().data() : nullptr;
    const T* bp = beta.defined() ? beta.value().data() : nullptr;
    batchnorm2d_forward_eval(D{}, x.value().data(), gp, bp, y.data(), mean.data(), invstd.data(), mean_d.data(), var_d.data(), N,
                             C, HW, opt.eps, opt.relu);
    if (running) {
        copy_from_host(running_mean, rm);
        copy_from_host(running_var, rv);
    }
    return Var<T, D>::make_result(
        y, opt.relu ? "batchnorm2d_sync_relu" : "batchnorm2d_sync", {x, gamma, beta},
        [xn = x.node(), gn = gamma.defined() ? gamma.node() : nullptr, bn = beta.defined() ? beta.node() : nullptr,
         xv = x.value(), gv = gamma.defined() ? gamma.value() : Tensor<T, D>(), mean, invstd, N, C, HW, total, reduce,
         yv = opt.relu ? y : Tensor<T, D>()](const Tensor<T, D>& dy) {
            // Evaluation mode's backward gives dx = gamma invstd g and this rank's S1, S2.
            Tensor<T, D> dx, dg(Shape{C}), db(Shape{C});
            if (xn->requires_grad) dx = Tensor<T, D>(xv.shape());
            batchnorm2d_backward(D{}, xv.data(), yv.data(), dy.data(), gv.data(), mean.data(), invstd.data(), dx.data(),
                                 dg.data(), db.data(), N, C, HW, /*training=*/false);
            const Tensor<T> s1 = on_host(db), s2 = on_host(dg);
            std::vector<double> sums(static_cast<std::size_t>(2 * C));
            for (std::int64_t c = 0; c < C; ++c) {
                sums[static_cast<std::size_t>(c)] = static_cast<double>(s1[c]);
                sums[static_cast<std::size_t>(C + c)] = static_cast<double>(s2[c]);
            }
            reduce(std::span<double>(sums));  // every rank, whether or not it needs dx
            if (dx.defined()) {
                // The statistics' share: -k / M (S1 + xhat S2) = A_c + B_c x with k = gamma invstd.
                const Tensor<T> m = on_host(mean), is = on_host(invstd);
                const Tensor<T> g = gv.defined() ? on_host(gv) : Tensor<T>();
                Tensor<T> a(Shape{1, C, 1, 1}), b(Shape{1, C, 1, 1});
                for (std::int64_t c = 0; c < C; ++c) {
                    const double isc = static_cast<double>(is[c]);
                    const double k = (g.defined() ? static_cast<double>(g[c]) : 1.0) * isc;
                    const double S1 = sums[static_cast<std::size_t>(c)], S2 = sums[static_cast<std::size_t>(C + c)];
                    a[c] = static_cast<T>(-k / total * (S1 - static_cast<double>(m[c]) * isc * S2));
                    b[c] = static_cast<T>(-k * isc * S2 / total);
                }
                NoGradGuard no_grad;
                const Var<T, D> share = add(mul(Var<T, D>(xv), Var<T, D>(on_device<D>(b))), Var<T, D>(on_device<D>(a)));
                Tensor<T, D> total = add(Var<T, D>(dx), share).value();
                xn->accumulate_owned(std::move(total));
            }
            if (gn && gn->requires_grad) gn->accumulate_owned(std::move(dg));
            if (bn && bn->requires_grad) bn->accumulate_owned(std::move(db));
        });
}

}  // namespace diffautoml::ops
