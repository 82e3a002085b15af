#!/usr/bin/env python3
"""Testbed tables for docs/benchmarks.md, generated from data/runs/ (manifests + logs).

usage: testbed/report.py [--runs data/runs] [--write docs/benchmarks.md]
Without --write it prints the markdown. With --write it replaces the part of the file between
<!-- testbed:begin --> and <!-- testbed:end --> (appending the markers if missing), so other
sections of docs/benchmarks.md are kept.

Per scenario (a data/runs/<date>-<scenario>/ directory): each placement's prefill and decode t/s,
the ratio to `--fit`, OOM, memory per device (measured from llama.cpp's own breakdown, against the
emulated budget) and, where `placer chose the placement, its predicted bytes per device vs measured.
Every number is re-parsed from the logs (testbed/parse_log.py), not copied from the manifest.
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parse_log  # noqa: E402

BEGIN, END = "<!-- testbed:begin -->", "<!-- testbed:end -->"
ORDER = ["placer-aggressive", "placer-aggressive-lmnone", "placer-decode", "placer-moderate", "placer-moderate-lmnone",
         "hand", "fit", "fit-lmnone", "defaults", "cpu-moe"]


def call_of(m):
    """The device call that made a run: the manifest's `call` (c4, c5, … since the second session),
    else the run id's "--cN" suffix, else "c2-3" (the first session's calls 2 and 3, untagged)."""
    c = m.get("call") or (m["run_id"].rsplit("--", 1)[-1] if m["run_id"].count("--") > 1 else "")
    return c or "c2-3"


def call_key(m):
    c = call_of(m)
    return int(c[1:]) if c[1:].isdigit() else 0


def latest(runs, placement, ok_only=False):
    """The newest run of a placement in a scenario (a later call re-runs it with a newer solver)."""
    c = [m for m in runs if m["placement"] == placement and (not ok_only or status(m) == "ok")]
    return max(c, key=call_key) if c else None


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


def llama_overhead(m):
    """MiB llama.cpp used beyond its buffers (CUDA context, cuBLAS, pools), per physical GPU:
    what the ballast left free − what the driver showed free at exit − the devices' `self`.
    Under emul the virtual devices share one GPU: their free is physical free / N."""
    br = m["measured"].get("breakdown_mib", {})
    bfree = m.get("ballast_free_mib") or []
    gpus = [br.get(f"CUDA{i}") for i in range(len(m.get("host_targets_mib", [])))]
    if not bfree or not gpus or any(g is None for g in gpus):
        return None
    if m.get("emulation") == "emul":
        return bfree[0] - gpus[0]["free"] * len(gpus) - sum(g["self"] for g in gpus)
    return sum(bfree[i] - g["free"] - g["self"] for i, g in enumerate(gpus) if i < len(bfree))


def from_buffers(buf, name):
    """The breakdown of one device rebuilt from the load-time buffer lines, for runs that never
    printed the exit table (timed out during decode)."""
    def pick(prefixes, kinds):
        return sum(v for k, v in buf.items() if k.split(".")[0] in prefixes and k.split(".")[1] in kinds)
    dev = [name] if name != "Host" else ["CPU", "CPU_Mapped", "CUDA_Host", "CPU_REPACK"]
    model, ctx, comp = pick(dev, {"model"}), pick(dev, {"KV", "RS"}), pick(dev, {"compute"})
    if model + ctx + comp == 0:
        return None
    r = lambda x: int(x)  # noqa: E731  (the exit table prints whole MiB, truncated)
    return {"model": r(model), "context": r(ctx), "compute": r(comp), "self": r(model + ctx + comp), "from": "buffers"}


def oom_alloc(m):
    """(device, MiB) of the allocation that failed, from llama.cpp's
    `ggml_backend_cuda_buffer_type_alloc_buffer: allocating X MiB on device N: cudaMalloc failed`."""
    import re
    for line in m["measured"].get("oom_lines", []):
        r = re.search(r"allocating ([0-9.]+) MiB on device (\d+)", line)
        if r:
            return f"CUDA{r.group(2)}", float(r.group(1))
    return None


def prediction_rows(m, preds):
    """[(device, predicted weights/kv/compute/overhead MiB, measured model/context/compute MiB)]."""
    p = preds.get(m["run_id"])
    if not p:
        return []
    sol = p.get("profile", {}).get("solution", {})
    br = m["measured"].get("breakdown_mib", {})
    out = []
    for d in sol.get("devices", []):
        dev = d["device"]
        name = f"CUDA{dev['Gpu']}" if isinstance(dev, dict) else "Host"
        mib = lambda k: d.get(k, 0) / 2**20  # noqa: E731
        meas = br.get(name) or from_buffers(m["measured"].get("buffers_mib", {}), name)
        oom = oom_alloc(m)
        if meas is not None and oom and oom[0] == name and not meas.get("compute"):
            # the compute buffer that did not fit: what llama.cpp tried to allocate
            meas = dict(meas, compute=int(oom[1]), self=meas["model"] + meas["context"] + int(oom[1]),
                        oom=True)
        out.append((name, mib("weights"), mib("kv"), mib("compute"), mib("overhead"), meas))
    return out


def scenario_table(name, runs, preds):
    runs = sorted(runs, key=lambda m: (ORDER.index(m["placement"]) if m["placement"] in ORDER else 99, call_key(m)))
    fit = latest(runs, "fit", ok_only=True)
    first = runs[0]
    lines = [f"### {name}", ""]
    lines.append(
        f"Model `{first['model']}` ({first.get('model_file_bytes', 0) / 2**30:.2f} GiB file), host `{first['host']}`"
        f" ({'one GPU split into virtual devices, GGML_CUDA_DEVICES' if first.get('emulation') == 'emul' else 'ballast'}),"
        f" `-c {first['ctx']}`, prompt {first['measured'].get('prompt_tokens') or first['prompt_tokens_target']} tokens,"
        f" {first['n_gen']} generated; run with `{first.get('binary', 'llama-completion')}` (placer's flags too, though placer"
        f" writes them for llama-server); GPU: {first.get('gpu', '?')};"
        f" llama.cpp {' '.join(first['llama_cpp'].get('version', '?').split()[:6])}.")
    lines.append("")
    lines.append("| placement | call | status | prefill t/s | decode t/s | prefill ÷ fit | decode ÷ fit | memory per device, MiB (self/budget) | flags |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for m in runs:
        meas = m["measured"]
        rp = rd = "–"
        if fit and status(m) == "ok" and meas.get("prefill_tps") and fit["measured"].get("prefill_tps"):
            rp = f"{meas['prefill_tps'] / fit['measured']['prefill_tps']:.2f}×"
        if fit and status(m) == "ok" and meas.get("decode_tps") and fit["measured"].get("decode_tps"):
            rd = f"{meas['decode_tps'] / fit['measured']['decode_tps']:.2f}×"
        flags = (" ".join(m.get("flags", [])) or "(none)").replace("|", "\\|")
        lines.append(f"| {m['placement']} | {call_of(m)} | {status(m)} | {fmt(meas.get('prefill_tps'))} | {fmt(meas.get('decode_tps'), 2)} "
                     f"| {rp} | {rd} | {mem_cell(m)} | `{flags}` |")
    lines.append("")
    ov = [(f"{m['placement']} ({call_of(m)})", llama_overhead(m)) for m in runs if status(m) == "ok"]
    ov = [(p, o) for p, o in ov if o is not None]
    if ov:
        lines.append("Beyond `self` (CUDA context, cuBLAS, pools; ballast free − free at exit − self, per physical GPU): "
                     + ", ".join(f"{p} {o} MiB" for p, o in ov) + ".")
        lines.append("")
    rows = [(m, prediction_rows(m, preds)) for m in runs]
    if any(r for _, r in rows):
        lines.append("placer's prediction (when it chose the placement) vs llama.cpp's breakdown, MiB:")
        lines.append("")
        lines.append("| placement | device | predicted weights / KV / compute (+ overhead) | measured model / context / compute | Δ self |")
        lines.append("|---|---|---|---|---|")
        for m, r in rows:
            for dev, w, kv, comp, ovh, meas in r:
                if meas is None:
                    mtxt, delta = "–", "–"
                else:
                    mtxt = f"{meas['model']} / {meas['context']} / {meas['compute']}"
                    if meas.get("oom"):
                        mtxt += " (compute: the allocation that failed)"
                    delta = f"{meas['self'] - (w + kv + comp):+.0f}"
                lines.append(f"| {m['placement']} ({call_of(m)}) | {dev} | {w:.0f} / {kv:.0f} / {comp:.0f} (+ {ovh:.0f}) | {mtxt} | {delta} |")
        lines.append("")
    return lines


def pairs(runs, placement, key):
    """(ratio, call, fit_call) of every ok run of `placement` against the `--fit` run of its own device
    call, newest first; a run whose call has no `--fit` run is paired with the newest `--fit` run. Runs
    of one call share the machine start (page cache, memory balloon), so same-call pairs are the fair
    ratios; the list shows the spread between calls."""
    fits = {call_of(m): m for m in runs if m["placement"] == "fit" and status(m) == "ok"}
    newest_fit = latest(runs, "fit", ok_only=True)
    # Since the fifth session placer adds `-lm none` when CPU weights stream to the GPU (solver
    # prefer_pinned); in a call that ran a placement both ways, the "-lmnone" run is what placer emits.
    pinned = {call_of(m): m for m in runs if m["placement"] == placement + "-lmnone"}
    mine = [pinned.get(call_of(m), m) for m in runs if m["placement"] == placement]
    out = []
    for m in sorted(mine, key=call_key, reverse=True):
        c = call_of(m) + (", -lm none" if m["placement"].endswith("-lmnone") else "")
        if status(m) != "ok":
            out.append((None, f"{status(m)} ({c})", None))
            continue
        f = fits.get(call_of(m), newest_fit)
        out.append((m["measured"][key] / f["measured"][key], c, call_of(f)))
    return out


def ratio_cell(ps):
    """The newest same-call ratio first, then the other calls' ratios in brackets."""
    if not ps:
        return None, "not run"
    txt = []
    for r, c, fc in ps:
        if r is None:
            txt.append(c)
        else:
            txt.append(f"{r:.2f}× ({c}" + ("" if c.startswith(fc or "-") else f" vs fit {fc}") + ")")
    head = next((r for r, _, _ in ps if r is not None), None)
    return head, txt[0] + (f"; {', '.join(txt[1:])}" if len(txt) > 1 else "")


