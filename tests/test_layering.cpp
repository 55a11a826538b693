// The headers form one-way layers: core <- {autograd, data} <- ops <- nn <- {optim, sampling} <- {nas, da, hpo} <- search.
// A header may include only its own layer or lower ones.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include <catch2/catch.hpp>

namespace fs = std::filesystem;

TEST_CASE("no header includes a layer above its own", "[layering]") {
    const std::map<std::string, int> rank{{"core", 0}, {"autograd", 1}, {"data", 1}, {"ops", 2},  {"nn", 3},
                                          {"optim", 4}, {"sampling", 4}, {"nas", 5},     {"da", 5},   {"hpo", 5}, {"search", 6}, {"cuda", 7}};
    const fs::path root = fs::path(DAM_SOURCE_DIR) / "include" / "diffautoml";
    REQUIRE(fs::exists(root));
    const std::regex inc(R"re(#include\s+"([^"]+)")re");
    int checked = 0;
    for (auto& e : fs::recursive_directory_iterator(root)) {
        if (e.path().extension() != ".hpp") continue;
        const auto rel = fs::relative(e.path(), root);
        if (rel.begin() == rel.end() || std::next(rel.begin()) == rel.end()) continue;  // umbrella headers at the top
        const std::string layer = rel.begin()->string();
        REQUIRE(rank.count(layer));
        std::ifstream in(e.path());
        std::string line;
        while (std::getline(in, line)) {
            std::smatch m;
            if (!std::regex_search(line, m, inc)) continue;
            const auto target = fs::weakly_canonical(e.path().parent_path() / m[1].str());
            const auto trel = fs::relative(target, root);
            const std::string tlayer = trel.begin()->string();
            if (!rank.count(tlayer)) continue;  // same-folder helpers or top-level umbrella
            INFO(rel.string() << " includes " << trel.string());
            CHECK(rank.at(tlayer) <= rank.at(layer));
            ++checked;
        }
    }
    CHECK(checked > 20);
}
