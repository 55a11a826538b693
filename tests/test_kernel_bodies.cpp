// The __host__ __device__ kernel bodies that the CUDA kernels run (ops/body/, da::kernels), run
// here on the CPU against the CPU reference: the same numbers must come out, so the GPU
// arithmetic is tested even where no GPU is present. (The softmax-cross-entropy and geometric
// augmentation bodies are also what the CPU kernels themselves call, so the gradient checks of
// test_ops.cpp and test_da.cpp cover them.)
#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>
#include <diffautoml/ops/body/mixed.hpp>

#include "test_helpers.hpp"

using namespace dam_test;

TEMPLATE_TEST_CASE("fused Gumbel-softmax (the row body every backend runs) equals noise + softmax composed from ops",
                   "[body][sampling]", float, double) {
    using T = TestType;
    const std::int64_t rows = 300, K = 7;
    const double tau = 0.6;
    const PhiloxStream s{42, 9};
    Tensor<T> z(Shape{rows, K});
    Generator g(3);
    normal_(z, g, 0.0, 2.0);
    Tensor<T> seed(Shape{rows, K});
    normal_(seed, g, 0.0, 1.0);
    // Reference: the noise as a tensor, then the autograd ops softmax((z + g) * (1 / tau)).
    const auto ref_logits = parameter(z.clone());
    const auto ref = ops::softmax((ref_logits + Var<T>(sampling::gumbel_noise<T>(z.shape(), s))) * (1.0 / tau), -1);
    ref.backward(seed);
    const auto logits = parameter(z.clone());
    const auto fused = sampling::gumbel_softmax(logits, tau, s, false);
    fused.backward(seed);
    const auto hard_logits = parameter(z.clone());
    const auto hard = sampling::gumbel_softmax(hard_logits, tau, s, true);
    hard.backward(seed);
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* row = ref.value().data() + r * K;
        const std::int64_t arg = std::max_element(row, row + K) - row;
        for (std::int64_t k = 0; k < K; ++k) {
            const std::int64_t i = r * K + k;
            CHECK(std::abs(static_cast<double>(fused.value()[i] - ref.value()[i])) <= tol);
            CHECK(std::abs(static_cast<double>(logits.grad()[i] - ref_logits.grad()[i])) <= tol * 10);
            CHECK(hard.value()[i] == (k == arg ? T(1) : T(0)));  // the one-hot argmax of the same sample
            CHECK(hard_logits.grad()[i] == logits.grad()[i]);     // straight-through: the soft gradient
        }
    }
}

TEST_CASE("Philox noise kernels and dot_sum equal their definitions", "[body][sampling]") {
    const PhiloxStream s{7, 3};
    const std::int64_t n = 5000;
    const Tensor<double> gum = sampling::gumbel_noise<double>(Shape{n}, s), lg = sampling::logistic_noise<double>(Shape{n}, s);
    for (std::int64_t i = 0; i < n; i += 7) {
        const double u = s.uniform_double(static_cast<std::uint64_t>(i));
        CHECK(gum[i] == body::gumbel_from_uniform(u));
        CHECK(lg[i] == body::logistic_from_uniform(u));
    }
    // dot_sum over three pairs (one empty), accumulated in double, against a direct sum.
    const Tensor<float> a = cast<float>(randn(Shape{1000}, 1).value()), b = cast<float>(randn(Shape{1000}, 2).value());
    const std::vector<const float*> pa{a.data(), a.data() + 10, a.data()}, pb{b.data(), b.data() + 500, b.data()};
    const std::vector<std::int64_t> sizes{1000, 0, 400};
    double want = 0;
    for (std::int64_t i = 0; i < 1000; ++i) want += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    for (std::int64_t i = 0; i < 400; ++i) want += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    CHECK(backend_cpu::dot_sum(cpu{}, pa, pb, sizes) == Approx(want).epsilon(1e-14));
    CHECK(backend_cpu::dot_sum(cpu{}, std::vector<const float*>{}, std::vector<const float*>{}, std::vector<std::int64_t>{}) == 0.0);
}

