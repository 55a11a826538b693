// NAS: the fused weighted sum, mixed ops, search spaces and their costs, the DSNAS, DARTS and GDAS
// estimators on problems small enough to know the exact answer, and export/load round trips.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "test_helpers.hpp"

using namespace dam_test;
using VD = std::vector<Var<double>>;
namespace fs = std::filesystem;

namespace {

/// |t| elementwise (test inputs that must be positive).
Tensor<double> abs_values(const Tensor<double>& t) {
    Tensor<double> r = t.clone();
    for (std::int64_t i = 0; i < r.numel(); ++i) r[i] = std::abs(r[i]);
    return r;
}

/// A parameter-free candidate y = C * x (C = Num / 2), so that toy problems have known optima.
template <int Num>
struct FixedScale {
    static constexpr std::string_view name = Num == 2    ? "x1"
                                             : Num == 6  ? "x3"
                                             : Num == -2 ? "x-1"
                                             : Num == -6 ? "x-3"
                                                         : "x0.5";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const nas::CandidateArgs&, Generator&) {
        struct Scale : nn::Module<T, D> {
            Var<T, D> forward(const Var<T, D>& x) override { return x * (Num / 2.0); }
        };
        return nn::make<Scale>();
    }
};

/// A candidate 1x1 conv without bias whose weights come from the generator: linear in its input.
template <int Tag>
struct LinearConv {
    static constexpr std::string_view name = Tag == 0 ? "lin0" : Tag == 1 ? "lin1" : "lin2";
    template <class T, Device D>
    static nn::ModulePtr<T, D> make(const nas::CandidateArgs& a, Generator& gen) {
        return nn::make<nn::Conv2d<T, D>>(a.in, a.out, 1, Conv2dOptions{}, false, gen);
    }
};

/// A chain of mixed ops of the candidate list Cs (one decision per layer), nothing else.
template <class T, class... Cs>
class ToyNet : public nas::Supernet<T> {
public:
    ToyNet(int layers, std::int64_t channels, Generator& gen) {
        for (int l = 0; l < layers; ++l) {
            auto m = std::make_shared<nas::MixedOp<T, cpu, Cs...>>(nas::CandidateArgs{channels, channels, 1}, gen);
            ops_.push_back(this->register_module(fmt::format("l{}", l), m));
            this->bind(this->add_decision(fmt::format("l{}", l), m->names()), m.get());
        }
        this->measure_costs({1, channels, 2, 2});
    }
    Var<T> forward(const Var<T>& x) override {
        Var<T> y = x;
        for (auto& m : ops_) y = m->forward(y);
        return y;
    }
    std::string space_name() const override { return "toy"; }
    nlohmann::json options_json() const override { return nlohmann::json::object(); }

private:
    std::vector<std::shared_ptr<nas::MixedOpBase<T>>> ops_;
};

nas::ChainOptions tiny_shuffle_options() {
    nas::ChainOptions o = nas::ShuffleSpace::default_options();
    o.stem = 8;
    o.stages = {{16, 2, 2}, {32, 1, 2}};
    o.head = 32;
    o.image = 12;
    return o;
}

Tensor<float> rand_images(std::int64_t n, std::int64_t hw, std::uint64_t seed) {
    Generator g(seed);
    Tensor<float> t(Shape{n, 1, hw, hw});
    normal_(t, g, 0.0, 1.0);
    return t;
}

}  // namespace

TEST_CASE("weighted_sum computes sum_k w_k x_k and passes the gradient checker", "[nas][mixed][gradcheck]") {
    auto a = randn(Shape{2, 3, 4}, 1), b = randn(Shape{2, 3, 4}, 2), c = randn(Shape{2, 3, 4}, 3);
    auto w = randn(Shape{3}, 4);
    auto y = ops::weighted_sum(VD{a, b, c}, w).value();
    for (std::int64_t i = 0; i < y.numel(); ++i)
        REQUIRE(y[i] == Approx(w.value()[0] * a.value()[i] + w.value()[1] * b.value()[i] + w.value()[2] * c.value()[i])
                            .margin(1e-12));
    require_gradcheck([](const VD& v) { return ops::weighted_sum(VD{v[0], v[1], v[2]}, v[3]); }, {a, b, c, w});
    // A large input spans several of the fixed reduction chunks.
    auto big0 = randn(Shape{1000}, 5), big1 = randn(Shape{1000}, 6);
    require_gradcheck([](const VD& v) { return ops::weighted_sum(VD{v[0], v[1]}, v[2]); }, {big0, big1, randn(Shape{2}, 7)},
                      {1e-6, 1e-6, 1e-4, 0});
    require_throws_with<shape_error>([&] { (void)ops::weighted_sum(VD{a, randn(Shape{3, 2}, 8)}, randn(Shape{2}, 9)); },
                                     {"weighted_sum", "same shape"});
    require_throws_with<shape_error>([&] { (void)ops::weighted_sum(VD{a, b}, w); }, {"weighted_sum", "(2,)"});
}

