#pragma once
// What a joint search is asked to do (JointOptions) and what it returns (JointResult), with the
// protocol's headline seed and the machine record result.json keeps.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/parallel.hpp"
#include "../da.hpp"
#include "../hpo.hpp"
#include "../nas.hpp"

namespace diffautoml::search {

struct JointOptions {
    std::int64_t epochs = 30;
    /// Wall-clock budget of the whole run, final pass included (0: none). The step count is fixed
    /// after 30 steps timed past 10 warm-up steps and remade at each epoch end (BudgetPlan).
    double minutes = 0;
    std::int64_t batch = 128;
    double lr = 0.1;                     ///< initial learning rate (the HPO policy may learn it)
    double weight_decay = 5e-4;          ///< initial weight decay
    double momentum = 0.9;
    double warmup_epochs = 0.5;          ///< linear warm-up factor on the learning rate
    double search_fraction = 0.5;        ///< the NAS phase ends at this share of the steps at the latest
    /// Training images held out for HPO and per-epoch validation: a share of the training set when
    /// in (0, 1) (1/12: 5,000 of Fashion-MNIST's 60,000), a count when >= 1.
    double validation = 1.0 / 12;
    std::int64_t validation_batch = 128;  ///< at most the slice's size
    std::int64_t recalibration_batches = 40;  ///< batches of 256 clean training images for the final BN statistics
    std::uint64_t seed = 0;
    std::string out_dir;                 ///< checkpoint, log.jsonl, model.bin, ... ("" writes nothing)
    double checkpoint_minutes = 5;
    std::int64_t stop_after_steps = -1;  ///< tests: checkpoint and stop (as on SIGINT) after this many steps
    /// Tests: the clock the time budget reads, in seconds (empty: a steady clock). Checkpoints keep
    /// to the real time.
    std::function<double()> clock;
    bool progress = true;
    da::PixelSpace pixels{};             ///< how the dataset is normalised (for the DA policy)
    da::AugmentOptions augment{};        ///< magnitude ranges and fill value of the DA ops (fill: pixel value)
    std::vector<std::int64_t> fixed_architecture{};  ///< for nas::FixedArch (empty: choice 0 everywhere)
    double alpha_lr = 3e-2;              ///< DSNAS architecture learning rate (nas_search's measured choice)
    double nas_warmup_epochs = 0.25;     ///< DSNAS: uniform sampling before alpha moves
    /// PairPolicyDA's M (m ~ U(0, M)): half the AutoAugment ranges by default, because at M = 1
    /// the pair policy trailed standard augmentation on Fashion-MNIST (docs/results.md, da_search).
    double da_max_magnitude = 0.5;
    double da_lr = 20.0;                 ///< PairPolicyDA's SGD rate on the pair logits
    /// PairPolicyDA's clamp: no pair more than this many times as likely as another (0: none). As
    /// docs/algorithm.md states it the update collapsed onto one pair within 9 epochs (docs/results.md).
    double da_max_ratio = 10.0;
    double da_entropy = 0.0;             ///< PairPolicyDA's entropy_weight (beta * KL(P || uniform))
    /// PairPolicyDA's fade_start: from this share of the steps on, fewer and fewer images are
    /// augmented, none at the last step (1: never). The guarded main run trained on augmented
    /// images to the end and fitted them no better than the clean ones it is tested on
    /// (docs/results.md).
    double da_fade_start = 0.5;
    /// PairPolicyDA's fade_floor: the share of images still augmented at the end of the fade.
    double da_fade_floor = 0.0;
    /// PairPolicyDA's flip_probability: a base left-right flip under the pair policy, kept through
    /// the fade (0: none, the policy as docs/algorithm.md states it).
    double da_flip = 0.0;
    std::vector<da::Op> da_ops{};        ///< the ops of PairPolicyDA (empty: all 17; see da::grey_ops)
    /// PairPolicyDA's estimator of its update: direct (DiffAutoML's, the main job's) or the
    /// unbiased score function (docs/da.md).
    da::PairPolicyOptions::Estimator da_estimator = da::PairPolicyOptions::Estimator::direct;
    /// RandAugment (a fixed policy, the multi-stage baseline's): N ops per image at magnitude
    /// M / 10, from RandAugment's ops that da_ops also holds; da_flip is its base flip.
    int ra_n = 2;
    double ra_m = 9.0;
    /// Upper bound of the learned weight decay: the standard recipe's 5e-4, so the hypergradient
    /// may only lower it. Its greedy bias pushed the decay up in every HPO run at the main job's
    /// budget (to 2e-3, the old ceiling) and cost 0.3-0.4 points (docs/results.md).
    double wd_max = 5e-4;
    /// Lower bound of the learned learning rate: the standard recipe's 0.1, so the hypergradient
    /// may only raise it. One-step hypergradients are greedy and shrink the rate (docs/results.md,
    /// hpo_search): without a floor the default run's rate fell from 0.1 to 0.044.
    double lr_min = 0.1;
    /// A hypergradient step every k weight steps; each costs a validation forward + backward
    /// (at 4 about 20% of the time, at 16 about 5%).
    std::int64_t hpo_every = 16;
    /// The hypergradient's horizon (HypergradLrWd; docs/hpo.md): forgetting gamma in [0, 1] of the
    /// forward-mode tangents (0: the one-step method) and how they see the curvature.
    double hpo_forgetting = 0.0;
    hpo::Curvature hpo_curvature = hpo::Curvature::radial;
    /// eps of the training loss (1 - eps) CE + eps U (HypergradLrWd and FixedSchedule; HypergradMulti
    /// learns its own). The validation loss of the hypergradient and the DA policy's per-sample
    /// losses stay plain cross-entropy.
    double label_smoothing = 0.0;
    /// From this share of the steps on (at an epoch start, and not before the architecture is
    /// fixed) the validation images join the training set and the hyperparameters freeze where
    /// the hypergradient left them: it would otherwise measure how well the weights fit images
    /// they are trained on. An epoch keeps its number of steps, each drawn from a fresh shuffle
    /// of all the training images. 1: never (the validation slice stays held out to the end).
    /// At 0.7 the main job gained 0.08, 0.15 and 0.08 points on seeds 0, 1 and 2 (docs/results.md).
    double join_validation = 0.7;
    /// With a time budget: time the steps after the join on their own and let the step count grow
    /// once more from them (they skip the hypergradient's validation passes: about 18% of a step at
    /// hpo_every 4, 5% at the default 16).
    /// The cosine and fade schedules then go on from where they are to the new end.
    bool retime_after_join = false;
    /// Weight averaging (SWA, optim::WeightAverage): from the first epoch end at or after this
    /// share of the steps (and not before the architecture is fixed), the weights at every epoch
    /// end and at the last step are averaged uniformly; the final model is the average, with its
    /// batch-norm statistics recomputed. The last weights are evaluated too (result.json's
    /// test_accuracy_last). 1: off, the final model is the last weights.
    double average_from = 1.0;
};

/// The outcome of a finished run.
struct JointResult {
    double test_accuracy = NAN;          ///< of `model`: the averaged weights when averaging is on (NaN: a choice run)
    double val_accuracy = NAN;           ///< of `model` on the validation slice while it is held out (else NaN)
    double test_accuracy_last = NAN;     ///< with weight averaging: the last weights' (else NaN)
    double val_accuracy_last = NAN;      ///< likewise on the held-out validation slice
    std::int64_t averaged = 0;           ///< how many weight states the model's weights average (0: none)
    double wall_seconds = 0;
    double search_seconds = 0;           ///< time until the architecture was fixed
    std::int64_t steps = 0;
    std::vector<std::int64_t> architecture;
    std::vector<std::string> architecture_names;
    nlohmann::json hyperparameters;
    nlohmann::json da_policy;
    std::shared_ptr<nas::Supernet<float>> model;  ///< the derived network with the trained weights
};

/// Seeds from this one on report the test set (docs/protocol.md); those below may be used for choices.
inline constexpr std::uint64_t headline_seed = 100;

/// The machine a run ran on, for result.json: the CPU model, whether it has AVX-512, the threads,
/// and how the binary was built: the -march value (DAM_BUILD_MARCH, set by our CMake for our own
/// programs) and whether the code it runs uses AVX-512, which moves figures between machines.
inline nlohmann::json host_json() {
    std::string cpu = "unknown";
    bool avx512 = false;
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
        if (cpu == "unknown" && line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
            cpu = line.substr(line.find(':') + 2);
        if (line.rfind("flags", 0) == 0) avx512 = avx512 || line.find(" avx512f") != std::string::npos;
    }
#ifdef DAM_BUILD_MARCH
    const std::string march = DAM_BUILD_MARCH;
#else
    const std::string march = "unknown (not built by diffautoml's CMake)";
#endif
#ifdef __AVX512F__
    constexpr bool built_avx512 = true;
#else
    constexpr bool built_avx512 = false;
#endif
    return {{"cpu", cpu}, {"avx512", avx512}, {"threads", num_threads()}, {"march", march}, {"built_with_avx512", built_avx512}};
}

}  // namespace diffautoml::search
