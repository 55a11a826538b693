#pragma once
// Longer-horizon hypergradients: forward-mode tangents with forgetting (Franceschi et al., ICML
// 2017, "real-time" hyperparameter optimisation; with forgetting, MARTHE, Donini et al., ICLR 2020).
//
// The one-step hypergradient sees only how the last update moved the validation loss. Forward mode
// carries, for each hyperparameter h, the tangents Z_w = dw/dh and Z_b = dbuf/dh along the run.
// For the momentum-SGD step d = g + lambda w, buf' = mu buf + d, w' = w - eta buf', with
// H = d2 L_train / dw2:
//     Z_b' = mu Z_b + (H + lambda) Z_w + (d lambda/dh) w
//     Z_w' = Z_w - eta Z_b' - (d eta/dh) buf'
//     dL_val/dh = v . Z_w',   v = grad_w L_val(w')
// and before each step both tangents are multiplied by the forgetting factor gamma: gamma = 0 is
// exactly the one-step method, gamma = 1 the whole run (the exact derivative of the last
// validation loss when the curvature is exact).
//
// The curvature term H Z_w is what makes the horizon matter: without it (first order) the tangents'
// fixed point is the one-step direction again, and for a weight followed by batch norm, whose loss
// ignores its scale, weight decay is invisible to every first-order signal (v . w = 0). Three
// choices (Curvature):
//   none              H Z_w dropped.
//   radial            the part scale invariance gives exactly: if L(c w) = L(w) for a tensor w,
//                     then H (a w) = -a g for that tensor (differentiate g(c w) = g(w) / c at c = 1)
//                     and nothing in the other tensors. Each tensor whose gradient is orthogonal
//                     to it (|g . w| <= tol |g| |w|, which holds to rounding when batch norm
//                     follows) gets -(Z_w . w / w . w) g; the rest is dropped. Free.
//   finite_difference H Z_w = (g(w + e Z_w) - g(w - e Z_w)) / 2e on the step's training batch
//                     (e = step / |Z_w|, as DARTS): two extra backward passes per hyperparameter
//                     and step, exact up to O(e^2).
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/variable.hpp"
#include "../core/state.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/reduce.hpp"
#include "../optim/unrolled.hpp"

namespace diffautoml::hpo {

/// How the forward-mode tangents see the training loss's curvature (file comment).
enum class Curvature { none, radial, finite_difference };

inline std::string_view curvature_name(Curvature c) {
    switch (c) {
        case Curvature::none: return "none";
        case Curvature::radial: return "radial";
        case Curvature::finite_difference: return "finite_difference";
    }
    return "?";
}

/// The horizon of a hypergradient policy. The default (forgetting 0) is the one-step method.
struct HorizonOptions {
    /// gamma in [0, 1]: the tangents are multiplied by it before each step, so the hypergradient
    /// weighs the step k steps back by about gamma^k (a horizon of about 1 / (1 - gamma) steps).
    double forgetting = 0.0;
    Curvature curvature = Curvature::radial;
    double curvature_step = 0.01;              ///< finite_difference: e = step / |Z_w|
    double scale_invariance_tolerance = 1e-3;  ///< radial: |g . w| <= tol |g| |w| marks a tensor scale invariant

    bool one_step() const { return forgetting == 0.0; }
    void check() const {
        DAM_CHECK(forgetting >= 0 && forgetting <= 1, value_error,
                  "hypergradient horizon: the forgetting factor must be in [0, 1] (0: one step, 1: the whole run), got {}",
                  forgetting);
        DAM_CHECK(curvature_step > 0 && std::isfinite(curvature_step) && scale_invariance_tolerance >= 0, value_error,
                  "hypergradient horizon: curvature_step {} must be > 0 and scale_invariance_tolerance {} >= 0",
                  curvature_step, scale_invariance_tolerance);
    }
};

inline void to_json(nlohmann::json& j, const HorizonOptions& o) {
    j = {{"forgetting", o.forgetting},
         {"curvature", std::string(curvature_name(o.curvature))},
         {"curvature_step", o.curvature_step},
         {"scale_invariance_tolerance", o.scale_invariance_tolerance}};
}

/// How hyperparameter k enters the step of group g: d eta_g / d h_k = rate[g] (with a schedule
/// eta_g = f(t) h: f(t)) and d lambda_g / d h_k = decay[g].
struct Sensitivity {
    std::vector<double> rate, decay;
};

namespace detail {

template <class T, Device D>
double tensor_dot(const Tensor<T, D>& a, const Tensor<T, D>& b) {
    NoGradGuard no_grad;
    const Var<T, D> x(a.reshape({a.numel()})), y(b.reshape({b.numel()}));
    return static_cast<double>(on_host(ops::sum(ops::mul(x, y)).value())[0]);
}
/// a x + b y (y undefined: a x).
template <class T, Device D>
Tensor<T, D> axpby(double a, const Tensor<T, D>& x, double b, const Tensor<T, D>& y) {
    NoGradGuard no_grad;
    Var<T, D> r = ops::mul_scalar(Var<T, D>(x), a);
    if (y.defined()) r = ops::add(r, ops::mul_scalar(Var<T, D>(y), b));
    return r.value();
}

/// The tangents Z_w = dw/dh and Z_b = dbuf/dh of every parameter for K hyperparameters, updated
/// around each momentum-SGD step (file comment). `Sgd` is HyperSGD<T, D> (group_count(), group(g),
/// buffer(g, p), momentum()). A parameter without a gradient in a step does not move and neither do
/// its tangents. Tangents are made when a parameter first gets a gradient.
template <class T, Device D = cpu>
class ForwardTangents {
public:
    ForwardTangents() = default;
    ForwardTangents(HorizonOptions o, std::size_t hyperparameters) : opt_(o), k_(hyperparameters) { opt_.check(); }
    const HorizonOptions& options() const { return opt_; }

