#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include "test_helpers.hpp"

using namespace dam_test;
using VD = std::vector<Var<double>>;

TEST_CASE("elementwise unary ops pass the gradient checker", "[ops][gradcheck]") {
    auto x = randn(Shape{2, 3, 4}, 11);
    auto pos = Var<double>(Tensor<double>::from(Shape{5}, {0.3, 1.2, 2.5, 0.7, 4.0}), true);
    auto wide = randn(Shape{3, 7}, 12, true, 4.0);  // crosses 0 and 6 for relu6
    require_gradcheck([](const VD& v) { return ops::exp(v[0]); }, {x});
    require_gradcheck([](const VD& v) { return ops::log(v[0]); }, {pos});
    require_gradcheck([](const VD& v) { return ops::sqrt(v[0]); }, {pos});
    require_gradcheck([](const VD& v) { return ops::sigmoid(v[0] * 3.0); }, {x});
    require_gradcheck([](const VD& v) { return ops::tanh(v[0]); }, {x});
    require_gradcheck([](const VD& v) { return ops::relu(v[0]); }, {x});
    require_gradcheck([](const VD& v) { return ops::relu6(v[0]); }, {wide});
    require_gradcheck([](const VD& v) { return -ops::square(v[0]); }, {x});
    require_gradcheck([](const VD& v) { return ops::pow(v[0], 2.5); }, {pos});
    require_gradcheck([](const VD& v) { return 2.0 - v[0] * 3.0 + 1.0; }, {x});
    require_gradcheck([](const VD& v) { return 1.5 / v[0] - v[0] / 4.0; }, {pos});
    require_gradcheck([](const VD& v) { return ops::unary(v[0], fn::ScaleShift{0.3, -0.2}); }, {x});
    require_gradcheck([](const VD& v) { return ops::unary(v[0], fn::ShiftScale{-0.2, 1.0 / 0.3}); }, {x});
    // The affine pair computes its formulas and round-trips (pixels <-> stored values) to rounding.
    const Tensor<float> f = Tensor<float>::from(Shape{4}, {-1.5f, 0.0f, 0.25f, 3.0f});
    const auto there = ops::unary(Var<float>(f), fn::ScaleShift{0.3530, 0.2860}).value();
    const auto back = ops::unary(Var<float>(there), fn::ShiftScale{-0.2860, 1.0 / 0.3530}).value();
    for (std::int64_t i = 0; i < 4; ++i) {
        const double want = static_cast<double>(f[i]) * 0.3530 + 0.2860;
        CHECK(std::abs(static_cast<double>(there[i]) - want) <= 2 * std::numeric_limits<float>::epsilon() * (1 + std::abs(want)));
        CHECK(std::abs(back[i] - f[i]) <= 4 * std::numeric_limits<float>::epsilon() * (1 + std::abs(f[i])));
    }
}

TEST_CASE("binary ops with broadcasting pass the gradient checker", "[ops][gradcheck]") {
    auto a = randn(Shape{2, 3, 4, 5}, 21);
    auto b = randn(Shape{2, 3, 4, 5}, 22);
    auto per_channel = randn(Shape{3, 1, 1}, 23);
    auto row = randn(Shape{5}, 24);
    auto scalar = randn(Shape{1}, 25);
    auto den = Var<double>(Tensor<double>::from(Shape{3, 1, 1}, {1.5, -2.0, 0.8}), true);
    for (auto* name : {"add", "sub", "mul", "div"}) {
        SECTION(name) {
            const std::string op = name;
            auto f = [op](const VD& v) {
                if (op == "add") return v[0] + v[1];
                if (op == "sub") return v[0] - v[1];
                if (op == "mul") return v[0] * v[1];
                return v[0] / v[1];
            };
            require_gradcheck(f, {a, op == "div" ? den : b});
            require_gradcheck(f, {a, op == "div" ? den : per_channel});
            require_gradcheck(f, {op == "div" ? den : per_channel, a});
            require_gradcheck(f, {a, row});
            require_gradcheck(f, {a, scalar});
        }
    }
}

TEST_CASE("broadcasting computes the right values and rejects incompatible shapes", "[ops]") {
    auto x = Var<double>(Tensor<double>::from(Shape{1, 2, 1, 2}, {1, 2, 3, 4}));
    auto c = Var<double>(Tensor<double>::from(Shape{2, 1, 1}, {10, 20}));
    auto y = (x * c).value();
    CHECK(y.shape() == Shape{1, 2, 1, 2});
    CHECK(y[0] == 10);
    CHECK(y[1] == 20);
    CHECK(y[2] == 60);
    CHECK(y[3] == 80);
    auto bad = Var<double>(Tensor<double>::zeros(Shape{3}));
    require_throws_with<shape_error>([&] { (void)(x + bad); }, {"add", "(1, 2, 1, 2)", "(3,)"});
}

TEST_CASE("sum and mean pass the gradient checker", "[ops][gradcheck]") {
    auto x = randn(Shape{2, 3, 4}, 31);
    require_gradcheck([](const VD& v) { return ops::sum(v[0]); }, {x});
    require_gradcheck([](const VD& v) { return ops::mean(v[0]); }, {x});
    for (int axis : {0, 1, 2, -1}) {
        require_gradcheck([axis](const VD& v) { return ops::sum(v[0], axis); }, {x});
        require_gradcheck([axis](const VD& v) { return ops::mean(v[0], axis, true); }, {x});
    }
    auto s = ops::mean(x, 1, true);
    CHECK(s.shape() == Shape{2, 1, 4});
    require_throws_with<shape_error>([&] { (void)ops::sum(x, 3); }, {"sum", "axis 3"});
}

TEST_CASE("matmul and linear pass the gradient checker", "[ops][gradcheck]") {
    auto a = randn(Shape{3, 4}, 41), b = randn(Shape{4, 5}, 42);
    require_gradcheck([](const VD& v) { return ops::matmul(v[0], v[1]); }, {a, b});
    auto x = randn(Shape{6, 4}, 43), w = randn(Shape{3, 4}, 44), bias = randn(Shape{3}, 45);
    require_gradcheck([](const VD& v) { return ops::linear(v[0], v[1], v[2]); }, {x, w, bias});
    require_gradcheck([](const VD& v) { return ops::linear(v[0], v[1]); }, {x, w});
    require_throws_with<shape_error>([&] { (void)ops::matmul(a, a); }, {"matmul", "(3, 4)"});
    require_throws_with<shape_error>([&] { (void)ops::linear(x, b); }, {"linear", "(6, 4)", "(4, 5)"});
}

