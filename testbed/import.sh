#!/usr/bin/env bash
# Copy a call's runs (the runs.tar that came back through $OUT) into data/runs/<date>-<scenario>/.
# usage: testbed/import.sh RUNS_TAR MATRIX.tsv [CALL_LOG] [DATE]
# The scenario of a run is the matrix line's scenario column: run ids are "<scenario>--<placement>".
# Logs and manifests are copied byte for byte (never edited); dry-run CSVs go to data/dryrun/.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TARF=$1; MATRIX=$2; CALL_LOG=${3:-}; DATE=${4:-$(date +%Y-%m-%d)}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
tar -xf "$TARF" -C "$TMP"
mkdir -p "$REPO/data/dryrun"
for f in "$TMP"/dryrun-*.csv; do [ -e "$f" ] && cp "$f" "$REPO/data/dryrun/"; done
for d in "$TMP"/*/; do
  run=$(basename "$d")
  scen=${run%%--*}
  dest=$REPO/data/runs/$DATE-$scen
  mkdir -p "$dest"
  rm -rf "${dest:?}/$run"; cp -r "$d" "$dest/$run"
  grep -P "^\Q$run\E\t" "$MATRIX" >> "$dest/matrix.tsv" || true
  # one runner log per call: call.log (first call into this directory), then call-<tag>.log
  if [ -n "$CALL_LOG" ]; then
    if [ ! -e "$dest/call.log" ]; then cp "$CALL_LOG" "$dest/call.log"
    elif ! cmp -s "$CALL_LOG" "$dest/call.log"; then cp "$CALL_LOG" "$dest/call-${TB_CALL_TAG:-$(basename "$TARF" .tar)}.log"; fi
  fi
  echo "imported $run -> ${dest#$REPO/}"
done
for dest in "$REPO"/data/runs/"$DATE"-*/; do
  if [ -f "$dest/matrix.tsv" ]; then sort -u -o "$dest/matrix.tsv" "$dest/matrix.tsv"; fi
done
# placer's predictions for the placer rows (written by make-matrix.py next to the matrix)
if [ -f "$MATRIX.predictions.json" ]; then
  python3 - "$MATRIX.predictions.json" "$REPO/data/runs" "$DATE" <<'PY'
import json, os, sys
preds = json.load(open(sys.argv[1]))
for run_id, p in preds.items():
    dest = os.path.join(sys.argv[2], f"{sys.argv[3]}-{run_id.split('--')[0]}")
    if not os.path.isdir(os.path.join(dest, run_id)):
        continue
    path = os.path.join(dest, "predictions.json")
    cur = json.load(open(path)) if os.path.exists(path) else {}
    cur[run_id] = p
    json.dump(cur, open(path, "w"), indent=1)
    print(f"prediction for {run_id} -> {os.path.relpath(path)}")
PY
fi
