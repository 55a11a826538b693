// Samplers: frequencies against the probabilities they should follow (fixed seeds, stated
// tolerances), gradients against the gradient checker or the straight-through formula, and
// finiteness at extreme logits and temperatures.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>

#include "test_helpers.hpp"

using namespace dam_test;
using VD = std::vector<Var<double>>;

namespace {

const std::vector<double> kLogits{1.0, 0.0, -1.0, 2.0, 0.5};

}  // namespace

TEST_CASE("Gumbel noise is finite for every uniform, including 0 and 1", "[sampling]") {
    for (double u : {0.0, 1e-300, 1e-12, 0.5, 1.0 - 1e-16, 1.0}) {
        CHECK(std::isfinite(sampling::gumbel_from_uniform(u)));
        CHECK(std::isfinite(sampling::logistic_from_uniform(u)));
    }
    const auto g = sampling::gumbel_noise<double>(Shape{100000}, PhiloxStream{1, 2});
    double mean = 0;
    for (std::int64_t i = 0; i < g.numel(); ++i) mean += g[i];
    mean /= static_cast<double>(g.numel());
    // Gumbel(0, 1) has mean = Euler-Mascheroni 0.5772 and variance pi^2/6: 5 standard errors is 0.02.
    CHECK(mean == Approx(0.5772156649).margin(0.02));
}

TEST_CASE("hard Gumbel-softmax samples match softmax(logits) over 100k fixed-seed draws", "[sampling][statistics]") {
    const std::int64_t n = 100000, K = static_cast<std::int64_t>(kLogits.size());
    Tensor<double> logits(Shape{n, K});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < K; ++k) logits[i * K + k] = kLogits[static_cast<std::size_t>(k)];
    const auto p = sampling::softmax_row(kLogits);
    for (double tau : {0.1, 1.0, 5.0}) {  // the argmax does not depend on the temperature
        INFO("tau " << tau);
        auto y = sampling::gumbel_softmax(Var<double>(logits), tau, PhiloxStream{7, 11}, true).value();
        std::vector<std::int64_t> counts(static_cast<std::size_t>(K), 0);
        for (std::int64_t i = 0; i < n; ++i) {
            double row_sum = 0;
            for (std::int64_t k = 0; k < K; ++k) {
                row_sum += y[i * K + k];
                if (y[i * K + k] == 1.0) ++counts[static_cast<std::size_t>(k)];
            }
            REQUIRE(row_sum == 1.0);  // exactly one-hot
        }
        require_frequencies_match(counts, p, n);
    }
}

TEST_CASE("categorical sampling matches its probabilities over 100k draws", "[sampling][statistics]") {
    const std::int64_t n = 100000, K = 4;
    const std::vector<double> p{0.1, 0.2, 0.3, 0.4};
    Tensor<float> probs(Shape{n, K});
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < K; ++k) probs[i * K + k] = static_cast<float>(p[static_cast<std::size_t>(k)]);
    const auto idx = sampling::categorical(probs, PhiloxStream{3, 4});
    std::vector<std::int64_t> counts(K, 0);
    for (auto k : idx) ++counts[static_cast<std::size_t>(k)];
    require_frequencies_match(counts, p, n);
    // Inverse-CDF edge cases: u = 0 takes the first non-zero category, u -> 1 the last one.
    const std::vector<double> q{0.0, 0.5, 0.5, 0.0};
    CHECK(sampling::categorical_index(q, 0.0) == 1);
    CHECK(sampling::categorical_index(q, std::nextafter(1.0, 0.0)) == 2);
    require_throws_with<value_error>([] { (void)sampling::categorical_index(std::vector<double>{0.0, 0.0}, 0.5); },
                                     {"categorical_index", "sum to 0"});
    require_throws_with<value_error>([] { (void)sampling::categorical_index(std::vector<double>{0.5, NAN}, 0.5); },
                                     {"categorical_index", "finite"});
}

TEST_CASE("relaxed Bernoulli: P(y > 1/2) = sigmoid(logit) over 100k draws", "[sampling][statistics]") {
    const std::int64_t n = 100000;
    const double logit = 0.7, p = 1 / (1 + std::exp(-logit));
    auto y = sampling::relaxed_bernoulli(Var<double>(Tensor<double>::full(Shape{n}, logit)), 0.5, PhiloxStream{9, 1}).value();
    std::int64_t ones = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        REQUIRE(y[i] > 0.0);
        REQUIRE(y[i] < 1.0);
        ones += y[i] > 0.5;
    }
    require_frequencies_match({n - ones, ones}, {1 - p, p}, n);
}

