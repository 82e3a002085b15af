#!/usr/bin/env python3
"""Hold GPU memory so that llama.cpp finds exactly TARGET MiB free on the physical GPU.

usage: ballast.py TARGET_MIB READY_FILE
Allocates (free - TARGET) with plain cudaMalloc through torch (no managed memory), trims it in
2 MiB steps until the driver reports TARGET +- 2 MiB free, writes "<free_mib>" to READY_FILE and
sleeps until killed. This emulates a host whose GPU has TARGET MiB usable
(docs/testbed.md, "Emulating a smaller host").
"""
import sys
import time

import torch

MIB = 1024 * 1024


def free_mib() -> float:
    free, _ = torch.cuda.mem_get_info(0)
    return free / MIB


def main() -> None:
    target = int(sys.argv[1])
    ready = sys.argv[2]
    torch.cuda.init()
    torch.cuda.set_per_process_memory_fraction(1.0)
    held = []
    # one big block first, then 2 MiB steps (the caching allocator rounds to 2 MiB)
    excess = free_mib() - target
    if excess < 0:
        print(f"ballast: only {free_mib():.0f} MiB free, cannot leave {target}", file=sys.stderr)
        sys.exit(2)
    big = int(excess) - 64
    if big > 0:
        held.append(torch.empty(big * MIB, dtype=torch.uint8, device="cuda"))
    for _ in range(200):
        f = free_mib()
        if f - target < 2:
            break
        held.append(torch.empty(2 * MIB, dtype=torch.uint8, device="cuda"))
    torch.cuda.synchronize()
    f = free_mib()
    with open(ready, "w") as fh:
        fh.write(f"{f:.0f}\n")
    print(f"ballast: holding {sum(t.numel() for t in held) / MIB:.0f} MiB, free now {f:.0f} MiB (target {target})", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
