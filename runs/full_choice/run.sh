#!/usr/bin/env bash
# Choice runs on the full-data protocol (docs/protocol.md), made after the full-data ablation
# (runs/full_ablation/) showed that the reduced protocol's settings do not carry to the full data:
# all 55,000 training images, 3 epochs = 1,287 steps, --no-test (the figure is the 5,000-image
# validation slice), seeds 0 and 1, the rows of runs/reduced_final/run.sh named below, one binary.
# The rule, written before the runs: the fixed recipe is whichever of fixed (lr 0.2 / wd 2e-3) and
# fixed_lr0.1_wd5e-4 has the higher mean validation accuracy; the joint search whichever of
# joint_alpha0.3 and joint_lrup does; da and nas_da are references and choose nothing. The two
# chosen rows then run on fresh seeds 123-125 with the test set read once (runs/full_final/run.sh).
# Usage: runs/full_choice/run.sh [ROW...]  (finished runs are skipped; BIN as in reduced_final)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=(fixed fixed_lr0.1_wd5e-4 joint_alpha0.3 joint_lrup da nas_da)
OUT=runs/full_choice SEEDS="0 1" DATA_FLAGS="--train-subset 0 --epochs 3 --no-test" \
  exec "$here/../reduced_final/run.sh" "${rows[@]}"
