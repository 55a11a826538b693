// Data augmentation: every op against hand-computed results, gradients through the gradient
// checker (image and magnitude) or the straight-through rule, determinism of the per-image
// randomness, the policies' sampling statistics and update rules, and errors (galleries and PNG: test_visualize.cpp).
#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>

#include "test_helpers.hpp"

using namespace dam_test;
using namespace diffautoml::da;

namespace {

/// One image (1, C, H, W) with the given pixel values.
Tensor<double> image(std::int64_t C, std::int64_t H, std::int64_t W, std::vector<double> v) {
    REQUIRE(static_cast<std::int64_t>(v.size()) == C * H * W);
    Tensor<double> t(Shape{1, C, H, W});
    std::copy(v.begin(), v.end(), t.data());
    return t;
}

/// op(x; m) on one image with the given draw and options.
std::vector<double> apply1(const Tensor<double>& x, OpDraw d, double m, const AugmentOptions& o = {}) {
    const Tensor<double> y = augment_images<double>(x, std::vector<OpDraw>{d}, std::vector<double>{m}, 1, o);
    return std::vector<double>(y.data(), y.data() + y.numel());
}

void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
        INFO("element " << k << ": got " << got[k] << ", want " << want[k]);
        CHECK(std::abs(got[k] - want[k]) <= tol);
    }
}

/// Random pixels in [0.1, 0.9] (away from the clipping bounds).
Tensor<double> random_pixels(const Shape& s, std::uint64_t seed) {
    Tensor<double> t(s);
    Generator g(seed);
    uniform_(t, g, 0.1, 0.9);
    return t;
}

}  // namespace

