#pragma once
// Front door of conv2d (NCHW; stride, padding, dilation, groups; depthwise included).
#include "../autograd/variable.hpp"
#include "../core/flops.hpp"
#include "conv_params.hpp"
#include "cpu/conv.hpp"

namespace diffautoml::ops {

/// y = conv2d(x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW)) + bias (Cout) when defined.
template <class T, Device D>
Var<T, D> conv2d(const Var<T, D>& x, const Var<T, D>& w, const Var<T, D>& bias = {}, Conv2dOptions opt = {}) {
    const ConvGeometry g = ConvGeometry::make(x.shape(), w.shape(), opt);
    DAM_CHECK(!bias.defined() || (bias.shape().rank() == 1 && bias.dim(0) == g.out_c), shape_error,
              "conv2d: bias must be ({},) for weight {}, got {}", g.out_c, w.shape(), bias.shape());
    count_macs(static_cast<double>(g.batch * g.out_c * g.out_h * g.out_w) * static_cast<double>(g.in_c / g.groups) *
               static_cast<double>(g.kh * g.kw));
    Tensor<T, D> y(g.out_shape());
    conv2d_forward(D{}, x.value().data(), w.value().data(), bias.defined() ? bias.value().data() : nullptr, y.data(), g);
    return Var<T, D>::make_result(
        y, "conv2d", {x, w, bias},
        [xn = x.node(), wn = w.node(), bn = bias.defined() ? bias.node() : nullptr, xv = x.value(), wv = w.value(),
         g](const Tensor<T, D>& dy) {
            if (xn->requires_grad) {
                Tensor<T, D> dx(xv.shape());
                conv2d_backward_data(D{}, dy.data(), wv.data(), dx.data(), g);
                xn->accumulate_owned(std::move(dx));
            }
            const bool need_b = bn && bn->requires_grad;
            if (wn->requires_grad || need_b) {
                Tensor<T, D> dw(wv.shape()), db;
                if (need_b) db = Tensor<T, D>(Shape{g.out_c});
                conv2d_backward_weight(D{}, xv.data(), dy.data(), dw.data(), db.data(), g);
                if (wn->requires_grad) wn->accumulate_owned(std::move(dw));
                if (need_b) bn->accumulate_owned(std::move(db));
            }
        });
}

}  // namespace diffautoml::ops
