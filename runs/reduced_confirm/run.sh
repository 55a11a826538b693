#!/usr/bin/env bash
# Confirmation on fresh seeds (docs/protocol.md, "a second look"): the second final's joint search
# (--alpha-lr 0.3) came out level with the best fixed recipe on seeds 100-104 (-0.08 points) after
# the first final had missed there, so that comparison is a second look at the same seeds. These
# runs repeat the two rows, with settings unchanged (runs/reduced_final/run.sh's ROWS), on seeds
# 105-109, which no run had used. Stated before running: the claim "the joint search is at least
# as good as the best fixed recipe" stands if the paired mean difference is >= 0; "better" needs
# the paired 95% interval above 0.
# Usage: runs/reduced_confirm/run.sh  (finished runs are skipped; BIN as in runs/reduced_final/run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
OUT=runs/reduced_confirm SEEDS="105 106 107 108 109" exec "$here/../reduced_final/run.sh" fixed joint_alpha0.3
