#!/usr/bin/env python3
"""Write testbed/dryrun/sweep-<model>.txt: the no_alloc dry-run grid for one model.

usage: make-sweep.py MODEL_ID moe|dense
Grid: context × ubatch × KV type × placement. Tags start with d1- (one CUDA device) or d2- (two
virtual devices, GGML_CUDA_DEVICES=2); run-matrix.sh feeds each group to llama-placer-dryrun with
the matching GGML_CUDA_DEVICES. MODEL is replaced by the model path on the device.
"""
import sys

model, kind = sys.argv[1], sys.argv[2]
CTX = [4096, 32768, 131072]
UB = [512, 2048]
KV = ["f16", "q8_0"]
if kind == "moe":
    placements = {
        "d1-gpu": "-ngl 99",
        "d1-cmoe": "-ngl 99 --cpu-moe",
        "d1-ngl24": "-ngl 24",
        "d2-split": "-ngl 99 -ts 24000,12800",
    }
else:
    placements = {
        "d1-gpu": "-ngl 99",
        "d1-ffncpu": "-ngl 99 -ot blk\\..*\\.ffn_(up|down|gate)\\.weight=CPU",
        "d1-ngl24": "-ngl 24",
        "d2-split": "-ngl 99 -ts 24000,12800",
    }
lines = [f"# dry-run grid for {model} ({kind}); written by testbed/make-sweep.py"]
for pname, pflags in placements.items():
    for c in CTX:
        for ub in UB:
            for kv in KV:
                tag = f"{pname}-c{c}-ub{ub}-{kv}"
                lines.append(f"{tag} -m MODEL -c {c} -b {max(2048, ub)} -ub {ub} -ctk {kv} -ctv {kv} -np 1 {pflags}")
with open(f"{sys.path[0]}/dryrun/sweep-{model}.txt", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print(f"{len(lines) - 1} configurations")
