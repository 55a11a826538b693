#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "test_helpers.hpp"

using namespace dam_test;
namespace fs = std::filesystem;

TEST_CASE("reference networks have PyTorch's parameter counts and names", "[nn]") {
    Generator g(0);
    auto small = nn::small_net<float>(g);
    auto mbv2 = nn::mbv2_net<float>(g);
    // torch_ref.py prints params=308074 for small and params=105434 for mbv2.
    CHECK(small->parameter_count() == 308074);
    CHECK(mbv2->parameter_count() == 105434);
    const auto named = small->named_parameters();
    CHECK(named.front().first == "0.0.weight");
    CHECK(named.back().first == "5.bias");
    CHECK(small->named_buffers().size() == 2 * 9);  // 9 batch norms, mean and var each
    auto y = small->forward(Var<float>(Tensor<float>::zeros(Shape{2, 1, 28, 28})));
    CHECK(y.shape() == Shape{2, 10});
}

TEST_CASE("the ShuffleNetV2 space's derived networks have the parameter counts of their PyTorch twins", "[nn][peer]") {
    // benchmarks/torch_nets.py builds the derived networks layer for layer for the throughput
    // comparison; equal parameter counts (for every choice in every layer) check that it is the
    // same network.
    const std::string script = DAM_SOURCE_DIR "/benchmarks/torch_nets.py";
    if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
        DAM_SKIP("python3-torch is not installed (apt-get install python3-torch)");
    for (const std::string arch : {"0,0,0,0,0,0,0,0", "1,1,1,1,1,1,1,1", "2,2,2,2,2,2,2,2", "3,3,3,3,3,3,3,3", "3,0,0,2,2,0,2,2"}) {
        const std::string cmd = "/usr/bin/python3 '" + script + "' --params-only --arch " + arch;
        std::FILE* pipe = popen(cmd.c_str(), "r");
        REQUIRE(pipe != nullptr);
        std::string out;
        char buf[256];
        while (std::fgets(buf, sizeof buf, pipe)) out += buf;
        REQUIRE(pclose(pipe) == 0);
        const auto at = out.find("params=");
        REQUIRE(at != std::string::npos);
        const std::int64_t torch_params = std::stoll(out.substr(at + 7));
        std::vector<std::int64_t> choices;
        for (char c : arch)
            if (c != ',') choices.push_back(c - '0');
        Generator g(0);
        auto net = nas::ShuffleSpace::build<float>(nas::ShuffleSpace::default_options(), g, choices);
        INFO("arch " << arch);
        CHECK(net->parameter_count() == torch_params);
    }
}

TEST_CASE("a whole network passes the gradient checker in double", "[nn][gradcheck]") {
    Generator g(1);
    auto net = nn::make<nn::Sequential<double>>(std::initializer_list<nn::ModulePtr<double>>{
        nn::basic_block<double>(2, 3, 2, g), nn::inverted_residual<double>(3, 3, 1, 3, 2, g),
        nn::make<nn::GlobalAvgPool2d<double>>(), nn::make<nn::Linear<double>>(3, 4, true, g)});
    auto x = randn(Shape{3, 2, 5, 5}, 2);
    std::vector<Var<double>> inputs{x};
    for (auto& p : net->parameters()) inputs.push_back(p);
    const auto labels = Tensor<std::int32_t>::from(Shape{3}, {0, 3, 1});
    require_gradcheck([&](const std::vector<Var<double>>&) { return ops::cross_entropy(net->forward(x), labels); }, inputs,
                      {1e-6, 1e-6, 1e-4, 7});
}

TEST_CASE("train and eval mode switch batch norm statistics", "[nn]") {
    nn::BatchNorm2d<double> bn(2);
    auto x = randn(Shape{4, 2, 3, 3}, 3, false, 5.0);
    bn.train();
    (void)bn.forward(x);
    CHECK(bn.running_mean()[0] != 0.0);
    bn.eval();
    const double before = bn.running_mean()[0];
    auto y = bn.forward(x).value();
    CHECK(bn.running_mean()[0] == before);
    // In eval mode the output uses the running statistics exactly.
    const double expect = (x.value()[0] - bn.running_mean()[0]) / std::sqrt(bn.running_var()[0] + 1e-5);
    CHECK(y[0] == Approx(expect));
}