    /// Before the weight step, with the step's gradients in the parameters' grads and their
    /// values w: forgetting, then Z_b' = mu Z_b + (H + lambda) Z_w + (d lambda/dh) w.
    /// `train_loss` (the step's training loss at the current weights) is needed for
    /// Curvature::finite_difference only.
    template <class Sgd>
    void before_step(const Sgd& sgd, const std::vector<double>& lr, const std::vector<double>& wd,
                     const std::vector<Sensitivity>& sens, const std::function<Var<T, D>()>& train_loss) {
        DAM_CHECK(sens.size() == k_, value_error, "ForwardTangents: {} hyperparameters, {} sensitivities", k_, sens.size());
        (void)lr;
        ensure(sgd);
        std::vector<std::vector<Tensor<T, D>>> hz;  // [k][flat parameter] for finite differences
        if (opt_.curvature == Curvature::finite_difference) hz = curvature_products(sgd, train_loss);
        NoGradGuard no_grad;
        const double mu = sgd.momentum();
        std::size_t flat = 0;
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi)
            for (std::size_t pi = 0; pi < sgd.group(gi).size(); ++pi, ++flat) {
                const auto& p = sgd.group(gi)[pi];
                if (!p.grad().defined()) continue;
                const Tensor<T, D>& w = p.value();
                double radial_ratio = 0;  // for radial curvature: 1 / (w . w) when scale invariant, else 0
                bool invariant = false;
                if (opt_.curvature == Curvature::radial) {
                    const double gw = tensor_dot(p.grad(), w), gg = tensor_dot(p.grad(), p.grad()), ww = tensor_dot(w, w);
                    invariant = ww > 0 && std::abs(gw) <= opt_.scale_invariance_tolerance * std::sqrt(gg * ww);
                    if (invariant) radial_ratio = 1.0 / ww;
                }
                for (std::size_t k = 0; k < k_; ++k) {
                    auto& [zw, zb] = z_[k][flat];
                    if (!zw.defined()) {
                        zw = Tensor<T, D>::zeros(w.shape());
                        zb = Tensor<T, D>::zeros(w.shape());
                    }
                    if (opt_.forgetting != 1.0) {
                        zw = axpby(opt_.forgetting, zw, 0.0, Tensor<T, D>());
                        zb = axpby(opt_.forgetting, zb, 0.0, Tensor<T, D>());
                    }
                    // d = (H + lambda) Z_w + (d lambda/dh) w
                    Tensor<T, D> d = axpby(wd[gi], zw, sens[k].decay[gi], sens[k].decay[gi] != 0 ? w : Tensor<T, D>());
                    if (!hz.empty()) d = axpby(1.0, d, 1.0, hz[k][flat]);
                    if (invariant) d = axpby(1.0, d, -tensor_dot(zw, w) * radial_ratio, p.grad());
                    zb = axpby(mu, zb, 1.0, d);
                }
                moved_[flat] = true;
            }
    }
    /// After the weight step (buf' in the optimizer): Z_w' = Z_w - eta Z_b' - (d eta/dh) buf'.
    template <class Sgd>
    void after_step(const Sgd& sgd, const std::vector<double>& lr, const std::vector<Sensitivity>& sens) {
        NoGradGuard no_grad;
        std::size_t flat = 0;
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi)
            for (std::size_t pi = 0; pi < sgd.group(gi).size(); ++pi, ++flat) {
                if (!moved_[flat]) continue;
                moved_[flat] = false;
                const Tensor<T, D>& buf = sgd.buffer(gi, pi);
                for (std::size_t k = 0; k < k_; ++k) {
                    auto& [zw, zb] = z_[k][flat];
                    zw = axpby(1.0, zw, -lr[gi], zb);
                    if (sens[k].rate[gi] != 0) zw = axpby(1.0, zw, -sens[k].rate[gi], buf);
                }
            }
    }
    /// dL_val/dh_k = v . Z_w[k] with v the parameters' gradients (grad L_val at w').
    template <class Sgd>
    std::vector<double> hypergradients(const Sgd& sgd) const {
        std::vector<double> h(k_, 0.0);
        std::size_t flat = 0;
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi)
            for (std::size_t pi = 0; pi < sgd.group(gi).size(); ++pi, ++flat) {
                const auto& p = sgd.group(gi)[pi];
                if (!p.grad().defined()) continue;
                for (std::size_t k = 0; k < k_; ++k)
                    if (z_[k][flat].first.defined()) h[k] += tensor_dot(p.grad(), z_[k][flat].first);
            }
        return h;
    }
    /// Z_w of hyperparameter k for the flat parameter index (group order); undefined before the
    /// parameter's first step.
    const Tensor<T, D>& weight_tangent(std::size_t k, std::size_t flat) const { return z_.at(k).at(flat).first; }
    const Tensor<T, D>& buffer_tangent(std::size_t k, std::size_t flat) const { return z_.at(k).at(flat).second; }
    /// Sets the tangents of one parameter (a warm start, or a test of the update from a known state).
    template <class Sgd>
    void set_tangents(const Sgd& sgd, std::size_t k, std::size_t flat, Tensor<T, D> zw, Tensor<T, D> zb) {
        ensure(sgd);
        z_.at(k).at(flat) = {std::move(zw), std::move(zb)};
    }

    void save_state(ByteWriter& w) const {
        w.put<std::uint64_t>(k_);
        w.put<std::uint64_t>(z_.empty() ? 0 : z_.front().size());
        for (const auto& per_k : z_)
            for (const auto& [zw, zb] : per_k) {
                put_tensor(w, zw);
                put_tensor(w, zb);
            }
    }
    void load_state(ByteReader& r) {
        const auto k = r.get<std::uint64_t>(), n = r.get<std::uint64_t>();
        DAM_CHECK(k == k_ && (z_.empty() || n == z_.front().size() || n == 0), format_error,
                  "ForwardTangents: the checkpoint holds {} hyperparameters x {} parameters, this run has {} x {}", k, n, k_,
                  z_.empty() ? 0 : z_.front().size());
        z_.assign(k_, std::vector<std::pair<Tensor<T, D>, Tensor<T, D>>>(n));
        moved_.assign(n, false);
        for (auto& per_k : z_)
            for (auto& [zw, zb] : per_k) {
                get_tensor(r, zw, "ForwardTangents state");
                get_tensor(r, zb, "ForwardTangents state");
            }
    }

