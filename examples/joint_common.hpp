#pragma once
// Shared by diffautoml-search and diffautoml-ablation: the command line, the datasets, and the
// runtime choice among the policy combinations compiled into the binaries.
#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

namespace dam_joint {

using namespace diffautoml;

struct Args {
    search::JointOptions joint;
    std::string data = DAM_FASHION_DIR;
    std::string train_images, train_labels, test_images, test_labels;
    int classes = 0, threads = 2;
    std::string space = "shuffle", da = "pair", nas = "dsnas", hpo = "hypergrad";
    bool resume = false;
    std::vector<std::uint64_t> seeds{0, 1, 2};  ///< ablation only
    std::vector<std::string> extra;             ///< options a binary handles itself
};

inline std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> v;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto end = s.find(',', start);
        const std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (!item.empty()) v.push_back(item);
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return v;
}

inline const char* kCommonHelp =
    "  data:    --data DIR (Fashion-MNIST's four .gz IDX files; default the Debian path)\n"
    "           --train-images F --train-labels F --test-images F --test-labels F [--classes N] (any IDX dataset)\n"
    "  budget:  --epochs N (30)  --minutes M (55; 0 = no limit; the step count is fixed after 30 timed steps)\n"
    "  search:  --space shuffle|mobilenetv2 (shuffle)  --da pair|standard|none (pair)  --nas dsnas|fixed (dsnas)\n"
    "           --da-max-magnitude M (0.5: pair policy magnitudes ~ U(0, M))  --da-lr X (20)\n"
    "           --hpo hypergrad|fixed (hypergrad)  --arch i,j,... (for --nas fixed)\n"
    "  training: --batch B (128)  --lr X (0.1)  --wd X (5e-4)  --alpha-lr X (3e-2)  --search-fraction X (0.5)\n"
    "           --validation N (5000 training images held out for HPO)  --hpo-every K (4: hypergradient step every K steps)\n"
    "  run:     --seed S (0)  --threads T (2)  --checkpoint-minutes M (5)  --quiet\n";

/// Parses the options shared by the binaries; unknown ones are left in Args::extra.
inline Args parse(int argc, char** argv, const char* who) {
    Args a;
    a.joint.out_dir = "diffautoml_out";
    a.joint.minutes = 55;  // the main job's budget: done within an hour on 2 cores
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto val = [&]() -> std::string {
            DAM_CHECK(i + 1 < argc, value_error, "{}: {} needs a value (see --help)", who, k);
            return argv[++i];
        };
        auto num = [&](const std::string& v) {
            try {
                std::size_t used = 0;
                const double d = std::stod(v, &used);
                DAM_CHECK(used == v.size(), value_error, "");
                return d;
            } catch (const std::exception&) {
                throw value_error(fmt::format("{}: {} expects a number, got '{}'", who, k, v));
            }
        };
        if (k == "--data") a.data = val();
        else if (k == "--train-images") a.train_images = val();
        else if (k == "--train-labels") a.train_labels = val();
        else if (k == "--test-images") a.test_images = val();
        else if (k == "--test-labels") a.test_labels = val();
        else if (k == "--classes") a.classes = static_cast<int>(num(val()));
        else if (k == "--epochs") a.joint.epochs = static_cast<std::int64_t>(num(val()));
        else if (k == "--minutes") a.joint.minutes = num(val());
        else if (k == "--batch") a.joint.batch = static_cast<std::int64_t>(num(val()));
        else if (k == "--lr") a.joint.lr = num(val());
        else if (k == "--wd") a.joint.weight_decay = num(val());
        else if (k == "--alpha-lr") a.joint.alpha_lr = num(val());
        else if (k == "--search-fraction") a.joint.search_fraction = num(val());
        else if (k == "--validation") a.joint.validation = static_cast<std::int64_t>(num(val()));
        else if (k == "--hpo-every") a.joint.hpo_every = static_cast<std::int64_t>(num(val()));
        else if (k == "--da-max-magnitude") a.joint.da_max_magnitude = num(val());
        else if (k == "--da-lr") a.joint.da_lr = num(val());
        else if (k == "--checkpoint-minutes") a.joint.checkpoint_minutes = num(val());
        else if (k == "--seed") a.joint.seed = static_cast<std::uint64_t>(num(val()));
        else if (k == "--threads") a.threads = static_cast<int>(num(val()));
        else if (k == "--out") a.joint.out_dir = val();
        else if (k == "--space") a.space = val();
        else if (k == "--da") a.da = val();
        else if (k == "--nas") a.nas = val();
        else if (k == "--hpo") a.hpo = val();
        else if (k == "--arch")
            for (const auto& s : split_list(val())) a.joint.fixed_architecture.push_back(static_cast<std::int64_t>(num(s)));
        else if (k == "--resume") a.resume = true;
        else if (k == "--quiet") a.joint.progress = false;
        else if (k == "--seeds") {
            a.seeds.clear();
            for (const auto& s : split_list(val())) a.seeds.push_back(static_cast<std::uint64_t>(num(s)));
        } else a.extra.push_back(k);
    }
    DAM_CHECK(a.space == "shuffle" || a.space == "mobilenetv2", value_error,
              "{}: --space must be shuffle or mobilenetv2, got '{}'", who, a.space);
    DAM_CHECK(a.da == "pair" || a.da == "standard" || a.da == "none", value_error,
              "{}: --da must be pair, standard or none, got '{}'", who, a.da);
    DAM_CHECK(a.nas == "dsnas" || a.nas == "fixed", value_error, "{}: --nas must be dsnas or fixed, got '{}'", who, a.nas);
    DAM_CHECK(a.hpo == "hypergrad" || a.hpo == "fixed", value_error, "{}: --hpo must be hypergrad or fixed, got '{}'", who,
              a.hpo);
    DAM_CHECK(a.space == "shuffle" || (a.da == "pair" && a.nas == "dsnas" && a.hpo == "hypergrad"), value_error,
              "{}: the mobilenetv2 space is compiled with the default policies only (pair, dsnas, hypergrad)", who);
    return a;
}

