//! Memory model: what llama.cpp allocates on each device for a launch command.
//! `resolve` reproduces llama.cpp's placement rules (which device every
//! tensor and every layer's KV lands on); `predict` sizes model / KV / compute / overhead.

#![warn(missing_docs)]

use crate::host::DeviceId;
use serde::{Deserialize, Serialize};

pub mod compute;
pub mod kv;
pub mod predict;
pub mod resolve;
pub mod rules;

pub use predict::{predict, Predictor};
pub use resolve::resolve;
pub use rules::{rules_for, MemoryRules};

/// Stage of start-up at which an allocation fails (llama.cpp's order: weights, KV, compute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Loading the weights.
    Load,
    /// Allocating the KV cache and recurrent state.
    Kv,
    /// Reserving the compute buffers (or the first decode).
    Compute,
}

/// Predicted bytes on one GPU, by kind, and its cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// The GPU.
    pub device: DeviceId,
    /// Weight bytes.
    pub model: u64,
    /// KV cache bytes (attention layers).
    pub kv: u64,
    /// Recurrent state bytes.
    pub rs: u64,
    /// Compute-buffer bytes.
    pub compute: u64,
    /// CUDA context, cuBLAS, pool: llama.cpp's "unaccounted" column (calibrated).
    pub overhead: u64,
    /// Usable memory (what llama.cpp finds free at load).
    pub cap: u64,
}

impl DeviceMemory {
    /// Bytes allocated: weights + KV + recurrent state + compute + overhead.
    pub fn total(&self) -> u64 {
        self.model + self.kv + self.rs + self.compute + self.overhead
    }
    /// Negative when it does not fit.
    pub fn free(&self) -> i64 {
        self.cap as i64 - self.total() as i64
    }
}

/// Host-side buffers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostMemory {
    /// `CPU_Mapped`: mmap'ed file span(s) holding CPU weights (sum over shards).
    pub cpu_mapped: u64,
    /// One `CPU_Mapped` buffer per shard that holds CPU weights, as llama.cpp prints them.
    #[serde(default)]
    pub cpu_mapped_spans: Vec<u64>,
    /// Bytes of CPU weights actually used (Σ nbytes): what page cache / RAM must hold.
    #[serde(default)]
    pub cpu_weights: u64,
    /// Non-mmap CPU weights (`CPU`, `CUDA_Host` with -lm none, `CPU_REPACK`).
    pub cpu_model: u64,
    /// KV cache bytes in host RAM (layers on the CPU, or `-nkvo`).
    pub kv: u64,
    /// Recurrent state bytes in host RAM.
    pub rs: u64,
    /// CUDA_Host / CPU compute buffer.
    pub compute: u64,
    /// Usable host RAM (the host file's `usable_mib`), bytes.
    pub cap: u64,
}

/// Whether a launch fits, or where it first runs out of memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every device stays within its cap.
    Fits,
    /// An allocation fails.
    Oom {
        /// The device that runs out.
        device: DeviceId,
        /// The start-up stage at which it runs out.
        stage: Stage,
        /// Bytes missing on that device.
        short_by: u64,
    },
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Load => "model load",
            Stage::Kv => "KV cache allocation",
            Stage::Compute => "compute-buffer reserve (or first decode)",
        })
    }
}

impl std::fmt::Display for Verdict {
    /// `fits`, or `OOM on CUDA1 by 312 MiB at KV cache allocation`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Fits => f.write_str("fits"),
            Verdict::Oom {
                device,
                stage,
                short_by,
            } => write!(
                f,
                "OOM on {device} by {} MiB at {stage}",
                short_by.div_ceil(crate::units::MIB)
            ),
        }
    }
}

/// Where llama.cpp puts things for a launch command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// Device of each repeating layer 0..n_layer, then the output layer (index n_layer).
    pub layer_device: Vec<DeviceId>,
    /// Device of each tensor (same order as `Anatomy::tensors`).
    pub tensor_device: Vec<DeviceId>,
    /// Override pattern index that matched each tensor, if any.
    pub matched_override: Vec<Option<usize>>,
    /// Overrides that matched no tensor (warned about).
    pub unused_overrides: Vec<usize>,
    /// Tensors the loader never allocates (NextN/MTP blocks), same order as `tensor_device`.
    #[serde(default)]
    pub skipped: Vec<bool>,
    /// Tied embeddings: device of the duplicated `token_embd` used as the output matrix.
    #[serde(default)]
    pub tied_output_device: Option<DeviceId>,
    /// Device of each layer's KV / recurrent state (the layer's device, or CPU with -nkvo).
    #[serde(default)]
    pub kv_device: Vec<DeviceId>,
    /// GPUs llama.cpp uses, in its device order (host GPU indices).
    #[serde(default)]
    pub devices: Vec<usize>,
}

/// Context bookkeeping as `llama_context` computes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextShape {
    /// Context size in cells after padding (`-c`; 0 = the model's training context).
    pub n_ctx: u32,
    /// Cells per KV stream (n_ctx, or n_ctx / n_seq padded when the cache is not unified).
    pub n_ctx_seq: u32,
    /// Sequences (`n_seq_max`: the `-np` slots).
    pub n_seq: u32,
    /// KV streams: 1 with a unified cache, else one per sequence.
    pub n_stream: u32,
    /// Logical batch: min(n_ctx, `-b`).
    pub n_batch: u32,
    /// Micro-batch: min(n_batch, `-ub`), `-ub 0` meaning n_batch.
    pub n_ubatch: u32,
    /// Output rows the graph reserve assumes (llama-server: `n_parallel`; other tools: n_batch).
    pub n_outputs_max: u32,
    /// Flash attention counted as on (`-fa on` or `auto`).
    pub flash_attn: bool,
}

/// What a launch allocates on every device, and whether it fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Per host GPU, in device order.
    pub gpus: Vec<DeviceMemory>,
    /// Host-side buffers.
    pub host: HostMemory,
    /// Fits, or where it runs out first.
    pub verdict: Verdict,
    /// Where llama.cpp puts each layer, tensor and layer's KV.
    pub resolved: Resolved,
    /// The context bookkeeping the sizes follow.
    pub shape: ContextShape,
    /// Whether llama.cpp enables pipeline parallelism (compute buffers are then kept in several
    /// copies).
    pub pipeline_parallel: bool,
    /// Notes on the launch (e.g. `-ot` rules that do nothing).
    pub warnings: Vec<String>,
}
