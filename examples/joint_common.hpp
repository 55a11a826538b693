#pragma once
// Shared by diffautoml-search and diffautoml-ablation: the command line, the datasets, and the
// runtime choice among the policy combinations compiled into the binaries.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

namespace dam_joint {

using namespace diffautoml;

/// The command line's settings of the policies. Each binary maps them onto the options of the
/// policies it instantiates (options_for): a policy's own default options are the library's, these
/// are the main job's measured choices (docs/results.md).
struct PolicyFlags {
    // DA: the pair policy (and RandAugment's base flip and ops)
    double da_max_magnitude = 0.5;  ///< at M = 1 the pair policy trailed standard augmentation on Fashion-MNIST
    double da_lr = 20.0;
    double da_max_ratio = 10.0;     ///< without the clamp the update collapsed onto one pair within 9 epochs
    double da_entropy = 0.0;
    double da_fade_start = 0.5;     ///< the guarded main run fitted augmented images no better than clean ones
    double da_fade_floor = 0.0;
    double da_flip = 0.0;
    std::vector<da::Op> da_ops{};   ///< set by load(): grey for Fashion-MNIST, all otherwise, or --da-ops
    da::PairPolicyOptions::Estimator da_estimator = da::PairPolicyOptions::Estimator::direct;
    double fill = 0.5;              ///< pixel value outside the image (set by load(): black for Fashion-MNIST)
    // DA: RandAugment
    int ra_n = 2;
    double ra_m = 9.0;
    // NAS
    double alpha_lr = 3e-2;         ///< DSNAS's architecture rate (nas_search's measured choice)
    double nas_warmup_epochs = 0.25;
    bool per_rank_samples = false;  ///< DSNAS: a path per data-parallel piece (docs/distributed.md)
    std::vector<std::int64_t> fixed_architecture{};
    // HPO
    double momentum = 0.9;
    double lr_min = 0.1;            ///< the one-step hypergradient's greedy bias shrank the rate without a floor
    double wd_max = 5e-4;           ///< and pushed the decay up, costing 0.3-0.4 points, without a ceiling
    std::int64_t hpo_every = 16;
    double hpo_forgetting = 0.0;
    hpo::Curvature hpo_curvature = hpo::Curvature::radial;
    double label_smoothing = 0.0;
};

struct Args {
    search::RunOptions run;
    PolicyFlags flags;
    std::string data = DAM_FASHION_DIR;
    std::string train_images, train_labels, test_images, test_labels;
    int classes = 0, threads = 2;
    std::int64_t train_subset = 0;   ///< > 0: train on a seeded class-balanced subset of this many images
    std::uint64_t subset_seed = 0;   ///< the subset's seed (the same subset for every --seed by default)
    std::string space = "shuffle", da = "pair", nas = "dsnas", hpo = "hypergrad";
    std::string device = "cpu";                  ///< diffautoml-search only: cpu or cuda
    std::string dist = "local";                  ///< diffautoml-search only: local or mpi (data-parallel ranks)
    double dist_timeout = 300;                   ///< --dist mpi: end the job when a collective waits this long
    std::string da_ops;                          ///< "" picks grey for Fashion-MNIST, all otherwise
    bool resume = false;
    bool no_test = false;                        ///< a choice run: the test set is not read (docs/protocol.md)
    std::vector<std::uint64_t> seeds{0, 1, 2};  ///< ablation only
    std::vector<std::string> extra;             ///< options a binary handles itself
};

inline std::vector<std::string> split_list(const std::string& s) { return dam_cli::split(s); }

/// The main job's defaults (the ablation sets its own before declaring the options, so that the
/// help prints the defaults that apply).
inline Args main_job_defaults() {
    Args a;
    a.run.out_dir = "diffautoml_out";
    a.run.minutes = 55;  // the main job's budget: done within an hour on 2 cores
    a.run.epochs = 60;   // a cap: the 55 minutes end the main job first (about 40 epochs)
    return a;
}

/// Declares the options the two programs share, grouped as the help lists them; each program adds
/// its own (output, device, seeds) and refuses the other's.
inline void declare(dam_cli::Cli& cli, Args& a) {
    auto& j = a.run;
    auto& p = a.flags;
    cli.group("data")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .option("--train-images", a.train_images, "any IDX dataset: training images (with the three below)")
        .option("--train-labels", a.train_labels, "any IDX dataset: training labels")
        .option("--test-images", a.test_images, "any IDX dataset: test images")
        .option("--test-labels", a.test_labels, "any IDX dataset: test labels")
        .option("--classes", a.classes, "number of classes of an IDX dataset (0: one more than the largest label)")
        .option("--train-subset", a.train_subset,
                "train on a class-balanced subset of N training images (0: all; the reduced-data protocol)")
        .option("--subset-seed", a.subset_seed, "which subset (the same for every --seed)")
        .option("--validation,--val", j.validation,
                "training images held out for HPO and validation: a share in (0, 1) or a count >= 1");
    cli.group("budget")
        .option("--epochs", j.epochs, "number of epochs (a cap when --minutes ends the run first)")
        .option("--minutes", j.minutes,
                "wall-clock budget of the whole run (0: none); the step count is fixed after 10 warm-up and 30 timed "
                "steps, keeping what the final pass needs")
        .option("--batch", j.batch, "training batch size");
    cli.group("policies")
        .one_of("--space", a.space, {"shuffle", "mobilenetv2"}, "search space (mobilenetv2: default policies only)")
        .one_of("--da", a.da, {"pair", "standard", "randaugment", "none"},
                "DA policy: the searched pair policy, flip + shift (standard), RandAugment (fixed N and M; with --nas "
                "fixed --hpo fixed, the multi-stage baseline's), or none")
        .one_of("--nas", a.nas, {"dsnas", "fixed"}, "NAS policy: DSNAS, or a fixed architecture (--arch)")
        .one_of("--hpo", a.hpo, {"hypergrad", "fixed"},
                "HPO policy: learned learning rate and weight decay, or a fixed warm-up + cosine schedule");
    cli.group("DA (pair policy)")
        .option("--da-max-magnitude,--max-magnitude", p.da_max_magnitude, "magnitudes are drawn from U(0, M)")
        .option("--da-lr", p.da_lr, "SGD rate of the pair logits")
        .option("--da-max-ratio", p.da_max_ratio, "no pair more than R times as likely as another (0: no clamp)")
        .option("--da-entropy", p.da_entropy, "weight of KL(P || uniform) in the policy's loss")
        .option("--da-fade", p.da_fade_start,
                "from this share of the steps on, fewer images are augmented, none at the end (1: never)")
        .option("--da-fade-floor", p.da_fade_floor, "the share of images still augmented when the fade ends")
        .option("--da-flip", p.da_flip, "each image is also mirrored left-right with this probability, through the fade")
        .custom("--da-ops,--ops", [&a](const std::string& v) { a.da_ops = v; },
                "grey | all | Op,Op,... (default: grey for Fashion-MNIST, no Invert/Solarize/Color; all for other data)",
                "grey", "OPS")
        .choice("--da-estimator", p.da_estimator,
                {{"direct", da::PairPolicyOptions::Estimator::direct},
                 {"score", da::PairPolicyOptions::Estimator::score_function}},
                "the policy's update as DiffAutoML states it (direct), or the unbiased score-function estimate with a "
                "running-mean baseline (docs/da.md)");
    cli.group("DA (RandAugment)")
        .option("--ra-n", p.ra_n, "ops per image (--da-flip adds a base flip; --da-ops limits the ops)")
        .option("--ra-m", p.ra_m, "magnitude on the 0..10 scale");
    cli.group("NAS")
        .option("--alpha-lr", p.alpha_lr, "DSNAS: learning rate of the architecture logits")
        .flag("--per-rank-samples", p.per_rank_samples,
              "DSNAS, data-parallel: each rank (each micro-batch) draws its own path, alpha's gradient the mean "
              "of their estimates; default one path for the whole batch")
        .option("--search-fraction", j.search_fraction,
                "DSNAS: the architecture is fixed at this share of the steps at the latest")
        .list("--arch", p.fixed_architecture,
              "--nas fixed: the choice of each searchable layer, i,j,... (default: choice 0 everywhere)");
    cli.group("training and HPO")
        .option("--lr", j.lr, "initial learning rate (learned from there by --hpo hypergrad)")
        .option("--wd", j.weight_decay, "initial weight decay")
        .option("--lr-min", p.lr_min, "hypergrad: lower bound of the learned learning rate (--lr must not be below it)")
        .option("--wd-max", p.wd_max, "hypergrad: upper bound of the learned weight decay")
        .option("--hpo-every,--every", p.hpo_every, "hypergrad: a hypergradient step every K weight steps")
        .option("--hpo-forgetting", p.hpo_forgetting,
                "hypergrad: 0 for the one-step hypergradient; G in (0, 1] for forward mode, a horizon of about "
                "1/(1-G) steps")
        .choice("--hpo-curvature", p.hpo_curvature,
                {{"none", hpo::Curvature::none}, {"radial", hpo::Curvature::radial}, {"fd", hpo::Curvature::finite_difference}},
                "hypergrad, forward mode: how the tangents see the curvature (fd costs two extra backward passes per "
                "hyperparameter and step; docs/hpo.md)")
        .option("--label-smoothing,--smoothing", p.label_smoothing,
                "training loss (1 - E) CE + E uniform; validation stays plain CE")
        .option("--join-validation", j.join_validation,
                "from this share of the steps on, the validation images join training and the learned hyperparameters "
                "freeze (1: never)")
        .choice("--retime-after-join", j.retime_after_join, {{"0", false}, {"1", true}},
                "1: with --minutes, time the steps after the join on their own and let the step count grow once more "
                "from them")
        .option("--average-from", j.average_from,
                "from this share of the steps on, the weights at each epoch end are averaged (SWA) and the average, "
                "with recomputed batch-norm statistics, is the final model (1: off)");
    cli.group("run")
        .option("--seed", j.seed, "random seed (seeds >= 100 are headline seeds, never used for a choice)")
        .option("--threads", a.threads, "CPU threads")
        .option("--checkpoint-minutes", j.checkpoint_minutes, "minutes between checkpoints")
        .flag("--quiet", j.progress, "no progress bar", false)
        .flag("--no-test", a.no_test,
              "a choice run: the test set is not read, the validation slice stays held out to the end and result.json "
              "holds its accuracy (docs/protocol.md)");
}

/// Checks the options together after parsing (before any data is read).
inline void check(Args& a, const dam_cli::Cli& cli) {
    auto& j = a.run;
    if (a.no_test) {
        DAM_CHECK(!cli.given("--join-validation") || j.join_validation == 1, value_error,
                  "--no-test keeps the validation slice held out to the end; drop --join-validation or set it to 1");
        j.join_validation = 1;
    }
    DAM_CHECK(a.train_subset >= 0, value_error, "--train-subset must be >= 0 (0 = all), got {}", a.train_subset);
    DAM_CHECK(a.space == "shuffle" || (a.da == "pair" && a.nas == "dsnas" && a.hpo == "hypergrad"), value_error,
              "the mobilenetv2 space is compiled with the default policies only (--da pair --nas dsnas --hpo hypergrad)");
    DAM_CHECK(a.da != "randaugment" || (a.nas == "fixed" && a.hpo == "fixed"), value_error,
              "--da randaugment is compiled with --nas fixed --hpo fixed only (the multi-stage baseline's stages "
              "after the architecture search), got --nas {} --hpo {}",
              a.nas, a.hpo);
    DAM_CHECK(a.nas == "fixed" || a.flags.fixed_architecture.empty(), value_error,
              "--arch fixes the architecture: it needs --nas fixed (got --nas {})", a.nas);
}

/// The ops of --da-ops: grey, all, or a comma-separated list of op names.
inline std::vector<da::Op> ops_from(const std::string& s) {
    if (s == "all") return da::all_ops();
    if (s == "grey") return da::grey_ops();
    std::vector<da::Op> v;
    for (const auto& name : split_list(s)) v.push_back(da::op_from_name(name));
    DAM_CHECK(!v.empty(), value_error, "--da-ops: expected grey, all or a list of op names, got '{}'", s);
    return v;
}

/// The training and test sets: Fashion-MNIST from --data, or any IDX files (normalised with the
/// training set's pixel statistics), the training set reduced to --train-subset images if asked.
/// With --no-test the test set is not read (an empty dataset stands in). Sets the pixel space and the fill value of the DA ops.
inline std::pair<data::Dataset, data::Dataset> load(Args& a) {
    const bool custom = !a.train_images.empty() || !a.train_labels.empty() || !a.test_images.empty() || !a.test_labels.empty();
    a.flags.da_ops = ops_from(a.da_ops.empty() ? (custom ? "all" : "grey") : a.da_ops);
    if (!custom) {
        a.run.pixels = {data::fashion_mnist_mean, data::fashion_mnist_std};
        a.flags.fill = 0.0;  // black background
        data::Dataset train = data::load_fashion_mnist(a.data, true);
        if (a.train_subset > 0) train = data::balanced_subset(train, a.train_subset, a.subset_seed);
        return {std::move(train), a.no_test ? data::Dataset{} : data::load_fashion_mnist(a.data, false)};
    }
    DAM_CHECK(!a.train_images.empty() && !a.train_labels.empty() && (a.no_test || (!a.test_images.empty() && !a.test_labels.empty())),
              value_error, "a custom dataset needs all four of --train-images, --train-labels, --test-images, --test-labels "
                           "(the test files may be left out with --no-test)");
    data::IdxDatasetOptions o;
    o.classes = a.classes;
    o.split = data::Split::train;
    data::Dataset train = data::load_idx_dataset(a.train_images, a.train_labels, o);
    if (a.train_subset > 0) train = data::balanced_subset(train, a.train_subset, a.subset_seed);
    const auto [mean, sd] = data::pixel_stats(train);
    data::normalize(train, mean, sd);
    data::Dataset test;
    if (!a.no_test) {
        o.split = data::Split::test;
        o.classes = train.classes;
        test = data::load_idx_dataset(a.test_images, a.test_labels, o);
        data::normalize(test, mean, sd);
    }
    a.run.pixels = {mean, sd};
    return {std::move(train), std::move(test)};
}

/// Calls f.template operator()<DA, NAS, HPO>() for the combination named in a.
template <class F>
auto dispatch(const Args& a, F&& f) {
    using Shuffle = nas::ShuffleSpace;
    auto with_hpo = [&]<template <class...> class DA, class NAS>() {
        if (a.hpo == "hypergrad") return f.template operator()<DA, NAS, hpo::HypergradLrWd>();
        return f.template operator()<DA, NAS, hpo::FixedSchedule>();
    };
    auto with_nas = [&]<template <class...> class DA>() {
        if (a.nas == "dsnas") return with_hpo.template operator()<DA, nas::DSNAS<Shuffle>>();
        return with_hpo.template operator()<DA, nas::FixedArch<Shuffle>>();
    };
    if (a.space == "mobilenetv2") {
        // Never run the default policies under another combination's name.
        DAM_CHECK(a.da == "pair" && a.nas == "dsnas" && a.hpo == "hypergrad", value_error,
                  "the mobilenetv2 space is compiled with the default policies only (pair, dsnas, hypergrad), got {}, {}, {}",
                  a.da, a.nas, a.hpo);
        return f.template operator()<da::PairPolicyDA, nas::DSNAS<nas::MobileNetV2Space>, hpo::HypergradLrWd>();
    }
    if (a.da == "randaugment")  // one instantiation: check() allows it with fixed NAS and HPO only
        return f.template operator()<da::RandAugment, nas::FixedArch<Shuffle>, hpo::FixedSchedule>();
    if (a.da == "pair") return with_nas.template operator()<da::PairPolicyDA>();
    if (a.da == "standard") return with_nas.template operator()<da::StandardAugment>();
    return with_nas.template operator()<da::NoAugment>();
}

/// The options of the joint search JS from the command line: the run's as given, each policy's
/// from the flags that apply to it (a flag that does not apply to a policy is ignored).
template <class JS>
typename JS::Options options_for(const Args& a) {
    typename JS::Options o;
    o.run = a.run;
    const PolicyFlags& f = a.flags;
    using DaO = decltype(o.da);
    if constexpr (std::is_same_v<DaO, da::PairPolicyOptions>) {
        o.da.max_magnitude = f.da_max_magnitude;
        o.da.lr = f.da_lr;
        o.da.max_ratio = f.da_max_ratio;
        o.da.entropy_weight = f.da_entropy;
        o.da.fade_start = f.da_fade_start;
        o.da.fade_floor = f.da_fade_floor;
        o.da.flip_probability = f.da_flip;
        o.da.estimator = f.da_estimator;
        if (!f.da_ops.empty()) o.da.ops = f.da_ops;
        o.da.augment.fill = f.fill;
    } else if constexpr (std::is_same_v<DaO, da::RandAugmentOptions>) {
        o.da.n = f.ra_n;
        o.da.m = f.ra_m;
        o.da.flip_probability = f.da_flip;
        if (!f.da_ops.empty()) {  // RandAugment's own 14 ops, less those --da-ops leaves out
            std::erase_if(o.da.ops, [&](da::Op op) { return std::find(f.da_ops.begin(), f.da_ops.end(), op) == f.da_ops.end(); });
            DAM_CHECK(!o.da.ops.empty(), value_error,
                      "RandAugment: none of its 14 ops is among the {} ops of --da-ops; give at least one of them",
                      f.da_ops.size());
        }
        o.da.augment.fill = f.fill;
    } else if constexpr (std::is_same_v<DaO, da::StandardAugmentOptions>) {
        o.da.fill = f.fill;
    }
    using NasO = decltype(o.nas);
    if constexpr (std::is_same_v<NasO, nas::DSNASOptions>) {
        o.nas.lr = f.alpha_lr;
        o.nas.warmup_epochs = f.nas_warmup_epochs;
        o.nas.per_rank_samples = f.per_rank_samples;
    } else if constexpr (std::is_same_v<NasO, nas::FixedArchOptions>) {
        o.nas.architecture = f.fixed_architecture;
    }
    using HpoO = decltype(o.hpo);
    if constexpr (std::is_same_v<HpoO, hpo::HypergradOptions>) {
        o.hpo.momentum = f.momentum;
        o.hpo.every = f.hpo_every;
        o.hpo.horizon.forgetting = f.hpo_forgetting;
        o.hpo.horizon.curvature = f.hpo_curvature;
        o.hpo.wd_hi = f.wd_max;
        o.hpo.lr_lo = f.lr_min;
        o.hpo.label_smoothing = f.label_smoothing;
    } else if constexpr (std::is_same_v<HpoO, hpo::FixedScheduleOptions>) {
        o.hpo.momentum = f.momentum;  // --lr-min and --wd-max bound learned rates: not this schedule's
        o.hpo.label_smoothing = f.label_smoothing;
    }
    return o;
}

/// The joint search of a binary: a choice run (no test set) with --no-test, else a final run.
template <template <class...> class DA, class NAS, template <class...> class HPO>
std::unique_ptr<search::JointSearch<DA, NAS, HPO>> make_search(const Args& a, const data::Dataset& train,
                                                                const data::Dataset& test) {
    using JS = search::JointSearch<DA, NAS, HPO>;
    using Space = typename NAS::space_type;
    auto o = options_for<JS>(a);
    if (a.no_test) return std::make_unique<JS>(train, o, typename JS::Factories{}, Space::default_options());
    return std::make_unique<JS>(train, test, o, typename JS::Factories{}, Space::default_options());
}

/// SIGINT/SIGTERM ask the search to checkpoint and stop.
inline void install_stop_handlers() {
    auto handler = [](int) { search::stop_flag().store(true); };
    std::signal(SIGINT, handler);
    std::signal(SIGTERM, handler);
}

}  // namespace dam_joint
