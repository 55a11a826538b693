#pragma once
// The contract of a device backend, and the CPU backend whole. A backend is a namespace of
// kernels found by argument-dependent lookup on its device tag (docs/design.md, "Devices and the
// op front door"): memory primitives, elementwise maps, reductions, the dense and convolution
// kernels, the optimizers' steps, the samplers and the augmentation ops, each with the CPU's
// signature. `Backend<D>` checks a representative kernel of each family, so a device whose
// backend misses one, or is not included, fails at a concept check that names it rather than
// deep inside an op; `static_assert(Backend<cpu>)` below and at the end of the CUDA backend's
// header (cuda/include/diffautoml/cuda/backend.hpp) prove both.
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "../core/device.hpp"
#include "../core/rng.hpp"
#include "body/augment.hpp"
#include "body/gumbel.hpp"
#include "body/optim.hpp"
#include "broadcast.hpp"
#include "conv_params.hpp"
#include "cpu/augment.hpp"
#include "cpu/channel.hpp"
#include "cpu/conv.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/gemm.hpp"
#include "cpu/mixed.hpp"
#include "cpu/norm.hpp"
#include "cpu/optim.hpp"
#include "cpu/pool.hpp"
#include "cpu/sampling.hpp"
#include "cpu/softmax.hpp"
#include "functors.hpp"

namespace diffautoml {

/// A device whose backend is included and provides every kernel family the front doors call
/// (checked for float; a backend instantiates float and double alike).
template <class D>
concept Backend =
    Device<D> && backend_included<D> &&
    requires(const float* x, float* y, std::int64_t n, std::int32_t* argmax, const std::int32_t* labels,
             const BroadcastPlan& plan, const ConvGeometry& conv, const PoolGeometry& pool, const PhiloxStream& s,
             const body::SgdStep<float>& sgd, const body::AdamStep<float>& adam, const std::vector<const float*>& ptrs,
             const std::vector<std::int64_t>& sizes, const float* const* xs, float* const* dxs,
             std::span<const da::OpDraw> draws, std::span<const double> m, const da::AugmentOptions& o) {
        // memory
        fill_n(D{}, y, n, 0.0f);
        copy_n(D{}, y, x, n);
        add_n(D{}, y, x, n);
        upload_n(D{}, y, x, n);
        download_n(D{}, y, x, n);
        // elementwise and reductions
        unary_forward(D{}, fn::Relu{}, x, y, n);
        unary_backward(D{}, fn::Relu{}, x, x, x, y, n);
        binary_forward(D{}, fn::Add{}, plan, x, x, y);
        binary_backward_full(D{}, fn::Mul{}, plan, x, x, x, y, y);
        sum_to(D{}, plan, x, y, n);
        sum_axis(D{}, x, y, n, n, n);
        { sum_all(D{}, x, n) } -> std::same_as<float>;
        { dot_sum(D{}, ptrs, ptrs, sizes) } -> std::same_as<double>;
        softmax_forward(D{}, x, y, n, n, n, false);
        cross_entropy_forward(D{}, x, labels, y, y, n, n, 0.0);
        // dense, convolution, normalisation, pooling, mixed ops
        gemm(D{}, false, false, n, n, n, x, x, y, false);
        conv2d_forward(D{}, x, x, x, y, conv);
        conv2d_backward_data(D{}, x, x, y, conv);
        conv2d_backward_weight(D{}, x, x, y, y, conv);
        batchnorm2d_forward_train(D{}, x, x, x, y, y, y, y, y, n, n, n, 0.1, 1e-5, false);
        batchnorm2d_backward(D{}, x, x, x, x, x, x, y, y, y, n, n, n, true);
        max_pool2d_forward(D{}, x, y, argmax, pool);
        avg_pool2d_forward(D{}, x, y, pool);
        weighted_sum_forward(D{}, xs, x, n, n, y);
        weighted_sum_backward(D{}, xs, x, x, n, n, dxs, y);
        // optimizers
        sgd_step(D{}, y, x, y, n, sgd);
        adam_step(D{}, y, x, y, y, n, adam);
        // samplers and augmentation
        philox_noise(D{}, y, n, s, body::Noise::gumbel);
        gumbel_softmax_forward(D{}, x, n, n, 1.0, s, y, y, static_cast<std::int64_t*>(nullptr));
        gumbel_softmax_backward(D{}, x, x, n, n, 1.0, y);
        augment_forward(D{}, x, y, draws, m, n, n, n, n, n, o);
        { augment_backward(D{}, x, x, y, draws, m, n, n, n, n, o, da::MagnitudeGradient::exact) }
            -> std::same_as<std::vector<double>>;
    };

static_assert(Backend<cpu>, "the CPU backend misses a kernel of the Backend contract");

}  // namespace diffautoml
