// Training throughput (images/s) of the reference networks `small` and `mbv2`, and of `shuffle`, a
// derived network of the main job's ShuffleNetV2 space (`--arch`, by default an architecture DSNAS
// found on Fashion-MNIST), against the PyTorch peer measured in the same run: batch 128, SGD
// (Nesterov momentum 0.9, weight decay 5e-4), random batches of Fashion-MNIST, 5 untimed steps,
// then `--reps` timed chunks of `--steps` steps on each side, interleaved (ours, peer, ours,
// peer, ...), so that both see the same machine state. The peer (benchmarks/torch_train.py, the
// networks of torch_ref.py and torch_nets.py) is one long-lived process using OpenBLAS
// (Debian's libopenblas0-pthread, selected for its process only) rather than the reference BLAS
// Debian's PyTorch loads by default; its first line says which BLAS and oneDNN ISA it used.
//
// Output: the peer's line, then one line per network with the median of the chunks and their
// range on each side, and the ratio of the medians:
//   net=small ours_img_per_s=... [min-max] pytorch_img_per_s=... [min-max] ratio=...
#include <algorithm>
#include <chrono>
#include <memory>
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
    int reps = 5;
    bool profile = false;
    std::string data = DAM_FASHION_DIR;
    bool run_peer = true;
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("train_throughput", "train_throughput: training steps per second of the reference networks against PyTorch.");
    cli.group("options")
        .option("--steps", a.steps, "steps in each timed chunk")
        .option("--batch", a.batch, "training batch size")
        .option("--threads", a.threads, "CPU threads (both sides)")
        .custom("--net", [&a](const std::string& v) { a.nets = {v}; }, "one network instead of all: small | mbv2 | shuffle",
                "all three", "NET")
        .list("--arch", a.arch, "shuffle: the 8 choices in 0..3 (k3, k5, k7, xception) of the derived network")
        .option("--reps", a.reps, "timed chunks on each side, interleaved (the median is reported)")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .flag("--no-peer", a.run_peer, "do not run the PyTorch peer", false)
        .flag("--profile", a.profile, "after the timing, print where our step's time goes, op by op (forward and backward)");
    cli.parse(argc, argv);
    DAM_CHECK(a.steps >= 1 && a.reps >= 1 && a.batch >= 1 && a.threads >= 1, value_error,
              "--steps, --reps, --batch and --threads must be >= 1");
    for (const auto& n : a.nets)
        DAM_CHECK(n == "small" || n == "mbv2" || n == "shuffle", value_error, "--net expects small, mbv2 or shuffle, got '{}'", n);
    DAM_CHECK(a.arch.size() == 8 && std::all_of(a.arch.begin(), a.arch.end(), [](auto c) { return c >= 0 && c <= 3; }),
              value_error, "--arch needs 8 comma-separated choices in 0..3 (k3, k5, k7, xception)");
    return a;
}

/// One of our networks with its optimizer and data, timed a chunk of steps at a time.
class Trainer {
public:
    Trainer(const std::string& net_name, const data::Dataset& train, const Args& a) : train_(train), batch_(a.batch) {
        Generator gen(0);
        if (net_name == "small") net_ = nn::small_net<float>(gen);
        else if (net_name == "mbv2") net_ = nn::mbv2_net<float>(gen);
        else net_ = nas::ShuffleSpace::build<float>(nas::ShuffleSpace::default_options(), gen, a.arch);
        opt_ = std::make_unique<optim::SGD<float>>(std::vector<optim::ParamGroup<float>>{{net_->parameters(), 0.05, 5e-4, "all"}},
                                                    optim::SGDOptions{0.9, true, 0.0});
        for (int i = 0; i < 5; ++i) step();
    }
    std::int64_t parameters() const { return net_->parameter_count(); }

    /// Images per second over `steps` steps.
    double time(int steps) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < steps; ++i) step();
        return steps * batch_ / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    /// Runs `steps` steps under an op profiler and returns it (data and optimizer marked).
    OpProfiler profile(int steps) {
        OpProfiler p;
        ProfileScope scope(p);
        for (int i = 0; i < steps; ++i) step(&p);
        return p;
    }