TEST_CASE("a mixed op runs its three modes: weighted sum, gated single path, plain single path", "[nas][mixed]") {
    Generator gen(3);
    using Op = nas::MixedOp<double, cpu, LinearConv<0>, LinearConv<1>, LinearConv<2>>;
    Op op({2, 2, 1}, gen);
    REQUIRE(op.size() == 3);
    REQUIRE(op.names() == std::vector<std::string>{"lin0", "lin1", "lin2"});
    auto x = randn(Shape{2, 2, 3, 3}, 11, false);
    std::vector<Tensor<double>> outs;
    for (int k = 0; k < 3; ++k) outs.push_back(op.candidate(k)->forward(x).value());

    SECTION("weighted sum") {
        auto w = randn(Shape{3}, 12);
        op.set_gate({-1, w});
        auto y = op.forward(x).value();
        for (std::int64_t i = 0; i < y.numel(); ++i)
            REQUIRE(y[i] == Approx(w.value()[0] * outs[0][i] + w.value()[1] * outs[1][i] + w.value()[2] * outs[2][i]));
    }
    SECTION("single path with a gate: the value is the candidate's, dL/dZ_k = <dL/dy, candidate_k(x)>") {
        Var<double> z(Tensor<double>::from(Shape{3}, {0.0, 1.0, 0.0}), true);
        op.set_gate({1, z});
        auto c = randn(Shape{2, 2, 3, 3}, 13, false);
        auto y = op.forward(x);
        for (std::int64_t i = 0; i < y.numel(); ++i) REQUIRE(y.value()[i] == outs[1][i]);
        ops::sum(y * c).backward();
        double expect = 0;
        for (std::int64_t i = 0; i < c.numel(); ++i) expect += c.value()[i] * outs[1][i];
        REQUIRE(z.grad()[1] == Approx(expect));
        REQUIRE(z.grad()[0] == 0.0);  // candidates that did not run get no gradient
    }
    SECTION("plain single path and a derived op that holds only its candidate") {
        op.set_gate({2, Var<double>()});
        auto y = op.forward(x).value();
        for (std::int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == outs[2][i]);
        Generator g2(3);
        Op only({2, 2, 1}, g2, 2);
        REQUIRE(only.built(2));
        REQUIRE_FALSE(only.built(0));
        REQUIRE(only.named_parameters().size() == 1);
        REQUIRE(only.named_parameters()[0].first == "2.weight");  // the supernet's name for it
        require_throws_with<value_error>([&] { (void)only.candidate(0); }, {"candidate 0 is not built", "lin2"});
    }
    SECTION("bad gates are typed errors") {
        require_throws_with<value_error>([&] { op.set_gate({3, Var<double>()}); }, {"gate index 3", "[-1, 3)"});
        require_throws_with<shape_error>([&] { op.set_gate({-1, randn(Shape{2}, 1)}); }, {"(3,)", "(2,)"});
        require_throws_with<value_error>([&] { op.set_gate({-1, Var<double>()}); }, {"weighted sum", "needs weights"});
    }
}

TEST_CASE("search spaces build, know each choice's MACs and parameters, and reject bad input", "[nas][spaces]") {
    Generator gen(0);
    SECTION("ShuffleNetV2 space") {
        auto net = nas::ShuffleSpace::build<float>(nas::ShuffleSpace::default_options(), gen);
        REQUIRE(net->num_decisions() == 8);
        for (const auto& d : net->decisions()) {
            REQUIRE(d.choices == std::vector<std::string>{"shuffle_k3", "shuffle_k5", "shuffle_k7", "shuffle_xception"});
            CHECK(d.macs[0] < d.macs[1]);  // a larger depthwise kernel costs more
            CHECK(d.macs[1] < d.macs[2]);
            CHECK(d.params[0] < d.params[2]);
        }
        // The path cost agrees with counting a forward pass of that path.
        const std::vector<std::int64_t> arch{0, 1, 2, 3, 0, 1, 2, 3};
        net->set_architecture(arch);
        net->eval();
        FlopCounter c;
        {
            NoGradGuard ng;
            FlopScope scope(c);
            (void)net->forward(Var<float>(rand_images(1, 28, 1)));
        }
        CHECK(net->path_macs(arch) == Approx(c.macs).epsilon(1e-9));
        auto y = net->forward(Var<float>(rand_images(3, 28, 2)));
        CHECK(y.shape() == Shape{3, 10});
    }
    SECTION("MobileNetV2 space: skip only where the shape is kept") {
        auto net = nas::MobileNetV2Space::build<float>(nas::MobileNetV2Space::default_options(), gen);
        REQUIRE(net->num_decisions() == 8);
        const std::vector<std::int64_t> sizes{6, 7, 6, 7, 7, 6, 7, 7};
        for (std::size_t d = 0; d < sizes.size(); ++d) CHECK(net->decisions()[d].size() == sizes[d]);
        CHECK(net->decisions()[1].macs[6] == 0.0);  // skip
        net->set_architecture({0, 6, 1, 6, 2, 3, 4, 5});
        CHECK(net->forward(Var<float>(rand_images(2, 28, 3))).shape() == Shape{2, 10});
    }
    SECTION("bad architectures and options") {
        auto net = nas::ShuffleSpace::build<float>(tiny_shuffle_options(), gen);
        require_throws_with<value_error>([&] { net->set_architecture({0, 1}); }, {"shuffle", "one choice per decision (3)"});
        require_throws_with<value_error>([&] { net->set_architecture({0, 4, 0}); }, {"choice 4", "stage1.layer2", "[0, 4)"});
        auto bad = tiny_shuffle_options();
        bad.stages[0].stride = 3;
        require_throws_with<value_error>([&] { (void)nas::ShuffleSpace::build<float>(bad, gen); }, {"shuffle", "stride 1 or 2"});
    }
}

namespace {
template <class Space>
void check_parameter_floor(const typename Space::Options& o) {
    Generator gen(1);
    auto supernet = Space::template build<float>(o, gen);
    for (std::int64_t k = 0; k < 8; ++k) {
        std::vector<std::int64_t> arch;
        for (const auto& d : supernet->decisions()) arch.push_back((k + static_cast<std::int64_t>(arch.size())) % d.size());
        auto net = nas::derive<Space>(*supernet, arch);
        std::int64_t params = 0;
        for (const auto& p : net->parameters()) params += p.value().numel();
        INFO(Space::name << " architecture " << k);
        CHECK(o.min_parameters() <= params);
        CHECK(o.min_parameters() * 100 >= params);  // a floor, but not a vacuous one
    }
}
}  // namespace

TEST_CASE("a description's parameter floor holds for every derived network; sizes beyond the limits are refused",
          "[nas][spaces][errors]") {
    check_parameter_floor<nas::ShuffleSpace>(nas::ShuffleSpace::default_options());
    check_parameter_floor<nas::MobileNetV2Space>(nas::MobileNetV2Space::default_options());
    check_parameter_floor<nas::DartsSpace>(nas::DartsOptions{});
    check_parameter_floor<nas::DartsPaperSpace>(nas::DartsOptions{});

    Generator gen(0);
    auto wide = nas::ShuffleSpace::default_options();
    wide.stages[1].width = std::int64_t{1} << 22;  // x 28 x 28 values in one activation
    require_throws_with<value_error>([&] { (void)nas::ShuffleSpace::build<float>(wide, gen); },
                                     {"shuffle", "beyond this implementation's limits", "width x image x image"});
    auto deep = nas::MobileNetV2Space::default_options();
    deep.stages[0].layers = 5000;
    require_throws_with<value_error>([&] { (void)nas::MobileNetV2Space::build<float>(deep, gen); },
                                     {"mobilenetv2", "at most 1024 searchable layers"});
    nas::DartsOptions cells;
    cells.cells = 1000;
    require_throws_with<value_error>([&] { (void)nas::DartsSpace::build<float>(cells, gen); }, {"darts", "64 cells"});
    require_throws_with<value_error>(
        [&] { (void)nas::ShuffleSpace::build<float>(nas::ShuffleSpace::default_options(), gen, {0, 1, 2}); },
        {"shuffle", "one choice per searchable layer (8), got 3"});

    // A model file whose weights are too few for the network its description names is refused
    // before the network is built (a corrupt or hostile file cannot make it allocate).
    nas::ArchitectureSpec spec;
    spec.space = "shuffle";
    spec.options = nas::ShuffleSpace::default_options().to_json();
    spec.arch.assign(8, 0);
    require_throws_with<format_error>([&] { (void)nas::build_architecture<float>(spec, "model.bin", 1000); },
                                      {"model.bin", "at least", "parameters but the file holds 1000 values"});
    CHECK(nas::build_architecture<float>(spec, "model.bin")->num_decisions() == 8);
    spec.space = "resnet";
    require_throws_with<format_error>([&] { (void)nas::build_architecture<float>(spec, "model.bin"); },
                                      {"unknown search space 'resnet'"});
}

