//! The speed model, one for `calibrate` (which fits its constants from logged runs) and `solve`
//! (which places tensors to minimise it).
//!
//! Decode, seconds per generated token:
//!
//! ```text
//! t = per_token + per_node·nodes + per_split·splits
//!   + Σ_gpu bytes_g·gpu_s_per_byte_g + bytes_cpu·cpu_s_per_byte        (weights + KV read)
//!   + Σ_gpu mla_layers_g·gpu_s_per_wide_attn_layer_g                   (MLA, fixed per layer)
//!   + head_cells_cpu·cpu_s_per_attn_head_cell                          (CPU attention at depth)
//!   + Σ_gpu flops_g·gpu_s_per_(wide_)attn_flop_g + flops_cpu·cpu_s_per_attn_flop
//! ```
//!
//! (the per-flop rates are kept for calibrations that fit them; the shipped fit found the GPU
//! ones 0 and models CPU attention per (query head, cell) pair instead: docs/calibration.md).
//!
//! Prefill, seconds per prompt token:
//!
//! ```text
//! t = prefill_per_token + dense_pcie_bytes·pcie_s_per_byte + expert_pcie_bytes·pcie_s_per_expert_byte
//!   + Σ_gpu flops_g·prefill_gpu_s_per_(wide_)attn_flop_g + head_cells_cpu·prefill_cpu_s_per_attn_head_cell
//! ```
//!
//! where the PCIe bytes are CPU-resident matmul weight bytes / ubatch (llama.cpp's op offload
//! copies each CPU weight to GPU 0 once per ubatch of ≥ 32 tokens:
//! `ggml/src/ggml-backend.cpp:ggml_backend_sched_split_graph` with
//! `ggml_backend_cuda_device_offload_op`; of routed experts only those the ubatch uses,
//! `ggml_backend_sched_compute_splits`), and attention is per token at the prompt's average
//! depth (half its length).
//!
//! Attention and CPU costs are stored in the calibration as *bytes-equivalent* of the device's
//! spec memory bandwidth: seconds = value / bandwidth. That is the transfer rule to a device
//! without runs: a GPU or CPU with twice the memory bandwidth is assumed to do attention twice
//! as fast. It is a PRIOR for hosts without runs (data/calibration.toml `[provenance]`).
//!
//! Every constant comes from `Calibration` through [`rates`]: the values fitted on hosts whose
//! first GPU has this host's first GPU's model (`GpuCalibration::host_speed`), else the global
//! `[speed]` priors; a term with neither is 0.

use crate::anatomy::{kv::kv_bytes_per_token, Anatomy, Hparams, Role};
use crate::calibration::Calibration;
use crate::gguf::GgmlType;
use crate::host::{DeviceId, Host};
use crate::memory::Resolved;
use serde::{Deserialize, Serialize};

/// Attention flops for one generated token in layer `il` that reads `cells_read` KV cells (the
/// caller caps sliding-window layers, see [`cells_read`]). Counts the two products with the
/// cache, Q·Kᵀ and softmax(QKᵀ)·V, 2 flops per multiply-add; the projections are weights and
/// are counted as bytes read.
///
/// * GQA/MHA: every query head dots `head_dim_k` with each cached K and sums `head_dim_v` of each
///   cached V: `2·n_head·(head_dim_k + head_dim_v)·cells`.
/// * MLA (deepseek2 family), as `src/models/deepseek2.cpp:llama_model_deepseek2::graph::graph`
///   builds it with `is_mla()`: wk_b is absorbed into Q (`q_nope_absorbed`), so the query has
///   `kv_lora_rank + n_rot` per head and K is the cached latent+rope row (one KV head, MQA);
///   V is the latent `kv_cmpr` (`kv_lora_rank`), and wv_b is applied after attention
///   (`build_attn(..., wv_b, ...)`, a weight). So `2·n_head·((kv_lora_rank + n_rot) +
///   kv_lora_rank)·cells` — for GLM-4.7-Flash 20 heads × 1088 per cell against 576 cached
///   elements: about 38 flops per cached element where GQA (Qwen3, 8 groups) does 8.
/// * Recurrent layers and NextN layers (no KV cache in the main graph): 0.
pub fn attn_flops_per_token(hp: &Hparams, il: u32, cells_read: u64) -> f64 {
    if !hp.has_kv(il) {
        return 0.0;
    }
    let n_head = hp.n_head.get(il as usize).copied().unwrap_or(0) as f64;
    let width = match hp.mla {
        Some(m) => (m.k_width() + m.kv_lora_rank as u64) as f64,
        None => (hp.head_dim_k + hp.head_dim_v) as f64,
    };
    2.0 * n_head * width * cells_read as f64
}

/// (query head, cached cell) pairs one generated token visits in layer `il`: the unit of work
/// of the CPU flash-attention kernel, which for every query head walks the KV cells one at a
/// time — a K·Q dot of `head_dim_k`, an `expf` of the online softmax, a V multiply-add of
/// `head_dim_v` (`ggml/src/ggml-cpu/ops.cpp:ggml_compute_forward_flash_attn_ext_f16_one_chunk`).
/// Measured on the testbed the CPU's attention time follows this count, not the flops: at the
/// same flops GLM's MLA (20 heads × 1088 per pair) ran ~3.5× faster than Qwen3's GQA (32 heads ×
/// 256 per pair), and per pair they agree within 20 % (docs/calibration.md).
pub fn attn_head_cells(hp: &Hparams, il: u32, cells_read: u64) -> f64 {
    if !hp.has_kv(il) {
        return 0.0;
    }
    hp.n_head.get(il as usize).copied().unwrap_or(0) as f64 * cells_read as f64
}

/// Whether llama.cpp's CUDA flash attention runs this model's attention with the tensor-core
/// (MMA) kernel even for one token: the vector kernel needs a Q/K head size ≤ 256
/// (`ggml/src/ggml-cuda/fattn.cu:ggml_cuda_get_best_fattn_kernel`, `can_use_vector_kernel`), and
/// MLA's absorbed head is kv_lora_rank + n_rot (576 for DeepSeek/GLM), GQA heads are 64–256. The
/// two kernels cost differently per flop, so the model keeps them apart ("wide" attention).
pub fn wide_attention(hp: &Hparams) -> bool {
    let head_k = match hp.mla {
        Some(m) => m.k_width(),
        None => hp.head_dim_k as u64,
    };
    head_k > 256
}