TEST_CASE("soft Gumbel-softmax and relaxed Bernoulli pass the gradient checker", "[sampling][gradcheck]") {
    auto logits = randn(Shape{3, 4}, 21);
    for (double tau : {0.5, 1.0, 3.0}) {
        INFO("tau " << tau);
        // A fixed stream makes the noise a constant, so the function is deterministic.
        require_gradcheck([tau](const VD& v) { return sampling::gumbel_softmax(v[0], tau, PhiloxStream{5, 6}, false); },
                          {logits});
        require_gradcheck([tau](const VD& v) { return sampling::relaxed_bernoulli(v[0], tau, PhiloxStream{5, 7}); },
                          {logits});
    }
}

TEST_CASE("hard Gumbel-softmax: one-hot value, straight-through gradient equal to the soft one", "[sampling]") {
    // Straight-through (Jang et al. 2017): y_hard = one_hot(argmax y_soft) in value and
    // d L / d logits = J_soft^T d L / d y_hard, i.e. the gradient the soft sample would get.
    auto logits = randn(Shape{2, 5}, 31);
    const auto c = randn(Shape{2, 5}, 32, false);
    const PhiloxStream s{8, 9};
    auto hard = sampling::gumbel_softmax(logits, 0.7, s, true);
    ops::sum(hard * c).backward();
    const auto g_hard = logits.grad().clone();
    logits.zero_grad();
    auto soft = sampling::gumbel_softmax(logits, 0.7, s, false);
    ops::sum(soft * c).backward();
    for (std::int64_t i = 0; i < g_hard.numel(); ++i) CHECK(g_hard[i] == Approx(logits.grad()[i]).margin(1e-15));
    // The hard value is the one-hot argmax of the soft sample.
    const auto expect = sampling::one_hot_argmax(soft.value());
    for (std::int64_t i = 0; i < expect.numel(); ++i) CHECK(hard.value()[i] == expect[i]);
}

TEST_CASE("samplers stay finite at logits of +-1e4 and temperature 1e-3", "[sampling]") {
    Tensor<float> t(Shape{4, 3});
    const float vals[] = {1e4f, -1e4f, 0.f, -1e4f, -1e4f, -1e4f, 1e4f, 1e4f, -1e4f, 0.f, 1e-3f, -1e4f};
    for (std::int64_t i = 0; i < 12; ++i) t[i] = vals[i];
    for (bool hard : {false, true})
        for (double tau : {1e-3, 1.0}) {
            Var<float> logits(t.clone(), true);
            auto y = sampling::gumbel_softmax(logits, tau, PhiloxStream{1, 1}, hard);
            ops::sum(y * y).backward();
            for (std::int64_t i = 0; i < y.numel(); ++i) {
                REQUIRE(std::isfinite(y.value()[i]));
                REQUIRE(std::isfinite(logits.grad()[i]));
            }
            Var<float> l2(t.clone(), true);
            auto r = sampling::relaxed_bernoulli(l2, tau, PhiloxStream{1, 2});
            ops::sum(r).backward();
            for (std::int64_t i = 0; i < r.numel(); ++i) {
                REQUIRE(std::isfinite(r.value()[i]));
                REQUIRE(std::isfinite(l2.grad()[i]));
            }
        }
}

TEST_CASE("temperature schedules and sampler argument errors", "[sampling]") {
    const sampling::ExponentialAnneal e{10.0, 0.1, 100};
    CHECK(e(0) == Approx(10.0));
    CHECK(e(50) == Approx(1.0));
    CHECK(e(100) == Approx(0.1));
    CHECK(e(1000) == Approx(0.1));
    const sampling::LinearAnneal l{5.0, 1.0, 4};
    CHECK(l(0) == Approx(5.0));
    CHECK(l(2) == Approx(3.0));
    CHECK(l(9) == Approx(1.0));
    require_throws_with<value_error>([] { (void)sampling::ExponentialAnneal{0.0, 1.0, 10}(3); },
                                     {"ExponentialAnneal", "must be > 0"});
    auto logits = randn(Shape{2, 3}, 1);
    require_throws_with<value_error>([&] { (void)sampling::gumbel_softmax(logits, 0.0, PhiloxStream{}); },
                                     {"gumbel_softmax", "temperature", "0"});
    Tensor<double> bad = logits.value().clone();
    bad[4] = NAN;
    require_throws_with<value_error>([&] { (void)sampling::gumbel_softmax(Var<double>(bad), 1.0, PhiloxStream{}); },
                                     {"gumbel_softmax", "non-finite", "flat index 4"});
}
