// diffautoml-search: the main job. One training run searches the augmentation policy
// (PairPolicyDA), the architecture (DSNAS on the ShuffleNetV2 space) and the learning rate and
// weight decay (one-step hypergradients) together on Fashion-MNIST (or any IDX dataset); the
// weights it trains are the final model. Leaves log.jsonl, model.bin + architecture.json,
// result.json and report.html in --out; checkpoints every few minutes and on Ctrl-C, and
// --resume continues from the last checkpoint. Last line: `test_accuracy=0.XXXX`.
#include "joint_common.hpp"

#ifdef DAM_WITH_CUDA
#include <diffautoml/cuda/backend.hpp>
#endif

using namespace diffautoml;

namespace {

void usage() {
    fmt::print("diffautoml-search: joint search of DA policy, architecture and hyperparameters.\n{}"
               "  output:  --out DIR (diffautoml_out)  --resume (continue from DIR/checkpoint.bin)  --help\n",
               dam_joint::kCommonHelp);
}

}  // namespace

int main(int argc, char** argv) try {
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            usage();
            return 0;
        }
    for (int i = 1; i < argc; ++i)
        DAM_CHECK(std::string_view(argv[i]) != "--seeds", value_error,
                  "diffautoml-search: --seeds is diffautoml-ablation's option; one run takes one --seed S");
    auto a = dam_joint::parse(argc, argv, "diffautoml-search");
    DAM_CHECK(a.extra.empty(), value_error, "diffautoml-search: unknown option '{}' (see --help)", a.extra.front());
    set_num_threads(a.threads);
    auto [train, test] = dam_joint::load(a);
    dam_joint::install_stop_handlers();
    auto job = [&]<template <class...> class DA, class NAS, template <class...> class HPO>() {
        using Space = typename NAS::space_type;
        auto jsp = dam_joint::make_search<DA, NAS, HPO>(a, train, test);
        auto& js = *jsp;
        fmt::print("diffautoml-search: {} train / {} validation / {}, space {}, DA {}, NAS {}, HPO {}, "
                   "{} epochs{}, batch {}, seed {}, {} threads, device {}, output in {}/\n",
                   train.size() - js.validation_size(), js.validation_size(),
                   a.no_test ? std::string("no test images (a choice run)") : fmt::format("{} test images", test.size()), Space::name, DA<float>::policy_name,
                   NAS::policy_name, HPO<float>::policy_name, a.joint.epochs,
                   a.joint.minutes > 0 ? fmt::format(" (at most {} minutes)", a.joint.minutes) : "", a.joint.batch,
                   a.joint.seed, a.threads, NAS::device_type::name, a.joint.out_dir);
        if (a.resume) {
            DAM_CHECK(js.resume(), io_error,
                      "diffautoml-search: --resume: there is no checkpoint in {}/ (a finished run removes it)",
                      a.joint.out_dir);
            fmt::print("resumed from {} at step {} of {}\n", js.checkpoint_path(), js.step(), js.total_steps());
        } else if (std::filesystem::exists(js.checkpoint_path())) {
            throw value_error(fmt::format("diffautoml-search: {} holds an interrupted run; pass --resume to continue it, "
                                          "or choose another --out (or delete the checkpoint) to start over",
                                          js.checkpoint_path()));
        }
        try {
            const auto r = js.run();
            fmt::print("derived architecture: {}\n", fmt::join(r.architecture_names, ", "));
            fmt::print("hyperparameters: {}\n", r.hyperparameters.dump());
            fmt::print("wrote {0}/model.bin, {0}/architecture.json, {0}/result.json, {0}/log.jsonl, {0}/report.html\n",
                       a.joint.out_dir);
            fmt::print("wall_seconds={:.0f}\n", r.wall_seconds);
            if (std::isfinite(r.val_accuracy)) fmt::print("val_accuracy={:.4f}\n", r.val_accuracy);
            if (!a.no_test) fmt::print("test_accuracy={:.4f}\n", r.test_accuracy);
            return 0;
        } catch (const search::interrupted& e) {
            fmt::print(stderr, "diffautoml-search: {}\n", e.what());
            return 130;
        }
    };
    if (a.device == "cuda") {
#ifdef DAM_WITH_CUDA
        DAM_CHECK(cuda_device_count() > 0, value_error,
                  "diffautoml-search: --device cuda, but no CUDA device is visible (cudaGetDeviceCount reports none); "
                  "run on a machine with an NVIDIA GPU or drop --device");
        using GpuNas = nas::DSNAS<nas::ShuffleSpace, float, cuda>;
        if (a.da == "none") return job.template operator()<da::NoAugment, GpuNas, hpo::HypergradLrWd>();
        return job.template operator()<da::PairPolicyDA, GpuNas, hpo::HypergradLrWd>();
#else
        throw value_error("diffautoml-search: --device cuda, but this binary was built without CUDA (configure with "
                          "nvcc and cuDNN present, or -DDAM_CUDA=ON)");
#endif
    }
    return dam_joint::dispatch(a, job);
} catch (const std::exception& e) {
    fmt::print(stderr, "diffautoml-search: error: {}\n", e.what());
    return 1;
}