namespace {
// Direct 7-loop convolution, the reference for the im2col/GEMM and depthwise kernels.
Tensor<double> naive_conv(const Tensor<double>& x, const Tensor<double>& w, Conv2dOptions o) {
    const auto g = ConvGeometry::make(x.shape(), w.shape(), o);
    Tensor<double> y = Tensor<double>::zeros(g.out_shape());
    const std::int64_t cin_g = g.in_c / g.groups, cout_g = g.out_c / g.groups;
    for (std::int64_t n = 0; n < g.batch; ++n)
        for (std::int64_t co = 0; co < g.out_c; ++co)
            for (std::int64_t oh = 0; oh < g.out_h; ++oh)
                for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
                    double s = 0;
                    const std::int64_t grp = co / cout_g;
                    for (std::int64_t ci = 0; ci < cin_g; ++ci)
                        for (std::int64_t kh = 0; kh < g.kh; ++kh)
                            for (std::int64_t kw = 0; kw < g.kw; ++kw) {
                                const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dil_h;
                                const std::int64_t iw = ow * g.stride_w - g.pad_w + kw * g.dil_w;
                                if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
                                s += x[((n * g.in_c + grp * cin_g + ci) * g.in_h + ih) * g.in_w + iw] *
                                     w[((co * cin_g + ci) * g.kh + kh) * g.kw + kw];
                            }
                    y[((n * g.out_c + co) * g.out_h + oh) * g.out_w + ow] = s;
                }
    return y;
}
}  // namespace

TEST_CASE("conv2d matches a direct convolution and passes the gradient checker", "[ops][conv][gradcheck]") {
    struct Case {
        std::int64_t cin, cout, k, H, W;
        Conv2dOptions o;
        bool bias;
    };
    const Case cases[] = {
        {3, 4, 3, 5, 6, {1, 1, 1, 1}, true},   // plain 3x3
        {3, 4, 3, 7, 7, {2, 1, 1, 1}, false},  // stride 2
        {2, 3, 3, 7, 6, {1, 2, 2, 1}, false},  // dilation 2
        {4, 6, 3, 5, 5, {1, 1, 1, 2}, true},   // groups 2
        {4, 4, 3, 6, 6, {1, 1, 1, 4}, true},   // depthwise
        {4, 4, 5, 7, 7, {2, 2, 1, 4}, false},  // depthwise 5x5 stride 2
        {4, 8, 3, 5, 5, {1, 1, 1, 4}, false},  // grouped, multiplier 2
        {3, 5, 1, 4, 4, {1, 0, 1, 1}, true},   // pointwise
        {3, 5, 1, 5, 5, {2, 0, 1, 1}, false},  // strided 1x1 (shortcut)
        {2, 2, 3, 4, 4, {1, 0, 1, 1}, false},  // no padding
        // Strided kernels with several columns go through the phase-split plane (conv.hpp):
        {2, 3, 3, 8, 9, {2, 1, 1, 1}, true},   // stride 2, odd width (the pair loop's last column)
        {2, 3, 5, 9, 8, {2, 2, 1, 1}, false},  // stride 2, 5x5
        {2, 2, 3, 10, 7, {3, 1, 1, 1}, false}, // stride 3 (the general phase loop)
        {2, 2, 3, 9, 9, {2, 2, 2, 1}, false},  // stride 2, dilation 2: one phase read
        {2, 2, 3, 6, 6, {2, 3, 1, 1}, false},  // padding wider than the kernel's reach
        {4, 6, 3, 7, 7, {2, 1, 1, 2}, false},  // grouped, stride 2
    };
    int i = 0;
    for (const auto& c : cases) {
        INFO("case " << i++);
        auto x = randn(Shape{2, c.cin, c.H, c.W}, 100 + i);
        auto w = randn(Shape{c.cout, c.cin / c.o.groups, c.k, c.k}, 200 + i);
        auto b = randn(Shape{c.cout}, 300 + i);
        // Forward against the direct loops.
        auto y = ops::conv2d(x, w, Var<double>(), c.o).value();
        auto ref = naive_conv(x.value(), w.value(), c.o);
        REQUIRE(y.shape() == ref.shape());
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j]).margin(1e-12));
        if (c.bias) {
            require_gradcheck([o = c.o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
        } else {
            require_gradcheck([o = c.o](const VD& v) { return ops::conv2d(v[0], v[1], Var<double>(), o); }, {x, w});
        }
    }
}

TEST_CASE("conv2d batching several images per GEMM matches the direct convolution", "[ops][conv][gradcheck]") {
    // Small outputs make the kernels put several images side by side in one GEMM; a batch of 6
    // with 2 threads gives blocks of 3 images, and an uneven batch of 5 a short last block.
    const ScopedValue gemm_columns(backend_cpu::conv_detail::min_gemm_columns(), std::int64_t{1} << 20);
    const ScopedThreads threads(2);
    struct Case {
        std::int64_t N, cin, cout, k;
        Conv2dOptions o;
    };
    for (const Case c : {Case{6, 3, 4, 3, {1, 1, 1, 1}}, Case{5, 4, 6, 3, {2, 1, 1, 2}}, Case{6, 3, 5, 1, {1, 0, 1, 1}}}) {
        auto x = randn(Shape{c.N, c.cin, 4, 4}, 400 + c.N), w = randn(Shape{c.cout, c.cin / c.o.groups, c.k, c.k}, 401);
        auto b = randn(Shape{c.cout}, 402);
        auto y = ops::conv2d(x, w, Var<double>(), c.o).value();
        auto ref = naive_conv(x.value(), w.value(), c.o);
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j]).margin(1e-12));
        require_gradcheck([o = c.o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
    }
}

TEST_CASE("depthwise conv2d over several interleaved image groups matches the direct convolution",
          "[ops][conv][depthwise][gradcheck]") {
    // The depthwise kernel works on groups of 16 images: a batch of 19 gives one full group and
    // one of 3 (the missing lanes must contribute nothing), with strides, dilation, a kernel that
    // reads past the image and planes of uneven sizes; 2 threads split the (channel, group) pairs.
    const ScopedThreads threads(2);
    struct Case {
        std::int64_t N, C, k, H, W;
        Conv2dOptions o;
    };
    const Case cases[] = {{19, 3, 3, 6, 5, {1, 1, 1, 3}}, {17, 2, 5, 7, 9, {2, 2, 1, 2}},
                          {16, 2, 3, 7, 6, {1, 2, 2, 2}}, {3, 2, 7, 5, 5, {2, 3, 1, 2}},
                          {18, 2, 3, 7, 8, {3, 0, 1, 2}},   // the last row and columns are never read
                          {2, 2, 1, 1, 1, {7, 3, 1, 2}},    // the only tap reads padding: y = bias
                          // Stride 1 takes its data gradient as a forward convolution with the kernel
                          // flipped and padding (k - 1) dil - pad (cases 0 and 2); a padding beyond
                          // (k - 1) dil keeps the scatter.
                          {18, 2, 3, 4, 5, {1, 3, 1, 2}}};
    int i = 0;
    for (const auto& c : cases) {
        INFO("case " << i++);
        auto x = randn(Shape{c.N, c.C, c.H, c.W}, 800 + i), w = randn(Shape{c.C, 1, c.k, c.k}, 900 + i);
        auto b = randn(Shape{c.C}, 1000 + i);
        REQUIRE(backend_cpu::depthwise::applies(ConvGeometry::make(x.value().shape(), w.value().shape(), c.o)));
        auto y = ops::conv2d(x, w, Var<double>(), c.o).value();
        auto ref = naive_conv(x.value(), w.value(), c.o);
        REQUIRE(y.shape() == ref.shape());
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j]).margin(1e-12));
        require_gradcheck([o = c.o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
    }
}

