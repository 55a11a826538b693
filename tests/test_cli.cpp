// The example programs' command-line parser (examples/cli.hpp): values are read by the type of
// their target, and every mistake is a value_error naming the program, the option and the value.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "../examples/cli.hpp"
#include "../examples/joint_common.hpp"
#include "test_helpers.hpp"

namespace {
std::vector<char*> args(std::vector<std::string>& v) {
    std::vector<char*> out;
    for (auto& s : v) out.push_back(s.data());
    return out;
}
}  // namespace

TEST_CASE("example command lines: typed values, flags, lists, and errors that say what was wrong", "[cli]") {
    int epochs = 1;
    double lr = 0.1, smoothing = 0;
    std::uint64_t seed = 0;
    std::string out = "x", space = "shuffle";
    bool augment = true;
    std::vector<std::int64_t> arch;
    dam_cli::Cli cli("prog", "prog: a test program.");
    cli.group("budget").option("--epochs", epochs, "number of epochs");
    cli.group("training")
        .option("--lr", lr, "learning rate")
        .option("--label-smoothing,--smoothing", smoothing, "eps")
        .one_of("--space", space, {"shuffle", "mobilenetv2"}, "search space")
        .list("--arch", arch, "choices");
    cli.group("run")
        .option("--seed", seed, "random seed")
        .option("--out", out, "output folder")
        .flag("--no-augment", augment, "no augmentation", false)
        .refuse("--seeds", "--seeds is another program's option");
    std::vector<std::string> ok{"prog", "--epochs", "7", "--lr", "2.5e-2", "--seed", "18446744073709551615", "--out", "dir",
                                "--no-augment", "--arch", "1,,3,2", "--smoothing", "0.1", "--space=mobilenetv2",
                                "--epochs", "8"};
    auto a = args(ok);
    cli.parse(static_cast<int>(a.size()), a.data());
    CHECK(epochs == 8);  // given twice: the last counts
    CHECK(lr == 0.025);
    CHECK(seed == 18446744073709551615ull);
    CHECK(out == "dir");
    CHECK(!augment);
    CHECK(arch == std::vector<std::int64_t>{1, 3, 2});
    CHECK(smoothing == 0.1);  // the old name is an alias of the new
    CHECK(space == "mobilenetv2");
    CHECK(cli.given("--label-smoothing"));
    CHECK(!cli.given("--threads"));

    // The help lists every option under its group with the default from its variable.
    const std::string help = cli.help();
    for (const char* part : {"budget:", "training:", "run:", "--epochs N=1", "--label-smoothing,--smoothing", "shuffle|mobilenetv2",
                             "no augmentation"})
        CHECK_THAT(help, Catch::Contains(part));
    CHECK_THAT(help, !Catch::Contains("--seeds"));  // a refused option is not offered

    auto fails = [](std::vector<std::string> v, std::initializer_list<std::string> parts) {
        int e = 1;
        double l = 0.1;
        std::uint64_t s = 0;
        std::string sp = "shuffle";
        std::vector<std::int64_t> ar;
        dam_cli::Cli c("prog", "");
        c.option("--epochs", e, "").option("--lr", l, "").option("--seed", s, "").list("--arch", ar, "");
        c.one_of("--space", sp, {"shuffle", "mobilenetv2"}, "").option("--batch", e, "");
        c.refuse("--seeds", "--seeds is another program's option");
        auto p = args(v);
        dam_test::require_throws_with<diffautoml::value_error>([&] { c.parse(static_cast<int>(p.size()), p.data()); }, parts);
    };
    fails({"prog", "--epochs", "abc"}, {"--epochs expects a whole number", "'abc'"});
    fails({"prog", "--epochs", "3.5"}, {"--epochs expects a whole number", "'3.5'"});
    fails({"prog", "--epochs", "99999999999"}, {"out of range"});
    fails({"prog", "--seed", "-1"}, {"--seed expects a whole number >= 0", "'-1'"});
    fails({"prog", "--lr", "nan"}, {"--lr expects a finite number", "'nan'"});
    fails({"prog", "--lr", "0.1x"}, {"'0.1x'"});
    fails({"prog", "--lr"}, {"--lr needs a value"});
    fails({"prog", "--bogus"}, {"unknown option '--bogus'"});
    fails({"prog", "--ephocs", "3"}, {"unknown option '--ephocs'", "did you mean --epochs?"});
    fails({"prog", "--bach", "3"}, {"did you mean --batch?"});
    fails({"prog", "stray"}, {"unexpected argument 'stray'"});
    fails({"prog", "--arch", "1,x"}, {"--arch expects a whole number", "'x'"});
    fails({"prog", "--space", "resnet"}, {"--space expects shuffle | mobilenetv2", "'resnet'"});
    fails({"prog", "--seeds", "0,1"}, {"--seeds is another program's option"});
}

