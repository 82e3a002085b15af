//! Host descriptions (hardware/*.toml): GPUs with total and usable memory, bandwidths, PCIe,
//! host RAM.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::path::Path;

/// A device as llama.cpp names it. GPUs are numbered in llama.cpp's device order (CUDA0, CUDA1…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeviceId {
    /// A GPU, by its index in llama.cpp's device order (`CUDA<i>`).
    Gpu(usize),
    /// The CPU and host RAM (buffer type `CPU`).
    Cpu,
}

impl DeviceId {
    /// The buffer-type name llama.cpp accepts in `-ot` (CUDA0, CUDA1, CPU).
    pub fn buft_name(self) -> String {
        match self {
            DeviceId::Gpu(i) => format!("CUDA{i}"),
            DeviceId::Cpu => "CPU".to_string(),
        }
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.buft_name())
    }
}

/// One GPU of a host file (`[[gpus]]`), in llama.cpp's device order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// Marketing name, e.g. "NVIDIA GeForce RTX 4090".
    pub model: String,
    /// Total device memory, MiB.
    pub total_mib: u64,
    /// Memory llama.cpp will find free at load time (total minus display, other processes).
    pub usable_mib: u64,
    /// Spec memory bandwidth, GB/s (the speed model scales it by a calibrated efficiency).
    /// Missing reads as 0, which [`Host::validate`] refuses with a message saying what to write.
    #[serde(default)]
    pub bandwidth_gbs: f64,
    /// Host↔device link, GB/s per direction (PCIe gen × width).
    #[serde(default)]
    pub pcie_gbs: f64,
    /// Where the numbers came from (datasheet, NVML, emulation).
    #[serde(default)]
    pub source: String,
    /// Free memory llama.cpp reads from the device at load when it is more than `usable_mib`:
    /// a virtual device of the testbed (`GGML_CUDA_DEVICES`, docs/testbed.md) shows its share of
    /// the physical GPU's free memory (`ggml-cuda.cu: ggml_backend_cuda_get_device_memory`),
    /// whatever budget the host file gives it. `--fit` subtracts its `-fitt` targets from this
    /// (src/fitsim.rs); placer's own plans keep to `usable_mib`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_free_mib: Option<u64>,
    /// Set for a device of another machine that llama.cpp reaches through an `rpc-server`
    /// (`--rpc`); absent for a local GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<RpcDevice>,
}

/// A device behind a llama.cpp `rpc-server` (`[gpus.rpc]`) and the network link to it.
///
/// llama.cpp lists RPC devices before the local GPUs (`src/llama.cpp:
/// llama_prepare_model_devices`: "add RPC servers at the front of the list"), numbers them
/// `RPC0, RPC1…` over all servers in `--rpc` order (`ggml/src/ggml-rpc/ggml-rpc.cpp:
/// ggml_backend_rpc_add_server`), and names each one's buffer type `RPC<d>[host:port]` with `d`
/// the server's own device index (`ggml_backend_rpc_buffer_type`); `-ot` takes that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcDevice {
    /// `host:port` of the rpc-server, as `--rpc` takes it.
    pub endpoint: String,
    /// The server's own index of this device (0 for a server with one device).
    #[serde(default)]
    pub device: u32,
    /// Buffer alignment of the remote device, bytes (`RPC_CMD_GET_ALIGNMENT`; CPU 32, CUDA 128).
    #[serde(default = "default_rpc_alignment")]
    pub alignment: u64,
    /// The remote backend pads quantized rows to 512 columns like CUDA/HIP does
    /// (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type_get_alloc_size` asks the server, whose
    /// CUDA buffer type adds the padding; a CPU or Vulkan server returns `ggml_nbytes`).
    #[serde(default)]
    pub row_padding: bool,
    /// What computes on the remote device: `cpu` for an rpc-server running its CPU backend
    /// (`rpc-server -d CPU`), `gpu` for a GPU backend (CUDA, HIP, Vulkan, Metal). The protocol
    /// does not say (`ggml-rpc.cpp`: no description command); absent, [`RpcDevice::computes_on_cpu`]
    /// reads it from the alignment the server reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<RpcCompute>,
    /// Client↔server link bandwidth, GB/s per direction (1 GbE 0.125, 10 GbE 1.25).
    pub link_gbs: f64,
    /// One request/response round trip over the link, microseconds.
    pub latency_us: f64,
}

