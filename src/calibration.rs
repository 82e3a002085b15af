//! The calibration types: constants the memory and speed models leave open, fitted from measured
//! runs by `calibrate`. A leaf below `memory`: the models read these values, `calibrate` writes
//! them. `Calibration::shipped()` loads data/calibration.toml (embedded).

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// Per-GPU constants learned from runs ("unaccounted" overhead, OOM margins, bandwidth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuCalibration {
    /// Matches `Gpu::model` (or "*" for any).
    pub model: String,
    /// CUDA context, cuBLAS, pool: llama.cpp's "unaccounted" memory on this GPU model, MiB.
    pub overhead_mib: f64,
    /// Effective fraction of spec bandwidth reached by decode.
    pub bandwidth_efficiency: f64,
    /// Extra margin after an OOM on this device, MiB.
    #[serde(default)]
    pub oom_margin_mib: f64,
    /// Decode constants of hosts whose (first) GPU is this model, fitted from runs there
    /// (fit.rs `fit_decode`); `None` = use the global `[speed]` values (priors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_speed: Option<HostSpeed>,
    /// Decode attention cost on this GPU model, bytes-equivalent per attention flop
    /// (speed.rs: seconds per flop = this / spec bandwidth); 0 = not fitted (use the prior).
    #[serde(default)]
    pub attn_bytes_per_flop: f64,
    /// The same for prefill (prompt at its average depth); 0 = not fitted.
    #[serde(default)]
    pub prefill_attn_bytes_per_flop: f64,
    /// Decode and prefill costs of wide (MLA) attention (speed.rs `wide_attention`: CUDA's MMA
    /// flash-attention kernel), bytes-equivalent per flop; 0 = not fitted.
    #[serde(default)]
    pub wide_attn_bytes_per_flop: f64,
    /// The same for prefill; 0 = not fitted.
    #[serde(default)]
    pub prefill_wide_attn_bytes_per_flop: f64,
    /// Decode: fixed seconds per wide-attention (MLA) layer on this GPU model; 0 = not fitted.
    #[serde(default)]
    pub wide_attn_layer_s: f64,
}

/// Decode constants fitted on one kind of host (keyed by its GPU model): fixed cost per token,
/// per graph node (kernel launches), per graph split, and the CPU's fraction of its RAM bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSpeed {
    /// Fixed decode cost per token, seconds.
    pub per_token_s: f64,
    /// Decode cost per graph node (kernel launches), seconds.
    pub per_node_s: f64,
    /// Decode cost per graph split (cross-device hand-off), seconds.
    pub per_split_s: f64,
    /// Fraction of the RAM bandwidth the CPU reaches reading weights.
    pub cpu_bandwidth_efficiency: f64,
    /// Runs the values were fitted from.
    pub n_runs: usize,
    /// Prefill on this host: fixed cost per prompt token, and the fraction of PCIe spec reached
    /// when CPU-resident weights stream to the GPU (fit.rs `fit_prefill`); 0 = not fitted.
    #[serde(default)]
    pub prefill_per_token_s: f64,
    /// Fraction of the PCIe spec reached when CPU weights stream to the GPU; 0 = not fitted.
    #[serde(default)]
    pub pcie_efficiency: f64,
    /// Decode attention on the CPU (layers with KV in RAM), bytes-equivalent per attention flop
    /// of the RAM bandwidth (speed.rs); 0 = not fitted on this host (use the `[speed]` prior).
    #[serde(default)]
    pub cpu_attn_bytes_per_flop: f64,
    /// The same for prefill; 0 = not fitted.
    #[serde(default)]
    pub prefill_cpu_attn_bytes_per_flop: f64,
    /// CPU attention per (query head, cached cell) pair (speed.rs `attn_head_cells`), decode and
    /// prefill, bytes-equivalent of the RAM bandwidth; 0 = not fitted (use the `[speed]` prior).
    #[serde(default)]
    pub cpu_attn_bytes_per_head_cell: f64,
    /// The same for prefill; 0 = not fitted.
    #[serde(default)]
    pub prefill_cpu_attn_bytes_per_head_cell: f64,
    /// Prefill: effective fraction of PCIe spec on CPU routed-expert bytes counted whole (only
    /// the experts a ubatch uses are copied, so this folds in routing diversity); 0 = not
    /// fitted (speed.rs then uses `pcie_efficiency`).
    #[serde(default)]
    pub pcie_expert_efficiency: f64,
}

