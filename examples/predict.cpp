// predict: classifies the images of an IDX file with a model written by diffautoml-search (or
// nas_search) and prints `accuracy=0.XXXX`. The model file carries its architecture, weights and
// the pixel normalisation it was trained with, so one call loads everything.
#include <diffautoml/diffautoml.hpp>

#include "cli.hpp"

using namespace diffautoml;

int main(int argc, char** argv) try {
    std::string model = "diffautoml_out/model.bin";
    std::string images = std::string(DAM_FASHION_DIR) + "/t10k-images-idx3-ubyte.gz";
    std::string labels = std::string(DAM_FASHION_DIR) + "/t10k-labels-idx1-ubyte.gz";
    int threads = 2;
    dam_cli::Cli cli("predict",
                     "predict: classifies the images of an IDX file with a model written by diffautoml-search (or "
                     "nas_search) and prints accuracy=0.XXXX; defaults to the Fashion-MNIST test set.");
    cli.group("options")
        .option("--model", model, "the model file")
        .option("--test-images,--images", images, "IDX images to classify")
        .option("--test-labels,--labels", labels, "their IDX labels")
        .option("--threads", threads, "CPU threads");
    cli.parse(argc, argv);
    set_num_threads(threads);
    auto loaded = nas::load_derived<float>(model);
    double mean = data::fashion_mnist_mean, sd = data::fashion_mnist_std;
    const auto& extra = loaded.description.contains("extra") ? loaded.description["extra"] : nlohmann::json();
    if (extra.contains("pixels")) {
        mean = extra["pixels"]["mean"].get<double>();
        sd = extra["pixels"]["std"].get<double>();
    }
    data::IdxDatasetOptions o;
    o.split = data::Split::test;
    data::Dataset d = data::load_idx_dataset(images, labels, o);
    data::normalize(d, mean, sd);
    NoGradGuard no_grad;
    loaded.net->eval();
    data::BatchLoader loader(d, 1000, false, 0);
    std::int64_t correct = 0;
    while (loader.has_next()) {
        const auto b = loader.next();
        const auto z = loaded.net->forward(Var<float>(b.images)).value();
        correct += ops::count_correct(z, b.labels);
    }
    fmt::print("model={} images={} architecture={}\n", model, d.size(),
               loaded.description.contains("layers") ? loaded.description["layers"].size() : 0);
    fmt::print("accuracy={:.4f}\n", static_cast<double>(correct) / static_cast<double>(d.size()));
    return 0;
} catch (const std::exception& e) {
    fmt::print(stderr, "predict: error: {}\n", e.what());
    return 1;
}
