// The headers form one-way layers: core <- {autograd, data} <- ops <- nn <- {optim, sampling} <- {nas, da, hpo} <- search.
// A header may include only its own layer or lower ones. The CUDA backend (cuda/include/diffautoml/cuda)
// sits at the ops level: it may use core and ops, never a policy layer above them. Includes are
// followed in both spellings ("..." relative to the file, <diffautoml/...> from an include root),
// and an include of a top-level umbrella (da.hpp, diffautoml.hpp...) counts as every header the
// umbrella reaches.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace fs = std::filesystem;

namespace {

const std::map<std::string, int> kRank{{"core", 0}, {"autograd", 1}, {"data", 1}, {"dist", 1}, {"ops", 2},  {"nn", 3},
                                       {"optim", 4}, {"sampling", 4}, {"nas", 5},  {"da", 5},   {"hpo", 5},
                                       {"search", 6}, {"viz", 6}, {"cuda", 2}};

struct Violation {
    std::string from, to;
};

/// Scans every header under the library root (ROOT/diffautoml) and the backend root
/// (CUDA_ROOT/diffautoml/cuda); returns each include that reaches a layer above the includer's,
/// and counts the includes checked.
struct Scan {
    fs::path root, cuda_root;  // the folders that hold diffautoml/
    std::vector<Violation> violations;
    int checked = 0;

    std::vector<fs::path> includes_of(const fs::path& file) const {
        static const std::regex quoted(R"re(^\s*#\s*include\s+"([^"]+)")re"), angled(R"re(^\s*#\s*include\s+<(diffautoml/[^>]+)>)re");
        std::vector<fs::path> out;
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line)) {
            std::smatch m;
            if (std::regex_search(line, m, quoted)) {
                out.push_back(fs::weakly_canonical(file.parent_path() / m[1].str()));
            } else if (std::regex_search(line, m, angled)) {
                for (const auto& r : {root, cuda_root}) {
                    const auto p = r / m[1].str();
                    if (fs::exists(p)) out.push_back(fs::weakly_canonical(p));
                }
            }
        }
        return out;
    }

    /// The layers a header stands for: its folder's, or for a top-level umbrella every layer it
    /// reaches through its includes.
    std::set<std::string> layers_of(const fs::path& header, std::set<fs::path>& seen) const {
        for (const auto& r : {root, cuda_root}) {
            const auto rel = fs::relative(header, r / "diffautoml");
            if (rel.empty() || *rel.begin() == "..") continue;
            if (std::next(rel.begin()) != rel.end()) {
                const std::string layer = rel.begin()->string();
                if (kRank.count(layer)) return {layer};
                return {};
            }
            // A top-level umbrella.
            std::set<std::string> out;
            if (!seen.insert(header).second) return out;
            for (const auto& inc : includes_of(header))
                for (const auto& l : layers_of(inc, seen)) out.insert(l);
            return out;
        }
        return {};
    }

    void check_tree(const fs::path& dir) {
        for (auto& e : fs::recursive_directory_iterator(dir)) {
            const auto ext = e.path().extension();
            if (ext != ".hpp" && ext != ".cuh") continue;
            std::set<fs::path> none;
            const auto own = layers_of(fs::weakly_canonical(e.path()), none);
            if (own.size() != 1) continue;  // umbrellas are checked through their includers
            const std::string layer = *own.begin();
            for (const auto& inc : includes_of(e.path())) {
                std::set<fs::path> seen;
                for (const auto& l : layers_of(inc, seen)) {
                    ++checked;
                    if (kRank.at(l) > kRank.at(layer))
                        violations.push_back({e.path().string(), inc.string() + " (layer " + l + ")"});
                }
            }
        }
    }

    void run() {
        check_tree(root / "diffautoml");
        if (fs::exists(cuda_root / "diffautoml" / "cuda")) check_tree(cuda_root / "diffautoml" / "cuda");
    }
};

void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("no header includes a layer above its own", "[layering]") {
    Scan s;
    s.root = fs::weakly_canonical(fs::path(DAM_SOURCE_DIR) / "include");
    s.cuda_root = fs::weakly_canonical(fs::path(DAM_SOURCE_DIR) / "cuda" / "include");
    REQUIRE(fs::exists(s.root / "diffautoml"));
    REQUIRE(fs::exists(s.cuda_root / "diffautoml" / "cuda"));
    s.run();
    for (const auto& v : s.violations) FAIL_CHECK(v.from << " includes " << v.to);
    CHECK(s.violations.empty());
    CHECK(s.checked > 100);
}

TEST_CASE("the layering scan sees inversions through umbrellas, <...> includes and the CUDA backend", "[layering]") {
    const fs::path t = fs::temp_directory_path() / "dam_layering_scan";
    fs::remove_all(t);
    write(t / "include/diffautoml/core/a.hpp", "#pragma once\n");
    write(t / "include/diffautoml/da/policy.hpp", "#pragma once\n#include \"../core/a.hpp\"\n");
    write(t / "include/diffautoml/da.hpp", "#pragma once\n#include \"da/policy.hpp\"\n");
    write(t / "cuda/include/diffautoml/cuda/ok.hpp", "#pragma once\n#include <diffautoml/core/a.hpp>\n");
    auto scan = [&] {
        Scan s;
        s.root = fs::weakly_canonical(t / "include");
        s.cuda_root = fs::weakly_canonical(t / "cuda/include");
        s.run();
        return s;
    };
    CHECK(scan().violations.empty());
    // da/policy.hpp -> core, cuda/ok.hpp -> core, and da.hpp, an umbrella reaching one layer only,
    // checked as that layer's header: -> da/policy.hpp.
    CHECK(scan().checked == 3);
    // An ops header reaching da through the umbrella.
    write(t / "include/diffautoml/ops/x.hpp", "#pragma once\n#include \"../da.hpp\"\n");
    REQUIRE(scan().violations.size() == 1);
    CHECK(scan().violations[0].to.find("layer da") != std::string::npos);
    fs::remove(t / "include/diffautoml/ops/x.hpp");
    // A core header naming a policy header with angle brackets.
    write(t / "include/diffautoml/core/y.hpp", "#pragma once\n#include <diffautoml/da/policy.hpp>\n");
    REQUIRE(scan().violations.size() == 1);
    CHECK(scan().violations[0].from.find("core/y.hpp") != std::string::npos);
    fs::remove(t / "include/diffautoml/core/y.hpp");
    // The CUDA backend reaching up into da/.
    write(t / "cuda/include/diffautoml/cuda/bad.cuh", "#pragma once\n#include <diffautoml/da/policy.hpp>\n");
    REQUIRE(scan().violations.size() == 1);
    CHECK(scan().violations[0].from.find("cuda/bad.cuh") != std::string::npos);
    fs::remove_all(t);
}
