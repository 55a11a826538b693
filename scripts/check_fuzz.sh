#!/usr/bin/env bash
# Fuzzes the parsers (tests/fuzz/targets.hpp): IDX files, model files, architecture.json and
# checkpoints. Builds the four libFuzzer targets with clang under AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/, then runs each for FUZZ_SECONDS (default 60) from its
# committed seed corpus (tests/fuzz/corpus/<target>, copied: the run never edits the repository).
# A crash, an exception other than format_error, a hang (-timeout), an input that grows memory
# past -rss_limit_mb or asks for more than -malloc_limit_mb in one allocation stops it; the
# offending input is kept in build-fuzz/findings/<target>/ and printed as a reproducer command.
# Called by .ci/run; a longer run: FUZZ_SECONDS=3600 scripts/check_fuzz.sh (docs/reliability.md).
# Usage: scripts/check_fuzz.sh [target ...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh clang libclang-rt-dev libomp-dev
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx model_file architecture checkpoint)
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DDAM_BUILD_FUZZERS=ON \
  -DDAM_CUDA=OFF -DDAM_BUILD_TESTS=OFF -DDAM_BUILD_EXAMPLES=OFF -DDAM_BUILD_BENCHMARKS=OFF \
  > /dev/null
if [ $# -eq 0 ]; then
  cmake --build build-fuzz -j"$(nproc)" --target dam_fuzzers
else
  cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
fi
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  rm -rf "$work" && mkdir -p "$work" "$findings"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  log=build-fuzz/fuzz_$t.log
  echo "check_fuzz: $t for ${seconds} s from $(ls tests/fuzz/corpus/"$t" | wc -l) seeds"
  if ./build-fuzz/tests/fuzz/fuzz_"$t" "$work" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
       -malloc_limit_mb=512 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" > "$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "check_fuzz: $t passed: ${execs} inputs, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files"
  else
    status=1
    echo "check_fuzz: $t FAILED; the end of its log ($log):"
    tail -60 "$log"
    for f in "$findings"/*; do
      [ -e "$f" ] && echo "check_fuzz: reproduce with ./build-fuzz/tests/fuzz/fuzz_$t $f"
    done
  fi
done
exit $status