TEST_CASE("DSNAS: the mean alpha gradient matches the exact gradient of the expected loss", "[nas][dsnas][statistics]") {
    // A toy supernet of two layers with three linear candidates each and a linear loss, so every
    // one of the 9 paths can be enumerated: E_Z[L] = sum_paths p(path) L(path) and
    //     d E[L] / d alpha_l = sum_paths p(path) L(path) (e_{k_l} - p_l).
    // The loss is linear in each gate, where the DSNAS estimator dL/dZ_l[k] (e_k - p_l) is unbiased.
    Generator gen(5);
    ToyNet<double, LinearConv<0>, LinearConv<1>, LinearConv<2>> net(2, 2, gen);
    auto x = randn(Shape{2, 2, 2, 2}, 51, false), c = randn(Shape{2, 2, 2, 2}, 52, false);
    auto loss = [&] { return ops::sum(net.forward(x) * c); };
    nas::DSNAS<void, double> dsnas(net, {});
    // A non-uniform starting distribution.
    const double a0[] = {0.5, -0.3, 0.1}, a1[] = {-0.7, 0.2, 0.4};
    for (int k = 0; k < 3; ++k) {
        dsnas.alphas()[0].value()[k] = a0[k];
        dsnas.alphas()[1].value()[k] = a1[k];
    }
    const auto p = dsnas.probabilities();
    std::vector<std::vector<double>> exact(2, std::vector<double>(3, 0.0));
    for (std::int64_t k0 = 0; k0 < 3; ++k0)
        for (std::int64_t k1 = 0; k1 < 3; ++k1) {
            net.set_architecture({k0, k1});
            const double L = loss().value().item();
            const double pp = p[0][static_cast<std::size_t>(k0)] * p[1][static_cast<std::size_t>(k1)];
            for (std::int64_t j = 0; j < 3; ++j) {
                exact[0][static_cast<std::size_t>(j)] += pp * L * ((j == k0) - p[0][static_cast<std::size_t>(j)]);
                exact[1][static_cast<std::size_t>(j)] += pp * L * ((j == k1) - p[1][static_cast<std::size_t>(j)]);
            }
        }
    nas::NasContext<double> ctx;
    Generator sample_gen(77);
    ctx.gen = &sample_gen;
    const int n = 20000;
    std::vector<std::vector<double>> sum(2, std::vector<double>(3, 0.0)), sum2 = sum;
    for (int i = 0; i < n; ++i) {
        dsnas.prepare(ctx);
        loss().backward();
        REQUIRE(dsnas.compute_alpha_gradients());
        for (int d = 0; d < 2; ++d)
            for (int k = 0; k < 3; ++k) {
                const double g = dsnas.alphas()[static_cast<std::size_t>(d)].grad()[k];
                sum[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)] += g;
                sum2[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)] += g * g;
            }
    }
    for (int d = 0; d < 2; ++d)
        for (int k = 0; k < 3; ++k) {
            const double m = sum[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)] / n;
            const double var = sum2[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)] / n - m * m;
            const double se = std::sqrt(var / n);
            INFO("decision " << d << " choice " << k << ": mean " << m << " exact "
                             << exact[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)] << " se " << se);
            CHECK(std::abs(m - exact[static_cast<std::size_t>(d)][static_cast<std::size_t>(k)]) < 5 * se + 1e-12);
        }
    // The alphas did not move: compute_alpha_gradients() only writes gradients.
    CHECK(dsnas.alphas()[0].value()[0] == 0.5);
}

TEST_CASE("DSNAS per_rank_samples: piece 0 draws prepare()'s path, other pieces their own; alpha's gradient sums the "
          "pieces' estimates",
          "[nas][dsnas]") {
    Generator gen(5);
    ToyNet<double, LinearConv<0>, LinearConv<1>, LinearConv<2>> net(2, 2, gen);
    auto x = randn(Shape{2, 2, 2, 2}, 51, false), c = randn(Shape{2, 2, 2, 2}, 52, false);
    auto loss = [&] { return ops::sum(net.forward(x) * c); };
    nas::DSNASOptions per_rank;
    per_rank.per_rank_samples = true;
    nas::DSNAS<void, double> shared(net, {}), accumulating(net, per_rank), reference(net, per_rank);
    nas::NasContext<double> a, b, r;
    Generator ga(9), gb(9), gr(9);
    a.gen = &ga;
    b.gen = &gb;
    r.gen = &gr;
    shared.prepare(a);
    const auto path = shared.sampled();
    accumulating.prepare(b);
    reference.prepare(r);
    CHECK(accumulating.sampled() == path);  // one piece draws what one shared path draws
    require_throws_with<value_error>([&] { shared.sample_piece(1); }, {"per_rank_samples"});

    // Six pieces: their paths differ, and the accumulated gradient is the sum of each piece's
    // estimate (the reference computes each piece's alone).
    std::set<std::vector<std::int64_t>> paths;
    std::vector<double> expected(6, 0.0);
    for (std::int64_t piece = 0; piece < 6; ++piece) {
        reference.sample_piece(piece);
        loss().backward();
        REQUIRE(reference.compute_alpha_gradients());
        for (int d = 0; d < 2; ++d)
            for (int k = 0; k < 3; ++k) expected[static_cast<std::size_t>(3 * d + k)] += reference.alphas()[static_cast<std::size_t>(d)].grad()[k];
        accumulating.sample_piece(piece);
        CHECK(accumulating.sampled() == reference.sampled());
        paths.insert(accumulating.sampled());
        loss().backward();
        accumulating.accumulate_piece();
    }
    CHECK(paths.size() > 1);
    for (int d = 0; d < 2; ++d)
        for (int k = 0; k < 3; ++k)
            CHECK(accumulating.alphas()[static_cast<std::size_t>(d)].grad()[k] ==
                  Approx(expected[static_cast<std::size_t>(3 * d + k)]).margin(1e-12));
    // update() steps alpha from the accumulated gradient (it does not recompute it from the last gates).
    const double before = accumulating.alphas()[0].value()[0];
    accumulating.update(b);
    CHECK(accumulating.alphas()[0].value()[0] != before);
    CHECK_FALSE(accumulating.alphas()[0].grad().defined());
}

