// libFuzzer's entry point for one target, chosen at compile time (DAM_FUZZ_TARGET: idx,
// model_file, architecture or checkpoint). Built by tests/fuzz/CMakeLists.txt with clang and
// -fsanitize=fuzzer,address,undefined; run by scripts/check_fuzz.sh.
#include "targets.hpp"
#ifdef DAM_FUZZ_WHOLE_SEARCH
#include "checkpoint_target.hpp"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    dam_fuzz::DAM_FUZZ_TARGET(data, size);
    return 0;
}
