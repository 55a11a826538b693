// HPO: every hypergradient against the finite-difference derivative of the real one-step
// validation loss, ranges, Baydin's formula, convergence to a known best learning rate, and the
// guarantee that the test set cannot be used.
#include <cmath>

#include "test_helpers.hpp"

using namespace dam_test;

namespace {

/// A two-layer tanh network in double with its parameters in two groups (weights, biases).
struct TinyNet {
    std::vector<Var<double>> weights, biases;
    std::vector<Tensor<double>> init;
    TinyNet() {
        weights = {randn(Shape{5, 4}, 1, true, 0.5), randn(Shape{3, 5}, 2, true, 0.5)};
        biases = {randn(Shape{5}, 3, true, 0.1), randn(Shape{3}, 4, true, 0.1)};
        for (auto* g : {&weights, &biases})
            for (auto& p : *g) init.push_back(p.value().clone());
    }
    Var<double> forward(const Var<double>& x) const {
        return ops::linear(ops::tanh(ops::linear(x, weights[0], biases[0])), weights[1], biases[1]);
    }
    std::vector<std::vector<Var<double>>> groups() const { return {weights, biases}; }
    std::vector<Var<double>> all() const { return {weights[0], weights[1], biases[0], biases[1]}; }
    void reset() {
        auto ps = all();
        for (std::size_t i = 0; i < ps.size(); ++i) {
            ps[i].value().copy_from(init[i]);
            ps[i].grad() = Tensor<double>();
        }
    }
};

Tensor<std::int32_t> labels_of(std::initializer_list<std::int32_t> l) {
    Tensor<std::int32_t> t(Shape{static_cast<std::int64_t>(l.size())});
    std::int64_t i = 0;
    for (auto v : l) t[i++] = v;
    return t;
}

struct OneStep {
    double val_loss;
    std::vector<double> dlr, dwd;
    double deps;
};

/// From a fixed state (weights and a momentum buffer from one primed step), one training step with
/// (lr, wd) per group and label smoothing eps, then the validation loss at w' and, when asked, the
/// hypergradients from HyperSGD.
OneStep one_step(TinyNet& net, const std::vector<double>& lr, const std::vector<double>& wd, double eps, bool hyper) {
    const auto xt = randn(Shape{6, 4}, 10, false), xv = randn(Shape{7, 4}, 11, false);
    const auto yt = labels_of({0, 1, 2, 1, 0, 2}), yv = labels_of({2, 2, 0, 1, 1, 0, 2});
    net.reset();
    hpo::HyperSGD<double> sgd(net.groups(), 0.9);
    // Prime the momentum buffers with a fixed gradient.
    auto ps = net.all();
    for (std::size_t i = 0; i < ps.size(); ++i) ps[i].grad() = randn(ps[i].shape(), 20 + i, false).value();
    sgd.step({0.05, 0.05}, {0.01, 0.0});
    sgd.zero_grad();
    // The direction d(grad L_train)/d eps = grad CE(eps = 1) - grad CE(eps = 0), by two plain passes.
    std::vector<std::vector<Tensor<double>>> dir;
    if (hyper) {
        ops::cross_entropy(net.forward(xt), yt, {1.0, ops::Reduction::mean}).backward();
        std::vector<Tensor<double>> g1;
        for (auto& p : ps) g1.push_back(p.grad().clone());
        sgd.zero_grad();
        ops::cross_entropy(net.forward(xt), yt, {0.0, ops::Reduction::mean}).backward();
        dir = {{}, {}};
        for (std::size_t i = 0; i < ps.size(); ++i) {
            Tensor<double> d = g1[i].clone();
            for (std::int64_t j = 0; j < d.numel(); ++j) d[j] -= ps[i].grad()[j];
            dir[i < 2 ? 0 : 1].push_back(d);
        }
        sgd.zero_grad();
    }
    ops::cross_entropy(net.forward(xt), yt, {eps, ops::Reduction::mean}).backward();
    sgd.step(lr, wd);
    sgd.zero_grad();
    auto lv = ops::cross_entropy(net.forward(xv), yv);
    OneStep r{lv.value().item(), {}, {}, 0};
    if (hyper) {
        lv.backward();
        r.dlr = sgd.lr_hypergradients();
        r.dwd = sgd.wd_hypergradients();
        r.deps = sgd.direction_hypergradient(dir);
    }
    return r;
}

}  // namespace