/// KV cells a token at `depth` (cells already in the cache) reads in layer `il`: `depth`, or the
/// window for sliding-window layers (`src/llama-kv-cache.cpp:llama_kv_cache::is_masked_swa`:
/// cells older than `n_swa` are masked; the CUDA flash-attention kernel still skips fully
/// masked KV blocks, so the window bounds the work).
pub fn cells_read(hp: &Hparams, il: u32, depth: u64) -> u64 {
    let swa = hp.swa_layers.get(il as usize).copied().unwrap_or(false);
    if swa && hp.n_swa > 0 {
        depth.min(hp.n_swa as u64)
    } else {
        depth
    }
}

/// Per-unit costs on one host, from a calibration ([`rates`]). Seconds per unit; 0 for a term
/// neither fitted nor given a prior.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Decode: seconds per byte read on each GPU (index = CUDA device) = 1 / (spec bandwidth ·
    /// fitted efficiency of that GPU model).
    pub gpu_s_per_byte: Vec<f64>,
    /// Decode: seconds per byte read by the CPU (weights in RAM, KV of CPU layers) = 1 / (RAM
    /// bandwidth · CPU efficiency).
    pub cpu_s_per_byte: f64,
    /// Decode: seconds per attention flop ([`attn_flops_per_token`]) on each GPU, for models
    /// whose heads take the vector kernel (GQA/MHA, head ≤ 256).
    pub gpu_s_per_attn_flop: Vec<f64>,
    /// Decode: the same for "wide" attention ([`wide_attention`]: MLA), which CUDA runs with the
    /// MMA kernel. Use [`Rates::gpu_attn_s_per_flop`] to pick the right one for a model.
    #[serde(default)]
    pub gpu_s_per_wide_attn_flop: Vec<f64>,
    /// Decode: fixed seconds per wide-attention (MLA) layer on each GPU, whatever the depth
    /// (fitted: GLM-4.7-Flash decodes ~3 ms slower than Qwen3-30B-A3B at equal bytes, nodes and
    /// 15K depth; cause not isolated, candidates are the absorbed wk_b / wv_b per-head products).
    #[serde(default)]
    pub gpu_s_per_wide_attn_layer: Vec<f64>,
    /// Decode: seconds per attention flop on the CPU (layers whose KV is in RAM). Not fitted
    /// (0 unless a calibration sets a prior): the CPU cost follows `cpu_s_per_attn_head_cell`.
    pub cpu_s_per_attn_flop: f64,
    /// Decode: seconds per (query head, cached cell) pair on the CPU ([`attn_head_cells`]) —
    /// layers whose KV is in RAM: llama.cpp runs their attention on the CPU (the KV buffer is not
    /// a weight and is never op-offloaded).
    #[serde(default)]
    pub cpu_s_per_attn_head_cell: f64,
    /// Decode: fixed seconds per token.
    pub per_token_s: f64,
    /// Decode: seconds per graph split of the tg graph (a cross-device hand-off).
    pub per_split_s: f64,
    /// Decode: seconds per node of the tg graph (one kernel launch / op).
    pub per_node_s: f64,
    /// Prefill: fixed seconds per prompt token.
    pub prefill_per_token_s: f64,
    /// Prefill: seconds per byte of CPU-resident weights copied to GPU 0 (op offload, once per
    /// ubatch); `None` when the host has no PCIe figure or no efficiency is known.
    pub pcie_s_per_byte: Option<f64>,
    /// Prefill: seconds per byte of CPU-resident *routed-expert* weights (counted whole, as in
    /// `PrefillLoad::pcie_expert_bytes_per_token`). llama.cpp copies only the experts a ubatch
    /// uses (`ggml/src/ggml-backend.cpp:ggml_backend_sched_compute_splits`), so the effective
    /// rate depends on routing diversity; `None` = use `pcie_s_per_byte`.
    #[serde(default)]
    pub pcie_s_per_expert_byte: Option<f64>,
    /// Prefill: seconds per attention flop on each GPU (prompt at its average depth).
    pub prefill_gpu_s_per_attn_flop: Vec<f64>,
    /// Prefill: the same for wide (MLA) attention.
    #[serde(default)]
    pub prefill_gpu_s_per_wide_attn_flop: Vec<f64>,
    /// Prefill: seconds per attention flop on the CPU (layers with KV in RAM); not fitted.
    pub prefill_cpu_s_per_attn_flop: f64,
    /// Prefill: seconds per (query head, cached cell) pair on the CPU.
    #[serde(default)]
    pub prefill_cpu_s_per_attn_head_cell: f64,
    /// Prefill: seconds per matmul flop on each GPU slot for devices whose matmuls are not in
    /// `prefill_per_token_s`: a CPU behind an rpc-server ([`crate::host::RpcDevice::computes_on_cpu`]),
    /// which multiplies every prompt token's weights itself. 0 for local GPUs and GPUs behind RPC.
    #[serde(default)]
    pub prefill_gpu_s_per_matmul_flop: Vec<f64>,
    /// Decode: seconds per (query head, cached cell) pair on each GPU slot whose attention runs
    /// on a CPU — a CPU behind an rpc-server holding the layer's KV (the attention runs where the
    /// KV is; `ggml-rpc.cpp` computes the graph with the server's backend) — priced as the CPU's
    /// attention (`cpu_s_per_attn_head_cell`'s bytes-equivalent over that device's bandwidth);
    /// 0 for GPUs, whose attention follows the flop rates.
    #[serde(default)]
    pub gpu_s_per_attn_head_cell: Vec<f64>,
    /// Prefill: the same per prompt token.
    #[serde(default)]
    pub prefill_gpu_s_per_attn_head_cell: Vec<f64>,
}

