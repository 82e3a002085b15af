#!/usr/bin/env bash
# One device call on a machine that may be bare: llama.cpp binaries (built from .carry/llama.cpp-src.tar.xz,
# or unpacked from .carry/llama-bin.tar.xz.*), then testbed/device-call.sh, then what comes back bundled
# so that it stays under the device tool's 8 files: runs.tar, meta.tar (host files, matrix, call log)
# and, after a build, the binaries in 15 MiB parts (llama-bin.tar.xz.a?) to carry next time.
# usage: testbed/device-bare.sh TAG RUNS DEADLINE_S   (env as device-call.sh, FALLBACK: its fallback
# matrix; OUT must be set)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=$1 RUNS=$2 DEADLINE_S=$3
T0=$(date +%s)
WORK=${TB_WORK:-/tmp/tb}
built=0
ls "$REPO"/.carry/llama-bin.tar.xz.* >/dev/null 2>&1 || built=1
"$REPO/testbed/build.sh" "$WORK" 2>&1 | tail -5 || exit 1
if [ "$built" = 1 ]; then
  tar -C "$WORK/llama.cpp/build" -c bin | xz -T0 -6 | split -b 15M - "$OUT/llama-bin.tar.xz."
  ls -la "$OUT"
fi
export TB_SKIP_BUILD=1
left=$(( DEADLINE_S - ($(date +%s) - T0) ))
echo "[$(( $(date +%s) - T0 ))s] binaries ready; ${left}s left for the matrix"
mkdir -p /tmp/meta
OUT_FINAL=$OUT
# the runs go straight to $OUT: a call killed at its limit still returns the runs that ended
OUT=/tmp/meta TB_TAR=$OUT_FINAL/runs.tar "$REPO/testbed/device-call.sh" "$TAG" "$RUNS" "$left" "${FALLBACK:-}"
tar -C /tmp/meta -cf "$OUT_FINAL/meta.tar" .
ls -la "$OUT_FINAL"