TEST_CASE("weighted-sum element bodies equal the CPU mixed-op kernels", "[body][mixed]") {
    const std::int64_t K = 3, n = 1000;
    std::vector<Tensor<double>> xs;
    for (std::int64_t k = 0; k < K; ++k) xs.push_back(randn(Shape{n}, 10 + static_cast<std::uint64_t>(k)).value().clone());
    const Tensor<double> w = randn(Shape{K}, 20).value().clone(), g = randn(Shape{n}, 21).value().clone();
    std::vector<const double*> xp;
    for (const auto& x : xs) xp.push_back(x.data());
    Tensor<double> y(Shape{n});
    backend_cpu::weighted_sum_forward(cpu{}, xp.data(), w.data(), K, n, y.data());
    std::vector<Tensor<double>> dx_ref, dx_body;
    std::vector<double*> pr, pb;
    for (std::int64_t k = 0; k < K; ++k) {
        dx_ref.emplace_back(Shape{n});
        dx_body.emplace_back(Shape{n});
        pr.push_back(dx_ref.back().data());
        pb.push_back(dx_body.back().data());
    }
    pb[1] = nullptr;  // a candidate that needs no input gradient
    std::vector<double> dw_ref(K), acc(K, 0.0);
    backend_cpu::weighted_sum_backward(cpu{}, xp.data(), w.data(), g.data(), K, n, pr.data(), dw_ref.data());
    for (std::int64_t i = 0; i < n; ++i) {
        CHECK(body::weighted_sum_at(xp.data(), w.data(), K, i) == Approx(y[i]).epsilon(1e-14).margin(1e-14));
        body::weighted_sum_backward_at(xp.data(), w.data(), g.data(), K, i, pb.data(), acc.data());
    }
    for (std::int64_t k = 0; k < K; ++k) {
        CHECK(acc[static_cast<std::size_t>(k)] == Approx(dw_ref[static_cast<std::size_t>(k)]).epsilon(1e-12));
        if (k == 1) continue;
        for (std::int64_t i = 0; i < n; ++i) CHECK(dx_body[static_cast<std::size_t>(k)][i] == dx_ref[static_cast<std::size_t>(k)][i]);
    }
}

TEST_CASE("warp_pixel's magnitude derivative matches central differences", "[body][da]") {
    using namespace da;
    const std::int64_t H = 9, W = 11;
    Tensor<double> x(Shape{H, W});
    Generator g(4);
    uniform_(x, g, 0.0, 1.0);
    const MagnitudeRanges r;
    for (Op op : {Op::shear_x, Op::shear_y, Op::translate_x, Op::translate_y, Op::rotate})
        for (int sign : {1, -1}) {
            const double m = 0.37, h = 1e-6;
            for (std::int64_t i = 0; i < H; i += 2)
                for (std::int64_t j = 0; j < W; j += 3) {
                    double dm = 0;
                    kernels::warp_pixel(x.data(), H, W, kernels::affine_of(op, m, sign, H, W, r), i, j, 0.2, &dm);
                    const double up = kernels::warp_pixel(x.data(), H, W, kernels::affine_of(op, m + h, sign, H, W, r), i, j, 0.2, nullptr);
                    const double dn = kernels::warp_pixel(x.data(), H, W, kernels::affine_of(op, m - h, sign, H, W, r), i, j, 0.2, nullptr);
                    INFO(op_name(op) << " sign " << sign << " pixel " << i << "," << j);
                    CHECK(dm == Approx((up - dn) / (2 * h)).margin(1e-6));
                }
        }
}

TEST_CASE("the per-image augmentation helpers the GPU runs keep the CPU's definitions", "[body][da]") {
    using namespace diffautoml::da;
    using namespace diffautoml::da::kernels;
    // The switch-based op properties (usable on the device) agree with the op table.
    for (Op op : all_ops()) {
        INFO(op_name(op));
        CHECK(op_has_magnitude(op) == info(op).has_magnitude);
        CHECK(op_magnitude_differentiable(op) == info(op).magnitude_differentiable);
    }
    // minmax_index: the first minimum and the last maximum, as std::minmax_element.
    const std::vector<std::vector<float>> rows{{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 9}, {2, 2, 2}, {7}, {0, -1, 8, 8, -1}};
    for (const auto& r : rows) {
        std::int64_t lo = -1, hi = -1;
        minmax_index(r.data(), static_cast<std::int64_t>(r.size()), lo, hi);
        const auto [a, b] = std::minmax_element(r.begin(), r.end());
        CHECK(lo == a - r.begin());
        CHECK(hi == b - r.begin());
    }
    // Posterize bits and the Cutout hole: the rounding of std::lround, without it.
    const MagnitudeRanges ranges{};
    for (int k = 0; k <= 1000; ++k) {
        const double m = k / 1000.0;
        INFO("m = " << m);
        CHECK(posterize_bits(m, ranges) == std::clamp(8 - static_cast<int>(std::lround(m * ranges.posterize_bits)), 1, 8));
        const OpDraw d{Op::cutout, 1, 0.93f, 0.07f};
        const Hole h = cutout_hole(m, d, 28, 28, ranges);
        const auto side = static_cast<std::int64_t>(std::lround(m * ranges.cutout * 28.0));
        const std::int64_t cy = std::min<std::int64_t>(27, static_cast<std::int64_t>(0.07f * 28.0)),
                           cx = std::min<std::int64_t>(27, static_cast<std::int64_t>(0.93f * 28.0));
        CHECK(h.y0 == std::max<std::int64_t>(0, cy - side / 2));
        CHECK(h.y1 == std::min<std::int64_t>(28, cy - side / 2 + side));
        CHECK(h.x0 == std::max<std::int64_t>(0, cx - side / 2));
        CHECK(h.x1 == std::min<std::int64_t>(28, cx - side / 2 + side));
    }
}
