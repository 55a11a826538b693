#pragma once
// The fuzz targets: each takes arbitrary bytes, hands them to one of the library's parsers and
// says whether the parser accepted them. A parser may refuse its input only with format_error;
// any other exception, a crash, a hang or an allocation beyond what the input's size justifies is
// a finding. The same functions serve libFuzzer (fuzz_main.cpp, built by scripts/check_fuzz.sh
// with clang) and the unit test that replays the committed corpus (test_fuzz_corpus.cpp).
//
// Checksums stand between random bytes and everything a parser does after them, so the model and
// checkpoint targets first rewrite the checksums (and the checkpoint's length field) to match
// the mutated bytes: the fuzzer then reaches the structure behind them. The checksum checks
// themselves are covered by the unit tests' corrupted files.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <diffautoml/data/dataset.hpp>
#include <diffautoml/nas/export.hpp>
#include <diffautoml/nn/serialize.hpp>

namespace dam_fuzz {

using Bytes = std::vector<std::uint8_t>;

/// Runs `parse`; true when it accepted the input, false when it refused it with format_error.
template <class F>
bool accepts(F&& parse) {
    try {
        parse();
        return true;
    } catch (const diffautoml::format_error&) {
        return false;
    }
}

/// A file in the temporary folder holding `bytes` for the parsers that read paths (one per
/// process and slot; libFuzzer runs one input at a time per process).
inline std::string temp_file(const Bytes& bytes, int slot) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("dam_fuzz_" + std::to_string(::getpid()) + "_" + std::to_string(slot));
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("dam_fuzz: cannot write " + path.string());
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    return path.string();
}

/// IDX files (plain or gzip), as the data loaders read them. The first byte picks the reader:
/// 0 any IDX file, 1 an images file (N, H, W), 2 a labels file (N), 3 an images and a labels file
/// (the next two bytes give the length of the images file, the rest is the labels file).
inline bool idx(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return false;
    const int mode = data[0] % 4;
    const Bytes rest(data + 1, data + size);
    struct Cleanup {  // the temporary files go when the input is done, whatever the parser did
        ~Cleanup() {
            for (int slot : {0, 1}) {
                std::error_code ec;
                std::filesystem::remove(std::filesystem::temp_directory_path() /
                                            ("dam_fuzz_" + std::to_string(::getpid()) + "_" + std::to_string(slot)),
                                        ec);
            }
        }
    } cleanup;
    return accepts([&] {
        if (mode == 0) diffautoml::data::read_idx(temp_file(rest, 0));
        else if (mode == 1) diffautoml::data::read_idx(temp_file(rest, 0), 3, "an images file (N, H, W)");
        else if (mode == 2) diffautoml::data::read_idx(temp_file(rest, 0), 1, "a labels file (N)");
        else {
            const std::size_t split = rest.size() < 2 ? 0 : std::min<std::size_t>(rest.size() - 2, rest[0] | (rest[1] << 8));
            const auto start = rest.begin() + (rest.size() < 2 ? 0 : 2);
            const Bytes images(start, start + static_cast<std::ptrdiff_t>(split)), labels(start + static_cast<std::ptrdiff_t>(split), rest.end());
            diffautoml::data::load_idx_dataset(temp_file(images, 0), temp_file(labels, 1));
        }
    });
}

namespace detail {
inline void put_crc(Bytes& b, std::size_t from, std::size_t at) {
    const std::uint32_t c = diffautoml::crc32_of(b.data() + from, at - from);
    std::memcpy(b.data() + at, &c, 4);
}
/// Rewrites the checksums of an architecture+weights file (nas/export.hpp) where its structure
/// can be followed: the inner model's, then the file's.
inline void fix_model_file(Bytes& b) {
    namespace nas = diffautoml::nas;
    constexpr std::size_t head = sizeof nas::arch_magic + 4;
    if (b.size() < head + 4 + 4) return;
    std::uint32_t json_len;
    std::memcpy(&json_len, b.data() + head, 4);
    const std::size_t model_len_at = head + 4 + json_len;
    if (json_len <= b.size() && model_len_at + 8 + 4 <= b.size()) {
        std::uint64_t n;
        std::memcpy(&n, b.data() + model_len_at, 8);
        const std::size_t model_at = model_len_at + 8;
        if (n >= sizeof diffautoml::nn::model_magic + 4 && n <= b.size() - model_at - 4)
            put_crc(b, model_at + sizeof diffautoml::nn::model_magic, model_at + n - 4);
    }
    put_crc(b, 0, b.size() - 4);
}
}  // namespace detail

/// Files written by nas::save_derived (architecture JSON + weights), read by nas::load_derived.
inline bool model_file(const std::uint8_t* data, std::size_t size) {
    Bytes b(data, data + size);
    detail::fix_model_file(b);
    return accepts([&] { diffautoml::nas::load_derived_bytes<float>(b, "fuzz model file"); });
}

/// architecture.json: parsed, then built into a network, as a file holding 2^16 values would
/// allow (the build must refuse what cannot fit before it allocates).
inline bool architecture(const std::uint8_t* data, std::size_t size) {
    const auto j = nlohmann::json::parse(data, data + size, nullptr, false);
    if (j.is_discarded()) return false;
    return accepts([&] {
        const auto spec = diffautoml::nas::parse_architecture(j, "fuzz architecture.json");
        diffautoml::nas::build_architecture<float>(spec, "fuzz architecture.json", std::int64_t{1} << 16);
    });
}

}  // namespace dam_fuzz
