//! Calibration: constants the memory and speed models leave open, fitted from measured runs.
//! OWNER: calibrate helper. `Calibration::shipped()` loads data/calibration.toml (embedded).

use serde::{Deserialize, Serialize};

/// Per-GPU constants learned from runs ("unaccounted" overhead, OOM margins, bandwidth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuCalibration {
    /// Matches `Gpu::model` (or "*" for any).
    pub model: String,
    pub overhead_mib: f64,
    /// Effective fraction of spec bandwidth reached by decode.
    pub bandwidth_efficiency: f64,
    /// Extra margin after an OOM on this device, MiB.
    #[serde(default)]
    pub oom_margin_mib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedConstants {
    /// Effective fraction of RAM bandwidth reached when the CPU reads weights.
    pub cpu_bandwidth_efficiency: f64,
    /// Fixed cost per token, seconds.
    pub per_token_s: f64,
    /// Cost per cross-device hand-off (graph split) per token, seconds.
    pub per_split_s: f64,
    /// Effective host→device bandwidth for op-offloaded weights during prefill, GB/s.
    pub pcie_efficiency: f64,
}

/// Compute-buffer coefficients (bytes) for terms llama.cpp's graph leaves to measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeConstants {
    /// Scale on the MoE activation term.
    pub moe_scale: f64,
    /// Fixed extra bytes per GPU compute buffer.
    pub fixed_mib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margins {
    pub aggressive_mib: f64,
    pub moderate_mib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// llama.cpp build and host the constants came from.
    pub llama_build: String,
    pub host: String,
    pub n_runs: usize,
    pub gpus: Vec<GpuCalibration>,
    pub speed: SpeedConstants,
    pub compute: ComputeConstants,
    pub margins: Margins,
}

impl Calibration {
    /// The calibration shipped in data/calibration.toml.
    pub fn shipped() -> Calibration {
        toml::from_str(include_str!("../../data/calibration.toml")).expect("shipped calibration parses")
    }

    pub fn gpu(&self, model: &str) -> GpuCalibration {
        self.gpus
            .iter()
            .find(|g| g.model == model)
            .or_else(|| self.gpus.iter().find(|g| g.model == "*"))
            .cloned()
            .unwrap_or(GpuCalibration {
                model: "*".into(),
                overhead_mib: 0.0,
                bandwidth_efficiency: 1.0,
                oom_margin_mib: 0.0,
            })
    }
}
