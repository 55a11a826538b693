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
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            fmt::print("diffautoml-ablation: fixed / NAS / NAS+DA / NAS+HPO / joint at equal budget over seeds.\n{}"
                       "  ablation: --seeds 0,1,2  --configs 0,1,2,3,4 (subset of the table rows)  --out DIR "
                       "(ablation_out)\n  defaults here: --epochs 10 per run, no time limit\n",
                       dam_joint::kCommonHelp);
            return 0;
        }
    std::vector<int> rows{0, 1, 2, 3, 4};
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--configs" && i + 1 < argc) {
            rows.clear();
            rows = dam_cli::Parser("diffautoml-ablation", [] {}).read_list<int>("--configs", argv[++i]);
        } else {
            rest.push_back(argv[i]);
        }
    }
    auto base = dam_joint::parse(static_cast<int>(rest.size()), rest.data(), "diffautoml-ablation");
    DAM_CHECK(base.extra.empty(), value_error, "diffautoml-ablation: unknown option '{}' (see --help)", base.extra.front());
    DAM_CHECK(base.device == "cpu", value_error,
              "diffautoml-ablation: runs on the CPU only (--device cuda is a diffautoml-search option)");
    // Each row sets its own DA, NAS and HPO policy: only the shuffle space is compiled with all of them.
    DAM_CHECK(base.space == "shuffle", value_error,
              "diffautoml-ablation: the rows are compiled for the shuffle space only; --space {} runs in "
              "diffautoml-search (with the default policies)",
              base.space);
    if (base.joint.out_dir == "diffautoml_out") base.joint.out_dir = "ablation_out";
    // Equal budget means equal epochs here (10 unless given); a time limit only if asked for.
    bool epochs_given = false, minutes_given = false;
    for (const char* arg : rest) {
        DAM_CHECK(std::string(arg) != "--resume", value_error,
                  "diffautoml-ablation: --resume is not needed: run the same command again and it reads back the "
                  "finished runs and resumes the one that was stopped");
        epochs_given |= std::string(arg) == "--epochs";
        minutes_given |= std::string(arg) == "--minutes";
    }
    if (!epochs_given) base.joint.epochs = 10;
    if (!minutes_given) base.joint.minutes = 0;
    set_num_threads(base.threads);
    auto [train, test] = dam_joint::load(base);
    dam_joint::install_stop_handlers();
    std::filesystem::create_directories(base.joint.out_dir);
    // A choice ablation (--no-test) compares held-out validation accuracy; a final one test accuracy.
    const std::string metric = base.no_test ? "val_accuracy" : "test_accuracy";
    std::string table = fmt::format(
        "| configuration | {} (mean +- std over {} seeds) | search cost (CPU minutes, mean) | runs |\n"
        "|---|---:|---:|---|\n",
        base.no_test ? "validation accuracy (held out)" : "test accuracy", base.seeds.size());
    for (int row : rows)
        DAM_CHECK(row >= 0 && row < 5, value_error, "diffautoml-ablation: --configs takes rows 0..4, got {}", row);
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
            a.joint.seed = seed;
            a.joint.out_dir = fmt::format("{}/{}_seed{}", base.joint.out_dir, row, seed);
            const auto [accuracy, minutes] = dam_joint::dispatch(
                a, [&]<template <class...> class DA, class NAS, template <class...> class HPO>() {
                    auto js = dam_joint::make_search<DA, NAS, HPO>(a, train, test);
                    if (const nlohmann::json done = js->finished_result(); !done.is_null()) {
                        fmt::print("finished earlier: {}\n", a.joint.out_dir);
                        return std::pair{done[metric].get<double>(), done["search_cost_cpu_minutes"].get<double>()};
                    }
                    if (js->resume()) fmt::print("resumed {} at step {}\n", a.joint.out_dir, js->step());
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
    write_text_atomic(base.joint.out_dir + "/ablation.md", table);
    return 0;
} catch (const diffautoml::search::interrupted& e) {
    fmt::print(stderr, "diffautoml-ablation: {}; run the same command again to resume\n", e.what());
    return 130;
} catch (const std::exception& e) {
    fmt::print(stderr, "diffautoml-ablation: error: {}\n", e.what());
    return 1;
}
