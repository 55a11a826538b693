#pragma once
// The rest of the front doors' kernels on the GPU, with the CPU kernels' signatures: broadcast
// binary maps and their reductions (ops/cpu/elementwise.hpp), axis sums, concatenation, slicing
// and the channel shuffle (ops/cpu/channel.hpp), softmax (ops/body/softmax.hpp) and pooling
// (ops/body/pool.hpp). Every output element is written by one thread that sums its inputs in a
// fixed order, so the results repeat bit for bit (no atomics).
#include <diffautoml/ops/body/pool.hpp>
#include <diffautoml/ops/body/softmax.hpp>
#include <diffautoml/ops/broadcast.hpp>

#include "memory.cuh"
#include "reduce.cuh"

namespace diffautoml::backend_cuda {

#define DAM_GRID_STRIDE(i, n) \
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); i += std::int64_t(gridDim.x) * blockDim.x)

/// BroadcastPlan as a kernel argument (plain arrays).
struct DevicePlan {
    int rank;
    std::int64_t size[Shape::max_rank], sa[Shape::max_rank], sb[Shape::max_rank];
    std::int64_t inner, outer;

    explicit DevicePlan(const BroadcastPlan& p) : rank(p.rank), inner(p.inner()), outer(p.outer()) {
        for (int i = 0; i < Shape::max_rank; ++i) {
            size[i] = p.size[static_cast<std::size_t>(i)];
            sa[i] = p.stride_a[static_cast<std::size_t>(i)];
            sb[i] = p.stride_b[static_cast<std::size_t>(i)];
        }
    }
    /// Offsets of a and b of output element e (BroadcastPlan::offsets, extended to the inner axis).
    __device__ void offsets(std::int64_t e, std::int64_t& a, std::int64_t& b) const {
        a = b = 0;
        for (int i = rank - 1; i >= 0; --i) {
            const std::int64_t k = e % size[i];
            e /= size[i];
            a += k * sa[i];
            b += k * sb[i];
        }
    }
};

template <class Op, class T>
__global__ void binary_forward_kernel(Op op, DevicePlan p, const T* a, const T* b, T* out, std::int64_t n) {
    DAM_GRID_STRIDE(e, n) {
        std::int64_t oa, ob;
        p.offsets(e, oa, ob);
        out[e] = op.fwd(a[oa], b[ob]);
    }
}
template <class Op, class T>
__global__ void binary_backward_kernel(Op op, DevicePlan p, const T* a, const T* b, const T* g, T* ga, T* gb, std::int64_t n) {
    DAM_GRID_STRIDE(e, n) {
        std::int64_t oa, ob;
        p.offsets(e, oa, ob);
        if (ga) ga[e] = op.da(a[oa], b[ob], g[e]);
        if (gb) gb[e] = op.db(a[oa], b[ob], g[e]);
    }
}

/// out = op(a, b) with broadcasting described by plan.
template <class Op, class T>
void binary_forward(cuda, const Op& op, const BroadcastPlan& p, const T* a, const T* b, T* out) {
    const std::int64_t n = p.inner() * p.outer();
    if (n == 0) return;
    binary_forward_kernel<<<grid_for(n), 256, 0, current_stream()>>>(op, DevicePlan(p), a, b, out, n);
    DAM_CUDA_CHECK_LAUNCH();
}
/// ga = op.da(a, b, g), gb = op.db(a, b, g), laid out like the output (either may be null).
template <class Op, class T>
void binary_backward_full(cuda, const Op& op, const BroadcastPlan& p, const T* a, const T* b, const T* g, T* ga, T* gb) {
    const std::int64_t n = p.inner() * p.outer();
    if (n == 0) return;
    binary_backward_kernel<<<grid_for(n), 256, 0, current_stream()>>>(op, DevicePlan(p), a, b, g, ga, gb, n);
    DAM_CUDA_CHECK_LAUNCH();
}

