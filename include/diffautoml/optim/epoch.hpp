#pragma once
// What every training loop of the library shows per epoch, written once: the running mean loss and
// accuracy over the images seen so far (EpochTotals, which JointSearch also checkpoints), a
// progress bar that carries them (EpochMeter, the examples' loops), and the finiteness check of a
// training loss.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "../core/progress.hpp"
#include "../ops.hpp"

namespace diffautoml::optim {

/// The running figures of one epoch: the loss summed over images (each batch's mean loss times
/// its size), the images classified correctly, the images seen.
struct EpochTotals {
    double loss_sum = 0;
    std::int64_t correct = 0;
    std::int64_t seen = 0;

    /// Adds one training batch: its mean loss, its logits (N, K) on the host and its labels (N).
    template <class T>
    void add(double mean_loss, const Tensor<T>& logits, const Tensor<std::int32_t>& labels) {
        loss_sum += mean_loss * static_cast<double>(labels.numel());
        correct += ops::count_correct(logits, labels);
        seen += labels.numel();
    }
    double loss() const { return loss_sum / static_cast<double>(std::max<std::int64_t>(1, seen)); }
    double accuracy() const { return static_cast<double>(correct) / static_cast<double>(std::max<std::int64_t>(1, seen)); }
    /// "loss 0.1234 acc 0.9876", what the progress bars show.
    std::string text() const { return fmt::format("loss {:.4f} acc {:.4f}", loss(), accuracy()); }
    void reset() { *this = EpochTotals{}; }
};

/// Throws value_error when a training loss is not finite, naming the loop (`who`), the step and
/// what to try (`advice`): nothing should be updated with such a loss.
inline void check_finite_loss(double loss, std::int64_t step, std::string_view who, std::string_view advice) {
    DAM_CHECK(std::isfinite(loss), value_error, "{}: the training loss became {} at step {}; {}", who, loss, step, advice);
}

/// One epoch of a training loop: a progress bar over its steps that shows the running loss and
/// accuracy (and whatever the loop adds), and the totals behind them.
///
///     optim::EpochMeter meter(steps_per_epoch, fmt::format("epoch {:2}/{}", epoch + 1, epochs));
///     for (...) { ...; meter.add(loss, logits, labels); }
///     meter.finish();   // then meter.totals().loss(), .accuracy(), meter.seconds()
class EpochMeter {
public:
    EpochMeter(std::int64_t steps, std::string label) : bar_(steps, std::move(label)) {}

    /// Adds one batch (see EpochTotals::add) and redraws the bar; `extra` follows the figures.
    template <class T>
    void add(double mean_loss, const Tensor<T>& logits, const Tensor<std::int32_t>& labels, std::string_view extra = {}) {
        totals_.add(mean_loss, logits, labels);
        bar_.update(++done_, totals_.seen, totals_.text() + std::string(extra));
    }
    /// Ends the bar's line early (a loop that prints between steps), without ending the epoch.
    void interrupt() { bar_.finish(totals_.seen, ""); }
    /// Ends the epoch's bar with the final figures.
    void finish() { bar_.finish(totals_.seen, totals_.text()); }
    const EpochTotals& totals() const { return totals_; }
    double seconds() const { return bar_.elapsed_seconds(); }

private:
    ProgressBar bar_;
    EpochTotals totals_;
    std::int64_t done_ = 0;
};

}  // namespace diffautoml::optim