/// The speed model's global constants (`[speed]`): the priors for hosts and GPUs without fitted
/// values.
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
    /// Prefill cost per prompt token beyond streaming CPU weights over PCIe, seconds.
    #[serde(default)]
    pub prefill_per_token_s: f64,
    /// Cost per node of the token-generation graph (kernel launches), seconds.
    #[serde(default)]
    pub per_node_s: f64,
    /// Attention costs as bytes-equivalent per attention flop of the device's spec memory
    /// bandwidth (speed.rs), priors for GPUs / hosts without fitted values: decode on a GPU,
    /// decode on the CPU, prefill on a GPU, prefill on the CPU. 0 = no prior.
    #[serde(default)]
    pub gpu_attn_bytes_per_flop: f64,
    /// Prior: decode attention on the CPU.
    #[serde(default)]
    pub cpu_attn_bytes_per_flop: f64,
    /// Prior: prefill attention on a GPU.
    #[serde(default)]
    pub prefill_gpu_attn_bytes_per_flop: f64,
    /// Prior: prefill attention on the CPU.
    #[serde(default)]
    pub prefill_cpu_attn_bytes_per_flop: f64,
    /// Priors for wide (MLA) attention on a GPU, decode and prefill. 0 = no prior.
    #[serde(default)]
    pub gpu_wide_attn_bytes_per_flop: f64,
    /// Prior: prefill wide (MLA) attention on a GPU.
    #[serde(default)]
    pub prefill_gpu_wide_attn_bytes_per_flop: f64,
    /// Prior: decode seconds per wide-attention (MLA) layer on a GPU. 0 = no prior.
    #[serde(default)]
    pub gpu_wide_attn_layer_s: f64,
    /// Priors: CPU attention per (query head, cached cell) pair, bytes-equivalent of the RAM
    /// bandwidth, decode and prefill. 0 = no prior.
    #[serde(default)]
    pub cpu_attn_bytes_per_head_cell: f64,
    /// Prior: the same for prefill.
    #[serde(default)]
    pub prefill_cpu_attn_bytes_per_head_cell: f64,
    /// Prior: prefill matmuls on a CPU behind an rpc-server (no op offload there: every prompt
    /// token's weights are multiplied on the remote cores), bytes-equivalent per matmul flop of
    /// that device's `bandwidth_gbs` (speed.rs `PrefillLoad::gpu_matmul_flops`). 0 = not priced.
    #[serde(default)]
    pub rpc_cpu_matmul_bytes_per_flop: f64,
}

/// Compute-buffer coefficients (bytes) for terms llama.cpp's graph leaves to measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeConstants {
    /// Scale on the MoE activation term.
    pub moe_scale: f64,
    /// Fixed extra bytes per GPU compute buffer.
    pub fixed_mib: f64,
}

/// Memory each profile keeps free on every device, MiB (learned from memory-prediction errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margins {
    /// Margin of the aggressive profile, MiB.
    pub aggressive_mib: f64,
    /// Margin of the moderate profile, MiB.
    pub moderate_mib: f64,
}

