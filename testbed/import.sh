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
  [ -n "$CALL_LOG" ] && [ ! -e "$dest/call.log" ] && cp "$CALL_LOG" "$dest/call.log"
  echo "imported $run -> ${dest#$REPO/}"
done
for dest in "$REPO"/data/runs/"$DATE"-*/; do
  [ -f "$dest/matrix.tsv" ] && sort -u -o "$dest/matrix.tsv" "$dest/matrix.tsv"
done