TEST_CASE("Winograd F(2x2,3x3) and F(4x4,3x3) convolutions match the direct convolution and pass the gradient checker",
          "[ops][conv][winograd][gradcheck]") {
    // Forced on with each tile size, so that small test shapes take the Winograd path: output
    // sizes that are and are not multiples of the tile (partial edge tiles), padding 0, 1 and 2
    // (the data gradient then runs with padding 2, 1, 0), one and several images per block, a
    // batch that does not split evenly over the threads, and channel counts below, at and above
    // one vector of channels (4 doubles), whole and partial, on both sides (the transforms run on
    // a vector of channels; the padding lanes must stay out of every result).
    using backend_cpu::winograd::Mode;
    const Mode tile = GENERATE(Mode::f2, Mode::f4);
    INFO((tile == Mode::f2 ? "F(2x2,3x3)" : "F(4x4,3x3)"));
    const ScopedValue winograd(backend_cpu::winograd::mode(), tile);
    const ScopedThreads threads(2);
    struct Case {
        std::int64_t N, cin, cout, H, W, pad;
        bool bias;
    };
    const Case cases[] = {{2, 3, 4, 5, 6, 1, true}, {3, 2, 3, 7, 7, 0, false}, {2, 4, 2, 4, 5, 2, true},
                          {5, 3, 3, 3, 3, 1, false}, {1, 2, 5, 9, 4, 1, true}, {2, 2, 2, 13, 11, 1, false},
                          {2, 9, 4, 6, 5, 1, true},  {1, 8, 6, 5, 7, 2, false}};
    int i = 0;
    for (const auto& c : cases) {
        INFO("case " << i++);
        const Conv2dOptions o{1, c.pad, 1, 1};
        auto x = randn(Shape{c.N, c.cin, c.H, c.W}, 500 + i), w = randn(Shape{c.cout, c.cin, 3, 3}, 600 + i);
        auto b = randn(Shape{c.cout}, 700 + i);
        REQUIRE(backend_cpu::winograd::applies(ConvGeometry::make(x.value().shape(), w.value().shape(), o)));
        auto y = ops::conv2d(x, w, Var<double>(), o).value();
        auto ref = naive_conv(x.value(), w.value(), o);
        REQUIRE(y.shape() == ref.shape());
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j]).margin(1e-12));
        if (c.H * c.W > 100) continue;  // the gradient checker's cost grows with the input: small cases only
        if (c.bias) {
            require_gradcheck([o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
        } else {
            require_gradcheck([o](const VD& v) { return ops::conv2d(v[0], v[1], Var<double>(), o); }, {x, w});
        }
    }
    SECTION("the data and weight gradients match the direct convolution's on a 28-column layer") {
        // 784 pixels a channel: whole runs of pixels through the register transposes, and 49
        // (F4) or 196 (F2) tiles an image.
        const Conv2dOptions o{1, 1, 1, 1};
        auto x = randn(Shape{3, 3, 28, 28}, 81, true), w = randn(Shape{4, 3, 3, 3}, 82, true);
        auto check = [&](const auto& run) {
            x.zero_grad();
            w.zero_grad();
            auto y = run();
            ops::sum(ops::mul(y, y)).backward();
            return std::pair{x.grad().clone(), w.grad().clone()};
        };
        auto [dxw, dww] = check([&] { return ops::conv2d(x, w, Var<double>(), o); });
        backend_cpu::winograd::mode() = Mode::never;
        auto [dxd, dwd] = check([&] { return ops::conv2d(x, w, Var<double>(), o); });
        for (std::int64_t j = 0; j < dxw.numel(); ++j) REQUIRE(dxw[j] == Approx(dxd[j]).margin(1e-10));
        for (std::int64_t j = 0; j < dww.numel(); ++j) REQUIRE(dww[j] == Approx(dwd[j]).margin(1e-10));
    }
    SECTION("float Winograd agrees with float im2col") {
        // A layer of the reference net (whole vectors of 8 floats), and one with partial vectors
        // of channels on both sides and a pixel count that is not a multiple of 8.
        const std::pair<Shape, Shape> layers[] = {{Shape{6, 32, 14, 14}, Shape{32, 32, 3, 3}},
                                                  {Shape{3, 12, 9, 11}, Shape{10, 12, 3, 3}}};
        for (const auto& [xs, ws] : layers) {
            INFO("x " << xs.str() << " w " << ws.str());
            auto x = randn(xs, 71, false), w = randn(ws, 72, false);
            Var<float> xf(cast<float>(x.value()), true), wf(cast<float>(w.value()), true);
            auto run = [&](backend_cpu::winograd::Mode m) {
                backend_cpu::winograd::mode() = m;
                xf.zero_grad();
                wf.zero_grad();
                auto y = ops::conv2d(xf, wf, Var<float>(), {1, 1, 1, 1});
                ops::sum(ops::mul(y, y)).backward();
                return std::tuple{y.value().clone(), xf.grad().clone(), wf.grad().clone()};
            };
            auto [yw, dxw, dww] = run(tile);
            auto [yi, dxi, dwi] = run(Mode::never);
            // Float Winograd's rounding error grows with the largest terms of a sum, so the bound
            // is a fraction of the tensor's largest magnitude: against a double reference on the
            // first layer (4 seeds) the worst errors were 2.1e-7 to 3.1e-7 of it for F(2x2) and
            // 1.3e-6 to 5.2e-6 for F(4x4) (larger transform coefficients); the bounds are 3-4 times
            // the worst.
            const double rel = tile == Mode::f4 ? 2e-5 : 1e-6;
            auto require_close = [rel](const Tensor<float>& got, const Tensor<float>& want) {
                float scale = 0;
                for (std::int64_t j = 0; j < want.numel(); ++j) scale = std::max(scale, std::abs(want[j]));
                for (std::int64_t j = 0; j < got.numel(); ++j) REQUIRE(got[j] == Approx(want[j]).margin(rel * scale));
            };
            require_close(yw, yi);
            require_close(dxw, dxi);
            require_close(dww, dwi);
        }
    }
}

