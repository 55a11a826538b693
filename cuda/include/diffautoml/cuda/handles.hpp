#pragma once
// cuDNN and cuBLAS: checked calls that throw cudnn_error / cublas_error naming the call and the
// status, and one handle of each per host thread, bound to that thread's current stream.
#include <cublas_v2.h>
#include <cudnn.h>

#include "stream.hpp"

namespace diffautoml::cuda_detail {

[[noreturn]] inline void throw_cudnn(cudnnStatus_t status, const char* call, const char* file, int line) {
    throw cudnn_error(DAM_FORMAT("{} failed with cudnnStatus {} ({}) at {}:{}", call, static_cast<int>(status),
                                  cudnnGetErrorString(status), file, line));
}
[[noreturn]] inline void throw_cublas(cublasStatus_t status, const char* call, const char* file, int line) {
    throw cublas_error(DAM_FORMAT("{} failed with {} ({}) at {}:{}", call, cublasGetStatusName(status),
                                   cublasGetStatusString(status), file, line));
}

}  // namespace diffautoml::cuda_detail

/// Runs a cuDNN call and throws cudnn_error unless it returned CUDNN_STATUS_SUCCESS.
#define DAM_CUDNN_CHECK(call)                                                                 \
    do {                                                                                      \
        const cudnnStatus_t dam_status_ = (call);                                             \
        if (dam_status_ != CUDNN_STATUS_SUCCESS)                                              \
            ::diffautoml::cuda_detail::throw_cudnn(dam_status_, #call, __FILE__, __LINE__);   \
    } while (0)

/// Runs a cuBLAS call and throws cublas_error unless it returned CUBLAS_STATUS_SUCCESS.
#define DAM_CUBLAS_CHECK(call)                                                                \
    do {                                                                                      \
        const cublasStatus_t dam_status_ = (call);                                            \
        if (dam_status_ != CUBLAS_STATUS_SUCCESS)                                             \
            ::diffautoml::cuda_detail::throw_cublas(dam_status_, #call, __FILE__, __LINE__);  \
    } while (0)

namespace diffautoml::backend_cuda {

/// This host thread's cuDNN and cuBLAS handles (made on first use, destroyed with the thread),
/// set to the current stream on every call.
class Handles {
public:
    Handles() {
        DAM_CUDNN_CHECK(cudnnCreate(&dnn_));
        DAM_CUBLAS_CHECK(cublasCreate(&blas_));
        // No TF32: float GEMMs keep float precision, so they compare with the CPU at float tolerances.
        DAM_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    }
    Handles(const Handles&) = delete;
    Handles& operator=(const Handles&) = delete;
    ~Handles() {
        (void)cublasDestroy(blas_);
        (void)cudnnDestroy(dnn_);
    }
    cudnnHandle_t dnn() {
        bind();
        return dnn_;
    }
    cublasHandle_t blas() {
        bind();
        return blas_;
    }

private:
    void bind() {
        const cudaStream_t s = current_stream();
        if (bound_ && s == stream_) return;
        DAM_CUDNN_CHECK(cudnnSetStream(dnn_, s));
        DAM_CUBLAS_CHECK(cublasSetStream(blas_, s));
        stream_ = s;
        bound_ = true;
    }
    cudnnHandle_t dnn_ = nullptr;
    cublasHandle_t blas_ = nullptr;
    cudaStream_t stream_ = nullptr;
    bool bound_ = false;
};

inline Handles& handles() {
    thread_local Handles h;
    return h;
}

/// cuDNN's data type for T.
template <class T>
constexpr cudnnDataType_t cudnn_type() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuDNN ops take float or double");
    return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

/// A cuDNN descriptor owned by a unique handle type (tensor, filter, convolution).
template <class H, cudnnStatus_t (*Create)(H*), cudnnStatus_t (*Destroy)(H)>
class Descriptor {
public:
    Descriptor() { DAM_CUDNN_CHECK(Create(&d_)); }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    ~Descriptor() { (void)Destroy(d_); }
    H get() const { return d_; }

private:
    H d_{};
};
using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

/// A contiguous NCHW tensor descriptor.
template <class T>
void set_nchw(const TensorDescriptor& d, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    DAM_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d.get(), CUDNN_TENSOR_NCHW, cudnn_type<T>(), static_cast<int>(n),
                                               static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
}

}  // namespace diffautoml::backend_cuda
