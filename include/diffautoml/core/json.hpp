#pragma once
// Reading numbers from JSON that a user or a corrupt file may have written: nlohmann's
// get<std::int64_t>() converts a JSON float (1e106, 2.5) to an integer by a cast whose result is
// undefined when it does not fit, so every integer field goes through json_int.
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace diffautoml {

/// The value of `v`, which must be a JSON integer that fits int64; format_error naming `field`
/// otherwise.
inline std::int64_t json_int(const nlohmann::json& v, std::string_view field) {
    const bool fits = v.is_number_integer() &&
                      (!v.is_number_unsigned() ||
                       v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    if (!fits) throw format_error(fmt::format("'{}' must be a whole number, got {}", field, v.dump()));
    return v.get<std::int64_t>();
}

/// The integers of the JSON array `v` (see json_int).
inline std::vector<std::int64_t> json_ints(const nlohmann::json& v, std::string_view field) {
    if (!v.is_array()) throw format_error(fmt::format("'{}' must be a list of whole numbers, got {}", field, v.dump()));
    std::vector<std::int64_t> out;
    out.reserve(v.size());
    for (const auto& x : v) out.push_back(json_int(x, field));
    return out;
}

}  // namespace diffautoml