TEST_CASE("implicit-GEMM convolutions match the direct convolution and im2col's gradients",
          "[ops][conv][implicit_gemm][gradcheck]") {
    // Dense layers of at least 8 channels that Winograd does not take run as implicit GEMMs over
    // channel-interleaved planes (ops/cpu/implicit_gemm.hpp): strides 2 and 3, dilation, 5x5 and
    // 1x3 kernels, padding 0-2, odd sizes, channel counts that fill 2 or 3 vectors of 4 doubles
    // partly, output pixel counts that leave a short last block of 6, a batch that does not split
    // evenly over 2 threads.
    const ScopedThreads threads(2);
    using backend_cpu::implicit_gemm::Mode;
    struct Case {
        std::int64_t N, cin, cout, kh, kw, H, W;
        Conv2dOptions o;
    };
    const Case cases[] = {{3, 9, 10, 3, 3, 7, 8, {2, 1, 1, 1}},  {2, 8, 8, 5, 5, 11, 9, {3, 2, 1, 1}},
                          {3, 12, 9, 3, 3, 9, 7, {1, 2, 2, 1}},  {1, 8, 13, 3, 3, 8, 8, {2, 0, 1, 1}},
                          {2, 10, 8, 1, 3, 6, 7, {1, 1, 1, 1}},  {5, 8, 17, 3, 3, 5, 6, {2, 1, 1, 1}}};
    int i = 0;
    for (const auto& c : cases) {
        INFO("case " << i++);
        auto x = randn(Shape{c.N, c.cin, c.H, c.W}, 900 + i), w = randn(Shape{c.cout, c.cin, c.kh, c.kw}, 950 + i);
        auto b = randn(Shape{c.cout}, 990 + i);
        const auto g = ConvGeometry::make(x.value().shape(), w.value().shape(), c.o);
        REQUIRE(backend_cpu::implicit_gemm::applies(g));
        auto y = ops::conv2d(x, w, b, c.o).value();
        auto ref = naive_conv(x.value(), w.value(), c.o);
        REQUIRE(y.shape() == ref.shape());
        const std::int64_t ohw = g.out_h * g.out_w;
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j] + b.value()[j / ohw % c.cout]).margin(1e-12));
        // The weight gradient against im2col's.
        auto grads = [&](Mode m) {
            const ScopedValue mode(backend_cpu::implicit_gemm::mode(), m);
            w.zero_grad();
            auto out = ops::conv2d(x, w, Var<double>(), c.o);
            ops::sum(ops::mul(out, out)).backward();
            return w.grad().clone();
        };
        const auto dw = grads(Mode::automatic), dw_ref = grads(Mode::never);
        for (std::int64_t j = 0; j < dw.numel(); ++j) REQUIRE(dw[j] == Approx(dw_ref[j]).margin(1e-10));
    }
    SECTION("gradient checker") {
        auto x = randn(Shape{2, 8, 5, 6}, 61), w = randn(Shape{9, 8, 3, 3}, 62), b = randn(Shape{9}, 63);
        const Conv2dOptions o{2, 1, 1, 1};
        REQUIRE(backend_cpu::implicit_gemm::applies(ConvGeometry::make(x.value().shape(), w.value().shape(), o)));
        require_gradcheck([o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
    }
    SECTION("float agrees with float im2col on a strided layer of the reference net") {
        auto x = randn(Shape{3, 32, 14, 14}, 64, false), w = randn(Shape{24, 32, 3, 3}, 65, false);
        Var<float> xf(cast<float>(x.value()), true), wf(cast<float>(w.value()), true);
        auto run = [&](Mode m) {
            const ScopedValue mode(backend_cpu::implicit_gemm::mode(), m);
            wf.zero_grad();
            auto y = ops::conv2d(xf, wf, Var<float>(), {2, 1, 1, 1});
            ops::sum(ops::mul(y, y)).backward();
            return std::pair{y.value().clone(), wf.grad().clone()};
        };
        const auto [y, dw] = run(Mode::automatic);
        const auto [y_ref, dw_ref] = run(Mode::never);
        // Both sum 288 products a value in float, in different orders: a few float epsilons of
        // the largest term sums.
        for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(y_ref[j]).epsilon(1e-5).margin(1e-4));
        for (std::int64_t j = 0; j < dw.numel(); ++j) REQUIRE(dw[j] == Approx(dw_ref[j]).epsilon(1e-5).margin(1e-2));
    }
}

namespace {
/// The settings of simd::wide_vectors() this CPU can run: the AVX2 path always, AVX-512 where present.
std::vector<bool> gemm_paths() {
    if (backend_cpu::simd::cpu_has_avx512()) return {false, true};
    return {false};
}
}  // namespace

TEST_CASE("the small GEMM gives the same sums on 32- and 64-byte vectors, and the right ones",
          "[ops][conv][simd]") {
    // Rows that leave every remainder of the 6-row blocks, columns that fill 64-byte vectors
    // wholly, partly (a 32-byte tail) or not at all, A read directly and transposed, overwrite and
    // accumulate. Each output is one chain of fused multiply-adds in the same order on both paths,
    // so the two agree to the bit; the reference sums in double.
    using backend_cpu::simd::small_gemm;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (const std::int64_t rows : {1, 5, 6, 7, 13})
        for (const std::int64_t cols : {8, 16, 24, 40, 64})
            for (const std::int64_t inner : {1, 3, 17})
                for (const bool transposed : {false, true})
                    for (const bool accumulate : {false, true}) {
                        INFO(rows << " x " << cols << " x " << inner << (transposed ? " A^T" : "") << (accumulate ? " +=" : ""));
                        std::vector<float> A(rows * inner), B(inner * cols), C0(rows * cols);
                        for (auto* v : {&A, &B, &C0})
                            for (float& e : *v) e = u(rng);
                        const std::int64_t ars = transposed ? 1 : inner, ais = transposed ? rows : 1;
                        std::vector<std::vector<float>> results;
                        for (const bool wide : gemm_paths()) {
                            const ScopedValue path(backend_cpu::simd::wide_vectors(), wide);
                            std::vector<float> C = C0;
                            small_gemm(rows, cols, inner, A.data(), ars, ais, B.data(), cols, C.data(), cols, accumulate);
                            results.push_back(C);
                        }
                        for (std::int64_t r = 0; r < rows; ++r)
                            for (std::int64_t c = 0; c < cols; ++c) {
                                double ref = accumulate ? C0[r * cols + c] : 0.0;
                                for (std::int64_t i = 0; i < inner; ++i)
                                    ref += double(A[r * ars + i * ais]) * double(B[i * cols + c]);
                                REQUIRE(results[0][r * cols + c] == Approx(ref).margin(1e-5));
                            }
                        for (std::size_t k = 1; k < results.size(); ++k) REQUIRE(results[k] == results[0]);
                    }
}

TEST_CASE("GEMM-based convolutions match the direct convolution on both vector widths",
          "[ops][conv][simd][gradcheck]") {
    // With AVX-512 the GEMM-based layers leave Eigen for the small GEMM on 64-byte vectors: columns
    // padded to whole vectors (7x7 planes, one and three images a block), channels that fill no
    // whole vector (the pointwise weight gradient pads them), groups, a short last block, strided
    // and dilated kernels through im2col; Winograd's and the implicit GEMM's products switch vector
    // width too.
    const ScopedThreads threads(2);
    const ScopedValue gemm_columns(backend_cpu::conv_detail::min_gemm_columns(), std::int64_t{128});
    const ScopedValue winograd(backend_cpu::winograd::mode(), backend_cpu::winograd::Mode::f4);
    struct Case {
        std::int64_t N, cin, cout, k, H;
        Conv2dOptions o;
    };
    const Case cases[] = {{5, 13, 21, 1, 7, {1, 0, 1, 1}},   // 3 images a block, then 2
                          {2, 6, 4, 1, 12, {1, 0, 1, 2}},    // groups, 144 columns
                          {2, 9, 17, 3, 5, {1, 1, 1, 1}},    // Winograd, channels past one wide vector
                          {4, 6, 10, 1, 9, {2, 0, 1, 1}},    // strided 1x1 (a shortcut): im2col's block path
                          {3, 5, 7, 3, 7, {1, 2, 2, 1}},     // dilated 3x3, too few channels for the implicit GEMM
                          {3, 9, 10, 3, 7, {2, 1, 1, 1}}};   // strided 3x3: implicit GEMM, data gradient by blocks
    for (const bool wide : gemm_paths()) {
        const ScopedValue path(backend_cpu::simd::wide_vectors(), wide);
        int i = 0;
        for (const auto& c : cases) {
            INFO((wide ? "64-byte vectors" : "32-byte vectors") << ", case " << i++);
            auto x = randn(Shape{c.N, c.cin, c.H, c.H}, 1100 + i), w = randn(Shape{c.cout, c.cin / c.o.groups, c.k, c.k}, 1200 + i);
            auto b = randn(Shape{c.cout}, 1300 + i);
            const auto g = ConvGeometry::make(x.value().shape(), w.value().shape(), c.o);
            REQUIRE(backend_cpu::conv_detail::pointwise_on_wide_gemm(g) == (wide && c.k == 1 && c.o.stride == 1));
            auto y = ops::conv2d(x, w, Var<double>(), c.o).value();
            auto ref = naive_conv(x.value(), w.value(), c.o);
            REQUIRE(y.shape() == ref.shape());
            for (std::int64_t j = 0; j < y.numel(); ++j) REQUIRE(y[j] == Approx(ref[j]).margin(1e-12));
            require_gradcheck([o = c.o](const VD& v) { return ops::conv2d(v[0], v[1], v[2], o); }, {x, w, b});
        }
    }
}

