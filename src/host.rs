//! Host descriptions (hardware/*.toml): GPUs with total and usable memory, bandwidths, PCIe,
//! host RAM. OWNER: memory helper (format), testbed helper (NVML detection in `cli::host`).

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
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read host file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad host file {}: {e}", path.display()))
    }
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("host serializes")
    }
    /// Every device, GPUs first in llama.cpp order, then the CPU.
    pub fn devices(&self) -> Vec<DeviceId> {
        (0..self.gpus.len()).map(DeviceId::Gpu).chain([DeviceId::Cpu]).collect()
    }
}
