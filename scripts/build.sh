#!/usr/bin/env bash
# Configures a Release build in build/ and builds everything (library checks, tests, examples,
# benchmarks) with all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
