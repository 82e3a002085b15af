//! The linear model the integer program optimises: per layer slot and per movable tensor group,
//! the bytes it occupies on a device, the bytes a generated token reads from it, and the largest
//! tensor (what op offload stages on GPU 0). KV and compute-buffer terms follow
//! docs/memory-model.md §5–§6 (llama.cpp's own rules, cited per function); they
//! are a *linear estimate* — the solver re-checks every solution with the exact memory model
//! (`memory::predict`) and corrects its budgets by the difference (see `solver::solve`).

use super::SolveRequest;
use crate::anatomy::{Anatomy, GroupKind, LayerRef, Role};
use crate::host_model::HostModel;
use crate::speed::{attn_flops_per_token, attn_head_cells, cells_read, wide_attention, Rates};
use crate::units::{from_mib, pad};

/// A tensor group that may sit on another device than its layer.
#[derive(Debug, Clone)]
pub struct Movable {
    /// Index into `Anatomy::groups`.
    pub group: usize,
    /// Layer slot (0..n_layer, n_layer = output).
    pub slot: usize,
    /// What the group holds (routed experts, shared experts, dense FFN…).
    pub kind: GroupKind,
    /// Weight bytes.
    pub bytes: u64,
    /// Bytes read per generated token (routed experts: × n_expert_used / n_expert).
    pub read: f64,
    /// Largest tensor: what op offload copies to GPU 0 when the group is on the CPU.
    pub max_tensor: u64,
    /// Seconds per generated token / per prompt token with the group on each device (GPUs in
    /// order, then the CPU at index `n_gpus`).
    pub dec: Vec<f64>,
    /// Seconds per prompt token with the group on each device (same order as `dec`).
    pub pre: Vec<f64>,
}

/// The solver's linear model of one request: bytes, and seconds per token, of every layer slot and
/// movable group on every device.
#[derive(Debug, Clone)]
pub struct LinearModel {
    /// GPUs of the host.
    pub n_gpus: usize,
    /// n_layer + 1 (the output layer is the last slot).
    pub n_slots: usize,
    /// Weights that always stay with the slot (attention, norms, router, recurrent weights).
    pub slot_fixed: Vec<u64>,
    /// Bytes of those weights read per generated token.
    pub slot_fixed_read: Vec<f64>,
    /// Largest of those tensors, bytes.
    pub slot_fixed_max_tensor: Vec<u64>,
    /// KV cache + recurrent state bytes of the slot (follows the layer's device, §4.5).
    pub slot_kv: Vec<u64>,
    /// KV bytes read per generated token at the request's decode depth.
    pub slot_kv_read: Vec<f64>,
    /// Tensor groups that may sit on another device than their layer.
    pub movable: Vec<Movable>,
    /// token_embd & co. (always CPU) + NextN tensors that llama.cpp skips are not counted.
    pub input_bytes: u64,
    /// Compute buffer of a GPU that holds at least one layer (§6.4 without the logits term).
    pub compute_base: u64,
    /// Logits term of the compute buffer on the device holding the output layer.
    pub compute_logits: u64,
    /// Op offload: CPU weights are staged on GPU 0 during prompt batches ≥ 32 tokens (§4.6).
    pub op_offload: bool,
    /// Host-side buffers that do not depend on the placement (CUDA_Host compute, output buffer).
    pub host_fixed: u64,
    /// Per GPU: calibrated runtime overhead ("unaccounted" column), bytes.
    pub overhead: Vec<u64>,
    /// Per GPU usable bytes; host usable bytes.
    pub gpu_cap: Vec<u64>,
    /// Host usable bytes.
    pub ram_cap: u64,
    /// Fixed decode seconds per token.
    pub per_token_s: f64,
    /// Decode seconds per graph split (cross-device hand-off).
    pub per_split_s: f64,
    /// Tokens per prompt micro-batch (`-ub`, capped by `-b` and the context).
    pub n_ubatch: u64,
    /// Seconds per generated token / per prompt token of each slot's fixed part (weights, KV
    /// read, attention) on each device (GPUs in order, then the CPU at index `n_gpus`).
    pub slot_dec: Vec<Vec<f64>>,
    /// Seconds per prompt token of each slot's fixed part, per device (same order as `slot_dec`).
    pub slot_pre: Vec<Vec<f64>>,
    /// Seconds per generated token that do not depend on the placement (per-token and per-node
    /// costs), and per prompt token.
    pub dec_const: f64,
    /// Seconds per prompt token that do not depend on the placement.
    pub pre_const: f64,
    /// Tokens generated / prompt tokens of the request the objective prices.
    pub gen_tokens: f64,
    /// Prompt tokens of the request.
    pub prompt_tokens: f64,
    /// Nothing but the input (token embeddings) may stay on the CPU.
    pub gpu_only: bool,
    /// The rates the costs came from (`speed::rates`), and their origin in words.
    pub rates: Rates,
    /// Where the rates came from, in words.
    pub rates_source: String,
    /// The GPU that takes op-offloaded CPU weights: the first local one (RPC devices come
    /// first in llama.cpp's order and have no `offload_op`, `ggml-rpc.cpp`).
    pub offload_dev: usize,
    /// Per GPU, the network hand-off of an RPC device that holds layers, seconds per generated
    /// token (`speed::rpc_step_s`); 0 for a local GPU.
    pub rpc_dec: Vec<f64>,
    /// The same per prompt token.
    pub rpc_pre: Vec<f64>,
}

