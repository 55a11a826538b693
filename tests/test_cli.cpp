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
    double lr = 0.1;
    std::uint64_t seed = 0;
    std::string out = "x";
    bool augment = true;
    std::vector<std::int64_t> arch;
    dam_cli::Parser cli("prog", [] {});
    cli.option("--epochs", epochs)
        .option("--lr", lr)
        .option("--seed", seed)
        .option("--out", out)
        .flag("--no-augment", augment, false)
        .custom("--arch", [&](const std::string& v) { arch = cli.read_list<std::int64_t>("--arch", v); });
    std::vector<std::string> ok{"prog", "--epochs", "7", "--lr", "2.5e-2", "--seed", "18446744073709551615", "--out", "dir",
                                "--no-augment", "--arch", "1,,3,2"};
    auto a = args(ok);
    cli.parse(static_cast<int>(a.size()), a.data());
    CHECK(epochs == 7);
    CHECK(lr == 0.025);
    CHECK(seed == 18446744073709551615ull);
    CHECK(out == "dir");
    CHECK(!augment);
    CHECK(arch == std::vector<std::int64_t>{1, 3, 2});

    auto fails = [&](std::vector<std::string> v, std::initializer_list<std::string> parts) {
        auto p = args(v);
        dam_test::require_throws_with<diffautoml::value_error>([&] { cli.parse(static_cast<int>(p.size()), p.data()); }, parts);
    };
    fails({"prog", "--epochs", "abc"}, {"prog: --epochs expects a whole number", "'abc'"});
    fails({"prog", "--epochs", "3.5"}, {"--epochs expects a whole number", "'3.5'"});
    fails({"prog", "--epochs", "99999999999"}, {"out of range"});
    fails({"prog", "--seed", "-1"}, {"--seed expects a whole number >= 0", "'-1'"});
    fails({"prog", "--lr", "nan"}, {"--lr expects a finite number", "'nan'"});
    fails({"prog", "--lr", "0.1x"}, {"'0.1x'"});
    fails({"prog", "--lr"}, {"prog: --lr needs a value"});
    fails({"prog", "--bogus"}, {"prog: unknown option '--bogus'"});
    fails({"prog", "--arch", "1,x"}, {"--arch expects a whole number", "'x'"});
    std::vector<std::string> rest_args{"prog", "--other", "--epochs", "2"};
    auto r = args(rest_args);
    std::vector<std::string> rest;
    cli.parse(static_cast<int>(r.size()), r.data(), &rest);
    CHECK(rest == std::vector<std::string>{"--other"});
    CHECK(epochs == 2);
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