/// What one generated token costs, per device (the solver builds it from a placement,
/// calibrate from a run's prediction).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeLoad {
    /// Bytes read per token on each GPU: weights (routed experts × n_expert_used/n_expert),
    /// plus the KV cells read at the token's depth.
    pub gpu_bytes: Vec<f64>,
    /// The same on the CPU.
    pub cpu_bytes: f64,
    /// Attention flops per token on each GPU (Σ over the layers whose KV is there), models whose
    /// attention is not wide ([`wide_attention`]).
    pub gpu_attn_flops: Vec<f64>,
    /// Attention flops per token on each GPU for wide (MLA) attention; empty or 0 otherwise.
    #[serde(default)]
    pub gpu_wide_attn_flops: Vec<f64>,
    /// Wide-attention (MLA) layers whose KV is on each GPU; empty or 0 otherwise.
    #[serde(default)]
    pub gpu_wide_attn_layers: Vec<f64>,
    /// Attention flops per token on the CPU (either kind).
    pub cpu_attn_flops: f64,
    /// (query head, cached cell) pairs per token on the CPU ([`attn_head_cells`]).
    #[serde(default)]
    pub cpu_attn_head_cells: f64,
    /// The same per GPU slot (priced only where `Rates::gpu_s_per_attn_head_cell` is set: an
    /// RPC CPU).
    #[serde(default)]
    pub gpu_attn_head_cells: Vec<f64>,
    /// Graph splits of the tg graph.
    pub splits: f64,
    /// Nodes of the tg graph.
    pub nodes: f64,
}

/// What one prompt token costs (prompt processed in ubatches).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrefillLoad {
    /// CPU-resident matmul weight bytes streamed to GPU 0 per prompt token (whole tensors per
    /// ubatch / ubatch size; 0 without op offload).
    pub pcie_bytes_per_token: f64,
    /// The routed-expert part of `pcie_bytes_per_token` (whole expert tensors / ubatch).
    #[serde(default)]
    pub pcie_expert_bytes_per_token: f64,
    /// Attention flops per prompt token on each GPU, at the prompt's average depth (not wide).
    pub gpu_attn_flops: Vec<f64>,
    /// The same for wide (MLA) attention.
    #[serde(default)]
    pub gpu_wide_attn_flops: Vec<f64>,
    /// The same on the CPU.
    pub cpu_attn_flops: f64,
    /// (query head, cached cell) pairs per prompt token on the CPU, at the average depth.
    #[serde(default)]
    pub cpu_attn_head_cells: f64,
    /// (query head, cached cell) pairs per prompt token on each GPU slot, at the average depth
    /// (priced only where `Rates::prefill_gpu_s_per_attn_head_cell` is set: an RPC CPU).
    #[serde(default)]
    pub gpu_attn_head_cells: Vec<f64>,
    /// Matmul flops per prompt token of the weights on each GPU slot ([`matmul_flops_per_token`];
    /// priced only where `Rates::prefill_gpu_s_per_matmul_flop` is set: an RPC CPU).
    #[serde(default)]
    pub gpu_matmul_flops: Vec<f64>,
}

/// Matmul flops one prompt token costs for tensor `t`: 2 per weight of a matrix (≥ 2 dims), the
/// routed experts scaled by n_expert_used / n_expert (a token multiplies only the experts it is
/// routed to: `ggml_mul_mat_id`); the token embedding is a row lookup and the output matrix
/// multiplies the last token only (tools/server/server-context.cpp asks for its logits), so
/// both are 0.
pub fn matmul_flops_per_token(t: &crate::anatomy::Tensor, hp: &Hparams) -> f64 {
    if t.dims.len() < 2 || matches!(t.role, Role::TokenEmbd | Role::Output) {
        return 0.0;
    }
    let share = if is_routed(t.role) && hp.n_expert > 0 {
        hp.n_expert_used as f64 / hp.n_expert as f64
    } else {
        1.0
    };
    2.0 * t.dims.iter().product::<u64>() as f64 * share
}