TEST_CASE("DSNAS fixes a decision once its top-1 lead exceeds the threshold, then stops sampling it", "[nas][dsnas]") {
    // Minimise sum(y) for positive x over the candidates 1x, -3x, 0.5x: "-3x" is best. The loss is
    // linear in the gate, where dL/dZ_k = L(path k) and the DSNAS estimate is unbiased. (With a loss
    // that is not linear in the gate, dL/dZ_k is a first-order signal: for a fixed 1x candidate and
    // the target 3x it says "scale me up", which DSNAS reads as preferring 1x. Real candidates have
    // trainable weights; this toy does not.)
    Generator gen(1);
    ToyNet<double, FixedScale<2>, FixedScale<-6>, FixedScale<1>> net(1, 1, gen);
    auto x = Var<double>(abs_values(randn(Shape{4, 1, 2, 2}, 61, false).value()));
    nas::DSNAS<void, double> dsnas(net, {0.05, 0.5, 0.0, 0.0, 0.5, 0});
    nas::NasContext<double> ctx;
    Generator g(2);
    ctx.gen = &g;
    int step = 0;
    for (; step < 2000 && dsnas.searching(); ++step) {
        ctx.step = step;
        dsnas.prepare(ctx);
        ops::mean(net.forward(x)).backward();
        dsnas.update(ctx);
    }
    REQUIRE_FALSE(dsnas.searching());
    CHECK(dsnas.fixed()[0] == 1);
    CHECK(dsnas.derived() == std::vector<std::int64_t>{1});
    // A fixed decision runs its choice without a gate.
    dsnas.prepare(ctx);
    auto y = net.forward(x);
    CHECK(y.op() != "weighted_sum");
}

TEST_CASE("DSNAS with a FLOPs penalty moves probability toward cheaper choices", "[nas][dsnas]") {
    Generator gen(0);
    auto net = nas::ShuffleSpace::build<float>(tiny_shuffle_options(), gen);
    nas::DSNAS<nas::ShuffleSpace> dsnas(*net, {0.05, 0.5, 0.0, 10.0, 2.0, 0});
    nas::NasContext<float> ctx;
    Generator g(1);
    ctx.gen = &g;
    const auto x = rand_images(2, 12, 3);
    for (int i = 0; i < 30; ++i) {
        ctx.step = i;
        dsnas.prepare(ctx);
        // A zero loss isolates the resource term (dL/dZ = 0).
        ops::mul_scalar(ops::sum(net->forward(Var<float>(x))), 0.0).backward();
        dsnas.update(ctx);
    }
    const auto probs = dsnas.probabilities();
    for (std::size_t d = 0; d < probs.size(); ++d) {
        const auto& m = net->decisions()[d].macs;
        const auto cheapest = std::min_element(m.begin(), m.end()) - m.begin();
        const auto dearest = std::max_element(m.begin(), m.end()) - m.begin();
        CHECK(probs[d][static_cast<std::size_t>(cheapest)] > 0.25);
        CHECK(probs[d][static_cast<std::size_t>(dearest)] < 0.25);
    }
}

TEST_CASE("DARTS: alpha converges to the clearly best candidate (first and second order)", "[nas][darts]") {
    for (bool second : {false, true}) {
        INFO("second order " << second);
        Generator gen(1);
        ToyNet<double, FixedScale<2>, FixedScale<6>, FixedScale<-2>> net(1, 1, gen);
        nas::DARTS<void, double> darts(net, {0.05, 0.5, 0.0, second});
        auto x = randn(Shape{8, 1, 2, 2}, 71, false);
        auto mse = [&] {
            auto d = net.forward(x) - x * 3.0;
            return ops::mean(d * d);
        };
        nas::NasContext<double> ctx;
        ctx.val_loss = mse;
        ctx.train_loss = mse;
        ctx.weight_lr = 0.1;
        ctx.weights = {Var<double>(Tensor<double>::zeros({1}), true)};  // the toy has no weights; one dummy
        for (int i = 0; i < 300; ++i) darts.prepare(ctx);
        const auto p = darts.probabilities();
        CHECK(darts.derived() == std::vector<std::int64_t>{1});
        CHECK(p[0][1] > 0.9);
    }
}

TEST_CASE("DARTS' finite-difference Hessian term equals the exact Hessian-vector product", "[nas][darts]") {
    // L(w, alpha) = w^T A alpha + 0.5 |w|^2 + 0.3 |alpha|^2 + sum(w^3)/6: the mixed second
    // derivative d^2 L / d alpha d w is A^T, so the term must be A^T v for any direction v.
    const Tensor<double> A = Tensor<double>::from(Shape{3, 2}, {1.0, -2.0, 0.5, 3.0, -1.5, 0.25});
    std::vector<Var<double>> w{Var<double>(Tensor<double>::from(Shape{3, 1}, {0.3, -0.7, 1.1}), true)};
    std::vector<Var<double>> alpha{Var<double>(Tensor<double>::from(Shape{2, 1}, {0.2, -0.4}), true)};
    const std::vector<Tensor<double>> v{Tensor<double>::from(Shape{3, 1}, {0.5, 1.5, -2.0})};
    std::function<Var<double>()> loss = [&] {
        auto wa = ops::matmul(ops::reshape(w[0], {1, 3}), ops::matmul(Var<double>(A), alpha[0]));
        return ops::sum(wa) + ops::sum(w[0] * w[0]) * 0.5 + ops::sum(alpha[0] * alpha[0]) * 0.3 +
               ops::sum(w[0] * w[0] * w[0]) * (1.0 / 6.0);
    };
    const auto before = w[0].value().clone();
    const auto hv = nas::darts_hessian_vector_product(w, v, alpha, loss);
    for (std::int64_t j = 0; j < 2; ++j) {
        double exact = 0;
        for (std::int64_t i = 0; i < 3; ++i) exact += A[i * 2 + j] * v[0][i];
        CHECK(hv[0][j] == Approx(exact).epsilon(1e-8));
    }
    for (std::int64_t i = 0; i < 3; ++i) CHECK(w[0].value()[i] == before[i]);  // weights restored
}

