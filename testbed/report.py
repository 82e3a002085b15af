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
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parse_log  # noqa: E402

BEGIN, END = "<!-- testbed:begin -->", "<!-- testbed:end -->"
ORDER = ["placer-aggressive", "placer-aggressive-lmnone", "placer-decode", "placer-moderate", "placer-moderate-lmnone",
         "hand", "fit", "fit-lmnone", "defaults", "cpu-moe"]


def call_of(m):
    """The device call that made a run: the manifest's `call` (c4, c5, …), else the run id's "--cN"
    suffix, else "c2-3" (calls 2 and 3 of 2026-11-23, whose run ids carry no tag). A repeat inside a
    call is tagged "cN.rK" in the run id (testbed/make-matrix.py --repeats); the call is cN."""
    if "reference" in os.path.basename(os.path.dirname(m.get("dir", ""))):
        return "ref"  # the two shared reference runs (data/runs/2026-11-23-reference-qwen3moe-h200x2)
    c = m.get("call") or (m["run_id"].rsplit("--", 1)[-1] if m["run_id"].count("--") > 1 else "")
    return c.split(".")[0] or "c2-3"


def repeat_of(m):
    """The repeat index K of a run id ending "--cN.rK", else None (one run per placement and call)."""
    tail = m["run_id"].rsplit("--", 1)[-1]
    return int(tail.split(".r", 1)[1]) if ".r" in tail and tail.split(".r", 1)[1].isdigit() else None


def call_date(m):
    """The date of the run's call: the scenario directory is data/runs/<YYYY-MM-DD>-<scenario>/."""
    return os.path.basename(os.path.dirname(m["dir"]))[:10] if m.get("dir") else "?"


def call_label(m):
    """Runs are named by date and batch: "2026-12-04 c13"."""
    return f"{call_date(m)} {call_of(m)}"


def call_key(m):
    c = call_of(m)
    return int(c[1:]) if c[1:].isdigit() else 0


def load_mode(m):
    """"none" when the run's flags hold `-lm none` (CPU weights in pinned host memory), else "mmap"."""
    f = m.get("flags", [])
    return "none" if any(a in ("-lm", "--load-mode") and i + 1 < len(f) and f[i + 1] == "none"
                         for i, a in enumerate(f)) else "mmap"


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


def baseline_of(runs, m, mode):
    """The `--fit` run(s) of m's own device call: mode "same" = `--fit` with m's load mode
    (`fit-lmnone` for a run with `-lm none`, plain `fit` otherwise), "plain" = plain `--fit`.
    Paired by repeat when both carry one (testbed/make-matrix.py --repeats), else every ok `--fit`
    run of the call. Never a run of another call."""
    want = "fit-lmnone" if (mode == "same" and load_mode(m) == "none") else "fit"
    fits = [f for f in runs if f["placement"] == want and call_label(f) == call_label(m) and status(f) == "ok"
            and f is not m]
    r = repeat_of(m)
    same_rep = [f for f in fits if r is not None and repeat_of(f) == r]
    return same_rep or fits


def ratio(m, fits, key):
    """m's t/s ÷ the median t/s of its baseline runs (one run, or the repeat it is paired with)."""
    if status(m) != "ok" or not fits or not m["measured"].get(key):
        return None
    vals = [f["measured"][key] for f in fits if f["measured"].get(key)]
    return m["measured"][key] / statistics.median(vals) if vals else None