/// What computes on a remote device ([`RpcDevice::compute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpcCompute {
    /// The rpc-server's CPU backend: every matmul of a prompt runs on the remote cores (an RPC
    /// device has no `offload_op`, `ggml-rpc.cpp: ggml_backend_rpc_device_i`).
    Cpu,
    /// A GPU backend behind the rpc-server.
    Gpu,
}

impl RpcDevice {
    /// The remote device computes on a CPU: as the host file says, else by the alignment the
    /// server reports — 32 bytes without row padding is the CPU buffer type's
    /// (`ggml-impl.h: TENSOR_ALIGNMENT`) and also Metal's (`ggml-metal.cpp:
    /// ggml_backend_metal_buffer_type_shared_get_alignment`), so a Mac behind RPC needs
    /// `compute = "gpu"`; CUDA/HIP report 128 with row padding.
    pub fn computes_on_cpu(&self) -> bool {
        match self.compute {
            Some(c) => c == RpcCompute::Cpu,
            None => self.alignment == crate::llama::CPU_ALIGNMENT && !self.row_padding,
        }
    }
}

fn default_rpc_alignment() -> u64 {
    crate::llama::CPU_ALIGNMENT
}

impl Gpu {
    /// The endpoint of an RPC device; None for a local GPU.
    pub fn endpoint(&self) -> Option<&str> {
        self.rpc.as_ref().map(|r| r.endpoint.as_str())
    }
}

/// The host's RAM (`[ram]`): where CPU weights, CPU-side KV and host buffers live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ram {
    /// Installed RAM, MiB.
    pub total_mib: u64,
    /// RAM llama.cpp may fill (the memory model's host cap), MiB; at most `total_mib`.
    pub usable_mib: u64,
    /// Read bandwidth, GB/s. Missing reads as 0, which [`Host::validate`] refuses.
    #[serde(default)]
    pub bandwidth_gbs: f64,
    /// Where the numbers came from (spec, measurement).
    #[serde(default)]
    pub source: String,
}

/// A machine as a host file (hardware/*.toml) describes it: its GPUs and its RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Short name (`users-4090-5070ti`); OOM-learned margins are recorded under it.
    pub name: String,
    /// Free-text description of the machine.
    #[serde(default)]
    pub description: String,
    /// GPUs in llama.cpp's device order (CUDA0, CUDA1…).
    pub gpus: Vec<Gpu>,
    /// Host RAM.
    pub ram: Ram,
}

impl Host {
    /// A host file a user gave (`--host`): parsed and validated ([`Host::validate`]).
    pub fn load(path: &Path) -> anyhow::Result<Host> {
        let text = crate::fsio::read_text(path, crate::fsio::HOST)?;
        Host::from_toml(&text, &path.display().to_string())
    }

    /// A host file kept with run records (data/runs/…): parsed only. There 0 GB/s means "not
    /// measured" and the readers check `> 0` before using a bandwidth.
    pub fn load_record(path: &Path) -> anyhow::Result<Host> {
        let text = crate::fsio::read_text(path, crate::fsio::HOST)?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad host file {}: {e}", path.display()))
    }
    /// The host as TOML text, in the format [`Host::from_toml`] reads.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("host serializes")
    }
    /// Every device, GPUs first in llama.cpp order, then the CPU.
    pub fn devices(&self) -> Vec<DeviceId> {
        (0..self.gpus.len())
            .map(DeviceId::Gpu)
            .chain([DeviceId::Cpu])
            .collect()
    }
}

