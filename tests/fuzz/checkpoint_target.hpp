#pragma once
// The checkpoint fuzz target (apart from targets.hpp because it instantiates a whole JointSearch):
// the main job's search types on the tiny task of the search tests, one fresh search per input,
// so that each input is judged on its own.
#include <diffautoml/diffautoml.hpp>

#include "../search_fixtures.hpp"
#include "targets.hpp"

namespace dam_fuzz {

using CheckpointSearch = diffautoml::search::JointSearch<diffautoml::da::PairPolicyDA,
                                                         diffautoml::nas::DSNAS<diffautoml::nas::ShuffleSpace>,
                                                         diffautoml::hpo::HypergradLrWd>;

/// The options every checkpoint of the corpus was written with (make_seeds.cpp).
inline CheckpointSearch::Options checkpoint_options() {
    auto o = dam_test::tiny_options<CheckpointSearch>("");
    o.run.epochs = 1;
    o.run.validation = 32;
    o.run.validation_batch = 16;
    o.run.recalibration_batches = 1;
    return o;
}
inline const diffautoml::data::Dataset& checkpoint_train() {
    static const auto d = dam_test::bars(96, 1, diffautoml::data::Split::train);
    return d;
}
inline const diffautoml::data::Dataset& checkpoint_test() {
    static const auto d = dam_test::bars(16, 2, diffautoml::data::Split::test);
    return d;
}

/// Checkpoint files (search/joint.hpp: "DAMCKPT1" | u64 length | u32 CRC-32 | body), read into a
/// fresh search of checkpoint_options(). The length and checksum are rewritten to match the body.
inline bool checkpoint(const std::uint8_t* data, std::size_t size) {
    Bytes b(data, data + size);
    if (b.size() >= 20) {
        const std::uint64_t n = b.size() - 20;
        std::memcpy(b.data() + 8, &n, 8);
        const std::uint32_t c = diffautoml::crc32_of(b.data() + 20, b.size() - 20);
        std::memcpy(b.data() + 16, &c, 4);
    }
    CheckpointSearch s(checkpoint_train(), checkpoint_test(), checkpoint_options(), {}, dam_test::tiny_space());
    return accepts([&] { s.load_checkpoint_bytes(b, "fuzz checkpoint"); });
}

}  // namespace dam_fuzz
