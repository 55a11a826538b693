// GPU kernel benchmark: time (CUDA events, median of 50 launches after 5 warm-ups), bytes moved,
// GB/s and the fraction of the card's peak DRAM bandwidth (from its memory clock and bus width)
// for every hand-written kernel, at the sizes of one training step of the ShuffleNetV2 supernet
// on Fashion-MNIST (batch 128). Without a GPU it says so and exits 0.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include <diffautoml/cuda.cuh>

using namespace diffautoml;

namespace {

double median_ms(const std::function<void()>& launch) {
    cudaEvent_t a, b;
    DAM_CUDA_CHECK(cudaEventCreate(&a));
    DAM_CUDA_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < 5; ++i) launch();
    std::vector<float> t;
    for (int i = 0; i < 50; ++i) {
        DAM_CUDA_CHECK(cudaEventRecord(a));
        launch();
        DAM_CUDA_CHECK(cudaEventRecord(b));
        DAM_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        DAM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    DAM_CUDA_CHECK(cudaEventDestroy(a));
    DAM_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

Tensor<float, cuda> random_device(const Shape& s, std::uint64_t seed) {
    Tensor<float> h(s);
    Generator g(seed);
    normal_(h, g, 0.0, 1.0);
    return to_device(h);
}

}  // namespace

int main() {
    if (cuda_device_count() == 0) {
        std::printf("no CUDA device visible: nothing to measure (the kernels are compiled and their bodies tested on the CPU)\n");
        return 0;
    }
    cudaDeviceProp p{};
    DAM_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    int clock_khz = 0, bus_bits = 0;
    DAM_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0));
    DAM_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
    const double peak = 2.0 * clock_khz * 1e3 * bus_bits / 8 / 1e9;  // GB/s, double data rate
    std::printf("device: %s, peak DRAM bandwidth %.0f GB/s (memory clock %d MHz, %d-bit bus)\n\n", p.name, peak,
                clock_khz / 1000, bus_bits);
    std::printf("| kernel | size | time (us) | GB moved | GB/s | of peak |\n|---|---|---|---|---|---|\n");
    auto report = [&](const char* name, const char* size, double bytes, const std::function<void()>& launch) {
        const double ms = median_ms(launch);
        const double gbs = bytes / (ms * 1e-3) / 1e9;
        std::printf("| %s | %s | %.1f | %.4f | %.0f | %.1f%% |\n", name, size, ms * 1e3, bytes / 1e9, gbs, 100 * gbs / peak);
    };

    // Mixed op: 4 candidates of (128, 96, 14, 14) (a stage-2 layer of the supernet).
    const std::int64_t K = 4, n = 128 * 96 * 14 * 14;
    std::vector<Tensor<float, cuda>> xs, dxs;
    std::vector<const float*> xp;
    std::vector<float*> dxp;
    for (std::int64_t k = 0; k < K; ++k) {
        xs.push_back(random_device(Shape{n}, static_cast<std::uint64_t>(k)));
        dxs.emplace_back(Shape{n});
        xp.push_back(xs.back().data());
        dxp.push_back(dxs.back().data());
    }
    const auto w = random_device(Shape{K}, 10), g = random_device(Shape{n}, 11);
    Tensor<float, cuda> y(Shape{n}), dw(Shape{K});
    report("weighted_sum forward", "K=4 x 2.4M", 4.0 * n * (K + 1),
           [&] { backend_cuda::weighted_sum_forward(cuda{}, xp.data(), w.data(), K, n, y.data()); });
    report("weighted_sum backward (dx_k, dw_k fused)", "K=4 x 2.4M", 4.0 * n * (2 * K + 1),
           [&] { backend_cuda::weighted_sum_backward(cuda{}, xp.data(), w.data(), g.data(), K, n, dxp.data(), dw.data()); });
    // Gumbel-softmax: DA pair sampling, 128 images x 196 pairs, and a large batch of rows.
    for (std::int64_t rows : {std::int64_t(128), std::int64_t(1) << 16}) {
        const std::int64_t Kg = 196;
        const auto z = random_device(Shape{rows, Kg}, 12);
        Tensor<float, cuda> soft(Shape{rows, Kg});
        DeviceArray<std::int64_t> idx(rows);
        char size[64];
        std::snprintf(size, sizeof size, "%lld x 196", static_cast<long long>(rows));
        report("gumbel_softmax (Philox, soft + argmax)", size, 4.0 * rows * Kg * 2 + 8.0 * rows,
               [&] { backend_cuda::gumbel_softmax_forward(cuda{}, z.data(), rows, Kg, 1.0, PhiloxStream{1, 2}, soft.data(),
                                                          static_cast<float*>(nullptr), idx.data()); });
    }
    // Softmax-cross-entropy: 128 x 10 (one step) and 1M x 10.
    for (std::int64_t N : {std::int64_t(128), std::int64_t(1) << 20}) {
        const auto z = random_device(Shape{N, 10}, 13);
        std::vector<std::int32_t> lab(static_cast<std::size_t>(N));
        for (std::int64_t i = 0; i < N; ++i) lab[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 10);
        DeviceArray<std::int32_t> labels(lab);
        Tensor<float, cuda> loss(Shape{N}), prob(Shape{N, 10});
        char size[64];
        std::snprintf(size, sizeof size, "%lld x 10", static_cast<long long>(N));
        report("cross_entropy forward", size, 4.0 * N * 10 * 2 + 8.0 * N,
               [&] { backend_cuda::cross_entropy_forward(cuda{}, z.data(), labels.data(), loss.data(), prob.data(), N, 10, 0.0); });
    }
    // Elementwise and reduction over 16M floats.
    const std::int64_t m = std::int64_t(1) << 24;
    const auto x = random_device(Shape{m}, 14);
    Tensor<float, cuda> out(Shape{m}), s(Shape{1});
    report("relu forward", "16M", 8.0 * m, [&] { backend_cuda::unary_forward(cuda{}, fn::Relu{}, x.data(), out.data(), m); });
    report("sigmoid forward", "16M", 8.0 * m, [&] { backend_cuda::unary_forward(cuda{}, fn::Sigmoid{}, x.data(), out.data(), m); });
    report("sum (deterministic)", "16M", 4.0 * m, [&] { backend_cuda::sum(cuda{}, x.data(), m, s.data()); });
    // Geometric augmentation of a Fashion-MNIST batch: rotate every image.
    const std::int64_t N = 128, H = 28, W = 28;
    const auto imgs = random_device(Shape{N, 1, H, W}, 15);
    Tensor<float, cuda> aug(Shape{N, 1, H, W}), gimg(Shape{N, 1, H, W});
    const std::vector<da::OpDraw> draws(static_cast<std::size_t>(N), da::OpDraw{da::Op::rotate});
    const std::vector<double> mags(static_cast<std::size_t>(N), 0.5);
    report("rotate forward (bilinear; incl. draw upload)", "128 x 28 x 28", 8.0 * N * H * W,
           [&] { backend_cuda::augment_forward(cuda{}, imgs.data(), aug.data(), draws, mags, N, 1, 1, H, W, da::AugmentOptions{}); });
    report("rotate backward (dx, dm; incl. draw upload, dm download)", "128 x 28 x 28", 12.0 * N * H * W, [&] {
        (void)backend_cuda::augment_backward(cuda{}, imgs.data(), aug.data(), gimg.data(), draws, mags, N, 1, H, W,
                                             da::AugmentOptions{}, da::MagnitudeGradient::exact);
    });
    // The colour ops run one thread per image (the CPU's per-image code): a mixed batch of all 17.
    std::vector<da::OpDraw> mixed_draws;
    for (std::int64_t i = 0; i < N; ++i) mixed_draws.push_back({static_cast<da::Op>(i % da::kOpCount), 1, 0.3f, 0.6f});
    report("all 17 ops forward (colour: one thread per image)", "128 x 28 x 28", 8.0 * N * H * W, [&] {
        backend_cuda::augment_forward(cuda{}, imgs.data(), aug.data(), mixed_draws, mags, N, 1, 1, H, W, da::AugmentOptions{});
    });
    report("all 17 ops backward", "128 x 28 x 28", 12.0 * N * H * W, [&] {
        (void)backend_cuda::augment_backward(cuda{}, imgs.data(), aug.data(), gimg.data(), mixed_draws, mags, N, 1, H, W,
                                             da::AugmentOptions{}, da::MagnitudeGradient::exact);
    });
    {
        const std::int64_t bn_n = 128, bn_c = 96, bn_hw = 14 * 14;
        const auto bx = random_device(Shape{bn_n, bn_c, bn_hw}, 25);
        Tensor<float, cuda> by(Shape{bn_n, bn_c, bn_hw}), bm(Shape{bn_c}), bs(Shape{bn_c});
        report("batch norm train forward + ReLU (cuDNN)", "128 x 96 x 14 x 14", 4.0 * bn_n * bn_c * bn_hw * 4, [&] {
            backend_cuda::batchnorm2d_forward_train(cuda{}, bx.data(), static_cast<const float*>(nullptr),
                                                    static_cast<const float*>(nullptr), by.data(), bm.data(), bs.data(),
                                                    static_cast<float*>(nullptr), static_cast<float*>(nullptr), bn_n, bn_c,
                                                    bn_hw, 0.1, 1e-5, true);
        });
    }
    std::printf("\nSmall launches (one training step's sizes) are bound by launch latency, not bandwidth; the large "
                "sizes show the kernels' bandwidth.\n");

    // cuDNN and cuBLAS at the supernet's shapes (batch 128), float without TF32: GFLOP/s against
    // the card's FP32 peak on its CUDA cores (SMs x 128 lanes x 2 flops x clock; sm_90 has 128
    // FP32 lanes per SM).
    int sm_clock_khz = 0;
    DAM_CUDA_CHECK(cudaDeviceGetAttribute(&sm_clock_khz, cudaDevAttrClockRate, 0));
    const double fp32_peak = p.multiProcessorCount * 128.0 * 2.0 * sm_clock_khz * 1e3 / 1e9;
    std::printf("\nFP32 peak (CUDA cores, no tensor cores): %.0f GFLOP/s (%d SMs at %d MHz)\n\n", fp32_peak,
                p.multiProcessorCount, sm_clock_khz / 1000);
    std::printf("| op | shape | time (us) | GFLOP/s | of FP32 peak |\n|---|---|---|---|---|\n");
    auto report_flops = [&](const char* name, const char* shape, double flops, const std::function<void()>& launch) {
        const double ms = median_ms(launch);
        const double gf = flops / (ms * 1e-3) / 1e9;
        std::printf("| %s | %s | %.1f | %.0f | %.1f%% |\n", name, shape, ms * 1e3, gf, 100 * gf / fp32_peak);
    };
    struct ConvCase {
        const char* name;
        std::int64_t C, H, K, kh;
        Conv2dOptions o;
    };
    const ConvCase convs[] = {
        {"3x3 stem 1->16 @28", 1, 28, 16, 3, {1, 1, 1, 1}},
        {"1x1 48->48 @14", 48, 14, 48, 1, {1, 0, 1, 1}},
        {"depthwise 5x5 48 @14", 48, 14, 48, 5, {1, 2, 1, 48}},
        {"1x1 96->96 @7", 96, 7, 96, 1, {1, 0, 1, 1}},
    };
    for (const ConvCase& c : convs) {
        const Shape xs{128, c.C, c.H, c.H}, ws{c.K, c.C / c.o.groups, c.kh, c.kh};
        const ConvGeometry cg = ConvGeometry::make(xs, ws, c.o);
        const auto cx = random_device(xs, 20), cw = random_device(ws, 21), cdy = random_device(cg.out_shape(), 22);
        Tensor<float, cuda> cy(cg.out_shape()), cdx(xs), cdw(ws);
        const double flops = 2.0 * cg.batch * cg.out_c * (cg.in_c / cg.groups) * cg.kh * cg.kw * cg.out_h * cg.out_w;
        char name[128];
        std::snprintf(name, sizeof name, "conv forward (cuDNN) %s", c.name);
        report_flops(name, "batch 128", flops, [&] {
            backend_cuda::conv2d_forward(cuda{}, cx.data(), cw.data(), static_cast<const float*>(nullptr), cy.data(), cg);
        });
        std::snprintf(name, sizeof name, "conv backward data + filter (cuDNN) %s", c.name);
        report_flops(name, "batch 128", 2 * flops, [&] {
            backend_cuda::conv2d_backward_data(cuda{}, cdy.data(), cw.data(), cdx.data(), cg);
            backend_cuda::conv2d_backward_weight(cuda{}, cx.data(), cdy.data(), cdw.data(), static_cast<float*>(nullptr), cg);
        });
    }
    for (std::int64_t d : {std::int64_t(256), std::int64_t(4096)}) {
        const auto A = random_device(Shape{d, d}, 23), B = random_device(Shape{d, d}, 24);
        Tensor<float, cuda> C(Shape{d, d});
        char shape[64];
        std::snprintf(shape, sizeof shape, "%lld^3", static_cast<long long>(d));
        report_flops("gemm (cuBLAS, no TF32)", shape, 2.0 * d * d * d,
                     [&] { backend_cuda::gemm(cuda{}, false, false, d, d, d, A.data(), B.data(), C.data(), false); });
    }
    return 0;
}
