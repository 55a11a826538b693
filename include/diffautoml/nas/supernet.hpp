#pragma once
// The supernet: a network whose searchable layers are mixed ops bound to architecture decisions.
// Several mixed ops may share one decision (the DARTS cell space shares each edge's decision
// across the cells of one type). A policy sets one Gate per decision before each forward pass.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mixed_op.hpp"

namespace diffautoml::nas {

/// One architecture decision: its candidates and their cost per image (summed over the mixed ops
/// that share the decision, measured on the space's input size).
struct Decision {
    std::string name;
    std::vector<std::string> choices;
    std::vector<double> macs;           ///< multiply-accumulates per image of each choice
    std::vector<std::int64_t> params;   ///< parameters of each choice
    std::int64_t size() const { return static_cast<std::int64_t>(choices.size()); }
};

template <class T, Device D = cpu>
class Supernet : public nn::Module<T, D> {
public:
    const std::vector<Decision>& decisions() const { return decisions_; }
    std::size_t num_decisions() const { return decisions_.size(); }

    /// The gate of decision d for the next forward passes (applied to every mixed op bound to it).
    void set_gate(std::size_t d, const Gate<T, D>& g) {
        check_decision(d);
        for (auto* m : bound_[d]) m->set_gate(g);
    }
    /// Runs the single path `arch` (one choice per decision) without gates.
    void set_architecture(const std::vector<std::int64_t>& arch) {
        check_architecture(arch);
        for (std::size_t d = 0; d < arch.size(); ++d) set_gate(d, {arch[d], Var<T, D>()});
    }
    void check_architecture(const std::vector<std::int64_t>& arch) const {
        DAM_CHECK(arch.size() == decisions_.size(), value_error,
                  "{}: an architecture needs one choice per decision ({}), got {}", space_name(), decisions_.size(),
                  arch.size());
        for (std::size_t d = 0; d < arch.size(); ++d)
            DAM_CHECK(arch[d] >= 0 && arch[d] < decisions_[d].size(), value_error,
                      "{}: choice {} of decision {} ('{}') is outside [0, {})", space_name(), arch[d], d,
                      decisions_[d].name, decisions_[d].size());
    }
    /// Choice names of an architecture, for logs and exports.
    std::vector<std::string> choice_names(const std::vector<std::int64_t>& arch) const {
        check_architecture(arch);
        std::vector<std::string> out;
        for (std::size_t d = 0; d < arch.size(); ++d) out.push_back(decisions_[d].choices[static_cast<std::size_t>(arch[d])]);
        return out;
    }
    /// MACs per image of the single path `arch`, including the fixed (non-searched) layers.
    double path_macs(const std::vector<std::int64_t>& arch) const {
        check_architecture(arch);
        double m = fixed_macs_;
        for (std::size_t d = 0; d < arch.size(); ++d) m += decisions_[d].macs[static_cast<std::size_t>(arch[d])];
        return m;
    }
    /// The architecture this network was built for, when it is a derived (single-path) network.
    const std::vector<std::int64_t>& derived_architecture() const { return derived_; }
    bool is_derived() const { return !derived_.empty(); }

    /// The architecture a search derives from its per-decision distributions (one row per
    /// decision): the most probable choice of each decision by default. A space whose derivation
    /// is not per decision (the DARTS paper's: two edges per node) overrides it.
    virtual std::vector<std::int64_t> derive_architecture(const std::vector<std::vector<double>>& probabilities) const {
        DAM_CHECK(probabilities.size() == decisions_.size(), value_error,
                  "{}: derive_architecture needs one distribution per decision ({}), got {}", space_name(),
                  decisions_.size(), probabilities.size());
        std::vector<std::int64_t> arch;
        for (const auto& p : probabilities) arch.push_back(std::max_element(p.begin(), p.end()) - p.begin());
        return arch;
    }

    /// Name of the search space and the options that rebuild this network (written into exports).
    virtual std::string space_name() const = 0;
    virtual nlohmann::json options_json() const = 0;

protected:
    std::size_t add_decision(std::string name, std::vector<std::string> choices) {
        Decision d;
        d.name = std::move(name);
        d.choices = std::move(choices);
        decisions_.push_back(std::move(d));
        bound_.emplace_back();
        return decisions_.size() - 1;
    }
    void bind(std::size_t d, MixedOpBase<T, D>* m) {
        check_decision(d);
        DAM_CHECK(m->size() == decisions_[d].size(), value_error, "supernet: mixed op with {} candidates bound to decision '{}' with {}",
                  m->size(), decisions_[d].name, decisions_[d].size());
        bound_[d].push_back(m);
    }
    void set_derived(std::vector<std::int64_t> arch) { derived_ = std::move(arch); }

    /// Measures every choice's MACs and parameters: one forward pass (batch 1, no gradients, eval
    /// mode) records each mixed op's input shape, then each candidate runs alone on that shape.
    /// Call at the end of the space's constructor.
    void measure_costs(const Shape& input) {
        NoGradGuard no_grad;
        const bool was_training = this->is_training();
        this->eval();
        std::vector<std::vector<Gate<T, D>>> saved(bound_.size());
        for (std::size_t d = 0; d < bound_.size(); ++d)
            for (auto* m : bound_[d]) {
                saved[d].push_back(m->gate());
                if (m->only() < 0) m->set_gate({0, Var<T, D>()});
            }
        FlopCounter total;
        {
            FlopScope scope(total);
            (void)this->forward(Var<T, D>(Tensor<T, D>::zeros(input)));
        }
        double searched_in_probe = 0;
        for (std::size_t d = 0; d < bound_.size(); ++d) {
            auto& dec = decisions_[d];
            dec.macs.assign(static_cast<std::size_t>(dec.size()), 0.0);
            dec.params.assign(static_cast<std::size_t>(dec.size()), 0);
            for (auto* m : bound_[d]) {
                for (std::int64_t k = 0; k < m->size(); ++k) {
                    if (!m->built(k)) continue;
                    FlopCounter c;
                    {
                        FlopScope scope(c);
                        (void)m->candidate(k)->forward(Var<T, D>(Tensor<T, D>::zeros(m->last_input_shape())));
                    }
                    dec.macs[static_cast<std::size_t>(k)] += c.macs;
                    dec.params[static_cast<std::size_t>(k)] += m->candidate(k)->parameter_count();
                    if (k == (m->only() >= 0 ? m->only() : 0)) searched_in_probe += c.macs;
                }
            }
        }
        fixed_macs_ = total.macs - searched_in_probe;
        for (std::size_t d = 0; d < bound_.size(); ++d)
            for (std::size_t i = 0; i < bound_[d].size(); ++i)
                if (bound_[d][i]->only() < 0) bound_[d][i]->set_gate(saved[d][i]);
        this->train(was_training);
    }

private:
    void check_decision(std::size_t d) const {
        DAM_CHECK(d < decisions_.size(), value_error, "{}: decision {} does not exist (the space has {})", space_name(), d,
                  decisions_.size());
    }
    std::vector<Decision> decisions_;
    std::vector<std::vector<MixedOpBase<T, D>*>> bound_;
    std::vector<std::int64_t> derived_;
    double fixed_macs_ = 0;
};

}  // namespace diffautoml::nas
