#!/usr/bin/env bash
# Quick start, part 2: installs what is missing, builds, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install_deps.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
