#pragma once
// Data-parallel building blocks over a dist::Communicator (docs/distributed.md), what a trainer
// calls around each step of a run on several ranks:
//  - allreduce_gradients: every parameter's gradient summed over the ranks in one allreduce of one
//    packed buffer, then scaled (1 / ranks gives the global mean when each rank's loss is the mean
//    over an equal share of the global batch);
//  - average_buffers: batch-norm running statistics (every buffer) averaged over the ranks, before
//    evaluation, checkpoints and export;
//  - broadcast_state: parameters and buffers of one rank copied to all (the start of a run, and a
//    resumed checkpoint read on one rank).
// Values pass through the host (a device's tensors are copied there and back); the NCCL backend,
// when it comes, reduces on the device.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../dist/communicator.hpp"
#include "../nn/module.hpp"

namespace diffautoml::optim {

/// Sums the gradients of `params` over the ranks, then multiplies them by `scale`. A parameter
/// whose gradient is undefined on a rank (a candidate its sampled path did not reach) counts as
/// zero there; after the call it has a gradient on every rank if it had one on any rank, and stays
/// undefined on all of them otherwise, so every rank steps the same parameters. One allreduce: a
/// flag per parameter, then every value, then `extra` (summed, not scaled: what a trainer must
/// decide together with the step, such as the loss and flags), in one buffer of T.
template <dist::Communicator C, class T, Device D>
void allreduce_gradients(C& comm, const std::vector<Var<T, D>>& params, double scale, std::span<T> extra = {}) {
    static_assert(dist::Reducible<T>, "allreduce_gradients: gradients of float or double");
    const std::size_t P = params.size();
    std::size_t total = P;
    for (const auto& p : params) total += static_cast<std::size_t>(p.numel());
    std::vector<T> buf(total + extra.size(), T(0));
    std::copy(extra.begin(), extra.end(), buf.begin() + static_cast<std::ptrdiff_t>(total));
    std::size_t at = P;
    for (std::size_t i = 0; i < P; ++i) {
        const auto& p = params[i];
        if (p.grad().defined()) {
            buf[i] = T(1);
            const Tensor<T> g = on_host(p.grad());
            std::copy(g.data(), g.data() + g.numel(), buf.begin() + static_cast<std::ptrdiff_t>(at));
        }
        at += static_cast<std::size_t>(p.numel());
    }
    comm.allreduce(std::span<T>(buf), dist::ReduceOp::sum);
    const T s = static_cast<T>(scale);
    at = P;
    for (std::size_t i = 0; i < P; ++i) {
        auto p = params[i];
        const auto n = static_cast<std::size_t>(p.numel());
        if (buf[i] > T(0)) {
            Tensor<T> g(p.shape());
            for (std::size_t k = 0; k < n; ++k) g[static_cast<std::int64_t>(k)] = buf[at + k] * s;
            if (!p.grad().defined()) p.grad() = Tensor<T, D>(p.shape());
            copy_from_host(p.grad(), g);
        }
        at += n;
    }
    std::copy(buf.begin() + static_cast<std::ptrdiff_t>(total), buf.end(), extra.begin());
}

namespace detail {
/// The values of `tensors` one after another in one host buffer.
template <class T, Device D>
std::vector<T> pack(const std::vector<Tensor<T, D>>& tensors) {
    std::vector<T> buf;
    for (const auto& t : tensors) {
        const Tensor<T> h = on_host(t);
        buf.insert(buf.end(), h.data(), h.data() + h.numel());
    }
    return buf;
}
/// The inverse of pack, each value times `scale`, written into the tensors' storage.
template <class T, Device D>
void unpack(const std::vector<T>& buf, const std::vector<Tensor<T, D>>& tensors, T scale) {
    std::size_t at = 0;
    for (const auto& t : tensors) {
        Tensor<T> h(t.shape());
        for (std::int64_t k = 0; k < h.numel(); ++k) h[k] = buf[at + static_cast<std::size_t>(k)] * scale;
        copy_from_host(t, h);
        at += static_cast<std::size_t>(t.numel());
    }
}
template <class T, Device D>
std::vector<Tensor<T, D>> buffers_of(const nn::Module<T, D>& m) {
    std::vector<Tensor<T, D>> out;
    for (const auto& [name, b] : m.named_buffers()) out.push_back(b);
    return out;
}
}  // namespace detail

/// Replaces every buffer of `m` (batch-norm running means and variances) by its mean over the ranks.
template <dist::Communicator C, class T, Device D>
void average_buffers(C& comm, const nn::Module<T, D>& m) {
    static_assert(dist::Reducible<T>, "average_buffers: buffers of float or double");
    const auto buffers = detail::buffers_of(m);
    std::vector<T> buf = detail::pack(buffers);
    comm.allreduce(std::span<T>(buf), dist::ReduceOp::sum);
    detail::unpack(buf, buffers, static_cast<T>(1.0 / static_cast<double>(comm.size())));
}

/// Copies every parameter value and buffer of `m` on rank `root` to the same module on every rank.
template <dist::Communicator C, class T, Device D>
void broadcast_state(C& comm, const nn::Module<T, D>& m, int root) {
    static_assert(dist::Reducible<T>, "broadcast_state: values of float or double");
    std::vector<Tensor<T, D>> tensors;
    for (const auto& [name, p] : m.named_parameters()) tensors.push_back(p.value());
    for (const auto& b : detail::buffers_of(m)) tensors.push_back(b);
    std::vector<T> buf = detail::pack(tensors);
    comm.broadcast(std::span<T>(buf), root);
    detail::unpack(buf, tensors, T(1));
}

}  // namespace diffautoml::optim
