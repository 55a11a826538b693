// The one translation unit that compiles the CUDA kernels for code built by the host compiler:
// CMake's diffautoml::cuda_backend adds it to whatever links that target (see backend.hpp).
#include <diffautoml/cuda/instantiate.cuh>