/// One thread per target element t: the sum of the full elements that broadcast from it, in
/// increasing order of their index.
template <class T>
__global__ void sum_to_kernel(DevicePlan p, const T* full, T* target, std::int64_t target_numel) {
    DAM_GRID_STRIDE(t, target_numel) {
        // t's index on the axes a keeps (stride != 0); the others are summed over.
        std::int64_t fixed[Shape::max_rank] = {};
        std::int64_t reduced = 1;
        for (int i = 0; i < p.rank; ++i) {
            if (p.sa[i] != 0) fixed[i] = (t / p.sa[i]) % p.size[i];
            else reduced *= p.size[i];
        }
        double s = 0;
        for (std::int64_t r = 0; r < reduced; ++r) {
            std::int64_t rest = r, e = 0, stride = 1;
            for (int i = p.rank - 1; i >= 0; --i) {
                std::int64_t k = fixed[i];
                if (p.sa[i] == 0) {
                    k = rest % p.size[i];
                    rest /= p.size[i];
                }
                e += k * stride;
                stride *= p.size[i];
            }
            s += static_cast<double>(full[e]);
        }
        target[t] = static_cast<T>(s);
    }
}
/// Sums `full` (laid out as plan.out) into `target` (the broadcast operand, plan's operand a).
template <class T>
void sum_to(cuda, const BroadcastPlan& p, const T* full, T* target, std::int64_t target_numel) {
    if (target_numel == 0) return;
    sum_to_kernel<<<grid_for(target_numel), 256, 0, current_stream()>>>(DevicePlan(p), full, target, target_numel);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void sum_axis_kernel(const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
    DAM_GRID_STRIDE(e, outer * inner) {
        const std::int64_t o = e / inner, i = e % inner;
        T s = 0;
        for (std::int64_t k = 0; k < n; ++k) s += x[(o * n + k) * inner + i];
        y[e] = s;
    }
}
/// y[o, i] = sum_k x[o, k, i] over x viewed as (outer, n, inner).
template <class T>
void sum_axis(cuda, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner) {
    if (outer * inner == 0) return;
    sum_axis_kernel<<<grid_for(outer * inner), 256, 0, current_stream()>>>(x, y, outer, n, inner);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void expand_axis_kernel(const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, T s) {
    DAM_GRID_STRIDE(e, outer * n * inner) {
        const std::int64_t o = e / (n * inner), i = e % inner;
        dx[e] = s * g[o * inner + i];
    }
}
/// dx[o, k, i] = s * g[o, i] (the transpose of sum_axis, scaled).
template <class T>
void expand_axis(cuda, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, T s) {
    if (outer * n * inner == 0) return;
    expand_axis_kernel<<<grid_for(outer * n * inner), 256, 0, current_stream()>>>(g, dx, outer, n, inner, s);
    DAM_CUDA_CHECK_LAUNCH();
}

/// The sum of all elements, in double, deterministic (a one-element sum).
template <class T>
T sum_all(cuda, const T* x, std::int64_t n) {
    DeviceArray<T> out(1);
    sum(cuda{}, x, n, out.data());
    return out.to_host()[0];
}

template <class T>
__global__ void copy_axis_block_kernel(const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner,
                                       std::int64_t dst_n, std::int64_t offset, bool add) {
    DAM_GRID_STRIDE(e, outer * n * inner) {
        const std::int64_t o = e / (n * inner), r = e % (n * inner);
        T& d = dst[(o * dst_n + offset) * inner + r];
        d = add ? d + src[e] : src[e];
    }
}
/// dst(outer, dst_n, inner)[:, offset:offset+n, :] = src(outer, n, inner)   (add: +=).
template <class T>
void copy_axis_block(cuda, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t dst_n,
                     std::int64_t offset, bool add) {
    if (outer * n * inner == 0) return;
    copy_axis_block_kernel<<<grid_for(outer * n * inner), 256, 0, current_stream()>>>(src, dst, outer, n, inner, dst_n,
                                                                                      offset, add);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void narrow_axis_kernel(const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner,
                                   std::int64_t src_n, std::int64_t offset) {
    DAM_GRID_STRIDE(e, outer * n * inner) {
        const std::int64_t o = e / (n * inner), r = e % (n * inner);
        dst[e] = src[(o * src_n + offset) * inner + r];
    }
}
/// dst(outer, n, inner) = src(outer, src_n, inner)[:, offset:offset+n, :].
template <class T>
void narrow_axis(cuda, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t src_n,
                 std::int64_t offset) {
    if (outer * n * inner == 0) return;
    narrow_axis_kernel<<<grid_for(outer * n * inner), 256, 0, current_stream()>>>(src, dst, outer, n, inner, src_n, offset);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void permute_channels_kernel(const T* x, T* y, const std::int64_t* perm, std::int64_t N, std::int64_t C,
                                        std::int64_t inner, bool inverse) {
    DAM_GRID_STRIDE(e, N * C * inner) {
        const std::int64_t n = e / (C * inner), k = (e / inner) % C, i = e % inner;
        const std::int64_t src = inverse ? k : perm[k], dst = inverse ? perm[k] : k;
        y[(n * C + dst) * inner + i] = x[(n * C + src) * inner + i];
    }
}
/// y[:, k] = x[:, perm[k]] over (N, C, inner) (inverse: y[:, perm[k]] = x[:, k]); perm is a host array.
template <class T>
void permute_channels(cuda, const T* x, T* y, const std::int64_t* perm, std::int64_t N, std::int64_t C, std::int64_t inner,
                      bool inverse) {
    if (N * C * inner == 0) return;
    DeviceArray<std::int64_t> p(std::vector<std::int64_t>(perm, perm + C));
    permute_channels_kernel<<<grid_for(N * C * inner), 256, 0, current_stream()>>>(x, y, p.data(), N, C, inner, inverse);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void softmax_forward_kernel(const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
    DAM_GRID_STRIDE(c, outer * inner) {
        const std::int64_t base = (c / inner) * n * inner + c % inner;
        body::softmax_column(x + base, y + base, n, inner, log);
    }
}
template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner,
                                        bool log) {
    DAM_GRID_STRIDE(c, outer * inner) {
        const std::int64_t base = (c / inner) * n * inner + c % inner;
        body::softmax_backward_column(y + base, g + base, dx + base, n, inner, log);
    }
}
/// Softmax (log: log-softmax) along the middle axis of (outer, n, inner), one thread per column.
template <class T>
void softmax_forward(cuda, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
    if (outer * inner == 0) return;
    softmax_forward_kernel<<<grid_for(outer * inner), 256, 0, current_stream()>>>(x, y, outer, n, inner, log);
    DAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void softmax_backward(cuda, const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log) {
    if (outer * inner == 0) return;
    softmax_backward_kernel<<<grid_for(outer * inner), 256, 0, current_stream()>>>(y, g, dx, outer, n, inner, log);
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, std::int32_t* argmax, PoolGeometry g) {
    const std::int64_t per = g.out_h * g.out_w;
    DAM_GRID_STRIDE(e, g.planes * per) {
        const std::int64_t p = e / per, oh = (e % per) / g.out_w, ow = e % g.out_w;
        y[e] = body::max_pool_at(x + p * g.in_h * g.in_w, g, oh, ow, argmax + e);
    }
}
template <class T>
__global__ void avg_pool_forward_kernel(const T* x, T* y, PoolGeometry g) {
    const std::int64_t per = g.out_h * g.out_w;
    DAM_GRID_STRIDE(e, g.planes * per) {
        const std::int64_t p = e / per, oh = (e % per) / g.out_w, ow = e % g.out_w;
        y[e] = body::avg_pool_at(x + p * g.in_h * g.in_w, g, oh, ow);
    }
}
/// Backward of both poolings as a gather: input pixel (ih, iw) sums dy over the windows that
/// contain it (max: only where it was the argmax), in window order.
template <class T>
__global__ void pool_backward_kernel(const T* dy, const std::int32_t* argmax, T* dx, PoolGeometry g) {
    const std::int64_t per = g.in_h * g.in_w, out_per = g.out_h * g.out_w;
    const T inv = T(1) / static_cast<T>(g.k * g.k);
    DAM_GRID_STRIDE(e, g.planes * per) {
        const std::int64_t p = e / per, ih = (e % per) / g.in_w, iw = e % g.in_w;
        std::int64_t h0, h1, w0, w1;
        body::pool_windows_of(ih, g.out_h, g, h0, h1);
        body::pool_windows_of(iw, g.out_w, g, w0, w1);
        T s = 0;
        for (std::int64_t oh = h0; oh <= h1; ++oh)
            for (std::int64_t ow = w0; ow <= w1; ++ow) {
                const std::int64_t o = p * out_per + oh * g.out_w + ow;
                if (argmax) {
                    if (argmax[o] == ih * g.in_w + iw) s += dy[o];
                } else {
                    s += dy[o] * inv;
                }
            }
        dx[e] = s;
    }
}

template <class T>
void max_pool2d_forward(cuda, const T* x, T* y, std::int32_t* argmax, const PoolGeometry& g) {
    if (g.planes * g.out_h * g.out_w == 0) return;
    max_pool_forward_kernel<<<grid_for(g.planes * g.out_h * g.out_w), 256, 0, current_stream()>>>(x, y, argmax, g);
    DAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void max_pool2d_backward(cuda, const T* dy, const std::int32_t* argmax, T* dx, const PoolGeometry& g) {
    if (g.planes * g.in_h * g.in_w == 0) return;
    pool_backward_kernel<<<grid_for(g.planes * g.in_h * g.in_w), 256, 0, current_stream()>>>(dy, argmax, dx, g);
    DAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void avg_pool2d_forward(cuda, const T* x, T* y, const PoolGeometry& g) {
    if (g.planes * g.out_h * g.out_w == 0) return;
    avg_pool_forward_kernel<<<grid_for(g.planes * g.out_h * g.out_w), 256, 0, current_stream()>>>(x, y, g);
    DAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void avg_pool2d_backward(cuda, const T* dy, T* dx, const PoolGeometry& g) {
    if (g.planes * g.in_h * g.in_w == 0) return;
    pool_backward_kernel<<<grid_for(g.planes * g.in_h * g.in_w), 256, 0, current_stream()>>>(
        dy, static_cast<const std::int32_t*>(nullptr), dx, g);
    DAM_CUDA_CHECK_LAUNCH();
}

#undef DAM_GRID_STRIDE

}  // namespace diffautoml::backend_cuda
