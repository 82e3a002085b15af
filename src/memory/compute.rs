//! Compute buffers (`sched_reserve: <buft> compute buffer size`). llama.cpp reserves, per
//! backend, the peak of simultaneously live graph tensors over the pp and tg graphs
//! (`src/llama-context.cpp: sched_reserve`, `ggml/src/ggml-alloc.c: ggml_gallocr_reserve_n_impl`).
//! placer does not replay the allocator; it models each backend's buffer as the largest of a
//! few *phases* whose terms come from the graph (shapes of the tensors live at that point):
//!
//! * layer phase (a GPU running layers): split inputs `copies·(MASK + HID)` + the residual
//!   working set `16·n_embd·U` + the largest of the FFN/MoE term and the attention term;
//! * output phase (the device running the output matmul): `copies·HID + 4·n_vocab·n_out`, plus
//!   the mask and residual set when that device also runs the first offloaded layer (they are
//!   still allocated below the logits), plus, with pipeline parallelism, the never-freed input
//!   copies and the FFN term;
//! * op-offload phase (`devices[0]` when a CPU weight is used by a matmul of ≥ 32 tokens,
//!   `ggml-cuda.cu: ggml_backend_cuda_device_offload_op`): the weights copied for one split
//!   (gate+up of a layer's experts are consumed in the same split) + HID (+ the MoE term for a
//!   single copied tensor, + the mask while that device still runs attention).
//!
//! `MASK = Σ_caches m·n_kv·U` (m = 2 bytes F16 with flash attention, 4 F32 without;
//! `llama-graph.cpp: build_attn_inp_kq_mask`), `HID = 4·n_embd·U` (one F32 hidden state).
//! Terms and the logs they were checked against are listed in docs/memory-model.md. The MoE
//! term carries `ComputeConstants::moe_scale`, and `compute.fixed_mib` is added per GPU.

use super::kv::{k_width, v_width, CacheSizes};
use super::{ContextShape, Resolved};
use crate::anatomy::{Anatomy, LayerRef, Role};
use crate::calibration::ComputeConstants;
use crate::gguf::GgmlType;
use crate::host::DeviceId;
use crate::llama;
use crate::units::MIB;

/// What the compute model needs to know beyond the anatomy.
pub struct ComputeInput<'a> {
    /// The model.
    pub anatomy: &'a Anatomy,
    /// Where layers, tensors and KV land.
    pub resolved: &'a Resolved,
    /// The context shape (micro-batch, outputs, flash attention).
    pub shape: &'a ContextShape,
    /// KV and recurrent cache sizes.
    pub caches: &'a CacheSizes,
    /// K cache type.
    pub type_k: GgmlType,
    /// V cache type.
    pub type_v: GgmlType,
    /// `--op-offload`.
    pub op_offload: bool,
    /// Pipeline parallelism (compute buffers kept in several copies).
    pub pipeline_parallel: bool,
    /// Calibrated compute-buffer coefficients (`Constants::compute`).
    pub compute: &'a ComputeConstants,
    /// GPUs of the host.
    pub n_gpus: usize,
    /// The flash-attention mask enters the graph as F32 and is cast to F16 on the first
    /// attention device (`memory::rules::FaMask::F32Cast`, the b8022 generation).
    pub fa_mask_f32: bool,
    /// Of those, the RPC devices (the first ones in llama.cpp's order): they never take an
    /// op-offloaded weight (`ggml-rpc.cpp: ggml_backend_rpc_device_i` has no `offload_op`).
    pub n_rpc: usize,
}

/// Compute buffer bytes per host GPU and for the host (`CUDA_Host` / `CPU`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeBuffers {
    /// Per host GPU, bytes.
    pub gpus: Vec<u64>,
    /// The host's compute buffer, bytes.
    pub host: u64,
}

/// Per-device facts gathered in one pass over layers and tensors.
#[derive(Debug, Clone, Default)]
struct DeviceWork {
    runs_layers: bool,
    /// Attention runs here for these cache kinds (full, swa).
    attn_full: bool,
    attn_swa: bool,
    /// Last layer whose attention runs here.
    last_attn_layer: Option<u32>,
    /// Largest FFN / MoE working set of an FFN op that runs here.
    ffn: u64,
    /// Largest attention extra (FA F16 copies of quantized KV, or KQ without FA).
    attn_extra: u64,
}