def scenario_table(name, runs, preds, overhead):
    runs = sorted(runs, key=lambda m: (call_key(m), repeat_of(m) or 0,
                                       ORDER.index(m["placement"]) if m["placement"] in ORDER else 99))
    first = runs[0]
    lines = [f"### {name}", ""]
    lines.append(
        f"Model `{first['model']}` ({(first.get('model_file_bytes') or 0) / 2**30:.2f} GiB file), host `{first['host']}`"
        f" ({'one GPU split into virtual devices, GGML_CUDA_DEVICES' if first.get('emulation') == 'emul' else 'ballast'}),"
        f" `-c {first['ctx']}`, prompt {first['measured'].get('prompt_tokens') or first['prompt_tokens_target']} tokens,"
        f" {first['n_gen']} generated; run with `{first.get('binary', 'llama-completion')}` (placer's flags too, though placer"
        f" writes them for llama-server); GPU: {first.get('gpu', '?')};"
        f" llama.cpp {' '.join(first['llama_cpp'].get('version', '?').split()[:6])}.")
    lines.append("")
    lines.append("Ratios: against the `--fit` run of the same device call, with the run's own load mode where the call "
                 "has one (`fit-lmnone` for a `-lm none` run), and against plain `--fit` of the same call; "
                 "\"–\": that call has no such `--fit` run.")
    lines.append("")
    lines.append("| placement | call | load mode | status | prefill t/s | decode t/s | prefill ÷ fit (same mode / plain) | decode ÷ fit (same mode / plain) | memory per device, MiB (self/budget) | flags |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for m in runs:
        meas = m["measured"]
        cells = []
        for key in ("prefill_tps", "decode_tps"):
            rs = ratio(m, baseline_of(runs, m, "same"), key) if not m["placement"].startswith("fit") else None
            rpl = ratio(m, baseline_of(runs, m, "plain"), key) if m["placement"] != "fit" else None
            cells.append(f"{fmt(rs, 2)}{'×' if rs else ''} / {fmt(rpl, 2)}{'×' if rpl else ''}")
        flags = (" ".join(m.get("flags", [])) or "(none)").replace("|", "\\|")
        st = status(m)
        if physical_short(m, overhead):
            st += "; **would not fit on physical cards**"
        rep = f".r{repeat_of(m)}" if repeat_of(m) is not None else ""
        lines.append(f"| {m['placement']} | {call_label(m)}{rep} | {load_mode(m)} | {st} | {fmt(meas.get('prefill_tps'))} | {fmt(meas.get('decode_tps'), 2)} "
                     f"| {cells[0]} | {cells[1]} | {mem_cell(m)} | `{flags}` |")
    lines.append("")
    ov = [(f"{m['placement']} ({call_label(m)})", llama_overhead(m)) for m in runs if status(m) == "ok"]
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
                lines.append(f"| {m['placement']} ({call_label(m)}) | {dev} | {w:.0f} / {kv:.0f} / {comp:.0f} (+ {ovh:.0f}) | {mtxt} | {delta} |")
        lines.append("")
    return lines



def physical_overhead(scen):
    """MiB llama.cpp took beyond its buffers on each real GPU of the runs on two physical cards
    (`gpu:` hosts with two or more devices): ballast free − free at exit − self, per GPU.
    Returns (sorted list of (MiB, run label)) — the CUDA context, cuBLAS and pools a physical card
    pays that a virtual device of a shared chip does not show on its own."""
    out = []
    for runs in scen.values():
        for m in runs:
            br = m["measured"].get("breakdown_mib", {})
            bf = m.get("ballast_free_mib") or []
            if m.get("emulation") != "gpu" or len(m.get("host_targets_mib", [])) < 2 or status(m) != "ok":
                continue
            for i in range(len(m["host_targets_mib"])):
                g = br.get(f"CUDA{i}")
                if g and i < len(bf):
                    out.append((bf[i] - g["free"] - g["self"], f"{m['run_id']} ({call_label(m)}) CUDA{i}"))
    return sorted(out)


def device_left(m):
    """[(device, budget − self MiB)] from the exit breakdown."""
    br = m["measured"].get("breakdown_mib", {})
    return [(f"CUDA{i}", t - br[f"CUDA{i}"]["self"]) for i, t in enumerate(m.get("host_targets_mib", []))
            if f"CUDA{i}" in br]


def physical_short(m, overhead):
    """An emulated run (virtual devices of one chip) that left less free on some device than the
    smallest per-GPU overhead measured on real separate cards: on two physical cards it would most
    likely not have fit."""
    if m.get("emulation") != "emul" or len(m.get("host_targets_mib", [])) < 2 or not overhead:
        return False
    return any(left < overhead for _, left in device_left(m))


def family(runs, placement):
    """The runs that stand for `placement` in each call: placer's profiles as placer emitted them —
    where a call ran a profile both ways (`placer-X` and `placer-X-lmnone`, 2026-12-04 c12), the
    `-lm none` run, which placer emits since then; every other placement as named."""
    own = [m for m in runs if m["placement"] == placement]
    if not placement.startswith("placer-"):
        return own
    pinned = [m for m in runs if m["placement"] == placement + "-lmnone"]
    calls_pinned = {call_label(m) for m in pinned}
    return [m for m in own if call_label(m) not in calls_pinned] + pinned


def pair_ratios(runs, placement, key, mode):
    """[(ratio, call label)] of every same-call pair (placement run, `--fit` run): mode "same" =
    `--fit` with the placement's load mode, "plain" = plain `--fit`. Failed runs are left out (they
    count in the OOM column)."""
    out = []
    for m in family(runs, placement):
        r = ratio(m, baseline_of(runs, m, mode), key)
        if r is not None:
            out.append((r, call_label(m)))
    return out


def stat_cell(ps):
    """"median× (min–max, n pairs; calls)" or "–"."""
    if not ps:
        return None, "–"
    rs = [r for r, _ in ps]
    med = statistics.median(rs)
    calls = sorted({c.split(" ")[1] for _, c in ps}, key=lambda c: int(c[1:].split("-")[0]) if c[1:2].isdigit() else 0)
    rng = f"{min(rs):.2f}–{max(rs):.2f}, " if len(rs) > 1 else ""
    return med, f"{med:.2f}× ({rng}{len(rs)} pair{'s' if len(rs) > 1 else ''}; {', '.join(calls)})"


def met(value, target):
    if value is None:
        return "not measured"
    return "met" if value >= target else "**not met**"


def is_dense(name):
    return "dense" in name


def no_target(name):
    """Scenarios with a copy stream on a GPU: placer solved as if it were not there; no target."""
    return name.endswith("-slow")


def verdict_tables(scen, overhead):
    ov_min = overhead[0][0] if overhead else None
    L = ["### Verdicts per scenario", "",
         "Every ratio pairs a run with the `--fit` run of its own device call (calls are named by date and",
         "batch, e.g. \"2026-12-04 c13\"). A verdict is the **median over all same-call pairs** of the scenario,",
         "with min–max and the number of pairs; a run is never divided by a `--fit` run of another call.",
         "\"same mode\": `--fit` with the load mode placer's run used (`--fit -lm none` against a placer run with",
         "`-lm none`); where a call has no such `--fit` run the cell is \"–\" and the verdict \"not measured\".",
         "\"plain\": plain `--fit` (the file memory-mapped), kept as a second column. Where placer ran with the",
         "mapped file the two columns are the same pairs. Targets: MoE aggressive decode ≥ 1.10×, dense",
         "aggressive decode ≥ 1.5× and prefill ≥ 2×, prefill ≥ 1.0× for aggressive and moderate everywhere",
         "(same mode).", "",
         "| scenario | placer load mode | aggressive decode ÷ fit, same mode | aggressive decode ÷ plain fit | aggressive prefill ÷ fit, same mode | aggressive prefill ÷ plain fit | target | decode target | prefill target |",
         "|---|---|---|---|---|---|---|---|---|"]
    M = ["### Moderate profile, OOMs, physical fit", "",
         f"\"would not fit on physical cards\": an emulated run (two virtual devices of one GPU) that left less",
         f"free on a device than the smallest per-GPU overhead llama.cpp took on real separate cards"
         + (f" ({ov_min} MiB, table below)" if ov_min is not None else "") + ".", "",
         "| scenario | moderate decode ÷ fit, same mode | moderate prefill ÷ fit, same mode | moderate prefill ÷ plain fit | prefill ≥ 1.0× | moderate OOM | emulated runs that would not fit on physical cards |",
         "|---|---|---|---|---|---|---|"]
    H = ["### Hand placements and the optimality gap", "",
         "\"hand\": the users' own flags (testbed/matrix/hand.tsv). Optimality gap: placer's aggressive decode ÷",
         "the best decode measured in its neighbourhood (`nb-*` placements, testbed/make-matrix.py",
         "`neighbourhood`) in the same call; target ≥ 0.95.", "",
         "| scenario | hand decode ÷ fit, same call | aggressive decode ÷ hand, same call | hand beaten | optimality gap | within 5 % |",
         "|---|---|---|---|---|---|"]
    pooled = {"same": [], "plain": []}
    for name in sorted(scen):
        runs = scen[name]
        if not any(m["placement"].startswith("placer-") or m["placement"] == "hand" for m in runs):
            continue
        if not any(m["placement"].startswith("fit") for m in runs):
            continue
        aggr = family(runs, "placer-aggressive")
        modes = sorted({load_mode(m) for m in aggr}) or ["–"]
        c = {}
        for pl in ("placer-aggressive", "placer-moderate"):
            for key in ("decode_tps", "prefill_tps"):
                for mode in ("same", "plain"):
                    c[(pl, key, mode)] = stat_cell(pair_ratios(runs, pl, key, mode))
        if not is_dense(name) and not no_target(name) and "reference" not in name:
            pooled["same"] += [(r, name, cl) for r, cl in pair_ratios(runs, "placer-aggressive", "decode_tps", "same")]
            pooled["plain"] += [(r, name, cl) for r, cl in pair_ratios(runs, "placer-aggressive", "decode_tps", "plain")]
        rd, rp = c[("placer-aggressive", "decode_tps", "same")][0], c[("placer-aggressive", "prefill_tps", "same")][0]
        if no_target(name):
            target, dv, pv = "none: a copy stream on a GPU, which placer cannot see", "–", "–"
        elif is_dense(name):
            target, dv, pv = "decode ≥ 1.5×, prefill ≥ 2×", met(rd, 1.5), met(rp, 2.0)
        else:
            target, dv, pv = "decode ≥ 1.10×, prefill ≥ 1.0×", met(rd, 1.10), met(rp, 1.0)
        if aggr:
            L.append(f"| {name} | {', '.join(modes)} | {c[('placer-aggressive', 'decode_tps', 'same')][1]} | "
                     f"{c[('placer-aggressive', 'decode_tps', 'plain')][1]} | {c[('placer-aggressive', 'prefill_tps', 'same')][1]} | "
                     f"{c[('placer-aggressive', 'prefill_tps', 'plain')][1]} | {target} | {dv} | {pv} |")
        mods = family(runs, "placer-moderate")
        if mods:
            mp = c[("placer-moderate", "prefill_tps", "same")][0]
            moom = [m for m in mods if m["measured"].get("oom")]
            short = [m for m in runs if physical_short(m, ov_min)]
            sh = "; ".join(f"{m['placement']} ({call_label(m)}): " + ", ".join(f"{d} {left} MiB left" for d, left in device_left(m))
                           for m in short) or "none"
            M.append(f"| {name} | {c[('placer-moderate', 'decode_tps', 'same')][1]} | {c[('placer-moderate', 'prefill_tps', 'same')][1]} | "
                     f"{c[('placer-moderate', 'prefill_tps', 'plain')][1]} | {'–' if no_target(name) else met(mp, 1.0)} | "
                     f"{len(moom)} of {len(mods)} | {sh} |")
        hands = [m for m in runs if m["placement"] == "hand"]
        nbs = [m for m in runs if m["placement"].startswith("nb-")]
        if hands or nbs:
            hd = stat_cell(pair_ratios(runs, "hand", "decode_tps", "same"))
            ah = []
            for m in aggr:
                hs = [h for h in hands if call_label(h) == call_label(m) and status(h) == "ok"
                      and (repeat_of(m) is None or repeat_of(h) in (None, repeat_of(m)))]
                r = ratio(m, hs, "decode_tps")
                if r is not None:
                    ah.append((r, call_label(m)))
            ahc = stat_cell(ah)
            beaten = "not measured" if ahc[0] is None else ("yes" if ahc[0] > 1.0 else "**no**")
            gaps = []
            for m in aggr:
                same = [n for n in nbs + [m] if call_label(n) == call_label(m) and status(n) == "ok"]
                best = {}
                for n in same:
                    best.setdefault(n["placement"], []).append(n["measured"].get("decode_tps") or 0)
                if len(best) > 1 and status(m) == "ok":
                    top = max(statistics.median(v) for v in best.values())
                    gaps.append((m["measured"]["decode_tps"] / top, call_label(m)))
            g = stat_cell(gaps)
            H.append(f"| {name} | {hd[1]} | {ahc[1]} | {beaten} | {g[1] if g[0] else 'not measured'} | "
                     f"{met(g[0], 0.95) if g[0] else 'not measured'} |")
    L.append("")
    M.append("")
    H.append("")
    P = ["### MoE aggressive decode over every same-call pair", ""]
    for mode, label in (("same", "`--fit` with the same load mode"), ("plain", "plain `--fit`")):
        rs = [r for r, _, _ in pooled[mode]]
        if rs:
            P.append(f"- Against {label}: median **{statistics.median(rs):.2f}×** over {len(rs)} pairs "
                     f"(min {min(rs):.2f}×, max {max(rs):.2f}×; {sum(r >= 1.10 for r in rs)} of {len(rs)} pairs ≥ 1.10×), "
                     f"from {len({n for _, n, _ in pooled[mode]})} MoE scenarios (the copy-stream scenarios excluded). "
                     f"Target ≥ 1.10×: {met(statistics.median(rs), 1.10)}.")
    P.append("")
    O = ["### Per-GPU overhead on real separate cards", ""]
    if overhead:
        vals = [v for v, _ in overhead]
        O.append(f"llama.cpp's memory beyond its buffers (CUDA context, cuBLAS, pools) on each physical GPU of the "
                 f"runs on two real cards: {min(vals)}–{max(vals)} MiB, median {statistics.median(vals):.0f} MiB over "
                 f"{len(vals)} GPU-runs (ballast free − free at exit − self). An emulated run must leave at least the "
                 f"smallest of these, {min(vals)} MiB, free on every device to fit the same host made of physical cards.")
    else:
        O.append("No run on two physical cards yet.")
    O.append("")
    return P + L + M + H + O


def calls_table(scen):
    """One row per device call: date and batch, machine, scenarios."""
    calls = {}
    for name, runs in scen.items():
        for m in runs:
            k = (call_date(m), call_key(m), call_of(m))
            e = calls.setdefault(k, {"gpu": set(), "cores": set(), "scen": set(), "n": 0})
            e["gpu"].add(m.get("gpu", "?").split(",")[0])
            e["cores"].add(str(m.get("cpu_cores", "?")))
            e["scen"].add(name[11:] if name[:4].isdigit() else name)
            e["n"] += 1
    L = ["### Device calls", "", "| call | GPU | CPU cores | runs | scenarios |", "|---|---|---|---|---|"]
    for (d, _, c), e in sorted(calls.items()):
        L.append(f"| {d} {c} | {', '.join(sorted(e['gpu']))} | {', '.join(sorted(e['cores']))} | {e['n']} | {', '.join(sorted(e['scen']))} |")
    L.append("")
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="data/runs")
    ap.add_argument("--write")
    a = ap.parse_args()
    scen = load_runs(a.runs)
    preds = {}
    for f in glob.glob(os.path.join(a.runs, "*", "predictions.json")):
        preds.update(json.load(open(f)))
    overhead = physical_overhead(scen)
    ov_min = overhead[0][0] if overhead else None
    out = [BEGIN, "", "## Testbed: placements on real llama.cpp", "",
           "Generated by `python3 testbed/report.py --write docs/benchmarks.md` from the logs in data/runs/",
           "(docs/testbed.md says how the runs are made and what the protocol is). Every number is re-parsed",
           "from the raw logs (testbed/parse_log.py). Memory: llama.cpp's own end-of-run breakdown",
           "(`self` = model + context + compute) against the emulated budget of each device; `free` is what the",
           "driver reported at exit (ballast held the rest); under `emul:` the devices are virtual devices of one",
           "GPU, so per-device free is not meaningful and `left` = budget − self; under `gpu:` each device is its",
           "own physical GPU. Host `self` counts the whole memory-mapped GGUF when any weight stays on the CPU",
           "under mmap.", ""]
    if not scen:
        out.append("(no runs in data/runs yet)")
    out += calls_table(scen)
    out += verdict_tables(scen, overhead)
    for name in sorted(scen):
        out += scenario_table(name, scen[name], preds, ov_min)
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
