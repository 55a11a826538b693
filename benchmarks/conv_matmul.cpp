// Microbenchmarks of the dense kernels: conv2d and matmul, forward and backward, in GFLOP/s, with
// PyTorch's figure for the same shapes measured in the same run (benchmarks/torch_ops.py).
//
// Batch norm, which is memory-bound, is reported in GB/s instead (see below).
//
// FLOP counts: conv forward 2*N*K*OH*OW*(C/groups)*k*k; conv backward twice that (data + weight
// gradients); matmul forward 2*M*K*N, backward twice that. Times are the best of 10 repetitions.
#include <chrono>
#include <functional>

#include <diffautoml/diffautoml.hpp>

#include "peer.hpp"

using namespace diffautoml;

namespace {

double best_seconds(const std::function<void()>& f, int reps) {
    for (int i = 0; i < 2; ++i) f();
    double best = 1e30;
    for (int i = 0; i < reps; ++i) {
        const auto t = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
    }
    return best;
}

/// Best of `reps` timings of f, with `before` run untimed ahead of each.
double best_seconds(const std::function<void()>& f, const std::function<void()>& before, int reps) {
    double best = 1e30;
    for (int i = 0; i < reps + 2; ++i) {
        before();
        const auto t = std::chrono::steady_clock::now();
        f();
        if (i >= 2) best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
    }
    return best;
}

struct Report {
    std::string name;
    double ours;
    std::optional<double> peer;
};

void print(const Report& r, const char* unit = "gflops") {
    fmt::print("op={} ours_{}={:.1f} pytorch_{}={} ratio={}\n", r.name, unit, r.ours, unit, dam_bench::fmt_opt(r.peer),
               r.peer ? fmt::format("{:.2f}", r.ours / *r.peer) : "nan");
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) try {
    int threads = 2;
    bool run_peer = true;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
        else if (k == "--no-peer") run_peer = false;
        else throw value_error(fmt::format("conv_matmul: unknown option '{}' (options: --threads T, --no-peer)", k));
    }
    set_num_threads(threads);
    const std::string py = fmt::format("/usr/bin/python3 '{}/torch_ops.py' {}", DAM_BENCH_DIR, threads);
    Generator gen(0);

    // The convolutions of the reference networks at batch 128.
    struct ConvCase {
        const char* label;
        std::int64_t N, C, H, W, K, k, stride, pad, groups;
    };
    const ConvCase convs[] = {
        {"small.block1_3x3_32", 128, 32, 28, 28, 32, 3, 1, 1, 1},
        {"small.block2_3x3_64_s2", 128, 32, 28, 28, 64, 3, 2, 1, 1},
        {"small.block3_3x3_128", 128, 128, 7, 7, 128, 3, 1, 1, 1},
        {"mbv2.expand_1x1_24_72", 128, 24, 28, 28, 72, 1, 1, 0, 1},
        {"mbv2.depthwise_3x3_72", 128, 72, 28, 28, 72, 3, 1, 1, 72},
        // The depthwise convolutions DSNAS picks in the main job (ShuffleNetV2 space, k5/k7).
        {"shuffle.depthwise_7x7_24_14", 128, 24, 14, 14, 24, 7, 1, 3, 24},
        {"shuffle.depthwise_5x5_24_14", 128, 24, 14, 14, 24, 5, 1, 2, 24},
        {"shuffle.depthwise_7x7_48_s2", 128, 48, 14, 14, 48, 7, 2, 3, 48},
        {"shuffle.depthwise_7x7_48_7", 128, 48, 7, 7, 48, 7, 1, 3, 48},
        {"shuffle.depthwise_5x5_96_7", 128, 96, 7, 7, 96, 5, 1, 2, 96},
    };
    for (const auto& c : convs) {
        Tensor<float> xv(Shape{c.N, c.C, c.H, c.W}), wv(Shape{c.K, c.C / c.groups, c.k, c.k});
        normal_(xv, gen, 0, 1);
        normal_(wv, gen, 0, 1);
        const Conv2dOptions o{c.stride, c.pad, 1, c.groups};
        const auto g = ConvGeometry::make(xv.shape(), wv.shape(), o);
        const double flops = 2.0 * c.N * c.K * g.out_h * g.out_w * (c.C / c.groups) * c.k * c.k;
        Tensor<float> y(g.out_shape()), dx(xv.shape()), dw(wv.shape());
        normal_(y, gen, 0, 1);
        const double fwd = best_seconds([&] { conv2d_forward(cpu{}, xv.data(), wv.data(), static_cast<float*>(nullptr), y.data(), g); }, 10);
        const double bwd = best_seconds(
            [&] {
                conv2d_backward_data(cpu{}, y.data(), wv.data(), dx.data(), g);
                conv2d_backward_weight(cpu{}, xv.data(), y.data(), dw.data(), static_cast<float*>(nullptr), g);
            },
            10);
        const std::string args = fmt::format("conv {} {} {} {} {} {} {} {} {}", c.N, c.C, c.H, c.W, c.K, c.k, c.stride, c.pad, c.groups);
        print({fmt::format("conv2d_fwd:{}", c.label), flops / fwd / 1e9,
               run_peer ? dam_bench::run_and_read(py + " " + args + " fwd", "gflops") : std::nullopt});
        print({fmt::format("conv2d_bwd:{}", c.label), 2 * flops / bwd / 1e9,
               run_peer ? dam_bench::run_and_read(py + " " + args + " bwd", "gflops") : std::nullopt});
    }

