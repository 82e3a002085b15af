//! Readers for what llama.cpp prints (server/cli/completion logs in text or --log-jsonl,
//! llama-bench md/csv/json, the memory breakdown table). OWNER: calibrate helper.
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
    /// The log ended before the run finished (no timings, no breakdown).
    pub truncated: bool,
    pub warnings: Vec<String>,
}
