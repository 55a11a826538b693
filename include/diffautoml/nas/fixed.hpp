#pragma once
// FixedArch: no search, a fixed architecture.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/state.hpp"
#include "concept.hpp"
#include "supernet.hpp"

namespace diffautoml::nas {

struct FixedArchOptions {
    std::vector<std::int64_t> architecture{};  ///< one choice per decision (empty: choice 0 everywhere)
};

inline void to_json(nlohmann::json& j, const FixedArchOptions& o) { j = {{"architecture", o.architecture}}; }

/// No search: a fixed architecture (the baseline, and the state after the search phase).
template <class Space, class T = float, Device D = cpu>
class FixedArch {
public:
    using space_type = Space;
    using value_type = T;
    using device_type = D;
    using options_type = FixedArchOptions;
    static constexpr std::string_view policy_name = "fixed";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// nothing is learned.
    static constexpr bool data_parallel = true;

    FixedArch(Supernet<T, D>& net, std::vector<std::int64_t> arch) : net_(&net), arch_(std::move(arch)) {
        net.check_architecture(arch_);
    }
    FixedArch(Supernet<T, D>& net, const FixedArchOptions& o)
        : FixedArch(net, o.architecture.empty() ? std::vector<std::int64_t>(net.num_decisions(), 0) : o.architecture) {}
    void prepare(NasContext<T, D>&) { net_->set_architecture(arch_); }
    void update(NasContext<T, D>&) {}
    std::vector<std::vector<double>> probabilities() const {
        std::vector<std::vector<double>> out;
        for (std::size_t d = 0; d < arch_.size(); ++d) {
            std::vector<double> p(static_cast<std::size_t>(net_->decisions()[d].size()), 0.0);
            p[static_cast<std::size_t>(arch_[d])] = 1.0;
            out.push_back(p);
        }
        return out;
    }
    std::vector<std::int64_t> derived() const { return arch_; }
    bool searching() const { return false; }
    void save_state(ByteWriter& w) const { put_ints(w, arch_); }
    void load_state(ByteReader& r) {
        std::vector<std::int64_t> a;
        get_ints(r, a, "FixedArch state");
        DAM_CHECK(a == arch_, format_error, "FixedArch: the checkpoint's architecture differs from this run's");
    }

private:
    Supernet<T, D>* net_;
    std::vector<std::int64_t> arch_;
};

}  // namespace diffautoml::nas
