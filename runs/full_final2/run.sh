#!/usr/bin/env bash
# Final runs for the full-data choice runs' round 2 (runs/full_choice/run.sh): the row it picked on
# validation, da_hpo_lrup (the pair policy with --da-fade 1 and the learned decay, rate only rising
# from 0.2, on the fixed network: the joint search without NAS), against the fixed recipe (lr 0.2 /
# wd 2e-3), on fresh seeds 126-128 (no run had used them; none chose anything), all 55,000 training
# images, 3 epochs = 1,287 steps, the test set read once at the end of each run, the binary of
# runs/full_choice and runs/full_final (host.march x86-64-v3). The question, written before the
# runs: is it >= 1.0 point above the fixed recipe with the 95% interval of the paired difference
# above zero, or at least no worse (mean paired difference >= 0)?
# Usage: runs/full_final2/run.sh [ROW...]  (finished runs are skipped; BIN as in reduced_final)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=(fixed da_hpo_lrup)
OUT=runs/full_final2 SEEDS="126 127 128" DATA_FLAGS="--train-subset 0 --epochs 3" \
  exec "$here/../reduced_final/run.sh" "${rows[@]}"