/// The rates of `host` under `cal`: fitted constants of hosts with the same first-GPU model,
/// else the global `[speed]` priors.
pub fn rates(cal: &Calibration, host: &Host) -> Rates {
    let hs = cal.host_speed(host.gpus.first().map(|g| g.model.as_str()).unwrap_or(""));
    let inv = |x: f64| if x > 0.0 { 1.0 / x } else { 0.0 };
    let gpu_bw: Vec<f64> = host.gpus.iter().map(|g| g.bandwidth_gbs * 1e9).collect();
    let ram_bw = host.ram.bandwidth_gbs * 1e9;
    let per_gpu = |k: &dyn Fn(&crate::calibration::GpuCalibration) -> f64| -> Vec<f64> {
        host.gpus
            .iter()
            .zip(&gpu_bw)
            .map(|(g, bw)| k(&cal.gpu(&g.model)) * inv(*bw))
            .collect()
    };
    let pcie = host
        .gpus
        .iter()
        .find(|g| g.rpc.is_none())
        .map(|g| g.pcie_gbs * 1e9)
        .unwrap_or(0.0);
    let pcie_eff = if hs.pcie_efficiency > 0.0 {
        hs.pcie_efficiency
    } else {
        cal.speed.pcie_efficiency
    };
    let mut r = Rates {
        gpu_s_per_byte: per_gpu(&|g| inv(g.bandwidth_efficiency)),
        cpu_s_per_byte: inv(hs.cpu_bandwidth_efficiency) * inv(ram_bw),
        gpu_s_per_attn_flop: per_gpu(&|g| {
            or_prior(g.attn_bytes_per_flop, cal.speed.gpu_attn_bytes_per_flop)
        }),
        gpu_s_per_wide_attn_flop: per_gpu(&|g| {
            or_prior(
                g.wide_attn_bytes_per_flop,
                cal.speed.gpu_wide_attn_bytes_per_flop,
            )
        }),
        gpu_s_per_wide_attn_layer: host
            .gpus
            .iter()
            .map(|g| {
                or_prior(
                    cal.gpu(&g.model).wide_attn_layer_s,
                    cal.speed.gpu_wide_attn_layer_s,
                )
            })
            .collect(),
        cpu_s_per_attn_flop: hs.cpu_attn_bytes_per_flop * inv(ram_bw),
        cpu_s_per_attn_head_cell: hs.cpu_attn_bytes_per_head_cell * inv(ram_bw),
        per_token_s: hs.per_token_s,
        per_split_s: hs.per_split_s,
        per_node_s: hs.per_node_s,
        prefill_per_token_s: hs.prefill_per_token_s,
        pcie_s_per_byte: (pcie > 0.0 && pcie_eff > 0.0).then(|| 1.0 / (pcie * pcie_eff)),
        pcie_s_per_expert_byte: (pcie > 0.0 && hs.pcie_expert_efficiency > 0.0)
            .then(|| 1.0 / (pcie * hs.pcie_expert_efficiency)),
        prefill_gpu_s_per_attn_flop: per_gpu(&|g| {
            or_prior(
                g.prefill_attn_bytes_per_flop,
                cal.speed.prefill_gpu_attn_bytes_per_flop,
            )
        }),
        prefill_gpu_s_per_wide_attn_flop: per_gpu(&|g| {
            or_prior(
                g.prefill_wide_attn_bytes_per_flop,
                cal.speed.prefill_gpu_wide_attn_bytes_per_flop,
            )
        }),
        prefill_cpu_s_per_attn_flop: hs.prefill_cpu_attn_bytes_per_flop * inv(ram_bw),
        prefill_cpu_s_per_attn_head_cell: hs.prefill_cpu_attn_bytes_per_head_cell * inv(ram_bw),
        prefill_gpu_s_per_matmul_flop: vec![0.0; host.gpus.len()],
        gpu_s_per_attn_head_cell: vec![0.0; host.gpus.len()],
        prefill_gpu_s_per_attn_head_cell: vec![0.0; host.gpus.len()],
    };
    // A CPU behind an rpc-server: its matmuls at the RPC-CPU rate, its attention at this host's
    // CPU attention constants, both over the remote bandwidth, and no GPU attention rates.
    for (g, gpu) in host.gpus.iter().enumerate() {
        if !gpu.rpc.as_ref().is_some_and(|x| x.computes_on_cpu()) {
            continue;
        }
        let inv_bw = inv(gpu_bw[g]);
        r.prefill_gpu_s_per_matmul_flop[g] = cal.speed.rpc_cpu_matmul_bytes_per_flop * inv_bw;
        r.gpu_s_per_attn_head_cell[g] = hs.cpu_attn_bytes_per_head_cell * inv_bw;
        r.prefill_gpu_s_per_attn_head_cell[g] = hs.prefill_cpu_attn_bytes_per_head_cell * inv_bw;
        for v in [
            &mut r.gpu_s_per_attn_flop,
            &mut r.gpu_s_per_wide_attn_flop,
            &mut r.gpu_s_per_wide_attn_layer,
            &mut r.prefill_gpu_s_per_attn_flop,
            &mut r.prefill_gpu_s_per_wide_attn_flop,
        ] {
            if let Some(x) = v.get_mut(g) {
                *x = 0.0;
            }
        }
    }
    // Keyed like calibrate::learn keys them: the first GPU's model, "" for a CPU-only host.
    match cal.host_factors(host.gpus.first().map_or("", |g| g.model.as_str())) {
        Some(f) => r.scaled(f),
        None => r,
    }
}

/// Decode seconds per token split into the three terms `calibrate::learn` scales: GPU (weights,
/// KV and attention on the GPUs), CPU (the same on the CPU), hand-off (per token, per graph node,
/// per split). Their sum is [`decode_s`].
pub fn decode_terms(r: &Rates, l: &DecodeLoad) -> [f64; 3] {
    [
        dot(&r.gpu_s_per_byte, &l.gpu_bytes)
            + dot(&r.gpu_s_per_attn_flop, &l.gpu_attn_flops)
            + dot(&r.gpu_s_per_wide_attn_flop, &l.gpu_wide_attn_flops)
            + dot(&r.gpu_s_per_wide_attn_layer, &l.gpu_wide_attn_layers),
        r.cpu_s_per_byte * l.cpu_bytes
            + r.cpu_s_per_attn_flop * l.cpu_attn_flops
            + r.cpu_s_per_attn_head_cell * l.cpu_attn_head_cells
            + dot(&r.gpu_s_per_attn_head_cell, &l.gpu_attn_head_cells),
        r.per_token_s + r.per_node_s * l.nodes + r.per_split_s * l.splits,
    ]
}

/// Prefill seconds per prompt token split into GPU (per-token cost, GPU attention), CPU (CPU
/// attention) and PCIe (CPU weights streamed to the GPU). Their sum is [`prefill_s_per_token`].
pub fn prefill_terms(r: &Rates, l: &PrefillLoad) -> [f64; 3] {
    [
        r.prefill_per_token_s
            + dot(&r.prefill_gpu_s_per_attn_flop, &l.gpu_attn_flops)
            + dot(&r.prefill_gpu_s_per_wide_attn_flop, &l.gpu_wide_attn_flops),
        r.prefill_cpu_s_per_attn_flop * l.cpu_attn_flops
            + r.prefill_cpu_s_per_attn_head_cell * l.cpu_attn_head_cells
            + dot(&r.prefill_gpu_s_per_attn_head_cell, &l.gpu_attn_head_cells)
            + dot(&r.prefill_gpu_s_per_matmul_flop, &l.gpu_matmul_flops),
        r.pcie_s_per_byte.unwrap_or(0.0) * (l.pcie_bytes_per_token - l.pcie_expert_bytes_per_token)
            + r.pcie_s_per_expert_byte
                .or(r.pcie_s_per_byte)
                .unwrap_or(0.0)
                * l.pcie_expert_bytes_per_token,
    ]
}