TEST_CASE("zero_grad releases gradients: a parameter the next backward pass misses does not move", "[optim]") {
    // A supernet candidate sampled once and then not again must get no weight decay and no
    // momentum step (DSNAS, GDAS): the optimizer skips parameters without a gradient.
    for (bool adam : {false, true}) {
        auto a = Var<double>(Tensor<double>::from(Shape{1}, {1.0}), true);
        auto b = Var<double>(Tensor<double>::from(Shape{1}, {2.0}), true);
        std::vector<optim::ParamGroup<double>> groups{{{a, b}, 0.1, 0.01, "w"}};
        std::unique_ptr<optim::Optimizer<double>> opt;
        if (adam) opt = std::make_unique<optim::Adam<double>>(groups);
        else opt = std::make_unique<optim::SGD<double>>(groups, optim::SGDOptions{0.9, true, 0.0});
        ops::sum(a * b).backward();  // both sampled
        opt->step();
        const double b_after_first = b.value()[0];
        for (int t = 0; t < 3; ++t) {
            opt->zero_grad();
            CHECK_FALSE(b.grad().defined());
            ops::sum(ops::square(a)).backward();  // only a is reached
            opt->step();
        }
        INFO((adam ? "Adam" : "SGD"));
        CHECK(b.value()[0] == b_after_first);
        // fill_grad_zero keeps the zero gradient, and then decay and momentum move b.
        ops::sum(a * b).backward();
        opt->step();
        const double before = b.value()[0];
        opt->fill_grad_zero();
        ops::sum(ops::square(a)).backward();
        opt->step();
        CHECK(b.value()[0] != before);
    }
}

TEST_CASE("SGD follows the momentum / Nesterov / weight decay formula", "[optim]") {
    for (bool nesterov : {false, true}) {
        auto w = Var<double>(Tensor<double>::from(Shape{1}, {1.0}), true);
        optim::SGD<double> opt({{{w}, 0.1, 0.01, "w"}}, {0.9, nesterov, 0.0});
        double ww = 1.0, buf = 0.0;
        for (int t = 0; t < 3; ++t) {
            opt.zero_grad();
            ops::sum(ops::square(w)).backward();  // g = 2w
            opt.step();
            const double d = 2 * ww + 0.01 * ww;
            buf = t == 0 ? d : 0.9 * buf + d;
            ww -= 0.1 * (nesterov ? d + 0.9 * buf : buf);
            REQUIRE(w.value()[0] == Approx(ww));
        }
        CHECK(opt.momentum_buffer(0, 0)[0] == Approx(buf));
    }
    auto w = Var<double>(Tensor<double>::zeros(Shape{1}), true);
    require_throws_with<value_error>([&] { optim::SGD<double>({{{w}, -1.0, 0.0, "w"}}); }, {"learning rate", "-1"});
}

TEST_CASE("Adam's first steps match the formula", "[optim]") {
    auto w = Var<double>(Tensor<double>::from(Shape{1}, {1.0}), true);
    optim::Adam<double> opt({{{w}, 0.01, 0.0, "w"}});
    double ww = 1.0, m = 0, v = 0;
    for (int t = 1; t <= 3; ++t) {
        opt.zero_grad();
        ops::sum(ops::square(w)).backward();
        opt.step();
        const double g = 2 * ww;
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        ww -= 0.01 * (m / (1 - std::pow(0.9, t))) / (std::sqrt(v / (1 - std::pow(0.999, t))) + 1e-8);
        REQUIRE(w.value()[0] == Approx(ww));
    }
}

