#!/usr/bin/env bash
# Run a testbed matrix on a GPU machine, in one call: binaries, models, ballast, runs, packing.
#
# usage: testbed/run-matrix.sh MATRIX.tsv OUTDIR [BUDGET_S]
#   MATRIX.tsv  lines: run_id  model  host  ctx  prompt_tokens  n_gen  placement  flags…  [timeout_s]
#               (TAB-separated; flags are space-separated; '#' starts a comment; the optional last
#               column is the run's own time box, else TB_RUN_TIMEOUT). See testbed/MANIFEST.md.
#   host        gpu:T0[,T1…]   ballast so GPU i shows Ti MiB free (one physical GPU per entry)
#               emul:T0,T1     one physical GPU split into len(T) virtual devices (GGML_CUDA_DEVICES):
#                              ballast leaves len(T)·max(T) free so each virtual device reports max(T),
#                              and -fitt tells --fit each device's real budget (margin 1024 + max(T) − Ti).
#   TB_DRYRUN   (env) models whose dry-run sweep to run (default: every model of the matrix; "none": no sweep)
#   TB_CALL     (env) the device call's tag (c4, c5, …), recorded in every manifest
#   TB_HOST_EMUL (env) "ddr4": the CPU side of the users' host (testbed/host-emul.sh): llama.cpp on as
#               many cores as reach TB_DDR4_GBS of read bandwidth (`-t`/`-tb` and taskset), host RAM
#               limited to TB_RAM_LIMIT_MIB by a cgroup where possible; recorded as `host_emulation`
#   TB_MODELS   (env) where the synthesized GGUFs go (default /tmp/tb/models); docs/testbed.md has the
#               disk and RAM plan for the 57-61 GB models
#   DEADLINE_S  seconds (from the start) by which every run must have ended (default 560): each run's
#               timeout is min(TB_RUN_TIMEOUT, what is left − 20 s); a run with < 45 s left is skipped.
# Each finished run is appended at once to $TB_TAR (default OUTDIR/runs.tar), so a call killed at its
# limit still returns the runs that ended.
# Writes OUTDIR/<run_id>/{log.txt.gz,manifest.json,smi.csv.gz,prompt-tokens} and OUTDIR/dryrun-*.csv.
set -uo pipefail
set -f  # flags hold regexes (-ot blk\.…\.ffn_.*=CPU): never glob them
REPO=$(cd "$(dirname "$0")/.." && pwd)
MATRIX=$1
OUTDIR=$2
DEADLINE_S=${3:-560}
TAR=${TB_TAR:-$OUTDIR/runs.tar}
WORK=${TB_WORK:-/tmp/tb}
MODELS=${TB_MODELS:-/tmp/tb/models}
RUN_TIMEOUT=${TB_RUN_TIMEOUT:-150}
T0=$(date +%s)
mkdir -p "$OUTDIR" "$MODELS" "$WORK"
[ -n "${TB_SKIP_BUILD:-}" ] || "$REPO/testbed/build.sh" "$WORK" || exit 1
BIN=$WORK/llama.cpp/build/bin
export LD_LIBRARY_PATH=$BIN
PLACER=${TB_PLACER:-$REPO/.carry/placer}
TB_HOST_EMUL_JSON=null
if [ "${TB_HOST_EMUL:-}" = ddr4 ]; then
  TB_PLACER=$PLACER . "$REPO/testbed/host-emul.sh"
else
  host_emul_exec() { "$@"; }
fi
BUILD_INFO=$("$BIN/llama-completion" --version 2>&1 | tr '\n' ' ' | sed 's/"/ /g')
GPU_INFO=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tr '\n' ';')
elapsed() { echo $(( $(date +%s) - T0 )); }

