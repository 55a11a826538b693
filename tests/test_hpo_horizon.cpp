// Longer-horizon hypergradients (hpo/horizon.hpp): the forward-mode tangents against finite
// differences of a whole trajectory, the radial curvature against the exact Hessian-vector product
// along a scale-invariant tensor, gamma = 0 against the one-step method, and on ridge regression,
// whose best weight decay follows in closed form, the forward mode lands near it where the one-step
// method (and the first-order forward mode) do not.
#include <cmath>

#include <Eigen/Dense>

#include "test_helpers.hpp"

using namespace dam_test;

namespace {

Tensor<std::int32_t> labels_from(std::vector<std::int32_t> l) {
    Tensor<std::int32_t> t(Shape{static_cast<std::int64_t>(l.size())});
    for (std::size_t i = 0; i < l.size(); ++i) t[static_cast<std::int64_t>(i)] = l[i];
    return t;
}

/// A two-layer tanh network in double, weights and biases in two groups, with fixed train and
/// validation batches; optionally batch norm (no affine, batch statistics) after the first layer,
/// which makes the first weight matrix scale invariant.
struct Net {
    std::vector<Var<double>> weights, biases;
    std::vector<Tensor<double>> init;
    bool bn;
    Var<double> xt = randn(Shape{8, 4}, 10, false), xv = randn(Shape{9, 4}, 11, false);
    Tensor<std::int32_t> yt = labels_from({0, 1, 2, 1, 0, 2, 2, 1}), yv = labels_from({2, 2, 0, 1, 1, 0, 2, 0, 1});

