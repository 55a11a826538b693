#pragma once
// The tiny synthetic task of the joint-search tests (tests/test_search.cpp on the CPU,
// tests/cuda/test_search_cuda.cpp on a GPU): 3 classes of 12x12 bars, a tiny ShuffleNet space and
// options for a run of a few seconds.
#include <cmath>
#include <string>
#include <type_traits>

#include <diffautoml/diffautoml.hpp>

namespace dam_test {

using namespace diffautoml;

/// 3 classes of 12x12 images: a bright bar (horizontal, vertical, diagonal) at a random offset on
/// noise, normalised like a dataset would be.
inline data::Dataset bars(std::int64_t n, std::uint64_t seed, data::Split split) {
    data::Dataset d;
    d.images = Tensor<float>(Shape{n, 1, 12, 12});
    d.classes = 3;
    d.split = split;
    const PhiloxStream s{seed, 0};
    for (std::int64_t i = 0; i < n; ++i) {
        const auto r = s.block(static_cast<std::uint64_t>(i));
        const int label = static_cast<int>(r[0] % 3), off = static_cast<int>(r[1] % 6) + 3;
        d.labels.push_back(label);
        for (int y = 0; y < 12; ++y)
            for (int x = 0; x < 12; ++x) {
                const bool on = label == 0 ? (y == off || y == off + 1) : label == 1 ? (x == off || x == off + 1) : std::abs(x - y) <= 1;
                const float noise = 0.2f * s.uniform(static_cast<std::uint64_t>(n) * 4 + static_cast<std::uint64_t>(i * 144 + y * 12 + x));
                d.images[i * 144 + y * 12 + x] = ((on ? 0.8f : 0.0f) + noise - 0.3f) / 0.35f;
            }
    }
    return d;
}

inline nas::ShuffleSpace::Options tiny_space() {
    nas::ShuffleSpace::Options o = nas::ShuffleSpace::default_options();
    o.stem = 8;
    o.stages = {{8, 1, 1}, {16, 1, 2}};
    o.head = 16;
    return o;
}

/// The joint search most tests run: the library's default policies on the CPU.
using DefaultJoint = search::JointSearch<da::PairPolicyDA, nas::DSNAS<nas::ShuffleSpace>, hpo::HypergradLrWd>;

/// Options of the joint search S for a run of a few seconds. The policies' settings that a policy
/// has are set to the main job's (the pair policy's magnitude, clamp and fade, DSNAS's rate and
/// warm-up), whatever S's policies are.
template <class S = DefaultJoint>
typename S::Options tiny_options(const std::string& out) {
    typename S::Options o;
    o.run.epochs = 2;
    o.run.batch = 16;
    o.run.validation = 64;
    o.run.validation_batch = 32;
    o.run.recalibration_batches = 4;
    o.run.lr = 0.05;
    o.run.out_dir = out;
    o.run.progress = false;
    o.run.pixels = {0.3, 0.35};
    o.run.search_fraction = 0.6;
    if constexpr (std::is_same_v<decltype(o.da), da::PairPolicyOptions>) {
        o.da.max_magnitude = 0.5;
        o.da.max_ratio = 10.0;
        o.da.fade_start = 0.5;
    }
    if constexpr (requires { o.da.augment.fill; }) o.da.augment.fill = 0.0;
    if constexpr (std::is_same_v<decltype(o.nas), nas::DSNASOptions>) {
        o.nas.lr = 3e-2;
        o.nas.warmup_epochs = 0.25;
    }
    if constexpr (std::is_same_v<decltype(o.hpo), hpo::HypergradOptions>) {
        // Room for the tiny runs' hypergradient to move both ways: the main job's bounds (lr >= 0.1,
        // wd <= 5e-4) would pin them at their start, and a step every 4 so that a tiny run takes some.
        o.hpo.lr_lo = 1e-3;
        o.hpo.wd_hi = 2e-3;
        o.hpo.every = 4;
    }
    return o;
}

}  // namespace dam_test
