#pragma once
// The memory primitives the tensor layer expects of a device (fill_n, copy_n, add_n), on the
// current stream.
#include "memory.hpp"

namespace diffautoml {
namespace backend_cuda {

template <class T>
__global__ void fill_kernel(T* dst, std::int64_t n, T value) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        dst[i] = value;
}
template <class T>
__global__ void add_kernel(T* dst, const T* src, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        dst[i] += src[i];
}

/// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(std::int64_t n, unsigned threads = 256) {
    const std::int64_t b = (n + threads - 1) / threads;
    return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

template <class T>
void fill_n(cuda, T* dst, std::int64_t n, T value) {
    if (n <= 0) return;
    fill_kernel<<<grid_for(n), 256, 0, current_stream()>>>(dst, n, value);
    DAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void copy_n(cuda, T* dst, const T* src, std::int64_t n) {
    if (n > 0)
        DAM_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice,
                                       current_stream()));
}
template <class T>
void add_n(cuda, T* dst, const T* src, std::int64_t n) {
    if (n <= 0) return;
    add_kernel<<<grid_for(n), 256, 0, current_stream()>>>(dst, src, n);
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace backend_cuda

}  // namespace diffautoml
