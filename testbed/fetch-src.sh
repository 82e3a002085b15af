#!/usr/bin/env bash
# Make .carry/llama.cpp-src.tar.xz (what testbed/build.sh builds on the GPU machine, which reaches no
# registry): the llama.cpp tree vendored in the llama-cpp-python 0.3.36 sdist, without docs, tests,
# benches, media and the vocab GGUFs (placer ships the one it needs under models/vocab/).
# Run here, where PyPI is reachable. Usage: testbed/fetch-src.sh [SDIST_TARBALL]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e   # llama_cpp_python-0.3.36.tar.gz
W=$(mktemp -d)
SDIST=${1:-}
if [ -z "$SDIST" ]; then
  # The registry's own client (pip checks the hash from the index); `--no-binary` names this package
  # alone so the metadata step gets its build deps as wheels. The tarball's presence decides.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    llama-cpp-python==0.3.36 -d "$W" >&2 || echo "fetch-src.sh: pip exited non-zero; checking for the tarball" >&2
  SDIST=$W/llama_cpp_python-0.3.36.tar.gz
  [ -f "$SDIST" ] || { echo "fetch-src.sh: pip saved no llama_cpp_python-0.3.36.tar.gz" >&2; exit 1; }
fi
echo "$SHA  $SDIST" | sha256sum -c -
tar -xzf "$SDIST" -C "$W"
cd "$W"/llama_cpp_python-0.3.36/vendor
rm -rf llama.cpp/{docs,tests,benches,media,models,examples,pocs,app,conversion,.github}
mkdir -p "$REPO/.carry"
tar -c llama.cpp | xz -6 -T0 > "$REPO/.carry/llama.cpp-src.tar.xz"
ls -la "$REPO/.carry/llama.cpp-src.tar.xz"
rm -rf "$W"
