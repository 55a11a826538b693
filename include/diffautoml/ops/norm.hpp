#pragma once
// Front door of 2-d batch normalisation (Ioffe & Szegedy 2015).
#include "../autograd/variable.hpp"
#include "cpu/norm.hpp"

namespace diffautoml::ops {

struct BatchNormOptions {
    bool training = true;
    double momentum = 0.1;  ///< running = (1 - momentum) * running + momentum * batch statistic
    double eps = 1e-5;
    bool relu = false;  ///< apply max(0, .) to the output (fused: saves a pass over the data each way)
};

/// Normalises each channel of x (N, C, H, W). In training mode with batch statistics (and updates
/// running_mean / running_var in place when they are defined); in evaluation mode with the running
/// statistics. gamma and beta (C) may be undefined (no affine transform).
template <class T, Device D>
Var<T, D> batchnorm2d(const Var<T, D>& x, const Var<T, D>& gamma, const Var<T, D>& beta,
                      const Tensor<T, D>& running_mean, const Tensor<T, D>& running_var, BatchNormOptions opt = {}) {
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

}  // namespace diffautoml::ops
