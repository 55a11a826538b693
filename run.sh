#!/usr/bin/env bash
# Quick start, part 1: installs what is missing, builds, and runs the main job: the joint search
# of augmentation policy, architecture and hyperparameters on Fashion-MNIST (diffautoml-search).
# Extra arguments go to the job (try --help; --resume continues an interrupted run).
set -euo pipefail
cd "$(dirname "$0")"
# --help needs no install or build once the job is built.
for a in "$@"; do
  if [[ ($a == --help || $a == -h) && -x build/examples/diffautoml-search ]]; then
    exec ./build/examples/diffautoml-search --help
  fi
done
./scripts/install_deps.sh
./scripts/build.sh
exec ./build/examples/diffautoml-search "$@"
