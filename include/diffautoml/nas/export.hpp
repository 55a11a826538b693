#pragma once
// Deriving and exporting a searched network. The derived architecture (argmax per decision) is
// built as a standalone network that contains only the chosen candidates, takes the supernet's
// weights by name (a derived network's parameter and buffer names are a subset of the
// supernet's), and is written together with its readable architecture as ONE file:
//     "DAMARCH1" | u32 version | u32 json length | json | u64 model length | model (nn/serialize) | u32 CRC-32
// Loading rebuilds the network from the JSON and then loads the weights, so the two can never be
// applied in the wrong order or to a mismatched network.
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/io.hpp"
#include "../core/json.hpp"
#include "../nn/serialize.hpp"
#include "darts_space.hpp"
#include "spaces.hpp"

namespace diffautoml::nas {

inline constexpr char arch_magic[8] = {'D', 'A', 'M', 'A', 'R', 'C', 'H', '1'};
inline constexpr std::uint32_t arch_format_version = 1;

namespace detail {
/// The bytes of an architecture+weights file from its description and its model bytes.
inline std::vector<std::uint8_t> architecture_file_bytes(const nlohmann::json& description,
                                                         const std::vector<std::uint8_t>& model) {
    ByteWriter w;
    w.put_bytes(arch_magic, sizeof arch_magic);
    w.put(arch_format_version);
    w.put_string(description.dump(2));
    w.put(static_cast<std::uint64_t>(model.size()));
    w.put_bytes(model.data(), model.size());
    w.put(crc32_of(w.bytes.data(), w.bytes.size()));
    return std::move(w.bytes);
}
}  // namespace detail

/// The readable description of a derived architecture (also written as architecture.json).
template <class T, Device D>
nlohmann::json architecture_json(const Supernet<T, D>& net, const std::vector<std::int64_t>& arch) {
    nlohmann::json layers = nlohmann::json::array();
    const auto names = net.choice_names(arch);
    for (std::size_t d = 0; d < arch.size(); ++d)
        layers.push_back({{"decision", net.decisions()[d].name}, {"choice", names[d]}, {"index", arch[d]},
                          {"macs", net.decisions()[d].macs[static_cast<std::size_t>(arch[d])]}});
    return {{"space", net.space_name()},
            {"options", net.options_json()},
            {"architecture", arch},
            {"layers", layers},
            {"macs_per_image", net.path_macs(arch)}};
}

/// The derived network of `arch`, built on device To, with weights and batch-norm statistics
/// copied from the supernet (on any device; across devices the values pass through the host).
template <class Space, Device To, class T, Device From>
std::shared_ptr<Supernet<T, To>> derive_on(const Supernet<T, From>& supernet, const std::vector<std::int64_t>& arch) {
    supernet.check_architecture(arch);
    DAM_CHECK(supernet.space_name() == Space::name, value_error, "derive: the supernet is of space '{}', not '{}'",
              supernet.space_name(), Space::name);
    Generator gen(0);  // every value is overwritten below
    std::shared_ptr<Supernet<T, To>> net =
        Space::template build<T, To>(Space::Options::from_json(supernet.options_json()), gen, arch);
    std::map<std::string, Tensor<T, From>> source;
    for (auto& [name, p] : supernet.named_parameters()) source.emplace(name, p.value());
    for (auto& [name, b] : supernet.named_buffers()) source.emplace(name, b);
    auto copy = [&](const std::string& name, const Tensor<T, To>& dst) {
        auto it = source.find(name);
        DAM_CHECK(it != source.end() && it->second.shape() == dst.shape(), value_error,
                  "derive: the supernet has no entry '{}' of shape {}; was it built with different options?", name,
                  dst.shape());
        copy_values(dst, it->second);
    };
    for (auto& [name, p] : net->named_parameters()) copy(name, p.value());
    for (auto& [name, b] : net->named_buffers()) copy(name, b);
    net->train(supernet.is_training());
    return net;
}

/// The derived network of `arch` on the supernet's device (see derive_on).
template <class Space, class T, Device D>
std::shared_ptr<Supernet<T, D>> derive(const Supernet<T, D>& supernet, const std::vector<std::int64_t>& arch) {
    return derive_on<Space, D>(supernet, arch);
}

/// A derived network on the host: the network itself when it is on the CPU, else a copy there.
template <class Space, class T>
std::shared_ptr<Supernet<T, cpu>> derived_on_host(const std::shared_ptr<Supernet<T, cpu>>& net, const std::vector<std::int64_t>&) {
    return net;
}
template <class Space, class T, Device D>
    requires(!std::same_as<D, cpu>)
std::shared_ptr<Supernet<T, cpu>> derived_on_host(const std::shared_ptr<Supernet<T, D>>& net, const std::vector<std::int64_t>& arch) {
    return derive_on<Space, cpu>(*net, arch);
}

/// Writes a derived network (one built for an architecture) with its architecture as one file,
/// atomically. `extra` is stored beside the architecture (e.g. the DA policy and hyperparameters).
template <class T>
void save_derived(const std::string& path, const Supernet<T, cpu>& derived, const nlohmann::json& extra = {}) {
    DAM_CHECK(derived.is_derived(), value_error,
              "save_derived: '{}' is a supernet; derive the architecture first (nas::derive)", path);
    nlohmann::json j = architecture_json(derived, derived.derived_architecture());
    if (!extra.is_null()) j["extra"] = extra;
    write_file_atomic(path, detail::architecture_file_bytes(j, nn::serialize_model(derived)));
}

/// A loaded derived network and the JSON it was described by.
template <class T>
struct LoadedModel {
    std::shared_ptr<Supernet<T, cpu>> net;
    nlohmann::json description;
};

/// What architecture.json (and the description inside a model file) says: the search space, its
/// options and one choice per decision.
struct ArchitectureSpec {
    std::string space;
    nlohmann::json options = nlohmann::json::object();
    std::vector<std::int64_t> arch;
};

/// Reads the fields of an architecture description; `what` names its source in messages. Throws
/// format_error when a field is missing or of the wrong type.
inline ArchitectureSpec parse_architecture(const nlohmann::json& j, const std::string& what) {
    ArchitectureSpec s;
    try {
        DAM_CHECK(j.is_object(), format_error, "{}: the architecture description is not a JSON object", what);
        s.space = j.at("space").get<std::string>();
        s.arch = json_ints(j.at("architecture"), "architecture");
        if (j.contains("options")) s.options = j.at("options");
    } catch (const nlohmann::json::exception& e) {
        throw format_error(fmt::format("{}: the architecture description lacks a field or has one of the wrong type: {}",
                                       what, e.what()));
    }
    return s;
}

/// Reads architecture.json as written by diffautoml-search (see parse_architecture).
inline ArchitectureSpec read_architecture(const std::string& path) {
    const auto bytes = read_file(path);
    const auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
    DAM_CHECK(!j.is_discarded(), format_error, "read_architecture: '{}' is not valid JSON", path);
    return parse_architecture(j, "read_architecture '" + path + "'");
}

namespace detail {
template <class Space, class T>
std::shared_ptr<Supernet<T, cpu>> build_spec(const ArchitectureSpec& s, const std::string& what, std::int64_t max_values) {
    const auto o = Space::Options::from_json(s.options);
    try {
        if constexpr (requires { o.validate(); }) o.validate();
        else o.validate(Space::name);
    } catch (const value_error& e) {
        throw format_error(fmt::format("{}: {}", what, e.what()));
    }
    DAM_CHECK(max_values < 0 || o.min_parameters() <= max_values, format_error,
              "{}: the description's network has at least {} parameters but the file holds {} values; the description "
              "and the weights do not belong together",
              what, o.min_parameters(), max_values);
    Generator gen(0);  // the weights are loaded over it
    try {
        return Space::template build<T, cpu>(o, gen, s.arch);
    } catch (const value_error& e) {
        throw format_error(fmt::format("{}: {}", what, e.what()));
    }
}
}  // namespace detail

/// Builds the derived network an architecture describes (ShuffleSpace, MobileNetV2Space,
/// DartsSpace or DartsPaperSpace), with untrained weights. With `max_values` >= 0 a network that
/// needs more parameters than that is refused before anything is allocated (load_derived passes
/// the number of values its file holds). Throws format_error for any description it cannot build.
template <class T>
std::shared_ptr<Supernet<T, cpu>> build_architecture(const ArchitectureSpec& s, const std::string& what,
                                                     std::int64_t max_values = -1) {
    if (s.space == ShuffleSpace::name) return detail::build_spec<ShuffleSpace, T>(s, what, max_values);
    if (s.space == MobileNetV2Space::name) return detail::build_spec<MobileNetV2Space, T>(s, what, max_values);
    if (s.space == DartsSpace::name) return detail::build_spec<DartsSpace, T>(s, what, max_values);
    if (s.space == DartsPaperSpace::name) return detail::build_spec<DartsPaperSpace, T>(s, what, max_values);
    throw format_error(fmt::format("{}: unknown search space '{}' (known: {}, {}, {}, {})", what, s.space, ShuffleSpace::name,
                                   MobileNetV2Space::name, DartsSpace::name, DartsPaperSpace::name));
}

/// Rebuilds the network of a file written by save_derived from its bytes; `what` names the source
/// in messages. Throws format_error for anything else, and allocates no more than the bytes justify.
template <class T>
LoadedModel<T> load_derived_bytes(const std::vector<std::uint8_t>& bytes, const std::string& what) {
    DAM_CHECK(bytes.size() >= sizeof arch_magic + 8 && std::memcmp(bytes.data(), arch_magic, sizeof arch_magic) == 0,
              format_error, "{}: not a diffautoml architecture+weights file (bad magic); files written by save_derived "
              "start with DAMARCH1", what);
    std::uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + bytes.size() - 4, 4);
    DAM_CHECK(crc32_of(bytes.data(), bytes.size() - 4) == stored_crc, format_error,
              "{}: checksum mismatch: the file is corrupt or truncated", what);
    ByteReader r(bytes.data() + sizeof arch_magic, bytes.size() - sizeof arch_magic - 4, what);
    const auto version = r.get<std::uint32_t>();
    DAM_CHECK(version == arch_format_version, format_error, "{}: format version {} is not supported (this build reads {})",
              what, version, arch_format_version);
    const auto j = nlohmann::json::parse(r.get_string(), nullptr, false);
    DAM_CHECK(!j.is_discarded(), format_error, "{}: the architecture description is not valid JSON", what);
    const auto n = r.get<std::uint64_t>();
    DAM_CHECK(n <= r.remaining(), format_error, "{}: the weights need {} bytes but {} remain; the file is truncated", what,
              n, r.remaining());
    const std::uint8_t* model = r.get_bytes(static_cast<std::size_t>(n));
    DAM_CHECK(r.remaining() == 0, format_error, "{}: {} unexpected bytes after the weights", what, r.remaining());
    const ArchitectureSpec spec = parse_architecture(j, what);
    auto net = build_architecture<T>(spec, what, static_cast<std::int64_t>(n / sizeof(T)));
    try {
        nn::deserialize_model(*net, std::vector<std::uint8_t>(model, model + n), what);
    } catch (const format_error& e) {
        throw format_error(fmt::format("{}: the weights do not match the architecture the file describes ({}): {}",
                                       what, fmt::join(net->choice_names(spec.arch), ", "), e.what()));
    }
    net->eval();
    return {net, j};
}

/// Reads a file written by save_derived and rebuilds the network, in evaluation mode.
template <class T>
LoadedModel<T> load_derived(const std::string& path) {
    return load_derived_bytes<T>(read_file(path), "load_derived '" + path + "'");
}

}  // namespace diffautoml::nas