TEST_CASE("geometric ops against hand-computed warps", "[da]") {
    AugmentOptions o;
    o.fill = 0.25;
    SECTION("Identity and FlipLR") {
        const auto x = image(1, 2, 3, {1, 2, 3, 4, 5, 6});
        require_close(apply1(x, {Op::identity}, 0.7, o), {1, 2, 3, 4, 5, 6});
        require_close(apply1(x, {Op::flip_lr}, 0.7, o), {3, 2, 1, 6, 5, 4});
    }
    SECTION("TranslateX and TranslateY by one pixel, with the fill") {
        o.ranges.translate = 0.25;  // m = 1 moves by a quarter of the 4-pixel side
        const auto x = image(1, 2, 4, {1, 2, 3, 4, 5, 6, 7, 8});
        require_close(apply1(x, {Op::translate_x, 1}, 1.0, o), {2, 3, 4, 0.25, 6, 7, 8, 0.25});
        require_close(apply1(x, {Op::translate_x, -1}, 1.0, o), {0.25, 1, 2, 3, 0.25, 5, 6, 7});
        o.ranges.translate = 0.5;  // half of the 2-pixel height
        require_close(apply1(x, {Op::translate_y, -1}, 1.0, o), {0.25, 0.25, 0.25, 0.25, 1, 2, 3, 4});
    }
    SECTION("ShearX and ShearY by 0.5 about the centre, bilinear") {
        o.ranges.shear = 0.5;
        const auto x = image(1, 2, 2, {1, 2, 3, 4});
        // Row i reads columns j + 0.5 (i - 0.5): row 0 shifted by -0.25, row 1 by +0.25.
        require_close(apply1(x, {Op::shear_x, 1}, 1.0, o),
                      {0.25 * 0.25 + 0.75 * 1, 0.25 * 1 + 0.75 * 2, 0.75 * 3 + 0.25 * 4, 0.75 * 4 + 0.25 * 0.25});
        require_close(apply1(x, {Op::shear_y, 1}, 1.0, o),
                      {0.25 * 0.25 + 0.75 * 1, 0.75 * 2 + 0.25 * 4, 0.25 * 1 + 0.75 * 3, 0.75 * 4 + 0.25 * 0.25});
    }
    SECTION("Rotate by 90 degrees is counter-clockwise; magnitude 0 is the identity") {
        o.ranges.rotate_degrees = 90;
        const auto x = image(1, 3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
        require_close(apply1(x, {Op::rotate, 1}, 1.0, o), {3, 6, 9, 2, 5, 8, 1, 4, 7}, 1e-12);
        require_close(apply1(x, {Op::rotate, -1}, 1.0, o), {7, 4, 1, 8, 5, 2, 9, 6, 3}, 1e-12);
        require_close(apply1(x, {Op::rotate, 1}, 0.0, o), {1, 2, 3, 4, 5, 6, 7, 8, 9});
    }
}

TEST_CASE("colour ops against PIL's definitions", "[da]") {
    AugmentOptions o;
    SECTION("AutoContrast stretches each channel; a constant channel is kept") {
        const auto x = image(2, 1, 3, {0.2, 0.4, 0.6, 0.3, 0.3, 0.3});
        require_close(apply1(x, {Op::auto_contrast}, 0.0, o), {0, 0.5, 1, 0.3, 0.3, 0.3}, 1e-12);
    }
    SECTION("Invert") { require_close(apply1(image(1, 1, 2, {0.25, 1}), {Op::invert}, 0.0, o), {0.75, 0}); }
    SECTION("Equalize follows PIL's lookup table") {
        // 1024 pixels, 256 each at levels 50, 100, 150, 200: step = (1024 - 256) // 255 = 3, and
        // lut = 0, 257 // 3 = 85, 513 // 3 = 171, min(255, 769 // 3) = 255.
        std::vector<double> v(1024);
        for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(50 * (1 + k % 4)) / 255.0;
        const auto y = apply1(image(1, 32, 32, v), {Op::equalize}, 0.0, o);
        const double want[] = {0, 85 / 255.0, 171 / 255.0, 1.0};
        for (std::size_t k = 0; k < 8; ++k) CHECK(y[k] == Approx(want[k % 4]).margin(1e-12));
        // Fewer than two used levels: unchanged.
        require_close(apply1(image(1, 1, 2, {0.4, 0.4}), {Op::equalize}, 0.0, o), {0.4, 0.4}, 1e-12);
    }
    SECTION("Solarize inverts levels at or above 256 (1 - m)") {
        const auto x = image(1, 1, 4, {0, 127 / 255.0, 128 / 255.0, 1});
        require_close(apply1(x, {Op::solarize}, 0.5, o), {0, 127 / 255.0, 127 / 255.0, 0}, 1e-12);
        require_close(apply1(x, {Op::solarize}, 0.0, o), {0, 127 / 255.0, 128 / 255.0, 1}, 1e-12);
    }
    SECTION("Posterize keeps 8 - round(4 m) bits") {
        const auto x = image(1, 1, 3, {55 / 255.0, 1.0, 200 / 255.0});
        require_close(apply1(x, {Op::posterize}, 1.0, o), {48 / 255.0, 240 / 255.0, 192 / 255.0}, 1e-12);
        require_close(apply1(x, {Op::posterize}, 0.5, o), {52 / 255.0, 252 / 255.0, 200 / 255.0}, 1e-12);
    }
    SECTION("Contrast blends with the mean grey, clipped") {
        const auto x = image(1, 2, 2, {0.2, 0.4, 0.6, 0.8});
        require_close(apply1(x, {Op::contrast, 1}, 0.5 / 0.9, o), {0.05, 0.35, 0.65, 0.95}, 1e-12);
        require_close(apply1(x, {Op::contrast, -1}, 1.0, o), {0.47, 0.49, 0.51, 0.53}, 1e-12);
        require_close(apply1(x, {Op::contrast, 1}, 1.0, o), {0, 0.5 - 1.9 * 0.1, 0.5 + 1.9 * 0.1, 1}, 1e-12);
    }
    SECTION("Color blends with the ITU-R 601 grey; one channel is unchanged") {
        const double grey = 0.299 * 0.5 + 0.587 * 0.2 + 0.114 * 0.1;
        const auto x = image(3, 1, 1, {0.5, 0.2, 0.1});
        require_close(apply1(x, {Op::color, -1}, 1.0, o),
                      {grey + 0.1 * (0.5 - grey), grey + 0.1 * (0.2 - grey), grey + 0.1 * (0.1 - grey)}, 1e-12);
        require_close(apply1(image(1, 1, 2, {0.3, 0.6}), {Op::color, 1}, 1.0, o), {0.3, 0.6}, 1e-12);
    }
    SECTION("Brightness blends with black, clipped") {
        require_close(apply1(image(1, 1, 2, {0.2, 0.8}), {Op::brightness, 1}, 0.5 / 0.9, o), {0.3, 1.0}, 1e-12);
        require_close(apply1(image(1, 1, 2, {0.2, 0.8}), {Op::brightness, -1}, 1.0, o), {0.02, 0.08}, 1e-12);
    }
    SECTION("Sharpness blends with the 3x3 smoothing; the border is kept") {
        const std::vector<double> v{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
        const double blurred = (4.5 + 4 * 0.5) / 13.0;
        auto want = v;
        want[4] = blurred + 1.9 * (0.5 - blurred);
        require_close(apply1(image(1, 3, 3, v), {Op::sharpness, 1}, 1.0, o), want, 1e-12);
        want[4] = blurred + 0.1 * (0.5 - blurred);
        require_close(apply1(image(1, 3, 3, v), {Op::sharpness, -1}, 1.0, o), want, 1e-12);
    }
    SECTION("Cutout fills a square around the drawn centre") {
        o.ranges.cutout = 0.5;
        o.fill = 0.0;
        std::vector<double> v(16, 1.0);
        auto y = apply1(image(1, 4, 4, v), {Op::cutout, 1, 0.5f, 0.5f}, 1.0, o);
        for (std::int64_t i = 0; i < 4; ++i)
            for (std::int64_t j = 0; j < 4; ++j)
                CHECK(y[static_cast<std::size_t>(i * 4 + j)] == ((i >= 1 && i < 3 && j >= 1 && j < 3) ? 0.0 : 1.0));
        // At a corner the hole is clipped to the image.
        y = apply1(image(1, 4, 4, v), {Op::cutout, 1, 0.0f, 0.0f}, 1.0, o);
        CHECK(std::count(y.begin(), y.end(), 0.0) == 1);
        CHECK(y[0] == 0.0);
    }
}

TEST_CASE("every op passes the gradient checker in the image, and in the magnitude where differentiable", "[da][gradcheck]") {
    const Shape s{2, 3, 5, 6};
    for (int k = 0; k < kOpCount; ++k) {
        const Op op = static_cast<Op>(k);
        if (op == Op::posterize || op == Op::equalize) continue;  // piecewise constant: straight-through below
        for (std::int8_t sign : {std::int8_t{1}, std::int8_t{-1}}) {
            if (sign < 0 && !info(op).symmetric) continue;
            INFO("op " << op_name(op) << " sign " << int(sign));
            const std::vector<OpDraw> draws{{op, sign, 0.4f, 0.6f}, {op, sign, 0.9f, 0.1f}};
            auto x = Var<double>(random_pixels(s, 10 + static_cast<std::uint64_t>(k)), true);
            auto m = Var<double>(Tensor<double>::from(Shape{2}, {0.37, 0.71}), info(op).magnitude_differentiable);
            std::vector<Var<double>> inputs{x};
            if (info(op).magnitude_differentiable) inputs.push_back(m);
            require_gradcheck(
                [&](const std::vector<Var<double>>& in) {
                    return augment(in[0], draws, info(op).magnitude_differentiable ? in[1] : m);
                },
                inputs);
        }
    }
}

TEST_CASE("straight-through rule: dL/dm = sum dL/dy where the op is not differentiable in m", "[da]") {
    const auto x = Var<double>(random_pixels(Shape{1, 2, 4, 4}, 3), true);
    const auto r = random_pixels(Shape{1, 2, 4, 4}, 4);
    double sum_r = 0;
    for (std::int64_t k = 0; k < r.numel(); ++k) sum_r += r[k];
    auto grads = [&](Op op, MagnitudeGradient mode) {
        auto m = Var<double>(Tensor<double>::full(Shape{1}, 0.6), true);
        auto xv = Var<double>(x.value(), true);
        auto y = augment(xv, std::vector<OpDraw>{{op, 1, 0.3f, 0.3f}}, m, {}, mode);
        y.backward(r);
        return std::pair{m.grad()[0], xv.grad()};
    };
    for (Op op : {Op::solarize, Op::posterize, Op::cutout}) {
        INFO(op_name(op));
        CHECK(grads(op, MagnitudeGradient::exact).first == Approx(sum_r).epsilon(1e-12));
    }
    // Ops without a magnitude give it no gradient unless every op is straight-through (DADA).
    for (Op op : {Op::identity, Op::invert, Op::equalize, Op::auto_contrast}) {
        INFO(op_name(op));
        CHECK(grads(op, MagnitudeGradient::exact).first == 0.0);
        CHECK(grads(op, MagnitudeGradient::straight_through).first == Approx(sum_r).epsilon(1e-12));
    }
    CHECK(grads(Op::rotate, MagnitudeGradient::straight_through).first == Approx(sum_r).epsilon(1e-12));
    CHECK(grads(Op::rotate, MagnitudeGradient::exact).first != Approx(sum_r).epsilon(1e-3));
    // Posterize and Equalize pass the image gradient straight through.
    for (Op op : {Op::posterize, Op::equalize}) {
        const auto gx = grads(op, MagnitudeGradient::exact).second;
        for (std::int64_t k = 0; k < r.numel(); ++k) CHECK(gx[k] == r[k]);
    }
}

TEST_CASE("random draws: symmetric ops take each sign half the time, others never negate", "[da][statistics]") {
    const PhiloxStream s{5, 9};
    const std::int64_t n = 20000;
    std::int64_t neg = 0;
    for (std::int64_t k = 0; k < n; ++k) neg += random_draw(Op::rotate, s, static_cast<std::uint64_t>(k)).sign < 0;
    require_frequencies_match({n - neg, neg}, {0.5, 0.5}, n);
    for (std::int64_t k = 0; k < 1000; ++k) {
        const auto d = random_draw(Op::cutout, s, static_cast<std::uint64_t>(k));
        CHECK(d.sign == 1);
        CHECK((d.u >= 0 && d.u < 1 && d.v >= 0 && d.v < 1));
    }
}

TEST_CASE("PairPolicyDA: pairs follow softmax(pi), same seed same batch, thread count irrelevant", "[da][statistics]") {
    PairPolicyOptions o;
    o.ops = {Op::identity, Op::invert, Op::flip_lr};
    o.pixels = {0.3, 0.4};
    PairPolicyDA<float> p(o);
    const std::vector<double> logits{1.0, 0.0, -1.0, 0.5, 2.0, 0.0, -0.5, 0.3, 1.2};
    p.set_logits(logits);
    const std::int64_t n = 20000;
    Tensor<float> x(Shape{n, 1, 2, 2});
    Generator init(1);
    uniform_(x, init, -0.75, 1.75);
    Generator gen(42);
    DaContext ctx{&gen, 0, 1};
    const auto y = p.augment(x, ctx).value();
    std::vector<std::int64_t> counts(9, 0);
    for (auto k : p.last_pairs()) ++counts[static_cast<std::size_t>(k)];
    require_frequencies_match(counts, sampling::softmax_row(logits), n);

    // Each image is o2(o1(x)): with these ops, an odd number of Inverts inverts the pixels and an
    // odd number of flips mirrors them (stored = (pixel - 0.3) / 0.4).
    for (std::int64_t i = 0; i < 200; ++i) {
        const auto [o1, o2] = p.pair(p.last_pairs()[static_cast<std::size_t>(i)]);
        const bool inv = (o1 == Op::invert) != (o2 == Op::invert), flip = (o1 == Op::flip_lr) != (o2 == Op::flip_lr);
        for (std::int64_t a = 0; a < 2; ++a)
            for (std::int64_t b = 0; b < 2; ++b) {
                double px = x[i * 4 + a * 2 + (flip ? 1 - b : b)] * 0.4 + 0.3;
                if (inv) px = 1 - px;
                CHECK(y[i * 4 + a * 2 + b] == Approx((px - 0.3) / 0.4).margin(1e-5));
            }
    }

    Generator again(42);
    DaContext ctx2{&again, 0, 1};
    const auto y2 = p.augment(x, ctx2).value();
    const auto y3 = [&] {
        const ScopedThreads one(1);
        Generator once_more(42);
        DaContext ctx3{&once_more, 0, 1};
        return p.augment(x, ctx3).value();
    }();
    Generator other(43);
    DaContext ctx4{&other, 0, 1};
    const auto y4 = p.augment(x, ctx4).value();
    bool differs = false;
    for (std::int64_t k = 0; k < y.numel(); ++k) {
        REQUIRE(y2[k] == y[k]);
        REQUIRE(y3[k] == y[k]);
        differs |= y4[k] != y[k];
    }
    CHECK(differs);
}

TEST_CASE("PairPolicyDA: the update is the gradient of mean(-l_i P[pair_i]) and raises high-loss pairs", "[da]") {
    PairPolicyOptions o;
    o.ops = {Op::identity, Op::rotate, Op::brightness};
    o.max_magnitude = 0.4;
    o.lr = 50;
    PairPolicyDA<double> p(o);
    p.set_logits({0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.1, -0.1});
    Tensor<double> x = random_pixels(Shape{64, 1, 6, 6}, 8);
    Generator gen(3);
    DaContext ctx{&gen, 0, 1};
    p.augment(x, ctx);
    Tensor<double> losses(Shape{64});
    for (std::int64_t i = 0; i < 64; ++i) losses[i] = 0.5 + 0.1 * static_cast<double>(i % 7);
    const auto g = p.gradient(losses);
    auto l_da = [&](const std::vector<double>& logits) {
        const auto P = sampling::softmax_row(logits);
        double s = 0;
        for (std::int64_t i = 0; i < 64; ++i) s -= losses[i] * P[static_cast<std::size_t>(p.last_pairs()[static_cast<std::size_t>(i)])];
        return s / 64;
    };
    for (std::size_t j = 0; j < g.size(); ++j) {
        auto lp = p.logits(), lm = p.logits();
        lp[j] += 1e-6;
        lm[j] -= 1e-6;
        CHECK(g[j] == Approx((l_da(lp) - l_da(lm)) / 2e-6).margin(1e-9));
    }
    // A loss that is high only for the images that drew pair 4 raises P[4] and lowers the rest.
    const auto before = p.probabilities();
    for (std::int64_t i = 0; i < 64; ++i) losses[i] = p.last_pairs()[static_cast<std::size_t>(i)] == 4 ? 3.0 : 0.1;
    REQUIRE(std::count(p.last_pairs().begin(), p.last_pairs().end(), 4) > 0);
    p.update(losses, ctx);
    const auto after = p.probabilities();
    CHECK(after[4] > before[4]);
    for (std::size_t k = 0; k < after.size(); ++k) CHECK(std::isfinite(after[k]));
    // Magnitudes are drawn from U(0, M), M = 0.4: all inside, and spread over the range.
    const auto& m = p.last_magnitudes();
    REQUIRE(m.size() == 2 * 64);
    double lo = 1, hi = 0, mean = 0;
    for (double v : m) {
        CHECK(v >= 0.0);
        CHECK(v <= 0.4);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        mean += v / static_cast<double>(m.size());
    }
    CHECK(lo < 0.05);
    CHECK(hi > 0.35);
    CHECK(mean == Approx(0.2).margin(5 * 0.4 / std::sqrt(12.0 * 128.0)));
    // Brightness alone at magnitude m scales a pixel by 1 +- 0.9 m: never by more than 0.36 here.
    PairPolicyOptions ob = o;
    ob.ops = {Op::brightness};
    ob.pixels = {0.0, 1.0};
    PairPolicyDA<double> bright(ob);
    Tensor<double> half = Tensor<double>::full(Shape{256, 1, 2, 2}, 0.5);
    const auto yb = bright.augment(half, ctx).value();
    double worst = 0;
    for (std::int64_t k = 0; k < yb.numel(); ++k) worst = std::max(worst, std::abs(yb[k] - 0.5) / 0.5);
    CHECK(worst <= (1 + 0.9 * 0.4) * (1 + 0.9 * 0.4) - 1 + 1e-12);  // two ops, each a factor within 1 +- 0.9 M
    CHECK(worst > 0.2);
}

TEST_CASE("PairPolicyDA: the score-function estimator is unbiased for grad E_P[l]; the direct one is not",
          "[da][statistics]") {
    // With a loss that depends only on the pair, l(k), the exact ascent direction of E_P[l] in the
    // logits is P_j (l_j - E_P[l]); the update descends on gradient(), so its mean over many batches
    // must be -P_j (l_j - E_P[l]) for the score function (whatever the baseline), while the direct
    // estimator's mean is -P_k-weighted: -P_j (P_j l_j - sum_k P_k^2 l_k).
    PairPolicyOptions o;
    o.ops = {Op::identity, Op::flip_lr, Op::invert};
    o.lr = 0.0;  // measure the estimator, do not move the logits
    o.pixels = {0.0, 1.0};
    const std::vector<double> logits{0.8, -0.3, 0.1, 0.5, -0.9, 0.0, 0.3, 0.6, -0.2};
    const std::vector<double> loss_of{2.0, 0.5, 1.0, 3.0, 0.2, 1.5, 0.7, 2.5, 1.2};
    const auto P = sampling::softmax_row(logits);
    double El = 0, El2 = 0;
    for (std::size_t k = 0; k < P.size(); ++k) {
        El += P[k] * loss_of[k];
        El2 += P[k] * P[k] * loss_of[k];
    }
    Tensor<double> x = random_pixels(Shape{256, 1, 2, 2}, 3);
    for (auto estimator : {PairPolicyOptions::Estimator::score_function, PairPolicyOptions::Estimator::direct}) {
        o.estimator = estimator;
        PairPolicyDA<double> p(o);
        p.set_logits(logits);
        Generator gen(21);
        const int batches = 400;
        std::vector<double> mean(P.size(), 0.0), sq(P.size(), 0.0);
        for (int b = 0; b < batches; ++b) {
            DaContext ctx{&gen, b, batches};
            p.augment(x, ctx);
            Tensor<double> losses(Shape{256});
            for (std::int64_t i = 0; i < 256; ++i) losses[i] = loss_of[static_cast<std::size_t>(p.last_pairs()[static_cast<std::size_t>(i)])];
            const auto g = p.gradient(losses);
            for (std::size_t j = 0; j < g.size(); ++j) {
                mean[j] += g[j] / batches;
                sq[j] += g[j] * g[j] / batches;
            }
            p.update(losses, ctx);  // moves the baseline (lr 0: not the logits)
        }
        const bool score = estimator == PairPolicyOptions::Estimator::score_function;
        if (score) CHECK(p.baseline() == Approx(El).epsilon(0.05));
        for (std::size_t j = 0; j < P.size(); ++j) {
            const double expect = score ? -P[j] * (loss_of[j] - El) : -P[j] * (P[j] * loss_of[j] - El2);
            const double se = std::sqrt(std::max(sq[j] - mean[j] * mean[j], 0.0) / batches);
            INFO((score ? "score function" : "direct") << " pair " << j << " mean " << mean[j] << " expected " << expect
                                                         << " standard error " << se);
            CHECK(std::abs(mean[j] - expect) <= 5 * se + 1e-12);
        }
        if (!score) {
            // The bias: the direct estimator's mean is not the gradient of E_P[l] (by far, for some pair).
            double worst = 0;
            for (std::size_t j = 0; j < P.size(); ++j) worst = std::max(worst, std::abs(mean[j] + P[j] * (loss_of[j] - El)));
            CHECK(worst > 0.05);
        }
    }
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.baseline_momentum = 1.0}); },
                                     {"baseline_momentum"});
}

