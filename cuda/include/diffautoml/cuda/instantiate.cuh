#pragma once
// Explicit instantiations of every backend_cuda kernel entry (backend.hpp) for float and double,
// and of the elementwise ones for every functor of ops/functors.hpp. Included by exactly one .cu
// file of a program (cuda/diffautoml_cuda.cu does it for the diffautoml::cuda_backend target), so
// that code compiled by g++ links against kernels compiled by nvcc.
#include <diffautoml/ops/functors.hpp>

#include "../cuda.cuh"
#include "backend.hpp"

namespace diffautoml::backend_cuda {

#define DAM_CUDA_UNARY(F, T)                                                                      \
    template void unary_forward<fn::F, T>(cuda, fn::F, const T*, T*, std::int64_t);               \
    template void unary_backward<fn::F, T>(cuda, fn::F, const T*, const T*, const T*, T*, std::int64_t);
#define DAM_CUDA_BINARY(F, T)                                                                                \
    template void binary_forward<fn::F, T>(cuda, const fn::F&, const BroadcastPlan&, const T*, const T*, T*); \
    template void binary_backward_full<fn::F, T>(cuda, const fn::F&, const BroadcastPlan&, const T*, const T*, const T*, T*, T*);
#define DAM_CUDA_FUNCTORS(T)                                                                      \
    DAM_CUDA_UNARY(Exp, T) DAM_CUDA_UNARY(Log, T) DAM_CUDA_UNARY(Sigmoid, T) DAM_CUDA_UNARY(Tanh, T) \
    DAM_CUDA_UNARY(Relu, T) DAM_CUDA_UNARY(Relu6, T) DAM_CUDA_UNARY(Neg, T) DAM_CUDA_UNARY(Square, T) \
    DAM_CUDA_UNARY(Sqrt, T) DAM_CUDA_UNARY(AddScalar, T) DAM_CUDA_UNARY(MulScalar, T)               \
    DAM_CUDA_UNARY(ScaleShift, T) DAM_CUDA_UNARY(ShiftScale, T)                                     \
    DAM_CUDA_UNARY(RdivScalar, T) DAM_CUDA_UNARY(PowScalar, T)                                       \
    DAM_CUDA_BINARY(Add, T) DAM_CUDA_BINARY(Sub, T) DAM_CUDA_BINARY(Mul, T) DAM_CUDA_BINARY(Div, T)

#define DAM_CUDA_INSTANTIATE(T)                                                                                          \
    template void fill_n<T>(cuda, T*, std::int64_t, T);                                                                  \
    template void copy_n<T>(cuda, T*, const T*, std::int64_t);                                                           \
    template void add_n<T>(cuda, T*, const T*, std::int64_t);                                                            \
    template void sum<T>(cuda, const T*, std::int64_t, T*);                                                              \
    template double dot_sum<T>(cuda, const std::vector<const T*>&, const std::vector<const T*>&,                         \
                               const std::vector<std::int64_t>&);                                                        \
    template void sum_to<T>(cuda, const BroadcastPlan&, const T*, T*, std::int64_t);                                     \
    template void sum_axis<T>(cuda, const T*, T*, std::int64_t, std::int64_t, std::int64_t);                            \
    template void expand_axis<T>(cuda, const T*, T*, std::int64_t, std::int64_t, std::int64_t, T);                       \
    template T sum_all<T>(cuda, const T*, std::int64_t);                                                                 \
    template void copy_axis_block<T>(cuda, const T*, T*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,         \
                                     std::int64_t, bool);                                                                \
    template void narrow_axis<T>(cuda, const T*, T*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t); \
    template void permute_channels<T>(cuda, const T*, T*, const std::int64_t*, std::int64_t, std::int64_t, std::int64_t, \
                                      bool);                                                                             \
    template void softmax_forward<T>(cuda, const T*, T*, std::int64_t, std::int64_t, std::int64_t, bool);                \
    template void softmax_backward<T>(cuda, const T*, const T*, T*, std::int64_t, std::int64_t, std::int64_t, bool);     \
    template void max_pool2d_forward<T>(cuda, const T*, T*, std::int32_t*, const PoolGeometry&);                         \
    template void max_pool2d_backward<T>(cuda, const T*, const std::int32_t*, T*, const PoolGeometry&);                  \
    template void avg_pool2d_forward<T>(cuda, const T*, T*, const PoolGeometry&);                                        \
    template void avg_pool2d_backward<T>(cuda, const T*, T*, const PoolGeometry&);                                       \
    template void cross_entropy_forward<T>(cuda, const T*, const std::int32_t*, T*, T*, std::int64_t, std::int64_t, double); \
    template void cross_entropy_backward<T>(cuda, const T*, const std::int32_t*, const T*, bool, T*, std::int64_t,       \
                                            std::int64_t, double, T);                                                    \
    template void weighted_sum_forward<T>(cuda, const T* const*, const T*, std::int64_t, std::int64_t, T*);              \
    template void weighted_sum_backward<T>(cuda, const T* const*, const T*, const T*, std::int64_t, std::int64_t,        \
                                           T* const*, T*);                                                               \
    template void batchnorm2d_forward_train<T>(cuda, const T*, const T*, const T*, T*, T*, T*, T*, T*, std::int64_t,     \
                                               std::int64_t, std::int64_t, double, double, bool);                        \
    template void batchnorm2d_forward_eval<T>(cuda, const T*, const T*, const T*, T*, T*, T*, const T*, const T*,        \
                                              std::int64_t, std::int64_t, std::int64_t, double, bool);                   \
    template void batchnorm2d_backward<T>(cuda, const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,  \
                                          std::int64_t, std::int64_t, std::int64_t, bool);                               \
    template void sgd_step<T>(cuda, T*, const T*, T*, std::int64_t, const body::SgdStep<T>&);                            \
    template void adam_step<T>(cuda, T*, const T*, T*, T*, std::int64_t, const body::AdamStep<T>&);                      \
    template void gumbel_softmax_forward<T>(cuda, const T*, std::int64_t, std::int64_t, double, const PhiloxStream&, T*, \
                                            T*, std::int64_t*);                                                          \
    template void philox_noise<T>(cuda, T*, std::int64_t, const PhiloxStream&, body::Noise);                           \
    template void gumbel_softmax_backward<T>(cuda, const T*, const T*, std::int64_t, std::int64_t, double, T*);          \
    template void augment_forward<T>(cuda, const T*, T*, std::span<const da::OpDraw>, std::span<const double>,        \
                                     std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t,               \
                                     const da::AugmentOptions&);                                                         \
    template std::vector<double> augment_backward<T>(cuda, const T*, const T*, T*, std::span<const da::OpDraw>,          \
                                                     std::span<const double>, std::int64_t, std::int64_t, std::int64_t,  \
                                                     std::int64_t, const da::AugmentOptions&, da::MagnitudeGradient);    \
    DAM_CUDA_FUNCTORS(T)

DAM_CUDA_INSTANTIATE(float)
DAM_CUDA_INSTANTIATE(double)
// Integer tensors (labels, argmax) need the memory primitives only.
template void fill_n<std::int32_t>(cuda, std::int32_t*, std::int64_t, std::int32_t);
template void copy_n<std::int32_t>(cuda, std::int32_t*, const std::int32_t*, std::int64_t);
template void add_n<std::int32_t>(cuda, std::int32_t*, const std::int32_t*, std::int64_t);

#undef DAM_CUDA_INSTANTIATE
#undef DAM_CUDA_FUNCTORS
#undef DAM_CUDA_BINARY
#undef DAM_CUDA_UNARY

}  // namespace diffautoml::backend_cuda