TEST_CASE("hypergradients equal the finite-difference derivative of the one-step validation loss",
          "[hpo][hypergradient]") {
    TinyNet net;
    const std::vector<double> lr{0.3, 0.2}, wd{0.02, 0.005};
    const double eps = 0.1, h = 1e-6;
    const OneStep a = one_step(net, lr, wd, eps, true);
    for (std::size_t g = 0; g < 2; ++g) {
        INFO("group " << g);
        auto lp = lr, lm = lr, wp = wd, wm = wd;
        lp[g] += h;
        lm[g] -= h;
        wp[g] += h;
        wm[g] -= h;
        const double fd_lr = (one_step(net, lp, wd, eps, false).val_loss - one_step(net, lm, wd, eps, false).val_loss) / (2 * h);
        const double fd_wd = (one_step(net, lr, wp, eps, false).val_loss - one_step(net, lr, wm, eps, false).val_loss) / (2 * h);
        // First order: the hypergradient drops the Hessian term, which is exact here because the
        // validation loss is evaluated at w'(h) and w' is linear in (eta, lambda) for fixed g.
        CHECK(a.dlr[g] == Approx(fd_lr).epsilon(1e-6).margin(1e-9));
        CHECK(a.dwd[g] == Approx(fd_wd).epsilon(1e-6).margin(1e-9));
        CHECK(std::abs(a.dlr[g]) > 1e-4);  // not trivially zero
    }
    const double fd_eps = (one_step(net, lr, wd, eps + h, false).val_loss - one_step(net, lr, wd, eps - h, false).val_loss) / (2 * h);
    CHECK(a.deps == Approx(fd_eps).epsilon(1e-6).margin(1e-9));
    CHECK(std::abs(a.deps) > 1e-5);
}

TEST_CASE("HypergradMulti's backward adds the label-smoothing direction without changing any gradient",
          "[hpo][hypergradient]") {
    TinyNet net;
    const auto x = randn(Shape{6, 4}, 10, false);
    const auto y = labels_of({0, 1, 2, 1, 0, 2});
    std::vector<optim::ParamGroup<double>> groups{{net.weights, 0.1, 1e-3, "w"}, {net.biases, 0.1, 0.0, "b"}};
    hpo::HypergradMulti<double> multi(groups, {}, 0.1);
    // Plain gradients for reference (also leaves a stale gradient that must survive accumulation).
    auto plain = multi.training_loss(net.forward(x), y);
    plain.backward();
    std::vector<Tensor<double>> ref;
    for (auto& p : net.all()) ref.push_back(p.grad().clone());
    for (auto& p : net.all()) p.zero_grad();
    auto logits = net.forward(x);
    multi.backward(multi.training_loss(logits, y), logits, y);
    auto ps = net.all();
    for (std::size_t i = 0; i < ps.size(); ++i)
        for (std::int64_t j = 0; j < ps[i].numel(); ++j) REQUIRE(ps[i].grad()[j] == Approx(ref[i][j]).margin(1e-14));
    // The direction equals grad CE(eps=1) - grad CE(eps=0).
    for (auto& p : ps) p.grad() = Tensor<double>();
    ops::cross_entropy(net.forward(x), y, {1.0, ops::Reduction::mean}).backward();
    std::vector<Tensor<double>> g1;
    for (auto& p : ps) g1.push_back(p.grad().clone());
    for (auto& p : ps) p.grad() = Tensor<double>();
    ops::cross_entropy(net.forward(x), y, {0.0, ops::Reduction::mean}).backward();
    const auto& dir = multi.smoothing_direction();
    for (std::size_t i = 0; i < ps.size(); ++i) {
        const auto& d = dir[i < 2 ? 0 : 1][i < 2 ? i : i - 2];
        for (std::int64_t j = 0; j < d.numel(); ++j) REQUIRE(d[j] == Approx(g1[i][j] - ps[i].grad()[j]).margin(1e-12));
    }
}