TEST_CASE("PairPolicyDA: the entropy term is in the gradient; it and the ratio clamp stop the collapse", "[da]") {
    PairPolicyOptions o;
    o.ops = {Op::identity, Op::rotate, Op::brightness};
    o.lr = 50;
    Tensor<double> x = random_pixels(Shape{64, 1, 6, 6}, 8);
    SECTION("gradient of mean(-l_i P[pair_i]) + beta KL(P || uniform)") {
        o.entropy_weight = 0.3;
        PairPolicyDA<double> p(o);
        p.set_logits({0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.1, -0.1});
        Generator gen(3);
        DaContext ctx{&gen, 0, 1};
        p.augment(x, ctx);
        Tensor<double> losses(Shape{64});
        for (std::int64_t i = 0; i < 64; ++i) losses[i] = 0.5 + 0.1 * static_cast<double>(i % 7);
        auto l_da = [&](const std::vector<double>& logits) {
            const auto P = sampling::softmax_row(logits);
            double s = 0, kl = std::log(9.0);
            for (std::int64_t i = 0; i < 64; ++i)
                s -= losses[i] * P[static_cast<std::size_t>(p.last_pairs()[static_cast<std::size_t>(i)])];
            for (double q : P) kl += q * std::log(q);
            return s / 64 + 0.3 * kl;
        };
        const auto g = p.gradient(losses);
        for (std::size_t j = 0; j < g.size(); ++j) {
            auto lp = p.logits(), lm = p.logits();
            lp[j] += 1e-6;
            lm[j] -= 1e-6;
            CHECK(g[j] == Approx((l_da(lp) - l_da(lm)) / 2e-6).margin(1e-9));
        }
    }
    SECTION("a pair whose images always have the highest loss") {
        // 400 steps in which the images of pair 4 have loss 2 and all others 0.5.
        auto train = [&](PairPolicyOptions po) {
            PairPolicyDA<double> p(po);
            Generator gen(5);
            for (std::int64_t step = 0; step < 400; ++step) {
                DaContext ctx{&gen, step, 400};
                p.augment(x, ctx);
                Tensor<double> losses(Shape{64});
                for (std::int64_t i = 0; i < 64; ++i) losses[i] = p.last_pairs()[static_cast<std::size_t>(i)] == 4 ? 2.0 : 0.5;
                p.update(losses, ctx);
            }
            return p.probabilities();
        };
        const auto plain = train(o);
        INFO("as docs/algorithm.md states the update, P[4] = " << plain[4]);
        CHECK(plain[4] > 0.95);  // rich-get-richer: collapse onto the pair
        PairPolicyOptions clamped = o;
        clamped.max_ratio = 4;
        const auto c = train(clamped);
        const double hi = *std::max_element(c.begin(), c.end()), lo = *std::min_element(c.begin(), c.end());
        CHECK(hi / lo <= 4 * (1 + 1e-12));
        CHECK(c[4] == Approx(4.0 / 12.0).epsilon(1e-9));  // at the clamp: 4 / (8 * 1 + 4)
        PairPolicyOptions entropy = o;
        // The entropy term only helps above a threshold (here beta = 0.3 still collapses in the
        // expected dynamics: the L_DA pull grows like P, the entropy pull like log P; docs/da.md).
        entropy.entropy_weight = 0.5;
        const auto e = train(entropy);
        INFO("with beta = 0.5, P[4] = " << e[4]);
        CHECK(e[4] > 1.0 / 9.0);  // still moves toward the hard pair
        CHECK(e[4] < 0.5);
        for (std::size_t k = 0; k < e.size(); ++k)
            if (k != 4) CHECK(e[k] < e[4]);
    }
    SECTION("grey_ops keeps a dark background") {
        const auto g = grey_ops();
        CHECK(g.size() == all_ops().size() - 3);
        for (Op bad : {Op::invert, Op::solarize, Op::color}) CHECK(std::find(g.begin(), g.end(), bad) == g.end());
    }
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.entropy_weight = -1.0}); }, {"entropy_weight"});
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.max_ratio = 0.5}); }, {"max_ratio", ">= 1"});
}

