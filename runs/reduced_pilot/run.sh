#!/usr/bin/env bash
# A first look at the reduced-data protocol (docs/protocol.md), choice runs only (--no-test: the test
# set is not read): the joint search (the main job's defaults) against a fixed recipe (ShuffleNetV2
# with choice 0 in every layer, standard augmentation, the fixed warm-up + cosine schedule at lr 0.1
# and weight decay 5e-4, not yet picked by a grid), on 4,000 class-balanced training images
# (--train-subset 4000; 333 held out), 50 epochs with no time limit, seed 0. It sizes the protocol
# (minutes a run on 2 cores) and gives a first validation figure. Keeps result.json and a compact
# log per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
common=(--train-subset 4000 --epochs 50 --minutes 0 --no-test --seed 0)
for row in joint fixed; do
  out=runs/reduced_pilot/${row}_seed0
  [[ -s $out/result.json ]] && continue
  extra=()
  [[ $row == fixed ]] && extra=(--nas fixed --da standard --hpo fixed)
  ./build/examples/diffautoml-search "${common[@]}" "${extra[@]}" --out "$out" 2>&1 | tr '\r' '\n' |
    grep -E '^(diffautoml-search|epoch [0-9]+ |derived|hyperparameters|wall_seconds|val_accuracy)' > "$out.log"
  find "$out" -type f ! -name result.json -delete
done