fn idx(d: DeviceId, n_gpus: usize) -> usize {
    match d {
        DeviceId::Gpu(i) => i,
        DeviceId::Cpu => n_gpus,
    }
}

/// Compute buffers for one resolved launch.
pub fn compute_buffers(inp: &ComputeInput) -> ComputeBuffers {
    let hp = &inp.anatomy.hp;
    let u = inp.shape.n_ubatch as u64;
    let e = hp.n_embd as u64;
    let hid = 4 * e * u;
    let m = if inp.shape.flash_attn { 2 } else { 4 };
    let copies = if inp.pipeline_parallel {
        llama::SCHED_MAX_COPIES
    } else {
        1
    };
    let n_out = (inp.shape.n_ubatch.min(inp.shape.n_outputs_max)) as u64;
    let logits = 4 * hp.n_vocab as u64 * n_out;
    // The scheduler offloads to the first backend whose device has `offload_op`
    // (`ggml-backend.cpp: ggml_backend_sched_backend_id_from_cur`): the first local GPU.
    let offload_dev = inp
        .resolved
        .devices
        .iter()
        .find(|&&g| g >= inp.n_rpc)
        .filter(|_| inp.op_offload && inp.shape.n_ubatch >= llama::OP_OFFLOAD_MIN_BATCH)
        .map(|&g| DeviceId::Gpu(g));
    // A CPU weight's op runs on devices[0] when op offload applies, else on the CPU.
    let runs_on = |d: DeviceId| {
        if d == DeviceId::Cpu {
            offload_dev.unwrap_or(DeviceId::Cpu)
        } else {
            d
        }
    };

    let n = inp.n_gpus + 1;
    let mut work = vec![DeviceWork::default(); n];
    let moe = moe_term(inp, e, u);
    attention_work(inp, &mut work, u, m);
    ffn_work(inp, &mut work, &runs_on, moe, u);

    let mask_of = |w: &DeviceWork| {
        let c = inp.caches;
        (if w.attn_full {
            m * c.n_kv as u64 * u
        } else {
            0
        }) + (if w.attn_swa {
            m * c.n_kv_swa as u64 * u
        } else {
            0
        })
    };
    let n_all = hp.n_layer as usize;
    let first_gpu_layer = inp
        .resolved
        .layer_device
        .iter()
        .copied()
        .find(|d| *d != DeviceId::Cpu);
    let output_weight_dev = output_device(inp);
    let overridden_to_cpu = inp.anatomy.tensors.iter().enumerate().any(|(i, t)| {
        inp.resolved.tensor_device[i] == DeviceId::Cpu
            && matches!(t.layer, LayerRef::Block(il) if inp.resolved.layer_device.get(il as usize).is_some_and(|d| *d != DeviceId::Cpu))
    });
    let output_runs_on = runs_on(output_weight_dev);

    let mut out = vec![0u64; n];
    for (i, w) in work.iter().enumerate() {
        let dev = if i == inp.n_gpus {
            DeviceId::Cpu
        } else {
            DeviceId::Gpu(i)
        };
        let mask = mask_of(w);
        let mut peak = 0u64;
        if w.runs_layers || w.ffn > 0 {
            let inputs = if w.runs_layers {
                copies * (mask + hid) + 16 * e * u
            } else {
                hid
            };
            peak = peak.max(inputs + w.ffn.max(w.attn_extra));
        }
        if output_runs_on == dev && inp.resolved.layer_device.get(n_all).is_some() {
            let mut o = copies * hid + logits;
            // Measured: present when the device's layers form one graph split up to the output
            // (reference table §6.3, partial -ngl), absent once CPU-overridden weights split the
            // graph (testbed: single GPU with experts or FFN on CPU logs exactly logits + HID).
            if first_gpu_layer == Some(dev) && !inp.pipeline_parallel && !overridden_to_cpu {
                o += mask + 12 * e * u;
            }
            if inp.pipeline_parallel {
                o += copies * mask + w.ffn;
            }
            if output_weight_dev == DeviceId::Cpu && dev != DeviceId::Cpu {
                o += output_bytes(inp);
            }
            peak = peak.max(o);
        }
        if Some(dev) == offload_dev {
            peak = peak.max(offload_phase(inp, w, mask, hid, moe));
        }
        out[i] = peak;
    }
    // Host: the graph inputs live on the CPU (token embeddings are always there, masks are
    // built there) and are copied to the GPUs from its buffer; plus whatever the CPU itself runs.
    let all_mask = {
        let c = inp.caches;
        (if c.any_full { m * c.n_kv as u64 * u } else { 0 })
            + (if c.any_swa {
                m * c.n_kv_swa as u64 * u
            } else {
                0
            })
    };
    let cast = inp.fa_mask_f32 && inp.shape.flash_attn;
    if cast {
        for (dev, bytes) in mask_cast_phases(inp, u, hid, copies) {
            let i = idx(dev, inp.n_gpus);
            if dev != DeviceId::Cpu && out[i] > 0 {
                out[i] = out[i].max(bytes);
            }
        }
    }
    // The host holds the mask input: F16, or F32 where the graph casts it (plus the F16 result
    // when the first attention layer of that cache kind runs on the CPU).
    let all_mask = if cast {
        let c = inp.caches;
        let (full, swa) = first_attention(inp);
        let kind = |any: bool, n_kv: u32, first: Option<DeviceId>| {
            if !any {
                return 0;
            }
            let f16_here = if first == Some(DeviceId::Cpu) { 2 } else { 0 };
            (4 + f16_here) * n_kv as u64 * u
        };
        kind(c.any_full, c.n_kv, full) + kind(c.any_swa, c.n_kv_swa, swa)
    } else {
        all_mask
    };
    let cpu = &work[inp.n_gpus];
    let cpu_run = if inp.n_gpus == 0 || inp.resolved.devices.is_empty() {
        out[inp.n_gpus].saturating_sub(copies * (all_mask + hid))
    } else {
        let mut p = cpu.ffn.max(cpu.attn_extra);
        if output_runs_on == DeviceId::Cpu {
            p = p.max(logits + 12 * e * u);
        }
        p
    };
    let host = copies * (all_mask + hid) + hid + cpu_run;
    let fixed = (inp.compute.fixed_mib * MIB as f64).max(0.0) as u64;
    let gpus = out[..inp.n_gpus]
        .iter()
        .map(|&b| if b > 0 { b + fixed } else { 0 })
        .collect();
    ComputeBuffers { gpus, host }
}

