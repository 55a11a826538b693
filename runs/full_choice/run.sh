#!/usr/bin/env bash
# Choice runs on the full-data protocol (docs/protocol.md), made after the full-data ablation
# (runs/full_ablation/) showed that the reduced protocol's settings do not carry to the full data:
# all 55,000 training images, 3 epochs = 1,287 steps, --no-test (the figure is the 5,000-image
# validation slice), seeds 0 and 1, the rows of runs/reduced_final/run.sh named below, one binary.
# The rule, written before the runs: the fixed recipe is whichever of fixed (lr 0.2 / wd 2e-3) and
# fixed_lr0.1_wd5e-4 has the higher mean validation accuracy; the joint search whichever of
# joint_alpha0.3 and joint_lrup does; da and nas_da are references and choose nothing. The two
# chosen rows then run on fresh seeds 123-125 with the test set read once (runs/full_final/run.sh).
# Round 2 (2026-12-07), its rule written before its runs: the finals (runs/full_final) found DA
# alone 0.23 above the joint search on 3/3 seeds, and both protocols say the NAS part costs. Two
# candidates give it less room: joint_lrup_sf0.1 (joint_lrup with the architecture fixed by 10% of
# the steps) and da_hpo_lrup (joint_lrup without NAS: the pair policy and the learned decay on the
# fixed network). Whichever of joint_lrup, joint_lrup_sf0.1 and da_hpo_lrup has the highest mean
# validation accuracy over seeds 0 and 1 goes to final runs on fresh seeds (126-128) against the
# fixed recipe, same binary, same budget. Same binary as round 1 (host.march x86-64-v3).
# Usage: runs/full_choice/run.sh [ROW...]  (finished runs are skipped; BIN as in reduced_final)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rows=("$@")
[[ ${#rows[@]} -eq 0 ]] && rows=(fixed fixed_lr0.1_wd5e-4 joint_alpha0.3 joint_lrup da nas_da joint_lrup_sf0.1 da_hpo_lrup)
OUT=runs/full_choice SEEDS="0 1" DATA_FLAGS="--train-subset 0 --epochs 3 --no-test" \
  exec "$here/../reduced_final/run.sh" "${rows[@]}"