TEST_CASE("DARTS' architecture steps leave the weights' gradients alone (first and second order)", "[nas][darts]") {
    // In a trainer the weight step follows prepare(): a validation gradient left in the weights'
    // gradients would train them on the held-out batch.
    for (bool second : {false, true}) {
        INFO("second order " << second);
        Generator gen(2);
        ToyNet<double, LinearConv<0>, LinearConv<1>, FixedScale<2>> net(2, 2, gen);
        nas::DARTS<void, double> darts(net, {0.05, 0.5, 0.0, second});
        const auto x = randn(Shape{4, 2, 2, 2}, 5, false), y = randn(Shape{4, 2, 2, 2}, 6, false);
        auto mse = [&] {
            auto d = net.forward(x) - y;
            return ops::mean(d * d);
        };
        nas::NasContext<double> ctx;
        ctx.val_loss = mse;
        ctx.train_loss = mse;
        ctx.weight_lr = 0.1;
        ctx.weights = net.parameters();
        // A stale gradient in one weight, none in the others: both must survive prepare().
        ctx.weights[0].grad() = Tensor<double>::full(ctx.weights[0].shape(), 0.25);
        const auto alpha_before = darts.alphas()[0].value().clone();
        darts.prepare(ctx);
        CHECK(darts.alphas()[0].value()[0] != alpha_before[0]);  // alpha moved
        for (std::int64_t k = 0; k < ctx.weights[0].numel(); ++k) REQUIRE(ctx.weights[0].grad()[k] == 0.25);
        for (std::size_t i = 1; i < ctx.weights.size(); ++i) CHECK_FALSE(ctx.weights[i].grad().defined());
    }
}

TEST_CASE("DARTS' second-order gradient equals finite differences of the unrolled validation loss",
          "[nas][darts][gradcheck]") {
    // F(alpha) = L_val(w - u(grad_w L_train(w, alpha)), alpha) with the optimizer's full step
    // u(g) = xi (mu buf + g + lambda w), on a small DARTS-cell supernet (convolutions, batch norm,
    // pooling) in double precision.
    Generator gen(3);
    nas::DartsOptions o;
    o.channels = 4;
    o.cells = 1;
    o.nodes = 1;
    o.image = 6;
    auto net = nas::DartsSpace::build<double>(o, gen);
    // A small finite-difference step makes the Hessian-vector term exact to rounding, so the
    // chain itself is checked; DARTS' own step (0.01 / ||v||) is checked to a looser tolerance below.
    nas::DARTS<nas::DartsSpace, double> darts(*net, {3e-4, 0.5, 0.0, true, 1e-4});
    nas::DARTS<nas::DartsSpace, double> darts_step(*net, {3e-4, 0.5, 0.0, true});
    for (std::size_t d = 0; d < darts.alphas().size(); ++d)
        for (std::int64_t k = 0; k < darts.alphas()[d].numel(); ++k)
            darts.alphas()[d].value()[k] = 0.3 * std::sin(1.7 * static_cast<double>(k) + static_cast<double>(d));
    const auto xt = randn(Shape{6, 1, 6, 6}, 11, false), xv = randn(Shape{6, 1, 6, 6}, 12, false);
    const auto yt = Tensor<std::int32_t>::from(Shape{6}, {0, 1, 2, 3, 4, 5});
    const auto yv = Tensor<std::int32_t>::from(Shape{6}, {5, 4, 3, 2, 1, 0});
    auto weights = net->parameters();
    std::vector<Tensor<double>> buf;
    for (std::size_t i = 0; i < weights.size(); ++i) buf.push_back(randn(weights[i].shape(), 100 + i, false, 0.1).value().clone());
    const double xi = 0.2, mu = 0.9, lambda = 0.05;
    const optim::UpdateFn<double> update = [&](const std::vector<Tensor<double>>& g) {
        std::vector<Tensor<double>> u;
        for (std::size_t i = 0; i < g.size(); ++i) {
            Tensor<double> t(g[i].shape());
            for (std::int64_t k = 0; k < t.numel(); ++k)
                t[k] = xi * (mu * buf[i][k] + g[i][k] + lambda * weights[i].value()[k]);
            u.push_back(t);
        }
        return u;
    };
    nas::NasContext<double> ctx;
    ctx.weights = weights;
    ctx.weight_update = update;
    ctx.train_loss = [&] { return ops::cross_entropy(net->forward(xt), yt); };
    ctx.val_loss = [&] { return ops::cross_entropy(net->forward(xv), yv); };
    auto unrolled = [&] {
        std::vector<Tensor<double>> saved;
        for (auto& w : weights) saved.push_back(w.value().clone());
        darts.set_gates(true);
        const auto u = update(grad(ctx.train_loss(), weights));
        for (std::size_t i = 0; i < weights.size(); ++i)
            for (std::int64_t k = 0; k < weights[i].numel(); ++k) weights[i].value()[k] -= u[i][k];
        darts.set_gates(false);
        const double f = ctx.val_loss().value().item();
        for (std::size_t i = 0; i < weights.size(); ++i) weights[i].value().copy_from(saved[i]);
        return f;
    };
    const auto g = darts.second_order_gradient(ctx);
    for (std::size_t d = 0; d < darts.alphas().size(); ++d) darts_step.alphas()[d].value().copy_from(darts.alphas()[d].value());
    const auto g_step = darts_step.second_order_gradient(ctx);
    darts.set_gates(true);  // darts_step set the shared supernet's gates
    int checked = 0;
    double largest = 0, worst_step = 0;
    for (std::size_t d = 0; d < g.size(); ++d)
        for (std::int64_t k = 0; k < g[d].numel(); ++k) {
            double& a = darts.alphas()[d].value()[k];
            const double keep = a;
            a = keep + 1e-5;
            const double fp = unrolled();
            a = keep - 1e-5;
            const double fm = unrolled();
            a = keep;
            const double num = (fp - fm) / 2e-5;
            INFO("decision " << d << " choice " << k << " analytic " << g[d][k] << " numeric " << num);
            CHECK(g[d][k] == Approx(num).margin(1e-8).epsilon(1e-4));
            largest = std::max(largest, std::abs(num));
            worst_step = std::max(worst_step, std::abs(g_step[d][k] - num));
            ++checked;
        }
    CHECK(checked == 2 * 2 * 7);  // two edges per cell type, 7 choices each
    CHECK(largest > 1e-3);        // the objective depends on alpha
    CHECK(worst_step < 0.1 * largest);
    // The first-order gradient alone is visibly different: the second-order term matters here.
    darts.set_gates(true);
    const auto g1 = grad(ctx.val_loss(), darts.alphas());
    double diff = 0;
    for (std::size_t d = 0; d < g.size(); ++d)
        for (std::int64_t k = 0; k < g[d].numel(); ++k) diff = std::max(diff, std::abs(g1[d][k] - g[d][k]));
    CHECK(diff > 1e-4);
}