impl LinearModel {
    /// Seconds the request spends on slot `s`'s fixed part when it sits on `dev` (GPU index, or
    /// `n_gpus` for the CPU).
    pub fn slot_cost(&self, s: usize, dev: usize) -> f64 {
        self.gen_tokens * self.slot_dec[s][dev] + self.prompt_tokens * self.slot_pre[s][dev]
    }
    /// Seconds the request spends on movable group `mi` when it sits on `dev`.
    pub fn mov_cost(&self, mi: usize, dev: usize) -> f64 {
        let mv = &self.movable[mi];
        self.gen_tokens * mv.dec[dev] + self.prompt_tokens * mv.pre[dev]
    }
    /// Seconds the request spends on the network when RPC device `d` holds a layer.
    pub fn rpc_cost(&self, d: usize) -> f64 {
        self.gen_tokens * self.rpc_dec.get(d).copied().unwrap_or(0.0)
            + self.prompt_tokens * self.rpc_pre.get(d).copied().unwrap_or(0.0)
    }
    /// Seconds the request spends per decode graph split.
    pub fn split_cost(&self) -> f64 {
        self.gen_tokens * self.per_split_s
    }
    /// Device index of the cost vectors for a `DeviceId`.
    pub fn dev_index(&self, d: crate::host::DeviceId) -> usize {
        match d {
            crate::host::DeviceId::Gpu(i) => i,
            crate::host::DeviceId::Cpu => self.n_gpus,
        }
    }
}

/// Predicted times of a placement under the linear model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    /// Seconds per generated token (all terms, constants included).
    pub decode_s: f64,
    /// Seconds per prompt token (all terms, constants included).
    pub prefill_s: f64,
    /// Backend hand-offs per generated token.
    pub splits: u32,
    /// Seconds of the whole request: prompt × prefill + generated × decode.
    pub request_s: f64,
}

impl LinearModel {
    /// The speed model at a (slot, movable) assignment: the integer program's objective, term
    /// for term, plus the placement-independent constants.
    pub fn times(&self, slots: &[crate::host::DeviceId], mov: &[crate::host::DeviceId]) -> Times {
        let mut dec = self.dec_const;
        let mut pre = self.pre_const;
        for (s, d) in slots.iter().enumerate() {
            let i = self.dev_index(*d);
            dec += self.slot_dec[s][i];
            pre += self.slot_pre[s][i];
        }
        let mut off_layer = vec![false; self.n_slots];
        for (mv, d) in self.movable.iter().zip(mov) {
            let i = self.dev_index(*d);
            dec += mv.dec[i];
            pre += mv.pre[i];
            if *d != slots[mv.slot] && mv.kind != GroupKind::Output {
                off_layer[mv.slot] = true;
            }
        }
        let mut splits = 2 * off_layer.iter().filter(|&&o| o).count() as u32;
        splits += slots.windows(2).filter(|w| w[0] != w[1]).count() as u32;
        dec += splits as f64 * self.per_split_s;
        for d in 0..self.n_gpus {
            if slots.contains(&crate::host::DeviceId::Gpu(d)) {
                dec += self.rpc_dec.get(d).copied().unwrap_or(0.0);
                pre += self.rpc_pre.get(d).copied().unwrap_or(0.0);
            }
        }
        Times {
            decode_s: dec,
            prefill_s: pre,
            splits,
            request_s: self.gen_tokens * dec + self.prompt_tokens * pre,
        }
    }
}

