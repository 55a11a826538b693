#pragma once
// FixedSchedule: no search, the weights stepped with a fixed learning-rate schedule and decay.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "concept.hpp"
#include "hyper_sgd.hpp"

namespace diffautoml::hpo {

template <class T = float, Device D = cpu>
class FixedSchedule {
public:
    using value_type = T;
    using device_type = D;
    static constexpr std::string_view policy_name = "fixed";

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
    std::function<double(std::int64_t)> lr_;
    double eps_ = 0.0;
    std::unique_ptr<HyperSGD<T, D>> sgd_;
    std::vector<double> wds_;
    double current_ = 0;
};

static_assert(HpoPolicy<FixedSchedule<float>>);

}  // namespace diffautoml::hpo
