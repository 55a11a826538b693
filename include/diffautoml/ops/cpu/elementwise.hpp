#pragma once
// CPU kernels: unary and broadcast binary maps, reductions to a broadcast shape, axis sums.
#include <cstdint>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../broadcast.hpp"
#include "simd.hpp"

namespace diffautoml::backend_cpu {

namespace detail {
constexpr std::int64_t grain = 1 << 15;  // elements per parallel chunk for cheap maps
template <class F>
void chunked(std::int64_t n, F&& f) {
    const std::int64_t chunks = (n + grain - 1) / grain;
    parallel_for(chunks, [&](std::int64_t c) { f(c * grain, std::min(n, (c + 1) * grain)); });
}
}  // namespace detail

template <class Op, class T>
void unary_forward(cpu, const Op& op, const T* x, T* y, std::int64_t n) {
    detail::chunked(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) y[i] = op.fwd(x[i]);
    });
}
template <class Op, class T>
void unary_backward(cpu, const Op& op, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    detail::chunked(n, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) dx[i] = op.bwd(x[i], y[i], g[i]);
    });
}

/// out = op(a, b) with broadcasting described by plan.
template <class Op, class T>
void binary_forward(cpu, const Op& op, const BroadcastPlan& p, const T* a, const T* b, T* out) {
    const std::int64_t inner = p.inner(), outer = p.outer();
    const std::int64_t ia = p.rank ? p.stride_a[p.rank - 1] : 0, ib = p.rank ? p.stride_b[p.rank - 1] : 0;
    auto row = [&](std::int64_t o) {
        std::int64_t oa, ob;
        p.offsets(o, oa, ob);
        T* y = out + o * inner;
        const T* pa = a + oa;
        const T* pb = b + ob;
        if (ia == 1 && ib == 1) {
            for (std::int64_t i = 0; i < inner; ++i) y[i] = op.fwd(pa[i], pb[i]);
        } else if (ia == 1 && ib == 0) {
            const T vb = pb[0];
            for (std::int64_t i = 0; i < inner; ++i) y[i] = op.fwd(pa[i], vb);
        } else if (ia == 0 && ib == 1) {
            const T va = pa[0];
            for (std::int64_t i = 0; i < inner; ++i) y[i] = op.fwd(va, pb[i]);
        } else {
            for (std::int64_t i = 0; i < inner; ++i) y[i] = op.fwd(pa[i * ia], pb[i * ib]);
        }
    };
    if (outer == 1) {
        // One long run: split it across threads.
        detail::chunked(inner, [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i) out[i] = op.fwd(a[i * ia], b[i * ib]);
        });
    } else {
        parallel_for(outer, row, inner >= 256 ? 2 : 64);
    }
}

/// Partial products over the broadcast shape: ga[i] = op.da(a, b, g), gb[i] = op.db(a, b, g),
/// both laid out like the output (either may be null).
template <class Op, class T>
void binary_backward_full(cpu, const Op& op, const BroadcastPlan& p, const T* a, const T* b, const T* g, T* ga,
                          T* gb) {
    const std::int64_t inner = p.inner(), outer = p.outer();
    const std::int64_t ia = p.rank ? p.stride_a[p.rank - 1] : 0, ib = p.rank ? p.stride_b[p.rank - 1] : 0;
    parallel_for(
        outer,
        [&](std::int64_t o) {
            std::int64_t oa, ob;
            p.offsets(o, oa, ob);
            const std::int64_t base = o * inner;
            for (std::int64_t i = 0; i < inner; ++i) {
                const T va = a[oa + i * ia], vb = b[ob + i * ib], vg = g[base + i];
                if (ga) ga[base + i] = op.da(va, vb, vg);
                if (gb) gb[base + i] = op.db(va, vb, vg);
            }
        },
        inner >= 256 ? 2 : 64);
}

