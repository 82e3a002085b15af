#!/usr/bin/env bash
# Make .carry/llama.cpp-src.tar.xz (what testbed/build.sh builds on the GPU machine, which reaches no
# registry): the llama.cpp tree vendored in a llama-cpp-python sdist (default 0.3.36, the reference
# tree; 0.3.17 is the stand-in for the users' b8022, docs/llama-builds.md "Nearest to b8022"), without
# docs, tests, benches, media and the vocab GGUFs (placer ships the one it needs under models/vocab/).
# Run here, where the package registry is reachable.
# Usage: testbed/fetch-src.sh [VERSION [SDIST_TARBALL]]
#   0.3.36 → .carry/llama.cpp-src.tar.xz; any other version → .carry/llama.cpp-py<VERSION>-src.tar.xz
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
V=${1:-0.3.36}
case $V in   # the sdists this repository's tables were read from (docs/llama-builds.md)
  0.3.36) SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e ;;
  0.3.17) SHA=39c31948d234ff351bf638f1e468d893dd29282dd4d47716a39c6a0a1e63b123 ;;
  *) SHA= ;;
esac
W=$(mktemp -d)
SDIST=${2:-}
if [ -z "$SDIST" ]; then
  # The registry's own client (pip checks the hash from the index); `--no-binary` names this package
  # alone so the metadata step gets its build deps as wheels. The tarball's presence decides.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$V" -d "$W" >&2 || echo "fetch-src.sh: pip exited non-zero; checking for the tarball" >&2
  SDIST=$W/llama_cpp_python-$V.tar.gz
  [ -f "$SDIST" ] || { echo "fetch-src.sh: pip saved no llama_cpp_python-$V.tar.gz" >&2; exit 1; }
fi
if [ -n "$SHA" ]; then echo "$SHA  $SDIST" | sha256sum -c -; fi
tar -xzf "$SDIST" -C "$W"
cd "$W/llama_cpp_python-$V/vendor"
rm -rf llama.cpp/{docs,tests,benches,media,models,examples,pocs,app,conversion,.github}
mkdir -p "$REPO/.carry"
OUT=$REPO/.carry/llama.cpp-src.tar.xz
[ "$V" = 0.3.36 ] || OUT=$REPO/.carry/llama.cpp-py$V-src.tar.xz
tar -c llama.cpp | xz -6 -T0 > "$OUT"
ls -la "$OUT"
rm -rf "$W"