/// Where the speed constants of `host` come from, in words (resolved with the host model).
pub use crate::host_model::rates_source;

/// Context bookkeeping of `src/llama-context.cpp:llama_context::llama_context` (§5.1).
#[derive(Debug, Clone, Copy)]
pub struct Cells {
    /// KV cells per stream.
    pub kv_size: u64,
    /// KV streams (1 with a unified cache or one sequence).
    pub n_stream: u64,
    /// Sequences (`-np`).
    pub n_seq: u64,
    /// Tokens per micro-batch.
    pub n_ubatch: u64,
}

/// Cells of `req` on `anatomy`: context padded to 256, split per stream, and the micro-batch.
pub fn cells(anatomy: &Anatomy, req: &SolveRequest) -> Cells {
    let c = if req.ctx == 0 {
        anatomy.hp.n_ctx_train
    } else {
        req.ctx
    } as u64;
    let n_ctx = pad(c.max(1), 256);
    let n_seq = req.n_parallel.max(1) as u64;
    let (kv_size, n_stream) = if req.kv_unified || n_seq == 1 {
        (n_ctx, 1)
    } else {
        (pad(n_ctx / n_seq, 256), n_seq)
    };
    let n_batch = (req.batch as u64).min(n_ctx);
    Cells {
        kv_size,
        n_stream,
        n_seq,
        n_ubatch: (req.ubatch as u64).min(n_batch).max(1),
    }
}

/// KV / recurrent-state bytes of layer `il` (llamacpp-internals §5.2–5.4, §5.6;
/// `src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache`, `src/llama-kv-cache-iswa.cpp`,
/// `src/llama-memory-recurrent.cpp`, `src/llama-hparams.cpp:n_embd_r/n_embd_s`).
/// Returns (bytes allocated, cells attention reads per token at `depth`).
pub fn layer_kv(anatomy: &Anatomy, req: &SolveRequest, c: &Cells, il: u32) -> (u64, u64) {
    let hp = &anatomy.hp;
    let i = il as usize;
    if il >= hp.n_layer.saturating_sub(hp.n_nextn) {
        return (0, 0);
    }
    if hp.recurrent_layers.get(i).copied().unwrap_or(false) {
        let Some(s) = hp.ssm else { return (0, 0) };
        let r = (s.d_conv.saturating_sub(1) as u64)
            * (s.d_inner as u64 + 2 * s.n_group as u64 * s.d_state as u64);
        let st = s.d_state as u64 * s.d_inner as u64;
        return (4 * (r + st) * c.n_seq, 0);
    }
    if !hp.has_kv(il) {
        return (0, 0);
    }
    let swa = hp.swa_layers.get(i).copied().unwrap_or(false) && hp.n_swa > 0;
    let unified = c.n_stream == 1;
    let cells_l = if swa {
        let want = hp.n_swa as u64 * if unified { c.n_seq } else { 1 } + c.n_ubatch;
        pad(c.kv_size.min(want), 256)
    } else {
        c.kv_size
    };
    let row = |t: crate::gguf::GgmlType, n: u64| t.row_size(n).unwrap_or(2 * n);
    let per_cell = if let Some(m) = hp.mla {
        row(req.type_k, m.k_width())
    } else {
        let kv_heads = *hp.n_head_kv.get(i).unwrap_or(&1) as u64;
        row(req.type_k, hp.head_dim_k as u64 * kv_heads)
            + row(req.type_v, hp.head_dim_v as u64 * kv_heads)
    };
    let depth = req.depth(anatomy) as u64;
    let read_cells = depth.min(if swa { hp.n_swa as u64 } else { c.kv_size });
    (per_cell * cells_l * c.n_stream, per_cell * read_cells)
}