TEST_CASE("conv2d in float agrees with double; bad shapes are typed errors", "[ops][conv]") {
    auto x = randn(Shape{3, 8, 9, 9}, 51, false), w = randn(Shape{16, 8, 3, 3}, 52, false);
    auto yd = ops::conv2d(x, w, Var<double>(), {1, 1, 1, 1}).value();
    auto yf = ops::conv2d(Var<float>(cast<float>(x.value())), Var<float>(cast<float>(w.value())), Var<float>(), {1, 1, 1, 1}).value();
    for (std::int64_t j = 0; j < yd.numel(); ++j) REQUIRE(yf[j] == Approx(yd[j]).margin(1e-4));
    require_throws_with<shape_error>([&] { (void)ops::conv2d(x, randn(Shape{16, 4, 3, 3}, 1), Var<double>(), {}); },
                                     {"conv2d", "(3, 8, 9, 9)", "(16, 4, 3, 3)"});
    require_throws_with<shape_error>([&] { (void)ops::conv2d(randn(Shape{8, 9, 9}, 1), w, Var<double>(), {}); },
                                     {"conv2d", "(N, C, H, W)", "(8, 9, 9)"});
    require_throws_with<value_error>([&] { (void)ops::conv2d(x, w, Var<double>(), {0, 1, 1, 1}); }, {"conv2d", "stride 0"});
}

TEST_CASE("batchnorm2d passes the gradient checker in training and evaluation mode", "[ops][norm][gradcheck]") {
    auto x = randn(Shape{3, 2, 3, 3}, 61, true, 2.0);
    auto gamma = randn(Shape{2}, 62), beta = randn(Shape{2}, 63);
    Tensor<double> rm = Tensor<double>::from(Shape{2}, {0.1, -0.2}), rv = Tensor<double>::from(Shape{2}, {1.5, 0.7});
    require_gradcheck(
        [](const VD& v) {
            return ops::batchnorm2d(v[0], v[1], v[2], Tensor<double>(), Tensor<double>(), {true, 0.1, 1e-5});
        },
        {x, gamma, beta});
    require_gradcheck([rm, rv](const VD& v) { return ops::batchnorm2d(v[0], v[1], v[2], rm, rv, {false, 0.1, 1e-5}); },
                      {x, gamma, beta});
    // Fused ReLU, both modes: the gradient is masked by the output.
    require_gradcheck(
        [](const VD& v) {
            return ops::batchnorm2d(v[0], v[1], v[2], Tensor<double>(), Tensor<double>(), {true, 0.1, 1e-5, true});
        },
        {x, gamma, beta});
    require_gradcheck([rm, rv](const VD& v) { return ops::batchnorm2d(v[0], v[1], v[2], rm, rv, {false, 0.1, 1e-5, true}); },
                      {x, gamma, beta});
}

TEST_CASE("batchnorm2d normalises and updates its running statistics", "[ops][norm]") {
    auto x = randn(Shape{8, 3, 4, 4}, 64, false, 3.0);
    Tensor<double> rm = Tensor<double>::zeros(Shape{3}), rv = Tensor<double>::full(Shape{3}, 1.0);
    auto y = ops::batchnorm2d(x, Var<double>(), Var<double>(), rm, rv, {true, 0.1, 1e-5}).value();
    for (int c = 0; c < 3; ++c) {
        double s = 0, s2 = 0, xs = 0, xs2 = 0;
        for (int n = 0; n < 8; ++n)
            for (int i = 0; i < 16; ++i) {
                const double v = y[(n * 3 + c) * 16 + i], u = x.value()[(n * 3 + c) * 16 + i];
                s += v;
                s2 += v * v;
                xs += u;
                xs2 += u * u;
            }
        CHECK(s / 128 == Approx(0.0).margin(1e-12));
        CHECK(s2 / 128 == Approx(1.0).epsilon(1e-4));
        const double mean = xs / 128, unbiased = (xs2 - 128 * mean * mean) / 127;
        CHECK(rm[c] == Approx(0.1 * mean));
        CHECK(rv[c] == Approx(0.9 + 0.1 * unbiased));
    }
    // The fused ReLU equals relu(batchnorm(x)); statistics stay accurate for a large offset.
    auto shifted = Var<double>(x.value().clone());
    for (std::int64_t i = 0; i < shifted.numel(); ++i) shifted.value()[i] += 1e4;
    auto plain = ops::relu(ops::batchnorm2d(shifted, Var<double>(), Var<double>(), Tensor<double>(), Tensor<double>(), {})).value();
    auto fused = ops::batchnorm2d(shifted, Var<double>(), Var<double>(), Tensor<double>(), Tensor<double>(), {true, 0.1, 1e-5, true}).value();
    for (std::int64_t i = 0; i < fused.numel(); ++i) REQUIRE(fused[i] == Approx(plain[i]).margin(1e-9));
    for (std::int64_t i = 0; i < fused.numel(); ++i) REQUIRE(plain[i] == Approx(std::max(0.0, y[i])).margin(1e-6));
    require_throws_with<shape_error>([&] { (void)ops::batchnorm2d(x, randn(Shape{4}, 1), Var<double>(), rm, rv, {}); },
                                     {"batchnorm2d", "(4,)", "(8, 3, 4, 4)"});
}