/// Sums `full` (laid out as plan.out) into `target` (the broadcast operand, plan's operand a).
/// Serial per target element ranges to stay deterministic.
template <class T>
void sum_to(cpu, const BroadcastPlan& p, const T* full, T* target, std::int64_t target_numel) {
    std::fill(target, target + target_numel, T(0));
    const std::int64_t inner = p.inner(), outer = p.outer();
    const std::int64_t ia = p.rank ? p.stride_a[p.rank - 1] : 0;
    for (std::int64_t o = 0; o < outer; ++o) {
        std::int64_t oa, ob;
        p.offsets(o, oa, ob);
        const T* src = full + o * inner;
        if (ia == 0) {
            T s = 0;
            for (std::int64_t i = 0; i < inner; ++i) s += src[i];
            target[oa] += s;
        } else {
            for (std::int64_t i = 0; i < inner; ++i) target[oa + i * ia] += src[i];
        }
    }
}

/// Sum over the middle axis of x viewed as (outer, n, inner): y[o, i] = sum_k x[o, k, i].
template <class T>
void sum_axis(cpu, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
    parallel_for(
        outer,
        [&](std::int64_t o) {
            if (inner == 1) {
                // Runs of n contiguous values (a global pool's planes): a sum in vector registers,
                // not n dependent read-modify-writes of y[o].
                const T* xo = x + o * n;
                simd::Vec<T> acc{};
                std::int64_t k = 0;
                for (; k + simd::lanes<T> <= n; k += simd::lanes<T>) {
                    simd::Vec<T> v;
                    simd::load(xo + k, v);
                    acc += v;
                }
                T s = simd::sum_lanes<T>(acc);
                for (; k < n; ++k) s += xo[k];
                y[o] = s;
                return;
            }
            T* yo = y + o * inner;
            std::fill(yo, yo + inner, T(0));
            for (std::int64_t k = 0; k < n; ++k) {
                const T* xo = x + (o * n + k) * inner;
                for (std::int64_t i = 0; i < inner; ++i) yo[i] += xo[i];
            }
        },
        4);
}
/// The transpose of sum_axis, scaled: dx[o, k, i] = s * g[o, i].
template <class T>
void expand_axis(cpu, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, T s) {
    parallel_for(
        outer,
        [&](std::int64_t o) {
            const T* go = g + o * inner;
            if (inner == 1) {
                std::fill(dx + o * n, dx + (o + 1) * n, s * go[0]);
                return;
            }
            for (std::int64_t k = 0; k < n; ++k) {
                T* d = dx + (o * n + k) * inner;
                for (std::int64_t i = 0; i < inner; ++i) d[i] = s * go[i];
            }
        },
        4);
}

/// Sum of all elements, accumulated in double for accuracy and in fixed chunks so the result does
/// not depend on the thread count.
template <class T>
T sum_all(cpu, const T* x, std::int64_t n) {
    constexpr std::int64_t chunk = 1 << 14;
    const std::int64_t chunks = (n + chunk - 1) / chunk;
    std::vector<double> partial(static_cast<std::size_t>(std::max<std::int64_t>(chunks, 1)), 0.0);
    parallel_for(chunks, [&](std::int64_t c) {
        double s = 0;
        const std::int64_t e = std::min(n, (c + 1) * chunk);
        for (std::int64_t i = c * chunk; i < e; ++i) s += x[i];
        partial[static_cast<std::size_t>(c)] = s;
    });
    double s = 0;
    for (double v : partial) s += v;
    return static_cast<T>(s);
}

/// sum_k a_k . b_k over pairs of vectors (a_k, b_k) of n_k elements, in double: one value read by
/// the host for many tensors (the hypergradient's inner products over a parameter group). Each
/// product is summed in element order and the pairs in their order, so the result is exact to
/// double rounding and independent of the thread count.
template <class T>
double dot_sum(cpu, const std::vector<const T*>& a, const std::vector<const T*>& b, const std::vector<std::int64_t>& n) {
    double s = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
        double d = 0;
        for (std::int64_t i = 0; i < n[k]; ++i) d += static_cast<double>(a[k][i]) * static_cast<double>(b[k][i]);
        s += d;
    }
    return s;
}

}  // namespace diffautoml::backend_cpu