// The GPU test drives sgd_step / adam_step by hand (momentum buffer filled on the first step,
// Adam's moments from zero) and compares them with the optimizer classes run on the CPU. The same
// comparison here, with the kernels of the CPU, proves that the two layouts agree, and that the
// reference really steps: a first version set the gradient through the node's in-flight
// `pending` instead of grad(), so the CPU optimizer skipped every parameter and the GPU test
// failed on all 10,000 (issue of the first H200 run).
TEST_CASE("SGD and Adam equal their step kernels driven by hand, the GPU test's layout", "[optim]") {
    const std::int64_t n = 1000;
    Generator gen(61);
    Tensor<float> w0(Shape{n});
    normal_(w0, gen, 0.0, 1.0);
    std::vector<Tensor<float>> gs;
    for (int k = 0; k < 5; ++k) {
        gs.emplace_back(Shape{n});
        normal_(gs.back(), gen, 0.0, 1.0);
    }
    for (const std::string which : {"sgd", "adam"}) {
        INFO(which);
        auto p = Var<float>(w0.clone(), true);
        std::vector<optim::ParamGroup<float>> groups{{{p}, 0.05, 1e-3, "all"}};
        std::unique_ptr<optim::Optimizer<float>> opt;
        if (which == "sgd") opt = std::make_unique<optim::SGD<float>>(groups, optim::SGDOptions{0.9, true, 0.0});
        else opt = std::make_unique<optim::Adam<float>>(groups, optim::AdamOptions{});
        Tensor<float> w = w0.clone(), b(Shape{n}), m = Tensor<float>::zeros(Shape{n}), v = Tensor<float>::zeros(Shape{n});
        for (std::size_t k = 0; k < gs.size(); ++k) {
            p.grad() = gs[k].clone();
            opt->step();
            if (which == "sgd") {
                backend_cpu::sgd_step(cpu{}, w.data(), gs[k].data(), b.data(), n,
                                      body::SgdStep<float>{0.05f, 1e-3f, 0.9f, 1.0f, true, k == 0});
            } else {
                const double t = static_cast<double>(k + 1), c1 = 1 - std::pow(0.9, t), c2 = 1 - std::pow(0.999, t);
                backend_cpu::adam_step(cpu{}, w.data(), gs[k].data(), m.data(), v.data(), n,
                                       body::AdamStep<float>{0.05f, static_cast<float>(0.05 / c1), 1e-3f, 0.9f, 0.999f,
                                                             1e-8f, static_cast<float>(1.0 / std::sqrt(c2)), false});
            }
        }
        std::int64_t moved = 0, differ = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            moved += p.value()[i] != w0[i];
            differ += p.value()[i] != w[i];
        }
        CHECK(moved == n);
        CHECK(differ == 0);
    }
}

TEST_CASE("warm-up + cosine schedule", "[optim]") {
    optim::WarmupCosine s{0.1, 100, 10, 0.0, 0.1};
    CHECK(s(0) == Approx(0.01));
    CHECK(s(5) == Approx(0.055));
    CHECK(s(10) == Approx(0.1));
    CHECK(s(55) == Approx(0.05));
    CHECK(s(100) == Approx(0.0).margin(1e-12));
    CHECK(optim::StepLr{1.0, 10, 0.5}(25) == Approx(0.25));
}

