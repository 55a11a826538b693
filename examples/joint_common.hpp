#pragma once
// Shared by diffautoml-search and diffautoml-ablation: the command line, the datasets, and the
// runtime choice among the policy combinations compiled into the binaries.
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

namespace dam_joint {

using namespace diffautoml;

struct Args {
    search::JointOptions joint;
    std::string data = DAM_FASHION_DIR;
    std::string train_images, train_labels, test_images, test_labels;
    int classes = 0, threads = 2;
    std::int64_t train_subset = 0;   ///< > 0: train on a seeded class-balanced subset of this many images
    std::uint64_t subset_seed = 0;   ///< the subset's seed (the same subset for every --seed by default)
    std::string space = "shuffle", da = "pair", nas = "dsnas", hpo = "hypergrad";
    std::string device = "cpu";                  ///< diffautoml-search only: cpu or cuda
    std::string da_ops;                          ///< "" picks grey for Fashion-MNIST, all otherwise
    bool resume = false;
    bool no_test = false;                        ///< a choice run: the test set is not read (docs/protocol.md)
    std::vector<std::uint64_t> seeds{0, 1, 2};  ///< ablation only
    std::vector<std::string> extra;             ///< options a binary handles itself
};

inline std::vector<std::string> split_list(const std::string& s) { return dam_cli::split(s); }

inline const char* kCommonHelp =
    "  data:    --data DIR (Fashion-MNIST's four .gz IDX files; default the Debian path)\n"
    "           --train-images F --train-labels F --test-images F --test-labels F [--classes N] (any IDX dataset)\n"
    "           --train-subset N (0 = all: a class-balanced subset of N training images, the reduced-data protocol)\n"
    "           --subset-seed S (0: which subset; the same for every --seed)\n"
    "  budget:  --epochs N (60, a cap)  --minutes M (55; 0 = no limit; the step count is fixed after 10\n"
    "             warm-up and 30 timed steps, keeping what the final pass needs)\n"
    "  search:  --space shuffle|mobilenetv2 (shuffle)  --da pair|standard|none (pair)  --nas dsnas|fixed (dsnas)\n"
    "           --da-max-magnitude M (0.5: pair policy magnitudes ~ U(0, M))  --da-lr X (20)\n"
    "           --da-max-ratio R (10: no pair more than R times as likely as another; 0 = no clamp)\n"
    "           --da-entropy B (0: weight of KL(P || uniform) in the pair policy's loss)\n"
    "           --da-fade F (0.5: from this share of the steps on, fewer images are augmented, none at the end; 1 = never)\n"
    "           --da-fade-floor P (0: the share of images still augmented when the fade ends)\n"
    "           --da-flip P (0: each image is also mirrored left-right with probability P under its pair, through the fade)\n"
    "           --da-ops grey|all|Op,Op,... (grey for Fashion-MNIST: no Invert/Solarize/Color; all for other data)\n"
    "           --da-estimator direct|score (direct: the pair policy's update as DiffAutoML states it; score: the\n"
    "             unbiased score-function estimate with a running-mean baseline, docs/da.md)\n"
    "           --hpo hypergrad|fixed (hypergrad)  --arch i,j,... (for --nas fixed)\n"
    "  training: --batch B (128)  --lr X (0.1)  --wd X (5e-4)  --alpha-lr X (3e-2)  --search-fraction X (0.5)\n"
    "           --validation X (1/12: a share in (0, 1) or a count >= 1 of the training images, held out for HPO)\n"
    "           --wd-max X (5e-4: upper bound of the learned weight decay)\n"
    "           --hpo-every K (16: hypergradient step every K steps)\n"
    "           --hpo-forgetting G (0: the one-step hypergradient; G in (0, 1]: forward mode, a horizon of\n"
    "             about 1/(1-G) steps)  --hpo-curvature none|radial|fd (radial: how forward mode sees the\n"
    "             curvature; fd costs two extra backward passes per hyperparameter and step; docs/hpo.md)\n"
    "           --lr-min X (0.1: lower bound of the learned learning rate; --lr must not be below it)\n"
    "           --label-smoothing E (0: training loss (1 - E) CE + E uniform; validation stays plain CE)\n"
    "           --join-validation X (0.7: from this share of the steps on, the validation images join training and\n"
    "             the learned hyperparameters freeze; 1 = never)\n"
    "           --retime-after-join 0|1 (0: with --minutes, time the steps after the join on their own and let the\n"
    "             step count grow once more from them)\n"
    "           --average-from X (1 = off: from this share of the steps on, the weights at each epoch end are\n"
    "             averaged (SWA) and the average, with recomputed batch-norm statistics, is the final model)\n"
    "  run:     --seed S (0; seeds >= 100 are headline seeds, never used for a choice)  --threads T (2)\n"
    "           --checkpoint-minutes M (5)  --quiet\n"
    "           --no-test (a choice run: the test set is not read, the validation slice stays held out to the end\n"
    "             and result.json holds its accuracy; docs/protocol.md)\n"
    "           --device cpu|cuda (cpu; cuda trains on the GPU: default policies, shuffle space)\n";

/// Parses the options shared by the binaries; unknown ones are left in Args::extra.
inline Args parse(int argc, char** argv, const char* who) {
    Args a;
    a.joint.out_dir = "diffautoml_out";
    a.joint.minutes = 55;  // the main job's budget: done within an hour on 2 cores
    a.joint.epochs = 60;   // a cap: the 55 minutes end the main job first (about 40 epochs)
    dam_cli::Parser cli(who, [] {});  // each binary prints its own --help before calling parse
    auto& j = a.joint;
    cli.option("--data", a.data)
        .option("--train-images", a.train_images)
        .option("--train-labels", a.train_labels)
        .option("--test-images", a.test_images)
        .option("--test-labels", a.test_labels)
        .option("--classes", a.classes)
        .option("--train-subset", a.train_subset)
        .option("--subset-seed", a.subset_seed)
        .option("--epochs", j.epochs)
        .option("--minutes", j.minutes)
        .option("--batch", j.batch)
        .option("--lr", j.lr)
        .option("--wd", j.weight_decay)
        .option("--alpha-lr", j.alpha_lr)
        .option("--search-fraction", j.search_fraction)
        .option("--validation", j.validation)
        .option("--hpo-every", j.hpo_every)
        .option("--hpo-forgetting", j.hpo_forgetting)
        .custom("--hpo-curvature",
                [&](const std::string& v) {
                    DAM_CHECK(v == "none" || v == "radial" || v == "fd", value_error,
                              "{}: --hpo-curvature expects none, radial or fd, got '{}'", who, v);
                    j.hpo_curvature = v == "none"     ? hpo::Curvature::none
                                      : v == "radial" ? hpo::Curvature::radial
                                                      : hpo::Curvature::finite_difference;
                })
        .option("--da-max-magnitude", j.da_max_magnitude)
        .option("--da-lr", j.da_lr)
        .option("--da-max-ratio", j.da_max_ratio)
        .option("--da-entropy", j.da_entropy)
        .option("--da-fade", j.da_fade_start)
        .option("--da-fade-floor", j.da_fade_floor)
        .option("--da-flip", j.da_flip)
        .option("--da-ops", a.da_ops)
        .custom("--da-estimator",
                [&](const std::string& v) {
                    DAM_CHECK(v == "direct" || v == "score", value_error, "{}: --da-estimator expects direct or score, got '{}'",
                              who, v);
                    j.da_estimator = v == "score" ? da::PairPolicyOptions::Estimator::score_function
                                                  : da::PairPolicyOptions::Estimator::direct;
                })
        .option("--wd-max", j.wd_max)
        .option("--lr-min", j.lr_min)
        .option("--label-smoothing", j.label_smoothing)
        .option("--join-validation", j.join_validation)
        .option("--average-from", j.average_from)
        .custom("--retime-after-join",
                [&](const std::string& v) {
                    DAM_CHECK(v == "0" || v == "1", value_error, "{}: --retime-after-join expects 0 or 1, got '{}'", who, v);
                    j.retime_after_join = v == "1";
                })
        .option("--checkpoint-minutes", j.checkpoint_minutes)
        .option("--seed", j.seed)
        .option("--threads", a.threads)
        .option("--out", j.out_dir)
        .option("--space", a.space)
        .option("--da", a.da)
        .option("--nas", a.nas)
        .option("--hpo", a.hpo)
        .option("--device", a.device)
        .custom("--arch", [&](const std::string& v) { j.fixed_architecture = cli.read_list<std::int64_t>("--arch", v); })
        .custom("--seeds", [&](const std::string& v) { a.seeds = cli.read_list<std::uint64_t>("--seeds", v); })
        .flag("--resume", a.resume)
        .flag("--no-test", a.no_test)
        .flag("--quiet", j.progress, false);
    cli.parse(argc, argv, &a.extra);
    if (a.no_test) {
        bool join_given = false;
        for (int i = 1; i < argc; ++i) join_given |= std::string(argv[i]) == "--join-validation";
        DAM_CHECK(!join_given || j.join_validation == 1, value_error,
                  "{}: --no-test keeps the validation slice held out to the end; drop --join-validation or set it to 1",
                  who);
        j.join_validation = 1;
    }
    DAM_CHECK(a.train_subset >= 0, value_error, "{}: --train-subset must be >= 0 (0 = all), got {}", who, a.train_subset);
    DAM_CHECK(a.space == "shuffle" || a.space == "mobilenetv2", value_error,
              "{}: --space must be shuffle or mobilenetv2, got '{}'", who, a.space);
    DAM_CHECK(a.da == "pair" || a.da == "standard" || a.da == "none", value_error,
              "{}: --da must be pair, standard or none, got '{}'", who, a.da);
    DAM_CHECK(a.nas == "dsnas" || a.nas == "fixed", value_error, "{}: --nas must be dsnas or fixed, got '{}'", who, a.nas);
    DAM_CHECK(a.hpo == "hypergrad" || a.hpo == "fixed", value_error, "{}: --hpo must be hypergrad or fixed, got '{}'", who,
              a.hpo);
    DAM_CHECK(a.space == "shuffle" || (a.da == "pair" && a.nas == "dsnas" && a.hpo == "hypergrad"), value_error,
              "{}: the mobilenetv2 space is compiled with the default policies only (pair, dsnas, hypergrad)", who);
    DAM_CHECK(a.device == "cpu" || a.device == "cuda", value_error, "{}: --device must be cpu or cuda, got '{}'", who,
              a.device);
    DAM_CHECK(a.device == "cpu" || (a.space == "shuffle" && (a.da == "pair" || a.da == "none") && a.nas == "dsnas" &&
                                    a.hpo == "hypergrad"),
              value_error,
              "{}: --device cuda is compiled for the shuffle space with --da pair|none, --nas dsnas and --hpo hypergrad",
              who);
    return a;
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
    a.joint.da_ops = ops_from(a.da_ops.empty() ? (custom ? "all" : "grey") : a.da_ops);
    if (!custom) {
        a.joint.pixels = {data::fashion_mnist_mean, data::fashion_mnist_std};
        a.joint.augment.fill = 0.0;  // black background
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
    a.joint.pixels = {mean, sd};
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
    if (a.da == "pair") return with_nas.template operator()<da::PairPolicyDA>();
    if (a.da == "standard") return with_nas.template operator()<da::StandardAugment>();
    return with_nas.template operator()<da::NoAugment>();
}

/// The joint search of a binary: a choice run (no test set) with --no-test, else a final run.
template <template <class...> class DA, class NAS, template <class...> class HPO>
std::unique_ptr<search::JointSearch<DA, NAS, HPO>> make_search(const Args& a, const data::Dataset& train,
                                                                const data::Dataset& test) {
    using JS = search::JointSearch<DA, NAS, HPO>;
    using Space = typename NAS::space_type;
    if (a.no_test) return std::make_unique<JS>(train, a.joint, typename JS::Factories{}, Space::default_options());
    return std::make_unique<JS>(train, test, a.joint, typename JS::Factories{}, Space::default_options());
}

/// SIGINT/SIGTERM ask the search to checkpoint and stop.
inline void install_stop_handlers() {
    auto handler = [](int) { search::stop_flag().store(true); };
    std::signal(SIGINT, handler);
    std::signal(SIGTERM, handler);
}

}  // namespace dam_joint
