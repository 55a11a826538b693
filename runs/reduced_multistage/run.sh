#!/usr/bin/env bash
# The multi-stage AutoML baseline on the reduced-data protocol (docs/protocol.md): the pipeline the
# joint search claims to replace, each stage retraining from scratch and choosing on validation:
#   1. NAS: DSNAS on the fixed recipe (lr 0.2 / wd 2e-3, shift + flip), --alpha-lr 0.3. This is the
#      NAS-only row of runs/reduced_final/ (nas_seedS): its architecture is fixed by half the steps,
#      before that run read the test set, so the stage reuses it and counts its cost.
#   2. RandAugment on that architecture: (N, M) from RA_GRID, base flip 0.5, RandAugment's ops that
#      Fashion-MNIST's grey set holds (12 of 14), the fixed recipe's lr / wd; --no-test, each run's
#      held-out 333 images choose.
#   3. Learning rate and weight decay with stage 2's choice: the points of LRWD_GRID besides
#      stage 2's (0.2, 2e-3), which stage 2's chosen run already measured; --no-test.
#   4. The final run: stage 3's choice trained once more, the validation images joined at 70% as
#      every final run, the test set read once.
# Every choice of a seed is made on that seed's own validation slice; its test set is read once,
# by the final run. Per seed the stages run one after another; two seeds at a time, one thread
# each, from one copy of the binary (BIN, a native build as runs/reduced_final/run.sh says).
# Leaves per seed: each run's result.json and epochs.jsonl, a compact log, and pipeline_seedS.json
# (the choices, every stage's validation accuracy and the pipeline's cost in CPU minutes).
# Usage: runs/reduced_multistage/run.sh  (SEEDS, BIN, OUT as in runs/reduced_final/run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
BIN=${BIN:-./build-native/examples/diffautoml-search}
SEEDS=${SEEDS:-"100 101 102 103 104"}
OUT=${OUT:-runs/reduced_multistage}
NAS_RUNS=${NAS_RUNS:-runs/reduced_final}
RA_GRID=${RA_GRID:-"1:4 2:4 2:8"}
LRWD_GRID=${LRWD_GRID:-"0.1:2e-3 0.2:5e-4"}
export BIN OUT NAS_RUNS RA_GRID LRWD_GRID

one() {  # name seed flags... : one training run into $OUT/name_seedS, skipped when done
  local name=$1 seed=$2; shift 2
  local out=$OUT/${name}_seed${seed}
  [[ -s $out/result.json ]] && return 0
  mkdir -p "$out"
  "$BIN" --train-subset 4000 --epochs 50 --minutes 0 --threads 1 --seed "$seed" "$@" --out "$out" \
    > "$out.console" 2>&1 || { echo "FAILED: $name seed $seed (see $out.console)"; return 1; }
  tr '\r' '\n' < "$out.console" |
    grep -E '^(diffautoml-search|epoch [0-9]+ |derived|hyperparameters|wall_seconds|val_accuracy|test_accuracy)' > "$out.log" || true
  rm -f "$out.console"
  /usr/bin/python3 - "$out/log.jsonl" > "$out/epochs.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({k: r[k] for k in ("epoch", "step", "phase", "train_accuracy", "val_accuracy", "val_loss",
                                        "hyperparameters", "derived", "wall_seconds") if k in r}))
PY
  find "$out" -type f ! -name epochs.jsonl ! -name result.json -delete
  echo "done: $name seed $seed"
}

best() {  # seed name... : the name whose run has the highest validation accuracy (the first on a tie)
  /usr/bin/python3 - "$OUT" "$@" <<'PY'
import json, sys
out, seed, names = sys.argv[1], sys.argv[2], sys.argv[3:]
accs = [json.load(open(f"{out}/{n}_seed{seed}/result.json"))["val_accuracy"] for n in names]
print(names[max(range(len(names)), key=lambda i: (accs[i], -i))])
PY
}

pipeline() {  # seed
  local seed=$1 nas=$NAS_RUNS/nas_seed$1/result.json
  [[ -s $nas ]] || { echo "FAILED: seed $seed has no NAS stage ($nas; run runs/reduced_final/run.sh nas)"; return 1; }
  local arch
  arch=$(/usr/bin/python3 -c "import json, sys; ids = {'shuffle_k3': 0, 'shuffle_k5': 1, 'shuffle_k7': 2, 'shuffle_xception': 3}; print(','.join(str(ids[a]) for a in json.load(open(sys.argv[1]))['architecture']))" "$nas")
  local base="--nas fixed --arch $arch --da randaugment --da-flip 0.5 --hpo fixed --lr-min 0.01 --wd-max 5e-3"
  local ra_names=() n m
  for nm in $RA_GRID; do
    n=${nm%:*} m=${nm#*:}
    one "ra_n${n}_m${m}" "$seed" $base --ra-n "$n" --ra-m "$m" --lr 0.2 --wd 2e-3 --no-test
    ra_names+=("ra_n${n}_m${m}")
  done
  local ra
  ra=$(best "$seed" "${ra_names[@]}")
  n=${ra#ra_n} n=${n%%_*} m=${ra##*_m}
  local lw_names=("$ra") lr wd
  for lw in $LRWD_GRID; do
    lr=${lw%:*} wd=${lw#*:}
    one "${ra}_lr${lr}_wd${wd}" "$seed" $base --ra-n "$n" --ra-m "$m" --lr "$lr" --wd "$wd" --no-test
    lw_names+=("${ra}_lr${lr}_wd${wd}")
  done
  local pick
  pick=$(best "$seed" "${lw_names[@]}")
  lr=0.2 wd=2e-3
  if [[ $pick != "$ra" ]]; then lr=${pick##*_lr} lr=${lr%%_*} wd=${pick##*_wd}; fi
  one final "$seed" $base --ra-n "$n" --ra-m "$m" --lr "$lr" --wd "$wd"
  /usr/bin/python3 - "$OUT" "$seed" "$nas" "$arch" "$ra" "$pick" "$lr" "$wd" "${ra_names[*]}" "${lw_names[*]}" <<'PY'
import json, sys
out, seed, nas, arch, ra, pick, lr, wd, ra_names, lw_names = sys.argv[1:]
res = lambda n: json.load(open(f"{out}/{n}_seed{seed}/result.json"))
nas_r = json.load(open(nas))
runs = [nas_r] + [res(n) for n in sorted(set(ra_names.split() + lw_names.split()))] + [res("final")]
cpu = lambda r: r["wall_seconds"] * r["host"]["threads"] / 60
p = {"seed": int(seed), "architecture": [int(a) for a in arch.split(",")], "nas_run": nas,
     "stage2_val_accuracy": {n: res(n)["val_accuracy"] for n in ra_names.split()}, "stage2_choice": ra,
     "stage3_val_accuracy": {n: res(n)["val_accuracy"] for n in lw_names.split()}, "stage3_choice": pick,
     "final": {"lr": float(lr), "weight_decay": float(wd), "test_accuracy": res("final")["test_accuracy"]},
     "training_runs": len(runs), "steps": sum(r["steps"] for r in runs),
     "cpu_minutes": round(sum(cpu(r) for r in runs), 1)}
json.dump(p, open(f"{out}/pipeline_seed{seed}.json", "w"), indent=1)
print(f"pipeline seed {seed}: {ra}, lr {lr} wd {wd}: test {p['final']['test_accuracy']}, {p['training_runs']} runs, {p['cpu_minutes']} CPU minutes")
PY
}
export -f one best pipeline
for seed in $SEEDS; do printf '%s\0' "pipeline $seed"; done | xargs -0 -P 2 -I{} bash -c '{}'