impl Rates {
    /// The rates with each term group multiplied by its learned factor ([`decode_terms`],
    /// [`prefill_terms`] name the groups).
    pub fn scaled(mut self, f: &crate::calibration::HostFactors) -> Rates {
        let mul = |v: &mut Vec<f64>, k: f64| v.iter_mut().for_each(|x| *x *= k);
        mul(&mut self.gpu_s_per_byte, f.decode_gpu);
        mul(&mut self.gpu_s_per_attn_flop, f.decode_gpu);
        mul(&mut self.gpu_s_per_wide_attn_flop, f.decode_gpu);
        mul(&mut self.gpu_s_per_wide_attn_layer, f.decode_gpu);
        self.cpu_s_per_byte *= f.decode_cpu;
        self.cpu_s_per_attn_flop *= f.decode_cpu;
        self.cpu_s_per_attn_head_cell *= f.decode_cpu;
        self.per_token_s *= f.decode_handoff;
        self.per_node_s *= f.decode_handoff;
        self.per_split_s *= f.decode_handoff;
        self.prefill_per_token_s *= f.prefill_gpu;
        mul(&mut self.prefill_gpu_s_per_attn_flop, f.prefill_gpu);
        mul(&mut self.prefill_gpu_s_per_wide_attn_flop, f.prefill_gpu);
        self.prefill_cpu_s_per_attn_flop *= f.prefill_cpu;
        self.prefill_cpu_s_per_attn_head_cell *= f.prefill_cpu;
        mul(&mut self.prefill_gpu_s_per_matmul_flop, f.prefill_cpu);
        mul(&mut self.prefill_gpu_s_per_attn_head_cell, f.prefill_cpu);
        mul(&mut self.gpu_s_per_attn_head_cell, f.decode_cpu);
        self.pcie_s_per_byte = self.pcie_s_per_byte.map(|x| x * f.prefill_pcie);
        self.pcie_s_per_expert_byte = self.pcie_s_per_expert_byte.map(|x| x * f.prefill_pcie);
        self
    }
}

impl Rates {
    /// Decode seconds per attention flop on GPU `g` for a model with hyper-parameters `hp`
    /// (the wide rate for MLA, see [`wide_attention`]).
    pub fn gpu_attn_s_per_flop(&self, g: usize, hp: &Hparams) -> f64 {
        let v = if wide_attention(hp) {
            &self.gpu_s_per_wide_attn_flop
        } else {
            &self.gpu_s_per_attn_flop
        };
        v.get(g).copied().unwrap_or(0.0)
    }
    /// Prefill seconds per attention flop on GPU `g` for a model with hyper-parameters `hp`.
    pub fn prefill_gpu_attn_s_per_flop(&self, g: usize, hp: &Hparams) -> f64 {
        let v = if wide_attention(hp) {
            &self.prefill_gpu_s_per_wide_attn_flop
        } else {
            &self.prefill_gpu_s_per_attn_flop
        };
        v.get(g).copied().unwrap_or(0.0)
    }
}

/// Where a placement puts things, as the speed model needs it (from `memory::Resolved`).
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    pub anatomy: &'a Anatomy,
    pub resolved: &'a Resolved,
    pub n_gpu: usize,
    pub type_k: GgmlType,
    pub type_v: GgmlType,
}

impl Where<'_> {
    fn slot(&self, d: DeviceId) -> usize {
        match d {
            DeviceId::Gpu(g) => g.min(self.n_gpu),
            DeviceId::Cpu => self.n_gpu,
        }
    }
    fn kv_slot(&self, il: u32) -> usize {
        let d = self
            .resolved
            .kv_device
            .get(il as usize)
            .or_else(|| self.resolved.layer_device.get(il as usize))
            .copied()
            .unwrap_or(DeviceId::Cpu);
        self.slot(d)
    }
    /// Attention flops per token at `depth`, per slot (GPUs, then CPU at index n_gpu).
    fn attn_flops(&self, depth: u64) -> Vec<f64> {
        let hp = &self.anatomy.hp;
        let mut v = vec![0.0; self.n_gpu + 1];
        for il in 0..hp.n_layer {
            v[self.kv_slot(il)] += attn_flops_per_token(hp, il, cells_read(hp, il, depth));
        }
        v
    }
    /// (query head, cell) pairs per token at `depth` on the CPU.
    fn cpu_head_cells(&self, depth: u64) -> f64 {
        let hp = &self.anatomy.hp;
        (0..hp.n_layer)
            .filter(|&il| self.kv_slot(il) == self.n_gpu)
            .map(|il| attn_head_cells(hp, il, cells_read(hp, il, depth)))
            .sum()
    }
    /// (query head, cell) pairs per token at `depth` on each GPU slot.
    fn gpu_head_cells(&self, depth: u64) -> Vec<f64> {
        let hp = &self.anatomy.hp;
        let mut v = vec![0.0; self.n_gpu];
        for il in 0..hp.n_layer {
            if let Some(x) = v.get_mut(self.kv_slot(il)) {
                *x += attn_head_cells(hp, il, cells_read(hp, il, depth));
            }
        }
        v
    }
    /// (GPU flops of vector-kernel attention, GPU flops of wide attention, CPU flops).
    fn attn_split(&self, depth: u64) -> (Vec<f64>, Vec<f64>, f64) {
        let f = self.attn_flops(depth);
        let gpu = f[..self.n_gpu].to_vec();
        let zero = vec![0.0; self.n_gpu];
        if wide_attention(&self.anatomy.hp) {
            (zero, gpu, f[self.n_gpu])
        } else {
            (gpu, zero, f[self.n_gpu])
        }
    }
}

/// The decode load of a placement for a token at `depth` (cells in the cache): weight bytes
/// read per token on each device (routed experts scaled by n_expert_used / n_expert; the
/// token embedding is a row lookup, `GGML_OP_GET_ROWS`, and reads nothing worth counting; a tied
/// output reads the whole `token_embd` again as the output matrix), the KV cells read at that
/// depth (SWA layers capped at the window), and the attention flops. `splits` and `nodes` are
/// the caller's (logged, or estimated by the solver).
pub fn decode_load(w: &Where, depth: u64) -> DecodeLoad {
    let a = w.anatomy;
    let hp = &a.hp;
    let frac = if hp.n_expert > 0 {
        hp.n_expert_used as f64 / hp.n_expert as f64
    } else {
        1.0
    };
    let mut bytes = vec![0.0; w.n_gpu + 1];
    for (i, t) in a.tensors.iter().enumerate() {
        if w.resolved.skipped.get(i).copied().unwrap_or(false) {
            continue;
        }
        if t.role == Role::TokenEmbd {
            if let Some(d) = w.resolved.tied_output_device {
                bytes[w.slot(d)] += t.nbytes as f64;
            }
            continue;
        }
        let share = if is_routed(t.role) { frac } else { 1.0 };
        let d = w
            .resolved
            .tensor_device
            .get(i)
            .copied()
            .unwrap_or(DeviceId::Cpu);
        bytes[w.slot(d)] += t.nbytes as f64 * share;
    }
    for il in 0..hp.n_layer {
        let cells = cells_read(hp, il, depth) as f64;
        bytes[w.kv_slot(il)] += kv_bytes_per_token(hp, il, w.type_k, w.type_v) as f64 * cells;
    }
    let (gpu_attn_flops, gpu_wide_attn_flops, cpu_attn_flops) = w.attn_split(depth);
    let mut gpu_wide_attn_layers = vec![0.0; w.n_gpu];
    if wide_attention(hp) {
        for il in (0..hp.n_layer).filter(|&il| hp.has_kv(il)) {
            if let Some(v) = gpu_wide_attn_layers.get_mut(w.kv_slot(il)) {
                *v += 1.0;
            }
        }
    }
    DecodeLoad {
        gpu_wide_attn_layers,
        gpu_bytes: bytes[..w.n_gpu].to_vec(),
        cpu_bytes: bytes[w.n_gpu],
        gpu_attn_flops,
        gpu_wide_attn_flops,
        cpu_attn_flops,
        cpu_attn_head_cells: w.cpu_head_cells(depth),
        gpu_attn_head_cells: w.gpu_head_cells(depth),
        splits: 0.0,
        nodes: 0.0,
    }
}

