// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/): valid files of every
// kind the parsers read ("valid-*", which the corpus test requires them to accept) and broken ones
// from the failures users meet ("bad-*", which they must refuse with format_error).
// Usage: dam_fuzz_seeds tests/fuzz/corpus   (run again when a format or the tiny search changes)
#include <zlib.h>

#include <diffautoml/diffautoml.hpp>

#include "checkpoint_target.hpp"

namespace {

using namespace diffautoml;
using dam_fuzz::Bytes;

void write(const std::filesystem::path& dir, const std::string& name, const Bytes& b) {
    std::filesystem::create_directories(dir);
    write_file_atomic((dir / name).string(), b);
}
Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}
Bytes idx_file(std::vector<std::uint32_t> dims, std::size_t values, std::uint8_t fill) {
    Bytes b = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
    for (auto d : dims)
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
    for (std::size_t i = 0; i < values; ++i) b.push_back(static_cast<std::uint8_t>(fill + i * 7));
    return b;
}
Bytes gzip(const Bytes& raw) {
    const auto path = std::filesystem::temp_directory_path() / "dam_fuzz_seed.gz";
    gzFile f = gzopen(path.c_str(), "wb9");
    gzwrite(f, raw.data(), static_cast<unsigned>(raw.size()));
    gzclose(f);
    Bytes b = read_file(path.string());
    std::filesystem::remove(path);
    return b;
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

template <class Space>
std::shared_ptr<nas::Supernet<float, cpu>> derived(const typename Space::Options& o, std::uint64_t seed) {
    Generator gen(seed);
    auto supernet = Space::template build<float, cpu>(o, gen);
    std::vector<std::int64_t> arch;
    for (const auto& d : supernet->decisions()) arch.push_back(static_cast<std::int64_t>(seed % static_cast<std::uint64_t>(d.size())));
    return nas::derive<Space>(*supernet, arch);
}
Bytes model_bytes(const nas::Supernet<float, cpu>& net) {
    const auto path = std::filesystem::temp_directory_path() / "dam_fuzz_seed.bin";
    nas::save_derived(path.string(), net, {{"note", "fuzz seed"}});
    Bytes b = read_file(path.string());
    std::filesystem::remove(path);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        fmt::print(stderr, "usage: dam_fuzz_seeds CORPUS_DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    const std::filesystem::path root = argv[1];

    // IDX: first byte = reader (0 any, 1 images, 2 labels, 3 pair with a 2-byte images length).
    const auto dir = root / "idx";
    const Bytes images = idx_file({3, 4, 4}, 48, 1), labels = idx_file({3}, 3, 0);
    write(dir, "valid-any", cat({{0}, idx_file({2, 3}, 6, 9)}));
    write(dir, "valid-images", cat({{1}, images}));
    write(dir, "valid-images-gz", cat({{1}, gzip(images)}));
    write(dir, "valid-labels-gz", cat({{2}, gzip(labels)}));
    const auto n = static_cast<std::uint16_t>(images.size());
    write(dir, "valid-pair", cat({{3, static_cast<std::uint8_t>(n & 0xff), static_cast<std::uint8_t>(n >> 8)}, images, labels}));
    const Bytes gz = gzip(images);
    write(dir, "bad-truncated-gzip", cat({{1}, Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2))}));
    write(dir, "bad-huge-header", cat({{1}, idx_file({0x80000000u, 28, 28}, 16, 0)}));
    write(dir, "bad-images-as-labels", cat({{2}, images}));
    write(dir, "bad-wrong-magic", cat({{0}, Bytes{1, 2, 3, 4, 5, 6, 7, 8}}));
    write(dir, "bad-pair-counts", cat({{3, static_cast<std::uint8_t>(n & 0xff), static_cast<std::uint8_t>(n >> 8)}, images,
                                       idx_file({2}, 2, 0)}));

    // Model files and architecture.json of small derived networks of each space.
    nas::ChainOptions chain = nas::ShuffleSpace::default_options();
    chain.stem = 4;
    chain.stages = {{8, 1, 2}, {8, 1, 1}};
    chain.head = 8;
    chain.image = 8;
    nas::ChainOptions mb = nas::MobileNetV2Space::default_options();
    mb.stem = 4;
    mb.stages = {{4, 2, 1}, {8, 1, 2}};
    mb.head = 8;
    mb.image = 8;
    nas::DartsOptions darts;
    darts.channels = 4;
    darts.cells = 1;
    darts.nodes = 2;
    darts.image = 8;
    const std::vector<std::pair<std::string, std::shared_ptr<nas::Supernet<float, cpu>>>> nets = {
        {"shuffle", derived<nas::ShuffleSpace>(chain, 3)},
        {"mobilenetv2", derived<nas::MobileNetV2Space>(mb, 6)},
        {"darts", derived<nas::DartsSpace>(darts, 1)},
        {"darts-paper", derived<nas::DartsPaperSpace>(darts, 5)}};
    for (const auto& [name, net] : nets) {
        const Bytes file = model_bytes(*net);
        write(root / "model_file", "valid-" + name, file);
        write(root / "architecture", "valid-" + name + ".json",
              text(nas::architecture_json(*net, net->derived_architecture()).dump(2)));
        if (name == "shuffle") {
            // (a flipped byte is no seed: the harness repairs checksums, so it would load)
            const auto description = nas::architecture_json(*net, net->derived_architecture());
            write(root / "model_file", "bad-other-network",
                  nas::detail::architecture_file_bytes(description, nn::serialize_model(*nets[1].second)));
            Bytes newer = file;
            newer[sizeof nas::arch_magic] = 2;  // format version 2
            write(root / "model_file", "bad-newer-version", newer);
            write(root / "model_file", "bad-truncated", Bytes(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(file.size() / 2)));
            auto j = nas::architecture_json(*net, net->derived_architecture());
            j["options"]["stages"][0]["width"] = 1 << 20;
            write(root / "architecture", "bad-too-wide.json", text(j.dump()));
            j = nas::architecture_json(*net, net->derived_architecture());
            j["architecture"].push_back(0);
            write(root / "architecture", "bad-extra-choice.json", text(j.dump()));
            j.erase("space");
            write(root / "architecture", "bad-no-space.json", text(j.dump()));
        }
    }
    write(root / "architecture", "bad-unknown-space.json", text(R"({"space": "resnet", "architecture": [0]})"));

    // Checkpoints of the tiny search: fresh, and at the end of a run (derived, averaged, logged).
    {
        dam_fuzz::CheckpointSearch s(dam_fuzz::checkpoint_train(), dam_fuzz::checkpoint_test(),
                                     dam_fuzz::checkpoint_options(), {}, dam_test::tiny_space());
        write(root / "checkpoint", "valid-fresh", s.checkpoint_bytes());
        s.run();
        write(root / "checkpoint", "valid-finished", s.checkpoint_bytes());
        auto other = dam_fuzz::checkpoint_options();
        other.run.seed += 1;
        dam_fuzz::CheckpointSearch t(dam_fuzz::checkpoint_train(), dam_fuzz::checkpoint_test(), other, {},
                                     dam_test::tiny_space());
        write(root / "checkpoint", "bad-other-seed", t.checkpoint_bytes());
    }
    fmt::print("dam_fuzz_seeds: wrote the corpus under {}\n", root.string());
    return 0;
}
