#pragma once
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <diffautoml/diffautoml.hpp>

namespace dam_test {
using namespace diffautoml;

/// A leaf of the given shape with seeded normal values.
inline Var<double> randn(const Shape& s, std::uint64_t seed, bool requires_grad = true, double scale = 1.0) {
    Generator g(seed);
    Tensor<double> t(s);
    normal_(t, g, 0.0, scale);
    return Var<double>(t, requires_grad);
}

/// Sets a global setting for one scope and puts the old value back when it ends (also when a
/// REQUIRE fails), so that tests do not depend on the order they run in.
template <class T>
class ScopedValue {
public:
    ScopedValue(T& target, T value) : target_(target), saved_(target) { target_ = value; }
    ~ScopedValue() { target_ = saved_; }
    ScopedValue(const ScopedValue&) = delete;
    ScopedValue& operator=(const ScopedValue&) = delete;

private:
    T& target_;
    T saved_;
};

/// The library's thread count for one scope (set_num_threads), restored afterwards.
class ScopedThreads {
public:
    explicit ScopedThreads(int n) : saved_(num_threads()) { set_num_threads(n); }
    ~ScopedThreads() { set_num_threads(saved_); }
    ScopedThreads(const ScopedThreads&) = delete;
    ScopedThreads& operator=(const ScopedThreads&) = delete;

private:
    int saved_;
};

/// Ends a test as skipped: ctest reports every test whose output carries "DAM_SKIPPED:" as
/// skipped (tests/CMakeLists.txt), not passed. Catch2 2 has no skip of its own.
#define DAM_SKIP(message)                          \
    do {                                           \
        WARN("DAM_SKIPPED: " << message);          \
        return;                                    \
    } while (false)

/// Requires that gradcheck passes, printing its message otherwise.
inline void require_gradcheck(const GradcheckFn& f, const std::vector<Var<double>>& xs, GradcheckOptions o = {}) {
    const GradcheckResult r = gradcheck(f, xs, o);
    INFO(r.message);
    REQUIRE(r.ok);
    REQUIRE(r.elements_checked > 0);
}

/// Requires that `f` throws E with a message containing every fragment.
template <class E, class F>
void require_throws_with(F&& f, std::initializer_list<std::string> fragments) {
    bool thrown = false;
    try {
        f();
    } catch (const E& e) {
        thrown = true;
        const std::string msg = e.what();
        for (const auto& fr : fragments) {
            INFO("message: " << msg << "\nmissing: " << fr);
            CHECK(msg.find(fr) != std::string::npos);
        }
    }
    REQUIRE(thrown);
}
/// Checks observed category counts against probabilities p over n draws: every frequency within
/// 5 binomial standard deviations, and Pearson's chi-square below the 0.1% critical value.
inline void require_frequencies_match(const std::vector<std::int64_t>& counts, const std::vector<double>& p, std::int64_t n) {
    REQUIRE(counts.size() == p.size());
    double chi2 = 0;
    for (std::size_t k = 0; k < p.size(); ++k) {
        const double f = static_cast<double>(counts[k]) / static_cast<double>(n);
        const double sd = std::sqrt(p[k] * (1 - p[k]) / static_cast<double>(n));
        INFO("category " << k << ": frequency " << f << ", probability " << p[k]);
        CHECK(std::abs(f - p[k]) <= 5 * sd);
        const double expected = p[k] * static_cast<double>(n);
        chi2 += (static_cast<double>(counts[k]) - expected) * (static_cast<double>(counts[k]) - expected) / expected;
    }
    // Critical values of chi-square at p = 0.001 for 1..15 degrees of freedom.
    const double critical[] = {10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12,
                               27.88, 29.59, 31.26, 32.91, 34.53, 36.12, 37.70};
    REQUIRE(p.size() >= 2);
    REQUIRE(p.size() <= 16);
    CHECK(chi2 < critical[p.size() - 2]);
}

}  // namespace dam_test