/// The prefill load of a placement for a prompt of `prompt_tokens` in ubatches of `ubatch`:
/// with op offload (llama.cpp's default) and a ubatch of ≥ 32 tokens, every CPU-resident matmul
/// weight (≥ 2 dims; whole tensors, a ubatch touches every expert) is copied to GPU 0 once per
/// ubatch (`ggml-cuda.cu:ggml_backend_cuda_device_offload_op`, `get_op_batch_size` ≥
/// `op_offload_min_batch_size` = 32); attention at the prompt's average depth `avg_depth` (the
/// cached prefix plus half the prompt) runs where each layer's KV is (the KV buffer is not a
/// weight, it is never offloaded).
pub fn prefill_load(
    w: &Where,
    prompt_tokens: u64,
    avg_depth: u64,
    ubatch: u32,
    op_offload: bool,
) -> PrefillLoad {
    let ub = ubatch.max(1);
    let (mut pcie, mut experts) = (0.0, 0.0);
    if op_offload && ub >= OP_OFFLOAD_MIN_BATCH {
        for (i, t) in w.anatomy.tensors.iter().enumerate() {
            let on_cpu = w.resolved.tensor_device.get(i).copied() == Some(DeviceId::Cpu);
            let skipped = w.resolved.skipped.get(i).copied().unwrap_or(false);
            // The output matrix multiplies only the rows that produce logits (the prompt's
            // last token, for llama-server and llama-completion alike): < 32 rows, never
            // offloaded (ggml-cuda.cu:ggml_backend_cuda_device_offload_op). The solver prices
            // it the same way (solver/coeffs.rs, `GroupKind::Output`).
            let streamed = !matches!(t.role, Role::TokenEmbd | Role::Output);
            if on_cpu && !skipped && streamed && t.dims.len() >= 2 {
                pcie += t.nbytes as f64;
                if is_routed(t.role) {
                    experts += t.nbytes as f64;
                }
            }
        }
    }
    // Tokens per ubatch: a prompt shorter than the ubatch streams the weights once for all.
    let per_ub = (prompt_tokens.max(1) as f64).min(ub as f64);
    let (gpu_attn_flops, gpu_wide_attn_flops, cpu_attn_flops) = w.attn_split(avg_depth);
    let mut gpu_matmul_flops = vec![0.0; w.n_gpu];
    for (i, t) in w.anatomy.tensors.iter().enumerate() {
        if w.resolved.skipped.get(i).copied().unwrap_or(false) {
            continue;
        }
        if let Some(DeviceId::Gpu(g)) = w.resolved.tensor_device.get(i).copied() {
            if let Some(f) = gpu_matmul_flops.get_mut(g) {
                *f += matmul_flops_per_token(t, &w.anatomy.hp);
            }
        }
    }
    PrefillLoad {
        gpu_matmul_flops,
        gpu_attn_head_cells: w.gpu_head_cells(avg_depth),
        pcie_bytes_per_token: pcie / per_ub,
        pcie_expert_bytes_per_token: experts / per_ub,
        gpu_attn_flops,
        gpu_wide_attn_flops,
        cpu_attn_flops,
        cpu_attn_head_cells: w.cpu_head_cells(avg_depth),
    }
}

/// `op_offload_min_batch_size` of the CUDA backend: 32 unless `GGML_OP_OFFLOAD_MIN_BATCH` is set
/// (`ggml/src/ggml-cuda/ggml-cuda.cu:ggml_backend_cuda_reg`).
pub const OP_OFFLOAD_MIN_BATCH: u32 = 32;

fn is_routed(r: Role) -> bool {
    matches!(
        r,
        Role::ExpertsGate | Role::ExpertsUp | Role::ExpertsDown | Role::ExpertsGateUp
    )
}