TEST_CASE("HypergradLrWd and FixedSchedule train on the label-smoothed loss they are given", "[hpo]") {
    TinyNet net;
    const auto x = randn(Shape{6, 4}, 10, false);
    const auto y = labels_of({0, 1, 2, 1, 0, 2});
    std::vector<optim::ParamGroup<double>> groups{{net.weights, 0.1, 1e-3, "w"}, {net.biases, 0.1, 0.0, "b"}};
    const auto logits = net.forward(x);
    // (1 - eps) CE + eps U by hand: CE = lse - z_y, U = lse - mean_k z_k, averaged over the rows.
    auto expected = [&](double eps) {
        const std::int64_t N = logits.dim(0), K = logits.dim(1);
        double total = 0;
        for (std::int64_t i = 0; i < N; ++i) {
            double mx = -1e300, mean_z = 0, se = 0;
            for (std::int64_t k = 0; k < K; ++k) mx = std::max(mx, logits.value()[i * K + k]);
            for (std::int64_t k = 0; k < K; ++k) {
                se += std::exp(logits.value()[i * K + k] - mx);
                mean_z += logits.value()[i * K + k] / static_cast<double>(K);
            }
            const double lse = mx + std::log(se);
            total += (1 - eps) * (lse - logits.value()[i * K + y[i]]) + eps * (lse - mean_z);
        }
        return total / static_cast<double>(N);
    };
    hpo::HypergradOptions o;
    o.label_smoothing = 0.2;
    hpo::HypergradLrWd<double> smoothed(groups, o);
    hpo::HypergradLrWd<double> plain(groups);
    hpo::FixedSchedule<double> fixed(groups, [](std::int64_t) { return 0.1; }, 0.9, 0.2);
    CHECK(std::abs(expected(0.2) - expected(0.0)) > 1e-2);  // the two losses differ on these logits
    CHECK(smoothed.training_loss(logits, y).value().item() == Approx(expected(0.2)).epsilon(1e-12));
    CHECK(fixed.training_loss(logits, y).value().item() == Approx(expected(0.2)).epsilon(1e-12));
    CHECK(plain.training_loss(logits, y).value().item() == Approx(expected(0.0)).epsilon(1e-12));
    o.label_smoothing = 1.0;
    require_throws_with<value_error>([&] { hpo::HypergradLrWd<double>(groups, o); }, {"label_smoothing", "[0, 1)", "got 1"});
    require_throws_with<value_error>([&] { hpo::FixedSchedule<double>(groups, [](std::int64_t) { return 0.1; }, 0.9, -0.1); },
                                     {"FixedSchedule", "label_smoothing", "got -0.1"});
}

TEST_CASE("hyperparameters stay in their ranges however large the hypergradient", "[hpo]") {
    hpo::Hyperparameter lr{"lr", 0.1, 0.01, 0.2, true};
    for (int i = 0; i < 500; ++i) lr.apply(-1e6, 0.05);  // keeps pushing up
    CHECK(lr.value == 0.2);
    for (int i = 0; i < 500; ++i) lr.apply(1e6, 0.05);
    CHECK(lr.value == Approx(0.01));
    hpo::Hyperparameter eps{"eps", 0.05, 0.0, 0.3, false};
    for (int i = 0; i < 500; ++i) eps.apply(1e3, 0.01);
    CHECK(eps.value == 0.0);
    require_throws_with<value_error>([&] { lr.apply(NAN, 0.1); }, {"'lr'", "hypergradient is nan"});
    require_throws_with<value_error>([] { hpo::Hyperparameter{"wd", 0.0, 0.0, 1.0, true}.check(); }, {"'wd'", "a positive lower bound (log scale)"});
}

TEST_CASE("BaydinHD follows eta_t = eta_{t-1} + beta g_t . g_{t-1}", "[hpo][baydin]") {
    Var<double> w(Tensor<double>::from(Shape{3}, {1.0, -2.0, 0.5}), true);
    std::vector<optim::ParamGroup<double>> groups{{{w}, 0.1, 0.0, "all"}};
    hpo::BaydinHD<double> hd(groups, {0.0, 0.01, 1e-5, 1.0, {}});
    hpo::HpoContext<double> ctx;
    const auto g0 = Tensor<double>::from(Shape{3}, {0.5, 1.0, -1.0}), g1 = Tensor<double>::from(Shape{3}, {2.0, 0.5, 1.0});
    w.grad() = g0.clone();
    hd.step(ctx);  // first step: no previous gradient yet
    CHECK(hd.values()[0].second == 0.1);
    w.grad() = g1.clone();
    hd.step(ctx);
    const double dot = 0.5 * 2.0 + 1.0 * 0.5 + -1.0 * 1.0;
    CHECK(hd.values()[0].second == Approx(0.1 + 0.01 * dot));
    CHECK(hd.last_hypergradient() == Approx(-dot));
}