TEST_CASE("batchnorm2d: batches long enough to prefetch, and empty planes", "[ops][norm][gradcheck]") {
    // The first passes prefetch the planes of image n + ahead (4 to 16 images ahead): the
    // gradient checker above uses 3 images, so it never reaches that path. 20 images of 2x3
    // doubles prefetch 16 ahead, for the first 4 images.
    auto x = randn(Shape{20, 2, 2, 3}, 65, true, 1.5);
    auto gamma = randn(Shape{2}, 66), beta = randn(Shape{2}, 67);
    for (const bool relu : {false, true})
        require_gradcheck(
            [relu](const VD& v) {
                return ops::batchnorm2d(v[0], v[1], v[2], Tensor<double>(), Tensor<double>(), {true, 0.1, 1e-5, relu});
            },
            {x, gamma, beta});
    // Planes of no values: evaluation mode runs forward and backward (nothing to normalise,
    // zero parameter gradients); training mode refuses, it has no statistics to compute.
    Var<double> empty(Tensor<double>(Shape{2, 3, 0, 4}), true);
    Var<double> g3(Tensor<double>::full(Shape{3}, 1.0), true), b3(Tensor<double>::zeros(Shape{3}), true);
    Tensor<double> rm = Tensor<double>::zeros(Shape{3}), rv = Tensor<double>::full(Shape{3}, 1.0);
    auto y = ops::batchnorm2d(empty, g3, b3, rm, rv, {false, 0.1, 1e-5});
    CHECK(y.shape() == Shape{2, 3, 0, 4});
    ops::sum(y).backward();
    CHECK(empty.grad().numel() == 0);
    for (std::int64_t c = 0; c < 3; ++c) {
        CHECK(g3.grad()[c] == 0.0);
        CHECK(b3.grad()[c] == 0.0);
    }
    require_throws_with<shape_error>(
        [&] { (void)ops::batchnorm2d(empty, g3, b3, rm, rv, {true, 0.1, 1e-5}); }, {"batchnorm2d", "(2, 3, 0, 4)"});
}

namespace {
/// An allreduce (sum) between two threads standing for two ranks: each call waits for the other
/// thread's call, and both get the sum.
class TwoRankSum {
public:
    void operator()(std::span<double> v) {
        std::unique_lock<std::mutex> lock(m_);
        const int generation = generation_;
        if (arrived_ == 0) acc_.assign(v.begin(), v.end());
        else for (std::size_t i = 0; i < v.size(); ++i) acc_[i] += v[i];
        if (++arrived_ == 2) {
            sum_ = acc_;
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
        } else {
            cv_.wait(lock, [&] { return generation_ != generation; });
        }
        if (sum_.size() != v.size()) mismatched_ = true;  // checked on the test's thread (Catch is not thread-safe)
        else std::copy(sum_.begin(), sum_.end(), v.begin());
    }
    int calls() const { return generation_; }
    bool mismatched() const { return mismatched_; }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<double> acc_, sum_;
    int arrived_ = 0, generation_ = 0;
    bool mismatched_ = false;
};
}  // namespace

TEST_CASE("batchnorm2d_sync on two ranks equals batchnorm2d on the union of their batches; one rank is batchnorm2d",
          "[ops][norm][gradcheck]") {
    // Two threads stand for two ranks, each with half of the batch. Every value and gradient of
    // the whole batch's batch norm is reproduced: y and dx on each half, dgamma and dbeta as the
    // sum of the ranks' own (what the trainer's allreduce of parameter gradients adds), and the
    // running statistics (unbiased variance over all 8 images) on both ranks.
    const auto x = randn(Shape{8, 3, 4, 5}, 81, false, 2.0);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.value()[i] += 50.0 * static_cast<double>(i % 3);  // offsets
    const auto w = randn(Shape{8, 3, 4, 5}, 82, false);  // the loss sum(y * w)
    const auto gamma0 = randn(Shape{3}, 83), beta0 = randn(Shape{3}, 84);
    const Tensor<double> rm0 = Tensor<double>::from(Shape{3}, {0.5, 40.0, 120.0}), rv0 = Tensor<double>::full(Shape{3}, 2.0);
    for (const bool relu : {false, true}) {
        INFO("fused ReLU " << relu);
        const ops::BatchNormOptions o{true, 0.1, 1e-5, relu};
        Var<double> xw(x.value().clone(), true), gw(gamma0.value().clone(), true), bw(beta0.value().clone(), true);
        Tensor<double> rm = rm0.clone(), rv = rv0.clone();
        const auto yw = ops::batchnorm2d(xw, gw, bw, rm, rv, o);
        ops::sum(ops::mul(yw, w)).backward();

        TwoRankSum reduce;
        struct Rank {
            Var<double> x, gamma, beta, y;
            Tensor<double> rm, rv;
        };
        Rank ranks[2];
        auto run = [&](int r) {
            Rank& k = ranks[r];
            k.x = Var<double>(ops::narrow(x, 0, 4 * r, 4).value().clone(), true);
            k.gamma = Var<double>(gamma0.value().clone(), true);
            k.beta = Var<double>(beta0.value().clone(), true);
            k.rm = rm0.clone();
            k.rv = rv0.clone();
            const ops::ChannelReduce sum = [&](std::span<double> v) { reduce(v); };
            k.y = ops::batchnorm2d_sync(k.x, k.gamma, k.beta, k.rm, k.rv, o, sum);
            ops::sum(ops::mul(k.y, ops::narrow(w, 0, 4 * r, 4))).backward();
        };
        std::thread other(run, 1);
        run(0);
        other.join();
        CHECK(reduce.calls() == 2);  // one reduce forward, one backward
        CHECK_FALSE(reduce.mismatched());
        double worst = 0;
        auto diff = [&](const Tensor<double>& a, const Tensor<double>& b, std::int64_t offset) {
            for (std::int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::abs(a[i] - b[offset + i]));
        };
        for (int r = 0; r < 2; ++r) {
            diff(ranks[r].y.value(), yw.value(), r * ranks[r].y.numel());
            diff(ranks[r].x.grad(), xw.grad(), r * ranks[r].x.numel());
            diff(ranks[r].rm, rm, 0);
            diff(ranks[r].rv, rv, 0);
        }
        Tensor<double> dg(Shape{3}), db(Shape{3});
        for (std::int64_t c = 0; c < 3; ++c) {
            dg[c] = ranks[0].gamma.grad()[c] + ranks[1].gamma.grad()[c];
            db[c] = ranks[0].beta.grad()[c] + ranks[1].beta.grad()[c];
        }
        diff(dg, gw.grad(), 0);
        diff(db, bw.grad(), 0);
        CHECK(worst < 1e-10);
    }
    // One rank (the identity as the reduction) is batchnorm2d in training mode, and passes the
    // gradient checker on its own.
    const ops::ChannelReduce identity = [](std::span<double>) {};
    auto xs = randn(Shape{3, 2, 3, 3}, 85, true, 2.0);
    auto gamma = randn(Shape{2}, 86), beta = randn(Shape{2}, 87);
    for (const bool relu : {false, true}) {
        const ops::BatchNormOptions o{true, 0.1, 1e-5, relu};
        require_gradcheck([&](const VD& v) { return ops::batchnorm2d_sync(v[0], v[1], v[2], Tensor<double>(), Tensor<double>(), o, identity); },
                          {xs, gamma, beta});
        const auto a = ops::batchnorm2d_sync(xs, gamma, beta, Tensor<double>(), Tensor<double>(), o, identity).value();
        const auto b = ops::batchnorm2d(xs, gamma, beta, Tensor<double>(), Tensor<double>(), o).value();
        for (std::int64_t i = 0; i < a.numel(); ++i) REQUIRE(a[i] == Approx(b[i]).margin(1e-12));
    }
    require_throws_with<value_error>(
        [&] {
            (void)ops::batchnorm2d_sync(xs, gamma, beta, Tensor<double>::zeros(Shape{2}), Tensor<double>::full(Shape{2}, 1.0),
                                        {false, 0.1, 1e-5}, identity);
        },
        {"batchnorm2d_sync", "evaluation mode"});
}

