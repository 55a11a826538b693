// Trains the reference network `small` (benchmarks/torch_ref.py --net small, same layers) on
// Fashion-MNIST: SGD with Nesterov momentum, warm-up + cosine learning rate, weight decay on
// weights only, random flips and +-2 pixel shifts. Prints a progress bar, one summary per epoch,
// and as its last line `test_accuracy=0.XXXX`.
#include <cstdlib>
#include <string>

#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

#include "example_common.hpp"

using namespace diffautoml;
using dam_examples::evaluate;

namespace {

struct Args {
    int epochs = 10, batch = 128, threads = 2;
    double lr = 0.1, weight_decay = 5e-4, label_smoothing = 0.0;
    std::uint64_t seed = 0;
    bool augment = true;
    std::string data = DAM_FASHION_DIR, save;
};

Args parse(int argc, char** argv) {
    Args a;
    std::string da = "standard";
    dam_cli::Cli cli("train_fixed", "train_fixed: trains the reference network `small` on Fashion-MNIST with a fixed recipe.");
    cli.group("data").option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files");
    cli.group("budget").option("--epochs", a.epochs, "number of epochs").option("--batch", a.batch, "training batch size");
    cli.group("training")
        .option("--lr", a.lr, "learning rate (cosine schedule)")
        .option("--wd", a.weight_decay, "weight decay")
        .option("--label-smoothing,--smoothing", a.label_smoothing, "training loss (1 - E) CE + E uniform")
        .one_of("--da", da, {"standard", "none"}, "augmentation: random flip and +-2 pixel shift, or none")
        .flag("--no-augment", a.augment, "the same as --da none", false);
    cli.group("run")
        .option("--seed", a.seed, "random seed")
        .option("--threads", a.threads, "CPU threads")
        .option("--save", a.save, "write the trained model to this file (model.bin format)");
    cli.parse(argc, argv);
    if (da == "none") a.augment = false;
    DAM_CHECK(a.epochs >= 1 && a.batch >= 2 && a.threads >= 1 && a.lr > 0, value_error,
              "epochs, threads must be >= 1, batch >= 2 and lr > 0");
    return a;
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset train = data::load_fashion_mnist(a.data, true);
    const data::Dataset test = data::load_fashion_mnist(a.data, false);
    fmt::print("train_fixed: {} train / {} test images, {} epochs, batch {}, lr {}, wd {}, augment {}, seed {}, {} threads\n",
               train.size(), test.size(), a.epochs, a.batch, a.lr, a.weight_decay, a.augment, a.seed, a.threads);

    Generator gen(a.seed);
    auto net = nn::small_net<float>(gen, 1, train.classes);
    optim::SGD<float> opt(optim::decay_groups(net->named_parameters(), a.lr, a.weight_decay), {0.9, true, 0.0});
    data::BatchLoader loader(train, a.batch, true, a.seed + 1, true);
    const std::int64_t steps_per_epoch = loader.batches_per_epoch();
    const optim::WarmupCosine schedule{a.lr, a.epochs * steps_per_epoch, steps_per_epoch / 2, 0.0, 0.1};

    std::int64_t step = 0;
    double test_acc = 0;
    for (int epoch = 0; epoch < a.epochs; ++epoch) {
        loader.start_epoch(epoch);
        optim::EpochMeter meter(steps_per_epoch, fmt::format("epoch {:2}/{}", epoch + 1, a.epochs));
        for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
            auto b = loader.next();
            if (a.augment) dam_examples::standard_augment(b.images, gen);
            opt.set_lr(schedule(step));
            opt.zero_grad();
            auto logits = net->forward(Var<float>(b.images));
            auto loss = ops::cross_entropy(logits, b.labels, {a.label_smoothing, ops::Reduction::mean});
            loss.backward();
            opt.step();
            const float l = loss.value().item();
            optim::check_finite_loss(l, step, "train_fixed", "lower the learning rate (--lr) and try again");
            meter.add(l, logits.value(), b.labels);
        }
        meter.finish();
        test_acc = evaluate(*net, test);
        fmt::print("epoch {} train_loss={:.4f} train_accuracy={:.4f} test_accuracy={:.4f} lr={:.5f} seconds={:.1f}\n",
                   epoch + 1, meter.totals().loss(), meter.totals().accuracy(), test_acc, schedule(step), meter.seconds());
        std::fflush(stdout);
    }
    if (!a.save.empty()) {
        nn::save_model(*net, a.save);
        fmt::print("saved the model to {}\n", a.save);
    }
    fmt::print("test_accuracy={:.4f}\n", test_acc);
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "train_fixed: error: {}\n", e.what());
    return 1;
}