TEST_CASE("PairPolicyDA: fading augments a cosine-falling share of the images; clean ones leave L_DA", "[da][statistics]") {
    PairPolicyOptions o;
    o.ops = {Op::brightness};  // one pair; every augmented image differs from its input
    o.max_magnitude = 1.0;
    o.pixels = {0.0, 1.0};
    o.fade_start = 0.6;
    PairPolicyDA<double> p(o);
    // The schedule: 1 up to 60% of the steps, a half cosine to 0 at the end.
    CHECK(p.apply_probability(0, 1000) == 1.0);
    CHECK(p.apply_probability(600, 1000) == 1.0);
    CHECK(p.apply_probability(800, 1000) == Approx(0.5).margin(1e-12));
    CHECK(p.apply_probability(700, 1000) == Approx((1 + std::cos(std::numbers::pi / 4)) / 2).margin(1e-12));
    CHECK(p.apply_probability(1000, 1000) == Approx(0.0).margin(1e-12));
    for (std::int64_t s = 600; s < 1000; s += 10) CHECK(p.apply_probability(s + 10, 1000) < p.apply_probability(s, 1000));
    CHECK(PairPolicyDA<double>(PairPolicyOptions{}).apply_probability(999, 1000) == 1.0);  // the default never fades
    // A floor: the same cosine, falling to the floor instead of 0; out-of-range floors are refused.
    PairPolicyOptions of = o;
    of.fade_floor = 0.25;
    PairPolicyDA<double> pf(of);
    CHECK(pf.apply_probability(600, 1000) == 1.0);
    CHECK(pf.apply_probability(800, 1000) == Approx(0.25 + 0.75 * 0.5).margin(1e-12));
    CHECK(pf.apply_probability(1000, 1000) == Approx(0.25).margin(1e-12));
    for (std::int64_t s = 600; s < 1000; s += 10) CHECK(pf.apply_probability(s + 10, 1000) < pf.apply_probability(s, 1000));
    for (const double bad : {1.5, -0.1, std::nan("")}) {
        of.fade_floor = bad;
        require_throws_with<value_error>([&] { PairPolicyDA<double> r(of); }, {"fade_floor", "[0, 1]"});
    }

    const std::int64_t n = 4000;
    Tensor<double> x(Shape{n, 1, 3, 3});
    Generator init(5);
    uniform_(x, init, 0.2, 0.8);
    Generator gen(9);
    DaContext ctx{&gen, 800, 1000};
    const auto y = p.augment(x, ctx).value();
    CHECK(p.last_apply_probability() == Approx(0.5).margin(1e-12));
    std::int64_t applied = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        bool same = true;
        for (std::int64_t k = 0; k < 9; ++k) same &= y[i * 9 + k] == x[i * 9 + k];
        const bool a = p.last_applied()[static_cast<std::size_t>(i)];
        applied += a ? 1 : 0;
        CHECK(same == !a);  // clean images are the input, bit for bit; augmented ones are not
    }
    // Binomial(4000, 0.5): standard deviation 31.6; 5 of them is 158.
    CHECK(std::abs(static_cast<double>(applied) - 2000.0) < 158);

    // L_DA is the mean over the augmented images only.
    PairPolicyOptions o3;
    o3.ops = {Op::identity, Op::rotate, Op::brightness};
    o3.fade_start = 0.0;
    PairPolicyDA<double> q(o3);
    q.set_logits({0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.1, -0.1});
    const Tensor<double> xs = random_pixels(Shape{64, 1, 6, 6}, 8);
    Generator g3(3);
    DaContext c3{&g3, 50, 100};  // p = 0.5
    q.augment(xs, c3);
    Tensor<double> losses(Shape{64});
    for (std::int64_t i = 0; i < 64; ++i) losses[i] = 0.5 + 0.1 * static_cast<double>(i % 7);
    const auto& on = q.last_applied();
    const auto m = std::count(on.begin(), on.end(), true);
    REQUIRE(m > 0);
    REQUIRE(m < 64);
    auto l_da = [&](const std::vector<double>& logits) {
        const auto P = sampling::softmax_row(logits);
        double s = 0;
        for (std::int64_t i = 0; i < 64; ++i)
            if (on[static_cast<std::size_t>(i)]) s -= losses[i] * P[static_cast<std::size_t>(q.last_pairs()[static_cast<std::size_t>(i)])];
        return s / static_cast<double>(m);
    };
    const auto g = q.gradient(losses);
    for (std::size_t j = 0; j < g.size(); ++j) {
        auto lp = q.logits(), lm = q.logits();
        lp[j] += 1e-6;
        lm[j] -= 1e-6;
        CHECK(g[j] == Approx((l_da(lp) - l_da(lm)) / 2e-6).margin(1e-9));
    }
    // Before the fade starts, the draws are those of the policy without fading.
    PairPolicyOptions plain = o3;
    plain.fade_start = 1.0;
    PairPolicyOptions late = o3;
    late.fade_start = 0.5;
    PairPolicyDA<double> a(plain), b(late);
    Generator ga(4), gb(4);
    DaContext ca{&ga, 10, 100}, cb{&gb, 10, 100};
    const auto ya = a.augment(xs, ca).value(), yb = b.augment(xs, cb).value();
    for (std::int64_t k = 0; k < ya.numel(); ++k) REQUIRE(ya[k] == yb[k]);
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.fade_start = 1.5}); }, {"fade_start", "[0, 1]"});
}

