#!/usr/bin/env bash
# Collect what testbed/tune-call.sh (or rules-call.sh) has written so far: STATE_DIR packed into
# $OUT/state.tgz (the synthesized models and binaries stay behind), the call log's tail printed.
# Waits up to WAIT_S for STATE_DIR/DONE first, packing every 60 s, so that a call stopped at its
# limit still returns the latest state; the packed b11434 binaries (rules-call.sh) come back once.
# usage: testbed/tune-poll.sh STATE_DIR [WAIT_S]
S=${1:?state dir}; W=${2:-0}
# A fresh machine (the last one was released) has no state: say so at once instead of waiting.
[ -d "$S" ] || { echo "no $S on this machine: it is a fresh one (the call that started tune-call.sh ran elsewhere)"; exit 3; }
pack() { [ -n "${OUT:-}" ] && tar -C "$(dirname "$S")" --exclude='*.gguf' -czf "$OUT/state.tgz.part" "$(basename "$S")" && mv "$OUT/state.tgz.part" "$OUT/state.tgz"; }
BIN=/tmp/tb/llama-b11434-bin.tar.xz
for i in $(seq "$W"); do
  [ -f "$S/DONE" ] && break
  [ $((i % 60)) = 0 ] && pack
  sleep 1
done
tail -60 "$S/call.log"
pack
[ -n "${OUT:-}" ] && [ -f "$BIN" ] && [ ! -f /tmp/tb/bin.sent ] && cp "$BIN" "$OUT/" && touch /tmp/tb/bin.sent
[ -n "${OUT:-}" ] && ls -la "$OUT"