TEST_CASE("BaydinHD keeps each group's weight decay and follows the learning-rate schedule", "[hpo][baydin]") {
    // Step t uses the rate f(t) eta and decay lambda on the decayed group; the base rate moves by
    // beta f(t-1) g_t . u_{t-1}, u = g + lambda w (no momentum).
    Var<double> w(Tensor<double>::from(Shape{2}, {1.0, -2.0}), true);
    Var<double> b(Tensor<double>::from(Shape{1}, {0.5}), true);
    std::vector<optim::ParamGroup<double>> groups{{{w}, 0.1, 0.05, "decay"}, {{b}, 0.1, 0.0, "no_decay"}};
    hpo::BaydinOptions o;
    o.beta = 0.01;
    o.lr_factor = [](std::int64_t step) { return step == 0 ? 0.5 : 0.25; };
    hpo::BaydinHD<double> hd(groups, o);
    hpo::HpoContext<double> ctx;
    const double w0[2] = {1.0, -2.0}, g0[2] = {0.5, 1.0}, g1[2] = {2.0, 0.5};
    w.grad() = Tensor<double>::from(Shape{2}, {g0[0], g0[1]});
    b.grad() = Tensor<double>::from(Shape{1}, {1.0});
    ctx.step = 0;
    hd.step(ctx);
    double u0[2], w1[2];
    for (int i = 0; i < 2; ++i) {
        u0[i] = g0[i] + 0.05 * w0[i];
        w1[i] = w0[i] - 0.5 * 0.1 * u0[i];
        CHECK(w.value()[i] == Approx(w1[i]).epsilon(1e-14));
    }
    CHECK(b.value()[0] == Approx(0.5 - 0.5 * 0.1 * 1.0).epsilon(1e-14));  // no decay on this group
    w.grad() = Tensor<double>::from(Shape{2}, {g1[0], g1[1]});
    b.grad() = Tensor<double>::from(Shape{1}, {0.0});
    ctx.step = 1;
    hd.step(ctx);
    const double h = -(g1[0] * u0[0] + g1[1] * u0[1]) * 0.5;  // dL/d(base rate), f(0) = 0.5
    const double lr1 = 0.1 - 0.01 * h;
    CHECK(hd.last_hypergradient() == Approx(h).epsilon(1e-14));
    CHECK(hd.values()[0].second == Approx(lr1).epsilon(1e-14));
    CHECK(hd.values()[1] == std::pair<std::string, double>{"weight_decay", 0.05});
    for (int i = 0; i < 2; ++i)
        CHECK(w.value()[i] == Approx(w1[i] - 0.25 * lr1 * (g1[i] + 0.05 * w1[i])).epsilon(1e-14));
    // weight_update() is the next step's update without taking it.
    const auto r = hd.rates(2);
    CHECK(r.lr == std::vector<double>{0.25 * lr1, 0.25 * lr1});
    CHECK(r.wd == std::vector<double>{0.05, 0.0});
}

TEST_CASE("the learning-rate hypergradient moves eta to the known best value from both sides", "[hpo]") {
    // L(w) = a/2 |w|^2 from a fixed w0: w' = (1 - eta a) w0 and L(w') is smallest at eta = 1/a.
    const double a = 4.0;
    for (double start : {0.02, 0.45}) {
        INFO("start " << start);
        Var<double> w(Tensor<double>::from(Shape{2}, {1.0, -1.5}), true);
        const Tensor<double> w0 = w.value().clone();
        hpo::Hyperparameter eta{"lr", start, 1e-3, 1.0, true};
        for (int i = 0; i < 400; ++i) {
            w.value().copy_from(w0);
            hpo::HyperSGD<double> sgd({{w}}, 0.0);
            w.grad() = w0.clone();
            for (std::int64_t j = 0; j < 2; ++j) w.grad()[j] *= a;  // grad L(w0) = a w0
            sgd.step({eta.value}, {0.0});
            for (std::int64_t j = 0; j < 2; ++j) w.grad()[j] = a * w.value()[j];  // v = grad L(w')
            eta.apply(sgd.lr_hypergradients()[0], 0.02);
        }
        CHECK(eta.value == Approx(1 / a).epsilon(0.05));
    }
}

