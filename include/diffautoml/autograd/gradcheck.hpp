#pragma once
// The library's gradient checker: central differences in double precision against backward(),
// plus a check that backward() *adds* into gradients that already hold values.
//
// For an f with any output shape we check the vector-Jacobian product with a fixed random seed r:
// L(x) = <f(x), r>, dL/dx_j ~ (L(x + h e_j) - L(x - h e_j)) / (2h).
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "variable.hpp"

namespace diffautoml {

struct GradcheckOptions {
    double step = 1e-6;   ///< h of the central difference
    double atol = 1e-6;
    double rtol = 1e-4;
    std::uint64_t seed = 1234;
};

struct GradcheckResult {
    bool ok = true;
    double max_abs_error = 0;
    std::int64_t elements_checked = 0;
    std::string message;  ///< the first failure, naming the input and element
};

using GradcheckFn = std::function<Var<double, cpu>(const std::vector<Var<double, cpu>>&)>;

inline GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Var<double, cpu>>& inputs,
                                 GradcheckOptions opt = {}) {
    using TensorD = Tensor<double, cpu>;
    GradcheckResult res;
    auto fail = [&](std::string msg) {
        if (res.ok) res.message = std::move(msg);
        res.ok = false;
    };

    // Seed r: fixed normal values, so every output element takes part.
    Var<double, cpu> out = f(inputs);
    Generator gen(opt.seed);
    TensorD r(out.shape());
    normal_(r, gen, 0.0, 1.0);
    auto project = [&](const TensorD& v) {
        double s = 0;
        for (std::int64_t i = 0; i < v.numel(); ++i) s += v[i] * r[i];
        return s;
    };

    // Analytic gradients, starting from zero.
    for (const auto& x : inputs) {
        auto xv = x;
        if (xv.requires_grad() && xv.grad().defined()) xv.grad() = TensorD();
    }
    if (!out.requires_grad()) {
        fail("gradcheck: the output does not depend on any input with requires_grad");
        return res;
    }
    out.backward(r);
    std::vector<TensorD> analytic;
    for (const auto& x : inputs) {
        if (!x.requires_grad()) {
            analytic.emplace_back();
            continue;
        }
        analytic.push_back(x.grad().defined() ? x.grad().clone() : TensorD::zeros(x.shape()));
    }

    // Numeric gradients.
    {
        NoGradGuard no_grad;
        for (std::size_t k = 0; k < inputs.size(); ++k) {
            if (!inputs[k].requires_grad()) continue;
            const TensorD& xv = inputs[k].value();
            for (std::int64_t j = 0; j < xv.numel(); ++j) {
                const double saved = xv[j];
                xv[j] = saved + opt.step;
                const double plus = project(f(inputs).value());
                xv[j] = saved - opt.step;
                const double minus = project(f(inputs).value());
                xv[j] = saved;
                const double numeric = (plus - minus) / (2 * opt.step);
                const double a = analytic[k][j];
                const double err = std::abs(a - numeric);
                res.max_abs_error = std::max(res.max_abs_error, err);
                ++res.elements_checked;
                if (!(err <= opt.atol + opt.rtol * std::abs(numeric)))
                    fail(fmt::format("gradcheck: input {} element {}: backward gives {:.10g}, central difference "
                                     "gives {:.10g} (|error| {:.3g})",
                                     k, j, a, numeric, err));
            }
        }
    }

    // Accumulation: with grad = g0 already present, a second backward must give g0 + analytic.
    std::vector<TensorD> g0;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        auto xv = inputs[k];
        if (!xv.requires_grad()) {
            g0.emplace_back();
            continue;
        }
        TensorD g(xv.shape());
        for (std::int64_t j = 0; j < g.numel(); ++j) g[j] = 0.25 + 0.5 * static_cast<double>(j % 7);
        xv.grad() = g.clone();
        g0.push_back(g);
    }
    Var<double, cpu> out2 = f(inputs);
    out2.backward(r);
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        if (!inputs[k].requires_grad()) continue;
        const TensorD& g = inputs[k].grad();
        for (std::int64_t j = 0; j < g.numel(); ++j) {
            const double expect = g0[k][j] + analytic[k][j];
            if (!(std::abs(g[j] - expect) <= 1e-9 + 1e-9 * std::abs(expect))) {
                fail(fmt::format("gradcheck: input {} element {}: backward did not accumulate: grad {:.10g}, "
                                 "expected previous {:.10g} + new {:.10g}",
                                 k, j, g[j], g0[k][j], analytic[k][j]));
                break;
            }
        }
    }
    return res;
}

}  // namespace diffautoml
