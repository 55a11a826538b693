#pragma once
// Gumbel-softmax sampling on the GPU with Philox: row r of a (rows, K) logits tensor uses the
// stream's uniforms r K .. r K + K - 1, as sampling::gumbel_noise does on the CPU, so the same
// (seed, stream) gives the same noise and the same hard choices. The row arithmetic is
// body::gumbel_softmax_row (tested on the CPU).
#include <diffautoml/ops/body/gumbel.hpp>

#include "memory.cuh"

namespace diffautoml::backend_cuda {

template <class T>
__global__ void gumbel_softmax_kernel(const T* z, std::int64_t rows, std::int64_t K, double tau, PhiloxStream s, T* soft,
                                      T* hard, std::int64_t* index) {
    for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < rows; r += std::int64_t(gridDim.x) * blockDim.x) {
        const std::int64_t arg =
            body::gumbel_softmax_row(z + r * K, K, tau, s, static_cast<std::uint64_t>(r * K), soft + r * K);
        if (hard)
            for (std::int64_t k = 0; k < K; ++k) hard[r * K + k] = k == arg ? T(1) : T(0);
        if (index) index[r] = arg;
    }
}

template <class T>
__global__ void gumbel_softmax_backward_kernel(const T* soft, const T* g, std::int64_t rows, std::int64_t K, double tau,
                                               T* dz) {
    for (std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; r < rows; r += std::int64_t(gridDim.x) * blockDim.x)
        body::gumbel_softmax_row_backward(soft + r * K, g + r * K, K, tau, dz + r * K);
}

template <class T>
__global__ void philox_noise_kernel(T* y, std::int64_t n, PhiloxStream s, body::Noise kind) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        y[i] = static_cast<T>(body::noise_from_uniform(kind, s.uniform_double(static_cast<std::uint64_t>(i))));
}

/// y[i] = the `kind` transform of uniform i of stream s (the CPU's philox_noise, same numbers).
template <class T>
void philox_noise(cuda, T* y, std::int64_t n, const PhiloxStream& s, body::Noise kind) {
    if (n <= 0) return;
    philox_noise_kernel<<<grid_for(n), 256, 0, current_stream()>>>(y, n, s, kind);
    DAM_CUDA_CHECK_LAUNCH();
}

/// soft = softmax((z + g) / tau) per row; hard (optional) = one-hot argmax; index (optional) =
/// the argmax. All pointers are on the device.
template <class T>
void gumbel_softmax_forward(cuda, const T* z, std::int64_t rows, std::int64_t K, double tau, const PhiloxStream& s, T* soft,
                            T* hard, std::int64_t* index) {
    DAM_CHECK(std::isfinite(tau) && tau > 0, value_error, "gumbel_softmax (cuda): temperature must be finite and > 0, got {}",
              tau);
    if (rows <= 0) return;
    gumbel_softmax_kernel<<<grid_for(rows, 128), 128, 0, current_stream()>>>(z, rows, K, tau, s, soft, hard, index);
    DAM_CUDA_CHECK_LAUNCH();
}

/// dz = d soft / dz^T g (for the hard sample too: straight-through passes g to the soft one).
template <class T>
void gumbel_softmax_backward(cuda, const T* soft, const T* g, std::int64_t rows, std::int64_t K, double tau, T* dz) {
    if (rows <= 0) return;
    gumbel_softmax_backward_kernel<<<grid_for(rows, 128), 128, 0, current_stream()>>>(soft, g, rows, K, tau, dz);
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace diffautoml::backend_cuda
