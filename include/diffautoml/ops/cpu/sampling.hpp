#pragma once
// CPU kernels of the samplers: Philox noise (Gumbel or Logistic, element i from uniform i of the
// stream) and Gumbel-softmax rows, the bodies of ops/body/gumbel.hpp that the CUDA kernels
// (cuda/gumbel.cuh) run too, so that one (seed, stream) gives the same draws on every device.
#include <cstdint>

#include "../../core/parallel.hpp"
#include "../../core/rng.hpp"
#include "../body/gumbel.hpp"

namespace diffautoml::backend_cpu {

/// y[i] = the `kind` transform of uniform i of stream s, for i < n.
template <class T>
void philox_noise(cpu, T* y, std::int64_t n, const PhiloxStream& s, body::Noise kind) {
    parallel_for(
        n, [&](std::int64_t i) { y[i] = static_cast<T>(body::noise_from_uniform(kind, s.uniform_double(static_cast<std::uint64_t>(i)))); },
        1 << 12);
}

/// soft = softmax((z + g) / tau) per row of (rows, K), g Gumbel noise (row r uses uniforms r K ..);
/// hard (optional) = the one-hot argmax; index (optional) = the argmax.
template <class T>
void gumbel_softmax_forward(cpu, const T* z, std::int64_t rows, std::int64_t K, double tau, const PhiloxStream& s, T* soft,
                            T* hard, std::int64_t* index) {
    parallel_for(
        rows,
        [&](std::int64_t r) {
            const std::int64_t arg =
                body::gumbel_softmax_row(z + r * K, K, tau, s, static_cast<std::uint64_t>(r * K), soft + r * K);
            if (hard)
                for (std::int64_t k = 0; k < K; ++k) hard[r * K + k] = k == arg ? T(1) : T(0);
            if (index) index[r] = arg;
        },
        64);
}

/// dz = (d soft / dz)^T g per row; the hard sample's straight-through gradient is the same.
template <class T>
void gumbel_softmax_backward(cpu, const T* soft, const T* g, std::int64_t rows, std::int64_t K, double tau, T* dz) {
    parallel_for(
        rows, [&](std::int64_t r) { body::gumbel_softmax_row_backward(soft + r * K, g + r * K, K, tau, dz + r * K); }, 64);
}

}  // namespace diffautoml::backend_cpu
