// Data augmentation policies at equal budget: the reference network `small` trained on
// Fashion-MNIST (or any IDX dataset) with PairPolicyDA (DiffAutoML's adversarial pair policy),
// StandardAugment (random 2-pixel shifts and flips) and NoAugment by default; DADA and RandAugment
// on request. Every run uses the same initial weights, batches, schedule and number of steps.
// Prints one line per policy, `policy=NAME test_accuracy=0.XXXX`, the learned policy as a table,
// and writes galleries (SVG) of every op and of each policy's augmented samples to --out.
#include <filesystem>
#include <string>
#include <vector>

#include <diffautoml/diffautoml.hpp>
#include <diffautoml/visualize.hpp>

#include "cli.hpp"

#include "example_common.hpp"

using namespace diffautoml;

namespace {

struct Args {
    int epochs = 5, batch = 128, threads = 2;
    double lr = 0.1, weight_decay = 5e-4, da_lr = -1, max_magnitude = 1.0;
    std::int64_t subset = 0, val = 5000;
    std::string dada_objective = "validation";
    std::uint64_t seed = 0;
    std::vector<std::string> policies{"pair", "standard", "none"};
    std::string data = DAM_FASHION_DIR, out = "da_search_out", ops, device = "cpu";
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("da_search", "da_search: DA policies at equal budget on Fashion-MNIST with the reference network `small`.");
    cli.group("data")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .option("--subset", a.subset, "train on the first N training images (0: all)")
        .option("--validation,--val", a.val, "images held out of DADA's training set for its bilevel objective");
    cli.group("budget").option("--epochs", a.epochs, "number of epochs").option("--batch", a.batch, "training batch size");
    cli.group("DA")
        .list("--policies", a.policies, "the policies to compare, of pair, standard, none, dada, randaugment")
        .custom("--da-lr", [&a](const std::string& v) { a.da_lr = dam_cli::read<double>("--da-lr", v); },
                "the policy's learning rate", "pair 20, dada 5e-3", "X")
        .option("--da-max-magnitude,--max-magnitude", a.max_magnitude, "pair policy: magnitudes drawn from U(0, M)")
        .custom("--da-ops,--ops", [&a](const std::string& v) { a.ops = v; },
                "ops of pair and dada: Op,Op,... (e.g. Identity,FlipLR,Rotate)", "all 17", "OPS")
        .one_of("--dada-objective", a.dada_objective, {"validation", "adversarial"},
                "DADA's bilevel objective on the held-out images, or raising the training loss");
    cli.group("training").option("--lr", a.lr, "learning rate").option("--wd", a.weight_decay, "weight decay");
    cli.group("run")
        .option("--seed", a.seed, "random seed")
        .option("--threads", a.threads, "CPU threads")
        .one_of("--device", a.device, {"cpu", "cuda"}, "where to train (cuda: refused, see the message)")
        .option("--out", a.out, "output folder: galleries and the learned policy");
    cli.parse(argc, argv);
    DAM_CHECK(a.device == "cpu", value_error,
              "da_search --device cuda: this program trains on the CPU only, and DADA's straight-through magnitude "
              "gradient has no CUDA kernel yet; PairPolicyDA and RandAugment augment GPU batches from code, and "
              "diffautoml-search --device cuda runs the pair policy on a GPU");
    DAM_CHECK(a.epochs >= 1 && a.batch >= 1, value_error, "--epochs and --batch must be >= 1");
    for (const auto& p : a.policies)
        DAM_CHECK(p == "pair" || p == "standard" || p == "none" || p == "dada" || p == "randaugment", value_error,
                  "--policies: unknown policy '{}' (pair, standard, none, dada, randaugment)", p);
    DAM_CHECK(a.val >= 1, value_error, "--validation must be >= 1, got {}", a.val);
    return a;
}

/// Trains `small` with policy p for the budget and returns the test accuracy. A policy with the
/// bilevel validation objective (DADA) takes its validation batches from `val`.
template <da::DaPolicy P>
double train_with(P& policy, const data::Dataset& train, const data::Dataset& test, const Args& a,
                  const data::Dataset* val = nullptr) {
    Generator gen(a.seed);
    auto net = nn::small_net<float>(gen, train.image_shape()[0], train.classes);
    Generator da_gen(a.seed + 7);
    optim::SGD<float> opt(optim::decay_groups(net->named_parameters(), a.lr, a.weight_decay), {0.9, true, 0.0});
    data::BatchLoader loader(train, a.batch, true, a.seed + 1, true);
    const std::int64_t steps_per_epoch = loader.batches_per_epoch(), total = a.epochs * steps_per_epoch;
    const optim::WarmupCosine schedule{a.lr, total, steps_per_epoch / 2, 0.0, 0.1};
    std::int64_t step = 0;
    double test_acc = 0;
    bool bilevel = false;
    if constexpr (requires { policy.needs_unrolled_gradient(); }) bilevel = policy.needs_unrolled_gradient();
    DAM_CHECK(!bilevel || val != nullptr, value_error, "da_search: policy {} needs validation images", P::policy_name);
    std::unique_ptr<data::BatchLoader> val_loader;
    std::int64_t val_epoch = 0;
    if (bilevel) {
        val_loader = std::make_unique<data::BatchLoader>(*val, a.batch, true, a.seed + 2, true);
        val_loader->start_epoch(val_epoch++);
    }
    const auto weights = net->parameters();
    const std::string who = fmt::format("da_search ({})", P::policy_name);  // names the policy in errors
    for (int epoch = 0; epoch < a.epochs; ++epoch) {
        loader.start_epoch(epoch);
        optim::EpochMeter meter(steps_per_epoch, fmt::format("{:>11} {:2}/{}", P::policy_name, epoch + 1, a.epochs));
        for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
            auto b = loader.next();
            da::DaContext ctx{&da_gen, step, total};
            auto x = policy.augment(b.images, ctx);
            opt.set_lr(schedule(step));
            opt.zero_grad();
            auto logits = net->forward(x);
            auto per_sample = ops::cross_entropy(logits, b.labels, {0.0, ops::Reduction::none});
            auto loss = ops::mean(per_sample);
            loss.backward();
            const float l = loss.value().item();
            optim::check_finite_loss(l, step, who, "lower --lr or --da-lr");
            if (bilevel)
                ctx.unrolled_image_gradient = da::unrolled_image_gradient<float, cpu>(
                    weights, [&](const std::vector<Tensor<float>>& g) { return opt.update_for(weights, g); },
                    [&] {
                        if (!val_loader->has_next()) val_loader->start_epoch(val_epoch++);
                        auto vb = val_loader->next();
                        return ops::cross_entropy(net->forward(Var<float>(vb.images)), vb.labels);
                    },
                    [&](const Var<float>& xv) { return ops::cross_entropy(net->forward(xv), b.labels); }, x.value());
            policy.update(per_sample.value(), ctx);
            opt.step();
            meter.add(l, logits.value(), b.labels);
        }
        meter.finish();
        test_acc = dam_examples::evaluate(*net, test);
        fmt::print("policy={} epoch={} train_loss={:.4f} train_accuracy={:.4f} test_accuracy={:.4f} seconds={:.1f}\n",
                   P::policy_name, epoch + 1, meter.totals().loss(), meter.totals().accuracy(), test_acc,
                   meter.seconds());
        if (policy.searching()) fmt::print("{}", da::policy_table(policy.summary(8)));
        std::fflush(stdout);
    }
    return test_acc;
}

