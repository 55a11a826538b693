#pragma once
// Helpers shared by the example programs: the standard augmentation (random flip and +-2 pixel
// shift), accuracy of a batch of logits, and evaluation of a network on a dataset.
#include <cstdint>
#include <vector>

#include <diffautoml/diffautoml.hpp>

namespace dam_examples {

using namespace diffautoml;

/// Random horizontal flip and a random shift of up to 2 pixels (zero fill: the normalised
/// background is not zero, so the fill is the normalised black level).
inline void flip_and_shift(Tensor<float>& x, const PhiloxStream& s, float fill) {
    const std::int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    parallel_for(N, [&](std::int64_t n) {
        const auto r = s.block(static_cast<std::uint64_t>(n));
        const bool flip = r[0] & 1;
        const std::int64_t dy = static_cast<std::int64_t>(r[1] % 5) - 2, dx = static_cast<std::int64_t>(r[2] % 5) - 2;
        std::vector<float> tmp(static_cast<std::size_t>(H * W));
        for (std::int64_t c = 0; c < C; ++c) {
            float* p = x.data() + (n * C + c) * H * W;
            for (std::int64_t i = 0; i < H; ++i)
                for (std::int64_t j = 0; j < W; ++j) {
                    const std::int64_t si = i + dy, sj0 = j + dx;
                    const std::int64_t sj = flip ? W - 1 - sj0 : sj0;
                    tmp[static_cast<std::size_t>(i * W + j)] =
                        (si >= 0 && si < H && sj0 >= 0 && sj0 < W) ? p[si * W + sj] : fill;
                }
            std::copy(tmp.begin(), tmp.end(), p);
        }
    });
}

/// Number of rows of `logits` (N, K) whose argmax equals the label.
inline std::int64_t count_correct(const Tensor<float>& z, const Tensor<std::int32_t>& labels) {
    std::int64_t correct = 0;
    for (std::int64_t i = 0; i < z.dim(0); ++i) {
        std::int64_t best = 0;
        for (std::int64_t k = 1; k < z.dim(1); ++k)
            if (z[i * z.dim(1) + k] > z[i * z.dim(1) + best]) best = k;
        correct += best == labels[i];
    }
    return correct;
}

/// Accuracy of `net` on `d` in evaluation mode (the network is put back into training mode).
inline double evaluate(nn::Module<float>& net, const data::Dataset& d) {
    NoGradGuard no_grad;
    net.eval();
    data::BatchLoader loader(d, 1000, false, 0);
    std::int64_t correct = 0;
    while (loader.has_next()) {
        auto b = loader.next();
        correct += count_correct(net.forward(Var<float>(b.images)).value(), b.labels);
    }
    net.train();
    return static_cast<double>(correct) / static_cast<double>(d.size());
}

}  // namespace dam_examples