private:
    void step(OpProfiler* p = nullptr) {
        if (p) p->restart();
        const PhiloxStream s = batch_gen_.next_stream();
        Tensor<float> x(Shape{batch_, 1, 28, 28});
        Tensor<std::int32_t> y(Shape{batch_});
        for (int k = 0; k < batch_; ++k) {
            const auto i = static_cast<std::int64_t>(s.word(static_cast<std::uint64_t>(k)) % static_cast<std::uint32_t>(train_.size()));
            std::copy(train_.images.data() + i * 784, train_.images.data() + (i + 1) * 784, x.data() + k * 784);
            y[k] = train_.labels[static_cast<std::size_t>(i)];
        }
        if (p) p->mark("(data: batch copy)");
        opt_->zero_grad();
        if (p) p->mark("(optimizer: zero_grad)");
        auto loss = ops::cross_entropy(net_->forward(Var<float>(x)), y);
        loss.backward();
        if (p) p->restart();
        opt_->step();
        if (p) p->mark("(optimizer: SGD step)");
    }

    const data::Dataset& train_;
    int batch_;
    std::shared_ptr<nn::Module<float>> net_;
    std::unique_ptr<optim::SGD<float>> opt_;
    Generator batch_gen_{1};
};

/// One line per op, largest first, until 99% of the step is listed.
void print_profile(const std::string& net, const OpProfiler& p, int steps) {
    const double total = p.total_seconds();
    fmt::print("profile net={} step_ms={:.2f} (over {} steps; an op's forward time runs from the previous op's result to its own)\n",
               net, 1e3 * total / steps, steps);
    double listed = 0;
    for (const auto& [op, e] : p.sorted()) {
        fmt::print("profile net={} op={} forward_ms={:.3f} backward_ms={:.3f} share={:.1f}% calls_per_step={}\n", net, op,
                   1e3 * e.forward_seconds / steps, 1e3 * e.backward_seconds / steps, 100 * e.total() / total,
                   std::max(e.forward_calls, e.backward_calls) / steps);
        listed += e.total();
        if (listed > 0.99 * total) break;
    }
}

struct Summary {
    double median, lo, hi;
};
Summary summarize(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset train = data::load_fashion_mnist(a.data, true);
    std::unique_ptr<dam_bench::PeerServer> peer;
    if (a.run_peer) {
        peer = std::make_unique<dam_bench::PeerServer>(fmt::format(
            "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS={0} OMP_NUM_THREADS={0} "
            "/usr/bin/python3 '{1}/torch_train.py' --serve {0} {2}",
            a.threads, DAM_BENCH_DIR, a.batch));
        fmt::print("{}\n", peer->hello());
    }
    fmt::print("ours threads={} batch={} march={} gemm_vectors={} steps_per_chunk={} chunks={}\n", a.threads, a.batch,
               DAM_BUILD_MARCH, backend_cpu::simd::wide_vectors() ? "avx512" : "avx2", a.steps, a.reps);
    std::fflush(stdout);
    for (const auto& net : a.nets) {
        Trainer ours(net, train, a);
        if (peer) {
            std::string arch;
            for (auto c : a.arch) arch += fmt::format("{}{}", arch.empty() ? "" : ",", c);
            const auto params = peer->request(net == "shuffle" ? "net shuffle " + arch : "net " + net, "params");
            DAM_CHECK(static_cast<std::int64_t>(params) == ours.parameters(), value_error,
                      "net {}: the peer's network has {} parameters and ours {}: not the same network", net, params,
                      ours.parameters());
        }
        std::vector<double> mine, theirs;
        for (int r = 0; r < a.reps; ++r) {
            mine.push_back(ours.time(a.steps));
            if (peer) theirs.push_back(peer->request(fmt::format("time {}", a.steps), "train_img_per_s"));
        }
        const Summary m = summarize(mine);
        if (peer) {
            const Summary t = summarize(theirs);
            fmt::print("net={} ours_img_per_s={:.1f} [{:.1f}-{:.1f}] pytorch_img_per_s={:.1f} [{:.1f}-{:.1f}] ratio={:.2f}\n", net,
                       m.median, m.lo, m.hi, t.median, t.lo, t.hi, m.median / t.median);
        } else {
            fmt::print("net={} ours_img_per_s={:.1f} [{:.1f}-{:.1f}]\n", net, m.median, m.lo, m.hi);
        }
        if (a.profile) print_profile(net, ours.profile(a.steps), a.steps);
        std::fflush(stdout);
    }
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "train_throughput: error: {}\n", e.what());
    return 1;
}
