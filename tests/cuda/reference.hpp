#pragma once
// CPU references for the GPU tests. They are compiled by the host compiler in reference.cpp, so
// the full library (Eigen, the samplers, the DA ops) never goes through nvcc; the .cu file sees
// only these plain signatures and the kernels.
#include <cstdint>
#include <string>
#include <vector>

#include <diffautoml/da/kernels.hpp>

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

/// fn::Relu, fn::Sigmoid or fn::Tanh ("relu", "sigmoid", "tanh") forward and backward.
void unary(const std::string& op, const float* x, const float* g, std::int64_t n, float* y, float* dx);

/// da::kernels::forward / backward (exact magnitude gradient) for each image; gx is overwritten.
void warp(const float* x, const float* gy, std::int64_t N, std::int64_t C, std::int64_t H, std::int64_t W,
          const std::vector<diffautoml::da::OpDraw>& draws, const std::vector<double>& m,
          const diffautoml::da::AugmentOptions& o, float* y, float* gx, std::vector<double>& gm);

}  // namespace dam_ref
