// The joint search in one file: your own augmentation policy, composed at compile time with the
// library's architecture search (DSNAS on the ShuffleNetV2 space) and hyperparameter search
// (hypergradient learning rate and weight decay). docs/index.md shows the CMakeLists that builds it.
//
//   minimal_joint_search [FASHION_MNIST_DIR] [TRAIN_IMAGES (0 = all)] [EPOCHS]
#include <diffautoml/diffautoml.hpp>

#include <cstdio>
#include <string>
using namespace diffautoml;

// Shifts every image sideways by a magnitude it adapts: wider while the shifted images are easy.
// Its options (options_type) make it: JointSearch builds it from Search::Options::da, with the
// run's pixel space put into the `pixels` member.
struct AdaptiveShiftOptions {
    da::PixelSpace pixels{};
    double magnitude = 0.2;
};

template <class T = float>
struct AdaptiveShift {
    using value_type = T;
    using options_type = AdaptiveShiftOptions;
    static constexpr std::string_view policy_name = "adaptive_shift";
    da::PixelSpace pixels{};
    double magnitude = 0.2;

    explicit AdaptiveShift(const AdaptiveShiftOptions& o = {}) : pixels(o.pixels), magnitude(o.magnitude) {}

    Var<T> augment(const Tensor<T>& x, da::DaContext& ctx) {
        const auto s = ctx.gen->next_stream();
        std::vector<da::OpDraw> draws;  // per image: the op and its random sign
        for (std::int64_t i = 0; i < x.dim(0); ++i) draws.push_back(da::random_draw(da::Op::translate_x, s, i));
        const std::vector<double> m(draws.size(), magnitude);
        auto y = da::augment_images<T>(da::to_pixels(x, pixels), draws, m, 1);
        da::from_pixels_(y, pixels);
        return Var<T>(y, /*requires_grad=*/false);
    }
    void update(const Tensor<T>& losses, da::DaContext&) {  // the per-image training losses
        double mean = 0;
        for (std::int64_t i = 0; i < losses.numel(); ++i) mean += losses[i] / static_cast<double>(losses.numel());
        magnitude = std::clamp(magnitude + (mean < 0.5 ? 0.002 : -0.002), 0.0, 0.5);
    }
    std::vector<da::PolicyEntry> summary(std::size_t) const { return {{{da::Op::translate_x}, 1.0, {magnitude}, {1.0}}}; }
    bool searching() const { return true; }
    void save_state(ByteWriter& w) const { w.put(magnitude); }  // checkpoints and --resume
    void load_state(ByteReader& r) { magnitude = r.get<double>(); }
};

int main(int argc, char** argv) try {
    const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    auto train = data::load_fashion_mnist(dir, true);
    const auto test = data::load_fashion_mnist(dir, false);
    if (argc > 2 && std::stoll(argv[2]) > 0) train = data::balanced_subset(train, std::stoll(argv[2]), 0);

    using Search = search::JointSearch<AdaptiveShift, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>;
    Search::Options o;  // {da, nas, hpo, run}: each policy's own options and the run's
    o.run.epochs = argc > 3 ? std::stoll(argv[3]) : 10;
    o.run.out_dir = "minimal_out";  // log.jsonl, model.bin, architecture.json, result.json, report.html
    o.run.pixels = {data::fashion_mnist_mean, data::fashion_mnist_std};
    o.da.magnitude = 0.1;   // AdaptiveShiftOptions
    o.nas.lr = 3e-2;        // nas::DSNASOptions: the architecture logits' rate
    o.nas.warmup_epochs = 0.25;
    Search js(train, test, o);
    const auto r = js.run();
    std::printf("test_accuracy=%.4f learned shift=%.3f hyperparameters=%s\n", r.test_accuracy,
                js.da_policy().magnitude, r.hyperparameters.dump().c_str());
} catch (const std::exception& e) {
    std::fprintf(stderr, "minimal_joint_search: %s\n", e.what());
    return 1;
}