private:
    template <class Sgd>
    void ensure(const Sgd& sgd) {
        std::size_t n = 0;
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi) n += sgd.group(gi).size();
        if (!z_.empty() && z_.front().size() == n) return;
        z_.assign(k_, std::vector<std::pair<Tensor<T, D>, Tensor<T, D>>>(n));
        moved_.assign(n, false);
    }
    /// H Z_w[k] for every k and parameter, by central differences of the training gradient.
    template <class Sgd>
    std::vector<std::vector<Tensor<T, D>>> curvature_products(const Sgd& sgd, const std::function<Var<T, D>()>& train_loss) {
        DAM_CHECK(static_cast<bool>(train_loss), value_error,
                  "hypergradient horizon: Curvature::finite_difference needs the step's training loss "
                  "(HpoContext::train_loss); JointSearch sets it, a hand-written loop must too");
        std::vector<Var<T, D>> weights;
        for (std::size_t gi = 0; gi < sgd.group_count(); ++gi)
            for (const auto& p : sgd.group(gi)) weights.push_back(p);
        std::vector<std::vector<Tensor<T, D>>> out(k_);
        for (std::size_t k = 0; k < k_; ++k) {
            std::vector<Tensor<T, D>> dir;
            for (std::size_t i = 0; i < weights.size(); ++i)
                dir.push_back(z_[k][i].first.defined() ? z_[k][i].first : Tensor<T, D>::zeros(weights[i].shape()));
            // The forgetting factor scales Z_w before it is used: H (gamma Z) = gamma H Z.
            out[k] = optim::mixed_hessian_vector_product(weights, dir, [&] { return grad(train_loss(), weights); },
                                                         opt_.curvature_step);
            if (opt_.forgetting != 1.0)
                for (auto& t : out[k]) t = axpby(opt_.forgetting, t, 0.0, Tensor<T, D>());
        }
        return out;
    }

    HorizonOptions opt_;
    std::size_t k_ = 0;
    std::vector<std::vector<std::pair<Tensor<T, D>, Tensor<T, D>>>> z_;  // [k][flat parameter] = (Z_w, Z_b)
    std::vector<bool> moved_;
};

}  // namespace detail
}  // namespace diffautoml::hpo
