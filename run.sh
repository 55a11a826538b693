#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, and runs the main job.
# Until the joint search lands, the main job is train_fixed: the reference network `small`
# trained on Fashion-MNIST. Extra arguments go to the job (try --help).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install_deps.sh
./scripts/build.sh
exec ./build/examples/train_fixed "$@"