/// Largest memory size a host file may give, in MiB (2^30 MiB = 2^50 bytes = 1 PiB): far above
/// any GPU or RAM, and small enough that byte counts (`mib × 2^20`) and sums over devices never
/// overflow 64 bits.
pub const MAX_MEMORY_MIB: u64 = 1 << 30;
/// Largest bandwidth a host file may give, GB/s (HBM3e is ~5,000; 10^6 catches unit mistakes).
pub const MAX_BANDWIDTH_GBS: f64 = 1e6;

const GPU_BW_HINT: &str = "the GPU's memory bandwidth from its datasheet (RTX 4090: 1008.0), or \
run `placer host detect` on that machine";
const RPC_BW_HINT: &str = "the memory bandwidth of the machine behind that rpc-server (RPC cannot \
report it: for a CPU, its RAM read bandwidth, e.g. DDR4-3200 dual channel 51.2 or what `placer host \
detect` measures there; for a GPU its datasheet's); `host detect --rpc` leaves it 0 for you to fill in";
const PCIE_HINT: &str = "the host link per direction (PCIe 4.0 x16: 31.5, PCIe 5.0 x16: 63.0)";
const RAM_BW_HINT: &str = "the RAM read bandwidth, measured by `placer host detect` (without \
--no-measure-ram) or from the memory's spec (DDR4-3200 dual channel: 51.2, DDR5-6000 dual \
channel: 96.0)";

fn sizes(origin: &str, at: &str, total: u64, usable: u64, what: &str) -> anyhow::Result<()> {
    for (key, v) in [("total_mib", total), ("usable_mib", usable)] {
        anyhow::ensure!(
            v > 0,
            "host file {origin}: {at} {key} = 0: {what} memory must be a positive number of MiB; \
             write what llama.cpp will find free (for a GPU: nvidia-smi's free memory, minus what \
             the display and other programs keep)"
        );
        anyhow::ensure!(
            v <= MAX_MEMORY_MIB,
            "host file {origin}: {at} {key} = {v} MiB is beyond any real {what} (at most \
             {MAX_MEMORY_MIB} MiB = 1 PiB); the value is in MiB, not bytes"
        );
    }
    anyhow::ensure!(
        usable <= total,
        "host file {origin}: {at} usable_mib {usable} > total_mib {total}: usable memory is part \
         of the total; lower usable_mib or correct total_mib"
    );
    Ok(())
}

fn rate(origin: &str, at: &str, key: &str, v: f64, hint: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        v.is_finite() && v > 0.0 && v <= MAX_BANDWIDTH_GBS,
        "host file {origin}: {at} {key} = {v} (or missing): it must be a positive, finite number \
         of GB/s at most {MAX_BANDWIDTH_GBS}; write {hint}"
    );
    Ok(())
}

/// Host files shipped in hardware/, embedded so that they work from any directory.
pub const BUILTIN_HOSTS: &[(&str, &str)] = &[
    (
        "users-4090-5070ti",
        include_str!("../hardware/users-4090-5070ti.toml"),
    ),
    ("single-24gb", include_str!("../hardware/single-24gb.toml")),
    (
        "testbed-h200x2-emulated",
        include_str!("../hardware/testbed-h200x2-emulated.toml"),
    ),
    (
        "testbed-h200-24gb",
        include_str!("../hardware/testbed-h200-24gb.toml"),
    ),
    (
        "bench-8x3090",
        include_str!("../hardware/bench-8x3090.toml"),
    ),
];

/// The name of the default host (the users' workstation).
pub const DEFAULT_HOST: &str = "users-4090-5070ti";