/// Writes the gallery of `policy` on the first 10 training images and its learned table.
template <da::DaPolicy P>
void write_outputs(P& policy, const data::Dataset& train, const Args& a, const da::PixelSpace& ps) {
    Generator g(a.seed + 99);
    const Tensor<float> sample = train.images.slice_batch(0, std::min<std::int64_t>(10, train.size())).clone();
    const std::string name(P::policy_name);
    da::write_gallery(a.out + "/policy_" + name + ".svg", da::policy_gallery(policy, sample, 6, g, ps), 3,
                      fmt::format("{}: six augmentations of the same images", name));
    if (policy.searching())
        write_text_atomic(a.out + "/policy_" + name + ".md",
                          fmt::format("# Learned {} policy (top 20)\n\n{}", name, da::policy_table(policy.summary(20))));
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    data::Dataset train = data::load_fashion_mnist(a.data, true);
    const data::Dataset test = data::load_fashion_mnist(a.data, false);
    if (a.subset > 0 && a.subset < train.size()) {
        std::vector<std::int64_t> idx(static_cast<std::size_t>(a.subset));
        std::iota(idx.begin(), idx.end(), std::int64_t{0});
        train = data::subset(train, idx);
    }
    diffautoml::create_directories(a.out);
    const da::PixelSpace ps{data::fashion_mnist_mean, data::fashion_mnist_std};
    std::vector<da::Op> ops = da::all_ops();
    if (!a.ops.empty()) {
        ops.clear();
        for (const auto& n : dam_cli::split(a.ops)) ops.push_back(da::op_from_name(n));
    }
    fmt::print("da_search: {} train / {} test images, {} epochs per policy, batch {}, lr {}, policies {}, {} ops\n",
               train.size(), test.size(), a.epochs, a.batch, a.lr, fmt::join(a.policies, ","), ops.size());

    // Every op at magnitude 0.7 on the first 8 training images, to look at.
    const Tensor<float> first = da::to_pixels(train.images.slice_batch(0, std::min<std::int64_t>(8, train.size())), ps);
    da::AugmentOptions aug;
    aug.fill = 0.0;  // Fashion-MNIST's background is black
    da::write_gallery(a.out + "/ops.svg", da::op_gallery(first, da::all_ops(), 0.7, aug), 3,
                      "every op at magnitude 0.7 (positive sign)");

    std::vector<std::pair<std::string, double>> results;
    for (const auto& name : a.policies) {
        double acc = 0;
        if (name == "pair") {
            da::PairPolicyOptions o{.ops = ops, .max_magnitude = a.max_magnitude, .augment = aug, .pixels = ps};
            if (a.da_lr >= 0) o.lr = a.da_lr;
            da::PairPolicyDA<float> p(o);
            acc = train_with(p, train, test, a);
            write_outputs(p, train, a, ps);
        } else if (name == "dada") {
            da::DADAOptions o{.ops = ops, .augment = aug, .pixels = ps};
            if (a.da_lr > 0) o.lr = a.da_lr;
            if (a.dada_objective == "adversarial") o.objective = da::DADAOptions::Objective::adversarial;
            da::DADA<float> p(o);
            if (p.needs_unrolled_gradient()) {
                // DADA trains on the rest (fewer steps per epoch than the other policies).
                const auto [rest, val] = data::split_train_val(train, a.val, a.seed);
                acc = train_with(p, rest, test, a, &val);
            } else {
                acc = train_with(p, train, test, a);
            }
            write_outputs(p, train, a, ps);
        } else if (name == "randaugment") {
            da::RandAugment<float> p(da::RandAugmentOptions{.augment = aug, .pixels = ps});
            acc = train_with(p, train, test, a);
            write_outputs(p, train, a, ps);
        } else if (name == "standard") {
            da::StandardAugment<float> p(da::StandardAugmentOptions{.pixels = ps});
            acc = train_with(p, train, test, a);
            write_outputs(p, train, a, ps);
        } else {
            da::NoAugment<float> p;
            acc = train_with(p, train, test, a);
        }
        results.emplace_back(name, acc);
    }
    fmt::print("galleries and learned policies are in {}/\n", a.out);
    for (const auto& [name, acc] : results) fmt::print("policy={} test_accuracy={:.4f}\n", name, acc);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "da_search: error: {}\n", e.what());
    return 1;
}