/// The device of the first layer whose attention uses each cache kind (full, SWA): where the
/// graph casts that kind's F32 mask (`ggml-backend.cpp: ggml_backend_sched_split_graph` gives
/// the weightless cast the backend of the attention that consumes it first).
fn first_attention(inp: &ComputeInput) -> (Option<DeviceId>, Option<DeviceId>) {
    let hp = &inp.anatomy.hp;
    let (mut full, mut swa) = (None, None);
    for (il, &d) in inp.resolved.kv_device.iter().enumerate() {
        if !hp.has_kv(il as u32) || inp.caches.layers[il].0.kv == 0 {
            continue;
        }
        let is_swa = hp.n_swa > 0 && hp.swa_layers.get(il).copied().unwrap_or(false);
        let slot = if is_swa { &mut swa } else { &mut full };
        slot.get_or_insert(d);
    }
    (full, swa)
}

/// b8022 generation, flash attention (`src/llama-graph.cpp: build_attn_inp_k` and siblings:
/// `self_kq_mask_cnv = ggml_cast(ctx0, self_kq_mask, GGML_TYPE_F16)`): on the device of the
/// first attention layer, the F32 mask arrives as a split input (`copies` of it with pipeline
/// parallelism) and the F16 cast is allocated while the F32 copy is still live, on top of what
/// that layer holds up to its first flash-attention op — the layer input (HID) and its query
/// working set ([`query_work`]). Per device: those bytes (docs/memory-model.md §5.1).
fn mask_cast_phases(inp: &ComputeInput, u: u64, hid: u64, copies: u64) -> Vec<(DeviceId, u64)> {
    let c = inp.caches;
    let (full, swa) = first_attention(inp);
    let mut phases: Vec<(DeviceId, u64)> = Vec::new();
    for (first, n_kv) in [(full, c.n_kv), (swa, c.n_kv_swa)] {
        let Some(d) = first else { continue };
        let bytes = (4 * copies + 2) * n_kv as u64 * u;
        match phases.iter_mut().find(|p| p.0 == d) {
            Some(p) => p.1 += bytes,
            None => phases.push((d, bytes)),
        }
    }
    let q = query_work(inp, u);
    for p in &mut phases {
        p.1 += copies * hid + q;
    }
    phases
}

