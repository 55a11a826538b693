#pragma once
// Deterministic reductions inside one kernel: each block sums its threads' values (warp shuffles,
// then warps in a fixed order), writes its partial sums, and the last block to finish adds the
// partials in block order. The result does not depend on scheduling, so two runs agree bit for
// bit and the sums can be compared with the CPU reference at a tight tolerance.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <vector>

#include "memory.cuh"

namespace diffautoml::backend_cuda {

inline constexpr int kReduceThreads = 256;  ///< block size of every reducing kernel (a multiple of 32)
inline constexpr int kReduceBlocks = 264;   ///< fixed grid (2 x the SMs of an H100 SXM) so the order is fixed

/// Sums acc[0..K) over the threads of the block: on return every thread holds the block's total
/// of value k in acc[k], for every k < K. sh needs 32 * MaxK doubles of shared memory.
/// (Until 2026-12 only thread k got total k, and the evaluation-mode batch-norm backward read
/// total 1 in thread 0: its dgamma was thread 0's partial sum, wrong on the H200.)
template <int MaxK>
__device__ inline void block_sum(double (&acc)[MaxK], int K, double* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    for (int k = 0; k < K; ++k) {
        double v = acc[k];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) sh[warp * MaxK + k] = v;
    }
    __syncthreads();
    if (threadIdx.x < K) {
        // Thread k alone reads column k (warp 0's entry first) and then overwrites warp 0's entry.
        double s = 0;
        for (int w = 0; w < warps; ++w) s += sh[w * MaxK + threadIdx.x];
        sh[threadIdx.x] = s;
    }
    __syncthreads();
    for (int k = 0; k < K; ++k) acc[k] = sh[k];
    __syncthreads();
}

/// After block_sum: writes the block's K sums to partial, and the last block to arrive adds all
/// blocks' partials in block order and calls out(k, total) for each k. counter must be 0 on entry
/// and is 0 again on exit.
template <int MaxK, class Out>
__device__ inline void grid_finish(const double (&acc)[MaxK], int K, double* partial, unsigned* counter, Out out) {
    __shared__ bool last;
    if (threadIdx.x < K) partial[blockIdx.x * K + threadIdx.x] = acc[threadIdx.x];
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    if (threadIdx.x < K) {
        const volatile double* vp = partial;
        double s = 0;
        for (unsigned b = 0; b < gridDim.x; ++b) s += vp[b * K + threadIdx.x];
        out(static_cast<int>(threadIdx.x), s);
    }
    if (threadIdx.x == 0) *counter = 0;
}

inline constexpr int kMaxReduceValues = 16;  ///< values one grid reduction can sum at once

/// Scratch of a grid reduction of up to kMaxReduceValues values: partial sums and the arrival
/// counter (zeroed once; the last block of every reduction leaves it at 0 again).
struct ReduceScratch {
    DeviceArray<double> partial;
    DeviceArray<unsigned> counter;
    ReduceScratch() : partial(std::int64_t(kReduceBlocks) * kMaxReduceValues), counter(1) {
        DAM_CUDA_CHECK(cudaMemsetAsync(counter.data(), 0, sizeof(unsigned), current_stream()));
    }
};

/// The reduction scratch of this host thread and its current stream, made on first use and reused
/// by every reducing kernel launched there (they run in that stream's order), so no launch
/// allocates or clears memory, and reductions on two streams never share a counter.
inline ReduceScratch& reduce_scratch() {
    thread_local std::map<cudaStream_t, ReduceScratch> per_stream;
    return per_stream.try_emplace(current_stream()).first->second;
}

template <class T>
__global__ void sum_kernel(const T* x, std::int64_t n, T* out, double* partial, unsigned* counter) {
    __shared__ double sh[32];
    double acc[1] = {0.0};
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        acc[0] += static_cast<double>(x[i]);
    block_sum<1>(acc, 1, sh);
    grid_finish<1>(acc, 1, partial, counter, [&](int, double s) { *out = static_cast<T>(s); });
}

/// out[0] = sum of x[0..n), accumulated in double, deterministic.
template <class T>
void sum(cuda, const T* x, std::int64_t n, T* out) {
    ReduceScratch& s = reduce_scratch();
    sum_kernel<<<kReduceBlocks, kReduceThreads, 0, current_stream()>>>(x, n, out, s.partial.data(), s.counter.data());
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void dot_add_kernel(const T* a, const T* b, std::int64_t n, double* out, double* partial, unsigned* counter) {
    __shared__ double sh[32];
    double acc[1] = {0.0};
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        acc[0] += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    block_sum<1>(acc, 1, sh);
    grid_finish<1>(acc, 1, partial, counter, [&](int, double s) { *out += s; });
}

/// sum_k a_k . b_k over pairs of device vectors of n_k elements, in double (the CPU's dot_sum):
/// one deterministic reduction per pair, each adding into one device value, and one read back.
template <class T>
double dot_sum(cuda, const std::vector<const T*>& a, const std::vector<const T*>& b, const std::vector<std::int64_t>& n) {
    DAM_CHECK(a.size() == b.size() && a.size() == n.size(), shape_error, "dot_sum (cuda): {} a, {} b and {} sizes", a.size(),
              b.size(), n.size());
    if (a.empty()) return 0.0;
    ReduceScratch& s = reduce_scratch();
    DeviceArray<double> out(std::vector<double>{0.0});
    for (std::size_t k = 0; k < a.size(); ++k) {
        if (n[k] == 0) continue;
        dot_add_kernel<<<kReduceBlocks, kReduceThreads, 0, current_stream()>>>(a[k], b[k], n[k], out.data(), s.partial.data(),
                                                                             s.counter.data());
        DAM_CUDA_CHECK_LAUNCH();
    }
    return out.to_host()[0];
}

}  // namespace diffautoml::backend_cuda