TEST_CASE("GDAS is bilevel by default: alpha follows the validation loss, not the training loss", "[nas][gdas]") {
    // On positive inputs the training loss mean(y) prefers candidate "x-1", the validation loss
    // -mean(y) "x3" (losses linear in the output, so that the gate's gradient ranks candidates):
    // bilevel GDAS picks x3, the single-level form x-1. tau falls linearly over the search.
    for (bool bilevel : {true, false}) {
        INFO("bilevel " << bilevel);
        Generator gen(1);
        ToyNet<double, FixedScale<2>, FixedScale<6>, FixedScale<-2>> net(1, 1, gen);
        nas::GDASOptions o;
        o.lr = 0.05;
        o.weight_decay = 0.0;
        o.tau_start = 1.0;
        o.tau_end = 0.5;
        o.bilevel = bilevel;
        nas::GDAS<void, double> gdas(net, o);
        auto x = Var<double>(abs_values(randn(Shape{8, 1, 2, 2}, 81, false).value()));
        auto loss_to = [&](double sign) { return ops::mean(net.forward(x)) * sign; };
        nas::NasContext<double> ctx;
        Generator g(3);
        ctx.gen = &g;
        ctx.total_steps = 300;
        ctx.val_loss = [&] { return loss_to(-1.0); };
        for (int i = 0; i < 300; ++i) {
            ctx.step = i;
            gdas.prepare(ctx);
            // Bilevel: the weight step's sample is detached from alpha, and this toy has no weights.
            if (auto l = loss_to(1.0); l.requires_grad()) l.backward();
            gdas.update(ctx);
        }
        CHECK(gdas.derived() == std::vector<std::int64_t>{bilevel ? 1 : 2});
        CHECK(gdas.temperature_at(150, 300) == Approx(0.75));  // linear: halfway between 1 and 0.5
    }
    Generator gen(1);
    ToyNet<double, FixedScale<2>, FixedScale<6>> net(1, 1, gen);
    nas::GDAS<void, double> gdas(net);
    nas::NasContext<double> ctx;
    Generator g(3);
    ctx.gen = &g;
    require_throws_with<value_error>([&] { gdas.prepare(ctx); }, {"GDAS (bilevel)", "val_loss", "bilevel = false"});
    CHECK(gdas.temperature_at(0, 100) == Approx(10.0));
    CHECK(gdas.temperature_at(100, 100) == Approx(0.1));
}

TEST_CASE("SNAS mixes every candidate by a soft Gumbel-softmax sample and learns from the training loss",
          "[nas][snas]") {
    Generator gen(1);
    ToyNet<double, FixedScale<2>, FixedScale<6>, FixedScale<-2>> net(1, 1, gen);
    nas::SNASOptions o;
    o.lr = 0.05;
    o.weight_decay = 0.0;
    nas::SNAS<void, double> snas(net, o);
    auto x = Var<double>(abs_values(randn(Shape{8, 1, 2, 2}, 81, false).value()));
    nas::NasContext<double> ctx;
    Generator g(4);
    ctx.gen = &g;
    ctx.total_steps = 300;
    // The gradient reaching alpha is that of the relaxed objective through the soft sample: check
    // it against finite differences with the same Gumbel noise.
    auto loss = [&] {
        auto d = net.forward(x) - x * 3.0;
        return ops::mean(d * d);
    };
    {
        Generator probe(9);
        ctx.gen = &probe;
        snas.prepare(ctx);
        ctx.gen = &g;
        loss().backward();
        const Tensor<double> analytic = snas.alphas()[0].grad().clone();
        const double tau = snas.temperature();
        for (std::int64_t k = 0; k < 3; ++k) {
            double& a = snas.alphas()[0].value()[k];
            const double keep = a;
            double f[2];
            for (int side = 0; side < 2; ++side) {
                a = keep + (side ? -1e-6 : 1e-6);
                Generator same(9);
                const PhiloxStream s = same.next_stream();
                net.set_gate(0, {-1, sampling::gumbel_softmax(snas.alphas()[0], tau, s, false)});
                f[side] = loss().value().item();
            }
            a = keep;
            CHECK(analytic[k] == Approx((f[0] - f[1]) / 2e-6).margin(1e-8));
        }
        for (auto& al : snas.alphas()) al.zero_grad();
    }
    for (int i = 0; i < 300; ++i) {
        ctx.step = i;
        snas.prepare(ctx);
        loss().backward();
        snas.update(ctx);
    }
    CHECK(snas.derived() == std::vector<std::int64_t>{1});
    CHECK(snas.temperature() == Approx(o.tau_start * std::pow(o.tau_end / o.tau_start, 299.0 / 300.0)));
}