/// F32 tensors of one layer's attention live when its flash-attention op is reached: the query
/// projection (`attn_q` / `attn_q_b` output rows) and, for MLA, the absorbed query
/// `n_head·kv_lora_rank` and the concatenated `Qcur` `n_head·(kv_lora_rank + n_rot)`
/// (`src/models/deepseek2.cpp`); otherwise the RoPE'd query and the new K and V rows.
fn query_work(inp: &ComputeInput, u: u64) -> u64 {
    let hp = &inp.anatomy.hp;
    let Some(il) = (0..hp.n_layer).find(|&il| hp.has_kv(il)) else {
        return 0;
    };
    let q_rows = inp
        .anatomy
        .tensors
        .iter()
        .find(|t| {
            t.layer == LayerRef::Block(il)
                && (t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_q_b.weight"))
        })
        .and_then(|t| t.dims.get(1).copied())
        .unwrap_or(0);
    let heads = hp.n_head.get(il as usize).copied().unwrap_or(0) as u64;
    let floats = match hp.mla {
        Some(m) => q_rows + heads * m.kv_lora_rank as u64 + heads * m.k_width(),
        None => 2 * q_rows + k_width(hp, il as usize) + v_width(hp, il as usize),
    };
    4 * floats * u
}

/// MoE activations of one layer: `8·n_embd·n_expert_used·U` (the routed hidden states and the
/// expert outputs before the weighted sum, F32) scaled by `ComputeConstants::moe_scale`.
fn moe_term(inp: &ComputeInput, e: u64, u: u64) -> u64 {
    let hp = &inp.anatomy.hp;
    if hp.n_expert == 0 {
        return 0;
    }
    let base = 8 * e * hp.n_expert_used as u64 * u;
    (base as f64 * inp.compute.moe_scale.max(0.0)) as u64
}

/// Device of each layer's attention-sinks tensor (gpt-oss: `blk.N.attn_sinks.weight`), by layer.
fn sinks_devices(anatomy: &Anatomy, resolved: &Resolved) -> Vec<Option<DeviceId>> {
    let mut out = vec![None; anatomy.hp.n_layer as usize];
    for (ti, t) in anatomy.tensors.iter().enumerate() {
        if let LayerRef::Block(il) = t.layer {
            if t.name.ends_with("attn_sinks.weight") || t.name.ends_with("attn_sinks") {
                if let (Some(slot), Some(&d)) =
                    (out.get_mut(il as usize), resolved.tensor_device.get(ti))
                {
                    *slot = Some(d);
                }
            }
        }
    }
    out
}

/// `-fa auto` resolves to off when some layer's flash-attention op is scheduled on another
/// device than the layer's (`src/llama-context.cpp: llama_context::resolve_fused_ops`, in the
/// 0.3.17 tree `sched_reserve`: "layer N is assigned to device X but the Flash Attention tensor
/// is assigned to device Y" → "Flash Attention was auto, set to disabled"; the layer's device is
/// `llama_model::dev_layer`, i.e. the `-ts` split, not where `-ot` put its weights). The op is
/// pinned only by a weight among its sources (`ggml/src/ggml-backend.cpp:
/// ggml_backend_sched_backend_id_from_cur`: "operations with weights are preferably run on the
/// same backend as the weights"; KV buffers are not weight buffers): the attention sinks that
/// `ggml_flash_attn_ext_add_sinks` attaches (gpt-oss, `src/models/openai-moe-iswa.cpp`). So the
/// first layer whose sinks an `-ot` rule moved off the layer's split device turns it off; the
/// result is (layer, its split device, the sinks' device). Measured: gpt-oss-120b with the
/// users' `-ot blk\.(1[1-3])\.=CUDA1` (data/dryrun/2026-12-07-dryrun-b11434-v2.csv).
pub fn fa_auto_mismatch(
    anatomy: &Anatomy,
    resolved: &Resolved,
) -> Option<(u32, DeviceId, DeviceId)> {
    sinks_devices(anatomy, resolved)
        .iter()
        .enumerate()
        .find_map(|(il, s)| {
            let layer = *resolved.layer_device.get(il)?;
            let sinks = (*s)?;
            (sinks != layer).then_some((il as u32, layer, sinks))
        })
}

/// Where attention runs (with its KV: `-nkvo` → CPU) and its extra working set.
fn attention_work(inp: &ComputeInput, work: &mut [DeviceWork], u: u64, m: u64) {
    let hp = &inp.anatomy.hp;
    let c = inp.caches;
    let sinks = sinks_devices(inp.anatomy, inp.resolved);
    let quant_kv = inp.type_k != GgmlType::F16 || (hp.mla.is_none() && inp.type_v != GgmlType::F16);
    for (il, &kvd) in inp.resolved.kv_device.iter().enumerate() {
        let ld = inp.resolved.layer_device[il];
        work[idx(ld, inp.n_gpus)].runs_layers = true;
        if !hp.has_kv(il as u32) || c.layers[il].0.kv == 0 {
            continue;
        }
        let w = &mut work[idx(kvd, inp.n_gpus)];
        let swa = hp.n_swa > 0 && hp.swa_layers.get(il).copied().unwrap_or(false);
        if swa {
            w.attn_swa = true
        } else {
            w.attn_full = true
        }
        w.last_attn_layer = Some(il as u32);
        let cells = (if swa { c.n_kv_swa } else { c.n_kv }) as u64 * c.n_stream as u64;
        let extra = if inp.shape.flash_attn {
            // ggml-cuda/fattn.cu: F16 copies of non-F16 K and V (V is a view of K for MLA).
            if quant_kv {
                2 * cells * (k_width(hp, il) + v_width(hp, il))
            } else {
                0
            }
        } else {
            // KQ scores in F32 for every head (softmax reuses the buffer: `ggml-alloc.c`
            // lets SOFT_MAX run in place on its only parent).
            let heads = hp.n_head.get(il).copied().unwrap_or(0) as u64;
            4 * heads * cells / c.n_stream.max(1) as u64 * u
        };
        let _ = m;
        w.attn_extra = w.attn_extra.max(extra);
        // Without flash attention the sinks join the softmax (`ggml_soft_max_add_sinks`), which
        // their weight pins to their device: when that is not the KV's, the KQ scores arrive
        // there as a split input and the softmax result is allocated beside them (2 × KQ).
        // Measured 33,046.5 MiB = 2 × 16,384 + 278 on the users' gpt-oss-120b CUDA1
        // (data/dryrun/2026-12-07-dryrun-b11434-v2.csv).
        if !inp.shape.flash_attn {
            if let Some(Some(sd)) = sinks.get(il) {
                if *sd != kvd {
                    let sw = &mut work[idx(*sd, inp.n_gpus)];
                    sw.attn_extra = sw.attn_extra.max(2 * extra);
                }
            }
        }
    }
}

/// FFN working sets where each FFN op runs (its weight's device, or devices[0] by op offload).
fn ffn_work(
    inp: &ComputeInput,
    work: &mut [DeviceWork],
    runs_on: &dyn Fn(DeviceId) -> DeviceId,
    moe: u64,
    u: u64,
) {
    let hp = &inp.anatomy.hp;
    for (ti, t) in inp.anatomy.tensors.iter().enumerate() {
        if inp.resolved.skipped.get(ti).copied().unwrap_or(false) {
            continue;
        }
        let LayerRef::Block(il) = t.layer else {
            continue;
        };
        let term = match t.role {
            Role::ExpertsGate | Role::ExpertsUp | Role::ExpertsDown | Role::ExpertsGateUp => moe,
            Role::DenseFfn => 12 * hp.n_ff.get(il as usize).copied().unwrap_or(0) as u64 * u,
            Role::SharedExpert => 12 * hp.n_ff_shexp as u64 * u,
            _ => continue,
        };
        let d = runs_on(inp.resolved.tensor_device[ti]);
        let w = &mut work[idx(d, inp.n_gpus)];
        w.ffn = w.ffn.max(term);
    }
}

/// Device holding the output matrix (or the tied duplicate of token_embd).
fn output_device(inp: &ComputeInput) -> DeviceId {
    if let Some(d) = inp.resolved.tied_output_device {
        return d;
    }
    inp.anatomy
        .tensors
        .iter()
        .position(|t| t.role == Role::Output)
        .map(|i| inp.resolved.tensor_device[i])
        .unwrap_or(*inp.resolved.layer_device.last().unwrap_or(&DeviceId::Cpu))
}

fn output_bytes(inp: &ComputeInput) -> u64 {
    let role = if inp.resolved.tied_output_device.is_some() {
        Role::TokenEmbd
    } else {
        Role::Output
    };
    inp.anatomy
        .tensors
        .iter()
        .filter(|t| t.role == role)
        .map(|t| t.nbytes)
        .max()
        .unwrap_or(0)
}

/// Op offload on devices[0]: the CPU weights one split copies at once, per layer.
fn offload_phase(inp: &ComputeInput, w: &DeviceWork, mask: u64, hid: u64, moe: u64) -> u64 {
    let n_layer = inp.anatomy.hp.n_layer as usize;
    // Per layer: (gate+up pair or fused, down, dense gate+up, dense down, attention sum).
    let mut groups = vec![[0u64; 5]; n_layer];
    for (ti, t) in inp.anatomy.tensors.iter().enumerate() {
        if inp.resolved.tensor_device[ti] != DeviceId::Cpu
            || inp.resolved.skipped.get(ti).copied().unwrap_or(false)
        {
            continue;
        }
        let LayerRef::Block(il) = t.layer else {
            continue;
        };
        let Some(g) = groups.get_mut(il as usize) else {
            continue;
        };
        match t.role {
            Role::ExpertsGate | Role::ExpertsUp | Role::ExpertsGateUp => g[0] += t.nbytes,
            Role::ExpertsDown => g[1] = g[1].max(t.nbytes),
            Role::DenseFfn if t.name.contains("ffn_down") => g[3] += t.nbytes,
            Role::DenseFfn | Role::SharedExpert => g[2] += t.nbytes,
            Role::Attention => g[4] += t.nbytes,
            _ => {}
        }
    }
    let mut peak = 0u64;
    for (il, g) in groups.iter().enumerate() {
        if g.iter().all(|&x| x == 0) {
            continue;
        }
        // Empirical, from the testbed logs (docs/memory-model.md §5): while this device still
        // runs attention the mask copy is live and one weight copy is live at a time (single
        // GPU, experts on CPU: 204 + HID + MoE + mask = 304 / 340 MiB at 32K / 64K, logged
        // 300.75 / 340.01); after its last attention layer the gate and up copies of a layer
        // are live together, without the mask (t3_cmoe CUDA0: 2 × 204 + 4 = 412.25).
        let mask_live = w.last_attn_layer.is_some_and(|l| il as u32 <= l);
        let single = g[0].max(g[1]) / if g[0] > g[1] { 2 } else { 1 };
        let one_copy = [single + moe, g[2].max(g[3]) / 2, g[4]]
            .into_iter()
            .max()
            .unwrap_or(0)
            + hid;
        // A layer whose attention also runs on the CPU leaves no GPU attention op between its
        // FFN copies either, so gate and up are live together there too (testbed call 4,
        // glm-emul-c128k placer-aggressive: layers 0–2 whole on CPU, CUDA0 logged 627.58 MiB;
        // mask + gate + up + HID + MoE = 587 MiB, one copy at a time = 383 MiB).
        let attn_on_cpu = inp.resolved.layer_device.get(il) == Some(&DeviceId::Cpu);
        let together = one_copy.max(g[0] + hid + moe).max(g[2] + hid);
        let phase = match (mask_live, attn_on_cpu) {
            (true, false) => mask + one_copy,
            (true, true) => mask + together,
            (false, _) => one_copy.max(g[0] + hid).max(g[2] + hid),
        };
        peak = peak.max(phase);
    }
    peak
}
