#!/usr/bin/env python3
"""Make a GPU slower for llama.cpp: stream device-to-device copies on it until killed.

usage: slowdown.py READY_FILE [MIB_PER_BUFFER]
Two buffers of MIB_PER_BUFFER (default 1024) MiB are copied back and forth in a loop, taking a share
of the GPU's memory bandwidth and copy engines, as a second, slower card would give less. What it
costs llama.cpp is measured, not assumed: the run's t/s with and without it.
"""
import sys

import torch


def main() -> None:
    ready = sys.argv[1]
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    a = torch.empty(mib * 1024 * 1024, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    a.random_()
    torch.cuda.synchronize()
    with open(ready, "w") as fh:
        fh.write("1\n")
    while True:
        for _ in range(100):
            b.copy_(a)
            a.copy_(b)
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
