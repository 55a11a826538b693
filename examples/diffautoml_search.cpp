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
#ifdef DAM_WITH_MPI
#include <diffautoml/dist/mpi.hpp>
#endif
#ifdef DAM_WITH_NCCL
#include <diffautoml/dist/nccl.hpp>
#endif

using namespace diffautoml;

int main(int argc, char** argv) try {
    auto a = dam_joint::main_job_defaults();
    dam_cli::Cli cli("diffautoml-search",
                     "diffautoml-search: the joint search of the augmentation policy, the architecture and the learning "
                     "rate and weight decay in one training run, on Fashion-MNIST or any IDX dataset.");
    dam_joint::declare(cli, a);
    cli.group("output")
        .option("--out", a.run.out_dir, "output folder: log.jsonl, model.bin, architecture.json, result.json, report.html")
        .flag("--resume", a.resume, "continue the interrupted run in --out from its checkpoint")
        .one_of("--device", a.device, {"cpu", "cuda"}, "cuda trains on the GPU (default policies, shuffle space)")
        .refuse("--seeds", "--seeds is diffautoml-ablation's option; one run takes one --seed S")
        .one_of("--dist", a.dist, {"local", "mpi", "nccl"},
                "data-parallel ranks: local (one process), mpi (CPU ranks: mpirun -np N diffautoml-search --dist mpi "
                "--threads T) or nccl (one rank a GPU, with --device cuda: under mpirun, or with RANK, WORLD_SIZE, "
                "LOCAL_RANK and DAM_NCCL_ID_FILE set); docs/distributed.md")
        .option("--dist-timeout", a.dist_timeout,
                "--dist mpi: end the job when one collective has waited this many seconds for the other ranks (0: never)")
        .option("--micro-batches", a.run.micro_batches,
                "each rank's share of a batch runs forward and backward in this many pieces, the gradients "
                "accumulating: one rank with R micro-batches takes the steps of R ranks")
        .flag("--sync-bn", a.run.sync_batch_norm,
              "with several ranks: batch norm normalises over the whole global batch (two small allreduces a layer), "
              "so that R ranks take the steps of one rank with the whole batch")
        .refuse("--configs", "--configs is diffautoml-ablation's option");
    cli.parse(argc, argv);
    dam_joint::check(a, cli);
    DAM_CHECK(a.device == "cpu" || (a.space == "shuffle" && (a.da == "pair" || a.da == "none") && a.nas == "dsnas" &&
                                    a.hpo == "hypergrad"),
              value_error, "--device cuda is compiled for the shuffle space with --da pair|none, --nas dsnas and --hpo hypergrad");
    std::shared_ptr<void> bootstrap;  // the MPI of an NCCL job, kept to the end
    if (a.dist == "mpi") {
#ifdef DAM_WITH_MPI
        auto mpi = std::make_shared<dist::Mpi>(dist::MpiOptions{.timeout_seconds = a.dist_timeout});
        a.run.comm = dist::Group(mpi);
#else
        throw value_error("--dist mpi, but this binary was built without MPI (apt-get install libopenmpi-dev "
                          "openmpi-bin, then configure and build again)");
#endif
    } else if (a.dist == "nccl") {
#ifdef DAM_WITH_NCCL
        DAM_CHECK(a.device == "cuda", value_error,
                  "--dist nccl runs one rank a GPU: add --device cuda (for CPU ranks use --dist mpi)");
        const dist::NcclOptions no{.timeout_seconds = a.dist_timeout};
        std::shared_ptr<dist::Nccl> nccl;
#ifdef DAM_WITH_MPI
        if (std::getenv("OMPI_COMM_WORLD_SIZE")) {  // under mpirun: NCCL's id goes over MPI
            auto mpi = std::make_shared<dist::Mpi>(dist::MpiOptions{.timeout_seconds = a.dist_timeout});
            nccl = std::make_shared<dist::Nccl>(*mpi, no);
            bootstrap = mpi;
        }
#endif
        if (!nccl) nccl = std::make_shared<dist::Nccl>(no);
        a.run.comm = dist::Group(nccl);
#else
        throw value_error("--dist nccl, but this binary was built without NCCL (it ships with the CUDA toolkit; "
                          "configure with nvcc present)");
#endif
    }
    a.run.progress = a.run.progress && a.run.comm.rank() == 0;
    set_num_threads(a.threads);
    auto [train, test] = dam_joint::load(a);
    dam_joint::install_stop_handlers();
    auto job = [&]<template <class...> class DA, class NAS, template <class...> class HPO>() {
        using Space = typename NAS::space_type;
        auto jsp = dam_joint::make_search<DA, NAS, HPO>(a, train, test);
        auto& js = *jsp;
        const bool lead = js.rank() == 0;  // with several ranks, rank 0 alone prints
        if (lead)
            fmt::print("diffautoml-search: {} train / {} validation / {}, space {}, DA {}, NAS {}, HPO {}, "
                       "{} epochs{}, batch {}, seed {}, {} threads, device {}, output in {}/\n",
                       train.size() - js.validation_size(), js.validation_size(),
                       a.no_test ? std::string("no test images (a choice run)") : fmt::format("{} test images", test.size()), Space::name, DA<float>::policy_name,
                       NAS::policy_name, HPO<float>::policy_name, a.run.epochs,
                       a.run.minutes > 0 ? fmt::format(" (at most {} minutes)", a.run.minutes) : "", a.run.batch,
                       a.run.seed, a.threads, NAS::device_type::name, a.run.out_dir);
        if (lead && a.run.comm.size() > 1)
            fmt::print("data-parallel: {} ranks ({}), {} images a rank a step in {} micro-batch(es)\n", a.run.comm.size(),
                       a.run.comm.backend(), a.run.batch / a.run.comm.size(), a.run.micro_batches);
        if (a.resume) {
            DAM_CHECK(js.resume(), io_error,
                      "--resume: there is no checkpoint in {}/ (a finished run removes it)",
                      a.run.out_dir);
            if (lead) fmt::print("resumed from {} at step {} of {}\n", js.checkpoint_path(), js.step(), js.total_steps());
        } else if (std::filesystem::exists(js.checkpoint_path())) {
            throw value_error(fmt::format("{} holds an interrupted run; pass --resume to continue it, "
                                          "or choose another --out (or delete the checkpoint) to start over",
                                          js.checkpoint_path()));
        }
        try {
            const auto r = js.run();
            if (!lead) return 0;
            fmt::print("derived architecture: {}\n", fmt::join(r.architecture_names, ", "));
            fmt::print("hyperparameters: {}\n", r.hyperparameters.dump());
            fmt::print("wrote {0}/model.bin, {0}/architecture.json, {0}/result.json, {0}/log.jsonl, {0}/report.html\n",
                       a.run.out_dir);
            fmt::print("wall_seconds={:.0f}\n", r.wall_seconds);
            if (std::isfinite(r.val_accuracy)) fmt::print("val_accuracy={:.4f}\n", r.val_accuracy);
            if (!a.no_test) fmt::print("test_accuracy={:.4f}\n", r.test_accuracy);
            return 0;
        } catch (const search::interrupted& e) {
            if (lead) fmt::print(stderr, "diffautoml-search: {}\n", e.what());
            return 130;
        } catch (const std::exception& e) {
            // A rank that fails must not leave the others waiting in a collective: end the job.
            if (a.run.comm.size() > 1) a.run.comm.abort(1, fmt::format("step {}: {}", js.step(), e.what()));
            throw;
        }
    };
    if (a.device == "cuda") {
#ifdef DAM_WITH_CUDA
        DAM_CHECK(cuda_device_count() > 0, value_error,
                  "--device cuda, but no CUDA device is visible (cudaGetDeviceCount reports none); "
                  "run on a machine with an NVIDIA GPU or drop --device");
        using GpuNas = nas::DSNAS<nas::ShuffleSpace, float, cuda>;
        if (a.da == "none") return job.template operator()<da::NoAugment, GpuNas, hpo::HypergradLrWd>();
        return job.template operator()<da::PairPolicyDA, GpuNas, hpo::HypergradLrWd>();
#else
        throw value_error("--device cuda, but this binary was built without CUDA (configure with "
                          "nvcc and cuDNN present, or -DDAM_CUDA=ON)");
#endif
    }
    return dam_joint::dispatch(a, job);
} catch (const std::exception& e) {
    fmt::print(stderr, "diffautoml-search: error: {}\n", e.what());
    return 1;
}
