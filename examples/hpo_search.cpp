// Hypergradient HPO on Fashion-MNIST: the reference network `small` started from a bad learning
// rate (too small) and weight decay (too large), trained once with HypergradLrWd (learning both
// from one-step validation hypergradients on a held-out slice of the training set) and once with
// the same values fixed. Prints the hyperparameter trajectory and, for each policy,
// `policy=NAME test_accuracy=0.XXXX`.
#include <cstdlib>
#include <string>

#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

#include "example_common.hpp"

using namespace diffautoml;

namespace {

struct Args {
    int epochs = 2, batch = 128, threads = 2, val_batch = 64, every = 1;
    double lr = 0.005, weight_decay = 5e-3, hyper_lr = 0.01;
    std::int64_t val = 5000;
    std::uint64_t seed = 0;
    std::string data = DAM_FASHION_DIR, policies = "both";
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("hpo_search", "hpo_search: the hypergradient's learning rate and weight decay against the same values fixed.");
    cli.group("data")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .option("--validation,--val", a.val, "training images held out for the hypergradient")
        .option("--validation-batch,--val-batch", a.val_batch, "validation batch of a hypergradient step");
    cli.group("budget").option("--epochs", a.epochs, "number of epochs").option("--batch", a.batch, "training batch size");
    cli.group("training and HPO")
        .one_of("--hpo,--policy", a.policies, {"hypergrad", "fixed", "both"}, "which runs: learned, fixed, or one of each")
        .option("--lr", a.lr, "initial learning rate (deliberately small)")
        .option("--wd", a.weight_decay, "initial weight decay (deliberately large)")
        .option("--hyper-lr", a.hyper_lr, "Adam step on log lr and log wd")
        .option("--hpo-every,--every", a.every, "a hypergradient step every K weight steps");
    cli.group("run").option("--seed", a.seed, "random seed").option("--threads", a.threads, "CPU threads");
    cli.parse(argc, argv);
    DAM_CHECK(a.epochs >= 1 && a.batch >= 2 && a.threads >= 1 && a.lr > 0 && a.weight_decay > 0 && a.val >= a.val_batch,
              value_error, "epochs, threads >= 1, batch >= 2, lr and wd > 0, --validation >= --validation-batch");
    return a;
}

template <class Policy>
double train(const Args& a, Policy& policy, nn::Module<float>& net, const data::Dataset& train_set,
             hpo::ValidationSet& val, const data::Dataset& test, Generator& gen) {
    data::BatchLoader loader(train_set, a.batch, true, a.seed + 1, true);
    const std::int64_t steps_per_epoch = loader.batches_per_epoch();
    hpo::HpoContext<float> ctx;
    ctx.validation = &val;
    ctx.validation_batch = a.val_batch;
    ctx.forward = [&](const Tensor<float>& x) { return net.forward(Var<float>(x)); };
    std::int64_t step = 0;
    auto values_text = [&] {
        std::string s;
        for (auto& [name, v] : policy.values()) s += fmt::format(" {}={:.5g}", name, v);
        return s;
    };
    fmt::print("policy={} step=0{}\n", Policy::policy_name, values_text());
    for (int epoch = 0; epoch < a.epochs; ++epoch) {
        loader.start_epoch(epoch);
        optim::EpochMeter meter(steps_per_epoch, fmt::format("{} epoch {}/{}", Policy::policy_name, epoch + 1, a.epochs));
        for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
            auto b = loader.next();
            dam_examples::standard_augment(b.images, gen);
            ctx.step = step;
            auto logits = net.forward(Var<float>(b.images));
            auto loss = policy.training_loss(logits, b.labels);
            const float l = loss.value().item();
            optim::check_finite_loss(l, step, "hpo_search", "lower --lr");
            policy.backward(loss, logits, b.labels);
            policy.step(ctx);
            meter.add(l, logits.value(), b.labels, values_text());
            if ((step + 1) % 100 == 0) {
                meter.interrupt();
                fmt::print("policy={} step={}{}\n", Policy::policy_name, step + 1, values_text());
            }
        }
        meter.finish();
        fmt::print("policy={} epoch={} train_loss={:.4f} train_accuracy={:.4f} val_accuracy={:.4f}{}\n",
                   Policy::policy_name, epoch + 1, meter.totals().loss(), meter.totals().accuracy(),
                   dam_examples::evaluate(net, val.data()), values_text());
        std::fflush(stdout);
    }
    return dam_examples::evaluate(net, test);
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset full = data::load_fashion_mnist(a.data, true);
    const data::Dataset test = data::load_fashion_mnist(a.data, false);
    auto [train_set, val] = hpo::hold_out(full, a.val, a.seed);
    fmt::print("hpo_search: net small, {} epochs, batch {}, start lr {} wd {}, {} train / {} validation / {} test images\n",
               a.epochs, a.batch, a.lr, a.weight_decay, train_set.size(), val.size(), test.size());
    std::vector<std::string> results;
    if (a.policies != "fixed") {
        Generator gen(a.seed);
        auto net = nn::small_net<float>(gen, 1, full.classes);
        hpo::HypergradOptions o;
        o.momentum = 0.9;
        o.hyper_lr = a.hyper_lr;
        o.every = a.every;
        o.lr_lo = 1e-4;
        o.lr_hi = 0.5;
        o.wd_lo = 1e-6;
        o.wd_hi = 1e-2;
        hpo::HypergradLrWd<float> policy(optim::decay_groups(net->named_parameters(), a.lr, a.weight_decay), o);
        const double acc = train(a, policy, *net, train_set, val, test, gen);
        results.push_back(fmt::format("policy={} test_accuracy={:.4f}", decltype(policy)::policy_name, acc));
    }
    if (a.policies != "hypergrad") {
        Generator gen(a.seed);
        auto net = nn::small_net<float>(gen, 1, full.classes);
        hpo::FixedSchedule<float> policy(optim::decay_groups(net->named_parameters(), a.lr, a.weight_decay),
                                         [lr = a.lr](std::int64_t) { return lr; }, 0.9);
        const double acc = train(a, policy, *net, train_set, val, test, gen);
        results.push_back(fmt::format("policy={} test_accuracy={:.4f}", decltype(policy)::policy_name, acc));
    }
    for (const auto& r : results) fmt::print("{}\n", r);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "hpo_search: error: {}\n", e.what());
    return 1;
}
