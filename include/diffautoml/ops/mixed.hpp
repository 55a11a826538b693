#pragma once
// Front door of the fused weighted sum that mixed operations are built on:
//     y = sum_k w_k x_k,   dL/dx_k = w_k dL/dy,   dL/dw_k = <dL/dy, x_k>.
// DARTS and SNAS weight every candidate; DSNAS and GDAS run one candidate k and pass its gate
// w_k (= 1 in value) so that dL/dw_k = <dL/dy, x_k> exists.
#include <vector>

#include "../autograd/variable.hpp"
#include "cpu/mixed.hpp"

namespace diffautoml::ops {

/// y = sum_k w[k] * xs[k]; all xs share one shape and w has shape (K,).
template <class T, Device D>
Var<T, D> weighted_sum(const std::vector<Var<T, D>>& xs, const Var<T, D>& w) {
    DAM_CHECK(!xs.empty(), shape_error, "weighted_sum: needs at least one input");
    DAM_CHECK(w.defined() && w.shape().rank() == 1 && w.dim(0) == static_cast<std::int64_t>(xs.size()), shape_error,
              "weighted_sum: weights must have shape ({},) for {} inputs, got {}", xs.size(), xs.size(),
              w.defined() ? w.shape() : Shape{});
    for (std::size_t k = 1; k < xs.size(); ++k)
        DAM_CHECK(xs[k].shape() == xs[0].shape(), shape_error,
                  "weighted_sum: input {} has shape {} but input 0 has {}; every candidate of a mixed op must produce "
                  "the same shape",
                  k, xs[k].shape(), xs[0].shape());
    const auto K = static_cast<std::int64_t>(xs.size());
    const std::int64_t n = xs[0].numel();
    std::vector<const T*> ptrs;
    for (const auto& x : xs) ptrs.push_back(x.value().data());
    Tensor<T, D> y(xs[0].shape());
    weighted_sum_forward(D{}, ptrs.data(), w.value().data(), K, n, y.data());
    std::vector<Var<T, D>> inputs(xs);
    inputs.push_back(w);
    std::vector<Tensor<T, D>> values;
    for (const auto& x : xs) values.push_back(x.value());
    std::vector<typename Var<T, D>::NodeT*> nodes;
    for (const auto& x : xs) nodes.push_back(x.node());
    return Var<T, D>::make_result(
        y, "weighted_sum", inputs,
        [values = std::move(values), nodes = std::move(nodes), wv = w.value(), wn = w.node(), K, n](const Tensor<T, D>& g) {
            std::vector<Tensor<T, D>> dxs(static_cast<std::size_t>(K));
            std::vector<const T*> xp;
            std::vector<T*> dxp;
            for (std::int64_t k = 0; k < K; ++k) {
                const auto ks = static_cast<std::size_t>(k);
                xp.push_back(values[ks].data());
                if (nodes[ks]->requires_grad) dxs[ks] = Tensor<T, D>(values[ks].shape());
                dxp.push_back(nodes[ks]->requires_grad ? dxs[ks].data() : nullptr);
            }
            Tensor<T, D> dw;
            if (wn->requires_grad) dw = Tensor<T, D>(Shape{K});
            weighted_sum_backward(D{}, xp.data(), wv.data(), g.data(), K, n, dxp.data(),
                                  wn->requires_grad ? dw.data() : nullptr);
            for (std::int64_t k = 0; k < K; ++k)
                if (nodes[static_cast<std::size_t>(k)]->requires_grad)
                    nodes[static_cast<std::size_t>(k)]->accumulate_owned(std::move(dxs[static_cast<std::size_t>(k)]));
            if (wn->requires_grad) wn->accumulate_owned(std::move(dw));
        });
}

}  // namespace diffautoml::ops
