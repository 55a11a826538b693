#!/usr/bin/env bash
# The ablation on the full-data protocol at a shorter common budget (docs/protocol.md): all 60,000
# Fashion-MNIST training images (55,000 trained on, the default 1/12 held out for validation and
# the hypergradient), 3 epochs = 1,290 steps for every row, about the reduced protocol's 1,400, so
# that six rows x three seeds fit in an hour on 2 cores; the test set read once at the end of each
# run. Seeds 120-122: no run had used them, none was used for a choice. Every row's settings are
# runs/reduced_final/run.sh's, chosen on the reduced protocol's validation runs and not retuned for
# the full data (a choice on full-data validation would need its own choice runs; none were made).
# Usage: runs/full_ablation/run.sh [ROW...]  (finished runs are skipped; BIN as in
# runs/reduced_final/run.sh: a copy of the binary that a rebuild does not touch)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=(fixed joint_alpha0.3 nas nas_da nas_hpo da_hpo)
OUT=runs/full_ablation SEEDS="120 121 122" DATA_FLAGS="--train-subset 0 --epochs 3" \
  exec "$here/../reduced_final/run.sh" "${rows[@]}"
