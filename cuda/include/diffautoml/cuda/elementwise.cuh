#pragma once
// Elementwise kernels over the functors of ops/functors.hpp (the CPU kernels apply the same
// fwd/bwd functions, so the CPU tests cover the arithmetic).
#include <diffautoml/ops/functors.hpp>

#include "memory.cuh"

namespace diffautoml::backend_cuda {

template <class F, class T>
__global__ void unary_forward_kernel(F f, const T* x, T* y, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        y[i] = f.fwd(x[i]);
}
template <class F, class T>
__global__ void unary_backward_kernel(F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        dx[i] = f.bwd(x[i], y[i], g[i]);
}

/// y = f.fwd(x) elementwise (device pointers).
template <class F, class T>
void unary_forward(cuda, F f, const T* x, T* y, std::int64_t n) {
    if (n <= 0) return;
    unary_forward_kernel<<<grid_for(n), 256, 0, current_stream()>>>(f, x, y, n);
    DAM_CUDA_CHECK_LAUNCH();
}
/// dx = f.bwd(x, y, g) elementwise.
template <class F, class T>
void unary_backward(cuda, F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n) {
    if (n <= 0) return;
    unary_backward_kernel<<<grid_for(n), 256, 0, current_stream()>>>(f, x, y, g, dx, n);
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace diffautoml::backend_cuda
