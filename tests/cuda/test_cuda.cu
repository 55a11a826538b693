// GPU tests: every CUDA kernel against the CPU reference (reference.cpp, compiled by the host
// compiler), with the tolerance stated per op: |gpu - cpu| <= atol + rtol |cpu|. Without a GPU the
// program prints why it skips and exits with 77, which ctest reports as skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <diffautoml/cuda.cuh>

#include "reference.hpp"

using namespace diffautoml;
using dam_ref::normal;

namespace {

using Host = std::vector<float>;

void require_close(const Host& gpu, const Host& cpu_ref, double atol, double rtol, const char* what) {
    REQUIRE(gpu.size() == cpu_ref.size());
    std::size_t bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < gpu.size(); ++i) {
        const double d = std::abs(static_cast<double>(gpu[i]) - cpu_ref[i]);
        if (!(d <= atol + rtol * std::abs(static_cast<double>(cpu_ref[i])))) ++bad;
        worst = std::max(worst, d);
    }
    INFO(what << ": " << bad << " of " << gpu.size() << " elements outside atol " << atol << " + rtol " << rtol
              << "; worst |diff| " << worst);
    CHECK(bad == 0);
}

}  // namespace

TEST_CASE("device tensors: storage from the caching allocator, copies both ways", "[cuda][memory]") {
    Tensor<float> h(Shape{3, 5});
    for (std::int64_t i = 0; i < 15; ++i) h[i] = static_cast<float>(i) * 0.5f;
    const Tensor<float, cuda> d = to_device(h);
    const Tensor<float> back = to_host(d);
    for (std::int64_t i = 0; i < 15; ++i) CHECK(back[i] == h[i]);
    const auto before = default_allocator<cuda>().stats();
    { Tensor<float, cuda> again(Shape{3, 5}); }  // same size: served from the free list
    CHECK(default_allocator<cuda>().stats().cache_hits > before.cache_hits);
}

TEST_CASE("weighted sum forward and fused backward (dL/dx_k, dL/dw_k) match the CPU", "[cuda][mixed]") {
    const std::int64_t K = 4, n = 128 * 96 * 14 * 14;
    std::vector<Host> xs;
    std::vector<DeviceArray<float>> xd, dxd;
    std::vector<const float*> xh, xdp;
    std::vector<float*> dxdp;
    std::vector<Host> dx_ref(K, Host(static_cast<std::size_t>(n)));
    std::vector<float*> dx_ref_p;
    for (std::int64_t k = 0; k < K; ++k) {
        xs.push_back(normal(n, 1 + static_cast<std::uint64_t>(k)));
        xd.emplace_back(xs.back());
        dxd.emplace_back(n);
    }
    for (std::int64_t k = 0; k < K; ++k) {
        const auto ks = static_cast<std::size_t>(k);
        xh.push_back(xs[ks].data());
        xdp.push_back(xd[ks].data());
        dxdp.push_back(dxd[ks].data());
        dx_ref_p.push_back(dx_ref[ks].data());
    }
    const Host w = normal(K, 9), g = normal(n, 10);
    const DeviceArray<float> wd(w), gd(g);
    Host y(static_cast<std::size_t>(n)), dw(K);
    dam_ref::weighted_sum_forward(xh, w.data(), n, y.data());
    dam_ref::weighted_sum_backward(xh, w.data(), g.data(), n, dx_ref_p, dw.data());
    DeviceArray<float> yd(n), dwd(K), dwd2(K);
    backend_cuda::weighted_sum_forward(cuda{}, xdp.data(), wd.data(), K, n, yd.data());
    backend_cuda::weighted_sum_backward(cuda{}, xdp.data(), wd.data(), gd.data(), K, n, dxdp.data(), dwd.data());
    require_close(yd.to_host(), y, 1e-6, 1e-5, "y (fused multiply-adds round differently)");
    for (std::int64_t k = 0; k < K; ++k)
        require_close(dxd[static_cast<std::size_t>(k)].to_host(), dx_ref[static_cast<std::size_t>(k)], 0, 0, "dx_k (one product)");
    // dw: sums of 2.4M products; the CPU adds float chunks, the GPU doubles.
    require_close(dwd.to_host(), dw, 1e-2, 1e-4, "dw");
    backend_cuda::weighted_sum_backward(cuda{}, xdp.data(), wd.data(), gd.data(), K, n, dxdp.data(), dwd2.data());
    CHECK(dwd.to_host() == dwd2.to_host());  // deterministic reduction: the same bits
    // No input gradients wanted: only dw.
    std::vector<float*> none(K, nullptr);
    DeviceArray<float> dwd3(K);
    backend_cuda::weighted_sum_backward(cuda{}, xdp.data(), wd.data(), gd.data(), K, n, none.data(), dwd3.data());
    CHECK(dwd3.to_host() == dwd.to_host());
    std::vector<const float*> many(17, xdp[0]);
    CHECK_THROWS_AS(backend_cuda::weighted_sum_forward(cuda{}, many.data(), wd.data(), 17, n, yd.data()), shape_error);
}

