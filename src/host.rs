//! Host descriptions (hardware/*.toml): GPUs with total and usable memory, bandwidths, PCIe,
//! host RAM.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// A device as llama.cpp names it. GPUs are numbered in llama.cpp's device order (CUDA0, CUDA1…).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeviceId {
    Gpu(usize),
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    /// Marketing name, e.g. "NVIDIA GeForce RTX 4090".
    pub model: String,
    pub total_mib: u64,
    /// Memory llama.cpp will find free at load time (total minus display, other processes).
    pub usable_mib: u64,
    /// Spec memory bandwidth, GB/s (the speed model scales it by a calibrated efficiency).
    pub bandwidth_gbs: f64,
    /// Host↔device link, GB/s per direction (PCIe gen × width).
    pub pcie_gbs: f64,
    /// Where the numbers came from (datasheet, NVML, emulation).
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ram {
    pub total_mib: u64,
    pub usable_mib: u64,
    pub bandwidth_gbs: f64,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub gpus: Vec<Gpu>,
    pub ram: Ram,
}

impl Host {
    pub fn load(path: &Path) -> anyhow::Result<Host> {
        let text = crate::fsio::read_text(path, crate::fsio::HOST)?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad host file {}: {e}", path.display()))
    }
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
        for (i, g) in h.gpus.iter().enumerate() {
            anyhow::ensure!(
                g.usable_mib <= g.total_mib,
                "host {origin}: GPU {i} ({}) has usable_mib {} > total_mib {}",
                g.model,
                g.usable_mib,
                g.total_mib
            );
        }
        Ok(h)
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

    /// GPU index of a llama.cpp device name (`CUDA1`, case-insensitive).
    pub fn gpu_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        (0..self.gpus.len()).find(|i| format!("cuda{i}") == lower)
    }
}

/// The users' host (RTX 4090 + RTX 5070 Ti + 64 GB DDR4), from hardware/ (embedded).
pub fn default_host() -> Host {
    Host::by_name_or_path(DEFAULT_HOST).expect("shipped default host parses")
}