/// Every fitted constant of the memory and speed models (data/calibration.toml, or the user's
/// file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// llama.cpp build and host the constants came from.
    pub llama_build: String,
    /// Host the constants came from (a host name or a testbed label such as `gpu:24000`).
    pub host: String,
    /// Runs the constants were fitted from.
    pub n_runs: usize,
    /// Per-GPU-model constants (`*` matches any model).
    pub gpus: Vec<GpuCalibration>,
    /// Speed-model priors (`[speed]`).
    pub speed: SpeedConstants,
    /// Compute-buffer coefficients.
    pub compute: ComputeConstants,
    /// Profile margins.
    pub margins: Margins,
    /// Extra margin on one device of one host after an OOM there (learned from OOM logs), so
    /// that the profile that failed is not proposed again.
    #[serde(default)]
    pub device_margins: Vec<DeviceMargin>,
    /// Where each value came from (fitted from N points, or a prior and its source).
    #[serde(default)]
    pub provenance: std::collections::BTreeMap<String, String>,
    /// Per kind of host, scale factors on the speed model's terms learned from a few runs
    /// (calibrate/learn.rs: a prior-plus-data fit, shrunk toward 1); empty = none learned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_factors: Vec<HostFactors>,
}

/// Multiplicative factors on the speed model's terms for one kind of host (keyed like
/// `GpuCalibration::host_speed`: the model of its first GPU), learned by `calibrate::learn` from
/// that host's runs where too few exist for the full fit. 1 = the constants as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFactors {
    /// The host's first GPU model (`Gpu::model`).
    pub host_gpu: String,
    /// Decode: weights, KV and attention on the GPUs.
    pub decode_gpu: f64,
    /// Decode: weights, KV and attention on the CPU.
    pub decode_cpu: f64,
    /// Decode: fixed per-token costs (graph nodes, cross-device splits).
    pub decode_handoff: f64,
    /// Prefill: the per-token cost and attention on the GPUs.
    pub prefill_gpu: f64,
    /// Prefill: attention on the CPU.
    pub prefill_cpu: f64,
    /// Prefill: CPU weights streamed to the GPU (PCIe).
    pub prefill_pcie: f64,
    /// Decode runs the factors were learned from.
    pub n_decode_runs: usize,
    /// Prefill runs the factors were learned from.
    pub n_prefill_runs: usize,
}

/// An OOM-learned margin for one device of one host (`host` = `Host::name`, `device` = CUDA1…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMargin {
    /// The host's name (`Host::name`) or testbed label.
    pub host: String,
    /// llama.cpp device name (`CUDA0`, `CUDA1`…).
    pub device: String,
    /// Extra memory kept free on that device, MiB.
    pub extra_mib: f64,
    /// The run (log) that raised it.
    #[serde(default)]
    pub from: String,
}

impl Calibration {
    /// The calibration shipped in data/calibration.toml.
    pub fn shipped() -> Calibration {
        toml::from_str(include_str!("../data/calibration.toml"))
            .expect("shipped calibration parses")
    }

    /// The user's calibration (`placer calibrate` on their own runs) when present, else the
    /// shipped one. A user file that does not parse is reported on stderr and ignored.
    pub fn load() -> Calibration {
        if let Some(p) = Self::user_path().filter(|p| p.is_file()) {
            match Self::from_file(&p) {
                Ok(c) => return c,
                Err(e) => eprintln!("warning: {e:#}; using the shipped calibration"),
            }
        }
        Self::shipped()
    }

