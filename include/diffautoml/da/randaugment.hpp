#pragma once
// RandAugment(N, M) (Cubuk et al. 2020): N uniformly chosen ops per image at one magnitude M.
#include <string_view>
#include <vector>

#include "../core/state.hpp"
#include "concept.hpp"

namespace diffautoml::da {

struct RandAugmentOptions {
    /// RandAugment's 14 ops (Cubuk et al. 2020): no FlipLR, Invert or Cutout.
    std::vector<Op> ops{Op::identity,  Op::auto_contrast, Op::equalize, Op::rotate,     Op::solarize,
                        Op::color,     Op::posterize,     Op::contrast, Op::brightness, Op::sharpness,
                        Op::shear_x,   Op::shear_y,       Op::translate_x, Op::translate_y};
    int n = 2;           ///< ops per image, drawn uniformly with replacement
    double m = 9.0;      ///< magnitude on AutoAugment's 0..10 scale (m / 10 of each op's range)
    /// Each image is first mirrored left-right with this probability (the base flip that
    /// RandAugment's paper keeps under its N ops on CIFAR; 0: none, every draw as without it).
    double flip_probability = 0.0;
    AugmentOptions augment{};
    PixelSpace pixels{};
};

inline void to_json(nlohmann::json& j, const RandAugmentOptions& o) {
    j = {{"ops", o.ops}, {"n", o.n}, {"m", o.m}, {"flip_probability", o.flip_probability},
         {"augment", o.augment}, {"pixels", o.pixels}};
}

/// RandAugment(N, M): N uniformly chosen ops per image, each at magnitude M / 10, random sign.
template <class T = float>
class RandAugment {
public:
    using value_type = T;
    using options_type = RandAugmentOptions;
    static constexpr std::string_view policy_name = "randaugment";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// nothing is learned, and the draws are keyed by the global image index.
    static constexpr bool data_parallel = true;

    explicit RandAugment(RandAugmentOptions o = {}) : opt_(std::move(o)) {
        detail::check_ops(opt_.ops, "RandAugment");
        DAM_CHECK(opt_.n >= 1 && opt_.n <= 16, value_error, "RandAugment: N = {} ops per image must be in [1, 16]", opt_.n);
        DAM_CHECK(opt_.m >= 0 && opt_.m <= 10, value_error, "RandAugment: M = {} must be in [0, 10]", opt_.m);
        DAM_CHECK(opt_.flip_probability >= 0 && opt_.flip_probability <= 1, value_error,
                  "RandAugment: flip_probability must be a probability in [0, 1] (0: no base flip), got {}",
                  opt_.flip_probability);
        DAM_CHECK(opt_.pixels.std > 0, value_error, "RandAugment: pixel std must be > 0, got {}", opt_.pixels.std);
        detail::check_options(opt_.augment, "RandAugment");
    }
    bool searching() const { return false; }

    /// The augmented batch on the images' device (the draws are made on the host, so every
    /// device gets the same ops).
    template <Device D = cpu>
    Var<T, D> augment(const Tensor<T, D>& x, DaContext& ctx) {
        detail::check_context(ctx, "RandAugment::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "RandAugment::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), n = opt_.n, K = static_cast<std::int64_t>(opt_.ops.size());
        const auto [g0, G] = detail::image_range(ctx, N, "RandAugment::augment");  // global index, global batch
        const auto choice = ctx.gen->next_stream(), draws_s = ctx.gen->next_stream();
        // Op j of image i (global index g) is draws_s's draw n g + j whether or not the base flip
        // is on; with it, each image's ops are preceded by flip_lr or identity (choice's uniform
        // G n + g, past the words the op choices read).
        const bool flips = opt_.flip_probability > 0;
        const std::int64_t S = flips ? n + 1 : n, first = flips ? 1 : 0;
        std::vector<OpDraw> draws(static_cast<std::size_t>(N * S));
        std::vector<double> m(draws.size(), opt_.m / 10.0);
        last_.assign(static_cast<std::size_t>(N * n), OpDraw{});
        for (std::int64_t i = 0; i < N; ++i) {
            for (std::int64_t j = 0; j < n; ++j) {
                const auto k = static_cast<std::uint64_t>((g0 + i) * n + j);
                const auto at = static_cast<std::size_t>(i * S + first + j);
                draws[at] = random_draw(opt_.ops[choice.word(k) % static_cast<std::uint32_t>(K)], draws_s, k);
                last_[static_cast<std::size_t>(i * n + j)] = draws[at];
            }
            if (flips) {
                const bool flip = choice.uniform_double(static_cast<std::uint64_t>(G * n + g0 + i)) < opt_.flip_probability;
                draws[static_cast<std::size_t>(i * S)] = OpDraw{flip ? Op::flip_lr : Op::identity};
                m[static_cast<std::size_t>(i * S)] = 0.0;
            }
        }
        Tensor<T, D> y = augment_images<T>(to_pixels(x, opt_.pixels), draws, m, S, opt_.augment);
        from_pixels_(y, opt_.pixels);
        return Var<T, D>(y, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    /// The ops of the last batch, N per image (the base flip not included).
    const std::vector<OpDraw>& last_draws() const { return last_; }

    std::vector<PolicyEntry> summary(std::size_t top) const {
        std::vector<PolicyEntry> out;
        const double p = 1.0 / static_cast<double>(opt_.ops.size());
        for (std::size_t k = 0; k < std::min(top, opt_.ops.size()); ++k)
            out.push_back({{opt_.ops[k]}, p, {opt_.m / 10.0}, {1.0}});
        return out;
    }

private:
    RandAugmentOptions opt_;
    std::vector<OpDraw> last_;
};

static_assert(DaPolicy<RandAugment<>>);

}  // namespace diffautoml::da