TEST_CASE("weight averaging: the running mean of the states added, copied back, saved and restored", "[optim]") {
    Var<float> a(Tensor<float>::from(Shape{3}, {1.f, 2.f, 3.f}), true), b(Tensor<float>::from(Shape{1}, {-4.f}), true);
    const std::vector<Var<float>> params{a, b};
    optim::WeightAverage<float> avg;
    require_throws_with<value_error>([&] { avg.copy_to(params); }, {"nothing has been averaged"});
    avg.add(params);  // (1, 2, 3 | -4)
    a.value()[0] = 4.f;
    a.value()[2] = -3.f;
    b.value()[0] = 2.f;
    avg.add(params);  // (4, 2, -3 | 2)
    a.value()[1] = 8.f;
    avg.add(params);  // (4, 8, -3 | 2)
    CHECK(avg.count() == 3);
    const std::vector<double> expected{3.0, 4.0, -1.0, 0.0};
    REQUIRE(avg.mean().size() == 4);
    for (std::size_t i = 0; i < 4; ++i) CHECK(avg.mean()[i] == Approx(expected[i]).margin(1e-12));

    ByteWriter w;
    avg.save_state(w);
    optim::WeightAverage<float> back;
    ByteReader r(w.bytes.data(), w.bytes.size(), "test");
    back.load_state(r);
    CHECK(r.remaining() == 0);
    CHECK(back.count() == 3);
    CHECK(back.mean() == avg.mean());

    back.copy_to(params);  // into the parameters themselves, in place
    CHECK(a.value()[0] == 3.f);
    CHECK(a.value()[1] == 4.f);
    CHECK(a.value()[2] == -1.f);
    CHECK(b.value()[0] == 0.f);

    // Other shapes are refused, with what differs.
    Var<float> c(Tensor<float>::from(Shape{2}, {1.f, 2.f}), true);
    require_throws_with<shape_error>([&] { avg.add({c, b}); }, {"parameter 0 has 2 values, the mean holds 3"});
    require_throws_with<shape_error>([&] { avg.copy_to({a}); }, {"1 parameter tensors given, the mean holds 2"});
    // A state whose length does not match its sizes is corrupt.
    ByteWriter bad;
    bad.put<std::int64_t>(1);
    put_ints(bad, {3, 1});
    put_doubles(bad, {1.0, 2.0});
    ByteReader rb(bad.bytes.data(), bad.bytes.size(), "test");
    require_throws_with<format_error>([&] { optim::WeightAverage<float>().load_state(rb); }, {"the state is corrupt"});
}

TEST_CASE("training a tiny network lowers the loss", "[nn][optim]") {
    Generator g(4);
    auto net = nn::make<nn::Sequential<float>>(std::initializer_list<nn::ModulePtr<float>>{
        nn::make<nn::Linear<float>>(2, 16, true, g), nn::make<nn::ReLU<float>>(), nn::make<nn::Linear<float>>(16, 2, true, g)});
    // XOR-like labels: not linearly separable.
    Tensor<float> x(Shape{64, 2});
    Tensor<std::int32_t> y(Shape{64});
    Generator dg(5);
    uniform_(x, dg, -1.0, 1.0);
    for (int i = 0; i < 64; ++i) y[i] = (x[2 * i] * x[2 * i + 1]) > 0;
    optim::SGD<float> opt({{net->parameters(), 0.5, 0.0, "all"}}, {0.9, false, 0.0});
    float first = 0, last = 0;
    for (int t = 0; t < 300; ++t) {
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float>(x)), y);
        loss.backward();
        opt.step();
        (t == 0 ? first : last) = loss.value().item();
    }
    CHECK(last < 0.3f * first);
}

TEST_CASE("a steady-state training step takes no new memory from the system", "[nn][allocator]") {
    Generator g(6);
    auto net = nn::small_net<float>(g);
    optim::SGD<float> opt({{net->parameters(), 0.05, 5e-4, "all"}}, {0.9, true, 0.0});
    Tensor<float> x(Shape{8, 1, 28, 28});
    normal_(x, g, 0.0, 1.0);
    auto y = Tensor<std::int32_t>::from(Shape{8}, {0, 1, 2, 3, 4, 5, 6, 7});
    auto step = [&] {
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float>(x)), y);
        loss.backward();
        opt.step();
    };
    step();
    step();
    const auto before = default_allocator<cpu>().stats();
    for (int i = 0; i < 3; ++i) step();
    const auto after = default_allocator<cpu>().stats();
    CHECK(after.system_allocations == before.system_allocations);
    CHECK(after.cache_hits > before.cache_hits);
}

namespace {
fs::path temp_path(const std::string& name) {
    auto dir = fs::temp_directory_path() / "dam_tests";
    fs::create_directories(dir);
    return dir / name;
}
}  // namespace

