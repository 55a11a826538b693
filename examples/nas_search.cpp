// Architecture search on Fashion-MNIST (or any IDX dataset) without retraining: DSNAS (default),
// DARTS, GDAS or a fixed architecture on the ShuffleNetV2 (default) or MobileNetV2 space, with
// standard training otherwise (SGD + Nesterov, warm-up + cosine, flips and 2-pixel shifts).
// Prints the per-layer architecture probabilities after each epoch, the derived architecture, and
// the test accuracy of the derived network with the weights trained during the search (after
// batch-norm recalibration on the derived path). Last line: `test_accuracy=0.XXXX`.
#include <cstdlib>
#include <string>

#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

#include "example_common.hpp"

using namespace diffautoml;

namespace {

struct Args {
    int epochs = 15, batch = 128, threads = 2;
    bool no_test = false;
    double lr = 0.1, weight_decay = 5e-4, alpha_lr = -1, warmup_epochs = 0.25, fix_threshold = 0.3, flops_penalty = 0.0;
    std::int64_t val = 5000;
    std::uint64_t seed = 0;
    std::string policy = "dsnas", space = "shuffle", data = DAM_FASHION_DIR, save = "nas_model.bin", arch, device = "cpu";
};

Args parse(int argc, char** argv) {
    Args a;
    dam_cli::Cli cli("nas_search", "nas_search: architecture search on Fashion-MNIST; the searched weights are the final model.");
    cli.group("data")
        .option("--data", a.data, "folder with Fashion-MNIST's four .gz IDX files")
        .option("--validation,--val", a.val, "training images held out for DARTS/GDAS's alpha steps and for reporting");
    cli.group("budget").option("--epochs", a.epochs, "number of epochs").option("--batch", a.batch, "training batch size");
    cli.group("NAS")
        .one_of("--nas,--policy", a.policy, {"dsnas", "darts", "gdas", "snas", "fixed"}, "NAS policy")
        .one_of("--space", a.space, {"shuffle", "mobilenetv2", "darts", "darts_paper"}, "search space")
        .custom("--alpha-lr", [&a](const std::string& v) { a.alpha_lr = dam_cli::read<double>("--alpha-lr", v); },
                "learning rate of the architecture logits", "DSNAS 0.1, else the policy's default", "X")
        .option("--fix-threshold", a.fix_threshold, "DSNAS: a layer is fixed when its top probability leads by this much")
        .option("--warmup-epochs", a.warmup_epochs, "DSNAS: epochs of uniform sampling before alpha moves")
        .option("--flops-penalty", a.flops_penalty, "DSNAS: weight of the expected-FLOPs penalty")
        .option("--arch", a.arch, "--nas fixed: the choice of each searchable layer, i,j,... (default: 0 everywhere)");
    cli.group("training").option("--lr", a.lr, "learning rate (cosine schedule)").option("--wd", a.weight_decay, "weight decay");
    cli.group("run")
        .option("--seed", a.seed, "random seed")
        .option("--threads", a.threads, "CPU threads")
        .one_of("--device", a.device, {"cpu", "cuda"}, "where to search (cuda: refused, see the message)")
        .option("--save", a.save, "write the derived network with its trained weights to this file")
        .flag("--no-test", a.no_test,
              "a run that chooses a setting: the test set is not read; the last line is the derived network's "
              "validation accuracy after batch-norm recalibration");
    cli.parse(argc, argv);
    DAM_CHECK(a.epochs >= 1 && a.batch >= 2 && a.threads >= 1 && a.lr > 0 && a.val >= 0, value_error,
              "epochs and threads must be >= 1, batch >= 2, lr > 0 and --validation >= 0");
    DAM_CHECK(a.device == "cpu", value_error,
              "nas_search --device cuda: this program searches on the CPU only. DSNAS, DARTS, GDAS and FixedArch take "
              "a device from code (nas::GDAS<Space, float, cuda>, ...; docs/cuda.md), but only DSNAS has run on a GPU, "
              "through diffautoml-search --device cuda");
    DAM_CHECK((a.policy != "darts" && a.policy != "gdas") || a.val > 0, value_error,
              "{} steps alpha on validation batches and needs a validation split (--validation > 0)", a.policy);
    return a;
}

std::vector<std::int64_t> parse_arch(const std::string& s, std::size_t n) {
    auto arch = dam_cli::read_list<std::int64_t>("--arch", s);
    if (arch.empty()) arch.assign(n, 0);
    return arch;
}

void print_probabilities(const nas::Supernet<float>& net, const std::vector<std::vector<double>>& p,
                         const std::vector<std::int64_t>& fixed) {
    for (std::size_t d = 0; d < p.size(); ++d) {
        const auto& dec = net.decisions()[d];
        std::string row;
        for (std::size_t k = 0; k < p[d].size(); ++k) row += fmt::format(" {}={:.3f}", dec.choices[k], p[d][k]);
        const bool is_fixed = d < fixed.size() && fixed[d] >= 0;
        fmt::print("  {:<14}{}{}\n", dec.name, row, is_fixed ? "  [fixed]" : "");
    }
}

template <class Space, class Policy>
int run(const Args& a, const data::Dataset& train, const data::Dataset& val, const data::Dataset& test,
        const std::shared_ptr<nas::Supernet<float>>& net, Policy& policy, Generator& gen) {
    optim::SGD<float> opt(optim::decay_groups(net->named_parameters(), a.lr, a.weight_decay), {0.9, true, 0.0});
    data::BatchLoader loader(train, a.batch, true, a.seed + 1, true);
    std::unique_ptr<data::BatchLoader> val_loader;
    if (val.size() > 0) val_loader = std::make_unique<data::BatchLoader>(val, a.batch, true, a.seed + 2, true);
    std::int64_t val_epoch = 0;
    const std::int64_t steps_per_epoch = loader.batches_per_epoch();
    const optim::WarmupCosine schedule{a.lr, a.epochs * steps_per_epoch, steps_per_epoch / 2, 0.0, 0.1};
    auto weights = net->parameters();

    data::Batch batch;
    nas::NasContext<float> ctx;
    ctx.gen = &gen;
    ctx.total_steps = a.epochs * steps_per_epoch;
    ctx.weights = weights;
    ctx.weight_update = [&](const std::vector<Tensor<float>>& g) { return opt.update_for(weights, g); };
    ctx.train_loss = [&] { return ops::cross_entropy(net->forward(Var<float>(batch.images)), batch.labels); };
    ctx.val_loss = [&] {
        if (!val_loader->has_next()) val_loader->start_epoch(val_epoch++);
        auto vb = val_loader->next();
        return ops::cross_entropy(net->forward(Var<float>(vb.images)), vb.labels);
    };
    if (val_loader) val_loader->start_epoch(val_epoch++);

    std::int64_t step = 0;
    for (int epoch = 0; epoch < a.epochs; ++epoch) {
        loader.start_epoch(epoch);
        optim::EpochMeter meter(steps_per_epoch, fmt::format("epoch {:2}/{}", epoch + 1, a.epochs));
        for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
            batch = loader.next();
            dam_examples::standard_augment(batch.images, gen);
            ctx.step = step;
            ctx.weight_lr = schedule(step);
            opt.set_lr(ctx.weight_lr);
            policy.prepare(ctx);
            opt.zero_grad();
            auto logits = net->forward(Var<float>(batch.images));
            auto loss = ops::cross_entropy(logits, batch.labels);
            loss.backward();
            const float l = loss.value().item();
            optim::check_finite_loss(l, step, "nas_search",
                                     "lower the learning rate (--lr) or the architecture learning rate (--alpha-lr) and "
                                     "try again");
            policy.update(ctx);
            opt.step();
            meter.add(l, logits.value(), batch.labels);
        }
        meter.finish();
        const auto arch = policy.derived();
        std::string val_text;
        if (val.size() > 0) {
            net->set_architecture(arch);
            val_text = fmt::format(" val_accuracy(derived)={:.4f}", dam_examples::evaluate(*net, val));
        }
        fmt::print("epoch {} train_loss={:.4f} train_accuracy={:.4f}{} lr={:.5f} seconds={:.1f} macs={:.2f}M\n", epoch + 1,
                   meter.totals().loss(), meter.totals().accuracy(), val_text, schedule(step), meter.seconds(),
                   net->path_macs(arch) / 1e6);
        std::vector<std::int64_t> fixed;
        if constexpr (requires { policy.fixed(); }) fixed = policy.fixed();
        print_probabilities(*net, policy.probabilities(), fixed);
        std::fflush(stdout);
    }

