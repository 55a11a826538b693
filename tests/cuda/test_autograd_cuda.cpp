// Autograd on the GPU from code compiled by the host compiler: Var<float, cuda> through the op
// front doors (convolution, batch norm with ReLU, channel shuffle, concat/narrow, pooling, linear,
// mixed op, cross-entropy, SGD), forward and backward, against the same computation on the CPU.
// The kernels come from diffautoml::cuda_backend (one nvcc-compiled .cu file). Without a GPU the
// program prints why and exits with 77 (skipped).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include <diffautoml/cuda/backend.hpp>
#include <diffautoml/diffautoml.hpp>

using namespace diffautoml;

namespace {

template <class T>
void require_close(const Tensor<T, cpu>& gpu, const Tensor<T, cpu>& ref, double atol, double rtol, const char* what) {
    REQUIRE(gpu.shape() == ref.shape());
    std::int64_t bad = 0;
    double worst = 0;
    for (std::int64_t i = 0; i < gpu.numel(); ++i) {
        const double d = std::abs(static_cast<double>(gpu[i]) - static_cast<double>(ref[i]));
        if (!(d <= atol + rtol * std::abs(static_cast<double>(ref[i])))) ++bad;
        worst = std::max(worst, d);
    }
    INFO(what << ": " << bad << " of " << gpu.numel() << " outside atol " << atol << " + rtol " << rtol << "; worst " << worst);
    CHECK(bad == 0);
}

Tensor<float> randn(const Shape& s, std::uint64_t seed, double sd = 1.0) {
    Tensor<float> t(s);
    Generator g(seed);
    normal_(t, g, 0.0, sd);
    return t;
}

/// A small network in the search space's style, run on device D from the given host parameters:
/// stem conv-BN-ReLU, a ShuffleNet unit (split, two branches, concat, shuffle), a mixed op of two
/// candidates, global pooling, linear, cross-entropy. Returns the loss.
template <Device D>
Var<float, D> network(const std::vector<Var<float, D>>& p, const Var<float, D>& x, const Tensor<std::int32_t, D>& labels) {
    using namespace ops;
    Var<float, D> h = conv2d(x, p[0], Var<float, D>{}, Conv2dOptions{1, 1, 1, 1});
    h = batchnorm2d(h, p[1], p[2], Tensor<float, D>{}, Tensor<float, D>{}, BatchNormOptions{true, 0.1, 1e-5, true});
    const auto left = narrow(h, 1, 0, 8), right = narrow(h, 1, 8, 8);
    auto r = conv2d(right, p[3], Var<float, D>{}, Conv2dOptions{1, 1, 1, 8});  // depthwise 3x3
    r = batchnorm2d(r, p[4], p[5], Tensor<float, D>{}, Tensor<float, D>{}, BatchNormOptions{true, 0.1, 1e-5, true});
    h = channel_shuffle(concat(std::vector<Var<float, D>>{left, r}, 1), 2);
    const auto a = max_pool2d(h, Pool2dOptions{2, 2, 0}), b = avg_pool2d(h, Pool2dOptions{2, 2, 0});
    h = weighted_sum(std::vector<Var<float, D>>{a, b}, p[6]);
    h = global_avg_pool2d(h);
    const auto logits = linear(flatten(h), p[7], p[8]);
    return cross_entropy(logits, labels, CrossEntropyOptions{});
}

}  // namespace

TEST_CASE("Var<float, cuda>: a network's loss and every parameter gradient match the CPU; SGD steps too", "[cuda][autograd]") {
    const std::vector<Tensor<float>> host{randn({16, 1, 3, 3}, 1, 0.5), randn({16}, 2, 0.1), randn({16}, 3, 0.1),
                                          randn({8, 1, 3, 3}, 4, 0.5),  randn({8}, 5, 0.1),  randn({8}, 6, 0.1),
                                          randn({2}, 7, 0.5),           randn({10, 16}, 8, 0.3), randn({10}, 9, 0.1)};
    const Tensor<float> x = randn({32, 1, 12, 12}, 10);
    Tensor<std::int32_t> labels(Shape{32});
    for (std::int64_t i = 0; i < 32; ++i) labels[i] = static_cast<std::int32_t>((i * 3) % 10);

    std::vector<Var<float, cpu>> pc;
    std::vector<Var<float, cuda>> pg;
    for (const auto& t : host) {
        pc.push_back(parameter(t.clone()));
        pg.push_back(parameter(to_device(t)));
    }
    const auto lc = network<cpu>(pc, Var<float, cpu>(x), labels);
    const auto lg = network<cuda>(pg, Var<float, cuda>(to_device(x)), to_device(labels));
    lc.backward();
    lg.backward();
    CHECK(static_cast<double>(to_host(lg.value())[0]) == Approx(static_cast<double>(lc.value()[0])).epsilon(1e-5));
    for (std::size_t k = 0; k < pc.size(); ++k) {
        INFO("parameter " << k);
        REQUIRE(pg[k].grad().defined());
        require_close(to_host(pg[k].grad()), pc[k].grad(), 1e-5, 1e-3, "gradient");
    }
    // One SGD step (momentum, weight decay) on each device from these gradients.
    optim::SGD<float, cpu> sc({{pc, 0.1, 1e-3, "all"}}, optim::SGDOptions{0.9, true, 0.0});
    optim::SGD<float, cuda> sg({{pg, 0.1, 1e-3, "all"}}, optim::SGDOptions{0.9, true, 0.0});
    sc.step();
    sg.step();
    for (std::size_t k = 0; k < pc.size(); ++k) require_close(to_host(pg[k].value()), pc[k].value(), 1e-6, 1e-4, "after SGD");
}

int main(int argc, char** argv) {
    if (cuda_device_count() == 0) {
        std::printf("SKIPPED: no CUDA device visible; Var<float, cuda> compiled and linked against the nvcc-built kernels\n");
        return 77;
    }
    return Catch::Session().run(argc, argv);
}
