#pragma once
// The CUDA backend (compile with nvcc): device memory, copies and streams, deterministic
// reductions, the mixed-op weighted sum, Gumbel-softmax sampling, the fused softmax-cross-entropy,
// elementwise maps and the geometric augmentation ops (hand-written kernels), and convolution,
// batch norm (cuDNN) and matrix products (cuBLAS). Each kernel's arithmetic is a
// __host__ __device__ body that the CPU tests run, and tests/cuda compares each kernel with the
// CPU reference on a GPU.
#include "cuda/augment.cuh"
#include "cuda/backend.hpp"
#include "cuda/conv.hpp"
#include "cuda/cross_entropy.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/error.hpp"
#include "cuda/gemm.hpp"
#include "cuda/gumbel.cuh"
#include "cuda/handles.hpp"
#include "cuda/layout.cuh"
#include "cuda/memory.cuh"
#include "cuda/mixed.cuh"
#include "cuda/norm.cuh"
#include "cuda/optim.cuh"
#include "cuda/reduce.cuh"
#include "cuda/stream.hpp"