TEST_CASE("GDAS samples one candidate per step and learns the best one through straight-through gradients",
          "[nas][gdas]") {
    // The linear objective of the DSNAS fixing test: minimise sum(y), best candidate "-3x".
    Generator gen(1);
    ToyNet<double, FixedScale<2>, FixedScale<-6>, FixedScale<1>> net(1, 1, gen);
    nas::GDAS<void, double> gdas(net, {0.05, 0.5, 0.0, 1.0, 1.0, nas::Anneal::linear, /*bilevel=*/false});
    auto x = Var<double>(abs_values(randn(Shape{8, 1, 2, 2}, 81, false).value()));
    nas::NasContext<double> ctx;
    Generator g(3);
    ctx.gen = &g;
    ctx.total_steps = 400;
    for (int i = 0; i < 400; ++i) {
        ctx.step = i;
        gdas.prepare(ctx);
        ops::mean(net.forward(x)).backward();
        gdas.update(ctx);
    }
    CHECK(gdas.derived() == std::vector<std::int64_t>{1});
    CHECK(gdas.probabilities()[0][1] > 0.8);
    CHECK(gdas.temperature() == Approx(1.0));
}

TEST_CASE("FixedArch runs its architecture and reports one-hot probabilities", "[nas]") {
    Generator gen(0);
    auto net = nas::ShuffleSpace::build<float>(tiny_shuffle_options(), gen);
    nas::FixedArch<nas::ShuffleSpace> fixed(*net, {3, 1, 0});
    nas::NasContext<float> ctx;
    fixed.prepare(ctx);
    CHECK_FALSE(fixed.searching());
    CHECK(fixed.probabilities()[0] == std::vector<double>{0, 0, 0, 1});
    static_assert(nas::NasPolicy<nas::FixedArch<nas::ShuffleSpace>>);
    static_assert(nas::NasPolicy<nas::DSNAS<nas::ShuffleSpace>>);
    static_assert(nas::NasPolicy<nas::DARTS<nas::ShuffleSpace>>);
    static_assert(nas::NasPolicy<nas::GDAS<nas::MobileNetV2Space>>);
    require_throws_with<value_error>([&] { nas::FixedArch<nas::ShuffleSpace> bad(*net, {0, 0}); }, {"one choice per decision"});
}

TEST_CASE("a derived network exported with its architecture reloads and reproduces the supernet path",
          "[nas][export]") {
    const fs::path dir = fs::temp_directory_path() / "dam_test_nas_export";
    fs::create_directories(dir);
    const std::string path = (dir / "derived.bin").string();
    Generator gen(4);
    auto net = nas::ShuffleSpace::build<float>(tiny_shuffle_options(), gen);
    // A few training steps on random single paths move weights and batch-norm statistics.
    nas::DSNAS<nas::ShuffleSpace> dsnas(*net);
    optim::SGD<float> opt({{net->parameters(), 0.05, 0.0, "w"}}, {0.9, false, 0.0});
    nas::NasContext<float> ctx;
    Generator g(5);
    ctx.gen = &g;
    Tensor<std::int32_t> labels(Shape{4});
    for (int i = 0; i < 4; ++i) labels[i] = i;
    for (int i = 0; i < 5; ++i) {
        dsnas.prepare(ctx);
        opt.zero_grad();
        ops::cross_entropy(net->forward(Var<float>(rand_images(4, 12, 10 + i))), labels).backward();
        dsnas.update(ctx);
        opt.step();
    }
    const std::vector<std::int64_t> arch{2, 3, 1};
    auto derived = nas::derive<nas::ShuffleSpace>(*net, arch);
    CHECK(derived->parameter_count() < net->parameter_count());
    nas::save_derived(path, *derived, {{"note", "test"}});
    auto loaded = nas::load_derived<float>(path);
    CHECK(loaded.description.at("architecture").get<std::vector<std::int64_t>>() == arch);
    CHECK(loaded.description.at("layers").at(0).at("choice") == "shuffle_k7");
    CHECK(loaded.description.at("extra").at("note") == "test");
    net->set_architecture(arch);
    net->eval();
    const auto x = rand_images(3, 12, 99);
    NoGradGuard ng;
    const auto ys = net->forward(Var<float>(x)).value();
    const auto yl = loaded.net->forward(Var<float>(x)).value();
    REQUIRE(ys.shape() == yl.shape());
    for (std::int64_t i = 0; i < ys.numel(); ++i) REQUIRE(yl[i] == ys[i]);

    SECTION("errors: supernet export, mismatched weights, corruption, not a file of ours, missing file") {
        require_throws_with<value_error>([&] { nas::save_derived(path, *net); }, {"is a supernet", "derive"});
        // The description of one architecture with the weights of another.
        auto other = nas::derive<nas::ShuffleSpace>(*net, {0, 0, 0});
        const auto j = nas::architecture_json(*derived, arch);
        write_file_atomic(path, nas::detail::architecture_file_bytes(j, nn::serialize_model(*other)));
        require_throws_with<format_error>([&] { (void)nas::load_derived<float>(path); },
                                          {"weights do not match the architecture", "shuffle_k7"});
        nas::save_derived(path, *derived);
        auto bytes = read_file(path);
        bytes[bytes.size() / 2] ^= 0x40;
        write_file_atomic(path, bytes);
        require_throws_with<format_error>([&] { (void)nas::load_derived<float>(path); }, {"checksum mismatch"});
        nn::save_model(*derived, path);
        require_throws_with<format_error>([&] { (void)nas::load_derived<float>(path); }, {"bad magic", "DAMARCH1"});
        require_throws_with<io_error>([&] { (void)nas::load_derived<float>((dir / "missing.bin").string()); },
                                      {"missing.bin"});
    }
    fs::remove_all(dir);
}

TEST_CASE("the DARTS cell space builds, shares edge decisions across cells, and exports its derived network",
          "[nas][spaces][export]") {
    Generator gen(2);
    nas::DartsOptions o;
    o.channels = 4;
    o.cells = 3;
    o.nodes = 2;
    o.image = 8;
    auto net = nas::DartsSpace::build<float>(o, gen);
    REQUIRE(net->num_decisions() == 2 * 5);  // (2 + 3 edges) per cell type
    CHECK(net->decisions()[0].name == "normal.node0.in0");
    CHECK(net->decisions()[5].name == "reduce.node0.in0");
    CHECK(net->decisions()[0].choices.size() == 7);
    // DARTS mixture over every edge of every cell.
    nas::DARTS<nas::DartsSpace> darts(*net);
    darts.set_gates(false);
    const auto x = rand_images(2, 8, 5);
    CHECK(net->forward(Var<float>(x)).shape() == Shape{2, 10});
    // Derive, export, reload: same outputs as the supernet path.
    const std::vector<std::int64_t> arch{0, 1, 2, 3, 6, 4, 5, 6, 0, 1};
    auto derived = nas::derive<nas::DartsSpace>(*net, arch);
    const std::string path = (fs::temp_directory_path() / "dam_test_darts_export.bin").string();
    nas::save_derived(path, *derived);
    auto loaded = nas::load_derived<float>(path);
    net->set_architecture(arch);
    net->eval();
    NoGradGuard ng;
    const auto ys = net->forward(Var<float>(x)).value();
    const auto yl = loaded.net->forward(Var<float>(x)).value();
    for (std::int64_t i = 0; i < ys.numel(); ++i) REQUIRE(yl[i] == ys[i]);
    CHECK(loaded.description.at("space") == "darts");
    fs::remove(path);
}

