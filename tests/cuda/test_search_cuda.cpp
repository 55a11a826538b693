// The joint search on the GPU (JointSearch<PairPolicyDA, DSNAS<ShuffleSpace, float, cuda>,
// HypergradLrWd>, what `diffautoml-search --device cuda` runs) against the same search on the CPU:
// after a few steps from the same seed, the weights, the architecture distribution and the learned
// hyperparameters agree; a whole GPU run leaves a model file whose CPU accuracy is the run's test
// accuracy; a GPU run interrupted and resumed equals an uninterrupted one. Part of
// dam_cuda_autograd_tests (main() there skips everything without a GPU).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <diffautoml/cuda/backend.hpp>
#include <diffautoml/diffautoml.hpp>

#include "../search_fixtures.hpp"

using namespace dam_test;
namespace fs = std::filesystem;

namespace {

using CpuJoint = search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>;
using GpuJoint = search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace, float, cuda>, hpo::HypergradLrWd>;
static_assert(std::is_same_v<GpuJoint::device_type, cuda>);

std::string fresh_dir(const std::string& name) {
    const auto p = fs::temp_directory_path() / ("dam_search_cuda_" + name);
    fs::remove_all(p);
    return p.string();
}

/// Runs a search until `steps` steps are done (the run stops as on SIGINT).
template <class J>
void run_steps(J& js) {
    try {
        (void)js.run();
        FAIL("the run was expected to stop early");
    } catch (const search::interrupted&) {
    }
}

}  // namespace

TEST_CASE("joint search on cuda follows the CPU run step for step", "[cuda][search]") {
    const auto train = bars(480, 1, data::Split::train), test = bars(120, 2, data::Split::test);
    auto o = tiny_options<CpuJoint>("");
    o.run.stop_after_steps = 6;
    o.hpo.every = 2;  // three hypergradient steps in the window
    CpuJoint c(train, test, o, {}, tiny_space());
    GpuJoint g(train, test, o, {}, tiny_space());
    run_steps(c);
    run_steps(g);
    REQUIRE(c.step() == 6);
    REQUIRE(g.step() == 6);

    // The DA draws are made on the host from the same streams: the pair logits (updated from the
    // per-sample losses) agree to float rounding of those losses.
    const auto& lc = c.da_policy().logits();
    const auto& lg = g.da_policy().logits();
    REQUIRE(lc.size() == lg.size());
    for (std::size_t k = 0; k < lc.size(); ++k) CHECK(lg[k] == Approx(lc[k]).margin(1e-4));

    const auto pc = c.nas_policy().probabilities(), pg = g.nas_policy().probabilities();
    REQUIRE(pc.size() == pg.size());
    for (std::size_t d = 0; d < pc.size(); ++d)
        for (std::size_t k = 0; k < pc[d].size(); ++k) CHECK(pg[d][k] == Approx(pc[d][k]).margin(1e-4));
    CHECK(g.nas_policy().sampled() == c.nas_policy().sampled());

    const auto vc = c.hpo_policy().values(), vg = g.hpo_policy().values();
    REQUIRE(vc.size() == vg.size());
    for (std::size_t k = 0; k < vc.size(); ++k) {
        INFO(vc[k].first);
        CHECK(vg[k].second == Approx(vc[k].second).epsilon(1e-3));
    }

    // Weights: cuDNN and Eigen sum in different orders; after six steps the differences stay at
    // float-rounding scale (atol 1e-4 + rtol 1e-3).
    const auto wc = c.net().named_parameters();
    const auto wg = g.net().named_parameters();
    REQUIRE(wc.size() == wg.size());
    for (std::size_t i = 0; i < wc.size(); ++i) {
        INFO(wc[i].first);
        REQUIRE(wc[i].first == wg[i].first);
        const Tensor<float> a = wc[i].second.value(), b = to_host(wg[i].second.value());
        REQUIRE(a.shape() == b.shape());
        std::int64_t bad = 0;
        for (std::int64_t k = 0; k < a.numel(); ++k)
            bad += std::abs(static_cast<double>(a[k]) - static_cast<double>(b[k])) > 1e-4 + 1e-3 * std::abs(static_cast<double>(a[k]));
        CHECK(bad == 0);
    }
}

