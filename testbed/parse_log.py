#!/usr/bin/env python3
"""Pull the measured numbers out of one llama.cpp log (text or .gz): speeds, buffers, OOM.

usage: parse_log.py LOG  -> JSON on stdout
Strings are llama.cpp's own (reference/llamacpp-internals.md §8, §9.2, §11.3):
  common_perf_print:        "prompt eval time = … ms / N tokens (… tokens per second)"
                            "       eval time = … ms / N runs   (… tokens per second)"
  llama_model_loader / load_tensors: "<BUF> model buffer size = X MiB"
  llama_kv_cache:           "<BUF> KV buffer size = X MiB"
  sched_reserve:            "<BUF> compute buffer size = X MiB"
  memory breakdown table:   "| - CUDA0 (H100 …) | total free self model context compute unaccounted |"
"""
import gzip
import json
import re
import sys

RE_PROMPT = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens\s*\(.*?([\d.]+) tokens per second\)")
RE_EVAL = re.compile(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+) (?:runs|tokens)\s*\(.*?([\d.]+) tokens per second\)")
RE_BUF = re.compile(r"\b([A-Za-z_]+\d*(?:_[A-Za-z]+)?) (model|KV|compute|RS) buffer size =\s*([\d.]+) MiB")
RE_BREAK = re.compile(r"\|\s*-\s*(\S+)\s*\((.*?)\)\s*\|\s*(\d+)\s*=\s*(\d+)\s*\+\s*\(\s*(\d+)\s*=\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)\s*\)\s*\+\s*(-?\d+)")
RE_BREAK_HOST = re.compile(r"\|\s*-\s*(Host|CPU\S*)\s*\|\s*(\d+)\s*=\s*(\d+)\s*\+\s*(\d+)\s*\+\s*(\d+)")
OOM_MARKERS = ("out of memory", "failed to allocate", "unable to allocate", "cudaMalloc failed",
               "failed to load model", "failed to create context", "not enough memory")


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as fh:
        return fh.read()


def parse(text):
    out = {"prefill_tps": None, "prompt_tokens": None, "decode_tps": None, "gen_tokens": None,
           "buffers_mib": {}, "breakdown_mib": {}, "oom": False, "oom_lines": []}
    for line in text.splitlines():
        m = RE_PROMPT.search(line)
        if m:
            out["prompt_tokens"] = int(m.group(2))
            out["prefill_tps"] = float(m.group(3))
            continue
        m = RE_EVAL.search(line)
        if m:
            out["gen_tokens"] = int(m.group(2))
            out["decode_tps"] = float(m.group(3))
            continue
        m = RE_BUF.search(line)
        if m:
            key = f"{m.group(1)}.{m.group(2)}"
            # the last value wins: --fit's trial loads print the same lines with 0.00 (no_alloc)
            val = float(m.group(3))
            if val > 0 or key not in out["buffers_mib"]:
                out["buffers_mib"][key] = val
            continue
        m = RE_BREAK.search(line)
        if m:
            out["breakdown_mib"][m.group(1)] = {
                "gpu": m.group(2), "total": int(m.group(3)), "free": int(m.group(4)), "self": int(m.group(5)),
                "model": int(m.group(6)), "context": int(m.group(7)), "compute": int(m.group(8)),
                "unaccounted": int(m.group(9))}
            continue
        m = RE_BREAK_HOST.search(line)
        if m:
            out["breakdown_mib"][m.group(1)] = {"self": int(m.group(2)), "model": int(m.group(3)),
                                                "context": int(m.group(4)), "compute": int(m.group(5))}
            continue
        low = line.lower()
        if any(s in low for s in OOM_MARKERS):
            out["oom"] = True
            if len(out["oom_lines"]) < 5:
                out["oom_lines"].append(line.strip()[:300])
    return out


if __name__ == "__main__":
    print(json.dumps(parse(read(sys.argv[1])), indent=1))