TEST_CASE("the main job's command line: one declaration per setting, checks before any data is read", "[cli]") {
    auto parse = [](std::vector<std::string> v) {
        auto a = dam_joint::main_job_defaults();
        dam_cli::Cli cli("diffautoml-search", "");
        dam_joint::declare(cli, a);
        auto p = args(v);
        cli.parse(static_cast<int>(p.size()), p.data());
        dam_joint::check(a, cli);
        return a;
    };
    const auto a = parse({"p", "--val", "300", "--hpo-curvature", "fd", "--da-estimator", "score", "--retime-after-join", "1",
                          "--nas", "fixed", "--arch", "1,2,3,0,1,2,3,0", "--no-test", "--quiet"});
    CHECK(a.run.validation == 300);
    CHECK(a.flags.hpo_curvature == diffautoml::hpo::Curvature::finite_difference);
    CHECK(a.flags.da_estimator == diffautoml::da::PairPolicyOptions::Estimator::score_function);
    CHECK(a.run.retime_after_join);
    CHECK(a.flags.fixed_architecture.size() == 8);
    CHECK(a.run.join_validation == 1);  // a choice run keeps the validation slice held out
    CHECK(!a.run.progress);
    CHECK(a.run.minutes == 55);  // the main job's budget unless given
    // The flags reach the options of the policies a binary instantiates, and only theirs.
    namespace dm = diffautoml;
    using FixedJS = dm::search::JointSearch<dm::da::PairPolicyDA, dm::nas::FixedArch<dm::nas::ShuffleSpace>, dm::hpo::HypergradLrWd>;
    const auto fo = dam_joint::options_for<FixedJS>(a);
    CHECK(fo.run.validation == 300);
    CHECK(fo.nas.architecture == std::vector<std::int64_t>{1, 2, 3, 0, 1, 2, 3, 0});
    CHECK(fo.hpo.horizon.curvature == dm::hpo::Curvature::finite_difference);
    CHECK(fo.hpo.lr_lo == 0.1);   // the main job's floor and ceiling, not HypergradOptions' own defaults
    CHECK(fo.hpo.wd_hi == 5e-4);
    CHECK(fo.hpo.every == 16);
    CHECK(fo.da.estimator == dm::da::PairPolicyOptions::Estimator::score_function);
    CHECK(fo.da.max_magnitude == 0.5);
    const auto b = parse({"p", "--alpha-lr", "0.3", "--hpo", "fixed", "--da", "standard", "--lr", "0.2", "--per-rank-samples"});
    using StdJS = dm::search::JointSearch<dm::da::StandardAugment, dm::nas::DSNAS<dm::nas::ShuffleSpace>, dm::hpo::FixedSchedule>;
    const auto so = dam_joint::options_for<StdJS>(b);
    CHECK(so.nas.lr == 0.3);
    CHECK(so.nas.warmup_epochs == 0.25);
    CHECK(so.nas.per_rank_samples);
    CHECK_FALSE(dam_joint::options_for<StdJS>(a).nas.per_rank_samples);  // one path for the whole batch unless asked
    CHECK(so.run.lr == 0.2);
    CHECK(so.hpo.momentum == 0.9);
    dam_test::require_throws_with<diffautoml::value_error>(
        [&] { (void)parse({"p", "--no-test", "--join-validation", "0.7"}); }, {"--no-test", "--join-validation"});
    dam_test::require_throws_with<diffautoml::value_error>([&] { (void)parse({"p", "--arch", "1,2"}); },
                                                           {"--arch", "--nas fixed"});
    dam_test::require_throws_with<diffautoml::value_error>([&] { (void)parse({"p", "--space", "mobilenetv2", "--hpo", "fixed"}); },
                                                           {"mobilenetv2", "default policies"});
    dam_test::require_throws_with<diffautoml::value_error>([&] { (void)parse({"p", "--hpo-curvature", "exact"}); },
                                                           {"--hpo-curvature expects none | radial | fd", "'exact'"});
}

TEST_CASE("the binaries' policy dispatch runs the combination it names, or refuses", "[cli]") {
    const auto names = []<template <class...> class DA, class NAS, template <class...> class HPO>() {
        return std::string(DA<float>::policy_name) + "/" + std::string(NAS::policy_name) + "/" +
               std::string(HPO<float>::policy_name);
    };
    dam_joint::Args a;
    CHECK(dam_joint::dispatch(a, names) == "pair_policy/dsnas/hypergrad_lr_wd");
    a.da = "standard";
    a.nas = "fixed";
    a.hpo = "fixed";
    CHECK(dam_joint::dispatch(a, names) == "standard/fixed/fixed");
    // The mobilenetv2 space is compiled with the default policies only: another combination is an
    // error, never the defaults run under the other combination's name (the ablation did that).
    a.space = "mobilenetv2";
    dam_test::require_throws_with<diffautoml::value_error>([&] { (void)dam_joint::dispatch(a, names); },
                                     {"mobilenetv2", "default policies", "standard, fixed, fixed"});
    a.da = "pair";
    a.nas = "dsnas";
    a.hpo = "hypergrad";
    CHECK(dam_joint::dispatch(a, names) == "pair_policy/dsnas/hypergrad_lr_wd");
}
