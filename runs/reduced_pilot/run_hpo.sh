#!/usr/bin/env bash
# The hypergradient with its bounds well away from the start (learning rate in [0.01, 1], weight
# decay in [1e-6, 5e-3], starting at 0.1 and 5e-4), one-step against forward mode with forgetting
# 0.99 and radial curvature (docs/hpo.md), on the reduced-data protocol of run.sh: choice runs
# (--no-test), seed 0, 50 epochs. Keeps result.json, the console's epoch lines and epochs.jsonl (per-epoch figures and
# hyperparameters) per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
common=(--train-subset 4000 --epochs 50 --minutes 0 --no-test --seed 0 --lr-min 0.01 --wd-max 5e-3)
for row in onestep_wide forward_wide; do
  out=runs/reduced_pilot/${row}_seed0
  [[ -s $out/result.json ]] && continue
  extra=()
  [[ $row == forward_wide ]] && extra=(--hpo-forgetting 0.99 --hpo-curvature radial)
  ./build/examples/diffautoml-search "${common[@]}" "${extra[@]}" --out "$out" 2>&1 | tr '\r' '\n' |
    grep -E '^(diffautoml-search|epoch [0-9]+ |derived|hyperparameters|wall_seconds|val_accuracy)' > "$out.log"
  # The per-epoch figures and hyperparameters, without the DA and architecture distributions.
  /usr/bin/python3 -c 'import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({k: r[k] for k in ("epoch", "step", "phase", "train_accuracy", "val_accuracy", "val_loss",
                                        "hyperparameters", "derived", "wall_seconds")}))' "$out/log.jsonl" > "$out/epochs.jsonl"
  find "$out" -type f ! -name epochs.jsonl ! -name result.json -delete
done