/// Build the linear model for `req` on the resolved host model.
pub fn build(anatomy: &Anatomy, hm: &HostModel, req: &SolveRequest) -> LinearModel {
    let host = &hm.host;
    let hp = &anatomy.hp;
    let n_slots = hp.n_layer as usize + 1;
    let c = cells(anatomy, req);
    let mut m = LinearModel {
        n_gpus: host.gpus.len(),
        n_slots,
        slot_fixed: vec![0; n_slots],
        slot_fixed_read: vec![0.0; n_slots],
        slot_fixed_max_tensor: vec![0; n_slots],
        slot_kv: vec![0; n_slots],
        slot_kv_read: vec![0.0; n_slots],
        movable: Vec::new(),
        input_bytes: 0,
        compute_base: 0,
        compute_logits: 0,
        op_offload: req.op_offload && c.n_ubatch >= crate::llama::OP_OFFLOAD_MIN_BATCH as u64,
        host_fixed: 0,
        overhead: hm
            .memory
            .overhead_mib
            .iter()
            .map(|&o| from_mib(o))
            .collect(),
        gpu_cap: host
            .gpus
            .iter()
            .map(|g| from_mib(g.usable_mib as f64))
            .collect(),
        ram_cap: from_mib(host.ram.usable_mib as f64),
        per_token_s: hm.rates.per_token_s,
        per_split_s: hm.rates.per_split_s,
        n_ubatch: c.n_ubatch,
        slot_dec: vec![Vec::new(); n_slots],
        slot_pre: vec![Vec::new(); n_slots],
        dec_const: 0.0,
        pre_const: 0.0,
        gen_tokens: req.gen_tokens(anatomy) as f64,
        prompt_tokens: req.prompt_tokens(anatomy) as f64,
        gpu_only: req.gpu_only,
        rates: hm.rates.clone(),
        rates_source: hm.rates_source.clone(),
        offload_dev: host.n_rpc(),
        rpc_dec: vec![0.0; host.gpus.len()],
        rpc_pre: vec![0.0; host.gpus.len()],
    };
    // A client without a local GPU offloads nothing (RPC devices have no `offload_op`).
    m.op_offload &= host.n_rpc() < host.gpus.len();
    let n_kv = (req.depth(anatomy) as u64).min(c.kv_size);
    let per_tok = crate::speed::rpc_bytes_per_token(hp, n_kv);
    for (d, g) in host.gpus.iter().enumerate() {
        if let Some(link) = &g.rpc {
            let ub = c.n_ubatch.max(1) as f64;
            m.rpc_dec[d] = crate::speed::rpc_step_s(link, per_tok, 1.0);
            m.rpc_pre[d] = crate::speed::rpc_step_s(link, per_tok, ub) / ub;
        }
    }
    if m.rates.cpu_s_per_attn_flop <= 0.0 && m.rates.cpu_s_per_attn_head_cell <= 0.0 {
        m.rates_source.push_str(
            "; WARNING: this calibration prices no CPU attention, so layers on the CPU are judged by bytes alone (regenerate it with `placer calibrate`)",
        );
    }
    let r8 = m.rates.clone();
    m.per_split_s = r8.per_split_s;
    m.per_token_s = r8.per_token_s;
    // Bytes of the slot's fixed part that op offload streams to GPU 0 per ubatch when the slot
    // is on the CPU (matrices only: norms and biases are not matmul weights).
    let mut slot_stream = vec![0f64; n_slots];
    // The slot's fixed tensors, for their matmul cost on an RPC CPU.
    let mut slot_matmul: Vec<Vec<usize>> = vec![Vec::new(); n_slots];
    let routed_r = if hp.n_expert > 0 {
        hp.n_expert_used as f64 / hp.n_expert as f64
    } else {
        1.0
    };
    let nextn = |t: usize| anatomy.tensors[t].role == Role::NextN;
    for (gi, g) in anatomy.groups.iter().enumerate() {
        let tensors: Vec<usize> = g.tensors.iter().copied().filter(|&t| !nextn(t)).collect();
        let bytes: u64 = tensors.iter().map(|&t| anatomy.tensors[t].nbytes).sum();
        let max_tensor = tensors
            .iter()
            .map(|&t| anatomy.tensors[t].nbytes)
            .max()
            .unwrap_or(0);
        let slot = match g.layer {
            LayerRef::Input => {
                m.input_bytes += bytes;
                continue;
            }
            LayerRef::Block(il) => il as usize,
            LayerRef::Output => n_slots - 1,
        };
        let r = if g.kind.is_routed_experts() {
            routed_r
        } else {
            1.0
        };
        let movable = matches!(
            g.kind,
            GroupKind::DenseFfn
                | GroupKind::SharedExperts
                | GroupKind::ExpertsGate
                | GroupKind::ExpertsUp
                | GroupKind::ExpertsDown
                | GroupKind::ExpertsGateUp
                | GroupKind::Output
        );
        let stream: u64 = tensors
            .iter()
            .map(|&t| &anatomy.tensors[t])
            .filter(|t| t.dims.len() >= 2)
            .map(|t| t.nbytes)
            .sum();
        if movable && bytes > 0 {
            m.movable.push(Movable {
                group: gi,
                slot,
                kind: g.kind,
                bytes,
                read: r * bytes as f64,
                max_tensor,
                dec: Vec::new(),
                // The output matrix only multiplies the rows that produce logits: llama-server
                // asks for the prompt's last token only (tools/server/server-context.cpp), so
                // in prefill its batch is < 32 rows and op offload never streams it
                // (ggml-cuda.cu:ggml_backend_cuda_device_offload_op, get_op_batch_size).
                pre: if g.kind == GroupKind::Output {
                    vec![0.0; m.n_gpus + 1]
                } else {
                    let mut pre = stream_cost(&m, stream as f64, g.kind.is_routed_experts());
                    add_matmul_cost(&m, &mut pre, &tensors, anatomy);
                    pre
                },
            });
        } else {
            slot_matmul[slot].extend(tensors.iter().copied());
            slot_stream[slot] += stream as f64;
            m.slot_fixed[slot] += bytes;
            m.slot_fixed_read[slot] += r * bytes as f64;
            m.slot_fixed_max_tensor[slot] = m.slot_fixed_max_tensor[slot].max(max_tensor);
        }
    }
    // KV/RS bytes as the memory model allocates them (src/memory/kv.rs, llama.cpp's rules).
    let base_cfg = super::request_launch(req);
    let shape = crate::memory::kv::context_shape(&base_cfg, hp);
    let caches = crate::memory::kv::cache_sizes(&base_cfg, hp, &shape);
    for il in 0..hp.n_layer {
        let (_, read_cells_bytes) = layer_kv(anatomy, req, &c, il);
        let (on_gpu, _) = caches.layers.get(il as usize).copied().unwrap_or_default();
        m.slot_kv[il as usize] = on_gpu.kv + on_gpu.rs;
        m.slot_kv_read[il as usize] = read_cells_bytes as f64;
    }
    let (base, logits, host_compute) = compute_terms(anatomy, req, &c);
    m.compute_base = base;
    m.compute_logits = logits;
    m.host_fixed = host_compute + 4 * hp.n_vocab as u64 * c.n_seq;
    speed_costs(&mut m, anatomy, req, &slot_stream);
    for (s, tensors) in slot_matmul.iter().enumerate() {
        let mut pre = std::mem::take(&mut m.slot_pre[s]);
        add_matmul_cost(&m, &mut pre, tensors, anatomy);
        m.slot_pre[s] = pre;
    }
    m
}

