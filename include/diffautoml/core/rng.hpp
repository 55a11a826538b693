#pragma once
// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
// Counter-based: the value at (key, counter) depends on nothing else, so the numbers a tensor
// receives do not depend on the thread count, and the GPU reproduces them exactly.
#include <array>
#include <cmath>
#include <cstdint>

#include "error.hpp"

namespace diffautoml {

struct Philox4x32 {
    using Counter = std::array<std::uint32_t, 4>;
    using Key = std::array<std::uint32_t, 2>;

    static constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    static constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;

    DAM_HOST_DEVICE static Counter round(Counter c, Key k) {
        const std::uint64_t p0 = static_cast<std::uint64_t>(M0) * c[0];
        const std::uint64_t p1 = static_cast<std::uint64_t>(M1) * c[2];
        const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
        const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
        return {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    }

    /// Ten rounds with the Weyl key schedule.
    DAM_HOST_DEVICE static Counter generate(Counter c, Key k) {
        for (int r = 0; r < 10; ++r) {
            if (r) {
                k[0] += W0;
                k[1] += W1;
            }
            c = round(c, k);
        }
        return c;
    }
};

/// 24 random bits to a float in [0, 1).
DAM_HOST_DEVICE inline float uint_to_unit_float(std::uint32_t x) {
    return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}
/// 53 random bits to a double in [0, 1).
DAM_HOST_DEVICE inline double uints_to_unit_double(std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t v = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
    return static_cast<double>(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// A stream of random numbers: element i of stream s under seed k is Philox(counter = (i/4, s), k).
/// Any element can be computed independently, which is what makes the parallel fill deterministic.
struct PhiloxStream {
    std::uint64_t seed = 0;
    std::uint64_t stream = 0;

    DAM_HOST_DEVICE Philox4x32::Counter block(std::uint64_t b) const {
        return Philox4x32::generate(
            {static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32),
             static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
            {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
    }
    /// The i-th 32-bit word of the stream.
    DAM_HOST_DEVICE std::uint32_t word(std::uint64_t i) const { return block(i >> 2)[i & 3]; }
    /// The i-th uniform float in [0, 1).
    DAM_HOST_DEVICE float uniform(std::uint64_t i) const { return uint_to_unit_float(word(i)); }
    /// The i-th uniform double in [0, 1) (uses words 2i and 2i+1).
    DAM_HOST_DEVICE double uniform_double(std::uint64_t i) const {
        const auto c = block(i >> 1);
        const int o = static_cast<int>(i & 1) * 2;
        return uints_to_unit_double(c[o], c[o + 1]);
    }
    /// The i-th standard normal (Box-Muller on the i-th pair of uniforms).
    DAM_HOST_DEVICE double normal(std::uint64_t i) const {
        const auto c = block(i >> 1);
        const int o = static_cast<int>(i & 1) * 2;
        // u1 in (0, 1] so that log(u1) is finite.
        const double u1 = 1.0 - uints_to_unit_double(c[o], c[o + 1] ^ 0x9E3779B9u);
        const double u2 = uints_to_unit_double(c[o + 1], c[o]);
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

/// A seeded generator that hands out fresh, non-overlapping streams: each random operation takes
/// one stream, so a run is reproducible from (seed, number of operations so far).
class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
    PhiloxStream next_stream() { return {seed_, stream_++}; }
    std::uint64_t seed() const { return seed_; }
    /// How many streams were taken; saving (seed, offset) lets a run resume its random sequence.
    std::uint64_t offset() const { return stream_; }
    void set_offset(std::uint64_t offset) { stream_ = offset; }
    /// A convenience for scalar draws on the host: one uniform double in [0, 1).
    double uniform() { return next_stream().uniform_double(0); }

private:
    std::uint64_t seed_;
    std::uint64_t stream_ = 0;
};

}  // namespace diffautoml