TEST_CASE("PairPolicyDA: base flips mirror a binomial share of the images, through the fade, under unchanged pairs",
          "[da][statistics]") {
    // Width 4 and distinct pixels: a mirrored image differs from its input.
    const std::int64_t n = 4000, C = 1, H = 3, W = 4, hw = C * H * W;
    const Tensor<double> x = random_pixels(Shape{n, C, H, W}, 21);
    // Checks that every image flagged as flipped is its input mirrored and every other one its
    // input, bit for bit; returns how many were flipped.
    auto count_flips = [&](const Tensor<double>& y, const std::vector<bool>& flipped) {
        std::int64_t count = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const bool f = flipped[static_cast<std::size_t>(i)];
            count += f ? 1 : 0;
            bool as_flagged = true;
            for (std::int64_t k = 0; k < hw; ++k) {
                const std::int64_t r = k / W, c = k % W;
                as_flagged &= y[i * hw + k] == x[i * hw + (f ? r * W + (W - 1 - c) : k)];
            }
            CHECK(as_flagged);
        }
        return count;
    };
    PairPolicyOptions o;
    o.ops = {Op::identity};  // one pair, (Identity, Identity): the flip is all that happens
    o.pixels = {0.0, 1.0};
    o.flip_probability = 0.3;
    PairPolicyDA<double> p(o);
    Generator gen(12);
    DaContext ctx{&gen, 0, 10};
    const auto y = p.augment(x, ctx).value();
    const std::int64_t flipped = count_flips(y, p.last_flipped());
    // Binomial(4000, 0.3): standard deviation 29.0; 5 of them is 145.
    CHECK(std::abs(static_cast<double>(flipped) - 1200.0) < 145);

    // At the last step of a fade every pair is left out, and the flips go on.
    PairPolicyOptions faded = o;
    faded.ops = {Op::brightness};
    faded.max_magnitude = 1.0;
    faded.fade_start = 0.0;
    faded.flip_probability = 0.5;
    PairPolicyDA<double> q(faded);
    Generator gq(13);
    DaContext cq{&gq, 10, 10};
    const auto yq = q.augment(x, cq).value();
    CHECK(q.last_applied() == std::vector<bool>(static_cast<std::size_t>(n), false));
    const std::int64_t fq = count_flips(yq, q.last_flipped());
    CHECK(std::abs(static_cast<double>(fq) - 2000.0) < 158);  // Binomial(4000, 0.5): 5 sd

    // The flip comes first and leaves the pair draws alone: with every image flipped, the batch is
    // what the policy without flips makes of the mirrored batch, bit for bit.
    PairPolicyOptions pairs;
    pairs.ops = {Op::rotate, Op::shear_x, Op::brightness, Op::cutout};
    pairs.pixels = {0.3, 0.5};
    PairPolicyOptions always = pairs;
    always.flip_probability = 1.0;
    const Tensor<double> xs = random_pixels(Shape{64, 1, 6, 6}, 8);
    Tensor<double> xm(xs.shape());
    for (std::int64_t i = 0; i < 64; ++i)
        for (std::int64_t r = 0; r < 6; ++r)
            for (std::int64_t c = 0; c < 6; ++c) xm[i * 36 + r * 6 + c] = xs[i * 36 + r * 6 + (5 - c)];
    PairPolicyDA<double> plain(pairs), flip(always);
    Generator ga(4), gb(4);
    DaContext ca{&ga, 3, 100}, cb{&gb, 3, 100};
    const auto ya = plain.augment(xm, ca).value(), yb = flip.augment(xs, cb).value();
    CHECK(plain.last_pairs() == flip.last_pairs());
    for (std::int64_t k = 0; k < ya.numel(); ++k) REQUIRE(yb[k] == ya[k]);
    CHECK(plain.last_flipped() == std::vector<bool>(64, false));
    CHECK(flip.last_flipped() == std::vector<bool>(64, true));
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.flip_probability = 1.5}); },
                                     {"flip_probability", "[0, 1]"});
}