TEST_CASE("Gumbel-softmax on the GPU draws the CPU sampler's numbers", "[cuda][sampling]") {
    const std::int64_t rows = 4096, K = 8;
    const double tau = 0.5;
    const Host z = normal(rows * K, 3, 2.0), seed = normal(rows * K, 4);
    Host soft_ref(z.size()), hard_ref(z.size()), dz_ref(z.size());
    dam_ref::gumbel_softmax(z.data(), rows, K, tau, 123, 45, false, soft_ref.data(), seed.data(), dz_ref.data());
    dam_ref::gumbel_softmax(z.data(), rows, K, tau, 123, 45, true, hard_ref.data());
    const DeviceArray<float> zd(z), seedd(seed);
    DeviceArray<float> soft(rows * K), hard(rows * K), dz(rows * K);
    DeviceArray<std::int64_t> idx(rows);
    backend_cuda::gumbel_softmax_forward(cuda{}, zd.data(), rows, K, tau, PhiloxStream{123, 45}, soft.data(), hard.data(),
                                         idx.data());
    require_close(soft.to_host(), soft_ref, 1e-6, 1e-5, "soft sample (the GPU's expf differs by ulps)");
    const Host hh = hard.to_host();
    const auto index = idx.to_host();
    std::int64_t differ = 0;
    for (std::int64_t i = 0; i < rows * K; ++i) differ += hh[static_cast<std::size_t>(i)] != hard_ref[static_cast<std::size_t>(i)];
    for (std::int64_t r = 0; r < rows; ++r) differ += hard_ref[static_cast<std::size_t>(r * K + index[static_cast<std::size_t>(r)])] != 1.0f;
    INFO(differ << " hard choices differ from the CPU sampler's");
    CHECK(differ == 0);
    backend_cuda::gumbel_softmax_backward(cuda{}, soft.data(), seedd.data(), rows, K, tau, dz.data());
    require_close(dz.to_host(), dz_ref, 1e-5, 1e-4, "dz against the CPU autograd");
    CHECK_THROWS_AS(backend_cuda::gumbel_softmax_forward(cuda{}, zd.data(), rows, K, 0.0, PhiloxStream{1, 2}, soft.data(),
                                                         static_cast<float*>(nullptr), static_cast<std::int64_t*>(nullptr)),
                    value_error);
}

TEST_CASE("fused softmax-cross-entropy matches the CPU (forward and backward, label smoothing)", "[cuda][loss]") {
    const std::int64_t N = 1000, K = 10;
    const Host z = normal(N * K, 5, 3.0), g = normal(N, 6);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7) % K);
    Host loss(N), prob(N * K), dz(N * K);
    dam_ref::cross_entropy(z.data(), labels.data(), N, K, 0.1, g.data(), 0.5f, loss.data(), prob.data(), dz.data());
    const DeviceArray<float> zd(z), gd(g);
    const DeviceArray<std::int32_t> ld(labels);
    DeviceArray<float> lossd(N), probd(N * K), dzd(N * K);
    backend_cuda::cross_entropy_forward(cuda{}, zd.data(), ld.data(), lossd.data(), probd.data(), N, K, 0.1);
    backend_cuda::cross_entropy_backward(cuda{}, probd.data(), ld.data(), gd.data(), true, dzd.data(), N, K, 0.1, 0.5f);
    require_close(lossd.to_host(), loss, 1e-5, 1e-5, "loss");
    require_close(probd.to_host(), prob, 1e-6, 1e-5, "p");
    require_close(dzd.to_host(), dz, 1e-6, 1e-5, "dz");
}

