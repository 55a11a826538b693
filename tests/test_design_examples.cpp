// docs/design.md's worked examples (adding an op, adding a device), compiled as they stand in the
// document: at configure time CMake copies each ```cpp block that follows a line
// "<!-- compiled: NAME -->" there to design_examples/NAME.inc in the build tree (tests/CMakeLists.txt).
#include <cstdint>
#include <string_view>
#include <utility>

#include "test_helpers.hpp"

#include "design_examples/op.inc"

#include "design_examples/device.inc"
