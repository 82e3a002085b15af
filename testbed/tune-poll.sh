#!/usr/bin/env bash
# Collect what testbed/tune-call.sh has written so far: STATE_DIR packed into $OUT/state.tgz (the
# synthesized models and binaries stay behind), the call log's tail printed. Waits up to WAIT_S for
# STATE_DIR/DONE first.   usage: testbed/tune-poll.sh STATE_DIR [WAIT_S]
S=${1:?state dir}; W=${2:-0}
# A fresh machine (the last one was released) has no state: say so at once instead of waiting.
[ -d "$S" ] || { echo "no $S on this machine: it is a fresh one (the call that started tune-call.sh ran elsewhere)"; exit 3; }
for _ in $(seq "$W"); do [ -f "$S/DONE" ] && break; sleep 1; done
tail -60 "$S/call.log"
[ -n "${OUT:-}" ] && tar -C "$(dirname "$S")" -czf "$OUT/state.tgz" "$(basename "$S")" && ls -la "$OUT"