/// Adds to `pre` (seconds per prompt token per device) the matmuls of `tensors` on the devices
/// that multiply them at a per-flop rate: a CPU behind an rpc-server
/// (`Rates::prefill_gpu_s_per_matmul_flop`, as `speed::prefill_s_per_token` prices it).
fn add_matmul_cost(m: &LinearModel, pre: &mut [f64], tensors: &[usize], anatomy: &Anatomy) {
    let rates = &m.rates.prefill_gpu_s_per_matmul_flop;
    if rates.iter().all(|&r| r <= 0.0) {
        return;
    }
    let flops: f64 = tensors
        .iter()
        .map(|&t| crate::speed::matmul_flops_per_token(&anatomy.tensors[t], &anatomy.hp))
        .sum();
    for (d, r) in rates.iter().enumerate().take(m.n_gpus) {
        if let Some(p) = pre.get_mut(d) {
            *p += flops * r;
        }
    }
}

/// Seconds per prompt token for `bytes` of CPU-resident matmul weights: with op offload (a
/// ubatch of ≥ 32 tokens) they are copied to GPU 0 once per ubatch
/// (`ggml/src/ggml-backend.cpp:ggml_backend_sched_split_graph`,
/// `ggml-cuda.cu:ggml_backend_cuda_device_offload_op`), llamacpp-internals.md §4.6. A prompt
/// shorter than the ubatch streams them once for all its tokens. Zero on the GPUs.
/// Routed experts stream at their own fitted rate (`Rates::pcie_s_per_expert_byte`: llama.cpp
/// copies only the experts the ubatch routes to), as `speed::prefill_s_per_token` prices them.
fn stream_cost(m: &LinearModel, bytes: f64, routed: bool) -> Vec<f64> {
    let mut v = vec![0.0; m.n_gpus + 1];
    let rate = if routed {
        m.rates.pcie_s_per_expert_byte.or(m.rates.pcie_s_per_byte)
    } else {
        m.rates.pcie_s_per_byte
    };
    if m.op_offload {
        if let Some(pcie) = rate {
            let ub = m.n_ubatch as f64;
            let per_ub = if m.prompt_tokens >= 1.0 {
                ub.min(m.prompt_tokens)
            } else {
                ub
            };
            v[m.n_gpus] = bytes * pcie / per_ub;
        }
    }
    v
}

