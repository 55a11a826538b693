#pragma once
// The CUDA backend's kernels (compile with nvcc): device memory and copies, deterministic
// reductions, the mixed-op weighted sum, Gumbel-softmax sampling, the fused softmax-cross-entropy,
// elementwise maps and the geometric augmentation ops. Each kernel's arithmetic is a
// __host__ __device__ body that the CPU tests run, and tests/cuda compares each kernel with the
// CPU reference on a GPU.
#include "cuda/cross_entropy.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/error.cuh"
#include "cuda/gumbel.cuh"
#include "cuda/memory.cuh"
#include "cuda/mixed.cuh"
#include "cuda/reduce.cuh"
#include "cuda/warp.cuh"
