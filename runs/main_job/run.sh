#!/usr/bin/env bash
# The main job (./run.sh: diffautoml-search with its defaults, the joint search of the pair
# policy, DSNAS on the ShuffleNetV2 space and the one-step hypergradients, 55-minute budget on the
# 2 cores, --threads 2) on fresh headline seeds 130-132 (no run had used them; none chose
# anything), one after the other, each alone on the machine, from one copy of the binary (BIN, the
# default x86-64-v3 build of ./run.sh). Full protocol, second target of the issue: >= 94.5% test
# accuracy within the 55 minutes. The test set is read once, at the end of each run.
# Usage: runs/main_job/run.sh  (finished runs are skipped)
# The committed runs were made this way with OUT=/tmp/mainjob and BIN a copy of the binary (so
# that builds during the runs could not replace it), then copied here and compacted by compact.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
BIN=${BIN:-./build/examples/diffautoml-search}
SEEDS=${SEEDS:-"130 131 132"}
OUT=${OUT:-runs/main_job}
for seed in $SEEDS; do
  out=$OUT/joint_seed$seed
  [[ -s $out/result.json ]] && continue
  mkdir -p "$out"
  "$BIN" --seed "$seed" --quiet --out "$out" > "$out.console" 2>&1 || { echo "FAILED: seed $seed (see $out.console)"; exit 1; }
  "$here/compact.sh" "$out"
done
