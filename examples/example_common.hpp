#pragma once
// Helpers shared by the example programs: the standard augmentation (random flip and +-2 pixel
// shift) and evaluation of a network on a dataset (the epoch loop's figures: optim/epoch.hpp).
#include <cstdint>
#include <vector>

#include <diffautoml/diffautoml.hpp>

namespace dam_examples {

using namespace diffautoml;

/// The standard augmentation of a stored Fashion-MNIST batch, in place: random horizontal flip
/// and a shift of up to 2 pixels with black fill (da::StandardAugment; one stream of `gen`).
inline void standard_augment(Tensor<float>& x, Generator& gen) {
    static const da::StandardAugmentOptions options{.pixels = {data::fashion_mnist_mean, data::fashion_mnist_std}};
    da::StandardAugment<float> standard(options);
    da::DaContext ctx{&gen, 0, 1};
    x = standard.augment(x, ctx).value();
}

/// Accuracy of `net` on `d` in evaluation mode (the network is put back into training mode).
inline double evaluate(nn::Module<float>& net, const data::Dataset& d) {
    NoGradGuard no_grad;
    net.eval();
    data::BatchLoader loader(d, 1000, false, 0);
    std::int64_t correct = 0;
    while (loader.has_next()) {
        auto b = loader.next();
        correct += ops::count_correct(net.forward(Var<float>(b.images)).value(), b.labels);
    }
    net.train();
    return static_cast<double>(correct) / static_cast<double>(d.size());
}

}  // namespace dam_examples