TEST_CASE("DADA: parameter gradients match finite differences of the augmented batch", "[da][gradcheck]") {
    DADAOptions o;
    o.ops = {Op::rotate, Op::brightness, Op::shear_x};
    o.magnitude_gradient = MagnitudeGradient::exact;
    o.objective = DADAOptions::Objective::training;  // gradients through the augmented batch
    o.pixels = {0.3, 0.5};
    o.initial_magnitude = 0.4;
    DADA<double> d(o);
    // Distinct parameter values so that every element matters.
    for (std::int64_t k = 0; k < d.apply_logits().numel(); ++k) {
        d.apply_logits().value()[k] = 0.1 * static_cast<double>(k % 5) - 0.2;
        d.magnitudes().value()[k] = 0.3 + 0.05 * static_cast<double>(k % 7);
    }
    const Tensor<double> x = random_pixels(Shape{12, 1, 5, 5}, 2);
    const Tensor<double> r = random_pixels(Shape{12, 1, 5, 5}, 6);
    auto loss = [&]() {
        Generator gen(11);
        DaContext ctx{&gen, 0, 1};
        const auto y = d.augment(x, ctx);
        double s = 0;
        for (std::int64_t k = 0; k < y.numel(); ++k) s += r[k] * y.value()[k];
        return std::pair{s, y};
    };
    auto [l0, y] = loss();
    y.backward(r);
    const Tensor<double> g_beta = d.apply_logits().grad().clone(), g_mag = d.magnitudes().grad().clone();
    REQUIRE(g_beta.defined());
    REQUIRE(d.logits().grad().defined());
    int used = 0;
    for (auto* p : {&d.apply_logits(), &d.magnitudes()}) {
        const Tensor<double>& g = p == &d.apply_logits() ? g_beta : g_mag;
        for (std::int64_t k = 0; k < p->numel(); ++k) {
            const double v = p->value()[k];
            p->value()[k] = v + 1e-6;
            const double lp = loss().first;
            p->value()[k] = v - 1e-6;
            const double lm = loss().first;
            p->value()[k] = v;
            const double num = (lp - lm) / 2e-6;
            INFO("parameter element " << k << " analytic " << g[k] << " numeric " << num);
            CHECK(g[k] == Approx(num).margin(1e-6).epsilon(1e-5));
            used += g[k] != 0;
        }
    }
    CHECK(used > 4);  // the sampled sub-policies received gradients
}

TEST_CASE("DADA: the sub-policy logits' straight-through gradient is that of the relaxed sample", "[da][gradcheck]") {
    // The hard sample w = one_hot(argmax soft) multiplies the image; its gradient reaches pi as the
    // soft sample's would: d w_k / d pi_j = soft_k (delta_kj - soft_j) / tau (Jang et al. 2017). So
    // with the same Gumbel noise, dL/dpi equals the derivative of
    //     R(pi) = sum_i soft_{i, k_i}(pi) <r_i, y_i> / std
    // (y the augmented pixels; r = dL/d output in the stored space) while every k_i stays the argmax.
    DADAOptions o;
    o.ops = {Op::rotate, Op::brightness, Op::shear_x};
    o.objective = DADAOptions::Objective::training;
    o.pixels = {0.3, 0.5};
    o.tau = 0.7;
    DADA<double> d(o);
    for (std::int64_t k = 0; k < d.logits().numel(); ++k) d.logits().value()[k] = 0.2 * std::sin(static_cast<double>(k));
    const Tensor<double> x = random_pixels(Shape{10, 1, 5, 5}, 4);
    const Tensor<double> r = random_pixels(Shape{10, 1, 5, 5}, 9);
    auto run = [&] {
        Generator gen(13);
        DaContext ctx{&gen, 0, 1};
        return d.augment(x, ctx);
    };
    auto y = run();
    y.backward(r);
    const Tensor<double> analytic = d.logits().grad().clone();
    const std::vector<std::int64_t> chosen = d.last_subpolicies();
    const std::int64_t S = d.subpolicy_count(), n = 25;
    auto relaxed = [&] {
        const Tensor<double> out = run().value();
        REQUIRE(d.last_subpolicies() == chosen);  // the perturbation keeps every argmax
        const auto& soft = d.last_soft_weights();
        // The output is (w a2 - mean) / std with w = 1: <r, a2> / std per image, a2 the pixels.
        double sum = 0;
        for (std::int64_t i = 0; i < 10; ++i) {
            double dot = 0;
            for (std::int64_t p = 0; p < n; ++p) dot += r[i * n + p] * (out[i * n + p] * 0.5 + 0.3) / 0.5;
            sum += soft[static_cast<std::size_t>(i * S + chosen[static_cast<std::size_t>(i)])] * dot;
        }
        return sum;
    };
    int nonzero = 0;
    for (std::int64_t j = 0; j < S; ++j) {
        double& v = d.logits().value()[j];
        const double keep = v;
        v = keep + 1e-6;
        const double rp = relaxed();
        v = keep - 1e-6;
        const double rm = relaxed();
        v = keep;
        const double num = (rp - rm) / 2e-6;
        INFO("logit " << j << " analytic " << analytic[j] << " numeric " << num);
        CHECK(analytic[j] == Approx(num).margin(1e-7).epsilon(1e-5));
        nonzero += std::abs(num) > 1e-6;
    }
    CHECK(nonzero > S / 2);
}

