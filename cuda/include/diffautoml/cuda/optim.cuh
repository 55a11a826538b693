#pragma once
// The optimizers' updates on the GPU (optim::SGD<T, cuda>, optim::Adam<T, cuda>), one thread per
// element; the arithmetic is body::sgd_update_at / adam_update_at, which the CPU runs too.
#include <diffautoml/ops/body/optim.hpp>

#include "memory.cuh"

namespace diffautoml::backend_cuda {

template <class T>
__global__ void sgd_kernel(T* w, const T* g, T* b, std::int64_t n, body::SgdStep<T> s) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        body::sgd_update_at(w, g, b, i, s);
}
template <class T>
__global__ void adam_kernel(T* w, const T* g, T* m, T* v, std::int64_t n, body::AdamStep<T> s) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
        body::adam_update_at(w, g, m, v, i, s);
}

/// One SGD step over n parameters (buf may be null: no momentum).
template <class T>
void sgd_step(cuda, T* w, const T* g, T* buf, std::int64_t n, const body::SgdStep<T>& s) {
    if (n <= 0) return;
    sgd_kernel<<<grid_for(n), 256, 0, current_stream()>>>(w, g, buf, n, s);
    DAM_CUDA_CHECK_LAUNCH();
}
/// One Adam step over n parameters.
template <class T>
void adam_step(cuda, T* w, const T* g, T* m, T* v, std::int64_t n, const body::AdamStep<T>& s) {
    if (n <= 0) return;
    adam_kernel<<<grid_for(n), 256, 0, current_stream()>>>(w, g, m, v, n, s);
    DAM_CUDA_CHECK_LAUNCH();
}

}  // namespace diffautoml::backend_cuda
