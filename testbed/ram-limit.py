#!/usr/bin/env python3
"""Set the RAM size of host files written by `placer host detect` to a known limit.

usage: ram-limit.py MIB HOST.toml…   (env TB_EMUL_BW_GBS: also set the RAM bandwidth, the figure
testbed/host-emul.sh measured on the cores llama.cpp is given)
For a VM whose /proc/meminfo under-reports (the lent multi-GPU machines start with MemTotal ≈ 31 GiB
and grow it as memory is used, up to their documented limit). The measured bandwidth is kept.
"""
import re
import sys

mib = int(sys.argv[1])
for path in sys.argv[2:]:
    text = open(path).read()
    head, sep, ram = text.partition("[ram]")
    if not sep:
        sys.exit(f"{path}: no [ram] table")
    ram = re.sub(r"(?m)^total_mib = \d+", f"total_mib = {mib}", ram)
    ram = re.sub(r"(?m)^usable_mib = \d+", f"usable_mib = {mib * 15 // 16}", ram)
    bw = __import__("os").environ.get("TB_EMUL_BW_GBS")
    if bw:
        ram = re.sub(r"(?m)^bandwidth_gbs = .*", f"bandwidth_gbs = {float(bw)}", ram)
    ram = re.sub(r'(?m)^source = "(.*)"', lambda m: f'source = "{m.group(1)}; RAM size: the machine\'s documented limit '
                 f'{mib} MiB (MemTotal grows as memory is used), usable 15/16 of it"', ram)
    open(path, "w").write(head + sep + ram)
    print(f"{path}: RAM {mib} MiB")
