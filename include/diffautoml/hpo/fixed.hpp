#pragma once
// FixedSchedule: no search, the weights stepped with a fixed learning-rate schedule and decay.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "concept.hpp"
#include "hyper_sgd.hpp"

namespace diffautoml::hpo {

struct FixedScheduleOptions {
    double momentum = 0.9;
    double label_smoothing = 0.0;  ///< eps of the training loss (1 - eps) CE + eps U, fixed
};

inline void to_json(nlohmann::json& j, const FixedScheduleOptions& o) {
    j = {{"momentum", o.momentum}, {"label_smoothing", o.label_smoothing}};
}

template <class T = float, Device D = cpu>
class FixedSchedule {
public:
    using value_type = T;
    using device_type = D;
    using options_type = FixedScheduleOptions;
    static constexpr std::string_view policy_name = "fixed";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// nothing but the weights is learned.
    static constexpr bool data_parallel = true;

    /// As JointSearch makes it: the groups' learning rate times the run's warm-up and cosine factor.
    FixedSchedule(const std::vector<optim::ParamGroup<T, D>>& groups, const FixedScheduleOptions& o,
                  std::function<double(std::int64_t)> lr_factor)
        : FixedSchedule(groups, scaled(groups, std::move(lr_factor)), o.momentum, o.label_smoothing) {}

    /// label_smoothing: eps of the training loss (1 - eps) CE + eps U, fixed.
    FixedSchedule(const std::vector<optim::ParamGroup<T, D>>& groups, std::function<double(std::int64_t)> lr,
                  double momentum = 0.9, double label_smoothing = 0.0)
        : lr_(std::move(lr)), eps_(label_smoothing) {
        DAM_CHECK(static_cast<bool>(lr_), value_error, "FixedSchedule: needs a learning-rate schedule");
        DAM_CHECK(eps_ >= 0 && eps_ < 1, value_error, "FixedSchedule: label_smoothing must be in [0, 1), got {}", eps_);
        std::vector<std::vector<Var<T, D>>> params;
        for (const auto& g : groups) {
            params.push_back(g.params);
            wds_.push_back(g.weight_decay);
        }
        sgd_ = std::make_unique<HyperSGD<T, D>>(params, momentum);
    }
    Var<T, D> training_loss(const Var<T, D>& logits, const Tensor<std::int32_t, D>& labels) const {
        return ops::cross_entropy(logits, labels, {eps_, ops::Reduction::mean});
    }
    void backward(const Var<T, D>& loss, const Var<T, D>&, const Tensor<std::int32_t, D>&) { loss.backward(); }
    Rates rates(std::int64_t step) const { return {std::vector<double>(wds_.size(), lr_(step)), wds_}; }
    std::vector<Tensor<T, D>> weight_update(std::int64_t step, const std::vector<Var<T, D>>& weights,
                                            const std::vector<Tensor<T, D>>& grads) const {
        const Rates r = rates(step);
        return sgd_->update_for(r.lr, r.wd, weights, grads);
    }
    void step(HpoContext<T, D>& ctx) {
        current_ = lr_(ctx.step);
        sgd_->step(std::vector<double>(wds_.size(), current_), wds_);
        sgd_->zero_grad();
    }
    std::vector<std::pair<std::string, double>> values() const {
        return {{"lr", current_}, {"weight_decay", wds_.empty() ? 0.0 : *std::max_element(wds_.begin(), wds_.end())}};
    }
    void save_state(ByteWriter& w) const {
        sgd_->save_state(w);
        w.put(current_);
    }
    void load_state(ByteReader& r) {
        sgd_->load_state(r);
        current_ = r.get<double>();
    }

private:
    static std::function<double(std::int64_t)> scaled(const std::vector<optim::ParamGroup<T, D>>& groups,
                                                      std::function<double(std::int64_t)> f) {
        DAM_CHECK(!groups.empty() && static_cast<bool>(f), value_error,
                  "FixedSchedule: needs at least one parameter group and a learning-rate factor");
        return [lr = groups.front().lr, f = std::move(f)](std::int64_t s) { return lr * f(s); };
    }

    std::function<double(std::int64_t)> lr_;
    double eps_ = 0.0;
    std::unique_ptr<HyperSGD<T, D>> sgd_;
    std::vector<double> wds_;
    double current_ = 0;
};

static_assert(HpoPolicy<FixedSchedule<float>>);

}  // namespace diffautoml::hpo
