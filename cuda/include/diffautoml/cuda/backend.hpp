#pragma once
// The CUDA backend as ordinary C++ code sees it: declarations of every backend_cuda kernel entry
// the op front doors call, so that a translation unit compiled by g++ (the library cannot go
// through nvcc) can instantiate Var<T, cuda> ops. The definitions are the .cuh files; they are
// instantiated for float and double in one .cu file (cuda/diffautoml_cuda.cu), which the CMake
// target diffautoml::cuda_backend adds to whatever links it. The cuDNN and cuBLAS ops (conv.hpp,
// gemm.hpp) are host code and come whole.
#include <cstdint>
#include <span>
#include <vector>

#include <diffautoml/core/rng.hpp>
#include <diffautoml/ops/body/augment.hpp>
#include <diffautoml/ops/body/gumbel.hpp>
#include <diffautoml/ops/body/optim.hpp>
#include <diffautoml/ops/broadcast.hpp>
#include <diffautoml/ops/conv_params.hpp>

#include "memory.hpp"

namespace diffautoml::backend_cuda {

// memory.cuh
template <class T> void fill_n(cuda, T* dst, std::int64_t n, T value);
template <class T> void copy_n(cuda, T* dst, const T* src, std::int64_t n);
template <class T> void add_n(cuda, T* dst, const T* src, std::int64_t n);
// reduce.cuh
template <class T> void sum(cuda, const T* x, std::int64_t n, T* out);
template <class T>
double dot_sum(cuda, const std::vector<const T*>& a, const std::vector<const T*>& b, const std::vector<std::int64_t>& n);
// elementwise.cuh
template <class F, class T> void unary_forward(cuda, F f, const T* x, T* y, std::int64_t n);
template <class F, class T> void unary_backward(cuda, F f, const T* x, const T* y, const T* g, T* dx, std::int64_t n);
// layout.cuh
template <class Op, class T> void binary_forward(cuda, const Op& op, const BroadcastPlan& p, const T* a, const T* b, T* out);
template <class Op, class T>
void binary_backward_full(cuda, const Op& op, const BroadcastPlan& p, const T* a, const T* b, const T* g, T* ga, T* gb);
template <class T> void sum_to(cuda, const BroadcastPlan& p, const T* full, T* target, std::int64_t target_numel);
template <class T> void sum_axis(cuda, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner);
template <class T> void expand_axis(cuda, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, T s);
template <class T> T sum_all(cuda, const T* x, std::int64_t n);
template <class T>
void copy_axis_block(cuda, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t dst_n,
                     std::int64_t offset, bool add);
template <class T>
void narrow_axis(cuda, const T* src, T* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t src_n,
                 std::int64_t offset);
template <class T>
void permute_channels(cuda, const T* x, T* y, const std::int64_t* perm, std::int64_t N, std::int64_t C, std::int64_t inner,
                      bool inverse);
template <class T> void softmax_forward(cuda, const T* x, T* y, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log);
template <class T>
void softmax_backward(cuda, const T* y, const T* g, T* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, bool log);
template <class T> void max_pool2d_forward(cuda, const T* x, T* y, std::int32_t* argmax, const PoolGeometry& g);
template <class T> void max_pool2d_backward(cuda, const T* dy, const std::int32_t* argmax, T* dx, const PoolGeometry& g);
template <class T> void avg_pool2d_forward(cuda, const T* x, T* y, const PoolGeometry& g);
template <class T> void avg_pool2d_backward(cuda, const T* dy, T* dx, const PoolGeometry& g);
// cross_entropy.cuh
template <class T>
void cross_entropy_forward(cuda, const T* logits, const std::int32_t* labels, T* loss, T* prob, std::int64_t N, std::int64_t K,
                           double smoothing);
template <class T>
void cross_entropy_backward(cuda, const T* prob, const std::int32_t* labels, const T* g, bool g_per_sample, T* dx,
                            std::int64_t N, std::int64_t K, double smoothing, T scale);
// mixed.cuh
template <class T> void weighted_sum_forward(cuda, const T* const* xs, const T* w, std::int64_t K, std::int64_t n, T* y);
template <class T>
void weighted_sum_backward(cuda, const T* const* xs, const T* w, const T* g, std::int64_t K, std::int64_t n, T* const* dxs,
                           T* dw);
// norm.cuh
template <class T>
void batchnorm2d_forward_train(cuda, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                               T* running_mean, T* running_var, std::int64_t N, std::int64_t C, std::int64_t HW,
                               double momentum, double eps, bool relu);
template <class T>
void batchnorm2d_forward_eval(cuda, const T* x, const T* gamma, const T* beta, T* y, T* mean_out, T* invstd_out,
                              const T* running_mean, const T* running_var, std::int64_t N, std::int64_t C, std::int64_t HW,
                              double eps, bool relu);
template <class T>
void batchnorm2d_backward(cuda, const T* x, const T* y, const T* dy, const T* gamma, const T* mean, const T* invstd, T* dx,
                          T* dgamma, T* dbeta, std::int64_t N, std::int64_t C, std::int64_t HW, bool training);
// optim.cuh
template <class T> void sgd_step(cuda, T* w, const T* g, T* buf, std::int64_t n, const body::SgdStep<T>& s);
template <class T> void adam_step(cuda, T* w, const T* g, T* m, T* v, std::int64_t n, const body::AdamStep<T>& s);
// gumbel.cuh
template <class T> void philox_noise(cuda, T* y, std::int64_t n, const PhiloxStream& s, body::Noise kind);
template <class T>
void gumbel_softmax_forward(cuda, const T* z, std::int64_t rows, std::int64_t K, double tau, const PhiloxStream& s, T* soft,
                            T* hard, std::int64_t* index);
template <class T>
void gumbel_softmax_backward(cuda, const T* soft, const T* g, std::int64_t rows, std::int64_t K, double tau, T* dz);
// augment.cuh
template <class T>
void augment_forward(cuda, const T* x, T* y, std::span<const da::OpDraw> draws, std::span<const double> m, std::int64_t N,
                     std::int64_t S, std::int64_t C, std::int64_t H, std::int64_t W, const da::AugmentOptions& o);
template <class T>
std::vector<double> augment_backward(cuda, const T* x, const T* gy, T* gx, std::span<const da::OpDraw> draws,
                                     std::span<const double> m, std::int64_t N, std::int64_t C, std::int64_t H,
                                     std::int64_t W, const da::AugmentOptions& o, da::MagnitudeGradient mode);

}  // namespace diffautoml::backend_cuda

#include "conv.hpp"
#include "gemm.hpp"

#include <diffautoml/ops/backend.hpp>

static_assert(diffautoml::Backend<diffautoml::cuda>, "the CUDA backend misses a kernel of the Backend contract (ops/backend.hpp)");