def targets_table(scen):
    """Issue 5's targets, per scenario: placer aggressive ÷ --fit (decode ≥ 1.10 on MoE; dense at a deep
    context: decode ≥ 1.5 and prefill ≥ 2), prefill no worse than --fit, moderate never OOMs."""
    lines = ["### Targets (issue 5), measured", "",
             "Each placement's ratio to the `--fit` run of the same device call (the call in brackets; c2-3: the",
             "first session's solver, c4: the second session's solver before its CPU-attention/-ub cost model,",
             "c5–c7: after it, on one H100; c8–c11: fourth session, nvidia-h200-x2 — two real H200s for `h200x2`,",
             "GPU 0 alone for `h200-gpu24`; c12–c14: fifth session, one H200 — two virtual devices for `h200emul`,",
             "with placer's `-lm none` where CPU weights stream: \", -lm none\"). The newest call decides \"met?\"; the other calls' ratios follow",
             "after \";\" (the spread between machine starts). \"decode-weighted\": the aggressive profile solved with",
             "the generation filling the context (`placer-decode`, testbed/make-matrix.py), run on the same workload.", "",
             "| scenario | decode aggr ÷ fit | prefill aggr ÷ fit | decode mod ÷ fit | prefill mod ÷ fit | decode-weighted aggr: decode, prefill ÷ fit | target | met? | prefill ≥ fit (aggr, mod)? | moderate OOM? |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(scen):
        runs = scen[name]
        fit = latest(runs, "fit", ok_only=True)
        if not fit or not any(m["placement"].startswith("placer-") for m in runs):
            continue
        dense = "dense" in name
        if name.endswith("-slow") and "-emul-" in name:
            # one chip split in two and a copy stream on it: the whole chip is time-sliced between
            # two processes, not a slower second GPU, so no target applies (docs/testbed.md)
            lines.append(f"| {name} | see its table | | | | | none: time-sliced single chip, not a slower second GPU | – | – | – |")
            continue
        cells, heads = [], {}
        for pl in ("placer-aggressive", "placer-moderate"):
            for key in ("decode_tps", "prefill_tps"):
                heads[(pl, key)], txt = ratio_cell(pairs(runs, pl, key))
                cells.append(txt)
        dwd, dwp = (pairs(runs, "placer-decode", k) for k in ("decode_tps", "prefill_tps"))
        dw = [f"{d[0]:.2f}×, {p[0]:.2f}× ({d[1]})" for d, p in zip(dwd, dwp) if d[0] is not None]
        cells.append("; ".join(dw) if dw else "–")
        rd, rp = heads[("placer-aggressive", "decode_tps")], heads[("placer-aggressive", "prefill_tps")]
        if name.endswith("-slow"):
            target = "none set (copy stream on the second GPU; placer solved as if it were not there)"
            ok = None
        elif dense:
            target = "decode ≥ 1.5×, prefill ≥ 2×"
            ok = rd is not None and rp is not None and rd >= 1.5 and rp >= 2.0
        else:
            target = "decode ≥ 1.10×, prefill ≥ 1×"
            ok = rd is not None and rp is not None and rd >= 1.10 and rp >= 1.0
        mods = [m for m in runs if m["placement"] == "placer-moderate"]
        moom = "–" if not mods else ("**yes**" if any(m["measured"].get("oom") for m in mods) else "no")
        met = "–" if ok is None else ("not measured" if rd is None or rp is None else ("yes" if ok else "**no**"))
        mp = heads[("placer-moderate", "prefill_tps")]
        pf = [r for r in (rp, mp) if r is not None]
        # same-call ratios within 3 % count as equal: repeats of identical flags spread more (docs/benchmarks.md)
        pre = "–" if not pf else ("yes" if all(r >= 0.97 for r in pf) else "**no**")
        lines.append(f"| {name} | {' | '.join(cells)} | {target} | {met} | {pre} | {moom} |")
    lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="data/runs")
    ap.add_argument("--write")
    a = ap.parse_args()
    scen = load_runs(a.runs)
    preds = {}
    for f in glob.glob(os.path.join(a.runs, "*", "predictions.json")):
        preds.update(json.load(open(f)))
    out = [BEGIN, "", "## Testbed: placements on real llama.cpp", "",
           "Generated by `python3 testbed/report.py --write docs/benchmarks.md` from the logs in data/runs/",
           "(docs/testbed.md says how the runs were made). Ratios are against the `--fit on` run of the same",
           "scenario. Memory: llama.cpp's own end-of-run breakdown (`self` = model + context + compute) against",
           "the emulated budget of each device; `free` is what the driver reported at exit (ballast held the rest);",
           "under `emul:` both devices are one H100, so per-device free is not meaningful and `left` = budget − self;",
           "under `gpu:` each device is its own physical GPU (nvidia-h200-x2 for the `h200x2` scenarios).",
           "Host `self` counts the whole memory-mapped GGUF when any weight stays on the CPU (CPU_Mapped).", ""]
    if not scen:
        out.append("(no runs in data/runs yet)")
    out += targets_table(scen)
    for name in sorted(scen):
        out += scenario_table(name, scen[name], preds)
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