    /// `$PLACER_CALIBRATION`, else `$XDG_CONFIG_HOME/placer/calibration.toml`, else
    /// `~/.config/placer/calibration.toml`.
    pub fn user_path() -> Option<std::path::PathBuf> {
        if let Some(p) = crate::env::path(crate::env::CALIBRATION) {
            return Some(p);
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config"))
            })?;
        Some(base.join("placer").join("calibration.toml"))
    }

    /// Read a calibration file; the error says how to regenerate it.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Calibration> {
        let text = crate::fsio::read_text(path, crate::fsio::CALIBRATION)?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "calibration {} does not parse ({e}); rerun `placer calibrate LOGS --out {}`",
                path.display(),
                path.display()
            )
        })
    }

    /// The calibration as TOML text (the data/calibration.toml format).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("calibration serializes")
    }

    /// Margin (MiB) to keep free on each GPU of `host` for a profile: the profile's margin plus
    /// what OOMs taught about that GPU model and that very device.
    pub fn gpu_margins_mib(&self, aggressive: bool, host: &crate::host::Host) -> Vec<f64> {
        let base = if aggressive {
            self.margins.aggressive_mib
        } else {
            self.margins.moderate_mib
        };
        host.gpus
            .iter()
            .enumerate()
            .map(|(i, g)| {
                base + self.gpu(&g.model).oom_margin_mib
                    + self.device_extra_mib(&host.name, &format!("CUDA{i}"))
            })
            .collect()
    }

    /// OOM-learned extra margin for one device of one host.
    pub fn device_extra_mib(&self, host: &str, device: &str) -> f64 {
        self.device_margins
            .iter()
            .filter(|m| m.host == host && m.device == device)
            .map(|m| m.extra_mib)
            .fold(0.0, f64::max)
    }

    /// Constants of a GPU model: its entry, else the `*` entry, else neutral values (no overhead,
    /// full bandwidth).
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
                host_speed: None,
                attn_bytes_per_flop: 0.0,
                prefill_attn_bytes_per_flop: 0.0,
                wide_attn_bytes_per_flop: 0.0,
                prefill_wide_attn_bytes_per_flop: 0.0,
                wide_attn_layer_s: 0.0,
            })
    }

    /// The learned speed factors of hosts whose first GPU is `first_gpu`, if any.
    pub fn host_factors(&self, first_gpu: &str) -> Option<&HostFactors> {
        self.host_factors.iter().find(|f| f.host_gpu == first_gpu)
    }

    /// Host constants for a host whose first GPU is `first_gpu`: those fitted on hosts with
    /// that GPU model, each unfitted (0) term falling back to the global `[speed]` prior.
    pub fn host_speed(&self, first_gpu: &str) -> HostSpeed {
        let s = &self.speed;
        let prior = HostSpeed {
            per_token_s: s.per_token_s,
            per_node_s: s.per_node_s,
            per_split_s: s.per_split_s,
            cpu_bandwidth_efficiency: s.cpu_bandwidth_efficiency,
            n_runs: 0,
            prefill_per_token_s: s.prefill_per_token_s,
            pcie_efficiency: s.pcie_efficiency,
            cpu_attn_bytes_per_flop: s.cpu_attn_bytes_per_flop,
            prefill_cpu_attn_bytes_per_flop: s.prefill_cpu_attn_bytes_per_flop,
            cpu_attn_bytes_per_head_cell: s.cpu_attn_bytes_per_head_cell,
            prefill_cpu_attn_bytes_per_head_cell: s.prefill_cpu_attn_bytes_per_head_cell,
            pcie_expert_efficiency: 0.0,
        };
        let Some(mut h) = self
            .gpus
            .iter()
            .find(|g| g.model == first_gpu)
            .and_then(|g| g.host_speed.clone())
        else {
            return prior;
        };
        // Terms the host's runs could not fit (no CPU layers, no CPU KV, no CPU weights).
        let fill = |v: &mut f64, p: f64| {
            if *v <= 0.0 {
                *v = p;
            }
        };
        fill(
            &mut h.cpu_bandwidth_efficiency,
            prior.cpu_bandwidth_efficiency,
        );
        fill(&mut h.pcie_efficiency, prior.pcie_efficiency);
        fill(
            &mut h.cpu_attn_bytes_per_flop,
            prior.cpu_attn_bytes_per_flop,
        );
        fill(
            &mut h.prefill_cpu_attn_bytes_per_flop,
            prior.prefill_cpu_attn_bytes_per_flop,
        );
        fill(
            &mut h.cpu_attn_bytes_per_head_cell,
            prior.cpu_attn_bytes_per_head_cell,
        );
        fill(
            &mut h.prefill_cpu_attn_bytes_per_head_cell,
            prior.prefill_cpu_attn_bytes_per_head_cell,
        );
        h
    }
}