/// Fill the per-device speed costs of every slot and movable group (docs/solver.md §2).
fn speed_costs(m: &mut LinearModel, anatomy: &Anatomy, req: &SolveRequest, slot_stream: &[f64]) {
    let hp = &anatomy.hp;
    let r = m.rates.clone();
    let g = m.n_gpus;
    let per_byte = |d: usize| {
        if d < g {
            r.gpu_s_per_byte[d]
        } else {
            r.cpu_s_per_byte
        }
    };
    let dec_depth = req.depth(anatomy) as u64;
    let pre_depth = req.prefill_depth(anatomy) as u64;
    let wide = wide_attention(hp);
    // Attention of layer `il` on device `d` per generated token at `depth`: the speed model's
    // terms (src/speed.rs `decode_s`): GPU flops × that GPU's rate (the wide/MMA rate and the
    // fixed per-layer cost for MLA), CPU flops × the CPU rate + (query head, cell) pairs × the
    // CPU per-pair rate.
    let attn_dec = |il: u32, d: usize, depth: u64| -> f64 {
        let cells = cells_read(hp, il, depth);
        let fl = attn_flops_per_token(hp, il, cells);
        if d < g {
            let layer = if wide && hp.has_kv(il) {
                r.gpu_s_per_wide_attn_layer.get(d).copied().unwrap_or(0.0)
            } else {
                0.0
            };
            fl * r.gpu_attn_s_per_flop(d, hp)
                + layer
                + attn_head_cells(hp, il, cells)
                    * r.gpu_s_per_attn_head_cell.get(d).copied().unwrap_or(0.0)
        } else {
            fl * r.cpu_s_per_attn_flop + attn_head_cells(hp, il, cells) * r.cpu_s_per_attn_head_cell
        }
    };
    // The same per prompt token at the prompt's average depth (`prefill_s_per_token`).
    let attn_pre = |il: u32, d: usize, depth: u64| -> f64 {
        let cells = cells_read(hp, il, depth);
        let fl = attn_flops_per_token(hp, il, cells);
        if d < g {
            fl * r.prefill_gpu_attn_s_per_flop(d, hp)
                + attn_head_cells(hp, il, cells)
                    * r.prefill_gpu_s_per_attn_head_cell
                        .get(d)
                        .copied()
                        .unwrap_or(0.0)
        } else {
            fl * r.prefill_cpu_s_per_attn_flop
                + attn_head_cells(hp, il, cells) * r.prefill_cpu_s_per_attn_head_cell
        }
    };
    for (s, &stream_bytes) in slot_stream.iter().enumerate() {
        let layer = (s + 1 < m.n_slots).then_some(s as u32);
        let read = m.slot_fixed_read[s] + m.slot_kv_read[s];
        let stream = stream_cost(m, stream_bytes, false);
        // A whole layer on the CPU next to GPUs logs two more decode splits (speed.rs
        // `estimate_splits`, tests/speed_splits.rs).
        let cpu_layer_splits = if g > 0 && layer.is_some() {
            2.0 * r.per_split_s
        } else {
            0.0
        };
        m.slot_dec[s] = (0..=g)
            .map(|d| {
                read * per_byte(d)
                    + layer.map_or(0.0, |il| attn_dec(il, d, dec_depth))
                    + if d == g { cpu_layer_splits } else { 0.0 }
            })
            .collect();
        m.slot_pre[s] = (0..=g)
            .map(|d| layer.map_or(0.0, |il| attn_pre(il, d, pre_depth)) + stream[d])
            .collect();
    }
    for mv in &mut m.movable {
        mv.dec = (0..=g).map(|d| mv.read * per_byte(d)).collect();
    }
    m.dec_const = r.per_token_s + r.per_node_s * crate::speed::graph_nodes(anatomy);
    m.pre_const = r.prefill_per_token_s;
}

