//! Readers for what llama.cpp prints (server/cli/completion logs in text or --log-jsonl,
//! llama-bench md/csv/json, the memory breakdown table).
//! Files that are not llama.cpp logs or are cut short are reported, never a crash.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One buffer line: `load_tensors: CUDA0 model buffer size = 1234.56 MiB` etc.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Buffers {
    /// Per buffer-type name (CUDA0, CUDA1, CUDA_Host, CPU_Mapped, CPU, CPU_REPACK…), MiB.
    pub model: BTreeMap<String, f64>,
    pub kv: BTreeMap<String, f64>,
    pub rs: BTreeMap<String, f64>,
    pub compute: BTreeMap<String, f64>,
    /// `llama_context: CUDA_Host  output buffer size` (host memory, not in the breakdown).
    #[serde(default)]
    pub output: BTreeMap<String, f64>,
}

/// A row of the memory breakdown printed at exit (MiB, integers as printed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownRow {
    pub name: String,
    pub total: Option<f64>,
    pub free: Option<f64>,
    pub self_: f64,
    pub model: f64,
    pub context: f64,
    pub compute: f64,
    pub unaccounted: Option<f64>,
    /// Device description as printed (`H200`, `RTX 4090`), when the row named one.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomFailure {
    /// Device / buffer type named in the failure (CUDA0…), if any.
    pub device: Option<String>,
    pub bytes: Option<u64>,
    /// "load", "kv", "compute", "runtime".
    pub stage: String,
    pub line: String,
}

/// Everything recovered from one run's log. Fields are `None` when the log did not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogRun {
    pub source: String,
    pub build: Option<String>,
    pub model_path: Option<String>,
    /// Command line as logged (if the harness or server printed it).
    pub args: Option<Vec<String>>,
    pub n_ctx: Option<u32>,
    pub n_ctx_seq: Option<u32>,
    pub n_seq_max: Option<u32>,
    pub n_batch: Option<u32>,
    pub n_ubatch: Option<u32>,
    pub flash_attn: Option<String>,
    pub type_k: Option<String>,
    pub type_v: Option<String>,
    pub kv_unified: Option<bool>,
    pub layers_offloaded: Option<(u32, u32)>,
    /// `tensor X buffer type overridden to Y` lines: tensor name → buffer type.
    pub overrides: BTreeMap<String, String>,
    /// Free memory seen per device at load, MiB (`using device CUDA0 (...) - N MiB free`).
    pub free_at_load: BTreeMap<String, f64>,
    pub buffers: Buffers,
    pub graph_splits: Option<(u32, u32)>,
    pub graph_nodes: Option<(u32, u32)>,
    pub pipeline_parallel: Option<bool>,
    pub breakdown: Vec<BreakdownRow>,
    pub oom: Vec<OomFailure>,
    pub prompt_tokens: Option<u32>,
    pub prompt_tps: Option<f64>,
    pub gen_tokens: Option<u32>,
    pub gen_tps: Option<f64>,
    /// --fit: the parameters it chose and how long it took.
    pub fit_result: Option<String>,
    pub fit_seconds: Option<f64>,
    /// --fit's final layers per device (`common/fit.cpp:common_params_fit_impl` prints
    /// `  - CUDA0 (…): 49 layers (20 overflowing), … MiB used`; the last line per device wins),
    /// in device order. Empty when --fit changed nothing or did not run.
    pub fit_devices: Vec<FitDevice>,
    /// --fit's overflow type of the first partial layer per device index (`ATTN`, `UP`, `GATE`;
    /// absent = `MOE`), from `set ngl_per_device[i].(n_layer, n_part, overflow_type)=(…, ATTN)`.
    pub fit_overflow: BTreeMap<usize, String>,
    /// The log ended before the run finished (no timings, no breakdown).
    pub truncated: bool,
    pub warnings: Vec<String>,
    /// Which reader produced this run.
    #[serde(default)]
    pub format: LogFormat,
    /// `load_tensors: layer N assigned to device CUDA0` (-lv 4): layer → device.
    #[serde(default)]
    pub layer_device: BTreeMap<u32, String>,
    /// GPUs as `ggml_cuda_init` listed them: CUDA0 → (description, VRAM MiB).
    #[serde(default)]
    pub gpus: BTreeMap<String, GpuSeen>,
    /// `-lm/--load-mode` as logged by `load_tensors: loading model tensors ... (load_mode = X)`.
    #[serde(default)]
    pub load_mode: Option<String>,
    #[serde(default)]
    pub n_outputs_max: Option<u32>,
    /// Total KV cache size line (`llama_kv_cache: size = X MiB (N cells, ...)`), MiB, summed
    /// over caches (iSWA prints two).
    #[serde(default)]
    pub kv_size_mib: Option<f64>,
    /// Number of `--fit` trial loads (dry runs) seen before the real load.
    #[serde(default)]
    pub fit_trials: u32,
    /// A few `print_info` facts about the model (arch, n_layer, file size, general.name…).
    #[serde(default)]
    pub model_info: BTreeMap<String, String>,
    /// llama-bench results, one per test row.
    #[serde(default)]
    pub bench: Vec<BenchResult>,
}

/// One device of --fit's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitDevice {
    pub name: String,
    pub n_layer: u32,
    /// Partial layers (MoE weights elsewhere); `None` when the line did not say (dense path).
    pub n_part: Option<u32>,
}

/// Which flavour of llama.cpp output a file was read as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogFormat {
    #[default]
    Text,
    Jsonl,
    BenchMarkdown,
    BenchCsv,
    BenchJson,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSeen {
    pub description: String,
    pub vram_mib: Option<f64>,
}

/// One llama-bench test (a row of its md/csv/json output).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub model: Option<String>,
    /// `pp512`, `tg128`, `pp512+tg128`, with ` @ d4096` when a depth was set.
    pub test: String,
    pub n_prompt: u32,
    pub n_gen: u32,
    pub n_depth: u32,
    pub avg_ts: f64,
    pub stddev_ts: Option<f64>,
    pub n_gpu_layers: Option<i64>,
    pub n_ubatch: Option<u32>,
    pub n_batch: Option<u32>,
    pub type_k: Option<String>,
    pub type_v: Option<String>,
    pub flash_attn: Option<String>,
    pub tensor_split: Option<String>,
    pub overrides: Option<String>,
}

/// Why a file was not read as a run.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}: cannot read: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a llama.cpp log (no line llama.cpp prints was found)")]
    NotALlamaLog(String),
    #[error("{0}: empty file")]
    Empty(String),
    #[error("{0}: not a text log ({1}); skipped")]
    NotText(String, decode::NotText),
}

mod bench;
mod decode;
mod read;
mod text;

pub use decode::{decode_text, NotText};
pub use read::{decode_bytes, parse_bytes, parse_path, parse_paths, ParsedFile};
