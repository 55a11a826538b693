#pragma once
// CPU references for the GPU tests. They are compiled by the host compiler in reference.cpp, so
// the full library (Eigen, the samplers, the DA ops) never goes through nvcc; the .cu file sees
// only these plain signatures and the kernels.
#include <cstdint>
#include <string>
#include <vector>

#include <diffautoml/ops/body/augment.hpp>
#include <diffautoml/ops/broadcast.hpp>
#include <diffautoml/ops/conv_params.hpp>

namespace dam_ref {

/// n values ~ N(0, sd^2) or U(lo, hi) from a Philox generator with this seed.
std::vector<float> normal(std::int64_t n, std::uint64_t seed, double sd = 1.0);
std::vector<float> uniform(std::int64_t n, std::uint64_t seed, double lo, double hi);

void weighted_sum_forward(const std::vector<const float*>& xs, const float* w, std::int64_t n, float* y);
void weighted_sum_backward(const std::vector<const float*>& xs, const float* w, const float* g, std::int64_t n,
                           const std::vector<float*>& dxs, float* dw);

/// sampling::gumbel_softmax on (rows, K) logits with PhiloxStream{seed, stream}; with `seed_grad`
/// also the gradient of sum(seed_grad * soft) in the logits (into dz).
void gumbel_softmax(const float* z, std::int64_t rows, std::int64_t K, double tau, std::uint64_t seed, std::uint64_t stream,
                    bool hard, float* y, const float* seed_grad = nullptr, float* dz = nullptr);

void cross_entropy(const float* z, const std::int32_t* labels, std::int64_t N, std::int64_t K, double smoothing,
                   const float* g, float scale, float* loss, float* prob, float* dz);

/// The scalars of the parameterised functors in the GPU tests (the same on both sides).
inline constexpr double kTestScalar = 0.7, kTestShift = -0.3, kTestPower = 2.5;

/// Every functor of ops/functors.hpp by its name (fn::X::name: "exp", "log", "sigmoid", "tanh",
/// "relu", "relu6", "neg", "square", "sqrt", "add_scalar", "mul_scalar", "scale_shift",
/// "shift_scale", "rdiv_scalar", "pow_scalar", with the scalars above), forward and backward.
void unary(const std::string& op, const float* x, const float* g, std::int64_t n, float* y, float* dx);

/// The binary functors by name ("add", "sub", "mul", "div"): out = op(a, b) under plan, and the
/// full-size partial products ga, gb.
void binary(const std::string& op, const diffautoml::BroadcastPlan& p, const float* a, const float* b, const float* g,
            float* out, float* ga, float* gb);

/// da::kernels::forward / backward (exact magnitude gradient) for each image; gx is overwritten.
void warp(const float* x, const float* gy, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
          const std::vector<diffautoml::da::OpDraw>& draws, const std::vector<double>& m,
          const diffautoml::da::AugmentOptions& o, float* y, float* gx, std::vector<double>& gm);

/// backend_cpu::augment_forward: S ops per image (draws[n S + s] is the s-th op of image n).
void augment_images(const float* x, std::int64_t N, std::int64_t S, std::int64_t C, std::int64_t H, std::int64_t W,
                    const std::vector<diffautoml::da::OpDraw>& draws, const std::vector<double>& m,
                    const diffautoml::da::AugmentOptions& o, float* y);

/// sampling::gumbel_noise (logistic = false) or logistic_noise of n values, PhiloxStream{seed, stream}.
std::vector<float> noise(std::int64_t n, std::uint64_t seed, std::uint64_t stream, bool logistic);

/// backend_cpu::conv2d_forward / backward_data / backward_weight (bias and db may be null).
void conv2d(const float* x, const float* w, const float* bias, const float* dy, const diffautoml::ConvGeometry& g, float* y,
            float* dx, float* dw, float* db);

/// backend_cpu::batchnorm2d_* over (N, C, HW): training or evaluation forward (running statistics
/// updated in place in training), then the backward for dy; null gamma/beta as in the library.
void batchnorm(const float* x, const float* gamma, const float* beta, const float* dy, float* running_mean,
               float* running_var, std::int64_t N, std::int64_t C, std::int64_t HW, bool training, bool relu,
               double momentum, double eps, float* y, float* mean, float* invstd, float* dx, float* dgamma,
               float* dbeta);

/// backend_cpu::gemm (row-major, C (+)= op(A) op(B)).
void gemm(bool trans_a, bool trans_b, std::int64_t M, std::int64_t N, std::int64_t K, const float* A, const float* B,
          float* C, bool accumulate);

/// The CPU kernels of the remaining front doors (the backend_cpu functions of the same names).
void binary_mul(const diffautoml::BroadcastPlan& p, const float* a, const float* b, const float* g, float* out, float* ga,
                float* gb);
void sum_to(const diffautoml::BroadcastPlan& p, const float* full, float* target, std::int64_t target_numel);
void sum_axis(const float* x, float* y, std::int64_t outer, std::int64_t n, std::int64_t inner);
void expand_axis(const float* g, float* dx, std::int64_t outer, std::int64_t n, std::int64_t inner, float s);
void copy_axis_block(const float* src, float* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t dst_n,
                     std::int64_t offset, bool add);
void narrow_axis(const float* src, float* dst, std::int64_t outer, std::int64_t n, std::int64_t inner, std::int64_t src_n,
                 std::int64_t offset);
void permute_channels(const float* x, float* y, const std::int64_t* perm, std::int64_t N, std::int64_t C, std::int64_t inner,
                      bool inverse);
void softmax(const float* x, const float* g, float* y, float* dx, std::int64_t outer, std::int64_t n, std::int64_t inner,
             bool log);
void max_pool(const float* x, const float* dy, float* y, std::int32_t* argmax, float* dx, const diffautoml::PoolGeometry& g);
void avg_pool(const float* x, const float* dy, float* y, float* dx, const diffautoml::PoolGeometry& g);

/// n steps of optim::SGD (momentum 0.9, Nesterov) or optim::Adam on w with the gradients gs[k]
/// (one vector per step), through the library's optimizers; returns w.
std::vector<float> optimize(const std::string& which, std::vector<float> w, const std::vector<std::vector<float>>& gs);

}  // namespace dam_ref
