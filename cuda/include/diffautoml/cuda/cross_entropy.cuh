#pragma once
// Fused softmax-cross-entropy (with label smoothing) on the GPU, one thread per row; the row
// arithmetic is body::cross_entropy_row_* (the CPU kernels in ops/cpu/softmax.hpp run the same).
#include <diffautoml/ops/body/cross_entropy.hpp>

#include "memory.cuh"

namespace diffautoml::backend_cuda {

template <class T>
__global__ void cross_entropy_forward_kernel(const T* z, const std::int32_t* y, T* loss, T* prob, std::int64_t N,
                                             std::int64_t K, T eps) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < N; i += std::int64_t(gridDim.x) * blockDim.x)
        loss[i] = body::cross_entropy_row_forward(z + i * K, y[i], K, eps, prob + i * K);
}

template <class T>
__global__ void cross_entropy_backward_kernel(const T* prob, const std::int32_t* y, const T* g, bool g_per_sample, T* dz,
                                              std::int64_t N, std::int64_t K, T eps, T scale) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < N; i += std::int64_t(gridDim.x) * blockDim.x)
        body::cross_entropy_row_backward(prob + i * K, y[i], K, eps, (g_per_sample ? g[i] : g[0]) * scale, dz + i * K);
}

/// The CPU kernel's signature (ops/cpu/softmax.hpp); every pointer is on the device.
template <class T>
void cross_entropy_forward(cuda, const T* logits, const std::int32_t* labels, T* loss, T* prob, std::int64_t N, std::int64_t K,
                           double smoothing) {
    if (N <= 0) return;
    cross_entropy_forward_kernel<<<grid_for(N, 128), 128, 0, current_stream()>>>(logits, labels, loss, prob, N, K, static_cast<T>(smoothing));
    DAM_CUDA_CHECK_LAUNCH();
}

template <class T>
void cross_entropy_backward(cuda, const T* prob, const std::int32_t* labels, const T* g, bool g_per_sample, T* dx,
                            std::int64_t N, std::int64_t K, double smoothing, T scale) {
    if (N <= 0) return;
    cross_entropy_backward_kernel<<<grid_for(N, 128), 128, 0, current_stream()>>>(prob, labels, g, g_per_sample, dx, N, K,
                                                             static_cast<T>(smoothing), scale);
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace diffautoml::backend_cuda