    const auto arch = policy.derived();
    fmt::print("derived architecture: {} ({:.2f}M MACs per image)\n", fmt::join(net->choice_names(arch), ", "),
               net->path_macs(arch) / 1e6);
    auto derived = nas::derive<Space>(*net, arch);
    // Batch-norm recalibration on the derived path: 40 un-augmented training batches of 256.
    data::BatchLoader calib(train, 256, true, a.seed + 3, true);
    calib.start_epoch(0);
    nn::recalibrate_batch_norm(*derived, 40, [&] { return calib.next().images; });
    if (val.size() > 0) fmt::print("final val_accuracy(derived)={:.4f}\n", dam_examples::evaluate(*derived, val));
    nas::save_derived(a.save, *derived, {{"policy", a.policy}, {"epochs", a.epochs}, {"seed", a.seed}});
    fmt::print("saved the derived network (architecture + weights) to {}\n", a.save);
    if (test.size() > 0) fmt::print("test_accuracy={:.4f}\n", dam_examples::evaluate(*derived, test));
    return 0;
}

template <class Space>
int run_space(const Args& a, const data::Dataset& train, const data::Dataset& val, const data::Dataset& test) {
    Generator gen(a.seed);
    auto opts = Space::default_options();
    opts.classes = train.classes;
    std::shared_ptr<nas::Supernet<float>> net = Space::template build<float>(opts, gen);
    fmt::print("nas_search: space {} ({} decisions, {} supernet parameters), policy {}, {} epochs, batch {}, lr {}, wd {}, "
               "seed {}, {} threads, {} train / {} val / {} test images\n",
               Space::name, net->num_decisions(), net->parameter_count(), a.policy, a.epochs, a.batch, a.lr,
               a.weight_decay, a.seed, a.threads, train.size(), val.size(), test.size());
    if (a.policy == "dsnas") {
        nas::DSNASOptions o;
        // A faster alpha than the library default (3e-3): weight sharing over 4^8 random paths
        // trains far slower than one path (40% vs 84% training accuracy after 300 steps here), so
        // fixing the layers early leaves most of the budget to train the chosen path. 1e-1 was
        // chosen on held-out validation accuracy over 1e-2, 3e-2 and 3e-1 (docs/results.md,
        // runs/nas_alpha_lr/).
        o.lr = a.alpha_lr > 0 ? a.alpha_lr : 1e-1;
        o.warmup_steps = static_cast<std::int64_t>(a.warmup_epochs * static_cast<double>(train.size() / a.batch));
        o.fix_threshold = a.fix_threshold;
        o.flops_penalty = a.flops_penalty;
        nas::DSNAS<Space> p(*net, o);
        return run<Space>(a, train, val, test, net, p, gen);
    }
    if (a.policy == "darts") {
        nas::DARTSOptions o;
        if (a.alpha_lr > 0) o.lr = a.alpha_lr;
        nas::DARTS<Space> p(*net, o);
        return run<Space>(a, train, val, test, net, p, gen);
    }
    if (a.policy == "gdas") {
        nas::GDASOptions o;
        if (a.alpha_lr > 0) o.lr = a.alpha_lr;
        nas::GDAS<Space> p(*net, o);
        return run<Space>(a, train, val, test, net, p, gen);
    }
    if (a.policy == "snas") {
        nas::SNASOptions o;
        if (a.alpha_lr > 0) o.lr = a.alpha_lr;
        nas::SNAS<Space> p(*net, o);
        return run<Space>(a, train, val, test, net, p, gen);
    }
    nas::FixedArch<Space> p(*net, parse_arch(a.arch, net->num_decisions()));
    return run<Space>(a, train, val, test, net, p, gen);
}

}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    const data::Dataset full = data::load_fashion_mnist(a.data, true);
    // A run that chooses a setting never reads the test set.
    const data::Dataset test = a.no_test ? data::Dataset{} : data::load_fashion_mnist(a.data, false);
    DAM_CHECK(!a.no_test || a.val > 0, value_error, "nas_search: --no-test reports the validation accuracy and needs --val > 0");
    data::Dataset train = full, val;
    if (a.val > 0) std::tie(train, val) = data::split_train_val(full, a.val, a.seed);
    if (a.space == "darts") return run_space<nas::DartsSpace>(a, train, val, test);
    if (a.space == "darts_paper") return run_space<nas::DartsPaperSpace>(a, train, val, test);
    return a.space == "shuffle" ? run_space<nas::ShuffleSpace>(a, train, val, test)
                                : run_space<nas::MobileNetV2Space>(a, train, val, test);
} catch (const std::exception& e) {
    fmt::print(stderr, "nas_search: error: {}\n", e.what());
    return 1;
}
