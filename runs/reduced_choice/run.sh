#!/usr/bin/env bash
# Choice runs on the reduced-data protocol (docs/protocol.md): 4,000 class-balanced training images,
# 50 epochs = 1,400 steps, no time limit, --no-test (the test set is not read; the figure is the
# held-out 333-image validation slice), seeds 0 and 1. They choose (a) the joint search's settings
# for little data and (b) the fixed recipe's learning rate and weight decay by a small grid, before
# the final runs on headline seeds (runs/reduced_final/). Two runs at a time, one thread each, from
# one copy of the binary (BIN). Usage: runs/reduced_choice/run.sh [ROW...]  (default: every row)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
BIN=${BIN:-./build/examples/diffautoml-search}
SEEDS=${SEEDS:-"0 1"}
declare -A ROWS=(
  [joint]=""
  [joint_fade1]="--da-fade 1"
  [joint_fade1_flip]="--da-fade 1 --da-flip 0.5"
  [joint_fade1_sf25]="--da-fade 1 --search-fraction 0.25"
  # Second round, after the fixed grid below preferred a higher rate and decay (lr 0.2, wd 2e-3):
  # the joint search started there, with the hypergradient bounded at that start as the main job
  # is (rate only up, decay only down), and forward mode with bounds a factor 10 away.
  [joint_fade1_lr0.2_wd2e-3]="--da-fade 1 --lr 0.2 --wd 2e-3 --lr-min 0.2 --wd-max 2e-3"
  [joint_fade1_fwd_lr0.2_wd2e-3]="--da-fade 1 --lr 0.2 --wd 2e-3 --lr-min 0.02 --wd-max 2e-2 --hpo-forgetting 0.99"
  [joint_fade1_fwd]="--da-fade 1 --hpo-forgetting 0.99 --lr-min 0.01 --wd-max 5e-3"
  # Third round, after the final table put the chosen joint search 1.35 points behind the fixed
  # recipe: one searched part at a time on top of that recipe (lr 0.2 / wd 2e-3, shift + flip,
  # choice 0 everywhere), each as the chosen joint search runs it, to find which part costs accuracy.
  [one_nas]="--nas dsnas --da standard --hpo fixed --lr 0.2 --wd 2e-3 --lr-min 0.01 --wd-max 5e-3"
  [one_da]="--nas fixed --da pair --da-fade 1 --hpo fixed --lr 0.2 --wd 2e-3 --lr-min 0.01 --wd-max 5e-3"
  [one_hpo]="--nas fixed --da standard --lr 0.2 --wd 2e-3 --lr-min 0.02 --wd-max 2e-2 --hpo-forgetting 0.99"
  # Fourth round: NAS alone cost ~2 points (87.99 against 90.09) where DA alone (90.09) and HPO alone
  # (90.24) cost nothing, so the supernet phase is what small data cannot afford. A faster
  # architecture step fixes decisions sooner (DSNAS fixes one once top-1 minus top-2 > 0.3), leaving
  # more steps for the derived network; and the search without NAS (DA + HPO) as the ablation row.
  [joint_fade1_fwd_lr0.2_wd2e-3_alpha0.1]="--da-fade 1 --lr 0.2 --wd 2e-3 --lr-min 0.02 --wd-max 2e-2 --hpo-forgetting 0.99 --alpha-lr 0.1"
  [joint_fade1_fwd_lr0.2_wd2e-3_alpha0.3]="--da-fade 1 --lr 0.2 --wd 2e-3 --lr-min 0.02 --wd-max 2e-2 --hpo-forgetting 0.99 --alpha-lr 0.3"
  [da_hpo]="--nas fixed --da-fade 1 --lr 0.2 --wd 2e-3 --lr-min 0.02 --wd-max 2e-2 --hpo-forgetting 0.99"
)
# The fixed recipe: ShuffleNetV2 with choice 0 everywhere, standard augmentation (shift + flip),
# warm-up + cosine at a fixed rate and decay from the grid below.
# The grid's first round was lr {0.05, 0.1, 0.2} x wd {5e-4, 2e-3}; its best lay at the corner (0.2,
# 2e-3), so a second round extends it past that corner.
fixed() { echo "--nas fixed --da standard --hpo fixed --lr $1 --wd $2 --lr-min 0.01 --wd-max 5e-3"; }
for lr in 0.05 0.1 0.2; do
  for wd in 5e-4 2e-3; do
    ROWS[fixed_lr${lr}_wd${wd}]="$(fixed $lr $wd)"
  done
done
ROWS[fixed_lr0.2_wd5e-3]="$(fixed 0.2 5e-3)"
ROWS[fixed_lr0.4_wd2e-3]="$(fixed 0.4 2e-3)"
ROWS[fixed_lr0.4_wd5e-3]="$(fixed 0.4 5e-3)"
rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=($(printf '%s\n' "${!ROWS[@]}" | sort))

one() {  # row seed flags...
  local row=$1 seed=$2; shift 2
  local out=runs/reduced_choice/${row}_seed${seed}
  [[ -s $out/result.json ]] && return 0
  "$BIN" --train-subset 4000 --epochs 50 --minutes 0 --no-test --threads 1 --seed "$seed" "$@" \
    --out "$out" > "$out.console" 2>&1 || { echo "FAILED: $row seed $seed (see $out.console)"; return 1; }
  tr '\r' '\n' < "$out.console" |
    grep -E '^(diffautoml-search|epoch [0-9]+ |derived|hyperparameters|wall_seconds|val_accuracy)' > "$out.log" || true
  rm -f "$out.console"
  # Per-epoch figures and hyperparameters, without the DA and architecture distributions.
  /usr/bin/python3 - "$out/log.jsonl" > "$out/epochs.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({k: r[k] for k in ("epoch", "step", "phase", "train_accuracy", "val_accuracy", "val_loss",
                                        "hyperparameters", "derived", "wall_seconds") if k in r}))
PY
  find "$out" -type f ! -name epochs.jsonl ! -name result.json -delete
  echo "done: $row seed $seed $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["val_accuracy"], r.get("steps"))' "$out/result.json")"
}
export -f one
export BIN
for row in "${rows[@]}"; do
  for seed in $SEEDS; do
    mkdir -p "runs/reduced_choice/${row}_seed${seed}"
    printf '%s\0' "one $row $seed ${ROWS[$row]}"
  done
done | xargs -0 -P 2 -I{} bash -c '{}'
