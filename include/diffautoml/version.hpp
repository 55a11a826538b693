#pragma once
// The library's version, as CMake's project() states it (tests/test_version.cpp checks that they agree).
#include <string_view>

namespace diffautoml {

inline constexpr std::string_view version = "0.1.0";

}  // namespace diffautoml
