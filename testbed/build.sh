#!/usr/bin/env bash
# Build llama.cpp (CUDA) from the trimmed llama-cpp-python 0.3.36 vendor tree, plus the placer dry-run
# driver (testbed/dryrun -> tools/placer-dryrun). Or, if .carry/llama-bin.tar.xz.* exists, unpack it.
# Result: $LLAMA_DIR/build/bin with the binaries (LD_LIBRARY_PATH=$LLAMA_DIR/build/bin).
# Usage: testbed/build.sh [WORKDIR]   (default /tmp/tb)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/tb}
mkdir -p "$WORK"
LLAMA_DIR=$WORK/llama.cpp
if ls "$REPO"/.carry/llama-bin.tar.xz.* >/dev/null 2>&1; then
  mkdir -p "$LLAMA_DIR/build"
  cat "$REPO"/.carry/llama-bin.tar.xz.* | xz -d | tar -x -C "$LLAMA_DIR/build"
  echo "unpacked carried binaries into $LLAMA_DIR/build/bin"
  # the gguf-py and vocab files are needed by the fallback synthesizer
  [ -d "$LLAMA_DIR/gguf-py" ] || tar -xJf "$REPO/.carry/llama.cpp-src.tar.xz" -C "$WORK" llama.cpp/gguf-py llama.cpp/models 2>/dev/null || true
  exit 0
fi
tar -xJf "$REPO/.carry/llama.cpp-src.tar.xz" -C "$WORK"
mkdir -p "$LLAMA_DIR/tools/placer-dryrun"
cp "$REPO"/testbed/dryrun/* "$LLAMA_DIR/tools/placer-dryrun/"
grep -q placer-dryrun "$LLAMA_DIR/tools/CMakeLists.txt" || echo 'add_subdirectory(placer-dryrun)' >> "$LLAMA_DIR/tools/CMakeLists.txt"
cd "$LLAMA_DIR"
cmake -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_APP=OFF \
  -DCMAKE_BUILD_TYPE=Release > "$WORK/cmake.log" 2>&1 || { tail -50 "$WORK/cmake.log"; exit 1; }
time cmake --build build -j"$(nproc)" --target llama-server llama-completion llama-bench llama-fit-params llama-cli > "$WORK/build.log" 2>&1 \
  || { tail -60 "$WORK/build.log"; exit 1; }
cmake --build build -j"$(nproc)" --target llama-placer-dryrun >> "$WORK/build.log" 2>&1 \
  || { echo "placer-dryrun failed to build:"; grep -B2 -A8 "error" "$WORK/build.log" | head -60; }
ls -la build/bin
