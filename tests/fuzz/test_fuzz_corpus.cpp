// Replays the fuzz corpus (tests/fuzz/corpus) through the fuzz targets on every test run: the
// valid seeds must be accepted, the broken ones refused with format_error, and every other file
// (inputs libFuzzer found and we kept as regressions) must end in one of the two. So the corpus
// cannot drift from the formats without a failing test, and a fixed finding stays fixed.
#include <catch2/catch.hpp>

#include "checkpoint_target.hpp"
#include "targets.hpp"

namespace {

std::vector<std::filesystem::path> corpus(const std::string& target) {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(DAM_FUZZ_CORPUS) / target))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

template <class Target>
void replay(const std::string& target, Target run) {
    const auto files = corpus(target);
    REQUIRE(files.size() >= 3);
    int valid = 0, bad = 0;
    for (const auto& f : files) {
        const auto b = diffautoml::read_file(f.string());
        const std::string name = f.filename().string();
        INFO(target << "/" << name);
        const bool accepted = run(b.data(), b.size());  // anything but format_error escapes and fails
        if (name.rfind("valid-", 0) == 0) {
            CHECK(accepted);
            ++valid;
        } else if (name.rfind("bad-", 0) == 0) {
            CHECK_FALSE(accepted);
            ++bad;
        }
    }
    CHECK(valid >= 1);
    CHECK(bad >= 1);
}

}  // namespace

TEST_CASE("fuzz corpus: IDX files", "[fuzz][data]") { replay("idx", dam_fuzz::idx); }
TEST_CASE("fuzz corpus: model files", "[fuzz][nas]") { replay("model_file", dam_fuzz::model_file); }
TEST_CASE("fuzz corpus: architecture.json", "[fuzz][nas]") { replay("architecture", dam_fuzz::architecture); }
TEST_CASE("fuzz corpus: checkpoints", "[fuzz][search]") { replay("checkpoint", dam_fuzz::checkpoint); }
