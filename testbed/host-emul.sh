#!/usr/bin/env bash
# A host CPU side like the users' (64 GB dual-channel DDR4), sourced by testbed/run-matrix.sh and
# testbed/device-call.sh when TB_HOST_EMUL=ddr4. docs/testbed.md ("A host like the users'") says how
# close it is.
#
#   TB_DDR4_GBS      target host read bandwidth, GB/s (default 38: a measured-read figure for
#                    dual-channel DDR4-3200, whose theoretical peak is 51.2 GB/s; replace it with
#                    `placer host detect` run on the users' own host when they send it)
#   TB_RAM_LIMIT_MIB host RAM llama.cpp may use (default 65536); enforced with a cgroup v2 memory.max
#                    where /sys/fs/cgroup is writable, else recorded as not enforced
#   TB_MBA_PERCENT   optional: a memory-bandwidth allocation (Intel RDT MBA through /sys/fs/resctrl)
#                    for llama.cpp's cores, where the machine exposes it
# Exports: TB_CPU_LIST (cores llama.cpp runs on), TB_THREADS, TB_EMUL_BW_GBS (measured on those
# cores), TB_CGROUP (cgroup dir or ""), TB_HOST_EMUL_JSON (recorded in every manifest), and
# host_emul_exec CMD… (runs CMD on those cores inside the cgroup).
PLACER_BIN=${TB_PLACER:-${PLACER:-placer}}
TARGET=${TB_DDR4_GBS:-38}
RAM_MIB=${TB_RAM_LIMIT_MIB:-65536}
NCPU=$(nproc)
# the smallest number of cores whose parallel read bandwidth reaches the target
# (placer host detect reads with one thread per core it may run on)
TB_THREADS=$NCPU TB_EMUL_BW_GBS=""
bw_table=""
for k in 1 2 3 4 6 8 10 12 16 24 32; do
  (( k > NCPU )) && break
  f=$(mktemp)
  taskset -c 0-$((k - 1)) "$PLACER_BIN" host detect -o "$f" >/dev/null 2>&1 || { rm -f "$f"; continue; }
  bw=$(sed -n '/\[ram\]/,$p' "$f" | awk -F'= ' '/^bandwidth_gbs/{print $2; exit}')
  rm -f "$f"
  bw_table="$bw_table${bw_table:+, }\"$k\": $bw"
  if awk -v b="$bw" -v t="$TARGET" 'BEGIN{exit !(b >= t)}'; then TB_THREADS=$k TB_EMUL_BW_GBS=$bw; break; fi
done
TB_CPU_LIST=0-$((TB_THREADS - 1))
# host RAM: a cgroup v2 with memory.max (swap off inside it)
TB_CGROUP=""
if [ -w /sys/fs/cgroup/cgroup.subtree_control ] || [ -w /sys/fs/cgroup ]; then
  cg=/sys/fs/cgroup/tb-host
  mkdir -p "$cg" 2>/dev/null && echo "+memory" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  if echo "${RAM_MIB}M" > "$cg/memory.max" 2>/dev/null; then
    echo 0 > "$cg/memory.swap.max" 2>/dev/null
    TB_CGROUP=$cg
  fi
fi
# memory bandwidth allocation, where the CPU and the VM expose it
MBA=""
if [ -n "${TB_MBA_PERCENT:-}" ] && grep -q '^MB:' /sys/fs/resctrl/schemata 2>/dev/null; then
  g=/sys/fs/resctrl/tb-host
  mkdir -p "$g" && echo "$TB_CPU_LIST" > "$g/cpus_list" 2>/dev/null \
    && sed -n 's/^ *MB:\(.*\)/\1/p' /sys/fs/resctrl/schemata | tr ';' '\n' | cut -d= -f1 \
       | sed "s/\$/=$TB_MBA_PERCENT/" | paste -sd';' | sed 's/^/MB:/' > "$g/schemata" && MBA=$TB_MBA_PERCENT
fi
TB_HOST_EMUL_JSON="{\"kind\": \"ddr4\", \"target_gbs\": $TARGET, \"threads\": $TB_THREADS, \"cpu_list\": \"$TB_CPU_LIST\", \"measured_gbs\": ${TB_EMUL_BW_GBS:-null}, \"measured_by_cores\": {$bw_table}, \"ram_limit_mib\": $RAM_MIB, \"ram_limit_enforced\": $([ -n "$TB_CGROUP" ] && echo true || echo false), \"mba_percent\": ${MBA:-null}}"
export TB_CPU_LIST TB_THREADS TB_EMUL_BW_GBS TB_CGROUP TB_HOST_EMUL_JSON
echo "host emulation: $TB_HOST_EMUL_JSON"
host_emul_exec() {
  if [ -n "$TB_CGROUP" ]; then
    ( echo $BASHPID > "$TB_CGROUP/cgroup.procs"; exec taskset -c "$TB_CPU_LIST" "$@" )
  else
    taskset -c "$TB_CPU_LIST" "$@"
  fi
}
