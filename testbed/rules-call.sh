#!/usr/bin/env bash
# One device call for the users' build generation, their flagship models and RPC (docs/testbed.md,
# "Per-build memory rules" and "RPC on one machine"; docs/memory-model.md §5.1; docs/rpc.md):
#
#  1. builds, in parallel: llama.cpp b11434 (llama-server, llama-fit-params, ggml-rpc-server, the
#     dry-run driver) and the llama-cpp-python 0.3.17 tree that stands in for the users' b8022
#     (llama-server, rpc-server, the dry-run driver testbed/dryrun/placer-dryrun-b8022.cpp), both
#     with CUDA and RPC and `-DLLAMA_BUILD_NUMBER` so they report their build;
#  2. dry runs (no_alloc accounting, testbed/dryrun) of the users' commands on header-only
#     GLM-4.7-Flash Q8_0, gpt-oss-120b and Qwen3-Coder-Next under both trees. The 0.3.17 tree has
#     no GGML_CUDA_DEVICES, so its two-device rows put the users' first GPU behind an rpc-server
#     (CUDA backend, same GPU; RPC devices come first in llama.cpp's order) and their second on the
#     local CUDA0 (the last device, which takes the output layer); the b11434 tree runs the same
#     mapping beside its virtual devices, as the control that the mapping keeps the buffers;
#  3. testbed/tune-call.sh for the models in TB_TUNE (default qwen3-coder-next-q5:131072:4m);
#  4. RPC: GLM-4.7-Flash Q8_0 at TB_RPC_CTX on the local GPU (24,000 MiB by ballast) and the CPU of
#     the same machine behind a ggml-rpc-server (the DDR4-like cores of testbed/host-emul.sh), the
#     client's own RAM capped in the host file so the model must span both "hosts": placer's plan,
#     `--fit` with the same RPC device and a hand placement, by `placer trial`.
#
# usage: setsid testbed/rules-call.sh STATE_DIR &     poll: testbed/tune-poll.sh STATE_DIR
# env:   TB_STEPS (default "build dryrun tune rpc"; "tune2" runs TB_TUNE2 after rpc), TB_TREES
#        (default "11434 8022"), TB_TUNE, TB_TUNE2, TB_RPC_CTX (default 32768), TB_RPC_BUDGET
#        (default 3m), TB_RPC_HAND (set: the hand placement is a trial candidate too),
#        TB_RPC_PROFILES (default "aggressive moderate"), TB_RPC_WORKLOAD (solve's and trial's
#        workload flags, default "--prompt 512 --gen 128 --prefix 2048"), TB_RPC_LONG (the
#        trial's --long-share, default 0.0625)
# The b11434 binaries are packed to /tmp/tb/llama-b11434-bin.tar.xz after the build; carried as
# .carry/llama-b11434-bin.tar.xz they replace the build in a later call.
# needs: .carry/llama.cpp-b11434-src.tar.xz (testbed/fetch-src-bin.sh 11434),
#        .carry/llama.cpp-py0.3.17-src.tar.xz (testbed/fetch-src.sh 0.3.17), .carry/placer.xz
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
S=${1:?state dir}
mkdir -p "$S"
exec >>"$S/call.log" 2>&1
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s]"; }
STEPS=" ${TB_STEPS:-build dryrun tune rpc} "
WORK=/tmp/tb; mkdir -p "$WORK"
PL=/tmp/placer
[ -x "$PL" ] || { xz -dc "$REPO/.carry/placer.xz" > "$PL" && chmod +x "$PL"; }
B11=$WORK/llama.cpp B8=$WORK/llama.cpp-py0.3.17
# Inputs this machine cannot fetch (it reaches no registry): stop at once, with DONE written so
# that testbed/tune-poll.sh returns now instead of after its wait (device time is the scarce part).
TREES=" ${TB_TREES:-11434 8022} "
missing=()
[ -x "$PL" ] || missing+=(".carry/placer.xz")
if [[ $STEPS == *" build "* ]]; then
  [[ $TREES == *" 11434 "* ]] && [ ! -x "$B11/build/bin/llama-server" ] && [ ! -f "$REPO/.carry/llama-b11434-bin.tar.xz" ] \
    && [ ! -f "$REPO/.carry/llama.cpp-b11434-src.tar.xz" ] && missing+=(".carry/llama.cpp-b11434-src.tar.xz (testbed/fetch-src-bin.sh 11434)")
  [[ $TREES == *" 8022 "* ]] && [ ! -x "$B8/build/bin/llama-placer-dryrun" ] \
    && [ ! -f "$REPO/.carry/llama.cpp-py0.3.17-src.tar.xz" ] && missing+=(".carry/llama.cpp-py0.3.17-src.tar.xz (testbed/fetch-src.sh 0.3.17)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "$(el) missing, make it where the registry is reachable and carry .carry: ${missing[*]}"
  touch "$S/DONE"
  exit 2
fi
echo "$(el) start; $(nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader); $(nproc) cores; steps:$STEPS"

# build_tree SRC_TARBALL DIR BUILD COMMIT JOBS TARGET…
build_tree() {
  local tarball=$1 dir=$2 n=$3 commit=$4 jobs=$5; shift 5
  local tmp; tmp=$(mktemp -d -p "$WORK")
  tar -xJf "$tarball" -C "$tmp" && rm -rf "$dir" && mv "$tmp/llama.cpp" "$dir" && rmdir "$tmp" || return 1
  mkdir -p "$dir/tools/placer-dryrun" && cp "$REPO"/testbed/dryrun/*.cpp "$REPO"/testbed/dryrun/CMakeLists.txt "$dir/tools/placer-dryrun/"
  echo 'add_subdirectory(placer-dryrun)' >> "$dir/tools/CMakeLists.txt"
  cd "$dir" || return 1
  cmake -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_RPC=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_APP=OFF -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_NUMBER="$n" -DLLAMA_BUILD_COMMIT="$commit" \
    > "$S/cmake-b$n.log" 2>&1 || return 1
  cmake --build build -j"$jobs" --target "$@" > "$S/build-b$n.log" 2>&1
}

if [[ $STEPS == *" build "* ]]; then
  if [[ $TREES == *" 11434 "* ]] && [ -f "$REPO/.carry/llama-b11434-bin.tar.xz" ] && [ ! -x "$B11/build/bin/llama-server" ]; then
    # binaries of an earlier call (packed below), instead of a 5-minute build
    mkdir -p "$B11/build" && tar -xJf "$REPO/.carry/llama-b11434-bin.tar.xz" -C "$B11/build" && echo 0 > "$S/build-b11434.rc"
    echo "$(el) b11434 unpacked from .carry/llama-b11434-bin.tar.xz"
  fi
  if [[ $TREES == *" 11434 "* ]] && [ ! -x "$B11/build/bin/llama-server" ]; then
    jobs=8; [[ $TREES == *" 8022 "* ]] || jobs=$(nproc)
    (build_tree "$REPO/.carry/llama.cpp-b11434-src.tar.xz" "$B11" 11434 b11434 "$jobs" \
      llama-server llama-fit-params ggml-rpc-server llama-placer-dryrun; echo $? > "$S/build-b11434.rc") &
  fi
  if [[ $TREES == *" 8022 "* ]] && [ ! -x "$B8/build/bin/llama-placer-dryrun" ]; then
    (build_tree "$REPO/.carry/llama.cpp-py0.3.17-src.tar.xz" "$B8" 8022 49bfddeca 8 \
      llama-server rpc-server llama-placer-dryrun; echo $? > "$S/build-b8022.rc") &
  fi
  # header-only models for the dry runs, extended to sparse files (the loader checks only that
  # tensor data lies inside the file: src/llama-model-loader.h `llama_tensor_weight`)
  HD=/dev/shm/tb-hdr; mkdir -p "$HD"
  for id in glm-q8 gpt-oss-120b qwen3-coder-next-q5; do
    "$PL" synth "$id" --header-only -o "$HD/$id.gguf" --quiet --models-dir "$REPO/models" > "$S/hdr-$id.log" 2>&1 \
      && truncate -s 200G "$HD/$id.gguf"
  done
  wait
  echo "$(el) built: b11434 rc $(cat "$S/build-b11434.rc" 2>/dev/null || echo -), b8022 rc $(cat "$S/build-b8022.rc" 2>/dev/null || echo -)"
  for n in 11434 8022; do [ "$(cat "$S/build-b$n.rc" 2>/dev/null || echo 0)" = 0 ] || tail -30 "$S/build-b$n.log"; done
  "$B11/build/bin/llama-server" --version 2>&1 | tail -2
  [ -x "$B8/build/bin/llama-server" ] && "$B8/build/bin/llama-server" --version 2>&1 | tail -2
  # pack the b11434 binaries (shared libraries and the tools the steps use) for later calls
  if [ ! -f "$WORK/llama-b11434-bin.tar.xz" ] && [ -x "$B11/build/bin/llama-server" ]; then
    (cd "$B11/build" && tar -cf - bin/*.so* bin/llama-server bin/llama-fit-params bin/ggml-rpc-server $(ls bin/llama-placer-dryrun 2>/dev/null) \
      | xz -T4 -6 > "$WORK/llama-b11434-bin.tar.xz.part" && mv "$WORK/llama-b11434-bin.tar.xz.part" "$WORK/llama-b11434-bin.tar.xz") &
  fi
fi

# dryrun TREE_DIR OUT_CSV LINES_FILE [ENV…]: the driver reads `TAG FLAGS…` lines
dryrun() {
  local dir=$1 out=$2 lines=$3; shift 3
  env LD_LIBRARY_PATH="$dir/build/bin" "$@" timeout 120 "$dir/build/bin/llama-placer-dryrun" < "$lines" > "$out" 2> "${out%.csv}.err"
  echo "$(el) dry run $(basename "$out"): $(grep -vc '^tag' "$out") rows"
}

if [[ $STEPS == *" dryrun "* ]]; then
  HD=/dev/shm/tb-hdr
  G=$HD/glm-q8.gguf O=$HD/gpt-oss-120b.gguf Q=$HD/qwen3-coder-next-q5.gguf
  P=50152 EP=127.0.0.1:50152
  GLM_OT='blk\.([0-9]|[12][0-9]|3[0-2])\.'
  GLM_OT2='blk\.(3[3-9]|4[0-6])\.'
  # one device (the whole H100): every phase on CUDA0, what `check --llama-build N` predicts for a
  # one-GPU host file
  {
    for ub in 512 1024 2048; do
      echo "one-glm-ub$ub -m $G -c 131072 -b 2048 -ub $ub -ngl 99 -np 1"
    done
    echo "one-oss-c10240-ub512 -m $O -c 10240 -b 512 -ub 512 -ngl 99 -np 1 -ot exps=CPU"
    echo "one-oss-c32768-ub2048 -m $O -c 32768 -b 2048 -ub 2048 -ngl 99 -np 1 -ot exps=CPU"
    echo "one-qwen-c131072-ub2048 -m $Q -c 131072 -b 2048 -ub 2048 -ngl 99 -np 1 -ot exps=CPU"
    echo "one-qwen-c131072-ub512 -m $Q -c 131072 -b 2048 -ub 512 -ngl 99 -np 1 -ot exps=CPU"
  } > "$S/dry-one.txt"
  # two devices by RPC: the users' CUDA0 = RPC0 (first), their CUDA1 = the local CUDA0 (last)
  {
    for ub in 512 1024 2048; do
      echo "rpc-glm-33-14-ub$ub --rpc $EP -m $G -c 131072 -b 2048 -ub $ub -ngl 99 -np 1 -ts 24000,12800 -ot $GLM_OT=RPC0[$EP],$GLM_OT2=CUDA0"
    done
  } > "$S/dry-rpc.txt"
  # two virtual devices (b11434 only): the users' commands as they wrote them
  {
    for ub in 512 1024 2048; do
      echo "v2-glm-33-14-ub$ub -m $G -c 131072 -b 2048 -ub $ub -ngl 99 -np 1 -ts 24000,12800 -ot $GLM_OT=CUDA0,$GLM_OT2=CUDA1"
    done
    echo 'v2-oss-users-c32768-ub2048 -m '"$O"' -c 32768 -b 2048 -ub 2048 -ngl 99 -np 1 -ts 24000,12800 -ot blk\.([0-9]|10)\.=CUDA0,blk\.(1[1-3])\.=CUDA1,exps=CPU'
    echo 'v2-oss-13-6-c10240-ub512 -m '"$O"' -c 10240 -b 512 -ub 512 -ngl 99 -np 1 -ts 24000,12800 -ot blk\.([0-9]|1[0-2])\.=CUDA0,blk\.(1[3-8])\.=CUDA1,exps=CPU'
    echo 'v2-qwen-users-c131072-ub2048 -m '"$Q"' -c 131072 -b 2048 -ub 2048 -ngl 99 -np 1 -ts 24000,12800 -ot blk\.([0-9]|1[0-4])\.=CUDA0,blk\.(1[5-9]|2[0-1])\.=CUDA1,exps=CPU'
  } > "$S/dry-v2.txt"
  for tree in "$B8:8022:rpc-server" "$B11:11434:ggml-rpc-server"; do
    IFS=: read -r dir n srv <<<"$tree"
    [ -x "$dir/build/bin/llama-placer-dryrun" ] || { echo "$(el) no dry-run driver for b$n"; continue; }
    dryrun "$dir" "$S/dryrun-b$n-one.csv" "$S/dry-one.txt"
    LD_LIBRARY_PATH="$dir/build/bin" "$dir/build/bin/$srv" -H 127.0.0.1 -p $P -d CUDA0 > "$S/rpc-server-b$n.log" 2>&1 &
    RS=$!
    sleep 3
    dryrun "$dir" "$S/dryrun-b$n-rpc.csv" "$S/dry-rpc.txt"
    kill $RS 2>/dev/null; wait $RS 2>/dev/null
    [ "$n" = 11434 ] && dryrun "$dir" "$S/dryrun-b$n-v2.csv" "$S/dry-v2.txt" GGML_CUDA_DEVICES=2
    # the scheduler's splits and nodes (sizes, backends, the op-offload weight copies) of the
    # Qwen3-Coder-Next rows, whose compute buffer placer under-predicts (docs/error-report.md,
    # "Known gaps"): `-v` lets GGML_LOG_DEBUG through, GGML_SCHED_DEBUG=2 prints every node
    # (ggml-backend.cpp: ggml_backend_sched_print_assignments)
    grep '^one-qwen' "$S/dry-one.txt" | sed 's/$/ -v/' > "$S/dry-sched.txt"
    dryrun "$dir" "$S/sched-b$n-qwen.csv" "$S/dry-sched.txt" GGML_SCHED_DEBUG=2
    gzip -f "$S/sched-b$n-qwen.err"
  done
  grep -h . "$S"/dryrun-*.csv | grep -v '^tag' | awk -F, '{printf "%-32s %-24s model %9.1f ctx %8.1f compute %8.1f MiB\n", $1, $2, $5/1048576, $6/1048576, $7/1048576}'
fi

# tune_step NAME SPECS: testbed/tune-call.sh into $S/NAME (it finds the b11434 tree built above
# and builds only when llama-server is missing)
tune_step() {
  local name=$1 tune
  read -r -a tune <<<"$2"
  echo "$(el) $name: ${tune[*]}"
  "$REPO/testbed/tune-call.sh" "$S/$name" "${tune[@]}"
  tail -60 "$S/$name/call.log"
  echo "$(el) $name done"
}

[[ $STEPS == *" tune "* ]] && tune_step tune "${TB_TUNE:-qwen3-coder-next-q5:131072:4m}"

if [[ $STEPS == *" rpc "* ]]; then
  BIN=$B11/build/bin
  export LD_LIBRARY_PATH=$BIN TB_PLACER=$PL
  D=$S/rpc; mkdir -p "$D"
  MD=/dev/shm/tb-models; mkdir -p "$MD"
  for other in "$MD"/*.gguf; do [ "$other" = "$MD/glm-q8.gguf" ] || rm -f "$other"; done
  [ -f "$MD/glm-q8.gguf" ] || "$PL" synth glm-q8 -o "$MD/glm-q8.gguf" | tail -1
  echo "$(el) rpc: glm-q8 synthesized"
  . "$REPO/testbed/host-emul.sh"
  unset GGML_CUDA_DEVICES
  rm -f "$WORK/ballast.ready"
  # ballast.py takes the MiB to leave free (docs/testbed.md)
  python3 "$REPO/testbed/ballast.py" 24000 "$WORK/ballast.ready" > "$D/ballast.log" 2>&1 &
  BALLAST=$!
  trap 'kill $BALLAST 2>/dev/null' EXIT
  for _ in $(seq 120); do [ -s "$WORK/ballast.ready" ] && break; sleep 1; done
  echo "$(el) ballast: $(cat "$WORK/ballast.ready") MiB free"
  # the CPU "host": an rpc-server with the CPU backend only, on as many cores as the client's
  # DDR4-like ones but other ones (cores TB_THREADS+2 …): sharing the client's cores, its threads
  # and llama-server's spin against each other (2026-12-07 c5: 3.2 t/s decode)
  RPC_CORES=$((TB_THREADS + 2))-$((2 * TB_THREADS + 1))
  CUDA_VISIBLE_DEVICES= taskset -c "$RPC_CORES" "$BIN/ggml-rpc-server" -H 127.0.0.1 -p 50052 -d CPU -t "$TB_THREADS" > "$D/rpc-server.log" 2>&1 &
  RPCS=$!
  trap 'kill $BALLAST $RPCS 2>/dev/null' EXIT
  sleep 3
  "$PL" host detect --rpc 127.0.0.1:50052 --name testbed-rpc-cpu -o "$D/host.toml" > "$D/detect.log" 2>&1
  cat "$D/detect.log"
  # what the rpc-server reports free (detect's source line), before the caps below
  rfree=$(grep -o '[0-9]* MiB free' "$D/host.toml" | head -1 | cut -d' ' -f1)
  # the remote device: 40 GiB of the rpc-server's RAM at the DDR4-like bandwidth; the client's own
  # RAM 4 GiB (token embeddings, buffers), so the weights must span the GPU and the remote host
  python3 - "$D/host.toml" "${TB_EMUL_BW_GBS:-38}" <<'PY'
import re, sys
p, bw = sys.argv[1], sys.argv[2]
t = open(p).read()
blocks = t.split("[[gpus]]")
out = [blocks[0]]
for b in blocks[1:]:
    if "[gpus.rpc]" in b:
        b = re.sub(r"(?m)^usable_mib = \d+", "usable_mib = 40960", b)
        b = re.sub(r"(?m)^#? ?bandwidth_gbs = .*$", f"bandwidth_gbs = {bw}", b)
    out.append(b)
t = "[[gpus]]".join(out)
head, sep, ram = t.partition("[ram]")
ram = re.sub(r"(?m)^usable_mib = \d+", "usable_mib = 4096", ram, count=1)
ram = re.sub(r"(?m)^#? ?bandwidth_gbs = .*$", f"bandwidth_gbs = {bw}", ram, count=1)
open(p, "w").write(head + sep + ram)
PY
  cat "$D/host.toml"
  ctx=${TB_RPC_CTX:-32768}
  printf '[glm-rpc]\nNAME=GLM-4.7 Flash Q8_0 across the GPU and an RPC CPU host\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=off\nEXTRA_ARGS=--rpc 127.0.0.1:50052 --jinja -np 1 -t %s -ts 1,1\n' \
    "$MD/glm-q8.gguf" "$ctx" "$TB_THREADS" > "$D/models.conf"
  # a hand placement: every expert on the remote CPU, everything else on the GPU
  printf '\n[glm-rpc-hand]\nNAME=GLM-4.7 Flash Q8_0, experts on the RPC host\nMODEL=%s\nCTX_SIZE=%s\nN_GPU_LAYERS=99\nFIT=off\nEXTRA_ARGS=--rpc 127.0.0.1:50052 --jinja -np 1 -t %s -ts 0,1 -ot exps=RPC0[127.0.0.1:50052]\n' \
    "$MD/glm-q8.gguf" "$ctx" "$TB_THREADS" >> "$D/models.conf"
  export PLACER_DATA=$D/runs PLACER_CALIBRATION=$D/calibration.toml PLACER_CONFIG=$D/none.toml
  "$PL" check --llama "$BIN/llama-server" --host "$D/host.toml" "$D/models.conf:glm-rpc-hand" > "$D/check-hand.log" 2>&1
  # a short workload: a CPU behind RPC prefills at tens of tokens per second (docs/rpc.md)
  RPC_WORKLOAD=${TB_RPC_WORKLOAD:---prompt 512 --gen 128 --prefix 2048}
  # shellcheck disable=SC2086
  "$PL" solve --llama "$BIN/llama-server" --host "$D/host.toml" "$D/models.conf:glm-rpc" $RPC_WORKLOAD --write > "$D/solve.log" 2>&1
  echo "$(el) rpc solve rc $?"; grep -E "aggressive|moderate|confirm|--rpc|RPC" "$D/solve.log" | head -12
  # --fit sees the rpc-server's whole free RAM: its target leaves the 40 GiB the host file allows
  fitt=$(( ${rfree:-40960} > 40960 ? rfree - 40960 : 1024 ))
  echo "$(el) rpc: trial (--fit targets -fitt $fitt,1024)"
  cands=()
  for k in ${TB_RPC_PROFILES:-aggressive moderate}; do cands+=("$D/models.conf:glm-rpc-$k"); done
  [ -n "${TB_RPC_HAND:-}" ] && cands+=("$D/models.conf:glm-rpc-hand")
  # shellcheck disable=SC2086
  host_emul_exec "$PL" trial "${cands[@]}" \
    --llama "$BIN/llama-server" --host "$D/host.toml" --baseline-args "-fitt $fitt,1024" \
    --budget "${TB_RPC_BUDGET:-3m}" $RPC_WORKLOAD --long-share "${TB_RPC_LONG:-0.0625}" --write > "$D/trial.log" 2>&1
  echo "$(el) rpc trial rc $?"
  tail -40 "$D/trial.log"
  kill $RPCS $BALLAST 2>/dev/null
fi
# a second tune step after the RPC one, so that a model the RPC step synthesized is reused
[[ $STEPS == *" tune2 "* ]] && tune_step tune2 "${TB_TUNE2:-glm-q8:131072:6m}"
echo "$(el) done"
touch "$S/DONE"
