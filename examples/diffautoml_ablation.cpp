// diffautoml-ablation: which part of the joint search helps, at equal budget and over seeds.
// Runs, for each seed, a fixed architecture with standard training, NAS only, NAS+DA, NAS+HPO and
// DA+NAS+HPO (standard augmentation and a fixed cosine schedule where DA or HPO is not searched)
// and prints a Markdown table of mean +- std test accuracy and search cost in CPU minutes. Each run
// leaves its outputs in --out/ROW_seedS/; the table is also written to --out/ablation.md. Started
// again with the same options, it reads back the runs that finished and resumes the one stopped.
#include <cmath>

#include "joint_common.hpp"

using namespace diffautoml;

namespace {

struct Config {
    const char* name;
    const char* da;
    const char* nas;
    const char* hpo;
};
constexpr Config kConfigs[] = {
    {"fixed arch + standard training", "standard", "fixed", "fixed"},
    {"NAS only", "standard", "dsnas", "fixed"},
    {"NAS + DA", "pair", "dsnas", "fixed"},
    {"NAS + HPO", "standard", "dsnas", "hypergrad"},
    {"DA + NAS + HPO (joint)", "pair", "dsnas", "hypergrad"},
};

std::pair<double, double> mean_std(const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) s += (x - m) * (x - m);
    return {m, v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0};
}

}  // namespace

int main(int argc, char** argv) try {
    // Equal budget means equal epochs here: 10 per run and no time limit unless asked for.
    auto base = dam_joint::main_job_defaults();
    base.run.out_dir = "ablation_out";
    base.run.epochs = 10;
    base.run.minutes = 0;
    std::vector<int> rows{0, 1, 2, 3, 4};
    dam_cli::Cli cli("diffautoml-ablation",
                     "diffautoml-ablation: which part of the joint search helps, at equal budget and over seeds. Rows: "
                     "0 fixed architecture + standard training, 1 NAS only, 2 NAS + DA, 3 NAS + HPO, 4 the joint search; "
                     "each row sets --da, --nas and --hpo itself.");
    dam_joint::declare(cli, base);
    cli.group("ablation")
        .list("--seeds", base.seeds, "one run of each row per seed")
        .list("--configs", rows, "the rows to run, of 0..4")
        .option("--out", base.run.out_dir, "output folder: ROW_seedS/ per run and ablation.md")
        .refuse("--resume",
                "--resume is not needed: run the same command again and it reads back the finished runs and resumes "
                "the one that was stopped")
        .refuse("--device", "diffautoml-ablation runs on the CPU only (--device is a diffautoml-search option)");
    cli.parse(argc, argv);
    for (const char* policy : {"--da", "--nas", "--hpo"})
        DAM_CHECK(!cli.given(policy), value_error, "{} does not apply: each row of the ablation sets its own policies", policy);
    // Each row sets its own DA, NAS and HPO policy: only the shuffle space is compiled with all of them.
    DAM_CHECK(base.space == "shuffle", value_error,
              "the rows are compiled for the shuffle space only; --space {} runs in diffautoml-search (with the "
              "default policies)",
              base.space);
    for (int row : rows) DAM_CHECK(row >= 0 && row < 5, value_error, "--configs takes rows 0..4, got {}", row);
    dam_joint::check(base, cli);
    set_num_threads(base.threads);
    auto [train, test] = dam_joint::load(base);
    dam_joint::install_stop_handlers();
    diffautoml::create_directories(base.run.out_dir);
    // A choice ablation (--no-test) compares held-out validation accuracy; a final one test accuracy.
    const std::string metric = base.no_test ? "val_accuracy" : "test_accuracy";
    std::string table = fmt::format(
        "| configuration | {} (mean +- std over {} seeds) | search cost (CPU minutes, mean) | runs |\n"
        "|---|---:|---:|---|\n",
        base.no_test ? "validation accuracy (held out)" : "test accuracy", base.seeds.size());
    // Seed by seed, so that a stopped ablation has every row for the seeds it finished; a run that
    // finished before (its result.json, same configuration) is read back instead of run again.
    std::vector<std::vector<double>> acc(5), cost(5);
    for (auto seed : base.seeds) {
        for (int row : rows) {
            const Config& c = kConfigs[row];
            auto a = base;
            a.da = c.da;
            a.nas = c.nas;
            a.hpo = c.hpo;
            a.run.seed = seed;
            a.run.out_dir = fmt::format("{}/{}_seed{}", base.run.out_dir, row, seed);
            const auto [accuracy, minutes] = dam_joint::dispatch(
                a, [&]<template <class...> class DA, class NAS, template <class...> class HPO>() {
                    auto js = dam_joint::make_search<DA, NAS, HPO>(a, train, test);
                    if (const nlohmann::json done = js->finished_result(); !done.is_null()) {
                        fmt::print("finished earlier: {}\n", a.run.out_dir);
                        return std::pair{done[metric].get<double>(), done["search_cost_cpu_minutes"].get<double>()};
                    }
                    if (js->resume()) fmt::print("resumed {} at step {}\n", a.run.out_dir, js->step());
                    const auto r = js->run();
                    return std::pair{base.no_test ? r.val_accuracy : r.test_accuracy, r.wall_seconds * base.threads / 60.0};
                });
            fmt::print("config=\"{}\" seed={} {}={:.4f} cpu_minutes={:.1f}\n", c.name, seed, metric, accuracy, minutes);
            std::fflush(stdout);
            acc[row].push_back(accuracy);
            cost[row].push_back(minutes);
        }
    }
    for (int row : rows) {
        const auto [m, s] = mean_std(acc[row]);
        std::string runs;
        for (double x : acc[row]) runs += fmt::format("{}{:.4f}", runs.empty() ? "" : ", ", x);
        table += fmt::format("| {} | {:.4f} +- {:.4f} | {:.1f} | {} |\n", kConfigs[row].name, m, s,
                             mean_std(cost[row]).first, runs);
    }
    fmt::print("\n{}", table);
    write_text_atomic(base.run.out_dir + "/ablation.md", table);
    return 0;
} catch (const diffautoml::search::interrupted& e) {
    fmt::print(stderr, "diffautoml-ablation: {}; run the same command again to resume\n", e.what());
    return 130;
} catch (const std::exception& e) {
    fmt::print(stderr, "diffautoml-ablation: error: {}\n", e.what());
    return 1;
}