TEST_CASE("save and load a model: round trip and every failure is a clear error", "[nn][serialize]") {
    Generator g(7);
    auto net = nn::small_net<float>(g);
    auto x = Var<float>(Tensor<float>::full(Shape{2, 1, 28, 28}, 0.5f));
    (void)net->forward(x);  // moves the BN running statistics off their defaults
    net->eval();
    const auto expect = net->forward(x).value().clone();
    const auto path = temp_path("small.bin").string();
    nn::save_model(*net, path);
    for (auto& e : fs::directory_iterator(fs::path(path).parent_path()))
        CHECK(e.path().string().find(".tmp.") == std::string::npos);  // the temp file was renamed away

    Generator g2(99);
    auto other = nn::small_net<float>(g2);
    other->eval();
    nn::load_model(*other, path);
    const auto got = other->forward(x).value();
    for (std::int64_t i = 0; i < got.numel(); ++i) REQUIRE(got[i] == expect[i]);

    auto bytes = read_file(path);
    // A flipped byte in the values.
    auto corrupt = bytes;
    corrupt[corrupt.size() / 2] ^= 0x40;
    write_file_atomic(path + ".corrupt", corrupt);
    require_throws_with<format_error>([&] { nn::load_model(*other, path + ".corrupt"); }, {"checksum", ".corrupt"});
    // A truncated file.
    std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 3));
    write_file_atomic(path + ".cut", cut);
    CHECK_THROWS_AS(nn::load_model(*other, path + ".cut"), format_error);
    // Not a model at all.
    write_file_atomic(path + ".txt", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
    require_throws_with<format_error>([&] { nn::load_model(*other, path + ".txt"); }, {"bad magic"});
    // A file of a different model.
    Generator g3(1);
    auto mb = nn::mbv2_net<float>(g3);
    require_throws_with<format_error>([&] { nn::load_model(*mb, path); }, {"different model"});
    // A missing file.
    require_throws_with<io_error>([&] { nn::load_model(*other, path + ".missing"); }, {"no such file"});
    // Nothing was changed by the failed loads.
    const auto again = other->forward(x).value();
    for (std::int64_t i = 0; i < again.numel(); ++i) REQUIRE(again[i] == expect[i]);
}

TEST_CASE("the epoch figures: running loss and accuracy, and the finiteness check", "[optim]") {
    // Two batches: logits whose argmax is class 0, 1, 1 then 0; labels 0, 1, 0 then 1.
    Tensor<float> z1(Shape{3, 2}), z2(Shape{1, 2});
    z1[0] = 2, z1[1] = 0, z1[2] = 0, z1[3] = 1, z1[4] = 0, z1[5] = 3;
    z2[0] = 1, z2[1] = 0;
    Tensor<std::int32_t> y1(Shape{3}), y2(Shape{1});
    y1[0] = 0, y1[1] = 1, y1[2] = 0;
    y2[0] = 1;
    optim::EpochTotals t;
    CHECK(t.loss() == 0.0);  // nothing seen: no division by zero
    CHECK(t.accuracy() == 0.0);
    t.add(0.5, z1, y1);
    t.add(2.0, z2, y2);
    CHECK(t.seen == 4);
    CHECK(t.correct == 2);
    CHECK(t.loss() == Approx((0.5 * 3 + 2.0 * 1) / 4));
    CHECK(t.accuracy() == 0.5);
    CHECK(t.text() == "loss 0.8750 acc 0.5000");
    t.reset();
    CHECK(t.seen == 0);

    optim::EpochMeter meter(2, "test");
    meter.add(0.5, z1, y1, " lr=0.1");
    meter.add(2.0, z2, y2);
    meter.finish();
    CHECK(meter.totals().seen == 4);
    CHECK(meter.totals().accuracy() == 0.5);
    CHECK(meter.seconds() >= 0.0);

    optim::check_finite_loss(1.0, 3, "loop", "lower --lr");
    require_throws_with<value_error>([] { optim::check_finite_loss(std::nan(""), 7, "loop", "lower --lr"); },
                                     {"loop: the training loss became nan at step 7", "lower --lr"});
    require_throws_with<value_error>([] { optim::check_finite_loss(INFINITY, 2, "loop", "x"); }, {"became inf"});
}