TEST_CASE("DADA's validation objective: the update's gradient is that of the unrolled validation loss",
          "[da][gradcheck]") {
    // F(d) = L_val(w - u(grad_w L_train(w, aug_d(x)))) with u(g) = xi g + c, on a one-layer network
    // in double precision; the apply logits and the (exact-gradient) magnitudes are checked against
    // finite differences of F with the same random draws.
    DADAOptions o;
    o.ops = {Op::rotate, Op::brightness};
    o.magnitude_gradient = MagnitudeGradient::exact;
    o.pixels = {0.3, 0.5};
    o.lr = 1e-3;
    DADA<double> d(o);
    REQUIRE(d.needs_unrolled_gradient());
    for (std::int64_t k = 0; k < d.apply_logits().numel(); ++k) {
        d.apply_logits().value()[k] = 0.2 * static_cast<double>(k % 3) - 0.2;
        d.magnitudes().value()[k] = 0.35 + 0.05 * static_cast<double>(k % 4);
    }
    Generator wg(7);
    nn::Linear<double> lin(25, 3, true, wg);
    auto net = [&](const Var<double>& v) { return lin.forward(ops::tanh(ops::reshape(v, {v.dim(0), 25}))); };
    std::vector<Var<double>> weights = lin.parameters();
    const Tensor<double> x = random_pixels(Shape{8, 1, 5, 5}, 2), xv = random_pixels(Shape{8, 1, 5, 5}, 3);
    const auto yt = Tensor<std::int32_t>::from(Shape{8}, {0, 1, 2, 0, 1, 2, 0, 1});
    const auto yv = Tensor<std::int32_t>::from(Shape{8}, {2, 1, 0, 2, 1, 0, 2, 1});
    const double xi = 0.5;
    const optim::UpdateFn<double> update = [&](const std::vector<Tensor<double>>& g) {
        std::vector<Tensor<double>> u;
        for (const auto& t : g) u.push_back(ops::add_scalar(ops::mul_scalar(Var<double>(t), xi), 0.01).value());
        return u;
    };
    auto val_loss = [&] { return ops::cross_entropy(net(Var<double>(xv)), yv); };
    auto train_loss_of = [&](const Var<double>& v) { return ops::cross_entropy(net(v), yt); };
    auto augmented = [&] {
        Generator gen(17);
        DaContext ctx{&gen, 0, 1};
        return d.augment(x, ctx).value();
    };
    auto F = [&] {
        const auto xa = augmented();
        const auto g = grad(train_loss_of(Var<double>(xa)), weights);
        const auto u = update(g);
        std::vector<Tensor<double>> saved;
        for (auto& w : weights) saved.push_back(w.value().clone());
        for (std::size_t i = 0; i < weights.size(); ++i)
            for (std::int64_t k = 0; k < weights[i].numel(); ++k) weights[i].value()[k] -= u[i][k];
        const double f = val_loss().value().item();
        for (std::size_t i = 0; i < weights.size(); ++i) weights[i].value().copy_from(saved[i]);
        return f;
    };
    // The update's gradient: the trainer's hook after the training backward pass.
    const auto xa = augmented();
    const auto tl = train_loss_of(Var<double>(xa));
    tl.backward();
    const auto hook = da::unrolled_image_gradient<double, cpu>(weights, update, val_loss, train_loss_of, xa);
    auto [gpi, gbeta, gmag] = d.backward_images(hook());
    int used = 0;
    for (auto* p : {&d.apply_logits(), &d.magnitudes()}) {
        const Tensor<double>& g = p == &d.apply_logits() ? gbeta : gmag;
        for (std::int64_t k = 0; k < p->numel(); ++k) {
            const double v = p->value()[k];
            p->value()[k] = v + 1e-6;
            const double fp = F();
            p->value()[k] = v - 1e-6;
            const double fm = F();
            p->value()[k] = v;
            const double num = (fp - fm) / 2e-6;
            INFO("parameter element " << k << " analytic " << g[k] << " numeric " << num);
            CHECK(g[k] == Approx(num).margin(1e-6).epsilon(2e-3));
            used += std::abs(num) > 1e-5;
        }
    }
    CHECK(used > 3);
    // update() takes one Adam step on these gradients (descent) and needs the hook.
    for (auto& w : weights) w.zero_grad();
    {
        Generator gen(17);
        DaContext ctx{&gen, 0, 1};
        const auto xb = d.augment(x, ctx).value();
        train_loss_of(Var<double>(xb)).backward();
        const double m0 = d.magnitudes().value()[0];
        require_throws_with<value_error>([&] { d.update(Tensor<double>::full(Shape{8}, 1.0), ctx); },
                                         {"unrolled_image_gradient", "Objective::adversarial"});
        ctx.unrolled_image_gradient = da::unrolled_image_gradient<double, cpu>(weights, update, val_loss, train_loss_of, xb);
        d.update(Tensor<double>::full(Shape{8}, 1.0), ctx);
        if (gmag[0] != 0) CHECK((d.magnitudes().value()[0] - m0) * gmag[0] < 0);
    }
}

TEST_CASE("DADA: the adversarial update raises the sub-policies that raise the loss", "[da]") {
    // Loss = sum of pixels; the images are dark, so sub-policies with one Invert raise it most,
    // and applying Invert more often raises it too.
    DADAOptions o;
    o.ops = {Op::identity, Op::invert};
    o.lr = 0.05;
    o.objective = DADAOptions::Objective::adversarial;
    DADA<double> d(o);
    const Tensor<double> x = random_pixels(Shape{32, 1, 4, 4}, 1);
    for (std::int64_t k = 0; k < x.numel(); ++k) x[k] *= 0.3;
    auto inverting = [&] {
        const auto P = d.probabilities();
        return P[1] + P[2];  // (Identity, Invert) and (Invert, Identity)
    };
    const double before = inverting();
    Generator gen(4);
    for (int step = 0; step < 40; ++step) {
        DaContext ctx{&gen, step, 40};
        auto y = d.augment(x, ctx);
        ops::sum(y).backward();
        d.update(Tensor<double>::full(Shape{32}, 1.0), ctx);
    }
    CHECK(inverting() > before + 0.1);
    const double p_invert = 1.0 / (1.0 + std::exp(-d.apply_logits().value()[3]));  // op 2 of (Identity, Invert)
    CHECK(p_invert > 0.55);
}

TEST_CASE("RandAugment draws N uniform ops at magnitude M / 10; NoAugment is the identity", "[da][statistics]") {
    RandAugmentOptions o;
    o.n = 2;
    o.m = 5;
    RandAugment<float> ra(o);
    const std::int64_t n = 7000;
    Tensor<float> x(Shape{n, 1, 3, 3});
    x.fill(0.5f);
    Generator gen(1);
    DaContext ctx{&gen, 0, 1};
    ra.augment(x, ctx);
    REQUIRE(static_cast<std::int64_t>(ra.last_draws().size()) == 2 * n);
    std::vector<std::int64_t> counts(o.ops.size(), 0);
    for (const auto& d : ra.last_draws())
        ++counts[static_cast<std::size_t>(std::find(o.ops.begin(), o.ops.end(), d.op) - o.ops.begin())];
    require_frequencies_match(counts, std::vector<double>(o.ops.size(), 1.0 / static_cast<double>(o.ops.size())), 2 * n);
    const auto s = ra.summary(3);
    REQUIRE(s.size() == 3);
    CHECK(s[0].magnitudes[0] == 0.5);

    NoAugment<float> none;
    const auto y = none.augment(x, ctx).value();
    for (std::int64_t k = 0; k < x.numel(); ++k) CHECK(y[k] == x[k]);
}

TEST_CASE("RandAugment's base flip mirrors a share p of the images and leaves the N ops' draws as they were",
          "[da][statistics]") {
    RandAugmentOptions plain;
    plain.ops = {Op::identity, Op::rotate, Op::shear_x};
    plain.n = 2;
    plain.m = 6;
    RandAugmentOptions flipping = plain;
    flipping.flip_probability = 0.3;
    const std::int64_t n = 4000, W = 4;
    Tensor<float> x(Shape{n, 1, 1, W});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < W; ++j) x[i * W + j] = static_cast<float>(j) / 4;
    RandAugment<float> a(plain), b(flipping);
    Generator ga(5), gb(5);
    DaContext ca{&ga, 0, 1}, cb{&gb, 0, 1};
    a.augment(x, ca);
    b.augment(x, cb);
    REQUIRE(a.last_draws().size() == b.last_draws().size());
    for (std::size_t k = 0; k < a.last_draws().size(); ++k) {
        CHECK(a.last_draws()[k].op == b.last_draws()[k].op);
        CHECK(a.last_draws()[k].sign == b.last_draws()[k].sign);
    }
    // Identity as the only op, so each output is its image or that image mirrored.
    RandAugmentOptions only_flip = plain;  // (copies: GCC 12 misreads a third default construction as uninitialised)
    only_flip.ops = {Op::identity};
    only_flip.n = 1;
    only_flip.flip_probability = 0.3;
    RandAugment<float> f(only_flip);
    Generator gf(6);
    DaContext cf{&gf, 0, 1};
    const auto y = f.augment(x, cf).value();
    std::int64_t mirrored = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        bool same = true, mirror = true;
        for (std::int64_t j = 0; j < W; ++j) {
            same = same && std::abs(y[i * W + j] - x[i * W + j]) < 1e-6f;
            mirror = mirror && std::abs(y[i * W + j] - x[i * W + W - 1 - j]) < 1e-6f;
        }
        REQUIRE(same != mirror);  // one or the other, nothing else
        mirrored += mirror;
    }
    require_frequencies_match({n - mirrored, mirrored}, {0.7, 0.3}, n);
    RandAugmentOptions bad = plain;
    bad.flip_probability = -0.1;
    require_throws_with<value_error>([&bad] { RandAugment<float>{bad}; }, {"flip_probability", "[0, 1]"});
}

