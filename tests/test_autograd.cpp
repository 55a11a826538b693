#include "test_helpers.hpp"

using namespace dam_test;

TEST_CASE("backward walks a DAG once per node and sums the paths", "[autograd]") {
    // y = (x*x) + (x*x) * 3 through a shared intermediate: dy/dx = 8x.
    auto x = Var<double>(Tensor<double>::from(Shape{2}, {1.5, -2.0}), true);
    auto sq = x * x;
    auto y = ops::sum(sq + sq * 3.0);
    y.backward();
    CHECK(x.grad()[0] == Approx(12.0));
    CHECK(x.grad()[1] == Approx(-16.0));
}

TEST_CASE("gradients accumulate across backward calls on leaves", "[autograd]") {
    auto x = Var<double>(Tensor<double>::from(Shape{1}, {3.0}), true);
    ops::sum(x * x).backward();
    ops::sum(x * x).backward();
    CHECK(x.grad()[0] == Approx(12.0));
    x.fill_grad_zero();
    REQUIRE(x.grad().defined());
    CHECK(x.grad()[0] == 0.0);
    x.zero_grad();  // releases: the next backward pass starts a new gradient
    CHECK_FALSE(x.grad().defined());
    ops::sum(x * x).backward();
    CHECK(x.grad()[0] == Approx(6.0));
}

TEST_CASE("a deep chain runs without recursion", "[autograd]") {
    auto x = Var<double>(Tensor<double>::from(Shape{1}, {1.0}), true);
    auto y = x;
    for (int i = 0; i < 100000; ++i) y = y + 1e-6;
    ops::sum(y).backward();
    CHECK(x.grad()[0] == Approx(1.0));
}

TEST_CASE("the graph is freed after backward", "[autograd]") {
    auto x = Var<double>(Tensor<double>::from(Shape{2}, {1.0, 2.0}), true);
    auto h = ops::exp(x);
    std::weak_ptr<Node<double, cpu>> weak = h.node_ptr();
    auto y = ops::sum(h);
    h = Var<double>();
    CHECK_FALSE(weak.expired());  // still referenced by y's graph
    y.backward();
    CHECK(weak.expired());        // the tape released it
    require_throws_with<autograd_error>([&] { y.backward(); }, {"already freed", "forward"});
}

TEST_CASE("no_grad records nothing; detach cuts the graph", "[autograd]") {
    auto x = Var<double>(Tensor<double>::from(Shape{1}, {2.0}), true);
    {
        NoGradGuard guard;
        auto y = x * x;
        CHECK_FALSE(y.requires_grad());
        CHECK_FALSE(grad_enabled());
    }
    CHECK(grad_enabled());
    auto d = (x * x).detach();
    CHECK_FALSE(d.requires_grad());
    auto y = ops::sum(d * x);  // d is a constant 4
    y.backward();
    CHECK(x.grad()[0] == Approx(4.0));
}

TEST_CASE("hooks see the gradient flowing into an intermediate value", "[autograd]") {
    // y = sum(3 * z), z = 2x: the gradient into z is 3 everywhere, whatever x is.
    auto x = Var<double>(Tensor<double>::from(Shape{3}, {1.0, 2.0, 3.0}), true);
    auto z = x * 2.0;
    Tensor<double> seen;
    z.register_hook([&](const Tensor<double>& g) { seen = g.clone(); });
    z.retain_grad();
    ops::sum(z * 3.0).backward();
    REQUIRE(seen.defined());
    for (int i = 0; i < 3; ++i) {
        CHECK(seen[i] == Approx(3.0));
        CHECK(z.grad()[i] == Approx(3.0));
        CHECK(x.grad()[i] == Approx(6.0));
    }
}

TEST_CASE("backward on a non-scalar needs a seed; misuse is a typed error", "[autograd]") {
    auto x = randn(Shape{2, 2}, 1);
    auto y = x * 2.0;
    require_throws_with<autograd_error>([&] { y.backward(); }, {"shape (2, 2)", "seed"});
    auto c = Var<double>(Tensor<double>::zeros(Shape{1}));
    require_throws_with<autograd_error>([&] { ops::sum(c).backward(); }, {"does not require a gradient"});
    y.backward(Tensor<double>::full(Shape{2, 2}, 1.0));
    CHECK(x.grad()[3] == Approx(2.0));
}

TEST_CASE("the gradient checker catches a wrong gradient and a missing accumulation", "[autograd][gradcheck]") {
    // An op whose backward is off by a factor 2: the checker must fail on it.
    auto wrong = [](const std::vector<Var<double>>& v) {
        const auto& x = v[0];
        Tensor<double> y = x.value().clone();
        for (std::int64_t i = 0; i < y.numel(); ++i) y[i] = y[i] * y[i];
        return Var<double>::make_result(y, "bad_square", {x}, [xn = x.node(), xv = x.value()](const Tensor<double>& g) {
            Tensor<double> dx(xv.shape());
            for (std::int64_t i = 0; i < dx.numel(); ++i) dx[i] = g[i] * xv[i];  // should be 2 x g
            xn->accumulate_owned(std::move(dx));
        });
    };
    const auto r = gradcheck(wrong, {randn(Shape{3}, 5)});
    CHECK_FALSE(r.ok);
    CHECK(r.message.find("central difference") != std::string::npos);

    // An op that overwrites the gradient instead of adding to it: the accumulation check fails.
    auto overwriting = [](const std::vector<Var<double>>& v) {
        const auto& x = v[0];
        return Var<double>::make_result(x.value().clone(), "bad_identity", {x}, [xn = x.node()](const Tensor<double>& g) {
            xn->accumulate(g);
            if (xn->is_leaf && xn->grad.defined()) xn->grad.zero();  // wrongly discards the earlier gradient
        });
    };
    const auto r2 = gradcheck(overwriting, {randn(Shape{3}, 6)});
    CHECK_FALSE(r2.ok);
    CHECK(r2.message.find("accumulate") != std::string::npos);
}

TEST_CASE("the op profiler attributes forward and backward time to each op, and records nothing when off", "[autograd]") {
    auto x = Var<double>(Tensor<double>::full(Shape{64, 64}, 0.5), true);
    {
        auto y = ops::sum(ops::relu(x * x));  // not profiled
        y.backward();
    }
    OpProfiler p;
    {
        ProfileScope scope(p);
        for (int i = 0; i < 3; ++i) {
            auto y = ops::sum(ops::relu(x * x));
            y.backward();
        }
        p.mark("(after)");
    }
    auto y = ops::sum(x * x);  // after the scope: not recorded
    y.backward();
    const auto& e = p.entries();
    // Three steps of mul, relu and sum: each op's forward once and its backward once per step.
    REQUIRE(e.size() == 4);
    for (const auto& [op, entry] : e) {
        INFO(op);
        if (op == "(after)") {
            CHECK(entry.forward_calls == 1);
            CHECK(entry.backward_calls == 0);
            continue;
        }
        CHECK(entry.forward_calls == 3);
        CHECK(entry.backward_calls == 3);
        CHECK(entry.forward_seconds >= 0);
        CHECK(entry.backward_seconds > 0);
    }
    CHECK(p.total_seconds() > 0);
    CHECK(p.sorted().front().second.total() >= p.sorted().back().second.total());
    CHECK(OpProfiler::active() == nullptr);
}