TEST_CASE("elementwise maps and the deterministic sum match the CPU", "[cuda][elementwise]") {
    const std::int64_t n = 1 << 20;
    const Host x = normal(n, 7), g = normal(n, 8);
    const DeviceArray<float> xd(x), gd(g);
    auto check_op = [&](auto f, const char* name) {
        Host y(n), dx(n);
        dam_ref::unary(name, x.data(), g.data(), n, y.data(), dx.data());
        DeviceArray<float> yd(n), dxd(n);
        backend_cuda::unary_forward(cuda{}, f, xd.data(), yd.data(), n);
        backend_cuda::unary_backward(cuda{}, f, xd.data(), yd.data(), gd.data(), dxd.data(), n);
        require_close(yd.to_host(), y, 1e-7, 2e-6, name);
        require_close(dxd.to_host(), dx, 1e-7, 2e-6, name);
    };
    check_op(fn::Relu{}, "relu");
    check_op(fn::Sigmoid{}, "sigmoid");
    check_op(fn::Tanh{}, "tanh");
    DeviceArray<float> s1(1), s2(1);
    backend_cuda::sum(cuda{}, xd.data(), n, s1.data());
    backend_cuda::sum(cuda{}, xd.data(), n, s2.data());
    double ref = 0;
    for (float v : x) ref += v;
    CHECK(s1.to_host()[0] == Approx(ref).margin(1e-3));
    CHECK(s1.to_host() == s2.to_host());
}

TEST_CASE("geometric augmentation kernels match the CPU ops (image, image gradient, magnitude gradient)", "[cuda][da]") {
    using namespace da;
    const std::int64_t N = 64, C = 1, H = 28, W = 28, P = C * H * W;
    const Host x = dam_ref::uniform(N * P, 11, 0.0, 1.0), gy = normal(N * P, 12);
    const std::vector<Op> ops{Op::identity, Op::flip_lr, Op::shear_x, Op::shear_y, Op::translate_x, Op::translate_y, Op::rotate};
    std::vector<OpDraw> draws;
    std::vector<double> m;
    for (std::int64_t i = 0; i < N; ++i) {
        draws.push_back({ops[static_cast<std::size_t>(i) % ops.size()], static_cast<std::int8_t>(i % 3 ? 1 : -1)});
        m.push_back(0.05 + 0.9 * static_cast<double>(i) / static_cast<double>(N));
    }
    AugmentOptions o;
    o.fill = 0.0;
    Host y(N * P), gx(N * P);
    std::vector<double> gm;
    dam_ref::warp(x.data(), gy.data(), N, C, H, W, draws, m, o, y.data(), gx.data(), gm);
    const DeviceArray<float> xd(x), gyd(gy);
    DeviceArray<float> yd(N * P), gxd(Host(static_cast<std::size_t>(N * P), 0.0f));
    backend_cuda::warp_forward(cuda{}, xd.data(), yd.data(), draws, m, N, C, H, W, o);
    const auto gmd = backend_cuda::warp_backward(cuda{}, xd.data(), gyd.data(), gxd.data(), draws, m, N, C, H, W, o);
    require_close(yd.to_host(), y, 1e-6, 1e-5, "augmented images");
    require_close(gxd.to_host(), gx, 1e-5, 1e-4, "dL/dx (atomic scatter)");
    for (std::int64_t i = 0; i < N; ++i) {
        INFO("image " << i << " op " << op_name(draws[static_cast<std::size_t>(i)].op));
        CHECK(gmd[static_cast<std::size_t>(i)] == Approx(gm[static_cast<std::size_t>(i)]).epsilon(1e-4).margin(1e-4));
    }
    const std::vector<OpDraw> colour{{Op::solarize}};
    CHECK_THROWS_AS(backend_cuda::warp_forward(cuda{}, xd.data(), yd.data(), colour, std::vector<double>{0.5}, 1, C, H, W, o),
                    value_error);
}

TEST_CASE("a failing CUDA call throws cuda_error naming the call and the status", "[cuda][errors]") {
    try {
        DAM_CUDA_CHECK(cudaSetDevice(12345));
        FAIL("cudaSetDevice(12345) did not fail");
    } catch (const cuda_error& e) {
        const std::string msg = e.what();
        CHECK(msg.find("cudaSetDevice(12345)") != std::string::npos);
        CHECK(msg.find("cudaErrorInvalidDevice") != std::string::npos);
    }
}

int main(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("SKIPPED: no CUDA device visible (cudaGetDeviceCount reports none); the kernel bodies are tested on "
                    "the CPU by dam_tests \"[body]\"\n");
        return 77;
    }
    cudaDeviceProp p{};
    DAM_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    std::printf("device 0: %s (compute capability %d.%d)\n", p.name, p.major, p.minor);
    return Catch::Session().run(argc, argv);
}
