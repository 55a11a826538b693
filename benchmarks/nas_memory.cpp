// Peak memory and step time of one search step of each NAS policy on the same supernet: DSNAS and
// GDAS run a single path per step, DARTS runs (and keeps for backward) every candidate. Batch 128,
// random Fashion-MNIST batches, 2 threads. Memory is the peak of tensor bytes in use during the
// measured steps (the caching allocator's count), over the bytes in use before them.
//
// Output, one line per policy:
//   space=shuffle policy=dsnas peak_MiB=... step_ms=... ratio_to_dsnas=...
#include <chrono>
#include <string>

#include <diffautoml/diffautoml.hpp>

#include "../examples/cli.hpp"

using namespace diffautoml;

namespace {

struct Result {
    double peak_mib, step_ms;
};

template <class Space, template <class, class, class> class Policy, class Options>
Result measure(const data::Dataset& train, int steps, int batch, Options popt) {
    Generator gen(0);
    auto net = Space::template build<float>(Space::default_options(), gen);
    Policy<Space, float, cpu> policy(*net, popt);
    optim::SGD<float> opt({{net->parameters(), 0.05, 5e-4, "w"}}, {0.9, true, 0.0});
    data::BatchLoader loader(train, batch, true, 1, true);
    loader.start_epoch(0);
    data::Batch b;
    nas::NasContext<float> ctx;
    ctx.gen = &gen;
    ctx.total_steps = steps + 1;
    ctx.weights = net->parameters();
    ctx.weight_lr = 0.05;
    ctx.train_loss = [&] { return ops::cross_entropy(net->forward(Var<float>(b.images)), b.labels); };
    ctx.val_loss = ctx.train_loss;
    auto step = [&](int i) {
        b = loader.next();
        ctx.step = i;
        policy.prepare(ctx);
        opt.zero_grad();
        auto loss = ops::cross_entropy(net->forward(Var<float>(b.images)), b.labels);
        loss.backward();
        policy.update(ctx);
        opt.step();
    };
    step(0);  // warm the allocator cache and optimizer state
    auto& alloc = default_allocator<cpu>();
    const std::size_t base = alloc.stats().bytes_in_use;
    alloc.reset_peak();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 1; i <= steps; ++i) step(i);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {static_cast<double>(alloc.stats().peak_bytes_in_use - base) / 1048576.0, 1000.0 * dt / steps};
}

}  // namespace

int main(int argc, char** argv) try {
    int steps = 5, batch = 128;
    std::string data = DAM_FASHION_DIR;
    dam_cli::Cli cli("nas_memory", "nas_memory: peak memory and step time of one search step of DSNAS, GDAS and DARTS.");
    cli.group("options")
        .option("--steps", steps, "measured steps")
        .option("--batch", batch, "training batch size")
        .option("--data", data, "folder with Fashion-MNIST's four .gz IDX files");
    cli.parse(argc, argv);
    set_num_threads(2);
    const data::Dataset train = data::load_fashion_mnist(data, true);
    const Result ds = measure<nas::ShuffleSpace, nas::DSNAS>(train, steps, batch, nas::DSNASOptions{});
    const Result gd = measure<nas::ShuffleSpace, nas::GDAS>(train, steps, batch, nas::GDASOptions{});
    const Result d1 = measure<nas::ShuffleSpace, nas::DARTS>(train, steps, batch, nas::DARTSOptions{});
    const Result d2 = measure<nas::ShuffleSpace, nas::DARTS>(train, steps, batch, nas::DARTSOptions{3e-4, 0.5, 1e-3, true});
    auto line = [&](const char* policy, const Result& r) {
        fmt::print("space=shuffle policy={} peak_MiB={:.1f} step_ms={:.0f} ratio_to_dsnas={:.2f}\n", policy, r.peak_mib,
                   r.step_ms, r.peak_mib / ds.peak_mib);
    };
    line("dsnas", ds);
    line("gdas", gd);
    line("darts_first_order", d1);
    line("darts_second_order", d2);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "nas_memory: error: {}\n", e.what());
    return 1;
}
