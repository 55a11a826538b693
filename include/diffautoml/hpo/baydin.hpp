#pragma once
// BaydinHD (Baydin et al. 2018): hypergradient descent on the learning rate alone.
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "concept.hpp"
#include "hyper_sgd.hpp"

namespace diffautoml::hpo {

struct BaydinOptions {
    double momentum = 0.0;
    double beta = 1e-4;  ///< hyper learning rate of eta (Baydin et al.'s beta)
    double lr_lo = 1e-5, lr_hi = 1.0;
    /// Multiplier of the learned rate at step t (warm-up, cosine decay); 1 by default. The
    /// hypergradient of the learned base rate carries the factor of the step it moved.
    std::function<double(std::int64_t)> lr_factor;
};

inline void to_json(nlohmann::json& j, const BaydinOptions& o) {
    j = {{"momentum", o.momentum}, {"beta", o.beta}, {"lr_lo", o.lr_lo}, {"lr_hi", o.lr_hi}};
}

/// Hypergradient descent (Baydin et al., ICLR 2018), no validation set: the training gradient at
/// step t is also the hypergradient of the previous step's learning rate,
///     dL(w_t)/d eta_{t-1} = -g_t . u_{t-1},   eta_t = eta_{t-1} + beta g_t . u_{t-1},
/// with u the previous update direction (u = g for plain SGD: h_t = g_t . g_{t-1}; with momentum
/// the buffer, which holds the weight decay term too). Each group keeps the weight decay it was
/// given; with a schedule the step's rate is f(t) eta and the base rate moves by beta f(t-1) g_t . u_{t-1}.
template <class T = float>
class BaydinHD {
public:
    using value_type = T;
    using options_type = BaydinOptions;
    static constexpr std::string_view policy_name = "baydin_hd";

    /// As JointSearch makes it: the run's warm-up and cosine factor on the learned rate; each group
    /// keeps the weight decay it was given.
    BaydinHD(const std::vector<optim::ParamGroup<T, cpu>>& groups, BaydinOptions o, std::function<double(std::int64_t)> lr_factor)
        : BaydinHD(groups, [&] {
              o.lr_factor = std::move(lr_factor);
              return std::move(o);
          }()) {}

    BaydinHD(const std::vector<optim::ParamGroup<T, cpu>>& groups, BaydinOptions o = {}) : opt_(std::move(o)) {
        DAM_CHECK(!groups.empty(), value_error, "BaydinHD: needs at least one parameter group");
        DAM_CHECK(std::isfinite(opt_.beta) && opt_.beta >= 0, value_error, "BaydinHD: beta must be finite and >= 0, got {}",
                  opt_.beta);
        std::vector<std::vector<Var<T>>> params;
        for (const auto& g : groups) {
            params.push_back(g.params);
            wds_.push_back(g.weight_decay);
        }
        sgd_ = std::make_unique<HyperSGD<T>>(params, opt_.momentum);
        lr_ = {"lr", groups.front().lr, opt_.lr_lo, opt_.lr_hi, false};
        lr_.check();
    }
    Var<T> training_loss(const Var<T>& logits, const Tensor<std::int32_t>& labels) const {
        return ops::cross_entropy(logits, labels);
    }
    void backward(const Var<T>& loss, const Var<T>&, const Tensor<std::int32_t>&) { loss.backward(); }
    double lr_factor(std::int64_t step) const { return opt_.lr_factor ? opt_.lr_factor(step) : 1.0; }
    Rates rates(std::int64_t step) const {
        return {std::vector<double>(sgd_->group_count(), lr_.value * lr_factor(step)), wds_};
    }
    std::vector<Tensor<T>> weight_update(std::int64_t step, const std::vector<Var<T>>& weights,
                                         const std::vector<Tensor<T>>& grads) const {
        const Rates r = rates(step);
        return sgd_->update_for(r.lr, r.wd, weights, grads);
    }
    void step(HpoContext<T>& ctx) {
        // h = -g_t . u_{t-1}: the buffers still hold the previous update direction.
        if (started_) {
            double h = 0;
            for (const double x : sgd_->lr_hypergradients()) h += x;  // -g . buf per group
            last_h_ = h * last_factor_;
            lr_.value = std::clamp(lr_.value - opt_.beta * last_h_, lr_.lo, lr_.hi);
        }
        const Rates r = rates(ctx.step);
        last_factor_ = lr_factor(ctx.step);
        sgd_->step(r.lr, r.wd);
        sgd_->zero_grad();
        started_ = true;
    }
    std::vector<std::pair<std::string, double>> values() const {
        return {{"lr", lr_.value}, {"weight_decay", *std::max_element(wds_.begin(), wds_.end())}};
    }
    /// dL/d(base rate) of the last step (0 before the second step).
    double last_hypergradient() const { return last_h_; }
    HyperSGD<T>& sgd() { return *sgd_; }
    void save_state(ByteWriter& w) const {
        sgd_->save_state(w);
        lr_.save_state(w);
        w.put<std::uint8_t>(started_ ? 1 : 0);
        w.put(last_h_);
        w.put(last_factor_);
    }
    void load_state(ByteReader& r) {
        sgd_->load_state(r);
        lr_.load_state(r);
        started_ = r.get<std::uint8_t>() != 0;
        last_h_ = r.get<double>();
        last_factor_ = r.get<double>();
    }

private:
    BaydinOptions opt_;
    std::unique_ptr<HyperSGD<T>> sgd_;
    Hyperparameter lr_;
    std::vector<double> wds_;
    bool started_ = false;
    double last_h_ = 0, last_factor_ = 1;
};

static_assert(HpoPolicy<BaydinHD<float>>);

}  // namespace diffautoml::hpo
