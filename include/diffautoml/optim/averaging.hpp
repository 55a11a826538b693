#pragma once
// Weight averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
// Generalization", 2018): the uniform mean of the weights at K points of the trajectory,
//   w_avg = (1/K) sum_k w_k,   kept as a running mean  w_avg <- w_avg + (w_k - w_avg) / k.
// The mean is kept on the host in double precision whatever the weights' device, so it costs one
// copy of the weights per call; call it rarely (once an epoch, as SWA does). Batch-norm running
// statistics are not averaged: recompute them for the averaged weights (nn::recalibrate_batch_norm).
#include <cstdint>
#include <string>
#include <vector>

#include "../autograd/variable.hpp"
#include "../core/state.hpp"

namespace diffautoml::optim {

template <class T, Device D = cpu>
class WeightAverage {
public:
    /// Adds the current values of `params` to the mean. Every call must pass the same tensors'
    /// shapes in the same order.
    void add(const std::vector<Var<T, D>>& params) {
        if (count_ == 0) {
            sizes_.clear();
            for (const auto& p : params) sizes_.push_back(p.value().numel());
            mean_.assign(static_cast<std::size_t>(total(sizes_)), 0.0);
        }
        check(params, "add");
        ++count_;
        const double k = static_cast<double>(count_);
        std::size_t o = 0;
        for (const auto& p : params) {
            const Tensor<T, cpu> h = on_host(p.value());
            const T* v = h.data();
            for (std::int64_t i = 0; i < h.numel(); ++i, ++o) mean_[o] += (static_cast<double>(v[i]) - mean_[o]) / k;
        }
    }

    /// Writes the mean into `params` (the tensors `add` was given, or ones of the same shapes).
    void copy_to(const std::vector<Var<T, D>>& params) const {
        DAM_CHECK(count_ > 0, value_error, "WeightAverage::copy_to: nothing has been averaged yet; call add first");
        check(params, "copy_to");
        std::size_t o = 0;
        for (const auto& p : params) {
            Tensor<T, cpu> h(p.value().shape());
            T* v = h.data();
            for (std::int64_t i = 0; i < h.numel(); ++i, ++o) v[i] = static_cast<T>(mean_[o]);
            copy_from_host(p.value(), h);
        }
    }

    /// How many weight states the mean holds.
    std::int64_t count() const { return count_; }
    /// The mean, flattened in the order of the parameters.
    const std::vector<double>& mean() const { return mean_; }

    void save_state(ByteWriter& w) const {
        w.put<std::int64_t>(count_);
        put_ints(w, sizes_);
        put_doubles(w, mean_);
    }
    void load_state(ByteReader& r) {
        const std::string what = "WeightAverage state";
        count_ = r.get<std::int64_t>();
        DAM_CHECK(count_ >= 0, format_error, "{}: corrupt (count {})", what, count_);
        sizes_.clear();
        get_ints(r, sizes_, what);
        mean_.clear();
        get_doubles(r, mean_, what);
        DAM_CHECK(static_cast<std::int64_t>(mean_.size()) == total(sizes_), format_error,
                  "{}: {} values for parameters of {} in all; the state is corrupt", what, mean_.size(), total(sizes_));
    }

private:
    static std::int64_t total(const std::vector<std::int64_t>& sizes) {
        std::int64_t n = 0;
        for (auto s : sizes) n += s;
        return n;
    }
    void check(const std::vector<Var<T, D>>& params, const char* who) const {
        DAM_CHECK(params.size() == sizes_.size(), shape_error,
                  "WeightAverage::{}: {} parameter tensors given, the mean holds {}; pass the same network's parameters",
                  who, params.size(), sizes_.size());
        for (std::size_t i = 0; i < params.size(); ++i)
            DAM_CHECK(params[i].value().numel() == sizes_[i], shape_error,
                      "WeightAverage::{}: parameter {} has {} values, the mean holds {}; pass the same network's "
                      "parameters in the same order",
                      who, i, params[i].value().numel(), sizes_[i]);
    }

    std::int64_t count_ = 0;
    std::vector<std::int64_t> sizes_;
    std::vector<double> mean_;
};

}  // namespace diffautoml::optim