TEST_CASE("joint search on cuda: a whole run writes a model whose CPU accuracy is the run's", "[cuda][search]") {
    const auto train = bars(480, 1, data::Split::train), test = bars(120, 2, data::Split::test);
    const auto out = fresh_dir("run");
    GpuJoint g(train, test, tiny_options<CpuJoint>(out), {}, tiny_space());
    const auto r = g.run();
    CHECK(r.test_accuracy > 0.6);  // the bars are easy; chance is 1/3
    REQUIRE(r.model);
    const auto result = nlohmann::json::parse(std::ifstream(out + "/result.json"));
    CHECK(result.at("device").get<std::string>() == "cuda");
    auto loaded = nas::load_derived<float>(out + "/model.bin");
    NoGradGuard no_grad;
    loaded.net->eval();
    const auto z = loaded.net->forward(Var<float>(test.images));
    Tensor<std::int32_t> labels(Shape{test.size()});
    for (std::int64_t i = 0; i < test.size(); ++i) labels[i] = test.labels[static_cast<std::size_t>(i)];
    const double acc = static_cast<double>(ops::count_correct(z.value(), labels)) / static_cast<double>(test.size());
    // BN statistics and convolutions summed in another order may flip a borderline image.
    CHECK(std::abs(acc - r.test_accuracy) <= 2.0 / static_cast<double>(test.size()));
}

TEST_CASE("joint search on cuda: a resumed run equals an uninterrupted one", "[cuda][search]") {
    const auto train = bars(480, 1, data::Split::train), test = bars(120, 2, data::Split::test);
    const auto a_dir = fresh_dir("a"), b_dir = fresh_dir("b");
    GpuJoint a(train, test, tiny_options<CpuJoint>(a_dir), {}, tiny_space());
    const auto ra = a.run();
    auto ob = tiny_options<CpuJoint>(b_dir);
    ob.run.stop_after_steps = 37;
    {
        GpuJoint b(train, test, ob, {}, tiny_space());
        run_steps(b);
    }
    ob.run.stop_after_steps = -1;
    GpuJoint b(train, test, ob, {}, tiny_space());
    REQUIRE(b.resume());
    CHECK(b.step() == 37);
    const auto rb = b.run();
    // The GPU kernels are deterministic (deterministic cuDNN backward algorithms, no atomics in
    // the reductions), so the resumed run repeats the uninterrupted one exactly.
    CHECK(rb.architecture == ra.architecture);
    CHECK(rb.test_accuracy == ra.test_accuracy);
    const auto wa = ra.model->named_parameters(), wb = rb.model->named_parameters();
    REQUIRE(wa.size() == wb.size());
    for (std::size_t i = 0; i < wa.size(); ++i) {
        INFO(wa[i].first);
        const auto& x = wa[i].second.value();
        const auto& y = wb[i].second.value();
        bool same = x.numel() == y.numel();
        for (std::int64_t k = 0; same && k < x.numel(); ++k) same = x[k] == y[k];
        CHECK(same);
    }
}

TEST_CASE("PairPolicyDA augments a GPU batch as it does a host batch, base flips and fading included", "[cuda][da]") {
    Tensor<float> x(Shape{96, 1, 12, 12});
    Generator init(3);
    uniform_(x, init, -1.0, 1.0);
    da::PairPolicyOptions o;
    // Continuous ops only: the 8-bit ones (posterize, equalize, ...) may round a warped pixel to
    // another level on the host than on the device; each op alone is compared in test_cuda.cu.
    o.ops = {da::Op::identity, da::Op::rotate, da::Op::shear_x, da::Op::translate_y, da::Op::brightness,
             da::Op::contrast, da::Op::cutout};
    o.max_magnitude = 0.5;
    o.flip_probability = 0.5;
    o.fade_start = 0.5;
    o.pixels = {0.3, 0.4};
    da::PairPolicyDA<float> host(o), device(o);
    Generator gh(5), gd(5);
    da::DaContext ch{&gh, 70, 100}, cd{&gd, 70, 100};  // apply probability about 0.65
    const auto yh = host.augment(x, ch).value();
    const auto yd = to_host(device.augment(on_device<cuda>(x), cd).value());
    CHECK(host.last_flipped() == device.last_flipped());
    CHECK(host.last_applied() == device.last_applied());
    REQUIRE(yh.shape() == yd.shape());
    for (std::int64_t k = 0; k < yh.numel(); ++k)  // atol 1e-5 + rtol 1e-4, as for the single ops
        REQUIRE(std::abs(yd[k] - yh[k]) <= 1e-5 + 1e-4 * std::abs(yh[k]));
}
