#pragma once
// Element bodies of the optimizer updates (optim/optimizer.hpp), shared by the CPU loops
// (ops/cpu/optim.hpp) and the CUDA kernels (cuda/), so the CPU tests cover the GPU arithmetic.
#include <cmath>
#include <cstdint>

#include "../../core/error.hpp"

namespace diffautoml::body {

/// The hyperparameters of one SGD step of one parameter group.
template <class T>
struct SgdStep {
    T lr, wd, mu, damp;
    bool nesterov;
    bool first;  ///< the momentum buffer is empty: it becomes d
};

/// SGD with momentum as PyTorch writes it: d = g + wd w; b = mu b + damp d (b = d the first
/// time); w -= lr (nesterov ? d + mu b : b). b may be null (no momentum).
template <class T>
DAM_HOST_DEVICE inline void sgd_update_at(T* w, const T* g, T* b, std::int64_t i, const SgdStep<T>& s) {
    T d = g[i] + s.wd * w[i];
    if (b) {
        b[i] = s.first ? d : s.mu * b[i] + s.damp * d;
        d = s.nesterov ? d + s.mu * b[i] : b[i];
    }
    w[i] -= s.lr * d;
}

/// The hyperparameters of one Adam step of one parameter group (bias corrections folded in).
template <class T>
struct AdamStep {
    T lr;           ///< the group's learning rate (decoupled weight decay uses it)
    T step;         ///< lr / (1 - beta1^t)
    T wd, b1, b2, eps;
    T inv_sqrt_c2;  ///< 1 / sqrt(1 - beta2^t)
    bool decoupled; ///< AdamW
};

/// Adam (Kingma & Ba 2015) with bias correction; AdamW when decoupled.
template <class T>
DAM_HOST_DEVICE inline void adam_update_at(T* w, const T* g, T* m, T* v, std::int64_t i, const AdamStep<T>& s) {
    T gr = g[i];
    if (s.decoupled) {
        w[i] -= s.lr * s.wd * w[i];
    } else {
        gr += s.wd * w[i];
    }
    m[i] = s.b1 * m[i] + (1 - s.b1) * gr;
    v[i] = s.b2 * v[i] + (1 - s.b2) * gr * gr;
    w[i] -= s.step * m[i] / (std::sqrt(v[i]) * s.inv_sqrt_c2 + s.eps);
}

}  // namespace diffautoml::body
