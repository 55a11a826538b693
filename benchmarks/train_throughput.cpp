// Training throughput (images/s) of the reference networks `small` and `mbv2`, and of `shuffle`, a
// derived network of the main job's ShuffleNetV2 space (`--arch`, by default an architecture DSNAS
// found on Fashion-MNIST), against the PyTorch peer (benchmarks/torch_ref.py;
// benchmarks/torch_nets.py for `shuffle`), measured in the same run: batch 128, SGD (Nesterov
// momentum 0.9, weight decay 5e-4), random batches of Fashion-MNIST, 5 warm-up steps, then
// `--steps` timed steps.
//
// Output, one line per network:
//   net=small ours_img_per_s=... pytorch_img_per_s=... ratio=...
#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>

#include "../examples/cli.hpp"
#include "peer.hpp"

using namespace diffautoml;

namespace {

struct Args {
    int steps = 30, batch = 128, threads = 2;
    std::vector<std::string> nets{"small", "mbv2", "shuffle"};
    std::vector<std::int64_t> arch{3, 0, 0, 2, 2, 0, 2, 2};  ///< xception, k3, k3, k7, k7, k3, k7, k7 (seed 0)
    std::string peer = DAM_PEERS_DIR "/torch_ref.py";
    std::string data = DAM_FASHION_DIR;
    bool run_peer = true;
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("train_throughput", "train_throughput: training steps per second of the reference networks against PyTorch.");
    cli.group("options")
        .option("--steps", a.steps, "timed steps")
        .option("--batch", a.batch, "training batch size")
        .option("--threads", a.threads, "CPU threads (both sides)")
        .custom("--net", [&a](const std::string& v) { a.nets = {v}; }, "one network instead of all: small | mbv2 | shuffle",
                "all three", "NET")
        .list("--arch", a.arch, "shuffle: the 8 choices in 0..3 (k3, k5, k7, xception) of the derived network")
        .option("--peer", a.peer, "the PyTorch peer script")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .flag("--no-peer", a.run_peer, "do not run the PyTorch peer", false);
    cli.parse(argc, argv);
    for (const auto& n : a.nets)
        DAM_CHECK(n == "small" || n == "mbv2" || n == "shuffle", value_error, "--net expects small, mbv2 or shuffle, got '{}'", n);
    DAM_CHECK(a.arch.size() == 8 && std::all_of(a.arch.begin(), a.arch.end(), [](auto c) { return c >= 0 && c <= 3; }),
              value_error, "--arch needs 8 comma-separated choices in 0..3 (k3, k5, k7, xception)");
    return a;
}

double measure(const std::string& net_name, const data::Dataset& train, const Args& a) {
    Generator gen(0);
    std::shared_ptr<nn::Module<float>> net;
    if (net_name == "small") net = nn::small_net<float>(gen);
    else if (net_name == "mbv2") net = nn::mbv2_net<float>(gen);
    else net = nas::ShuffleSpace::build<float>(nas::ShuffleSpace::default_options(), gen, a.arch);
    optim::SGD<float> opt({{net->parameters(), 0.05, 5e-4, "all"}}, {0.9, true, 0.0});
    Generator batch_gen(1);
    auto step = [&]() {
        const PhiloxStream s = batch_gen.next_stream();
        Tensor<float> x(Shape{a.batch, 1, 28, 28});
        Tensor<std::int32_t> y(Shape{a.batch});
        for (int k = 0; k < a.batch; ++k) {
            const auto i = static_cast<std::int64_t>(s.word(static_cast<std::uint64_t>(k)) % static_cast<std::uint32_t>(train.size()));
            std::copy(train.images.data() + i * 784, train.images.data() + (i + 1) * 784, x.data() + k * 784);
            y[k] = train.labels[static_cast<std::size_t>(i)];
        }
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float>(x)), y);
        loss.backward();
        opt.step();
        return loss.value().item();
    };
    for (int i = 0; i < 5; ++i) step();
    const auto before = default_allocator<cpu>().stats();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < a.steps; ++i) step();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto after = default_allocator<cpu>().stats();
    fmt::print(stderr, "net={} params={} steps={} seconds={:.2f} new_system_allocations={} peak_MiB={:.1f}\n", net_name,
               net->parameter_count(), a.steps, dt, after.system_allocations - before.system_allocations,
               after.peak_bytes_in_use / 1048576.0);
    return a.steps * a.batch / dt;
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset train = data::load_fashion_mnist(a.data, true);
    for (const auto& net : a.nets) {
        DAM_CHECK(net == "small" || net == "mbv2" || net == "shuffle", value_error,
                  "train_throughput: unknown net '{}' (small, mbv2 or shuffle)", net);
        const double ours = measure(net, train, a);
        std::optional<double> peer;
        if (a.run_peer) {
            std::string arch;
            for (auto c : a.arch) arch += fmt::format("{}{}", arch.empty() ? "" : ",", c);
            const std::string cmd =
                net == "shuffle"
                    ? fmt::format("/usr/bin/python3 '{}/torch_nets.py' --arch {} --threads {} --steps {} --batch {}",
                                  DAM_BENCH_DIR, arch, a.threads, a.steps, a.batch)
                    : fmt::format("/usr/bin/python3 '{}' --net {} --threads {} --steps {} --batch {}", a.peer, net,
                                  a.threads, a.steps, a.batch);
            peer = dam_bench::run_and_read(cmd, "train_img_per_s");
        }
        fmt::print("net={} ours_img_per_s={:.1f} pytorch_img_per_s={} ratio={}\n", net, ours, dam_bench::fmt_opt(peer),
                   peer ? fmt::format("{:.2f}", ours / *peer) : "nan");
    }
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "train_throughput: {}\n", e.what());
    return 1;
}