namespace {
/// 200 training images of two well-separated classes (two features each, classes at -1 and +1
/// along the first), for the hypergradient policies' classification tests.
data::Dataset two_classes() {
    data::Dataset d;
    const std::int64_t n = 200;
    d.images = Tensor<float>(Shape{n, 1, 1, 2});
    d.labels.resize(static_cast<std::size_t>(n));
    d.classes = 2;
    d.split = data::Split::train;
    Generator g(3);
    normal_(d.images, g, 0.0, 0.3);
    for (std::int64_t i = 0; i < n; ++i) {
        d.labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % 2);
        d.images[i * 2] += i % 2 ? 1.0f : -1.0f;
    }
    return d;
}
}  // namespace

TEST_CASE("HypergradLrWd raises a too-small learning rate on a real classification step and holds it when frozen", "[hpo]") {
    // Two well-separated classes; starting at lr = 1e-3 every validation hypergradient says "larger".
    const data::Dataset d = two_classes();
    auto [train, val] = hpo::hold_out(d, 50, 1);
    CHECK(train.size() == 150);
    CHECK(val.size() == 50);
    Generator wg(4);
    nn::Linear<float> head(2, 2, true, wg);
    std::vector<optim::ParamGroup<float>> groups{{head.parameters(), 1e-3, 1e-4, "all"}};
    hpo::HypergradOptions o;
    o.hyper_lr = 0.05;
    hpo::HypergradLrWd<float> policy(groups, o);
    hpo::HpoContext<float> ctx;
    ctx.validation = &val;
    ctx.validation_batch = 25;
    ctx.forward = [&](const Tensor<float>& x) { return head.forward(ops::flatten(Var<float>(x))); };
    data::BatchLoader loader(train, 25, true, 2, true);
    auto train_steps = [&](int from, int to) {
        for (int step = from; step < to; ++step) {
            if (!loader.has_next()) loader.start_epoch(step);
            auto b = loader.next();
            ctx.step = step;
            auto logits = ctx.forward(b.images);
            policy.backward(policy.training_loss(logits, b.labels), logits, b.labels);
            policy.step(ctx);
        }
    };
    train_steps(0, 30);
    CHECK(policy.values()[0].second > 2e-3);
    CHECK(policy.last_hypergradients().first < 0);

    // Frozen: the weights keep training, the hyperparameters stay exactly where they are.
    ctx.frozen = true;
    const auto values = policy.values();
    const Tensor<float> w0 = head.parameters()[0].value().clone();
    train_steps(30, 40);
    CHECK(policy.values() == values);
    double moved = 0;
    for (std::int64_t k = 0; k < w0.numel(); ++k) moved += std::abs(head.parameters()[0].value()[k] - w0[k]);
    CHECK(moved > 0);
}

TEST_CASE("HypergradLrWd with defer_reduce: the hypergradient waits for apply_pending, the weights take the same steps",
          "[hpo][dist]") {
    // What JointSearch does in a sharded run: a hyper step leaves its hypergradient pending, and
    // the next step's allreduce hands it back before the weight update. The weights then take
    // bit for bit the steps of the immediate policy, and the rates agree once applied.
    const data::Dataset d = two_classes();
    auto [train, val_a] = hpo::hold_out(d, 50, 1);
    auto [train_b, val_b] = hpo::hold_out(d, 50, 1);
    struct Run {
        std::unique_ptr<nn::Linear<float>> head;
        std::unique_ptr<hpo::HypergradLrWd<float>> policy;
        hpo::HpoContext<float> ctx;
    };
    auto make = [&](hpo::ValidationSet& val, bool defer) {
        Run r;
        Generator wg(4);
        r.head = std::make_unique<nn::Linear<float>>(2, 2, true, wg);
        hpo::HypergradOptions o;
        o.hyper_lr = 0.05;
        o.every = 3;
        r.policy = std::make_unique<hpo::HypergradLrWd<float>>(
            std::vector<optim::ParamGroup<float>>{{r.head->parameters(), 1e-3, 1e-4, "all"}}, o);
        r.ctx.validation = &val;
        r.ctx.validation_batch = 25;
        nn::Linear<float>* h = r.head.get();
        r.ctx.forward = [h](const Tensor<float>& x) { return h->forward(ops::flatten(Var<float>(x))); };
        r.ctx.reduce = [](std::span<double>) {};  // one rank
        r.ctx.defer_reduce = defer;
        return r;
    };
    Run now = make(val_a, false), later = make(val_b, true);
    data::BatchLoader loader(train, 25, true, 2, true);
    int applied = 0;
    for (int step = 0; step < 19; ++step) {
        if (!loader.has_next()) loader.start_epoch(step);
        const auto b = loader.next();
        if (!later.policy->pending().empty()) {  // the trainer's allreduce, before the weight step
            const std::vector<double> sums = later.policy->pending();
            later.policy->apply_pending(sums);
            ++applied;
            CHECK(later.policy->values() == now.policy->values());
        }
        for (Run* r : {&now, &later}) {
            r->ctx.step = step;
            auto logits = r->ctx.forward(b.images);
            r->policy->backward(r->policy->training_loss(logits, b.labels), logits, b.labels);
            r->policy->step(r->ctx);
        }
        const auto wa = now.head->parameters()[0].value(), wb = later.head->parameters()[0].value();
        for (std::int64_t k = 0; k < wa.numel(); ++k) REQUIRE(wa[k] == wb[k]);
        if (step % 3 == 0) {
            CHECK(later.policy->pending().size() == 2);
            CHECK(later.policy->values() != now.policy->values());  // not applied yet
            ByteWriter w;
            require_throws_with<value_error>([&] { later.policy->save_state(w); }, {"pending", "apply_pending"});
        }
    }
    CHECK(applied == 6);  // steps 0, 3, ..., 15 applied at the next step; 18's is still pending
    later.policy->apply_pending(std::vector<double>(later.policy->pending()));
    CHECK(later.policy->values() == now.policy->values());
    CHECK(later.policy->last_hypergradients() == now.policy->last_hypergradients());
}