/// Compute-buffer terms, llamacpp-internals §6.4 ("CUDA0_compute ≈ MASK + 16·n_embd·U + max(…)"),
/// taken as a sum of the activation maximum and the logits term (an over-estimate by at most the
/// smaller of the two; the exact check corrects it). Flash attention is assumed on (what `-fa
/// auto` resolves to on CUDA). Returns (per-GPU base, logits on the output device, CUDA_Host).
fn compute_terms(anatomy: &Anatomy, req: &SolveRequest, c: &Cells) -> (u64, u64, u64) {
    let hp = &anatomy.hp;
    let u = c.n_ubatch;
    let e = hp.n_embd as u64;
    let has_swa = hp.swa_layers.iter().any(|&s| s) && hp.n_swa > 0;
    let full_cells = c.kv_size * c.n_stream;
    let mut mask = 2 * full_cells * u;
    if has_swa {
        let swa_cells = pad(c.kv_size.min(hp.n_swa as u64 * c.n_seq + u), 256);
        mask += 2 * swa_cells * u;
    }
    let n_ff = hp.n_ff.iter().copied().max().unwrap_or(0) as u64;
    let used = hp.n_expert_used as u64;
    let ffn = (12 * n_ff * u).max(8 * e * used * u + 12 * hp.n_ff_exp as u64 * used * u);
    let quant_kv = req.type_k.is_quantized() || req.type_v.is_quantized();
    let fa_copy = if quant_kv {
        let kv_dims = match hp.mla {
            Some(m) => m.k_width(),
            None => {
                (hp.head_dim_k as u64 + hp.head_dim_v as u64)
                    * hp.n_head_kv.iter().copied().max().unwrap_or(1) as u64
            }
        };
        2 * c.kv_size * kv_dims + 4 * e * u
    } else {
        0
    };
    let base = mask + 16 * e * u + ffn.max(fa_copy);
    // llama-server caps n_outputs_max at n_parallel (tools/server/server-context.cpp); the
    // other tools reserve a whole batch (memory::kv::outputs_max).
    let outputs = match req.tool {
        crate::launch::Tool::Server => u.min(c.n_seq),
        _ => u,
    };
    let logits = 4 * hp.n_vocab as u64 * outputs;
    (base, logits, 16 * e * u + mask)
}