TEST_CASE("the DARTS paper space: none, non-affine BN after pooling, and two strongest edges per node",
          "[nas][spaces][export]") {
    Generator gen(2);
    nas::DartsOptions o;
    o.channels = 4;
    o.cells = 3;
    o.nodes = 2;
    o.image = 8;
    auto net = nas::DartsPaperSpace::build<float>(o, gen);
    REQUIRE(net->num_decisions() == 2 * 5);
    const std::vector<std::string> ops{"none", "max_pool_3x3", "avg_pool_3x3", "skip", "sep_conv_3x3", "sep_conv_5x5",
                                       "dil_conv_3x3", "dil_conv_5x5"};
    CHECK(net->decisions()[0].choices == ops);
    // none and the pools of a normal edge (same width) have no parameters: the pools' BN is not affine.
    for (std::size_t k : {0u, 1u, 2u}) CHECK(net->decisions()[0].params[k] == 0);
    CHECK(net->decisions()[0].macs[0] == 0);
    // Derivation: per node the two edges with the strongest non-none op, each with that op. Node 0
    // of each cell type has edges 0, 1 (both kept); node 1 has edges 2, 3, 4. Edge 2 is mostly
    // none but its best real op (0.3) beats edge 4's (0.25): edges 2 and 3 are kept, 4 is dropped.
    auto row = [](std::initializer_list<double> v) { return std::vector<double>(v); };
    std::vector<std::vector<double>> p(10, row({0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}));
    p[0] = row({0.05, 0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.05});  // sep_conv_3x3
    p[1] = row({0.9, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01}); // none wins, max_pool is best real op
    p[2] = row({0.6, 0.02, 0.02, 0.3, 0.02, 0.02, 0.01, 0.01});  // skip 0.3
    p[3] = row({0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.65, 0.05});// dil_conv_3x3
    p[4] = row({0.05, 0.25, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1});      // max_pool 0.25: dropped
    for (int e = 5; e < 10; ++e) p[static_cast<std::size_t>(e)] = p[static_cast<std::size_t>(e - 5)];
    const auto arch = net->derive_architecture(p);
    CHECK(arch == std::vector<std::int64_t>{4, 1, 3, 6, 0, 4, 1, 3, 6, 0});
    // DartsSpace (no none) keeps the argmax of every edge.
    auto plain = nas::DartsSpace::build<float>(o, gen);
    std::vector<std::vector<double>> q(10, row({0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.05}));
    CHECK(plain->derive_architecture(q) == std::vector<std::int64_t>(10, 1));
    // A search policy derives through the space: DARTS on the paper space keeps two edges per node.
    nas::DARTS<nas::DartsPaperSpace> darts(*net);
    const auto d = darts.derived();
    for (std::size_t first : {0u, 5u}) {
        CHECK(std::count(d.begin() + static_cast<std::ptrdiff_t>(first), d.begin() + static_cast<std::ptrdiff_t>(first) + 2, 0) == 0);
        CHECK(std::count(d.begin() + static_cast<std::ptrdiff_t>(first) + 2, d.begin() + static_cast<std::ptrdiff_t>(first) + 5, 0) == 1);
    }
    // The supernet (every candidate mixed), then the derived network: it skips the none edges,
    // takes the weights, exports and reloads, and computes what the supernet's path computes.
    darts.set_gates(false);
    const auto x = rand_images(2, 8, 5);
    CHECK(net->forward(Var<float>(x)).shape() == Shape{2, 10});
    auto derived = nas::derive<nas::DartsPaperSpace>(*net, arch);
    CHECK(derived->parameter_count() < net->parameter_count());
    const std::string path = (fs::temp_directory_path() / "dam_test_darts_paper_export.bin").string();
    nas::save_derived(path, *derived);
    auto loaded = nas::load_derived<float>(path);
    CHECK(loaded.description.at("space") == "darts_paper");
    CHECK(loaded.net->path_macs(arch) == Approx(net->path_macs(arch)));
    net->set_architecture(arch);
    net->eval();
    NoGradGuard ng;
    const auto ys = net->forward(Var<float>(x)).value();
    const auto yl = loaded.net->forward(Var<float>(x)).value();
    for (std::int64_t i = 0; i < ys.numel(); ++i) REQUIRE(yl[i] == Approx(ys[i]).margin(1e-6));
    fs::remove(path);
}

TEST_CASE("batch-norm recalibration gives the exact statistics of the batches it sees", "[nn][batchnorm]") {
    nn::BatchNorm2d<double> bn(2);
    std::vector<Tensor<double>> batches;
    for (int i = 0; i < 3; ++i) batches.push_back(randn(Shape{4, 2, 3, 3}, 200 + i, false, 1.0 + i).value());
    int next = 0;
    const auto n = nn::recalibrate_batch_norm(bn, 3, [&] { return batches[static_cast<std::size_t>(next++)]; });
    CHECK(n == 1);
    CHECK_FALSE(bn.is_training());
    CHECK(bn.momentum() == 0.1);  // restored
    for (std::int64_t c = 0; c < 2; ++c) {
        double mean = 0, var = 0;
        for (const auto& b : batches) {
            double s = 0, s2 = 0;
            for (std::int64_t i = 0; i < 4; ++i)
                for (std::int64_t j = 0; j < 9; ++j) s += b[(i * 2 + c) * 9 + j];
            const double m = s / 36;
            for (std::int64_t i = 0; i < 4; ++i)
                for (std::int64_t j = 0; j < 9; ++j) s2 += (b[(i * 2 + c) * 9 + j] - m) * (b[(i * 2 + c) * 9 + j] - m);
            mean += m / 3;
            var += s2 / 35 / 3;  // unbiased per batch, averaged
        }
        CHECK(bn.running_mean()[c] == Approx(mean));
        CHECK(bn.running_var()[c] == Approx(var));
    }
}
