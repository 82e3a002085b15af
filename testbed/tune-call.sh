#!/usr/bin/env bash
# One device call of the users' loop with `placer trial` as a tuner (docs/trial.md, "The search";
# docs/benchmarks.md, "Trial as a tuner"): on one GPU shown to llama.cpp as two virtual devices of
# 24,000 and 12,800 MiB (GGML_CUDA_DEVICES=2 and a ballast), with the DDR4-like CPU side of
# testbed/host-emul.sh, for each model: the users' own section, `placer solve models.conf:SECTION
# --write`, `placer check` of the aggressive profile (placer beside llama.cpp's dry run), `placer
# trial` of aggressive + moderate (+ the users' hand section where they have one) with the --fit
# baselines and the search, then `placer solve` again to show what the trial taught.
#
# usage: setsid testbed/tune-call.sh STATE_DIR MODEL:CTX:BUDGET… &   e.g. glm-q8:131072:8m gpt-oss-120b:32768:7m
#        (models: glm-q8, glm-q4, gpt-oss-120b, qwen3-coder-next-q5)
# needs: .carry/llama.cpp-b11434-src.tar.xz (testbed/fetch-src-bin.sh; or a built tree in /tmp/tb/llama.cpp/build/bin),
#        .carry/placer.xz; torch for testbed/ballast.py. Models are synthesized into /dev/shm (one at a time).
# env:   TB_TUNE_PROFILES (placer profiles tried, default "aggressive moderate"), TB_DEPTH (trial --depth, default 32768), TB_LONG_SHARE (default 0.02), TB_BUILD_JOBS
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
S=${1:?state dir}; shift
mkdir -p "$S"
exec >>"$S/call.log" 2>&1
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s]"; }
WORK=/tmp/tb; mkdir -p "$WORK"
PL=/tmp/placer
[ -x "$PL" ] || { xz -dc "$REPO/.carry/placer.xz" > "$PL" && chmod +x "$PL"; }
MD=/dev/shm/tb-models; mkdir -p "$MD"
BIN=$WORK/llama.cpp/build/bin
# what this machine cannot fetch: stop at once (DONE written, so testbed/tune-poll.sh returns now)
if [ ! -x "$PL" ] || { [ ! -x "$BIN/llama-server" ] && [ ! -f "$REPO/.carry/llama.cpp-b11434-src.tar.xz" ]; }; then
  echo "$(el) missing: .carry/placer.xz or .carry/llama.cpp-b11434-src.tar.xz (testbed/fetch-src-bin.sh 11434); carry .carry"
  touch "$S/DONE"
  exit 2
fi
echo "$(el) start; $(nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader); $(nproc) cores"
if [ ! -x "$BIN/llama-server" ]; then
  (
    tar -xJf "$REPO/.carry/llama.cpp-b11434-src.tar.xz" -C "$WORK" && cd "$WORK/llama.cpp" \
      && cmake -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_RPC=ON \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_APP=OFF -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_NUMBER=11434 -DLLAMA_BUILD_COMMIT=b11434 \
        > "$S/cmake.log" 2>&1 \
      && cmake --build build -j"${TB_BUILD_JOBS:-$(nproc)}" --target llama-server llama-fit-params ggml-rpc-server \
        > "$S/build.log" 2>&1
    echo $? > "$S/build.rc"
  ) &
  BUILD_PID=$!
fi
first=${1%%:*}
[ -f "$MD/$first.gguf" ] || "$PL" synth "$first" -o "$MD/$first.gguf" | tail -1
echo "$(el) $first synthesized"
if [ -n "${BUILD_PID:-}" ]; then
  wait "$BUILD_PID"
  [ "$(cat "$S/build.rc")" = 0 ] || { echo "build failed"; tail -40 "$S/build.log"; exit 1; }
  echo "$(el) llama.cpp built"
fi
export LD_LIBRARY_PATH=$BIN
"$BIN/llama-server" --version 2>&1 | head -2
export TB_PLACER=$PL
. "$REPO/testbed/host-emul.sh"
# the ballast leaves 2 × 24,000 MiB: each virtual device then shows 24,000 (docs/testbed.md)
rm -f "$WORK/ballast.ready"
python3 "$REPO/testbed/ballast.py" 48100 "$WORK/ballast.ready" > "$S/ballast.log" 2>&1 &
BALLAST=$!
trap 'kill $BALLAST 2>/dev/null' EXIT
for _ in $(seq 120); do [ -s "$WORK/ballast.ready" ] && break; sleep 1; done
echo "$(el) ballast: $(cat "$WORK/ballast.ready") MiB free"
export GGML_CUDA_DEVICES=2
"$PL" host detect --emulate 24000,12800 --name testbed-tune-emul -o "$S/host.toml" \
  || { echo "$(el) host detect failed: nothing to run on (see above)"; touch "$S/DONE"; exit 1; }