impl Host {
    /// Parse a host description (TOML text); `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> anyhow::Result<Host> {
        let h: Host =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("bad host file {origin}: {e}"))?;
        h.validate(origin)?;
        Ok(h)
    }

    /// Every number the memory and speed models divide by or add up: sizes positive and at most
    /// [`MAX_MEMORY_MIB`], usable ≤ total, bandwidths positive and finite (0, NaN or inf would
    /// make a device's reads free and any placement look fast). The error names the file, the
    /// key and what to write instead.
    pub fn validate(&self, origin: &str) -> anyhow::Result<()> {
        for (i, g) in self.gpus.iter().enumerate() {
            let at = format!(
                "[[gpus]] #{} ({})",
                i + 1,
                crate::units::shown(&g.model, 60)
            );
            sizes(origin, &at, g.total_mib, g.usable_mib, "GPU")?;
            let bw_hint = if g.rpc.is_some() {
                RPC_BW_HINT
            } else {
                GPU_BW_HINT
            };
            rate(origin, &at, "bandwidth_gbs", g.bandwidth_gbs, bw_hint)?;
            match &g.rpc {
                None => rate(origin, &at, "pcie_gbs", g.pcie_gbs, PCIE_HINT)?,
                Some(r) => validate_rpc(origin, &at, r)?,
            }
        }
        self.validate_rpc_order(origin)?;
        sizes(
            origin,
            "[ram]",
            self.ram.total_mib,
            self.ram.usable_mib,
            "host RAM",
        )?;
        rate(
            origin,
            "[ram]",
            "bandwidth_gbs",
            self.ram.bandwidth_gbs,
            RAM_BW_HINT,
        )
    }

    /// A shipped host by name (`users-4090-5070ti`, …) or a path to a host TOML file.
    pub fn by_name_or_path(spec: &str) -> anyhow::Result<Host> {
        if let Some((name, text)) = BUILTIN_HOSTS.iter().find(|(n, _)| *n == spec) {
            return Host::from_toml(text, name);
        }
        let path = Path::new(spec);
        if path.exists() {
            let text = crate::fsio::read_text(path, crate::fsio::HOST)?;
            return Host::from_toml(&text, &path.display().to_string());
        }
        let names: Vec<&str> = BUILTIN_HOSTS.iter().map(|(n, _)| *n).collect();
        anyhow::bail!(
            "unknown host {spec:?}: not a shipped host ({}) and no such file",
            names.join(", ")
        )
    }

    /// GPU index of a llama.cpp device name (`CUDA1`, `RPC0`, case-insensitive).
    pub fn gpu_by_name(&self, name: &str) -> Option<usize> {
        (0..self.gpus.len()).find(|&i| {
            self.device_name(DeviceId::Gpu(i))
                .eq_ignore_ascii_case(name)
        })
    }

    /// RPC devices of the host; they come first in llama.cpp's device order.
    pub fn n_rpc(&self) -> usize {
        self.gpus.iter().filter(|g| g.rpc.is_some()).count()
    }

    /// The device is reached through an rpc-server.
    pub fn is_rpc(&self, d: DeviceId) -> bool {
        matches!(d, DeviceId::Gpu(i) if self.gpus.get(i).is_some_and(|g| g.rpc.is_some()))
    }

    /// The device name llama.cpp prints and `-dev` takes: `RPC<k>` for the k-th RPC device,
    /// `CUDA<i>` for the i-th local GPU, `CPU`.
    pub fn device_name(&self, d: DeviceId) -> String {
        let n_rpc = self.n_rpc();
        match d {
            DeviceId::Gpu(i) if i < n_rpc => format!("RPC{i}"),
            DeviceId::Gpu(i) => format!("CUDA{}", i - n_rpc),
            DeviceId::Cpu => "CPU".to_string(),
        }
    }

    /// The buffer-type name `-ot` takes: `RPC<d>[host:port]` for an RPC device
    /// (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type`), else the device name.
    pub fn buft_name(&self, d: DeviceId) -> String {
        match d {
            DeviceId::Gpu(i) => match self.gpus.get(i).and_then(|g| g.rpc.as_ref()) {
                Some(r) => format!("RPC{}[{}]", r.device, r.endpoint),
                None => self.device_name(d),
            },
            DeviceId::Cpu => "CPU".to_string(),
        }
    }

    /// The `--rpc` list: each server once, in device order.
    pub fn rpc_servers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.gpus.iter().filter_map(|g| g.endpoint()) {
            if !out.iter().any(|x| x == e) {
                out.push(e.to_string());
            }
        }
        out
    }

    /// llama.cpp's order: RPC devices first, each server's devices together and in the server's
    /// own order (0, 1, …), servers in `--rpc` order.
    fn validate_rpc_order(&self, origin: &str) -> anyhow::Result<()> {
        let n_rpc = self.n_rpc();
        if let Some(i) = self.gpus[..n_rpc].iter().position(|g| g.rpc.is_none()) {
            anyhow::bail!(
                "host file {origin}: [[gpus]] #{} is local but comes before an RPC device: \
                 llama.cpp puts RPC devices first (src/llama.cpp: llama_prepare_model_devices), \
                 so list every [[gpus]] with a [gpus.rpc] table before the local GPUs",
                i + 1
            );
        }
        let mut seen: Vec<&str> = Vec::new();
        let mut next = 0u32;
        for (i, g) in self.gpus[..n_rpc].iter().enumerate() {
            let r = g.rpc.as_ref().expect("RPC prefix");
            if seen.last() != Some(&r.endpoint.as_str()) {
                anyhow::ensure!(
                    !seen.contains(&r.endpoint.as_str()),
                    "host file {origin}: [[gpus]] #{}: the devices of {} are not listed \
                     together; llama.cpp numbers a server's devices consecutively \
                     (ggml-rpc.cpp: ggml_backend_rpc_add_server)",
                    i + 1,
                    r.endpoint
                );
                seen.push(&r.endpoint);
                next = 0;
            }
            anyhow::ensure!(
                r.device == next,
                "host file {origin}: [[gpus]] #{}: {} device {} where device {next} is expected: \
                 list each server's devices in its own order, 0, 1, …",
                i + 1,
                r.endpoint,
                r.device
            );
            next += 1;
        }
        Ok(())
    }
}

