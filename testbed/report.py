#!/usr/bin/env python3
"""Testbed tables for docs/benchmarks.md, generated from data/runs/ (manifests + logs).

usage: testbed/report.py [--runs data/runs] [--write docs/benchmarks.md] [--placer target/release/placer]
Without --write it prints the markdown. With --write it replaces the part of the file between
<!-- testbed:begin --> and <!-- testbed:end --> (appending the markers if missing), so other
sections of docs/benchmarks.md are kept.

Per scenario (a data/runs/<date>-<scenario>/ directory): each placement's prefill and decode t/s,
the ratio to `--fit`, OOM, memory per device (measured from llama.cpp's own breakdown, against the
emulated budget) and, where `placer check --json` is available, predicted vs measured per device.
Every number is re-parsed from the logs (testbed/parse_log.py), not copied from the manifest.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parse_log  # noqa: E402

BEGIN, END = "<!-- testbed:begin -->", "<!-- testbed:end -->"
ORDER = ["placer-aggressive", "placer-moderate", "hand", "fit", "defaults", "cpu-moe"]


def load_runs(root):
    scen = {}
    for mf in sorted(glob.glob(os.path.join(root, "*", "*", "manifest.json"))):
        d = os.path.dirname(mf)
        m = json.load(open(mf))
        log = os.path.join(d, "log.txt.gz")
        m["measured"] = parse_log.parse(parse_log.read(log)) if os.path.exists(log) else m.get("measured", {})
        m["dir"] = d
        scen.setdefault(os.path.basename(os.path.dirname(d)), []).append(m)
    return scen


def fmt(x, nd=1):
    return "–" if x is None else f"{x:.{nd}f}"


def device_rows(m):
    """[(device, budget MiB, self MiB, model, context, compute)] from the last breakdown table."""
    br = m["measured"].get("breakdown_mib", {})
    out = []
    targets = m.get("host_targets_mib", [])
    for i, t in enumerate(targets):
        b = br.get(f"CUDA{i}")
        if b:
            out.append((f"CUDA{i}", t, b["self"], b["model"], b["context"], b["compute"], b.get("free")))
    if "Host" in br:
        h = br["Host"]
        out.append(("Host", None, h["self"], h["model"], h["context"], h["compute"], None))
    return out


def status(m):
    meas = m["measured"]
    if m.get("timed_out"):
        return "timed out"
    if meas.get("oom"):
        return "**OOM**"
    if m.get("rc", 0) != 0:
        return f"failed (rc {m['rc']})"
    return "ok"


def mem_cell(m):
    parts = []
    for dev, budget, self_, *_rest, free in device_rows(m):
        if budget is None:
            parts.append(f"{dev} {self_}")
        elif m.get("emulation") == "emul":
            parts.append(f"{dev} {self_}/{budget} (left {budget - self_})")
        else:
            parts.append(f"{dev} {self_}/{budget} (free {free})")
    return "; ".join(parts) if parts else "–"


def predicted(m, placer):
    """placer check's per-device prediction for the run's argv, or None."""
    if not placer or not os.path.exists(placer):
        return None
    host = "emulated:" + ",".join(str(t) for t in m.get("host_targets_mib", []))
    cmd = [placer, "check", "--json", "--host-mib", ",".join(str(t) for t in m["host_targets_mib"]),
           "--model", m["model"], "--"] + m["argv"][1:]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    finally:
        del host


def scenario_table(name, runs, placer):
    runs = sorted(runs, key=lambda m: (ORDER.index(m["placement"]) if m["placement"] in ORDER else 99, m["run_id"]))
    fit = next((m for m in runs if m["placement"] == "fit" and status(m) == "ok"), None)
    first = runs[0]
    lines = [f"### {name}", ""]
    lines.append(
        f"Model `{first['model']}` ({first.get('model_file_bytes', 0) / 2**30:.2f} GiB file), host `{first['host']}`"
        f" ({'one GPU split into virtual devices, GGML_CUDA_DEVICES' if first.get('emulation') == 'emul' else 'ballast'}),"
        f" `-c {first['ctx']}`, prompt {first['measured'].get('prompt_tokens') or first['prompt_tokens_target']} tokens,"
        f" {first['n_gen']} generated; GPU: {first.get('gpu', '?')}; llama.cpp {first['llama_cpp'].get('version', '?')[:60]}.")
    lines.append("")
    lines.append("| placement | status | prefill t/s | decode t/s | prefill ÷ fit | decode ÷ fit | memory per device, MiB (self/budget) | flags |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for m in runs:
        meas = m["measured"]
        rp = rd = "–"
        if fit and status(m) == "ok" and meas.get("prefill_tps") and fit["measured"].get("prefill_tps"):
            rp = f"{meas['prefill_tps'] / fit['measured']['prefill_tps']:.2f}×"
        if fit and status(m) == "ok" and meas.get("decode_tps") and fit["measured"].get("decode_tps"):
            rd = f"{meas['decode_tps'] / fit['measured']['decode_tps']:.2f}×"
        flags = (" ".join(m.get("flags", [])) or "(none)").replace("|", "\\|")
        lines.append(f"| {m['placement']} | {status(m)} | {fmt(meas.get('prefill_tps'))} | {fmt(meas.get('decode_tps'), 2)} "
                     f"| {rp} | {rd} | {mem_cell(m)} | `{flags}` |")
    lines.append("")
    preds = [(m, predicted(m, placer)) for m in runs]
    if any(p for _, p in preds):
        lines.append("Predicted (placer check) vs measured (llama.cpp breakdown), MiB per device:")
        lines.append("")
        lines.append("| placement | device | predicted | measured self |")
        lines.append("|---|---|---|---|")
        for m, p in preds:
            if not p:
                continue
            meas = {d: s for d, _b, s, *_ in device_rows(m)}
            for dev, val in sorted(p.get("devices_mib", {}).items()):
                lines.append(f"| {m['placement']} | {dev} | {val} | {meas.get(dev, '–')} |")
        lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="data/runs")
    ap.add_argument("--write")
    ap.add_argument("--placer", default="target/release/placer")
    a = ap.parse_args()
    scen = load_runs(a.runs)
    out = [BEGIN, "", "## Testbed: placements on real llama.cpp", "",
           "Generated by `python3 testbed/report.py --write docs/benchmarks.md` from the logs in data/runs/",
           "(docs/testbed.md says how the runs were made). Ratios are against the `--fit on` run of the same",
           "scenario. Memory: llama.cpp's own end-of-run breakdown (`self` = model + context + compute) against",
           "the emulated budget of each device; `free` is what the driver reported at exit (ballast held the rest).", ""]
    if not scen:
        out.append("(no runs in data/runs yet)")
    for name in sorted(scen):
        out += scenario_table(name, scen[name], a.placer)
    out.append(END)
    text = "\n".join(out) + "\n"
    if not a.write:
        print(text)
        return
    old = open(a.write).read() if os.path.exists(a.write) else "# Benchmarks\n\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(a.write, "w") as fh:
        fh.write(new)
    print(f"wrote {a.write}: {sum(len(v) for v in scen.values())} runs in {len(scen)} scenarios")


if __name__ == "__main__":
    main()
