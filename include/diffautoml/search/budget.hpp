#pragma once
// The wall-clock budget of a joint search in steps: how many steps fit, the plan across the run's
// phases, the time kept for the final pass, and how far the schedules are.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/io.hpp"

namespace diffautoml::search {

/// How many steps a time budget allows: `step` steps done after `seconds`, the time per step
/// measured since (`from_step`, `from_seconds`), `budget_seconds` in all. The answer lies in
/// [step + 1, cap]; pass cap = the current plan to only ever shrink it.
inline std::int64_t steps_within_budget(std::int64_t step, double seconds, std::int64_t from_step, double from_seconds,
                                        double budget_seconds, std::int64_t cap) {
    DAM_CHECK(step > from_step && seconds > from_seconds, value_error,
              "steps_within_budget: no steps timed (step {} from {}, {} s from {} s)", step, from_step, seconds,
              from_seconds);
    const double per_step = (seconds - from_seconds) / static_cast<double>(step - from_step);
    const auto fit = step + static_cast<std::int64_t>(std::max(0.0, budget_seconds - seconds) / per_step);
    return std::clamp(fit, step + 1, std::max(cap, step + 1));
}

/// The step count of a wall-clock budget across a run's phases: the search (timed from step 0),
/// the derived network (timed from the first epoch end after the architecture is fixed) and,
/// optionally, training with the validation images joined (timed from the join, where the
/// hyperparameters freeze and the validation passes of the hypergradient stop). replan() times the
/// steps of the latest phase that has any; the plan only shrinks, except once in each later phase,
/// the first time it is timed: its steps cost less than those the plan was made from.
struct BudgetPlan {
    enum Phase : std::size_t { search = 0, derived = 1, joined = 2 };
    struct Mark {
        std::int64_t step = -1;  ///< -1: the phase has not started
        double seconds = 0;
        bool grown = false;
    };
    std::array<Mark, 3> marks{Mark{0, 0.0, true}, Mark{}, Mark{}};

    /// The phase begins at (step, seconds); a phase that has begun keeps its first mark.
    void begin(Phase p, std::int64_t step, double seconds) {
        if (marks[p].step < 0) marks[p] = Mark{step, seconds, false};
    }
    /// The search is timed from (step, seconds) instead of from the start: the first steps build
    /// buffers and, on a GPU, run cuDNN's algorithm search, and cost many times a later step. Only
    /// before the search has been timed from elsewhere.
    void skip_warmup(std::int64_t step, double seconds) {
        if (marks[search].step == 0) marks[search] = Mark{step, seconds, true};
    }
    /// The new step count after `step` steps and `seconds`, `budget_seconds` in all: at most
    /// `current`, or at most `cap` on a phase's one growth.
    std::int64_t replan(std::int64_t step, double seconds, double budget_seconds, std::int64_t current, std::int64_t cap) {
        std::size_t p = marks.size() - 1;
        while (p > 0 && !(marks[p].step >= 0 && step > marks[p].step)) --p;
        Mark& m = marks[p];
        const bool grow = !m.grown;
        m.grown = true;
        return steps_within_budget(step, seconds, m.step, m.seconds, budget_seconds, grow ? cap : current);
    }
    void save_state(ByteWriter& w) const {
        for (const auto& m : marks) {
            w.put<std::int64_t>(m.step);
            w.put(m.seconds);
            w.put<std::int64_t>(m.grown ? 1 : 0);
        }
    }
    void load_state(ByteReader& r) {
        for (auto& m : marks) {
            m.step = r.get<std::int64_t>();
            m.seconds = r.get<double>();
            m.grown = r.get<std::int64_t>() != 0;
        }
    }
};

/// Seconds to keep for the final pass (batch-norm recalibration and the test evaluation, twice with
/// weight averaging): `images` forward passes at `seconds_per_image`, with half again as margin,
/// and 2 s for deriving and writing the model. An estimate made from the training steps (a forward
/// and a backward pass per image) errs on the safe side.
inline double final_pass_reserve(std::int64_t images, double seconds_per_image) {
    DAM_CHECK(images >= 0 && seconds_per_image >= 0 && std::isfinite(seconds_per_image), value_error,
              "final_pass_reserve: {} images at {} s each", images, seconds_per_image);
    return 2.0 + 1.5 * static_cast<double>(images) * seconds_per_image;
}

/// How far a run is through its schedules (0 at the start, 1 at the end) at `step` of `total`, when
/// the plan was last remade at `from_step`, `from_t` of the way through: linear from there to the
/// end, so that a new step count moves no schedule at the step where it is made. From (0, 0) it is
/// step / total.
inline double schedule_progress(std::int64_t step, std::int64_t from_step, double from_t, std::int64_t total) {
    if (total <= from_step) return 1.0;
    const double t = from_t + (1 - from_t) * static_cast<double>(step - from_step) / static_cast<double>(total - from_step);
    return std::clamp(t, 0.0, 1.0);
}

}  // namespace diffautoml::search