    explicit Net(bool batch_norm = false) : bn(batch_norm) {
        weights = {randn(Shape{5, 4}, 1, true, 0.5), randn(Shape{3, 5}, 2, true, 0.5)};
        biases = {randn(Shape{5}, 3, true, 0.1), randn(Shape{3}, 4, true, 0.1)};
        for (auto& p : all()) init.push_back(p.value().clone());
    }
    Var<double> forward(const Var<double>& x) const {
        Var<double> h = ops::linear(x, weights[0], biases[0]);
        if (bn) {
            h = ops::reshape(h, Shape{h.dim(0), h.dim(1), 1, 1});
            h = ops::batchnorm2d(h, Var<double>(), Var<double>(), Tensor<double>(), Tensor<double>());
            h = ops::reshape(h, Shape{h.dim(0), h.dim(1)});
        }
        return ops::linear(ops::tanh(h), weights[1], biases[1]);
    }
    Var<double> train_loss() const { return ops::cross_entropy(forward(xt), yt); }
    Var<double> val_loss() const { return ops::cross_entropy(forward(xv), yv); }
    std::vector<std::vector<Var<double>>> groups() const { return {weights, biases}; }
    std::vector<Var<double>> all() const { return {weights[0], weights[1], biases[0], biases[1]}; }
    void reset() {
        auto ps = all();
        for (std::size_t i = 0; i < ps.size(); ++i) {
            ps[i].value().copy_from(init[i]);
            ps[i].grad() = Tensor<double>();
        }
    }
};

/// The base rate of both groups and the weight decay of the first (rate factor f per step).
std::vector<hpo::Sensitivity> lr_and_wd(double f) { return {{{f, f}, {0, 0}}, {{0, 0}, {1, 0}}}; }

struct Trajectory {
    double val_loss = 0;
    std::vector<double> forward, one_step;  // hypergradients (d/d eta, d/d lambda) of the last validation loss
};

/// `steps` momentum-SGD steps from the net's initial weights with rates f_t eta, decays (lambda,
/// 0); tangents with forgetting 1 (the whole run) and finite-difference curvature. The last
/// validation loss, its forward-mode hypergradients and the one-step ones of the last step.
Trajectory run(Net& net, double eta, double lambda, int steps, bool hyper) {
    net.reset();
    hpo::HyperSGD<double> sgd(net.groups(), 0.9);
    hpo::detail::ForwardTangents<double> tangents({1.0, hpo::Curvature::finite_difference, 1e-4}, 2);
    Trajectory out;
    for (int t = 0; t < steps; ++t) {
        const double f = 1.0 - 0.1 * t;  // a schedule, so that the rate's sensitivity varies
        const std::vector<double> lr{f * eta, f * eta}, wd{lambda, 0.0};
        net.train_loss().backward();
        if (hyper) tangents.before_step(sgd, lr, wd, lr_and_wd(f), [&] { return net.train_loss(); });
        sgd.step(lr, wd);
        if (hyper) tangents.after_step(sgd, lr, lr_and_wd(f));
        sgd.zero_grad();
        if (t + 1 == steps) {
            auto lv = net.val_loss();
            out.val_loss = lv.value().item();
            if (hyper) {
                lv.backward();
                out.forward = tangents.hypergradients(sgd);
                const auto hl = sgd.lr_hypergradients(), hw = sgd.wd_hypergradients();
                out.one_step = {(hl[0] + hl[1]) * f, hw[0]};
                sgd.zero_grad();
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("forward-mode tangents over a whole run equal finite differences of the trajectory", "[hpo][horizon]") {
    Net net;
    const double eta = 0.3, lambda = 0.05, h = 1e-6;
    const int steps = 6;
    const Trajectory a = run(net, eta, lambda, steps, true);
    const double fd_eta = (run(net, eta + h, lambda, steps, false).val_loss - run(net, eta - h, lambda, steps, false).val_loss) / (2 * h);
    const double fd_lambda =
        (run(net, eta, lambda + h, steps, false).val_loss - run(net, eta, lambda - h, steps, false).val_loss) / (2 * h);
    INFO("d/d eta: forward " << a.forward[0] << ", one step " << a.one_step[0] << ", finite differences " << fd_eta);
    INFO("d/d lambda: forward " << a.forward[1] << ", one step " << a.one_step[1] << ", finite differences " << fd_lambda);
    CHECK(a.forward[0] == Approx(fd_eta).epsilon(1e-5));
    CHECK(a.forward[1] == Approx(fd_lambda).epsilon(1e-5));
    // The one-step hypergradient sees only the last step: here it is far from the run's derivative.
    CHECK(std::abs(a.one_step[0] - fd_eta) > 0.2 * std::abs(fd_eta));
    CHECK(std::abs(a.one_step[1] - fd_lambda) > 0.2 * std::abs(fd_lambda));
}

TEST_CASE("with forgetting 0 the forward mode is the one-step method", "[hpo][horizon]") {
    Net net;
    hpo::HyperSGD<double> sgd(net.groups(), 0.9);
    hpo::detail::ForwardTangents<double> tangents({0.0, hpo::Curvature::radial}, 2);
    for (int t = 0; t < 4; ++t) {
        const double f = 1.0 - 0.2 * t;
        const std::vector<double> lr{0.2 * f, 0.2 * f}, wd{0.01, 0.0};
        net.train_loss().backward();
        tangents.before_step(sgd, lr, wd, lr_and_wd(f), {});
        sgd.step(lr, wd);
        tangents.after_step(sgd, lr, lr_and_wd(f));
        sgd.zero_grad();
        net.val_loss().backward();
        const auto h = tangents.hypergradients(sgd);
        const auto hl = sgd.lr_hypergradients(), hw = sgd.wd_hypergradients();
        INFO("step " << t);
        CHECK(h[0] == Approx((hl[0] + hl[1]) * f).epsilon(1e-10));
        CHECK(h[1] == Approx(hw[0]).epsilon(1e-10));
        CHECK(std::abs(h[1]) > 1e-8);
        sgd.zero_grad();
    }
}

TEST_CASE("radial curvature is the exact Hessian-vector product along a scale-invariant tensor", "[hpo][horizon]") {
    Net net(true);  // batch norm after the first layer: its weight matrix is scale invariant
    hpo::HyperSGD<double> sgd(net.groups(), 0.9);
    const std::vector<hpo::Sensitivity> none{{{0, 0}, {0, 0}}};
    auto z_b = [&](hpo::Curvature c, std::size_t flat) {
        hpo::detail::ForwardTangents<double> t({1.0, c, 1e-5}, 1);
        net.reset();
        net.train_loss().backward();
        // Z_w = 0.3 w on the first weight matrix and 0 elsewhere, Z_b = 0, lambda = 0: before_step
        // leaves Z_b = H Z_w (radial: only the scale-invariant tensor's part).
        for (std::size_t i = 0; i < 4; ++i) {
            const auto& w = net.all()[i].value();
            Tensor<double> zw = w.clone();
            for (std::int64_t j = 0; j < zw.numel(); ++j) zw[j] *= (i == 0 ? 0.3 : 0.0);
            t.set_tangents(sgd, 0, i, zw, Tensor<double>::zeros(w.shape()));
        }
        t.before_step(sgd, {0.1, 0.1}, {0.0, 0.0}, none, [&] { return net.train_loss(); });
        Tensor<double> out = t.buffer_tangent(0, flat).clone();
        sgd.zero_grad();
        return out;
    };
    // The gradient of the scale-invariant tensor is orthogonal to it, so the test is not vacuous.
    net.reset();
    net.train_loss().backward();
    double gw = 0, gg = 0;
    for (std::int64_t j = 0; j < net.weights[0].numel(); ++j) {
        gw += net.weights[0].grad()[j] * net.weights[0].value()[j];
        gg += net.weights[0].grad()[j] * net.weights[0].grad()[j];
    }
    CHECK(std::abs(gw) < 1e-4 * std::sqrt(gg * [&] {
              double ww = 0;
              for (std::int64_t j = 0; j < net.weights[0].numel(); ++j) ww += net.weights[0].value()[j] * net.weights[0].value()[j];
              return ww;
          }()));
    CHECK(gg > 1e-6);
    sgd.zero_grad();
    // H Z_w is nonzero only on the scale-invariant tensor: compare every block against its size.
    double scale = 0;
    {
        const Tensor<double> exact0 = z_b(hpo::Curvature::finite_difference, 0);
        for (std::int64_t j = 0; j < exact0.numel(); ++j) scale = std::max(scale, std::abs(exact0[j]));
    }
    CHECK(scale > 1e-4);
    for (std::size_t flat = 0; flat < 4; ++flat) {
        const Tensor<double> radial = z_b(hpo::Curvature::radial, flat), exact = z_b(hpo::Curvature::finite_difference, flat);
        const Tensor<double> grad0 = [&] {
            net.reset();
            net.train_loss().backward();
            Tensor<double> g = net.all()[flat].grad().clone();
            sgd.zero_grad();
            return g;
        }();
        double err = 0;
        for (std::int64_t j = 0; j < exact.numel(); ++j) {
            err = std::max(err, std::abs(radial[j] - exact[j]));
            // H (0.3 w) = -0.3 g on the scale-invariant tensor
            if (flat == 0) CHECK(radial[j] == Approx(-0.3 * grad0[j]).margin(1e-12));
        }
        // Batch norm's eps (1e-5) makes the invariance hold to about 1e-5 relative.
        INFO("parameter " << flat << ": max |radial - exact| " << err << ", max |H Z| " << scale);
        CHECK(err <= 1e-3 * scale);
    }
}

namespace {

/// Ridge regression with anisotropic features: the validation loss of the trained weights as a
/// function of the weight decay follows in closed form, w*(lambda) = (A + lambda I)^-1 b.
struct Ridge {
    static constexpr int d = 20, n_train = 40, n_val = 400;
    Eigen::MatrixXd xt, xv;
    Eigen::VectorXd yt, yv;
    Ridge() {
        Generator g(7);
        // Feature covariance Q diag(s^2) Q^T: variances 1e-2 to 10 along random directions.
        Eigen::MatrixXd m(d, d);
        for (int i = 0; i < d; ++i)
            for (int j = 0; j < d; ++j) m(i, j) = g.next_stream().normal(0);
        const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(m).householderQ();
        auto sample = [&](int n, Eigen::MatrixXd& x, Eigen::VectorXd& y, const Eigen::VectorXd& w) {
            x.resize(n, d);
            y.resize(n);
            Eigen::VectorXd z(d);
            for (int i = 0; i < n; ++i) {
                for (int j = 0; j < d; ++j) z(j) = g.next_stream().normal(0) * std::pow(10.0, -1.0 + 1.5 * j / (d - 1));
                x.row(i) = (q * z).transpose();
                y(i) = x.row(i).dot(w) + 2.0 * g.next_stream().normal(0);
            }
        };
        Eigen::VectorXd w(d);
        for (int j = 0; j < d; ++j) w(j) = g.next_stream().normal(0);
        sample(n_train, xt, yt, w);
        sample(n_val, xv, yv, w);
    }
    double val_loss(const Eigen::VectorXd& w) const { return 0.5 * (xv * w - yv).squaredNorm() / n_val; }
    Eigen::VectorXd solve(double lambda) const {
        const Eigen::MatrixXd a = xt.transpose() * xt / n_train + lambda * Eigen::MatrixXd::Identity(d, d);
        return a.ldlt().solve(xt.transpose() * yt / n_train);
    }
    /// argmin over a fine log grid of the closed-form validation loss.
    double best_lambda() const {
        double best = 0, best_loss = 1e300;
        for (int i = 0; i <= 4000; ++i) {
            const double lambda = std::exp(std::log(1e-4) + (std::log(10.0) - std::log(1e-4)) * i / 4000);
            const double l = val_loss(solve(lambda));
            if (l < best_loss) best_loss = l, best = lambda;
        }
        return best;
    }
    static Var<double> to_var(const Eigen::MatrixXd& m) {
        Tensor<double> t(Shape{m.rows(), m.cols()});
        for (Eigen::Index i = 0; i < m.rows(); ++i)
            for (Eigen::Index j = 0; j < m.cols(); ++j) t[i * m.cols() + j] = m(i, j);
        return Var<double>(t, false);
    }
    /// HypergradLrWd (learning rate held at 0.1, momentum 0.9) learning the decay from 1e-2 for
    /// `steps` full-batch steps; the geometric mean of the decay over the last third.
    double learned_lambda(hpo::HorizonOptions horizon, int steps) const {
        Var<double> w(Tensor<double>::zeros(Shape{d, 1}), true);
        hpo::HypergradOptions o;
        o.momentum = 0.9;
        o.hyper_lr = 0.03;
        o.lr_lo = o.lr_hi = 0.1;
        o.wd_lo = 1e-5;
        o.wd_hi = 10.0;
        o.horizon = horizon;
        hpo::HypergradLrWd<double> policy({{{w}, 0.1, 1e-2, "w"}}, o);
        const Var<double> xtv = to_var(xt), ytv = to_var(yt), xvv = to_var(xv), yvv = to_var(yv);
        auto loss = [&](const Var<double>& x, const Var<double>& y) {
            return ops::mul_scalar(ops::mean(ops::square(ops::sub(ops::matmul(x, w), y))), 0.5);
        };
        hpo::HpoContext<double> ctx;
        ctx.train_loss = [&] { return loss(xtv, ytv); };
        ctx.val_loss = [&] { return loss(xvv, yvv); };
        double log_sum = 0;
        int counted = 0;
        for (int t = 0; t < steps; ++t) {
            ctx.step = t;
            auto l = ctx.train_loss();
            policy.backward(l, l, Tensor<std::int32_t>());
            policy.step(ctx);
            if (t >= steps - steps / 3) {
                log_sum += std::log(policy.weight_decay().value);
                ++counted;
            }
        }
        return std::exp(log_sum / counted);
    }
};

}  // namespace

TEST_CASE("on ridge regression the forward-mode hypergradient finds the best weight decay, the one-step one does not",
          "[hpo][horizon]") {
    const Ridge r;
    const double best = r.best_lambda();
    const double one_step = r.learned_lambda({0.0, hpo::Curvature::none}, 2000);
    // Ridge's curvature is not radial (no scale invariance), so it takes the finite-difference product.
    const double first_order = r.learned_lambda({0.99, hpo::Curvature::none}, 2000);
    const double forward = r.learned_lambda({0.99, hpo::Curvature::finite_difference}, 2000);
    INFO("closed-form best " << best << ", one step " << one_step << ", first-order forward " << first_order
                             << ", forward with curvature " << forward);
    CHECK(best > 2e-4);  // an interior optimum, not a grid end
    CHECK(best < 5.0);
    // Measured: best 0.0277, forward 0.0215 (|log ratio| 0.25), one step and first order 0.0082 (1.22).
    CHECK(std::abs(std::log(forward / best)) < 0.35);
    // The greedy methods settle where grad L_val . w = 0, not where dL_val(w*(lambda))/d lambda = 0.
    CHECK(std::abs(std::log(one_step / best)) > 0.9);
    CHECK(std::abs(std::log(first_order / best)) > 0.9);
    CHECK(std::abs(std::log(forward / best)) < 0.5 * std::abs(std::log(one_step / best)));
}
