#pragma once
// CPU optimizer updates over one parameter tensor (the element arithmetic is ops/body/optim.hpp).
#include <cstdint>

#include "../../core/device.hpp"
#include "../body/optim.hpp"

namespace diffautoml::backend_cpu {

template <class T>
void sgd_step(cpu, T* w, const T* g, T* buf, std::int64_t n, const body::SgdStep<T>& s) {
    for (std::int64_t i = 0; i < n; ++i) body::sgd_update_at(w, g, buf, i, s);
}

template <class T>
void adam_step(cpu, T* w, const T* g, T* m, T* v, std::int64_t n, const body::AdamStep<T>& s) {
    for (std::int64_t i = 0; i < n; ++i) body::adam_update_at(w, g, m, v, i, s);
}

}  // namespace diffautoml::backend_cpu