TEST_CASE("hyperparameters cannot be tuned on the test set", "[hpo]") {
    data::Dataset test;
    test.images = Tensor<float>(Shape{10, 1, 2, 2});
    test.labels.assign(10, 0);
    test.classes = 2;
    test.split = data::Split::test;
    require_throws_with<value_error>([&] { (void)hpo::hold_out(test, 5, 0); }, {"hold_out", "test set", "never"});
    // A subset of a test set is still a test set.
    auto part = data::subset(test, {0, 1, 2});
    CHECK(part.split == data::Split::test);
    require_throws_with<value_error>([&] { (void)hpo::hold_out(part, 2, 0); }, {"test set"});
    // Data of unknown origin must be marked as training data first.
    test.split = data::Split::unknown;
    require_throws_with<value_error>([&] { (void)hpo::hold_out(test, 5, 0); }, {"not marked as training data", "Split::train"});
    test.split = data::Split::train;
    CHECK(hpo::hold_out(test, 5, 0).second.size() == 5);
}

TEST_CASE("every HPO policy's step consumes the gradients and releases them", "[hpo]") {
    // A trainer calls backward() then step() each iteration without zeroing in between: a policy
    // that left its gradients in place would accumulate them over steps.
    Var<double> w(Tensor<double>::from(Shape{2}, {1.0, -1.0}), true);
    // u is never reached by the loss (like a candidate the supernet did not sample): no step may
    // move it, not even weight decay.
    Var<double> u(Tensor<double>::from(Shape{1}, {3.0}), true);
    std::vector<optim::ParamGroup<double>> groups{{{w, u}, 0.1, 1e-3, "all"}};
    hpo::HpoContext<double> ctx;
    auto check = [&](auto& policy) {
        for (int i = 0; i < 3; ++i) {
            ctx.step = i;
            ops::sum(w * w).backward();
            const double before = w.value()[0], g = w.grad()[0];
            policy.step(ctx);
            CHECK(w.value()[0] != before);
            CHECK(g == Approx(2 * before));  // the gradient of this step alone
            CHECK_FALSE(w.grad().defined());  // released: an unreached parameter gets no update next step
        }
    };
    hpo::FixedSchedule<double> fixed(groups, [](std::int64_t) { return 0.1; }, 0.9);
    check(fixed);
    hpo::BaydinHD<double> baydin(groups);
    check(baydin);
    hpo::HypergradOptions o;
    o.every = 1000;  // no validation step at steps 1 and 2: the gradients must still be consumed
    hpo::HypergradLrWd<double> lrwd(groups, o);
    ctx.step = 1;
    ops::sum(w * w).backward();
    lrwd.step(ctx);
    CHECK_FALSE(w.grad().defined());
    CHECK(u.value()[0] == 3.0);
}