TEST_CASE("nn::BatchNorm2d synchronises inside a SyncBatchNormScope, in training mode only", "[ops][norm]") {
    int calls = 0;
    const ops::ChannelReduce counting = [&](std::span<double>) { ++calls; };
    nn::BatchNorm2d<double> bn(3);
    const auto x = randn(Shape{4, 3, 2, 2}, 88, true);
    const auto plain = bn.forward(x).value();
    CHECK(calls == 0);
    {
        ops::SyncBatchNormScope scope(counting);
        REQUIRE(ops::batchnorm_sync() != nullptr);
        const auto y = bn.forward(x);
        CHECK(y.op() == "batchnorm2d_sync");
        for (std::int64_t i = 0; i < y.numel(); ++i) REQUIRE(y.value()[i] == Approx(plain[i]).margin(1e-12));
        ops::sum(y).backward();
        CHECK(calls == 2);
        bn.eval();
        CHECK(bn.forward(x).op() == "batchnorm2d");  // evaluation: the running statistics, nothing to sum
        CHECK(calls == 2);
    }
    CHECK(ops::batchnorm_sync() == nullptr);
}

TEST_CASE("pooling passes the gradient checker and computes the window values", "[ops][pool][gradcheck]") {
    auto x = randn(Shape{2, 3, 6, 5}, 71);
    require_gradcheck([](const VD& v) { return ops::max_pool2d(v[0], {2, 2, 0}); }, {x});
    require_gradcheck([](const VD& v) { return ops::max_pool2d(v[0], {3, 2, 1}); }, {x});
    require_gradcheck([](const VD& v) { return ops::avg_pool2d(v[0], {2, 2, 0}); }, {x});
    require_gradcheck([](const VD& v) { return ops::avg_pool2d(v[0], {3, 1, 1}); }, {x});
    require_gradcheck([](const VD& v) { return ops::global_avg_pool2d(v[0]); }, {x});
    auto t = Var<double>(Tensor<double>::from(Shape{1, 1, 2, 4}, {1, 5, 2, 0, 3, 4, 8, 7}));
    auto m = ops::max_pool2d(t, {2, 2, 0}).value();
    auto a = ops::avg_pool2d(t, {2, 2, 0}).value();
    auto g = ops::global_avg_pool2d(t).value();
    CHECK(m[0] == 5);
    CHECK(m[1] == 8);
    CHECK(a[0] == Approx(13.0 / 4));
    CHECK(a[1] == Approx(17.0 / 4));
    CHECK(g[0] == Approx(30.0 / 8));
    require_throws_with<shape_error>([&] { (void)ops::max_pool2d(t, {3, 3, 0}); }, {"max_pool2d", "3x3"});
}

TEST_CASE("concat, split, narrow, channel shuffle, reshape and flatten", "[ops][shape][gradcheck]") {
    auto a = randn(Shape{2, 3, 2, 2}, 81), b = randn(Shape{2, 5, 2, 2}, 82);
    require_gradcheck([](const VD& v) { return ops::concat<double, cpu>({v[0], v[1]}, 1); }, {a, b});
    require_gradcheck([](const VD& v) { return ops::concat<double, cpu>({v[0], v[0]}, 0); }, {a});
    require_gradcheck(
        [](const VD& v) {
            auto parts = ops::split(v[0], {2, 1, 5}, 1);
            return parts[0] * 2.0 + ops::narrow(parts[2], 1, 1, 2) * 3.0;
        },
        {Var<double>(ops::concat<double, cpu>({a, b}, 1).value().clone(), true)});
    require_gradcheck([](const VD& v) { return ops::channel_shuffle(v[0], 2); }, {randn(Shape{2, 6, 2, 3}, 83)});
    require_gradcheck([](const VD& v) { return ops::flatten(v[0]) * 2.0; }, {a});
    require_gradcheck([](const VD& v) { return ops::reshape(v[0], Shape{4, -1}) * 2.0; }, {a});
    // The shuffle interleaves the groups: channels (0 1 2 | 3 4 5) -> (0 3 1 4 2 5).
    Tensor<double> c(Shape{1, 6, 1, 1});
    for (int i = 0; i < 6; ++i) c[i] = i;
    auto s = ops::channel_shuffle(Var<double>(c), 2).value();
    const double expect[] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; ++i) CHECK(s[i] == expect[i]);
    require_throws_with<shape_error>([&] { (void)ops::concat<double, cpu>({a, randn(Shape{2, 3, 3, 2}, 1)}, 1); },
                                     {"concat", "(2, 3, 2, 2)", "(2, 3, 3, 2)"});
    require_throws_with<shape_error>([&] { (void)ops::split(a, {1, 1}, 1); }, {"split", "add up to 2"});
    require_throws_with<shape_error>([&] { (void)ops::channel_shuffle(a, 2); }, {"channel_shuffle", "2 groups"});
}

TEST_CASE("concat_shuffle equals channel_shuffle(concat) and passes the gradient checker", "[ops][shape][gradcheck]") {
    // Equal branches (a ShuffleNetV2 unit that keeps its width) and unequal ones (the first unit of
    // a stage, e.g. 16 -> 48 channels: projection 16, main branch 32), with one constant input.
    require_gradcheck([](const VD& v) { return ops::concat_shuffle(v[0], v[1]); },
                      {randn(Shape{2, 3, 2, 3}, 84), randn(Shape{2, 3, 2, 3}, 85)});
    require_gradcheck([](const VD& v) { return ops::concat_shuffle(v[0], v[1]); },
                      {randn(Shape{2, 2, 3, 2}, 86), randn(Shape{2, 4, 3, 2}, 87)});
    require_gradcheck([](const VD& v) { return ops::concat_shuffle(v[0], ops::tanh(v[0]) * 2.0); },
                      {randn(Shape{3, 5, 2, 2}, 88)});
    const auto c = randn(Shape{2, 1, 2, 2}, 89, false);
    require_gradcheck([&c](const VD& v) { return ops::concat_shuffle(c, v[0]); }, {randn(Shape{2, 3, 2, 2}, 90)});
    // ShuffleNetV2's split: x cut into two slices that are merged again, and x used once more.
    require_gradcheck(
        [](const VD& v) {
            const auto& x = v[0];
            return ops::concat_shuffle(ops::narrow(x, 1, 0, 2), ops::tanh(ops::narrow(x, 1, 2, 2))) + x * 0.5;
        },
        {randn(Shape{2, 4, 3, 3}, 91)});
    // Bit for bit what the two ops give, forward and backward, on odd sizes.
    for (auto [ca, cb] : {std::pair{4, 4}, std::pair{1, 5}, std::pair{6, 2}}) {
        const auto a = randn(Shape{3, ca, 5, 7}, 92 + ca), b = randn(Shape{3, cb, 5, 7}, 93 + cb);
        const auto w = randn(Shape{3, ca + cb, 5, 7}, 94, false);
        const auto fused = ops::concat_shuffle(a, b);
        ops::sum(ops::mul(fused, w)).backward();
        const Tensor<double> ga = a.grad().clone(), gb = b.grad().clone();
        const auto a2 = Var<double>(a.value(), true), b2 = Var<double>(b.value(), true);
        const auto ref = ops::channel_shuffle(ops::concat<double, cpu>({a2, b2}, 1), 2);
        ops::sum(ops::mul(ref, w)).backward();
        REQUIRE(fused.shape() == ref.shape());
        for (std::int64_t i = 0; i < ref.value().numel(); ++i) REQUIRE(fused.value()[i] == ref.value()[i]);
        for (std::int64_t i = 0; i < ga.numel(); ++i) REQUIRE(ga[i] == a2.grad()[i]);
        for (std::int64_t i = 0; i < gb.numel(); ++i) REQUIRE(gb[i] == b2.grad()[i]);
    }
    const auto a = randn(Shape{2, 3, 2, 2}, 95);
    require_throws_with<shape_error>([&] { (void)ops::concat_shuffle(a, randn(Shape{2, 2, 2, 2}, 96)); },
                                     {"concat_shuffle", "3 + 2", "even"});
    require_throws_with<shape_error>([&] { (void)ops::concat_shuffle(a, randn(Shape{2, 3, 2, 3}, 97)); },
                                     {"concat_shuffle", "(2, 3, 2, 2)", "(2, 3, 2, 3)"});
}

