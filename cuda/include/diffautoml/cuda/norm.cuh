#pragma once
// Batch norm over (N, C, H, W) through cuDNN (spatial mode), with the CPU kernels' signatures
// (ops/cpu/norm.hpp): training forward with batch statistics and running averages, evaluation
// forward, and the backward of both modes, each optionally fused with a ReLU. cuDNN gives the
// batch mean and 1/sqrt(var + eps) that the CPU kernels also return; the ReLU, the missing
// gamma/beta and the evaluation-mode backward (which cuDNN does not have) are small kernels here.
#include <cudnn.h>

#include <cmath>

#include <diffautoml/ops/functors.hpp>

#include "elementwise.cuh"
#include "handles.hpp"
#include "reduce.cuh"

namespace diffautoml::backend_cuda {

namespace norm_detail {

/// eps > 0 as on the CPU (ops::batchnorm2d), and at least cuDNN's minimum (0 since cuDNN 8, 1e-5
/// before: the GPU run of 2026-12 found a test that expected 1e-9 to be refused by it).
inline void check_eps(double eps) {
    DAM_CHECK(std::isfinite(eps) && eps > 0 && eps >= CUDNN_BN_MIN_EPSILON, value_error,
              "batchnorm2d (cuda): eps {} must be finite, > 0 and >= cuDNN's minimum {}", eps, CUDNN_BN_MIN_EPSILON);
}

/// The descriptors of one batch norm: the data (N, C, HW, 1) and the per-channel (1, C, 1, 1).
template <class T>
struct Descriptors {
    TensorDescriptor x, c;
    Descriptors(std::int64_t N, std::int64_t C, std::int64_t HW) {
        DAM_CHECK(N * C * HW <= INT32_MAX, shape_error, "batchnorm2d (cuda): the input is too large for cuDNN's descriptors");
        set_nchw<T>(x, N, C, HW, 1);
        set_nchw<T>(c, 1, C, 1, 1);
    }
};

/// gamma, or ones when it is null; beta, or zeros (device scratch that lives for the call).
template <class T>
struct Affine {
    DeviceArray<T> ones, zeros;
    const T* gamma;
    const T* beta;
    Affine(const T* g, const T* b, std::int64_t C) : gamma(g), beta(b) {
        if (!g) {
            ones = DeviceArray<T>(C);
            fill_n(cuda{}, ones.data(), C, T(1));
            gamma = ones.data();
        }
        if (!b) {
            zeros = DeviceArray<T>(C);
            fill_n(cuda{}, zeros.data(), C, T(0));
            beta = zeros.data();
        }
    }
};

template <class T>
__global__ void eval_statistics_kernel(const T* running_mean, const T* running_var, T* mean, T* invstd, std::int64_t C,
                                       double eps) {
    for (std::int64_t c = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; c < C; c += std::int64_t(gridDim.x) * blockDim.x) {
        mean[c] = running_mean[c];
        invstd[c] = static_cast<T>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
    }
}

/// Evaluation-mode backward, one block per channel: dgamma = sum(g xhat), dbeta = sum(g),
/// dx = gamma invstd g, with g = dy masked by y > 0 when y is given (the fused ReLU).
template <class T>
__global__ void eval_backward_kernel(const T* x, const T* y, const T* dy, const T* gamma, const T* mean, const T* invstd,
                                     T* dx, T* dgamma, T* dbeta, std::int64_t N, std::int64_t C, std::int64_t HW) {
    __shared__ double sh[32 * 2];
    const std::int64_t c = blockIdx.x;
    const T m = mean[c], is = invstd[c], k = (gamma ? gamma[c] : T(1)) * is;
    double acc[2] = {0.0, 0.0};
    for (std::int64_t j = threadIdx.x; j < N * HW; j += blockDim.x) {
        const std::int64_t i = ((j / HW) * C + c) * HW + j % HW;
        const T g = (!y || y[i] > T(0)) ? dy[i] : T(0);
        acc[0] += static_cast<double>(g);
        acc[1] += static_cast<double>(g) * static_cast<double>(x[i] - m);
        if (dx) dx[i] = k * g;
    }
    block_sum<2>(acc, 2, sh);  // every thread now holds both totals
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[c] = static_cast<T>(acc[0]);
        if (dgamma) dgamma[c] = static_cast<T>(acc[1] * static_cast<double>(is));
    }
}

}  // namespace norm_detail

