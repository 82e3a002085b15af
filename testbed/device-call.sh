#!/usr/bin/env bash
# One device call on a real multi-GPU machine: detect the host, solve the matrix for what was
# detected, run it. The solves happen on the device because the host file placer solves for (GPU
# bandwidth, measured RAM bandwidth) only exists there.
#
# usage: testbed/device-call.sh TAG RUNS DEADLINE_S [FALLBACK_MATRIX]
#   TAG       the call's tag (c8, …): run ids <scenario>--<placement>--TAG
#   RUNS      make-matrix.py --runs list (SCENARIO:PLACEMENT,…) over testbed/matrix/scenarios.tsv
#   FALLBACK  a matrix solved before the call (on the committed host files), used if solving here fails
# env: OUT (files that come back), PLACER_TREE (the tree state make-matrix.py records), RAM_LIMIT_MIB,
#      TB_REPEATS / TB_FIRST_REPEAT (make-matrix.py --repeats / --first-repeat: the protocol's interleaved
#      rounds), TB_HOST_EMUL=ddr4 (testbed/host-emul.sh: the solve hosts get the emulated RAM size and
#      the bandwidth measured on llama.cpp's cores)
# Writes to $OUT: host-detect.toml, the solve hosts, matrix.tsv(+.predictions.json), runs.tar, call.log.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=$1 RUNS=$2 DEADLINE_S=$3 FALLBACK=${4:-}
OUT=${OUT:-/tmp/out}
PL=$REPO/.carry/placer
# the carried binary travels xz-compressed (the tree, binaries included, must stay under 64 MiB)
if [ ! -x "$PL" ] && [ -f "$PL.xz" ]; then xz -dc "$PL.xz" > /tmp/placer && chmod +x /tmp/placer && PL=/tmp/placer; fi
export TB_PLACER=$PL
T0=$(date +%s)
if [ "${TB_HOST_EMUL:-}" = ddr4 ]; then
  . "$REPO/testbed/host-emul.sh"
  RAM_LIMIT_MIB=${TB_RAM_LIMIT_MIB:-65536}
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=index,name,memory.total,memory.free,pcie.link.gen.max,pcie.link.width.max --format=csv
nproc; grep -E 'MemTotal|MemAvailable' /proc/meminfo
"$PL" host detect -o "$OUT/host-detect.toml" || true
# the solve hosts of the real-two-GPU scenarios (scenarios.tsv names them): what llama.cpp sees
# under the ballast. RAM: the VM's MemTotal starts small and grows as memory is used (KINDS.md:
# "the memory limit is the whole 256 GiB from the start"), so the detected RAM size is replaced by
# RAM_LIMIT_MIB; the measured bandwidth stays.
# TB_DETECT: the solve hosts to write, "NAME=MiB[,MiB…]" each (hardware/NAME.toml, `host detect
# --emulate`); default: the two of the nvidia-h200-x2 machine. On one GPU, two values make two
# virtual devices (GGML_CUDA_DEVICES), as the emul: scenarios run.
detect_all() {
  local spec name emu
  for spec in ${TB_DETECT:-testbed-h200x2=24000,12800 testbed-h200x2-gpu24=24000}; do
    name=${spec%%=*}; emu=${spec#*=}
    "$PL" host detect --emulate "$emu" --name "$name" -o "$REPO/hardware/$name.toml" \
      && python3 "$REPO/testbed/ram-limit.py" "${RAM_LIMIT_MIB:-262144}" "$REPO/hardware/$name.toml" \
      && cp "$REPO/hardware/$name.toml" "$OUT/" || return 1
  done
}
detect_all \
  && python3 "$REPO/testbed/make-matrix.py" -o "$OUT/matrix.tsv" --placer "$PL" --tag "$TAG" --runs "$RUNS" \
       --repeats "${TB_REPEATS:-0}" --first-repeat "${TB_FIRST_REPEAT:-1}" \
  || { echo "solving on the device failed: using $FALLBACK"; cp "$FALLBACK" "$OUT/matrix.tsv"; cp "$FALLBACK.predictions.json" "$OUT/matrix.tsv.predictions.json"; }
cat "$OUT/matrix.tsv"
left=$(( DEADLINE_S - ($(date +%s) - T0) ))
TB_DRYRUN=none TB_CALL=$TAG TB_TAR=${TB_TAR:-$OUT/runs.tar} "$REPO/testbed/run-matrix.sh" "$OUT/matrix.tsv" /tmp/tbout "$left" 2>&1 | tee "$OUT/call.log"
