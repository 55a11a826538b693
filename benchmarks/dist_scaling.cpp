// Weak scaling of the main job's search step over data-parallel ranks (docs/distributed.md), and a
// model of the same step on 8 and 64 GPUs. Run it under mpirun at each rank count, e.g.
//     mpirun -np 1 ./build/benchmarks/dist_scaling
//     mpirun -np 2 --bind-to core ./build/benchmarks/dist_scaling
// Each rank takes --batch images a step, so the global batch grows with the ranks. Each rank runs
// --threads threads (1 by default, so that 2 ranks fill this project's 2-core machines). The step
// is the main job's (diffautoml-search's defaults: pair policy, DSNAS on the ShuffleNetV2 space,
// one-step hypergradients every 16 steps), on Fashion-MNIST.
//
// Printed:
// - rank 0's step time (median, mean and range over --steps steps after --warmup), while the
//   architecture is still searched;
// - the images per second of the global batch;
// - the bytes each step reduces;
// - the model: the time of those reductions at a bus bandwidth (NCCL's busbw: a ring allreduce of
//   B bytes over n ranks takes B * 2 (n - 1) / n / busbw, plus a latency per collective), set
//   against a GPU's step time, for 8 GPUs in one node (NVLink) and 64 over 8 nodes (InfiniBand).
//   The bandwidths, latency and GPU step time are options; the defaults say where they come from.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <diffautoml/dist/mpi.hpp>

#include "../examples/joint_common.hpp"

using namespace diffautoml;

int main(int argc, char** argv) try {
    auto mpi = std::make_shared<dist::Mpi>(dist::MpiOptions{.timeout_seconds = 600});
    CLI::App app("dist_scaling: the main job's search step on R data-parallel ranks (weak scaling) and a model of 8 "
                 "and 64 GPUs");
    std::int64_t batch = 64, warmup = 10, steps = 30;
    int threads = 1;
    // NCCL allreduce bus bandwidth of 8 H100/H200 in one node (NVLink 4: nccl-tests report
    // 360-480 GB/s for large messages) and of 64 GPUs over 8 nodes with one 400 Gb/s NIC a GPU
    // (about 45 GB/s). A small message reaches a fraction of it; the latency term stands for that.
    double nvlink_busbw = 360, ib_busbw = 45, latency_us = 30;
    // One H200's search step: about 7,000 images/s at a batch of 128 today (docs/results.md, the
    // GPU issue), 25,000 the goal.
    double gpu_step_ms = 128.0 / 7000 * 1000, gpu_goal_step_ms = 128.0 / 25000 * 1000;
    app.add_option("--batch", batch, "images a rank a step");
    app.add_option("--warmup", warmup, "steps before the timed ones");
    app.add_option("--steps", steps, "timed steps");
    app.add_option("--threads", threads, "threads a rank");
    app.add_option("--nvlink-busbw", nvlink_busbw, "model: GB/s, 8 GPUs in one node");
    app.add_option("--ib-busbw", ib_busbw, "model: GB/s, 64 GPUs over 8 nodes");
    app.add_option("--latency-us", latency_us, "model: microseconds a collective, whatever its size");
    app.add_option("--gpu-step-ms", gpu_step_ms, "model: one GPU's search step of 128 images, ms (today's)");
    app.add_option("--gpu-goal-step-ms", gpu_goal_step_ms, "model: the same at the GPU issue's goal");
    CLI11_PARSE(app, argc, argv);
    set_num_threads(threads);
    const int R = mpi->size();
    const bool lead = mpi->rank() == 0;

    auto a = dam_joint::main_job_defaults();
    a.run.minutes = 0;
    a.run.epochs = 1;
    a.run.batch = batch * R;
    a.run.join_validation = 1;
    a.run.out_dir = "";
    a.run.progress = false;
    a.run.validation = 1024;
    // Twice the steps the benchmark takes, so that the timed ones are all search steps (the
    // architecture is fixed at half of the steps at the latest).
    a.train_subset = a.run.batch * 2 * (warmup + steps + 2) + 1024;
    a.no_test = true;
    a.run.comm = dist::Group(mpi);
    a.run.stop_after_steps = warmup;
    auto [train, test] = dam_joint::load(a);
    auto js = dam_joint::make_search<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>(a, train, test);
    // run() stops (search::interrupted) once the step count reaches stop_after_steps: the first
    // call takes the warm-up, each later one exactly one step.
    auto one_call = [&] {
        try {
            js->run();
        } catch (const search::interrupted&) {
        }
    };
    one_call();
    std::vector<double> ms;
    for (std::int64_t k = 0; k < steps; ++k) {
        const auto t0 = std::chrono::steady_clock::now();
        one_call();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::int64_t weights = 0;
    for (const auto& p : js->net().parameters()) weights += p.numel();
    const auto params = static_cast<std::int64_t>(js->net().parameters().size());
    std::int64_t gates = 0;
    for (const auto& row : js->nas_policy().probabilities()) gates += static_cast<std::int64_t>(row.size());
    const auto pairs = static_cast<std::int64_t>(js->da_policy().probabilities().size());
    // A step is one fused allreduce, in float: a flag a parameter, the weights' gradients, at most
    // every decision's gates, 4 values, the DA terms (pairs + 2) and, every hpo_every steps, the
    // previous hyper step's two hypergradients. (An epoch's end sums a pending hypergradient alone:
    // one more collective an epoch, left out.)
    const double fused = 4.0 * static_cast<double>(params + weights + gates + 4);
    const double da_bytes = 4.0 * static_cast<double>(pairs + 2);
    const double hyper = 4.0 * 2 / static_cast<double>(a.flags.hpo_every);
    const double collectives = 1;
    if (!lead) return 0;
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2], mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
    fmt::print("ranks={} threads_a_rank={} images_a_rank={} global_batch={} cpu={}\n", R, threads, batch, batch * R,
               search::host_json()["cpu"].get<std::string>());
    fmt::print("step_ms median={:.1f} mean={:.1f} range=[{:.1f}-{:.1f}] over {} steps after {}\n", median, mean,
               sorted.front(), sorted.back(), steps, warmup);
    fmt::print("images_per_s median={:.0f} (global batch / median step)\n",
               static_cast<double>(batch * R) / median * 1000);
    fmt::print("reduced_a_step fused_bytes={:.0f} ({} parameters, {} weights, {} gates) da_bytes={:.0f} "
               "hypergradient_bytes={:.1f} collectives={:.2f}\n",
               fused, params, weights, gates, da_bytes, hyper, collectives);
    const double bytes = fused + da_bytes + hyper;
    for (const auto& [n, busbw, where] : {std::tuple{8, nvlink_busbw, "one node, NVLink"},
                                          std::tuple{64, ib_busbw, "8 nodes, InfiniBand"}}) {
        const double comm_ms =
            bytes * 2.0 * (n - 1) / n / (busbw * 1e9) * 1e3 + collectives * latency_us * 1e-3;
        for (const auto& [label, step] : {std::pair{"today", gpu_step_ms}, std::pair{"goal", gpu_goal_step_ms}})
            fmt::print("model gpus={} ({}) busbw={:.0f}GB/s latency={:.0f}us: allreduce_ms={:.3f}, gpu step ({}) "
                       "{:.2f} ms, efficiency {:.2f} without overlap\n",
                       n, where, busbw, latency_us, comm_ms, label, step, step / (step + comm_ms));
    }
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "dist_scaling: error: {}\n", e.what());
    return 1;
}
