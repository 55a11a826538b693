#pragma once
// Front door of (inverted) dropout: kept values are scaled by 1 / (1 - p) during training.
#include "../autograd/variable.hpp"
#include "../core/rng.hpp"

namespace diffautoml::ops {

template <class T>
Var<T, cpu> dropout(const Var<T, cpu>& x, double p, bool training, Generator& gen) {
    DAM_CHECK(p >= 0 && p < 1, value_error, "dropout: p must be in [0, 1), got {}", p);
    if (!training || p == 0) return x;
    const PhiloxStream s = gen.next_stream();
    Tensor<T, cpu> mask(x.shape()), y(x.shape());
    const T keep = static_cast<T>(1.0 / (1.0 - p));
    const T* xp = x.value().data();
    parallel_for(x.numel(), [&](std::int64_t i) {
        mask[i] = s.uniform(static_cast<std::uint64_t>(i)) >= p ? keep : T(0);
        y[i] = xp[i] * mask[i];
    }, 1 << 14);
    return Var<T, cpu>::make_result(y, "dropout", {x}, [xn = x.node(), mask](const Tensor<T, cpu>& g) {
        Tensor<T, cpu> dx(mask.shape());
        for (std::int64_t i = 0; i < dx.numel(); ++i) dx[i] = g[i] * mask[i];
        xn->accumulate_owned(std::move(dx));
    });
}

}  // namespace diffautoml::ops
