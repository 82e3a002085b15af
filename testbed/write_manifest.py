#!/usr/bin/env python3
"""Write OUTDIR/<run>/manifest.json for one testbed run (called by run-matrix.sh; values via env).
The format is described in testbed/MANIFEST.md."""
import json
import os
import sys

e = os.environ
d = sys.argv[1]
measured_path = os.path.join(d, "measured.json")
m = json.load(open(measured_path))
rc = int(e["RC"])
manifest = {
    "schema": 1,
    "run_id": e["RUN_ID"],
    "model": e["MODEL"],
    "model_file_bytes": os.path.getsize(e["MPATH"]) if os.path.exists(e["MPATH"]) else None,
    "placement": e["PLACEMENT"],
    "host": e["HOST"],
    "host_targets_mib": [int(x) for x in e["HOST"].split(":", 1)[1].replace("+slow", "").split(",")],
    "slowdown": e["HOST"].endswith("+slow"),
    # run-matrix.sh streams the copies on the last physical GPU of a gpu: host, on GPU 0 under emul:
    "slowdown_gpu": ((len(e["HOST"].split(",")) - 1 if e["KIND"] == "gpu" else 0)
                     if e["HOST"].endswith("+slow") else None),
    "emulation": e["KIND"],
    "env": e["ENVS"].split(),
    "ballast_free_mib": [int(x) for x in e["BFREE"].split(",") if x.strip().isdigit()],
    "ctx": int(e["CTX"]),
    "prompt_tokens_target": int(e["PROMPT_N"]),
    "n_gen": int(e["N_GEN"]),
    "flags": e["FLAGS"].split(),
    "emulation_flags": e["EMUL_FLAGS"].split(),
    "binary": "llama-completion",
    "call": e.get("CALL", ""),
    "time_box_s": int(e["TIME_BOX"]) if e.get("TIME_BOX", "").isdigit() else None,
    "argv": ["llama-completion"] + e["ARGV"].replace(e["BIN"] + "/", "").split(),
    "llama_cpp": {
        "source": "llama-cpp-python 0.3.36 sdist, vendor/llama.cpp",
        "version": " ".join(e["BUILD_INFO"].split()),
        "build": "testbed/build.sh: -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 Release",
    },
    "gpu": e["GPU_INFO"].strip(";"),
    "cpu_cores": os.cpu_count(),
    "rc": rc,
    "timed_out": rc in (124, 137),
    "wall_s": round(int(e["WALL_NS"]) / 1e9, 2),
    "peak_used_mib_physical": [int(x) for x in e["PEAK"].split(",") if x.strip().isdigit()],
    # the CPU-side emulation (testbed/host-emul.sh) or null; the machine start the run belongs to
    "host_emulation": json.loads(e.get("HOST_EMUL") or "null"),
    "boot_id": open("/proc/sys/kernel/random/boot_id").read().strip() if os.path.exists("/proc/sys/kernel/random/boot_id") else None,
    "measured": m,
}
with open(os.path.join(d, "manifest.json"), "w") as fh:
    json.dump(manifest, fh, indent=1)
os.remove(measured_path)
print(f"[{manifest['run_id']}] rc={rc} wall={manifest['wall_s']}s prefill={m['prefill_tps']} "
      f"({m['prompt_tokens']} tok) decode={m['decode_tps']} oom={m['oom']}", flush=True)
