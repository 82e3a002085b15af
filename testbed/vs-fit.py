#!/usr/bin/env python3
"""placer's profiles against llama.cpp's --fit, predicted, on the users' host and models.

usage: testbed/vs-fit.py [--placer target/release/placer] [--write docs/benchmarks.md]

For each model of the users (models/ catalog) at 32K and 128K on the default host (RTX 4090 +
RTX 5070 Ti, hardware/users-4090-5070ti.toml), `placer solve ID --ctx C --json`: the aggressive
and moderate profiles and `fit_baseline` — what `--fit` would choose for the same request, replayed
on placer's memory model (src/fitsim.rs, which reproduces the layers per GPU of all 11 logged --fit
runs) — each priced by the same speed model. Predicted, not measured; the speed constants of this
host are priors (no run on a 4090 yet). With --write, replaces the text between
<!-- vsfit:begin --> and <!-- vsfit:end -->.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdblock  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- vsfit:begin -->", "<!-- vsfit:end -->"
MODELS = ["glm-q4", "glm-q8", "gpt-oss-20b", "gpt-oss-120b", "qwen3-30b-a3b-q8", "qwen3-32b-q8",
          "qwen3-coder-next-q5", "qwen3-next"]
CTX = [32768, 131072]


def row(placer, model, ctx):
    cmd = [placer, "solve", model, "--ctx", str(ctx), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return f"| {model} | {ctx // 1024}K | error: {out.stderr.strip()[:80]} | | | |"
    d = json.loads(out.stdout)
    fb = d.get("fit_baseline") or {}
    sp = fb.get("speed")
    if not sp:
        fit = f"does not fit ({fb.get('verdict', '–')})"
    else:
        fit = f"{sp['decode_tps']:.1f} / {sp['prefill_tps']:.0f}" if sp.get("prefill_tps") else f"{sp['decode_tps']:.1f} / –"
    cells = []
    for p in d["profiles"]:
        s = p.get("solution")
        if not s:
            cells.append("no fit")
            continue
        txt = f"{s['decode_tps']:.1f} / {s['prefill_tps']:.0f}" if s.get("prefill_tps") else f"{s['decode_tps']:.1f} / –"
        if sp:
            txt += f" ({s['decode_tps'] / sp['decode_tps']:.2f}×"
            if s.get("prefill_tps") and sp.get("prefill_tps"):
                txt += f", {s['prefill_tps'] / sp['prefill_tps']:.2f}×"
            txt += ")"
        cells.append(txt)
    choice = (fb.get("choice") or "–").split(":")[0].split(" (")[0].split(" —")[0]
    return f"| {model} | {ctx // 1024}K | `{choice}` | {fit} | {cells[0]} | {cells[1]} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--placer", default=os.path.join(ROOT, "target", "release", "placer"))
    ap.add_argument("--write")
    a = ap.parse_args()
    lines = ["| model | ctx | --fit would choose | --fit decode / prefill t/s | placer aggressive (÷ fit) | placer moderate (÷ fit) |",
             "|---|---|---|---|---|---|"]
    for m in MODELS:
        for c in CTX:
            lines.append(row(a.placer, m, c))
    body = "\n".join(lines) + "\n"
    if not a.write:
        sys.stdout.write(body)
        return
    mdblock.write_block(a.write, BEGIN, END, body)


if __name__ == "__main__":
    main()
