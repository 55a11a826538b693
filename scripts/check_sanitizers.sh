#!/usr/bin/env bash
# Builds the unit tests (dam_tests: every op, the gradient checker, the samplers, the parsers, the
# search's checkpoints) with AddressSanitizer and UndefinedBehaviorSanitizer in build-sanitize/ and
# runs them. Any finding stops the run with the sanitizer's report (-fno-sanitize-recover=all):
# a leak, an out-of-bounds access, a use after free, a signed overflow, a misaligned load, ...
# Called by .ci/run after the README's test command; about 15 minutes on 2 cores.
# Usage: scripts/check_sanitizers.sh [Catch2 test spec, e.g. "[ops]"]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g -DNDEBUG" \
  -DDAM_SANITIZE=address,undefined -DDAM_CUDA=OFF -DDAM_BUILD_EXAMPLES=OFF -DDAM_BUILD_BENCHMARKS=OFF \
  -DDAM_BUILD_TESTS=ON > /dev/null
cmake --build build-sanitize -j"$(nproc)" --target dam_tests
# detect_leaks: every allocation is freed; halt_on_error and print_stacktrace make a finding fatal
# and say where. OpenMP's runtime (libgomp) is not instrumented and keeps its thread pool alive to
# the end, so its one-time allocations are the only suppressed leaks.
supp=$(mktemp)
trap 'rm -f "$supp"' EXIT
echo "leak:libgomp" > "$supp"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$supp"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export OMP_NUM_THREADS=2
start=$(date +%s)
# In a random order with a fixed seed: a test that leans on another's leftovers fails here, and the
# failure replays with the same seed.
./build-sanitize/tests/dam_tests --order rand --rng-seed 20261206 "$@"
echo "check_sanitizers: dam_tests passed under AddressSanitizer and UndefinedBehaviorSanitizer in $(($(date +%s) - start)) s"
