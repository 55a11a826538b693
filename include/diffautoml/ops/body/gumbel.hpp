#pragma once
// Row bodies of Gumbel-softmax sampling (Jang et al. 2017; Maddison et al. 2017), shared by the
// CPU sampler's tests and the CUDA kernels:
//     y = softmax((z + g) / tau),  g_k = -log(-log(u_k)),  u_k = uniform (first + k) of a Philox stream,
// so that element (r, k) of a (rows, K) tensor uses the same counter as sampling::gumbel_noise
// (flat index r K + k) and the GPU draws the CPU's numbers. Hard sampling returns the argmax
// (first index on ties); its straight-through gradient is the soft one.
#include <cmath>
#include <cstdint>

#include "../../core/error.hpp"
#include "../../core/rng.hpp"

namespace diffautoml::body {

/// Uniforms are clamped to [kUniformClamp, 1 - kUniformClamp] before any logarithm, so that
/// -log(-log(u)) and log(u) - log(1 - u) are finite for every draw (u = 0 or 1 would give +-Inf
/// and then NaN in the softmax). The clamp bounds Gumbel noise to about [-3.1, 23.0].
inline constexpr double kUniformClamp = 1e-10;

DAM_HOST_DEVICE inline double clamp_uniform(double u) {
    return u < kUniformClamp ? kUniformClamp : (u > 1.0 - kUniformClamp ? 1.0 - kUniformClamp : u);
}
/// Gumbel(0, 1) from a uniform: g = -log(-log(u)).
DAM_HOST_DEVICE inline double gumbel_from_uniform(double u) { return -std::log(-std::log(clamp_uniform(u))); }

/// Logistic(0, 1) from a uniform: log(u) - log(1 - u).
DAM_HOST_DEVICE inline double logistic_from_uniform(double u) {
    u = clamp_uniform(u);
    return std::log(u) - std::log1p(-u);
}

/// The distributions of the noise kernels (philox_noise): element i of a tensor is the transform
/// of uniform i of the stream, on every device.
enum class Noise { gumbel, logistic };
DAM_HOST_DEVICE inline double noise_from_uniform(Noise kind, double u) {
    return kind == Noise::gumbel ? gumbel_from_uniform(u) : logistic_from_uniform(u);
}

/// Writes the soft sample of one row into y and returns its argmax.
template <class T>
DAM_HOST_DEVICE inline std::int64_t gumbel_softmax_row(const T* z, std::int64_t K, double tau, const PhiloxStream& s,
                                                       std::uint64_t first, T* y) {
    const T inv_tau = static_cast<T>(1.0 / tau);
    T mx = 0;
    std::int64_t arg = 0;
    for (std::int64_t k = 0; k < K; ++k) {
        const T noisy = z[k] + static_cast<T>(gumbel_from_uniform(s.uniform_double(first + static_cast<std::uint64_t>(k))));
        y[k] = noisy * inv_tau;
        if (k == 0 || y[k] > mx) {
            mx = y[k];
            arg = k;
        }
    }
    T sum = 0;
    for (std::int64_t k = 0; k < K; ++k) sum += (y[k] = std::exp(y[k] - mx));
    const T inv = T(1) / sum;
    for (std::int64_t k = 0; k < K; ++k) y[k] *= inv;
    return arg;
}

/// Backward of one soft row y = softmax(a / tau): dz[k] = y[k] (g[k] - sum_j g[j] y[j]) / tau.
template <class T>
DAM_HOST_DEVICE inline void gumbel_softmax_row_backward(const T* y, const T* g, std::int64_t K, double tau, T* dz) {
    T s = 0;
    for (std::int64_t k = 0; k < K; ++k) s += g[k] * y[k];
    const T inv_tau = static_cast<T>(1.0 / tau);
    for (std::int64_t k = 0; k < K; ++k) dz[k] = y[k] * (g[k] - s) * inv_tau;
}

}  // namespace diffautoml::body
