#pragma once
// Learning-rate schedules: functions of the step number.
#include <cmath>
#include <cstdint>

#include "../core/error.hpp"

namespace diffautoml::optim {

/// Linear warm-up from start_factor * base_lr to base_lr over `warmup_steps`, then cosine decay
/// to min_lr at `total_steps` (Loshchilov & Hutter, SGDR, without restarts):
///   lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2.
struct WarmupCosine {
    double base_lr;
    std::int64_t total_steps;
    std::int64_t warmup_steps = 0;
    double min_lr = 0.0;
    double start_factor = 0.1;

    double operator()(std::int64_t step) const {
        DAM_CHECK(total_steps > 0 && warmup_steps >= 0 && warmup_steps < total_steps, value_error,
                  "WarmupCosine: need 0 <= warmup_steps ({}) < total_steps ({})", warmup_steps, total_steps);
        if (step < warmup_steps) {
            const double f = start_factor + (1 - start_factor) * static_cast<double>(step) / static_cast<double>(warmup_steps);
            return base_lr * f;
        }
        const double t = std::min(1.0, static_cast<double>(step - warmup_steps) /
                                           static_cast<double>(total_steps - warmup_steps));
        return min_lr + (base_lr - min_lr) * 0.5 * (1 + std::cos(3.14159265358979323846 * t));
    }
};

/// Constant learning rate.
struct ConstantLr {
    double lr;
    double operator()(std::int64_t) const { return lr; }
};

/// Multiplies by gamma every `step_size` steps.
struct StepLr {
    double base_lr;
    std::int64_t step_size;
    double gamma = 0.1;
    double operator()(std::int64_t step) const {
        return base_lr * std::pow(gamma, static_cast<double>(step / std::max<std::int64_t>(1, step_size)));
    }
};

}  // namespace diffautoml::optim
