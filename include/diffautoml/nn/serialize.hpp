#pragma once
// Model files: weights and buffers (batch-norm statistics) by name, versioned and checksummed,
// written atomically.
//
// Layout (little endian):
//   "DAMMODEL"  u32 version  u64 signature  u32 element size  u64 entry count
//   entries: u8 kind (0 parameter, 1 buffer), string name, u32 rank, i64 dims[rank], raw values
//   u32 CRC-32 of every byte after the magic and before the CRC
// The signature hashes every (kind, name, shape), so a file of another model is recognised before
// any value is read.
#include <cstring>
#include <string>

#include "../core/io.hpp"
#include "module.hpp"

namespace diffautoml::nn {

inline constexpr char model_magic[8] = {'D', 'A', 'M', 'M', 'O', 'D', 'E', 'L'};
inline constexpr std::uint32_t model_format_version = 1;

namespace detail {
inline void fnv1a(std::uint64_t& h, const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
}
template <class T, Device D>
std::vector<std::tuple<std::uint8_t, std::string, Tensor<T, D>>> model_entries(const Module<T, D>& m) {
    std::vector<std::tuple<std::uint8_t, std::string, Tensor<T, D>>> e;
    for (auto& [name, p] : m.named_parameters()) e.emplace_back(std::uint8_t{0}, name, p.value());
    for (auto& [name, b] : m.named_buffers()) e.emplace_back(std::uint8_t{1}, name, b);
    return e;
}
template <class T, Device D>
std::uint64_t model_signature(const Module<T, D>& m) {
    std::uint64_t h = 1469598103934665603ull;
    for (auto& [kind, name, t] : model_entries(m)) {
        fnv1a(h, &kind, 1);
        fnv1a(h, name.data(), name.size());
        for (auto d : t.shape()) fnv1a(h, &d, sizeof d);
    }
    return h;
}
}  // namespace detail

/// The bytes of a model file (useful to embed a model in a larger checkpoint).
template <class T, Device D>
std::vector<std::uint8_t> serialize_model(const Module<T, D>& m) {
    ByteWriter w;
    w.put_bytes(model_magic, sizeof model_magic);
    w.put(model_format_version);
    w.put(detail::model_signature(m));
    w.put(static_cast<std::uint32_t>(sizeof(T)));
    const auto entries = detail::model_entries(m);
    w.put(static_cast<std::uint64_t>(entries.size()));
    for (auto& [kind, name, td] : entries) {
        const Tensor<T, cpu> t = on_host(td);  // device values are copied to the host
        w.put(kind);
        w.put_string(name);
        w.put(static_cast<std::uint32_t>(t.rank()));
        for (auto d : t.shape()) w.put(d);
        w.put_bytes(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(T));
    }
    w.put(crc32_of(w.bytes.data() + sizeof model_magic, w.bytes.size() - sizeof model_magic));
    return std::move(w.bytes);
}

/// Loads values into an existing model of the same structure. Nothing is changed unless the whole
/// file checks out.
template <class T, Device D>
void deserialize_model(Module<T, D>& m, const std::vector<std::uint8_t>& bytes, const std::string& what) {
    DAM_CHECK(bytes.size() >= sizeof model_magic + 4 && std::memcmp(bytes.data(), model_magic, sizeof model_magic) == 0,
              format_error, "{}: not a diffautoml model file (bad magic)", what);
    ByteReader r(bytes.data() + sizeof model_magic, bytes.size() - sizeof model_magic, what);
    const auto version = r.get<std::uint32_t>();
    DAM_CHECK(version == model_format_version, format_error,
              "{}: model format version {} is not supported (this build reads version {})", what, version,
              model_format_version);
    DAM_CHECK(bytes.size() >= sizeof model_magic + 4 + 4, format_error, "{}: the file is truncated", what);
    const std::size_t body = bytes.size() - 4;
    std::uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + body, 4);
    DAM_CHECK(crc32_of(bytes.data() + sizeof model_magic, body - sizeof model_magic) == stored_crc, format_error,
              "{}: checksum mismatch: the file is corrupt or truncated; restore it from a backup or retrain", what);
    const auto signature = r.get<std::uint64_t>();
    const auto elem = r.get<std::uint32_t>();
    DAM_CHECK(elem == sizeof(T), format_error, "{}: values are {}-byte but the model uses {}-byte numbers", what, elem,
              sizeof(T));
    const auto entries = detail::model_entries(m);
    const auto count = r.get<std::uint64_t>();
    DAM_CHECK(signature == detail::model_signature(m) && count == entries.size(), format_error,
              "{}: the file holds a different model ({} entries, signature {:016x}) than the one being loaded ({} "
              "entries, signature {:016x}); build the same architecture before loading",
              what, count, signature, entries.size(), detail::model_signature(m));
    std::vector<const std::uint8_t*> sources;
    for (auto& [kind, name, t] : entries) {
        const auto k = r.get<std::uint8_t>();
        const auto n = r.get_string();
        const auto rank = r.get<std::uint32_t>();
        DAM_CHECK(rank <= Shape::max_rank, format_error, "{}: entry '{}' has rank {}", what, n, rank);
        Shape s;
        for (std::uint32_t i = 0; i < rank; ++i) {
            const auto d = r.get<std::int64_t>();
            DAM_CHECK(d >= 0, format_error, "{}: entry '{}' has a negative dimension ({}); the file is corrupt", what, n, d);
            s.push_back(d);
        }
        DAM_CHECK(k == kind && n == name && s == t.shape(), format_error,
                  "{}: entry '{}' {} does not match the model's '{}' {}", what, n, s, name, t.shape());
        sources.push_back(r.get_bytes(static_cast<std::size_t>(t.numel()) * sizeof(T)));
    }
    DAM_CHECK(r.remaining() == 4, format_error, "{}: {} unexpected bytes after the last entry", what, r.remaining() - 4);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& t = std::get<2>(entries[i]);
        const auto bytes_i = static_cast<std::size_t>(t.numel()) * sizeof(T);
        write_from_host(t, [&](T* p) { std::memcpy(p, sources[i], bytes_i); });
    }
}

template <class T, Device D>
void save_model(const Module<T, D>& m, const std::string& path) {
    write_file_atomic(path, serialize_model(m));
}
template <class T, Device D>
void load_model(Module<T, D>& m, const std::string& path) {
    deserialize_model(m, read_file(path), "load_model '" + path + "'");
}

}  // namespace diffautoml::nn
