#pragma once
// NoAugment: the identity policy (the baseline without augmentation).
#include <string_view>

#include "../core/state.hpp"
#include "concept.hpp"

namespace diffautoml::da {

/// No augmentation: the batch as it is.
template <class T = float>
class NoAugment {
public:
    using value_type = T;
    static constexpr std::string_view policy_name = "none";
    /// Runs sharded, over data-parallel ranks or micro-batches (docs/distributed.md):
    /// nothing is learned.
    static constexpr bool data_parallel = true;
    bool searching() const { return false; }
    template <Device D = cpu>
    Var<T, D> augment(const Tensor<T, D>& x, DaContext&) {
        return Var<T, D>(x, false);
    }
    void update(const Tensor<T>&, DaContext&) {}
    void save_state(ByteWriter&) const {}
    void load_state(ByteReader&) {}
    std::vector<PolicyEntry> summary(std::size_t) const { return {}; }
};

static_assert(DaPolicy<NoAugment<>>);

}  // namespace diffautoml::da
