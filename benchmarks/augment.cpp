// Cost of data augmentation on a batch of Fashion-MNIST images (default 128 x 1 x 28 x 28), per
// op and per policy, against one training step of the reference network `small` on the same
// batch (the goal: a policy's augmentation costs <= 10% of a step). Every op reads and
// writes the batch once: bytes = 2 * N * C * H * W * 4. PyTorch's affine_grid + grid_sample
// rotation of the same batch is the peer for the geometric ops, measured in the same run.
//
// Output: one line per op (`op=NAME us=... GB_per_s=...`), one per policy
// (`policy=NAME us=... step_fraction=...`), then `step_us=...` and the peer line.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "../examples/cli.hpp"
#include "peer.hpp"

using namespace diffautoml;

namespace {

struct Args {
    int batch = 128, threads = 2, reps = 30;
    std::string data = DAM_FASHION_DIR;
    bool run_peer = true;
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("augment", "augment: the 17 augmentation ops, forward and backward, against PyTorch's from the same run.");
    cli.group("options")
        .option("--batch", a.batch, "images per batch")
        .option("--threads", a.threads, "CPU threads (both sides)")
        .option("--reps", a.reps, "timed repetitions (the best is reported)")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .flag("--no-peer", a.run_peer, "do not run the PyTorch peer", false);
    cli.parse(argc, argv);
    return a;
}

/// Best of `reps` timings of f, in microseconds, after 3 warm-up calls.
template <class F>
double best_us(int reps, F&& f) {
    for (int i = 0; i < 3; ++i) f();
    double best = 1e300;
    for (int i = 0; i < reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset train = data::load_fashion_mnist(a.data, true);
    data::BatchLoader loader(train, a.batch, false, 0);
    const data::Batch b = loader.next();
    const da::PixelSpace ps{data::fashion_mnist_mean, data::fashion_mnist_std};
    const Tensor<float> pixels = da::to_pixels(b.images, ps);
    const std::int64_t N = b.images.dim(0);
    const double bytes = 2.0 * static_cast<double>(b.images.numel()) * sizeof(float);

    Generator gen(0);
    for (da::Op op : da::all_ops()) {
        std::vector<da::OpDraw> draws;
        for (std::int64_t i = 0; i < N; ++i) draws.push_back(da::random_draw(op, gen.next_stream(), 0));
        const std::vector<double> m(static_cast<std::size_t>(N), 0.5);
        const double us = best_us(a.reps, [&] { da::augment_images<float>(pixels, draws, m, 1); });
        fmt::print("op={} us={:.1f} GB_per_s={:.2f}\n", da::op_name(op), us, bytes / us * 1e-3);
    }

    // One training step of `small` on this batch (forward, backward, SGD).
    auto net = nn::small_net<float>(gen);
    optim::SGD<float> opt({{net->parameters(), 0.05, 5e-4, "all"}}, {0.9, true, 0.0});
    const double step_us = best_us(std::max(5, a.reps / 3), [&] {
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float>(b.images)), b.labels);
        loss.backward();
        opt.step();
    });

    da::DaContext ctx{&gen, 0, 1};
    const Tensor<float> losses = Tensor<float>::full(Shape{N}, 0.5f);
    auto report = [&](std::string_view name, double us) {
        fmt::print("policy={} us={:.1f} step_fraction={:.4f}\n", name, us, us / step_us);
    };
    da::PairPolicyDA<float> pair(da::PairPolicyOptions{.pixels = ps});
    report("pair_policy (augment + update)", best_us(a.reps, [&] {
               pair.augment(b.images, ctx);
               pair.update(losses, ctx);
           }));
    // The adversarial objective: its gradients come from the training backward pass timed here
    // (the validation objective adds the unrolled passes of a whole network, a trainer's cost).
    da::DADA<float> dada(da::DADAOptions{.objective = da::DADAOptions::Objective::adversarial, .pixels = ps});
    const Tensor<float> seed = Tensor<float>::full(b.images.shape(), 1e-3f);
    report("dada adversarial (augment + backward + update)", best_us(a.reps, [&] {
               auto y = dada.augment(b.images, ctx);
               y.backward(seed);
               dada.update(losses, ctx);
           }));
    da::RandAugment<float> ra(da::RandAugmentOptions{.pixels = ps});
    report("randaugment(2, 9)", best_us(a.reps, [&] { ra.augment(b.images, ctx); }));
    da::StandardAugment<float> sa(da::StandardAugmentOptions{.pixels = ps});
    report("standard", best_us(a.reps, [&] { sa.augment(b.images, ctx); }));
    fmt::print("step_us={:.1f} (small, batch {}, forward + backward + SGD)\n", step_us, N);

    std::vector<da::OpDraw> rot;
    for (std::int64_t i = 0; i < N; ++i) rot.push_back(da::random_draw(da::Op::rotate, gen.next_stream(), 0));
    const std::vector<double> half(static_cast<std::size_t>(N), 0.5);
    const double ours = best_us(a.reps, [&] { da::augment_images<float>(pixels, rot, half, 1); });
    std::optional<double> peer;
    if (a.run_peer)
        peer = dam_bench::run_and_read(fmt::format("/usr/bin/python3 '{}' {} {} 28 28", DAM_BENCH_DIR "/torch_augment.py",
                                                   a.threads, N),
                                       "rotate_us");
    fmt::print("rotate ours_us={:.1f} pytorch_grid_sample_us={} ratio={}\n", ours, dam_bench::fmt_opt(peer),
               peer ? fmt::format("{:.2f}", *peer / ours) : "nan");
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "augment: {}\n", e.what());
    return 1;
}
