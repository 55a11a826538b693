#pragma once
// Mixed operations: one searchable layer holding a compile-time list of candidate op types, run in
// one of three modes chosen per step by the NAS policy through a Gate:
//   - weighted sum of every candidate (DARTS; SNAS with Gumbel-softmax weights),
//   - single path with a gate: only candidate k runs, and its output is multiplied by w_k, which is
//     1 in value, so that dL/dw_k = <dL/dy, candidate_k(x)> exists (DSNAS; GDAS hard weights),
//   - single path without a gate (a fixed or derived layer: costs exactly one candidate).
#include <array>
#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../nn/layers.hpp"

namespace diffautoml::nas {

/// The shape contract every candidate of one searchable layer shares.
struct CandidateArgs {
    std::int64_t in = 0, out = 0, stride = 1;
};

/// A candidate op type: a name for reports and exports, and a factory that builds the module.
/// Contract: every candidate built from the same CandidateArgs maps (N, in, H, W) to the same
/// output shape (N, out, H/stride, W/stride), so that they can be mixed.
template <class C>
concept Candidate = requires(const CandidateArgs& a, Generator& gen) {
    { C::name } -> std::convertible_to<std::string_view>;
    { C::template make<float, cpu>(a, gen) } -> std::convertible_to<nn::ModulePtr<float, cpu>>;
};

/// How a mixed op combines its candidates in the next forward passes.
template <class T, Device D = cpu>
struct Gate {
    /// The candidate to run alone, or -1 for the weighted sum of all of them.
    std::int64_t index = -1;
    /// (K,) weights: all of them are used when index < 0; w[index] multiplies the single path when
    /// defined (DSNAS, GDAS); undefined with index >= 0 runs the candidate without a gate.
    Var<T, D> weights;
};

/// The runtime side of a mixed op (candidates are modules); MixedOp fills it from a type list.
template <class T, Device D = cpu>
class MixedOpBase : public nn::Module<T, D> {
public:
    /// Number of candidates in the list (built or not).
    std::int64_t size() const { return static_cast<std::int64_t>(names_.size()); }
    const std::vector<std::string>& names() const { return names_; }
    /// Whether candidate k exists here (a derived network builds only its chosen one).
    bool built(std::int64_t k) const { return k >= 0 && k < size() && candidates_[static_cast<std::size_t>(k)]; }
    const nn::ModulePtr<T, D>& candidate(std::int64_t k) const {
        DAM_CHECK(built(k), value_error, "mixed op: candidate {} is not built here (this layer has {} candidates{})",
                  k, size(), only_ >= 0 ? fmt::format(", only '{}' was kept", names_[static_cast<std::size_t>(only_)]) : "");
        return candidates_[static_cast<std::size_t>(k)];
    }
    /// The candidate kept by a derived network, or -1 in a supernet.
    std::int64_t only() const { return only_; }

    void set_gate(Gate<T, D> g) {
        DAM_CHECK(g.index >= -1 && g.index < size(), value_error, "mixed op: gate index {} is outside [-1, {})", g.index,
                  size());
        DAM_CHECK(!g.weights.defined() || (g.weights.shape().rank() == 1 && g.weights.dim(0) == size()), shape_error,
                  "mixed op: gate weights must have shape ({},), got {}", size(), g.weights.shape());
        DAM_CHECK(g.index >= 0 || g.weights.defined(), value_error,
                  "mixed op: a weighted sum (index -1) needs weights for its {} candidates", size());
        gate_ = std::move(g);
    }
    const Gate<T, D>& gate() const { return gate_; }
    /// The input shape of the last forward pass (used to measure each candidate's cost).
    const Shape& last_input_shape() const { return last_input_; }
    /// Records the input shape of a pass that skipped this op (a derived `none` edge).
    void note_skipped_input(const Shape& s) { last_input_ = s; }

    Var<T, D> forward(const Var<T, D>& x) override {
        last_input_ = x.shape();
        if (only_ >= 0) return candidates_[static_cast<std::size_t>(only_)]->forward(x);
        if (gate_.index >= 0) {
            Var<T, D> y = candidate(gate_.index)->forward(x);
            if (!gate_.weights.defined()) return y;
            return ops::weighted_sum({y}, ops::narrow(gate_.weights, 0, gate_.index, 1));
        }
        std::vector<Var<T, D>> ys;
        ys.reserve(candidates_.size());
        for (std::int64_t k = 0; k < size(); ++k) ys.push_back(candidate(k)->forward(x));
        return ops::weighted_sum(ys, gate_.weights);
    }

protected:
    MixedOpBase() = default;
    void add_candidate(std::string name, nn::ModulePtr<T, D> m) {
        if (m) candidates_.push_back(this->register_module(std::to_string(names_.size()), std::move(m)));
        else candidates_.push_back(nullptr);
        names_.push_back(std::move(name));
    }
    std::int64_t only_ = -1;

private:
    std::vector<nn::ModulePtr<T, D>> candidates_;
    std::vector<std::string> names_;
    Gate<T, D> gate_;
    Shape last_input_;
};

/// A mixed op over the candidate types Cs. Candidate k is registered under the name "k" in the
/// supernet and in a derived network alike, so a derived network's parameter names are a subset
/// of the supernet's and its weights can be copied by name.
template <class T, Device D, Candidate... Cs>
class MixedOp : public MixedOpBase<T, D> {
public:
    static constexpr std::size_t candidate_count = sizeof...(Cs);
    static_assert(candidate_count >= 1, "MixedOp: give at least one candidate type");
    static constexpr std::array<std::string_view, sizeof...(Cs)> candidate_names{Cs::name...};

    /// Builds every candidate, or only candidate `only` (a derived network).
    MixedOp(const CandidateArgs& a, Generator& gen, std::int64_t only = -1) {
        DAM_CHECK(only >= -1 && only < static_cast<std::int64_t>(candidate_count), value_error,
                  "MixedOp: chosen candidate {} is outside [0, {})", only, candidate_count);
        std::int64_t k = 0;
        (add_one<Cs>(a, gen, only, k++), ...);
        this->only_ = only;
        if (only < 0) this->set_gate({0, Var<T, D>()});
    }

private:
    template <class C>
    void add_one(const CandidateArgs& a, Generator& gen, std::int64_t only, std::int64_t k) {
        this->add_candidate(std::string(C::name), only < 0 || only == k ? C::template make<T, D>(a, gen) : nullptr);
    }
};

}  // namespace diffautoml::nas
