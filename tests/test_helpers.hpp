#pragma once
#include <string>

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
}  // namespace dam_test
