#pragma once
// CPU kernels that move blocks along one axis: concat/narrow (x viewed as (outer, n, inner)),
// channel permutation (the channel shuffle of ShuffleNet) and the two fused into ShuffleNetV2's merge.
#include <algorithm>
#include <cstdint>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"

namespace diffautoml::backend_cpu {

/// dst(outer, dst_n, inner)[:, offset:offset+n, :] = src(outer, n, inner)   (add = true: +=)
template <class T>
void copy_axis_block(cpu, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner,
                     std::int64_t dst_n, std::int64_t offset, bool add) {
    parallel_for(outer, [&](std::int64_t o) {
        const T* s = src + o * n * inner;
        T* d = dst + (o * dst_n + offset) * inner;
        if (add) {
            for (std::int64_t i = 0; i < n * inner; ++i) d[i] += s[i];
        } else {
            std::copy(s, s + n * inner, d);
        }
    }, 4);
}
/// dst(outer, n, inner) = src(outer, src_n, inner)[:, offset:offset+n, :]
template <class T>
void narrow_axis(cpu, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner,
                 std::int64_t src_n, std::int64_t offset) {
    parallel_for(outer, [&](std::int64_t o) {
        const T* s = src + (o * src_n + offset) * inner;
        std::copy(s, s + n * inner, dst + o * n * inner);
    }, 4);
}
/// y[:, k] = x[:, perm[k]] over (N, C, inner).
template <class T>
void permute_channels(cpu, const T* x, T* y, const std::int64_t* perm, std::int64_t N, std::int64_t C,
                      std::int64_t inner, bool inverse) {
    parallel_for(N * C, [&](std::int64_t p) {
        const std::int64_t n = p / C, k = p % C;
        const std::int64_t src = inverse ? k : perm[k], dst = inverse ? perm[k] : k;
        const T* s = x + (n * C + src) * inner;
        std::copy(s, s + inner, y + (n * C + dst) * inner);
    }, 4);
}

/// The channel of concat(a, b) that output channel k of channel_shuffle(., 2) reads, P = C / 2.
constexpr std::int64_t shuffle2_source(std::int64_t k, std::int64_t P) { return (k % 2) * P + k / 2; }

/// ShuffleNetV2's merge of its two branches, channel_shuffle(concat(a, b), 2), in one pass: with
/// C = Ca + Cb and P = C / 2, output channel k reads channel shuffle2_source(k, P) of concat(a, b).
/// a is (N, Ca, inner), b is (N, Cb, inner), y is (N, C, inner).
template <class T>
void concat_shuffle2(cpu, const T* a, const T* b, T* y, std::int64_t N, std::int64_t Ca, std::int64_t Cb,
                     std::int64_t inner) {
    const std::int64_t C = Ca + Cb, P = C / 2;
    parallel_for(N * C, [&](std::int64_t p) {
        const std::int64_t n = p / C, k = p % C, c = shuffle2_source(k, P);
        const T* s = c < Ca ? a + (n * Ca + c) * inner : b + (n * Cb + (c - Ca)) * inner;
        std::copy(s, s + inner, y + p * inner);
    }, 4);
}
/// The gradient of concat_shuffle2: da and db (either may be null: not wanted) from g (N, C, inner).
template <class T>
void concat_shuffle2_backward(cpu, const T* g, T* da, T* db, std::int64_t N, std::int64_t Ca, std::int64_t Cb,
                              std::int64_t inner) {
    const std::int64_t C = Ca + Cb, P = C / 2;
    parallel_for(N * C, [&](std::int64_t p) {
        const std::int64_t n = p / C, k = p % C, c = shuffle2_source(k, P);
        T* d = c < Ca ? (da ? da + (n * Ca + c) * inner : nullptr) : (db ? db + (n * Cb + (c - Ca)) * inner : nullptr);
        if (d) std::copy(g + p * inner, g + (p + 1) * inner, d);
    }, 4);
}

}  // namespace diffautoml::backend_cpu
