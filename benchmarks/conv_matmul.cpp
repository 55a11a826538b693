// Microbenchmarks of the dense kernels (conv2d, matmul: GFLOP/s; batch norm: GB/s) against
// PyTorch's kernels on the same shapes, measured in the same run, on Google Benchmark.
//
// Each op is two benchmarks, `OP/ours` and `OP/pytorch`. Both sides are timed the same way: one
// call at a time, the clock around the call only (manual time), any cache eviction before it
// untimed; the peer's calls go to a long-lived `torch_ops.py --serve` process that times its
// kernel called directly (aten::convolution_backward, native_batch_norm_backward, mm into
// preallocated outputs), never through autograd. Repetitions (5 by default) of all benchmarks run
// in random interleaved order (ours, peer, ours, ...), so both sides see the same drift of the
// machine; the summary at the end gives each side's median with its range and the ratio of medians.
//
// FLOP counts: conv forward 2*N*K*OH*OW*(C/groups)*k*k; backward (data + weight gradients) twice
// that; matmul forward 2*M*K*N, backward twice that. Batch norm counts the least traffic: forward
// reads x and writes y, backward reads x, dy (and y for the ReLU mask) and writes dx.
//
// The peer uses OpenBLAS (Debian's libopenblas0-pthread, selected for its process only through
// LD_LIBRARY_PATH) rather than the reference BLAS Debian's PyTorch loads by default; the first
// line says which BLAS it loaded and which ISA oneDNN dispatches to.
//
// Options: --threads T (2)  --no-peer  --winograd auto|f2|f4|never (the 3x3 stride-1 algorithm)  and Google Benchmark's own (--benchmark_filter=REGEX,
// --benchmark_repetitions=N, --benchmark_format=json|console, --benchmark_out=FILE, ...); the
// harness is gbench.hpp, shared with the augmentation benchmark.
#include <map>
#include <memory>

#include <diffautoml/diffautoml.hpp>

#include "gbench.hpp"

using namespace diffautoml;
using dam_bench::Case;