TB_EMUL_BW_GBS=${TB_EMUL_BW_GBS:-38} python3 "$REPO/testbed/ram-limit.py" 65536 "$S/host.toml"
cat "$S/host.toml"
section() { # id ctx → the users' section for that model (docs/users.md, "Their profiles today")
  case $1 in
    glm-q8) printf '[glm-flash]\nNAME=GLM-4.7 Flash Q8_0\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=on\nEXTRA_ARGS=--jinja -np 1 --temp 1.0 --top-p 0.95 --min-p 0.01 -t %s\n' "$MD/$1.gguf" "$2" "$TB_THREADS" ;;
    glm-q4) printf '[glm-flash-q4]\nNAME=GLM-4.7 Flash Q4_K_M\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=on\nEXTRA_ARGS=--jinja -np 1 --temp 1.0 --top-p 0.95 --min-p 0.01 -t %s\n' "$MD/$1.gguf" "$2" "$TB_THREADS" ;;
    qwen3-coder-next-q5) printf '[qwen3-coder-q5]\nNAME=Qwen3-Coder-Next UD-Q5_K_XL\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=off\nEXTRA_ARGS=--jinja -np 1 -b 2048 -ub 2048 --no-context-shift -t %s -ot blk\\.([0-9]|1[0-4])\\.=CUDA0,blk\\.(1[5-9]|2[0-1])\\.=CUDA1,exps=CPU\n' "$MD/$1.gguf" "$2" "$TB_THREADS" ;;
    gpt-oss-120b) printf '[gpt-oss-120b]\nNAME=gpt-oss-120b\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=off\nEXTRA_ARGS=--jinja -np 1 -b 2048 -ub 2048 -t %s -ot blk\\.([0-9]|10)\\.=CUDA0,blk\\.(1[1-3])\\.=CUDA1,exps=CPU\n' "$MD/$1.gguf" "$2" "$TB_THREADS" ;;
  esac
}
for spec in "$@"; do
  IFS=: read -r id ctx budget <<<"$spec"
  D=$S/$id-c$ctx; mkdir -p "$D"
  for other in "$MD"/*.gguf; do [ "$other" = "$MD/$id.gguf" ] || rm -f "$other"; done
  [ -f "$MD/$id.gguf" ] || "$PL" synth "$id" -o "$MD/$id.gguf" | tail -1
  sec=$(section "$id" "$ctx" | sed -n 's/^\[\(.*\)\]$/\1/p' | head -1)
  section "$id" "$ctx" > "$D/models.conf"
  export PLACER_DATA=$D/runs PLACER_CALIBRATION=$D/calibration.toml PLACER_CONFIG=$D/none.toml
  C="$D/models.conf"
  echo "$(el) $id ctx $ctx: solve"
  "$PL" solve --llama "$BIN/llama-server" --host "$S/host.toml" "$C:$sec" --write > "$D/solve.log" 2>&1
  echo "solve rc $?"; grep -E "confirm|dry run|margin" "$D/solve.log" | head -8
  "$PL" check --llama "$BIN/llama-server" --host "$S/host.toml" "$C:$sec-aggressive" > "$D/check-aggressive.log" 2>&1
  "$PL" check --llama "$BIN/llama-server" --host "$S/host.toml" "$C:$sec-moderate" > "$D/check-moderate.log" 2>&1
  cands=()
  for k in ${TB_TUNE_PROFILES:-aggressive moderate}; do cands+=("$C:$sec-$k"); done
  # the users' own section is a candidate where it places by hand (FIT=off); FIT=on is the baseline
  section "$id" "$ctx" | grep -q '^FIT=off' && cands+=("$C:$sec")
  echo "$(el) $id: trial (budget $budget)"
  host_emul_exec "$PL" trial "${cands[@]}" --llama "$BIN/llama-server" --host "$S/host.toml" \
    --baseline-args "-fitt 1024,12224" --budget "$budget" --depth "${TB_DEPTH:-32768}" \
    --long-share "${TB_LONG_SHARE:-0.02}" --write > "$D/trial.log" 2>&1
  echo "$(el) trial rc $?"
  tail -30 "$D/trial.log"
  "$PL" solve --host "$S/host.toml" --no-oracle "$C:$sec" > "$D/solve-after.log" 2>&1
  grep -E "decode|prefill|calibration" "$D/solve-after.log" | head -6
done
echo "$(el) done"
touch "$S/DONE"
