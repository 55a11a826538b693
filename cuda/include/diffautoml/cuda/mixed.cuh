#pragma once
// The mixed-op weighted sum on the GPU: y = sum_k w_k x_k forward, and one fused backward kernel
// that writes every dL/dx_k = w_k g and reduces dL/dw_k = <g, x_k> (for DSNAS's one-hot gate this
// is dL/dZ_k) in the same pass over g. The element arithmetic is body::weighted_sum_* (tested on
// the CPU); the CPU reference is ops/cpu/mixed.hpp.
#include <diffautoml/ops/body/mixed.hpp>

#include "reduce.cuh"

namespace diffautoml::backend_cuda {

inline constexpr int kMaxCandidates = kMaxReduceValues;  ///< candidates of one mixed op handled by the kernels

template <class T>
struct CandidatePointers {
    const T* x[kMaxCandidates];
    T* dx[kMaxCandidates];
};

template <class T>
__global__ void weighted_sum_forward_kernel(CandidatePointers<T> p, const T* w, std::int64_t K, std::int64_t n, T* y) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        y[i] = body::weighted_sum_at(p.x, w, K, i);
}

template <class T>
__global__ void weighted_sum_backward_kernel(CandidatePointers<T> p, const T* w, const T* g, std::int64_t K, std::int64_t n,
                                             T* dw, double* partial, unsigned* counter) {
    __shared__ double sh[32 * kMaxCandidates];
    double acc[kMaxCandidates] = {};
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        body::weighted_sum_backward_at(p.x, w, g, K, i, p.dx, dw ? acc : static_cast<double*>(nullptr));
    if (!dw) return;
    block_sum<kMaxCandidates>(acc, static_cast<int>(K), sh);
    grid_finish<kMaxCandidates>(acc, static_cast<int>(K), partial, counter,
                                [&](int k, double s) { dw[k] = static_cast<T>(s); });
}

namespace mixed_detail {
inline void check_k(std::int64_t K) {
    DAM_CHECK(K >= 1 && K <= kMaxCandidates, shape_error,
              "weighted_sum (cuda): {} candidates; the kernels handle 1 to {} (raise backend_cuda::kMaxCandidates)", K,
              kMaxCandidates);
}
}  // namespace mixed_detail

/// y[i] = sum_k w[k] xs[k][i]; xs is a host array of K device pointers, w and y are on the device.
template <class T>
void weighted_sum_forward(cuda, const T* const* xs, const T* w, std::int64_t K, std::int64_t n, T* y) {
    mixed_detail::check_k(K);
    CandidatePointers<T> p{};
    for (std::int64_t k = 0; k < K; ++k) p.x[k] = xs[k];
    weighted_sum_forward_kernel<<<grid_for(n), 256, 0, current_stream()>>>(p, w, K, n, y);
    DAM_CUDA_CHECK_LAUNCH();
}

/// dxs[k][i] = w[k] g[i] (skipped where dxs[k] is null) and dw[k] = sum_i g[i] xs[k][i] (dw may
/// be null), in one kernel; the same signature as the CPU kernel.
template <class T>
void weighted_sum_backward(cuda, const T* const* xs, const T* w, const T* g, std::int64_t K, std::int64_t n, T* const* dxs,
                           T* dw) {
    mixed_detail::check_k(K);
    CandidatePointers<T> p{};
    for (std::int64_t k = 0; k < K; ++k) {
        p.x[k] = xs[k];
        p.dx[k] = dxs[k];
    }
    ReduceScratch& s = reduce_scratch();
    weighted_sum_backward_kernel<<<kReduceBlocks, kReduceThreads, 0, current_stream()>>>(p, w, g, K, n, dw, s.partial.data(), s.counter.data());
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace diffautoml::backend_cuda
