#!/usr/bin/env bash
# Chooses nas_search's default alpha learning rate on validation accuracy (the test set is not read):
# DSNAS on the ShuffleNetV2 space, 4 epochs (a shortened cosine schedule), 5,000 held-out images.
# Seed 0 sweeps 1e-2, 3e-2, 1e-1, 3e-1; seed 1 repeats 3e-2, 1e-1 and 3e-1.
set -euo pipefail
cd "$(dirname "$0")/../.."
run() {  # seed lr
  ./build/examples/nas_search --epochs 4 --alpha-lr "$2" --no-test --seed "$1" --save "/tmp/nas_alpha_$1_$2.bin" 2>/dev/null |
    grep -v '^\s*$' > "runs/nas_alpha_lr/seed$1_alpha_$2.log"
}
[[ "${1:-all}" == all || "$1" == 0 ]] && for lr in 1e-2 3e-2 1e-1 3e-1; do
  [[ -s "runs/nas_alpha_lr/seed0_alpha_$lr.log" ]] || run 0 "$lr"; done
[[ "${1:-all}" == all || "$1" == 1 ]] && for lr in 3e-2 1e-1 3e-1; do
  [[ -s "runs/nas_alpha_lr/seed1_alpha_$lr.log" ]] || run 1 "$lr"; done
exit 0