fn or_prior(fitted: f64, prior: f64) -> f64 {
    if fitted > 0.0 {
        fitted
    } else {
        prior
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Nodes of the token-generation graph, for the per-node (kernel launch) cost. PRIOR: nodes per
/// repeating layer as logged by llama.cpp for the same architecture family in data/runs
/// (`graph nodes = …` lines: qwen3moe 3030 / 48 layers, qwen3 2246 / 64, deepseek2 3363 / 47,
/// gpt-oss 1349 / 24); other architectures use the qwen3moe figure. Placement does not change
/// it (it only shifts the printed t/s, never a decision).
pub fn graph_nodes(anatomy: &Anatomy) -> f64 {
    let per_layer = match anatomy.arch.as_str() {
        "qwen3" | "qwen2" | "llama" => 2246.0 / 64.0,
        "deepseek2" => 3363.0 / 47.0,
        "gpt-oss" | "gptoss" => 1349.0 / 24.0,
        _ => 3030.0 / 48.0,
    };
    per_layer * anatomy.hp.n_layer as f64
}

/// Backend hand-offs of one decode step for a placement, counted as the solver counts them
/// (solver/coeffs.rs, ilp.rs): two for every device other than the layer's own (where its KV and
/// attention run) that holds one of the layer's FFN tensors, one for every change of device
/// between consecutive layers, and one more when the output matrix is elsewhere than the last
/// layer. Used where no log gives `graph splits`.
pub fn estimate_splits(w: &Where) -> f64 {
    let a = w.anatomy;
    let n = a.hp.n_layer as usize;
    let mut elsewhere: Vec<Vec<DeviceId>> = vec![Vec::new(); n];
    for (i, t) in a.tensors.iter().enumerate() {
        let crate::anatomy::LayerRef::Block(il) = t.layer else {
            continue;
        };
        let ffn = matches!(
            t.role,
            Role::DenseFfn
                | Role::SharedExpert
                | Role::ExpertsGate
                | Role::ExpertsUp
                | Role::ExpertsDown
                | Role::ExpertsGateUp
        );
        let (Some(&own), Some(&d)) = (
            w.resolved.kv_device.get(il as usize),
            w.resolved.tensor_device.get(i),
        ) else {
            continue;
        };
        if ffn && d != own && !w.resolved.skipped.get(i).copied().unwrap_or(false) {
            let v = &mut elsewhere[il as usize];
            if !v.contains(&d) {
                v.push(d);
            }
        }
    }
    let mut splits = 2 * elsewhere.iter().map(Vec::len).sum::<usize>();
    let own: Vec<DeviceId> = w.resolved.kv_device.iter().copied().take(n).collect();
    // A whole layer on the CPU next to GPUs logs two more splits in the decode graph (data/runs:
    // dense 32B at -ngl 36, 29 CPU layers: 62 logged, 3 from hand-offs; qwen3moe and GLM 128K
    // call 4 likewise), although no weight of it is elsewhere.
    if w.n_gpu > 0 {
        splits += 2 * own.iter().filter(|d| **d == DeviceId::Cpu).count();
    }
    splits += own.windows(2).filter(|p| p[0] != p[1]).count();
    let out = a
        .tensors
        .iter()
        .position(|t| t.role == Role::Output)
        .map(|i| w.resolved.tensor_device[i])
        .or(w.resolved.tied_output_device);
    if let (Some(o), Some(last)) = (out, own.last()) {
        if o != *last {
            splits += 1;
        }
    }
    splits as f64
}

/// Round trips over an RPC device's link per graph step that runs layers there. The step's
/// inputs go out asynchronously (`ggml-rpc.cpp: ggml_backend_rpc_set_tensor_async`,
/// `ggml_backend_rpc_graph_compute` send without waiting); reading its output back for the next
/// device waits twice: `ggml_backend_rpc_synchronize` (an empty message through the server's
/// queue, after the graph) and `RPC_CMD_GET_TENSOR` (`ggml-backend.cpp:
/// ggml_backend_sched_compute_splits` copies a split's inputs from another backend with
/// `ggml_backend_tensor_copy_async`, which falls back to synchronize + get + set between
/// backends of different servers). PRIOR from that reading; docs/rpc.md compares it with
/// loopback runs under an emulated link.
pub const RPC_ROUND_TRIPS_PER_STEP: f64 = 2.0;

/// Bytes one RPC device exchanges with the client per token of a graph step: the hidden state
/// in and out (F32, `n_embd` each) plus its copy of the KQ mask (F16 with flash attention, one
/// row of `n_kv` cells per token: `llama-graph.cpp: build_attn_inp_kq_mask`; every backend gets
/// its own copy of a graph input).
pub fn rpc_bytes_per_token(hp: &Hparams, n_kv: u64) -> f64 {
    (2 * 4 * hp.n_embd as u64 + 2 * n_kv) as f64
}

/// The network's hand-off cost of one RPC device that runs a contiguous range of layers, for a
/// graph step of `tokens` tokens (1 when decoding, the ubatch in a prompt): round-trip latency
/// plus the step's activations over the link. Seconds per step; additive to [`decode_s`] and,
/// divided by `tokens`, to [`prefill_s_per_token`].
pub fn rpc_step_s(link: &crate::host::RpcDevice, bytes_per_token: f64, tokens: f64) -> f64 {
    RPC_ROUND_TRIPS_PER_STEP * link.latency_us * 1e-6
        + bytes_per_token * tokens.max(1.0) / (link.link_gbs * 1e9)
}

/// Hand-off seconds of a placement: Σ over the RPC devices that hold at least one layer of
/// [`rpc_step_s`] (decode, per token; prefill, per prompt token in ubatches of `ubatch`).
pub fn rpc_handoff_s(host: &Host, w: &Where, n_kv: u64, ubatch: u32) -> (f64, f64) {
    let per_tok = rpc_bytes_per_token(&w.anatomy.hp, n_kv);
    let ub = ubatch.max(1) as f64;
    let mut dec = 0.0;
    let mut pre = 0.0;
    for (g, gpu) in host.gpus.iter().enumerate() {
        let Some(link) = &gpu.rpc else { continue };
        if w.resolved.layer_device.contains(&DeviceId::Gpu(g)) {
            dec += rpc_step_s(link, per_tok, 1.0);
            pre += rpc_step_s(link, per_tok, ub) / ub;
        }
    }
    (dec, pre)
}

/// Predicted seconds per generated token.
pub fn decode_s(r: &Rates, l: &DecodeLoad) -> f64 {
    r.per_token_s
        + r.per_node_s * l.nodes
        + r.per_split_s * l.splits
        + dot(&r.gpu_s_per_byte, &l.gpu_bytes)
        + r.cpu_s_per_byte * l.cpu_bytes
        + dot(&r.gpu_s_per_attn_flop, &l.gpu_attn_flops)
        + dot(&r.gpu_s_per_wide_attn_flop, &l.gpu_wide_attn_flops)
        + dot(&r.gpu_s_per_wide_attn_layer, &l.gpu_wide_attn_layers)
        + r.cpu_s_per_attn_flop * l.cpu_attn_flops
        + r.cpu_s_per_attn_head_cell * l.cpu_attn_head_cells
        + dot(&r.gpu_s_per_attn_head_cell, &l.gpu_attn_head_cells)
}

/// Predicted seconds per prompt token.
pub fn prefill_s_per_token(r: &Rates, l: &PrefillLoad) -> f64 {
    r.prefill_per_token_s
        + r.pcie_s_per_byte.unwrap_or(0.0)
            * (l.pcie_bytes_per_token - l.pcie_expert_bytes_per_token)
        + r.pcie_s_per_expert_byte
            .or(r.pcie_s_per_byte)
            .unwrap_or(0.0)
            * l.pcie_expert_bytes_per_token
        + dot(&r.prefill_gpu_s_per_attn_flop, &l.gpu_attn_flops)
        + dot(&r.prefill_gpu_s_per_wide_attn_flop, &l.gpu_wide_attn_flops)
        + r.prefill_cpu_s_per_attn_flop * l.cpu_attn_flops
        + r.prefill_cpu_s_per_attn_head_cell * l.cpu_attn_head_cells
        + dot(&r.prefill_gpu_s_per_attn_head_cell, &l.gpu_attn_head_cells)
        + dot(&r.prefill_gpu_s_per_matmul_flop, &l.gpu_matmul_flops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anatomy::Mla;

    fn hp(mla: Option<Mla>) -> Hparams {
        Hparams {
            n_layer: 4,
            n_nextn: 1,
            n_embd: 2048,
            n_vocab: 1000,
            n_ctx_train: 4096,
            n_head: vec![20; 4],
            n_head_kv: vec![if mla.is_some() { 1 } else { 4 }; 4],
            head_dim_k: if mla.is_some() { 576 } else { 128 },
            head_dim_v: if mla.is_some() { 512 } else { 128 },
            mla,
            n_swa: 128,
            swa_layers: vec![false, true, false, false],
            recurrent_layers: vec![false, false, true, false],
            ssm: None,
            n_expert: 0,
            n_expert_used: 0,
            n_expert_shared: 0,
            n_dense_lead: 0,
            n_ff: vec![0; 4],
            n_ff_exp: 0,
            n_ff_shexp: 0,
        }
    }

    #[test]
    fn gqa_and_mla_flops() {
        let g = hp(None);
        assert_eq!(
            attn_flops_per_token(&g, 0, 1000),
            2.0 * 20.0 * 256.0 * 1000.0
        );
        let m = hp(Some(Mla {
            kv_lora_rank: 512,
            rope_dim: 64,
        }));
        assert_eq!(
            attn_flops_per_token(&m, 0, 1000),
            2.0 * 20.0 * (576.0 + 512.0) * 1000.0
        );
        // recurrent layer and NextN layer: no attention over a cache
        assert_eq!(attn_flops_per_token(&g, 2, 1000), 0.0);
        assert_eq!(attn_flops_per_token(&g, 3, 1000), 0.0);
    }

    #[test]
    fn head_cells_and_wide_attention() {
        let g = hp(None);
        assert_eq!(attn_head_cells(&g, 0, 1000), 20.0 * 1000.0);
        assert_eq!(attn_head_cells(&g, 2, 1000), 0.0); // recurrent
        assert!(!wide_attention(&g));
        let m = hp(Some(Mla {
            kv_lora_rank: 512,
            rope_dim: 64,
        }));
        assert!(wide_attention(&m));
        // Same heads and cells: same CPU work in pairs, 4.25x the flops.
        assert_eq!(attn_head_cells(&m, 0, 1000), attn_head_cells(&g, 0, 1000));
        let r = Rates {
            gpu_s_per_attn_flop: vec![1.0],
            gpu_s_per_wide_attn_flop: vec![2.0],
            ..Rates::default()
        };
        assert_eq!(r.gpu_attn_s_per_flop(0, &g), 1.0);
        assert_eq!(r.gpu_attn_s_per_flop(0, &m), 2.0);
        assert_eq!(r.gpu_attn_s_per_flop(5, &m), 0.0);
    }

    #[test]
    fn prefill_expert_bytes_use_their_own_rate() {
        let r = Rates {
            prefill_per_token_s: 1e-4,
            pcie_s_per_byte: Some(1e-10),
            pcie_s_per_expert_byte: Some(1e-11),
            ..Rates::default()
        };
        let l = PrefillLoad {
            pcie_bytes_per_token: 3e6,
            pcie_expert_bytes_per_token: 2e6,
            ..PrefillLoad::default()
        };
        let t = prefill_s_per_token(&r, &l);
        assert!((t - (1e-4 + 1e-4 + 2e-5)).abs() < 1e-12, "{t}");
        assert!((prefill_terms(&r, &l).iter().sum::<f64>() - t).abs() < 1e-15);
        // Without an expert rate, experts stream at the dense rate.
        let r2 = Rates {
            pcie_s_per_expert_byte: None,
            ..r
        };
        assert!((prefill_s_per_token(&r2, &l) - (1e-4 + 3e-4)).abs() < 1e-12);
    }

    #[test]
    fn swa_caps_cells() {
        let g = hp(None);
        assert_eq!(cells_read(&g, 0, 5000), 5000);
        assert_eq!(cells_read(&g, 1, 5000), 128);
        assert_eq!(cells_read(&g, 1, 100), 100);
    }

    #[test]
    fn decode_adds_terms() {
        let r = Rates {
            gpu_s_per_byte: vec![1e-12, 2e-12],
            cpu_s_per_byte: 1e-11,
            gpu_s_per_attn_flop: vec![1e-15, 1e-15],
            cpu_s_per_attn_flop: 1e-12,
            per_token_s: 1e-3,
            per_split_s: 1e-5,
            per_node_s: 1e-6,
            ..Rates::default()
        };
        let l = DecodeLoad {
            gpu_bytes: vec![1e9, 1e9],
            cpu_bytes: 1e8,
            gpu_attn_flops: vec![1e9, 0.0],
            cpu_attn_flops: 1e9,
            splits: 2.0,
            nodes: 1000.0,
            ..DecodeLoad::default()
        };
        let t = decode_s(&r, &l);
        let want = 1e-3 + 1e-3 + 2e-5 + 1e-3 + 2e-3 + 1e-3 + 1e-6 + 1e-3;
        assert!((t - want).abs() < 1e-12, "{t} vs {want}");
        let terms = decode_terms(&r, &l);
        assert!(
            (terms.iter().sum::<f64>() - t).abs() < 1e-15,
            "{terms:?} vs {t}"
        );
    }
}