/// `host:port` with a port, a link bandwidth and a latency that the speed model can use.
fn validate_rpc(origin: &str, at: &str, r: &RpcDevice) -> anyhow::Result<()> {
    let port = r
        .endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| (!h.is_empty()).then_some(p))
        .and_then(|p| p.parse::<u16>().ok());
    anyhow::ensure!(
        port.is_some_and(|p| p > 0) && !r.endpoint.contains(','),
        "host file {origin}: {at} rpc.endpoint = {:?}: write host:port as `--rpc` takes it \
         (192.168.1.20:50052)",
        crate::units::shown(&r.endpoint, 60)
    );
    rate(
        origin,
        at,
        "rpc.link_gbs",
        r.link_gbs,
        "the link to that machine per direction (1 GbE: 0.125, 10 GbE: 1.25), or run \
         `placer host detect --rpc HOST:PORT`",
    )?;
    anyhow::ensure!(
        r.latency_us.is_finite() && r.latency_us > 0.0 && r.latency_us <= 1e7,
        "host file {origin}: {at} rpc.latency_us = {}: write the round-trip time to that machine \
         in microseconds (ping's rtt × 1000; a LAN is 100–500), or run `placer host detect --rpc`",
        r.latency_us
    );
    anyhow::ensure!(
        r.alignment.is_power_of_two() && r.alignment <= 1 << 20,
        "host file {origin}: {at} rpc.alignment = {}: the remote buffer alignment is a power of \
         two (CPU 32, CUDA 128); leave it out for a CPU rpc-server",
        r.alignment
    );
    Ok(())
}

/// The users' host (RTX 4090 + RTX 5070 Ti + 64 GB DDR4), from hardware/ (embedded).
pub fn default_host() -> Host {
    Host::by_name_or_path(DEFAULT_HOST).expect("shipped default host parses")
}
