#!/usr/bin/env bash
# Keeps what docs/results.md cites of a finished run folder OUT (and OUT.console beside it):
# result.json, epochs.jsonl (log.jsonl's per-epoch figures) and OUT.log (the console's summary
# lines); deletes the rest (model.bin, report.html, log.jsonl, the console).
set -euo pipefail
out=$1
grep -E '^(diffautoml-search|epoch [0-9]+ |derived|hyperparameters|wall_seconds|test_accuracy)' "$out.console" > "$out.log" || true
rm -f "$out.console"
/usr/bin/python3 - "$out/log.jsonl" > "$out/epochs.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(json.dumps({k: r[k] for k in ("epoch", "step", "phase", "train_accuracy", "val_accuracy", "val_loss",
                                        "hyperparameters", "derived", "lr_factor", "wall_seconds") if k in r}))
PY
find "$out" -type f ! -name epochs.jsonl ! -name result.json -delete
