#pragma once
// AlphaPolicy: the state shared by the policies that learn the architecture logits alpha.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/state.hpp"
#include "../optim/optimizer.hpp"
#include "../sampling/sampling.hpp"
#include "concept.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

/// Shared state of the policies that learn alpha: one (K_d,) logit vector per decision, zero at
/// the start (uniform), stepped by Adam.
template <class T, Device D = cpu>
class AlphaPolicy {
public:
    using value_type = T;
    using device_type = D;

    AlphaPolicy(Supernet<T, D>& net, double lr, double beta1, double weight_decay) : net_(&net) {
        DAM_CHECK(lr > 0 && std::isfinite(lr), value_error, "NAS policy: architecture learning rate must be > 0, got {}", lr);
        for (const auto& d : net.decisions()) alphas_.emplace_back(Tensor<T, D>::zeros({d.size()}), true);
        optim::ParamGroup<T, D> group{alphas_, lr, weight_decay, "alpha"};
        adam_ = std::make_unique<optim::Adam<T, D>>(std::vector<optim::ParamGroup<T, D>>{group},
                                                 optim::AdamOptions{beta1, 0.999, 1e-8, false});
        fixed_.assign(alphas_.size(), -1);
    }

    std::vector<std::vector<double>> probabilities() const {
        std::vector<std::vector<double>> out;
        for (const auto& a : alphas_) out.push_back(sampling::softmax_row(row(a)));
        return out;
    }
    /// The space's derivation (Supernet::derive_architecture: argmax per decision unless the
    /// space says otherwise) of the current distributions, fixed decisions one-hot on their choice.
    std::vector<std::int64_t> derived() const {
        auto probs = probabilities();
        for (std::size_t d = 0; d < alphas_.size(); ++d)
            if (fixed_[d] >= 0) {
                std::fill(probs[d].begin(), probs[d].end(), 0.0);
                probs[d][static_cast<std::size_t>(fixed_[d])] = 1.0;
            }
        return net_->derive_architecture(probs);
    }
    bool searching() const {
        return std::any_of(fixed_.begin(), fixed_.end(), [](std::int64_t f) { return f < 0; });
    }
    /// Decisions fixed so far (-1: still searched).
    const std::vector<std::int64_t>& fixed() const { return fixed_; }
    std::vector<Var<T, D>>& alphas() { return alphas_; }
    const std::vector<Var<T, D>>& alphas() const { return alphas_; }
    Supernet<T, D>& net() { return *net_; }
    /// Logits, optimiser state and fixed decisions, for checkpoints.
    void save_state(ByteWriter& w) const {
        for (const auto& a : alphas_) put_tensor(w, a.value());
        adam_->save_state(w);
        put_ints(w, fixed_);
    }
    void load_state(ByteReader& r) {
        for (auto& a : alphas_) {
            Tensor<T, D> v = a.value();  // shares the storage: read in place
            get_tensor(r, v, "NAS policy state");
        }
        adam_->load_state(r);
        get_ints(r, fixed_, "NAS policy state");
    }

protected:
    static std::vector<double> row(const Var<T, D>& a) {
        const Tensor<T, cpu> h = on_host(a.value());  // alpha is tiny: read it on the host
        std::vector<double> r(static_cast<std::size_t>(h.numel()));
        for (std::int64_t k = 0; k < h.numel(); ++k) r[static_cast<std::size_t>(k)] = static_cast<double>(h[k]);
        return r;
    }
    void zero_alpha_grads() {
        for (auto& a : alphas_) a.zero_grad();
    }
    void check_alphas(const char* who) const {
        for (std::size_t d = 0; d < alphas_.size(); ++d)
            for (double v : row(alphas_[d]))
                DAM_CHECK(std::isfinite(v), value_error,
                          "{}: architecture logits of decision '{}' became non-finite; lower the architecture learning "
                          "rate or check the loss for NaN",
                          who, net_->decisions()[d].name);
    }

    Supernet<T, D>* net_;
    std::vector<Var<T, D>> alphas_;
    std::unique_ptr<optim::Adam<T, D>> adam_;
    std::vector<std::int64_t> fixed_;
};

}  // namespace diffautoml::nas