TEST_CASE("StandardAugment: each image is its shift by at most pad pixels, maybe mirrored", "[da]") {
    StandardAugmentOptions o;
    o.pixels = {0.5, 0.25};
    StandardAugment<float> sa(o);
    Tensor<float> x(Shape{40, 1, 5, 5});
    Generator init(2);
    uniform_(x, init, 0.1, 0.9);
    Generator gen(9);
    DaContext ctx{&gen, 0, 1};
    const auto y = sa.augment(x, ctx).value();
    const float fill = (0.0f - 0.5f) / 0.25f;
    std::int64_t flipped = 0;
    for (std::int64_t n = 0; n < 40; ++n) {
        int matches = 0;
        for (int f = 0; f < 2; ++f)
            for (std::int64_t dy = -2; dy <= 2; ++dy)
                for (std::int64_t dx = -2; dx <= 2; ++dx) {
                    bool ok = true;
                    for (std::int64_t i = 0; i < 5 && ok; ++i)
                        for (std::int64_t j = 0; j < 5 && ok; ++j) {
                            const std::int64_t si = i + dy, sj = j + dx;
                            const float want = (si >= 0 && si < 5 && sj >= 0 && sj < 5)
                                                   ? x[n * 25 + si * 5 + (f ? 4 - sj : sj)]
                                                   : fill;
                            ok = y[n * 25 + i * 5 + j] == want;
                        }
                    if (ok) {
                        ++matches;
                        flipped += f;
                    }
                }
        CHECK(matches == 1);
    }
    CHECK(flipped > 5);
    CHECK(flipped < 35);
}

// Data-parallel runs hand each rank a slice of the global batch with its global position
// (DaContext::first_image, global_images): every policy keys its per-image draws by the global
// index, so the slices, augmented separately from the same generator state, put together equal the
// whole batch augmented at once, bit for bit, however the batch is split.
TEST_CASE("every DA policy augments a slice of a global batch as the whole batch does", "[da][dist]") {
    const std::int64_t N = 13;
    Tensor<float> x(Shape{N, 1, 8, 8});
    Generator init(3);
    uniform_(x, init, -0.5, 1.5);
    auto check = [&](auto make, const char* name) {
        INFO(name);
        auto whole_policy = make();
        Generator g_whole(77);
        DaContext whole_ctx{&g_whole, 40, 100};
        const Tensor<float> whole = whole_policy.augment(x, whole_ctx).value();
        for (const std::vector<std::int64_t>& cuts : {std::vector<std::int64_t>{0, 5, 13}, std::vector<std::int64_t>{0, 1, 7, 12, 13}}) {
            for (std::size_t part = 0; part + 1 < cuts.size(); ++part) {
                const std::int64_t a = cuts[part], b = cuts[part + 1];
                auto policy = make();
                Generator g(77);
                DaContext ctx{&g, 40, 100};
                ctx.first_image = a;
                ctx.global_images = N;
                const Tensor<float> slice = x.slice_batch(a, b).clone();
                const Tensor<float> y = policy.augment(slice, ctx).value();
                std::int64_t differ = 0;
                for (std::int64_t k = 0; k < y.numel(); ++k) differ += y[k] != whole[a * 64 + k];
                CHECK(differ == 0);
            }
        }
        // A slice that does not fit its global batch is refused.
        auto policy = make();
        Generator g(77);
        DaContext bad{&g, 40, 100};
        bad.first_image = 10;
        bad.global_images = N;
        require_throws_with<value_error>([&] { policy.augment(x.slice_batch(0, 5).clone(), bad); },
                                         {"does not fit a global batch of 13"});
    };
    PairPolicyOptions pair_options;
    pair_options.flip_probability = 0.5;
    pair_options.fade_start = 0.2;
    check([&] { return PairPolicyDA<float>(pair_options); }, "PairPolicyDA with flips and fading");
    RandAugmentOptions ra_options;
    ra_options.flip_probability = 0.5;
    check([&] { return RandAugment<float>(ra_options); }, "RandAugment with its base flip");
    check([] { return StandardAugment<float>(); }, "StandardAugment");
    check([] { return DADA<float>(); }, "DADA");
}

TEST_CASE("augmentation errors name the problem", "[da][errors]") {
    const Tensor<float> x(Shape{2, 1, 3, 3});
    x.fill(0.5f);
    const std::vector<OpDraw> two{{Op::rotate}, {Op::rotate}};
    require_throws_with<shape_error>([&] { augment_images<float>(Tensor<float>(Shape{2, 9}), two, std::vector<double>{0.1, 0.1}, 1); },
                                     {"(N, C, H, W)"});
    require_throws_with<shape_error>([&] { augment_images<float>(x, two, std::vector<double>{0.1, 0.1}, 2); },
                                     {"need 4 draws, got 2"});
    require_throws_with<value_error>([&] { augment_images<float>(x, two, std::vector<double>{0.1, 1.5}, 1); },
                                     {"magnitude 1.5 of draw 1", "outside [0, 1]"});
    require_throws_with<value_error>([&] { augment_images<float>(x, two, std::vector<double>{NAN, 0.1}, 1); },
                                     {"magnitude nan"});
    require_throws_with<value_error>(
        [&] { augment_images<float>(x, std::vector<OpDraw>{{Op::rotate, 0}, {Op::rotate}}, std::vector<double>{0.1, 0.1}, 1); },
        {"sign 0"});
    AugmentOptions bad;
    bad.fill = NAN;
    require_throws_with<value_error>([&] { augment_images<float>(x, two, std::vector<double>{0.1, 0.1}, 1, bad); },
                                     {"fill value must be finite"});
    // NaN pixels must never index outside the 8-bit tables of Equalize and Posterize (they map to level 0).
    Tensor<float> nan_img(Shape{1, 2, 3, 3});
    nan_img.fill(NAN);
    for (Op op : {Op::equalize, Op::posterize}) {
        const auto y = augment_images<float>(nan_img, std::vector<OpDraw>{{op}}, std::vector<double>{0.5}, 1);
        for (std::int64_t k = 0; k < y.numel(); ++k) CHECK(y[k] == 0.0f);
    }
    require_throws_with<value_error>([] { op_from_name("Blur"); }, {"'Blur' does not exist", "Rotate"});
    CHECK(op_from_name("Sharpness") == Op::sharpness);

    PairPolicyDA<float> p;
    Generator gen(1);
    DaContext ctx{&gen, 0, 1};
    require_throws_with<value_error>([&] { p.update(Tensor<float>(Shape{2}), ctx); }, {"before augment"});
    p.augment(x, ctx);
    require_throws_with<shape_error>([&] { p.update(Tensor<float>(Shape{3}), ctx); }, {"losses (2,)"});
    require_throws_with<value_error>([&] { p.update(Tensor<float>::full(Shape{2}, NAN), ctx); }, {"loss of sample 0 is nan"});
    DaContext no_gen;
    require_throws_with<value_error>([&] { p.augment(x, no_gen); }, {"no generator"});
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.max_magnitude = 2.0}); }, {"max_magnitude 2"});
    require_throws_with<value_error>([] { PairPolicyDA<float>(PairPolicyOptions{.ops = {}}); }, {"op list is empty"});
    require_throws_with<value_error>([] { RandAugment<float>(RandAugmentOptions{.n = 0}); }, {"N = 0"});
    require_throws_with<value_error>([] { DADA<float>(DADAOptions{.tau = 0.0}); }, {"temperatures"});
}