TEST_CASE("softmax, log_softmax and cross-entropy pass the gradient checker", "[ops][loss][gradcheck]") {
    auto z = randn(Shape{4, 5}, 91, true, 2.0);
    auto z3 = randn(Shape{2, 3, 4}, 92);
    require_gradcheck([](const VD& v) { return ops::softmax(v[0]); }, {z});
    require_gradcheck([](const VD& v) { return ops::log_softmax(v[0]); }, {z});
    require_gradcheck([](const VD& v) { return ops::softmax(v[0], 1); }, {z3});
    require_gradcheck([](const VD& v) { return ops::log_softmax(v[0], 0); }, {z3});
    const auto labels = Tensor<std::int32_t>::from(Shape{4}, {0, 3, 4, 1});
    for (double eps : {0.0, 0.1}) {
        require_gradcheck([&](const VD& v) { return ops::cross_entropy(v[0], labels, {eps, ops::Reduction::mean}); }, {z});
        require_gradcheck([&](const VD& v) { return ops::cross_entropy(v[0], labels, {eps, ops::Reduction::none}); }, {z});
        require_gradcheck([&](const VD& v) { return ops::cross_entropy(v[0], labels, {eps, ops::Reduction::sum}); }, {z});
    }
}

TEST_CASE("cross-entropy values, softmax rows, and label checks", "[ops][loss]") {
    auto z = Var<double>(Tensor<double>::from(Shape{2, 3}, {1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0}));
    const auto labels = Tensor<std::int32_t>::from(Shape{2}, {2, 0});
    auto per = ops::cross_entropy(z, labels, {0.0, ops::Reduction::none}).value();
    const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
    CHECK(per[0] == Approx(lse - 3.0));
    CHECK(per[1] == Approx(0.0).margin(1e-12));  // huge logits stay finite
    auto smooth = ops::cross_entropy(z, labels, {0.3, ops::Reduction::none}).value();
    CHECK(smooth[0] == Approx(0.7 * (lse - 3.0) + 0.1 * (3 * lse - 6.0)));
    auto p = ops::softmax(z).value();
    CHECK(p[0] + p[1] + p[2] == Approx(1.0));
    CHECK(std::isfinite(p[5]));
    require_throws_with<value_error>(
        [&] { (void)ops::cross_entropy(z, Tensor<std::int32_t>::from(Shape{2}, {2, 3}), {}); }, {"cross_entropy", "label 3", "[0, 3)"});
    require_throws_with<shape_error>([&] { (void)ops::cross_entropy(z, Tensor<std::int32_t>::from(Shape{1}, {0}), {}); },
                                     {"cross_entropy", "(2,)", "(1,)"});
}

TEST_CASE("dropout: gradient check with a fixed mask, and the keep rate", "[ops][dropout][gradcheck]") {
    auto x = randn(Shape{4, 6}, 95);
    require_gradcheck(
        [](const VD& v) {
            Generator g(9);  // the same mask at every evaluation
            return ops::dropout(v[0], 0.3, true, g);
        },
        {x});
    Generator g(10);
    auto ones = Var<double>(Tensor<double>::full(Shape{100000}, 1.0));
    auto y = ops::dropout(ones, 0.25, true, g).value();
    double s = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) s += y[i];
    CHECK(s / 1e5 == Approx(1.0).epsilon(0.01));  // E[y] = x (inverted dropout)
    // Each element is dropped with probability 0.25 and the others scaled by 1 / 0.75: count them
    // (a mask that kept everything and scaled by 1 would pass the mean check alone).
    std::int64_t zeros = 0, scaled = 0;
    for (std::int64_t i = 0; i < y.numel(); ++i) {
        zeros += y[i] == 0.0;
        scaled += y[i] == Approx(1.0 / 0.75).epsilon(1e-12);
    }
    CHECK(zeros + scaled == y.numel());
    const double sd = std::sqrt(1e5 * 0.25 * 0.75);
    CHECK(std::abs(static_cast<double>(zeros) - 0.25e5) < 5 * sd);
    // The gradient passes through the same mask: zero where dropped, 1 / 0.75 where kept.
    auto xin = Var<double>(Tensor<double>::full(Shape{1000}, 2.0), true);
    Generator gm(11);
    auto yd = ops::dropout(xin, 0.25, true, gm);
    ops::sum(yd).backward();
    for (std::int64_t i = 0; i < 1000; ++i) CHECK(xin.grad()[i] == Approx(yd.value()[i] / 2.0).epsilon(1e-12));
    CHECK(ops::dropout(ones, 0.25, false, g).value().shares_storage_with(ones.value()));
    require_throws_with<value_error>([&] { (void)ops::dropout(ones, 1.0, true, g); }, {"dropout", "[0, 1)"});
}

TEST_CASE("all_finite: NaN or Inf anywhere in any tensor, undefined tensors skipped", "[ops]") {
    Tensor<float> a = Tensor<float>::full(Shape{3, 4}, 1.5f), b(Shape{5});
    for (std::int64_t i = 0; i < 5; ++i) b[i] = static_cast<float>(i) - 2.0f;
    CHECK(ops::all_finite(std::vector<Tensor<float>>{}));
    CHECK(ops::all_finite(std::vector<Tensor<float>>{a, Tensor<float>(), b}));
    b[4] = std::numeric_limits<float>::quiet_NaN();
    CHECK_FALSE(ops::all_finite(std::vector<Tensor<float>>{a, b}));
    b[4] = 0.0f;
    a[11] = -std::numeric_limits<float>::infinity();
    CHECK_FALSE(ops::all_finite(std::vector<Tensor<float>>{Tensor<float>(), a, b}));
    a[11] = std::numeric_limits<float>::max();  // large but finite
    CHECK(ops::all_finite(std::vector<Tensor<float>>{a, b}));
}