/// The training and test sets: Fashion-MNIST from --data, or any IDX files (normalised with the
/// training set's pixel statistics). Sets the pixel space and the fill value of the DA ops.
inline std::pair<data::Dataset, data::Dataset> load(Args& a) {
    const bool custom = !a.train_images.empty() || !a.train_labels.empty() || !a.test_images.empty() || !a.test_labels.empty();
    if (!custom) {
        a.joint.pixels = {data::fashion_mnist_mean, data::fashion_mnist_std};
        a.joint.augment.fill = 0.0;  // black background
        return {data::load_fashion_mnist(a.data, true), data::load_fashion_mnist(a.data, false)};
    }
    DAM_CHECK(!a.train_images.empty() && !a.train_labels.empty() && !a.test_images.empty() && !a.test_labels.empty(),
              value_error, "a custom dataset needs all four of --train-images, --train-labels, --test-images, --test-labels");
    data::IdxDatasetOptions o;
    o.classes = a.classes;
    o.split = data::Split::train;
    data::Dataset train = data::load_idx_dataset(a.train_images, a.train_labels, o);
    o.split = data::Split::test;
    o.classes = train.classes;
    data::Dataset test = data::load_idx_dataset(a.test_images, a.test_labels, o);
    const auto [mean, sd] = data::pixel_stats(train);
    data::normalize(train, mean, sd);
    data::normalize(test, mean, sd);
    a.joint.pixels = {mean, sd};
    return {std::move(train), std::move(test)};
}

/// Calls f.template operator()<DA, NAS, HPO>() for the combination named in a.
template <class F>
auto dispatch(const Args& a, F&& f) {
    using Shuffle = nas::ShuffleSpace;
    auto with_hpo = [&]<template <class> class DA, class NAS>() {
        if (a.hpo == "hypergrad") return f.template operator()<DA, NAS, hpo::HypergradLrWd>();
        return f.template operator()<DA, NAS, hpo::FixedSchedule>();
    };
    auto with_nas = [&]<template <class> class DA>() {
        if (a.nas == "dsnas") return with_hpo.template operator()<DA, nas::DSNAS<Shuffle>>();
        return with_hpo.template operator()<DA, nas::FixedArch<Shuffle>>();
    };
    if (a.space == "mobilenetv2")
        return f.template operator()<da::PairPolicyDA, nas::DSNAS<nas::MobileNetV2Space>, hpo::HypergradLrWd>();
    if (a.da == "pair") return with_nas.template operator()<da::PairPolicyDA>();
    if (a.da == "standard") return with_nas.template operator()<da::StandardAugment>();
    return with_nas.template operator()<da::NoAugment>();
}

/// SIGINT/SIGTERM ask the search to checkpoint and stop.
inline void install_stop_handlers() {
    auto handler = [](int) { search::stop_flag().store(true); };
    std::signal(SIGINT, handler);
    std::signal(SIGTERM, handler);
}

}  // namespace dam_joint
