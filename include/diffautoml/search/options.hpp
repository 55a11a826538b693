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
#include "../dist/group.hpp"
#include "../hpo.hpp"
#include "../nas.hpp"
#include "../ops/cpu/simd.hpp"

namespace diffautoml::search {

/// What the run itself is asked to do, whatever its policies: the budget, the data split, the
/// schedule every HPO policy starts from, the phases and the outputs.
struct RunOptions {
    std::int64_t epochs = 30;
    /// Wall-clock budget of the whole run, final pass included (0: none). The step count is fixed
    /// after 30 steps timed past 10 warm-up steps and remade at each epoch end (BudgetPlan).
    double minutes = 0;
    std::int64_t batch = 128;
    double lr = 0.1;                     ///< initial learning rate of every parameter group (the HPO policy may learn it)
    double weight_decay = 5e-4;          ///< initial weight decay of the decayed group (weights of rank >= 2)
    double warmup_epochs = 0.5;          ///< linear warm-up factor on the learning rate, then cosine decay
    double search_fraction = 0.5;        ///< the NAS phase ends at this share of the steps at the latest
    /// Training images held out for HPO and per-epoch validation: a share of the training set when
    /// in (0, 1) (1/12: 5,000 of Fashion-MNIST's 60,000), a count when >= 1.
    double validation = 1.0 / 12;
    std::int64_t validation_batch = 128;  ///< at most the slice's size
    std::int64_t recalibration_batches = 40;  ///< batches of 256 clean training images for the final BN statistics
    std::uint64_t seed = 0;
    /// How the dataset is normalised. JointSearch gives it to the DA policy's options when they
    /// have a `pixels` member, and writes it beside the exported model (predict reads it).
    da::PixelSpace pixels{};
    std::string out_dir;                 ///< checkpoint, log.jsonl, model.bin, ... ("" writes nothing)
    double checkpoint_minutes = 5;
    std::int64_t stop_after_steps = -1;  ///< tests: checkpoint and stop (as on SIGINT) after this many steps
    /// Tests: the clock the time budget reads, in seconds (empty: a steady clock). Checkpoints keep
    /// to the real time.
    std::function<double()> clock;
    bool progress = true;
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
    /// The ranks of a data-parallel run (docs/distributed.md; dist::Local by default: one process).
    /// Every rank draws the same global batch and takes its slice of batch / ranks images; the
    /// gradients of the weights and the DSNAS gates, the DA policy's terms and the hypergradients
    /// are summed over the ranks, so every rank takes the same step. Checkpoints and output files
    /// are written by rank 0. Left out of the configuration: a run checkpointed with N ranks
    /// resumes with M.
    dist::Group comm{};
    /// Each rank's slice of the batch runs forward and backward in this many equal pieces, the
    /// gradients accumulating (batch norm sees a piece, as it sees a rank's slice): a run of R
    /// ranks takes the steps of one rank with R micro-batches, up to float summation order.
    std::int64_t micro_batches = 1;
    /// Synchronised batch norm (ops::batchnorm2d_sync): with several ranks, batch norm in training
    /// normalises with the statistics of the whole global batch, two small allreduces a layer, so
    /// that R ranks take the steps of one rank with the whole batch. Needs micro_batches 1 and one
    /// path on every rank (not DSNAS's per_rank_samples).
    bool sync_batch_norm = false;
};

/// The JSON record of the run options that decide the result (result.json's config; a checkpoint
/// resumes only into the same one). The clock, progress, checkpoint interval and output folder
/// are left out: they change no figure.
inline nlohmann::json run_json(const RunOptions& o) {
    nlohmann::json j = {{"epochs", o.epochs},
            {"minutes", o.minutes},
            {"batch", o.batch},
            {"lr", o.lr},
            {"weight_decay", o.weight_decay},
            {"warmup_epochs", o.warmup_epochs},
            {"search_fraction", o.search_fraction},
            {"validation", o.validation},
            {"validation_batch", o.validation_batch},
            {"recalibration_batches", o.recalibration_batches},
            {"seed", o.seed},
            {"pixels", o.pixels},
            {"join_validation", o.join_validation},
            {"retime_after_join", o.retime_after_join},
            {"average_from", o.average_from}};
    // Written only when set, so that checkpoints and results made before the option still match.
    if (o.sync_batch_norm) j["sync_batch_norm"] = true;
    return j;
}

/// The options of a policy that has none (e.g. da::NoAugment).
struct NoOptions {};
inline void to_json(nlohmann::json& j, const NoOptions&) { j = nlohmann::json::object(); }

/// A policy's options: P::options_type, or NoOptions when it declares none.
template <class P>
struct options_of {
    using type = NoOptions;
};
template <class P>
    requires requires { typename P::options_type; }
struct options_of<P> {
    using type = typename P::options_type;
};
template <class P>
using options_of_t = typename options_of<P>::type;

/// Everything a joint search is asked to do: each policy's own options, nested (the policy is made
/// from them: search/make.hpp), and the run's. JointSearch<DA, NAS, HPO>::Options is
/// JointOptions<options_of_t<DA<float>>, options_of_t<NAS>, options_of_t<HPO<float>>>, so a search
/// on the CPU and the same search on a GPU take the same options. For example
///     Search::Options o;
///     o.run.epochs = 10;            o.run.pixels = {0.286, 0.353};
///     o.da.max_magnitude = 0.5;     // da::PairPolicyOptions
///     o.nas.lr = 3e-2;              // nas::DSNASOptions
///     o.hpo.wd_hi = 5e-4;           // hpo::HypergradOptions
template <class DaOptions, class NasOptions, class HpoOptions>
struct JointOptions {
    DaOptions da{};
    NasOptions nas{};
    HpoOptions hpo{};
    RunOptions run{};
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
/// programs), whether it was compiled for AVX-512, and whether the GEMM that picks its vector width
/// at run time runs on AVX-512 here (backend_cpu::simd::wide_vectors()): both move figures between
/// machines.
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
    return {{"cpu", cpu}, {"avx512", avx512}, {"threads", num_threads()}, {"march", march}, {"built_with_avx512", built_avx512},
            {"avx512_gemm", backend_cpu::simd::wide_vectors()}};
}

}  // namespace diffautoml::search
