#pragma once
// The fixed augmentations: StandardAugment (pad, random crop and flip) and NoAugment.
#include <string_view>

#include "../core/state.hpp"
#include "concept.hpp"

namespace diffautoml::da {

struct StandardAugmentOptions {
    std::int64_t pad = 2;   ///< zero-pad this many pixels per side, then crop at a random offset
    bool flip = true;       ///< random horizontal flip with probability 1/2
    double fill = 0.0;      ///< pixel value of the padding (black)
    PixelSpace pixels{};
};

inline void to_json(nlohmann::json& j, const StandardAugmentOptions& o) {
    j = {{"pad", o.pad}, {"flip", o.flip}, {"fill", o.fill}, {"pixels", o.pixels}};
}

/// The standard training augmentation: random crop of the padded image (a shift by up to `pad`
/// pixels each way) and a random horizontal flip. It moves stored values without arithmetic.
template <class T = float>
class StandardAugment {
public:
    using value_type = T;
    using options_type = StandardAugmentOptions;
    static constexpr std::string_view policy_name = "standard";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// nothing is learned, and the draws are keyed by the global image index.
    static constexpr bool data_parallel = true;

    explicit StandardAugment(StandardAugmentOptions o = {}) : opt_(o) {
        DAM_CHECK(opt_.pad >= 0, value_error, "StandardAugment: pad must be >= 0, got {}", opt_.pad);
        DAM_CHECK(opt_.pixels.std > 0 && std::isfinite(opt_.fill), value_error,
                  "StandardAugment: pixel std {} must be > 0 and the fill {} finite", opt_.pixels.std, opt_.fill);
    }
    bool searching() const { return false; }

    /// Image n (global index g) uses block g of one stream: word 0 bit 0 flips, words 1 and 2
    /// give the shifts.
    Var<T> augment(const Tensor<T>& x, DaContext& ctx) {
        detail::check_context(ctx, "StandardAugment::augment");
        DAM_CHECK(x.shape().rank() == 4 && x.dim(0) > 0, shape_error,
                  "StandardAugment::augment: images must be (N, C, H, W) with N > 0, got {}", x.shape());
        const std::int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
        const std::int64_t g0 = detail::image_range(ctx, N, "StandardAugment::augment").first;
        const auto s = ctx.gen->next_stream();
        const auto span = static_cast<std::uint32_t>(2 * opt_.pad + 1);
        const T fill = static_cast<T>((opt_.fill - opt_.pixels.mean) / opt_.pixels.std);
        Tensor<T> y(x.shape());
        parallel_for(N, [&](std::int64_t n) {
            const auto r = s.block(static_cast<std::uint64_t>(g0 + n));
            const bool flip = opt_.flip && (r[0] & 1u);
            const std::int64_t dy = static_cast<std::int64_t>(r[1] % span) - opt_.pad;
            const std::int64_t dx = static_cast<std::int64_t>(r[2] % span) - opt_.pad;
            for (std::int64_t c = 0; c < C; ++c) {
                const T* p = x.data() + (n * C + c) * H * W;
                T* q = y.data() + (n * C + c) * H * W;
                for (std::int64_t i = 0; i < H; ++i)
                    for (std::int64_t j = 0; j < W; ++j) {
                        const std::int64_t si = i + dy, sj0 = j + dx, sj = flip ? W - 1 - sj0 : sj0;
                        q[i * W + j] = (si >= 0 && si < H && sj0 >= 0 && sj0 < W) ? p[si * W + sj] : fill;
                    }
            }
        });
        return Var<T>(y, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    std::vector<PolicyEntry> summary(std::size_t) const { return {}; }

private:
    StandardAugmentOptions opt_;
};

static_assert(DaPolicy<StandardAugment<>>);

}  // namespace diffautoml::da
