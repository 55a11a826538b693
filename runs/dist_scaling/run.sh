#!/usr/bin/env bash
# The weak-scaling figures of docs/results.md: dist_scaling at 1 and 2 ranks, alternately, three
# times each, on a 2-core machine (1 thread a rank). Output: np1_np2_interleaved.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
for rep in 1 2 3; do
  for np in 1 2; do
    echo "== rep $rep np $np"
    mpirun --allow-run-as-root --oversubscribe -np $np --bind-to core build/benchmarks/dist_scaling
  done
done > runs/dist_scaling/np1_np2_interleaved.txt 2>&1
