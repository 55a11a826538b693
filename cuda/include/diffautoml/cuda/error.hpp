#pragma once
// Checked CUDA runtime calls: a failing call throws diffautoml::cuda_error naming the call, the
// status name and text, and where it was made.
#include <cuda_runtime.h>

#include <diffautoml/core/error.hpp>

namespace diffautoml::cuda_detail {

[[noreturn]] inline void throw_cuda(cudaError_t status, const char* call, const char* file, int line) {
    throw cuda_error(DAM_FORMAT("{} failed with {} ({}) at {}:{}", call, cudaGetErrorName(status),
                                 cudaGetErrorString(status), file, line));
}

}  // namespace diffautoml::cuda_detail

/// Runs a CUDA runtime call and throws cuda_error if it did not return cudaSuccess.
#define DAM_CUDA_CHECK(call)                                                                  \
    do {                                                                                      \
        const cudaError_t dam_status_ = (call);                                               \
        if (dam_status_ != cudaSuccess)                                                       \
            ::diffautoml::cuda_detail::throw_cuda(dam_status_, #call, __FILE__, __LINE__);    \
    } while (0)

/// After a kernel launch: reports a bad launch configuration at once.
#define DAM_CUDA_CHECK_LAUNCH() DAM_CUDA_CHECK(cudaGetLastError())