    const std::int64_t mm[][3] = {{128, 128, 10}, {1024, 1024, 1024}, {6272, 288, 64}};
    for (const auto& s : mm) {
        const std::int64_t M = s[0], K = s[1], N = s[2];
        Tensor<float> a(Shape{M, K}), b(Shape{K, N}), c(Shape{M, N}), da(Shape{M, K}), db(Shape{K, N});
        normal_(a, gen, 0, 1);
        normal_(b, gen, 0, 1);
        const double flops = 2.0 * M * K * N;
        const double fwd = best_seconds([&] { gemm(cpu{}, false, false, M, N, K, a.data(), b.data(), c.data(), false); }, 20);
        const double bwd = best_seconds(
            [&] {
                gemm(cpu{}, false, true, M, K, N, c.data(), b.data(), da.data(), false);
                gemm(cpu{}, true, false, K, N, M, a.data(), c.data(), db.data(), false);
            },
            20);
        const std::string args = fmt::format("matmul {} {} {}", M, K, N);
        const std::string label = fmt::format("{}x{}x{}", M, K, N);
        print({"matmul_fwd:" + label, flops / fwd / 1e9, run_peer ? dam_bench::run_and_read(py + " " + args + " fwd", "gflops") : std::nullopt});
        print({"matmul_bwd:" + label, 2 * flops / bwd / 1e9, run_peer ? dam_bench::run_and_read(py + " " + args + " bwd", "gflops") : std::nullopt});
    }
    // Batch norm (training mode, fused ReLU where the network has one) on the planes of the main
    // job. Memory-bound, so in GB/s of the least traffic: forward reads x and writes y, backward
    // reads x, dy (and y for the ReLU mask) and writes dx. The peer runs batch_norm then relu.
    struct BnCase {
        const char* label;
        std::int64_t N, C, H, W;
        bool relu;
    };
    const BnCase bns[] = {
        {"shuffle.stem_16_28", 128, 16, 28, 28, true},
        {"shuffle.branch_24_14", 128, 24, 14, 14, true},
        {"shuffle.branch_48_7", 128, 48, 7, 7, true},
        {"shuffle.depthwise_96_7", 128, 96, 7, 7, false},
    };
    std::vector<float> flush(64 << 20);
    const auto evict = [&flush] {
        for (std::size_t i = 0; i < flush.size(); i += 16) flush[i] += 1.0f;
    };
    for (const auto& c : bns) {
        const Shape shape{c.N, c.C, c.H, c.W};
        Tensor<float> x(shape), y(shape), dy(shape), dx(shape), gamma(Shape{c.C}), beta(Shape{c.C}),
            mean(Shape{c.C}), invstd(Shape{c.C}), rm(Shape{c.C}), rv(Shape{c.C}), dg(Shape{c.C}), db(Shape{c.C});
        normal_(x, gen, 0.5, 2);
        normal_(dy, gen, 0, 1);
        gamma.fill(1.5f);
        beta.fill(0.1f);
        rv.fill(1.0f);
        const double HW = static_cast<double>(c.H * c.W), bytes = 4.0 * static_cast<double>(c.N * c.C) * HW;
        auto fwd = [&] {
            batchnorm2d_forward_train(cpu{}, x.data(), gamma.data(), beta.data(), y.data(), mean.data(), invstd.data(),
                                      rm.data(), rv.data(), c.N, c.C, c.H * c.W, 0.1, 1e-5, c.relu);
        };
        auto bwd = [&] {
            batchnorm2d_backward(cpu{}, x.data(), c.relu ? y.data() : static_cast<const float*>(nullptr), dy.data(),
                                 gamma.data(), mean.data(), invstd.data(), dx.data(), dg.data(), db.data(), c.N, c.C,
                                 c.H * c.W, true);
        };
        const std::string args = fmt::format("bn {} {} {} {} {}", c.N, c.C, c.H, c.W, c.relu ? 1 : 0);
        const double fwd_bytes = 2 * bytes, bwd_bytes = (c.relu ? 4 : 3) * bytes;
        // Warm: the tensors stay in cache between repetitions. Cold: 256 MiB are written before
        // each repetition, as in a training step, where the backward pass reads activations the
        // forward pass wrote long before.
        for (const bool cold : {false, true}) {
            const auto before = cold ? std::function<void()>(evict) : std::function<void()>([] {});
            const char* tag = cold ? "_cold" : "";
            print({fmt::format("batchnorm_fwd{}:{}", tag, c.label), fwd_bytes / best_seconds(fwd, before, 10) / 1e9,
                   run_peer ? dam_bench::run_and_read(py + " " + args + " fwd" + tag, "gbs") : std::nullopt},
                  "gbs");
            print({fmt::format("batchnorm_bwd{}:{}", tag, c.label), bwd_bytes / best_seconds(bwd, before, 10) / 1e9,
                   run_peer ? dam_bench::run_and_read(py + " " + args + " bwd" + tag, "gbs") : std::nullopt},
                  "gbs");
        }
    }
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "conv_matmul: {}\n", e.what());
    return 1;
}