/// Training mode: batch statistics. Writes y, the batch mean and 1/sqrt(var + eps), and updates
/// the running statistics (unbiased variance) with `momentum` when they are given.
template <class T>
void batchnorm2d_forward_train(cuda, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                               T* running_mean, T* running_var, std::int64_t N, std::int64_t C, std::int64_t HW,
                               double momentum, double eps, bool relu) {
    norm_detail::check_eps(eps);
    DAM_CHECK((running_mean == nullptr) == (running_var == nullptr), value_error,
              "batchnorm2d (cuda): give both running statistics or neither");
    norm_detail::Descriptors<T> d(N, C, HW);
    norm_detail::Affine<T> a(gamma, beta, C);
    const T one = 1, zero = 0;
    DAM_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(handles().dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x.get(),
                                                           x, d.x.get(), y, d.c.get(), a.gamma, a.beta, momentum,
                                                           running_mean, running_var, eps, mean_out, invstd_out));
    if (relu) unary_forward(cuda{}, fn::Relu{}, y, y, N * C * HW);
}

/// Evaluation mode: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta.
template <class T>
void batchnorm2d_forward_eval(cuda, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                              const T* running_mean, const T* running_var, std::int64_t N, std::int64_t C, std::int64_t HW,
                              double eps, bool relu) {
    norm_detail::check_eps(eps);
    norm_detail::Descriptors<T> d(N, C, HW);
    norm_detail::Affine<T> a(gamma, beta, C);
    const T one = 1, zero = 0;
    DAM_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(handles().dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero,
                                                            d.x.get(), x, d.x.get(), y, d.c.get(), a.gamma, a.beta,
                                                            running_mean, running_var, eps));
    norm_detail::eval_statistics_kernel<<<grid_for(C), 256, 0, current_stream()>>>(running_mean, running_var, mean_out,
                                                                                    invstd_out, C, eps);
    DAM_CUDA_CHECK_LAUNCH();
    if (relu) unary_forward(cuda{}, fn::Relu{}, y, y, N * C * HW);
}

/// Gradients of batch norm (see the CPU kernel). With a fused ReLU, y is its output and dy is
/// masked by y > 0 first. Any of dx, dgamma, dbeta may be null.
template <class T>
void batchnorm2d_backward(cuda, const T* x, const T* y, const T* dy, const T* gamma, const T* mean, const T* invstd, T* dx,
                          T* dgamma, T* dbeta, std::int64_t N, std::int64_t C, std::int64_t HW, bool training) {
    const std::int64_t n = N * C * HW;
    if (!training) {
        norm_detail::eval_backward_kernel<<<static_cast<unsigned>(C), kReduceThreads, 0, current_stream()>>>(
            x, y, dy, gamma, mean, invstd, dx, dgamma, dbeta, N, C, HW);
        DAM_CUDA_CHECK_LAUNCH();
        return;
    }
    norm_detail::Descriptors<T> d(N, C, HW);
    norm_detail::Affine<T> a(gamma, nullptr, C);
    DeviceArray<T> masked, dx_scratch, dg_scratch, db_scratch;
    if (y) {  // the fused ReLU: g = dy where y > 0
        masked = DeviceArray<T>(n);
        unary_backward(cuda{}, fn::Relu{}, y, y, dy, masked.data(), n);
        dy = masked.data();
    }
    if (!dx) dx = (dx_scratch = DeviceArray<T>(n)).data();
    if (!dgamma) dgamma = (dg_scratch = DeviceArray<T>(C)).data();
    if (!dbeta) dbeta = (db_scratch = DeviceArray<T>(C)).data();
    const T one = 1, zero = 0;
    // The saved mean and 1/sqrt(var + eps) are those of the forward pass, so cuDNN does not
    // recompute them; its epsilon argument is then unused but must be valid.
    DAM_CUDNN_CHECK(cudnnBatchNormalizationBackward(handles().dnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero,
                                                    d.x.get(), x, d.x.get(), dy, d.x.get(), dx, d.c.get(), a.gamma, dgamma,
                                                    dbeta, CUDNN_BN_MIN_EPSILON, mean, invstd));
}

}  // namespace diffautoml::backend_cuda
