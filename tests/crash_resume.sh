#!/usr/bin/env bash
# Crash safety of the main job: a short search is killed with SIGKILL (no handler runs, nothing is
# flushed) at KILLS moments drawn at random, checkpointing after every step so that many kills land
# in or next to a checkpoint write, and resumed with --resume after each; the result must equal an
# uninterrupted run's: the same model.bin byte for byte and the same result.json but for timings.
# Usage: crash_resume.sh BIN FASHION_DIR WORKDIR [KILLS]
set -euo pipefail
bin=$1 data=$2 work=$3 kills=${4:-20}
rm -rf "$work" && mkdir -p "$work"
args=(--data "$data" --train-subset 512 --validation 64 --epochs 3 --batch 64 --minutes 0 --no-test --threads 1
      --seed 3 --checkpoint-minutes 0.0001 --quiet)

# The reference run is timed, and so is its start-up (until its first checkpoint appears), so that
# the kills spread over the steps however slow a loaded machine makes the loading of the data.
start=$(date +%s.%N)
"$bin" "${args[@]}" --out "$work/ref" > "$work/ref.console" 2>&1 &
ref_pid=$!
startup_seconds=""
while kill -0 "$ref_pid" 2> /dev/null; do
  if [[ -z $startup_seconds && -f $work/ref/checkpoint.bin ]]; then
    startup_seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
  fi
  sleep 0.01
done
wait "$ref_pid" || { cat "$work/ref.console"; exit 1; }
ref_seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
[[ -n $startup_seconds ]] || startup_seconds=0
echo "uninterrupted run: ${ref_seconds}s (first checkpoint after ${startup_seconds}s)"

# Compares a finished run in DIR with the uninterrupted one.
same_as_ref() {
  cmp "$work/ref/model.bin" "$1/model.bin" || { echo "$1: model.bin differs from the uninterrupted run's"; exit 1; }
  python3 - "$work/ref/result.json" "$1/result.json" <<'PY'
import json, sys
timing = {"wall_seconds", "search_seconds", "search_cost_cpu_minutes"}
a, b = (json.load(open(p)) for p in sys.argv[1:])
a, b = ({k: v for k, v in r.items() if k not in timing} for r in (a, b))
diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
if diff:
    sys.exit(f"{sys.argv[2]}: result.json differs from the uninterrupted run's in {diff}")
print(f"{sys.argv[2]}: equal to the uninterrupted run (val_accuracy {a['val_accuracy']:.4f}, {a['steps']} steps)")
PY
}

RANDOM=20261205  # the kill moments are drawn reproducibly; where a kill lands still varies with timing
# Kill until KILLS kills have landed. A run that finishes before its kill (the machine got faster
# than the timed reference run) is compared there and then, and the next attempt starts a new run.
killed=0 finished=0 resumed=0 run=1
out="$work/crash$run"
for ((i = 1; killed < kills; i++)); do
  [[ $i -le $((4 * kills)) ]] || { echo "$killed kills in $((i - 1)) attempts: the runs finish too fast to test"; exit 1; }
  resume=()
  [[ -f $out/checkpoint.bin ]] && resume=(--resume) && resumed=$((resumed + 1))
  "$bin" "${args[@]}" --out "$out" "${resume[@]}" > "$work/attempt$i.console" 2>&1 &
  pid=$!
  # A moment in (s/2, s + (ref - s)/2), s the start-up: early kills hit start-up and the first
  # checkpoint, later ones the steps, and the run rarely ends first.
  delay=$(awk -v t="$ref_seconds" -v s="$startup_seconds" -v r=$((RANDOM % 1000)) \
    'BEGIN { lo = s / 2; hi = s + (t - s) / 2; printf "%.3f", lo + (hi - lo) * r / 1000 }')
  sleep "$delay"
  if kill -KILL "$pid" 2> /dev/null; then
    killed=$((killed + 1))
    wait "$pid" 2> /dev/null || true
  else
    wait "$pid" || { echo "attempt $i failed on its own:"; cat "$work/attempt$i.console"; exit 1; }
    if [[ -f $out/result.json && ! -f $out/checkpoint.bin ]]; then
      same_as_ref "$out"
      finished=$((finished + 1)) run=$((run + 1))
      out="$work/crash$run"
    fi
    # A fresh run ended before its kill: the reference was timed on a busier machine than this one
    # is now (other tests ran beside it). Shrink the timings, so that kills land inside runs again.
    if [[ ${#resume[@]} -eq 0 ]]; then
      read -r ref_seconds startup_seconds < <(awk -v t="$ref_seconds" -v s="$startup_seconds" \
        'BEGIN { printf "%.3f %.3f\n", t * 0.8, s * 0.8 }')
    fi
  fi
done
echo "$killed kills, $resumed attempts resumed from a checkpoint, $finished runs finished between kills"
# Finish the last run (resuming if a checkpoint survived) and compare.
resume=()
[[ -f $out/checkpoint.bin ]] && resume=(--resume)
"$bin" "${args[@]}" --out "$out" "${resume[@]}" > "$work/final.console" 2>&1 || { cat "$work/final.console"; exit 1; }
[[ $resumed -ge $((kills / 4)) ]] || { echo "only $resumed attempts resumed from a checkpoint: the test did not test"; exit 1; }
same_as_ref "$out"
