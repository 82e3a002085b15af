#!/usr/bin/env python3
"""Decode headroom per testbed scenario: how much faster than `--fit` could any placement decode,
by placer's own calibrated speed model? Predicted, not measured — it says whether issue 5's
decode target (placer aggressive ≥ 1.10× `--fit` on MoE) was reachable on that host at all, and
what the default (prefill-heavy) workload gave up for prefill.

usage: testbed/headroom.py [--placer target/release/placer] [--csv data/runs.csv]
       [--write docs/benchmarks.md]

For each scenario of testbed/matrix/scenarios.tsv (the slowed one excepted):
* `--fit`: measured decode / prefill of its newest run, and placer's prediction for that exact
  placement (data/runs.csv `decode_tps_pred` / `prefill_tps_pred`, written by
  `placer calibrate data/runs --csv data/runs.csv` with the shipped calibration);
* "request": `placer solve` as the testbed ran it (`--prompt P --gen 128`, `--tool
  llama-completion`): aggressive profile's predicted decode and prefill;
* "decode-weighted": the same solve with the generation filling the rest of the context
  (`--gen ctx−P−1 --depth P`), so decode dominates the request: the fastest decode placer finds
  under the same memory caps, and the prefill it keeps.
Ratios are predicted ÷ predicted (same model on both sides), so the speed model's bias cancels.
With --write, replaces the text between <!-- headroom:begin --> and <!-- headroom:end -->.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mdblock  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- headroom:begin -->", "<!-- headroom:end -->"


def scenarios():
    rows = []
    for line in open(os.path.join(HERE, "matrix", "scenarios.tsv")):
        if line.startswith("#") or not line.strip():
            continue
        f = line.rstrip("\n").split("\t")
        name, model, host, solve_host, ctx, prompt, gen = f[:7]
        if "slow" in host:
            continue
        rows.append(dict(name=name, model=model, solve_host=solve_host, ctx=int(ctx), prompt=int(prompt), gen=int(gen)))
    return rows


def fit_run(rows, name):
    """Newest `--fit` run of a scenario in data/runs.csv (run ids end in --cN after the first calls)."""
    def call(r):
        tail = r["run_id"].rsplit("--", 1)[-1]
        return int(tail[1:]) if tail[:1] == "c" and tail[1:].isdigit() else 0
    c = [r for r in rows if r["scenario"].endswith("-" + name) and r["placement"] == "fit"
         and r["decode_tps"] and r["contended"] != "true"]
    return max(c, key=call) if c else None


def solve(placer, s, extra):
    cmd = [placer, "solve", s["model"], "--host", os.path.join(ROOT, s["solve_host"]), "--ctx", str(s["ctx"]),
           "--tool", "llama-completion", "--json"] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {out.stderr.strip()}")
    prof = {p["kind"]: p for p in json.loads(out.stdout)["profiles"]}
    sol = prof["aggressive"]["solution"]
    shown = [c for c in cmd[1:] if c != "--json"]
    return sol["decode_tps"], sol.get("prefill_tps"), " ".join(shown).replace(ROOT + "/", "")


def f(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def table(placer, csv_path):
    rows = list(csv.DictReader(open(csv_path)))
    out = ["| scenario | `--fit` decode measured / predicted | `--fit` prefill measured / predicted "
           "| request solve: decode, prefill (÷ fit, predicted) | decode-weighted solve: decode, prefill (÷ fit, predicted) |",
           "|---|---|---|---|---|"]
    cmds = []
    for s in scenarios():
        fr = fit_run(rows, s["name"])
        if fr is None:
            continue
        fd_m, fd_p = float(fr["decode_tps"]), float(fr["decode_tps_pred"] or "nan")
        fp_m, fp_p = float(fr["prefill_tps"] or "nan"), float(fr["prefill_tps_pred"] or "nan")
        w = ["--prompt", str(s["prompt"]), "--gen", str(s["gen"])]
        rd, rp, rc = solve(placer, s, w)
        gen = s["ctx"] - s["prompt"] - 1
        dd, dp, dc = solve(placer, s, ["--prompt", str(s["prompt"]), "--gen", str(gen), "--depth", str(s["prompt"])])
        cmds += [rc, dc]
        out.append(f"| {s['name']} | {f(fd_m)} / {f(fd_p)} | {f(fp_m, 0)} / {f(fp_p, 0)} "
                   f"| {f(rd)}, {f(rp, 0)} ({rd / fd_p:.2f}×, {rp / fp_p:.2f}×) "
                   f"| {f(dd)}, {f(dp, 0)} ({dd / fd_p:.2f}×, {dp / fp_p:.2f}×) |")
    text = "\n".join(out) + "\n\nCommands (per row: the request solve, then the decode-weighted one):\n\n" + \
        "\n".join(f"    placer {c}" for c in cmds) + "\n"
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--placer", default=os.path.join(ROOT, "target", "release", "placer"))
    ap.add_argument("--csv", default=os.path.join(ROOT, "data", "runs.csv"))
    ap.add_argument("--write")
    a = ap.parse_args()
    body = table(a.placer, a.csv)
    if not a.write:
        sys.stdout.write(body)
        return
    mdblock.write_block(a.write, BEGIN, END, body)


if __name__ == "__main__":
    main()