namespace {

std::vector<Case> make_cases(Generator& gen, std::vector<std::shared_ptr<void>>& keep) {
    std::vector<Case> cases;
    // Tensors live as long as the benchmarks that use them.
    const auto tensor = [&](Shape s) {
        auto t = std::make_shared<Tensor<float>>(s);
        keep.push_back(t);
        return t;
    };
    const auto nothing = [] {};

    // The convolutions of the reference networks at batch 128.
    struct ConvCase {
        const char* label;
        std::int64_t N, C, H, W, K, k, stride, pad, groups;
    };
    const ConvCase convs[] = {
        {"small.stem_3x3_1_32", 128, 1, 28, 28, 32, 3, 1, 1, 1},
        {"small.block1_3x3_32", 128, 32, 28, 28, 32, 3, 1, 1, 1},
        {"small.block2_3x3_64_s2", 128, 32, 28, 28, 64, 3, 2, 1, 1},
        {"small.block2_1x1_64_s2", 128, 32, 28, 28, 64, 1, 2, 0, 1},
        {"small.block2_3x3_64", 128, 64, 14, 14, 64, 3, 1, 1, 1},
        {"small.block3_3x3_128_s2", 128, 64, 14, 14, 128, 3, 2, 1, 1},
        {"small.block3_1x1_128_s2", 128, 64, 14, 14, 128, 1, 2, 0, 1},
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
        auto x = tensor(Shape{c.N, c.C, c.H, c.W}), w = tensor(Shape{c.K, c.C / c.groups, c.k, c.k});
        normal_(*x, gen, 0, 1);
        normal_(*w, gen, 0, 1);
        const auto g = ConvGeometry::make(x->shape(), w->shape(), Conv2dOptions{c.stride, c.pad, 1, c.groups});
        const double flops = 2.0 * c.N * c.K * g.out_h * g.out_w * (c.C / c.groups) * c.k * c.k;
        auto y = tensor(g.out_shape()), dx = tensor(x->shape()), dw = tensor(w->shape());
        normal_(*y, gen, 0, 1);
        const std::string args = fmt::format("conv {} {} {} {} {} {} {} {} {}", c.N, c.C, c.H, c.W, c.K, c.k, c.stride, c.pad, c.groups);
        cases.push_back({fmt::format("conv2d_fwd:{}", c.label), args + " fwd", flops, "GFLOPS", nothing, [=] {
                             conv2d_forward(cpu{}, x->data(), w->data(), static_cast<float*>(nullptr), y->data(), g);
                         }});
        cases.push_back({fmt::format("conv2d_bwd:{}", c.label), args + " bwd", 2 * flops, "GFLOPS", nothing, [=] {
                             conv2d_backward_data(cpu{}, y->data(), w->data(), dx->data(), g);
                             conv2d_backward_weight(cpu{}, x->data(), y->data(), dw->data(), static_cast<float*>(nullptr), g);
                         }});
    }

    const std::int64_t mm[][3] = {{128, 128, 10}, {1024, 1024, 1024}, {6272, 288, 64}};
    for (const auto& s : mm) {
        const std::int64_t M = s[0], K = s[1], N = s[2];
        auto a = tensor(Shape{M, K}), b = tensor(Shape{K, N}), c = tensor(Shape{M, N}), da = tensor(Shape{M, K}),
             db = tensor(Shape{K, N});
        normal_(*a, gen, 0, 1);
        normal_(*b, gen, 0, 1);
        normal_(*c, gen, 0, 1);
        const double flops = 2.0 * M * K * N;
        const std::string args = fmt::format("matmul {} {} {}", M, K, N), label = fmt::format("{}x{}x{}", M, K, N);
        cases.push_back({"matmul_fwd:" + label, args + " fwd", flops, "GFLOPS", nothing,
                         [=] { gemm(cpu{}, false, false, M, N, K, a->data(), b->data(), c->data(), false); }});
        cases.push_back({"matmul_bwd:" + label, args + " bwd", 2 * flops, "GFLOPS", nothing, [=] {
                             gemm(cpu{}, false, true, M, K, N, c->data(), b->data(), da->data(), false);
                             gemm(cpu{}, true, false, K, N, M, a->data(), c->data(), db->data(), false);
                         }});
    }

    // Batch norm (training mode, fused ReLU where the network has one) on the planes of the main
    // job, warm (the tensors stay in cache between calls) and cold (256 MiB are written before
    // each call, as in a training step, where the backward reads activations written long before).
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
    auto flush = std::make_shared<std::vector<float>>(64 << 20);
    keep.push_back(flush);
    const std::function<void()> evict = [flush] {
        for (std::size_t i = 0; i < flush->size(); i += 16) (*flush)[i] += 1.0f;
    };
    for (const auto& c : bns) {
        const Shape shape{c.N, c.C, c.H, c.W}, ch{c.C};
        auto x = tensor(shape), y = tensor(shape), dy = tensor(shape), dx = tensor(shape), gamma = tensor(ch),
             beta = tensor(ch), mean = tensor(ch), invstd = tensor(ch), rm = tensor(ch), rv = tensor(ch), dg = tensor(ch),
             db = tensor(ch);
        normal_(*x, gen, 0.5, 2);
        normal_(*dy, gen, 0, 1);
        gamma->fill(1.5f);
        beta->fill(0.1f);
        rv->fill(1.0f);
        const bool relu = c.relu;
        const std::int64_t N = c.N, C = c.C, HW = c.H * c.W;
        const auto fwd = [=] {
            batchnorm2d_forward_train(cpu{}, x->data(), gamma->data(), beta->data(), y->data(), mean->data(),
                                      invstd->data(), rm->data(), rv->data(), N, C, HW, 0.1, 1e-5, relu);
        };
        const auto bwd = [=] {
            batchnorm2d_backward(cpu{}, x->data(), relu ? y->data() : static_cast<const float*>(nullptr), dy->data(),
                                 gamma->data(), mean->data(), invstd->data(), dx->data(), dg->data(), db->data(), N, C,
                                 HW, true);
        };
        fwd();  // the backward needs the forward's statistics
        const double bytes = 4.0 * static_cast<double>(N * C * HW);
        const std::string args = fmt::format("bn {} {} {} {} {}", c.N, c.C, c.H, c.W, c.relu ? 1 : 0);
        for (const bool cold : {false, true}) {
            const std::string tag = cold ? "_cold" : "";
            const std::function<void()> before = cold ? evict : std::function<void()>(nothing);
            cases.push_back({fmt::format("batchnorm_fwd{}:{}", tag, c.label), args + " fwd" + tag, 2 * bytes, "GB/s", before, fwd});
            cases.push_back({fmt::format("batchnorm_bwd{}:{}", tag, c.label), args + " bwd" + tag,
                             (relu ? 4 : 3) * bytes, "GB/s", before, bwd});
        }
    }
    return cases;
}


}  // namespace

int main(int argc, char** argv) try {
    const auto o = dam_bench::parse("conv_matmul", argc, argv, {{"--winograd", "auto"}});
    set_num_threads(o.threads);
    // Which Winograd tile the 3x3 stride-1 cases use: auto (the library's choice), f2, f4 or never.
    const std::string wino = o.own.at("--winograd");
    using backend_cpu::winograd::Mode;
    const std::map<std::string, Mode> modes{{"auto", Mode::automatic}, {"f2", Mode::f2}, {"f4", Mode::f4}, {"never", Mode::never}};
    DAM_CHECK(modes.count(wino), value_error, "conv_matmul: --winograd expects auto, f2, f4 or never, got '{}'", wino);
    backend_cpu::winograd::mode() = modes.at(wino);
    fmt::print(o.text, "ours: diffautoml, {} threads, built with -march={}, small GEMM on {} vectors\n", o.threads,
               DAM_BUILD_MARCH, backend_cpu::simd::wide_vectors() ? "AVX-512" : "AVX2");
    const auto peer = dam_bench::start_peer(o);
    Generator gen(0);
    std::vector<std::shared_ptr<void>> keep;
    const auto cases = make_cases(gen, keep);
    dam_bench::run(o, cases, peer.get());
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "conv_matmul: {}\n", e.what());
    return 1;
}