BALLAST_PIDS=()
BALLAST_HOST=""
stop_ballast() {
  for p in "${BALLAST_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  BALLAST_PIDS=(); BALLAST_HOST=""
}
trap stop_ballast EXIT
# start_ballast HOST -> sets BALLAST_FREE (comma list of MiB the driver reports free per physical GPU)
start_ballast() {
  local host=$1 kind=${1%%:*} list=${1#*:}
  local slow=""
  if [[ "$list" == *+slow ]]; then slow=1; list=${list%+slow}; fi
  IFS=, read -r -a T <<< "$list"
  local targets=()
  if [ "$kind" = emul ]; then
    local max=0; for t in "${T[@]}"; do (( t > max )) && max=$t; done
    targets=( $(( max * ${#T[@]} )) )
  else
    targets=( "${T[@]}" )
  fi
  stop_ballast
  local i=0 ready=()
  if [ -n "$slow" ]; then
    # a copy-streaming process (testbed/slowdown.py), started first so the ballast counts its memory:
    # on the last physical GPU of a gpu: host (the second card of the users' host), on the one chip
    # of an emul: host
    local slow_gpu=0
    [ "$kind" = gpu ] && slow_gpu=$(( ${#T[@]} - 1 ))
    rm -f "$WORK/slow.ready"
    CUDA_VISIBLE_DEVICES=$slow_gpu python3 "$REPO/testbed/slowdown.py" "$WORK/slow.ready" >> "$WORK/ballast.log" 2>&1 &
    BALLAST_PIDS+=($!)
    for _ in $(seq 1 60); do [ -s "$WORK/slow.ready" ] && break; sleep 0.5; done
  fi
  for t in "${targets[@]}"; do
    rm -f "$WORK/ballast.$i"
    CUDA_VISIBLE_DEVICES=$i python3 "$REPO/testbed/ballast.py" "$t" "$WORK/ballast.$i" >> "$WORK/ballast.log" 2>&1 &
    BALLAST_PIDS+=($!); ready+=("$WORK/ballast.$i"); i=$((i+1))
  done
  for f in "${ready[@]}"; do
    for _ in $(seq 1 120); do [ -s "$f" ] && break; sleep 0.5; done
  done
  BALLAST_FREE=$(for f in "${ready[@]}"; do cat "$f" 2>/dev/null || echo ?; done | paste -sd,)
  BALLAST_HOST=$host
  echo "[$(elapsed)s] ballast for $host: free now $BALLAST_FREE MiB"
}

# synth MODEL -> path of the full-size GGUF in $MODELS (one model on disk at a time)
CUR_MODEL=""
synth() {
  local id=$1 path=$MODELS/$1.gguf
  if [ "$CUR_MODEL" != "$id" ]; then
    [ -n "$CUR_MODEL" ] && rm -f "$MODELS/$CUR_MODEL.gguf"
    local t=$(date +%s)
    "$PLACER" synth "$id" -o "$path" --quiet --models-dir "$REPO/models" > "$WORK/synth-$id.log" 2>&1 \
      || { echo "synth $id failed:"; tail -5 "$WORK/synth-$id.log"; return 1; }
    echo "[$(elapsed)s] synthesized $id in $(( $(date +%s) - t )) s: $(stat -c %s "$path") bytes"
    CUR_MODEL=$id
  fi
  echo "$path" > "$WORK/cur-model"
}

# Dry-run sweeps (no_alloc accounting, testbed/dryrun/sweep-<model>.txt) for every model of the
# matrix, on header-only GGUFs extended to a sparse 200 GB file (the loader checks that tensor data
# lies within the file; no_alloc never reads it). Runs in the background while the first model is
# synthesized; the first ballast waits for it (its CUDA contexts would disturb the free memory).
dryrun_all() {
  local t=$(date +%s)
  for id in ${TB_DRYRUN:-$(grep -v '^#' "$MATRIX" | cut -f2 | awk 'NF && !seen[$0]++')}; do
    local spec=$REPO/testbed/dryrun/sweep-$id.txt hdr=$WORK/hdr-$id.gguf
    [ -f "$spec" ] && [ -x "$BIN/llama-placer-dryrun" ] || continue
    "$PLACER" synth "$id" --header-only -o "$hdr" --quiet --models-dir "$REPO/models" > "$WORK/hdr-$id.log" 2>&1 || continue
    truncate -s 200G "$hdr"
    for nd in 1 2; do
      grep -v '^#' "$spec" | sed "s#MODEL#$hdr#g" | awk -v nd=$nd '$1 ~ ("^d" nd "-")' \
        | GGML_CUDA_DEVICES=$nd timeout 60 "$BIN/llama-placer-dryrun" > "$OUTDIR/dryrun-$id-d$nd.csv" 2> "$WORK/dryrun-$id-d$nd.err"
    done
    rm -f "$hdr"
    tar -rf "$TAR" -C "$OUTDIR" "dryrun-$id-d1.csv" "dryrun-$id-d2.csv"
    echo "[$(elapsed)s] dry-run sweep $id: $(cat "$OUTDIR/dryrun-$id-d1.csv" "$OUTDIR/dryrun-$id-d2.csv" | grep -vc '^tag') rows ($(( $(date +%s) - t )) s so far)"
  done
}
dryrun_all &
DRY_PID=$!
wait_dryruns() { [ -n "${DRY_PID:-}" ] && wait "$DRY_PID" 2>/dev/null; DRY_PID=""; }

while IFS=$'\t' read -r run_id model host ctx prompt_n n_gen placement flags run_box; do
  [[ -z "$run_id" || "$run_id" == \#* ]] && continue
  left=$(( DEADLINE_S - $(elapsed) - 20 ))
  if (( left < 45 )); then echo "[$(elapsed)s] no time left: skipping $run_id"; echo "$run_id no-time" >> "$OUTDIR/skipped.txt"; continue; fi
  box=${run_box:-$RUN_TIMEOUT}
  tmo=$(( left < box ? left : box ))
  if [ "$CUR_MODEL" != "$model" ]; then
    stop_ballast
    synth "$model" || { echo "$run_id synth-failed" >> "$OUTDIR/skipped.txt"; continue; }
  fi
  mpath=$MODELS/$model.gguf
  wait_dryruns
  [ "$BALLAST_HOST" = "$host" ] || start_ballast "$host"
  kind=${host%%:*}; hl=${host#*:}; IFS=, read -r -a T <<< "${hl%+slow}"
  # llama.cpp sees only the scenario's GPUs: on a machine with more GPUs than the host has entries,
  # the others (unballasted, all free) would otherwise take layers
  envs=(CUDA_VISIBLE_DEVICES=$(seq -s, 0 $(( ${#T[@]} - 1 )))); emul_flags=""
  if [ "$kind" = emul ]; then
    envs=(CUDA_VISIBLE_DEVICES=0 GGML_CUDA_DEVICES=${#T[@]})
    max=0; for t in "${T[@]}"; do (( t > max )) && max=$t; done
    emul_flags="-fitt $(for t in "${T[@]}"; do echo $(( 1024 + max - t )); done | paste -sd,)"
  fi
  if [ "${TB_HOST_EMUL:-}" = ddr4 ]; then
    emul_flags="$emul_flags -t $TB_THREADS -tb $TB_THREADS"
  fi
  d=$OUTDIR/$run_id; mkdir -p "$d"
  python3 "$REPO/testbed/prompt.py" "$prompt_n" "$WORK/prompt-$prompt_n.txt" 1
  argv=("$BIN/llama-completion" -m "$mpath" -c "$ctx" -n "$n_gen" --ignore-eos -no-cnv -f "$WORK/prompt-$prompt_n.txt" -lv 4 --temp 0 --seed 1)
  # shellcheck disable=SC2206
  extra=($flags $emul_flags)
  nvidia-smi --query-gpu=index,memory.used,memory.free,utilization.gpu --format=csv,noheader,nounits -lms 250 > "$d/smi.csv" 2>/dev/null &
  smi=$!
  t=$(date +%s%N)
  host_emul_exec env "${envs[@]}" timeout "$tmo" "${argv[@]}" "${extra[@]}" > "$d/log.txt" 2>&1
  rc=$?
  wall_ns=$(( $(date +%s%N) - t ))
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  peak=$(awk -F', ' '{u[$1]=($2>u[$1]?$2:u[$1])} END{for(i in u) printf "%s%s", (n++?",":""), u[i]}' "$d/smi.csv")
  python3 "$REPO/testbed/parse_log.py" "$d/log.txt" > "$d/measured.json"
  gzip -f "$d/log.txt" "$d/smi.csv"
  RUN_ID=$run_id MODEL=$model MPATH=$mpath PLACEMENT=$placement HOST=$host KIND=$kind ENVS="${envs[*]:-}" \
  TIME_BOX=$tmo CALL=${TB_CALL:-} BFREE=$BALLAST_FREE CTX=$ctx PROMPT_N=$prompt_n N_GEN=$n_gen FLAGS=$flags EMUL_FLAGS=$emul_flags \
  HOST_EMUL=$TB_HOST_EMUL_JSON ARGV="${argv[*]:1} ${extra[*]:-}" BIN=$BIN BUILD_INFO=$BUILD_INFO GPU_INFO=$GPU_INFO RC=$rc WALL_NS=$wall_ns PEAK=$peak \
  python3 "$REPO/testbed/write_manifest.py" "$d"
  tar -rf "$TAR" -C "$OUTDIR" "$run_id"
done < "$MATRIX"
stop_ballast
echo "[$(elapsed)s] matrix done"
