// Cost of data augmentation on a batch of Fashion-MNIST images (default 128 x 1 x 28 x 28), on
// Google Benchmark (gbench.hpp: manual time, 5 interleaved repetitions, median and range):
//   op:NAME/ours       one op on the whole batch, magnitude 0.5 (GB/s: every op reads and writes
//                      the batch once, 2 * N * C * H * W * 4 bytes)
//   policy:NAME/ours   a DA policy's augmentation (and update) of the batch
//   step:small/ours    one training step of the reference network `small` on the same batch
//                      (forward, backward, SGD): the yardstick of the goal that a policy costs at
//                      most 10% of a step
//   op:rotate/pytorch  PyTorch's affine_grid + grid_sample rotation of the same batch (the
//                      torch_ops.py server), interleaved with ours
// The summary after the table gives each case's median [min, max]; for the policies it also gives
// the share of a step (`step_fraction`).
// Options: --batch N (128) --data DIR, and gbench.hpp's (--threads, --no-peer, --benchmark_*).
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "gbench.hpp"

using namespace diffautoml;
using dam_bench::Case;

int main(int argc, char** argv) try {
    const auto o = dam_bench::parse("augment", argc, argv, {{"--batch", "128"}, {"--data", DAM_FASHION_DIR}});
    set_num_threads(o.threads);
    fmt::print(o.text, "ours: diffautoml, {} threads, built with -march={}\n", o.threads, DAM_BUILD_MARCH);
    const std::int64_t batch = std::stoll(o.own.at("--batch"));
    DAM_CHECK(batch >= 1, value_error, "augment: --batch must be >= 1, got {}", batch);
    const data::Dataset train = data::load_fashion_mnist(o.own.at("--data"), true);
    data::BatchLoader loader(train, batch, false, 0);
    const data::Batch b = loader.next();
    const da::PixelSpace ps{data::fashion_mnist_mean, data::fashion_mnist_std};
    const Tensor<float> pixels = da::to_pixels(b.images, ps);
    const std::int64_t N = b.images.dim(0), H = b.images.dim(2), W = b.images.dim(3);
    const double bytes = 2.0 * static_cast<double>(b.images.numel()) * sizeof(float);
    const auto nothing = [] {};

    Generator gen(0);
    std::vector<Case> cases;
    const std::vector<double> half(static_cast<std::size_t>(N), 0.5);
    std::vector<std::vector<da::OpDraw>> draws;  // one set per op, alive while the benchmarks run
    draws.reserve(da::all_ops().size());
    for (da::Op op : da::all_ops()) {
        auto& d = draws.emplace_back();
        for (std::int64_t i = 0; i < N; ++i) d.push_back(da::random_draw(op, gen.next_stream(), 0));
        cases.push_back({fmt::format("op:{}", da::op_name(op)),
                         op == da::Op::rotate ? fmt::format("rotate {} {} {} fwd", N, H, W) : "", bytes, "GB/s", nothing,
                         [&pixels, &d, &half] { da::augment_images<float>(pixels, d, half, 1); }});
    }

    auto net = nn::small_net<float>(gen);
    optim::SGD<float> opt({{net->parameters(), 0.05, 5e-4, "all"}}, {0.9, true, 0.0});
    cases.push_back({"step:small", "", 0, "", nothing, [&] {
                         opt.zero_grad();
                         auto loss = ops::cross_entropy(net->forward(Var<float>(b.images)), b.labels);
                         loss.backward();
                         opt.step();
                     }});

    da::DaContext ctx{&gen, 0, 1};
    const Tensor<float> losses = Tensor<float>::full(Shape{N}, 0.5f);
    da::PairPolicyDA<float> pair(da::PairPolicyOptions{.pixels = ps});
    cases.push_back({"policy:pair_policy", "", 0, "", nothing, [&] {
                         pair.augment(b.images, ctx);
                         pair.update(losses, ctx);
                     }});
    // The adversarial objective: its gradients come from the training backward pass timed here
    // (the validation objective adds the unrolled passes of a whole network, a trainer's cost).
    da::DADA<float> dada(da::DADAOptions{.objective = da::DADAOptions::Objective::adversarial, .pixels = ps});
    const Tensor<float> seed = Tensor<float>::full(b.images.shape(), 1e-3f);
    cases.push_back({"policy:dada_adversarial", "", 0, "", nothing, [&] {
                         auto y = dada.augment(b.images, ctx);
                         y.backward(seed);
                         dada.update(losses, ctx);
                     }});
    da::RandAugment<float> ra(da::RandAugmentOptions{.pixels = ps});
    cases.push_back({"policy:randaugment_2_9", "", 0, "", nothing, [&] { ra.augment(b.images, ctx); }});
    da::StandardAugment<float> sa(da::StandardAugmentOptions{.pixels = ps});
    cases.push_back({"policy:standard", "", 0, "", nothing, [&] { sa.augment(b.images, ctx); }});

    const auto peer = dam_bench::start_peer(o);
    const auto medians = dam_bench::run(o, cases, peer.get());
    const auto step = medians.find("step:small/ours");
    if (step != medians.end())
        for (const auto& [name, us] : medians)
            if (name.starts_with("policy:") && name.ends_with("/ours"))
                fmt::print(o.text, "{} step_fraction={:.4f} (of a training step of small, batch {})\n",
                           name.substr(0, name.size() - 5), us / step->second, N);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "augment: {}\n", e.what());
    return 1;
}
