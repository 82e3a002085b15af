//! Context bookkeeping (`src/llama-context.cpp: llama_context::llama_context`) and the exact
//! KV-cache / recurrent-state tensor sizes (`src/llama-kv-cache.cpp`,
//! `src/llama-kv-cache-iswa.cpp`, `src/llama-memory-recurrent.cpp`, `src/llama-hparams.cpp`).

use super::ContextShape;
use crate::anatomy::Hparams;
use crate::gguf::GgmlType;
use crate::launch::{FlashAttn, LaunchConfig, Tool};
use crate::llama;
use crate::units::pad;

/// `n_seq_max` and unified-KV as the tool sets them: llama-server `-np` auto (-1) becomes
/// 4 slots **and** `kv_unified = true` (`tools/server/server.cpp`), otherwise `-np` (default 1
/// for llama-cli/completion, `common/common.h: n_parallel = 1`) and `-kvu` (default off).
pub fn sequences(cfg: &LaunchConfig) -> (u32, bool) {
    match (cfg.tool, cfg.n_parallel) {
        (Tool::Server, None) => (llama::SERVER_AUTO_PARALLEL, true),
        (_, n) => (n.unwrap_or(1).max(1), cfg.kv_unified.unwrap_or(false)),
    }
}

/// Context shape: n_ctx padded to 256, per-stream cells, batch sizes, outputs reserved.
pub fn context_shape(cfg: &LaunchConfig, hp: &Hparams) -> ContextShape {
    let (n_seq, unified) = sequences(cfg);
    let c = if cfg.ctx == 0 {
        hp.n_ctx_train
    } else {
        cfg.ctx
    };
    let mut n_ctx = pad(c as u64, llama::N_CTX_PAD) as u32;
    let (n_ctx_seq, n_stream) = if unified {
        (n_ctx, 1)
    } else {
        let per =
            (pad((n_ctx / n_seq) as u64, llama::N_CTX_PAD) as u32).max(llama::N_CTX_PAD as u32);
        n_ctx = per * n_seq;
        (per, n_seq)
    };
    // causal attention: n_batch = min(n_ctx, -b); n_ubatch = min(n_batch, -ub or n_batch).
    let n_batch = n_ctx.min(cfg.batch);
    let ub = if cfg.ubatch == 0 { n_batch } else { cfg.ubatch };
    let n_ubatch = n_batch.min(ub);
    ContextShape {
        n_ctx,
        n_ctx_seq,
        n_seq,
        n_stream,
        n_batch,
        n_ubatch,
        n_outputs_max: outputs_max(cfg, n_batch, n_seq),
        flash_attn: cfg.flash_attn != FlashAttn::Off,
    }
}

/// Outputs the graph reserve assumes: llama-server caps it at `n_parallel` (no speculative
/// decoding: `tools/server/server-context.cpp: server_output_limits` →
/// `common/speculative.cpp: n_outputs_max = n_parallel`); other tools leave 0 = n_batch
/// (`src/llama-context.cpp`: `n_outputs_max == 0 ? n_batch`).
fn outputs_max(cfg: &LaunchConfig, n_batch: u32, n_seq: u32) -> u32 {
    match cfg.tool {
        Tool::Server => n_seq.clamp(1, n_batch.max(1)),
        Tool::Cli | Tool::Bench => n_batch,
    }
}

/// Allocation size of one tensor in a buffer: CUDA pads each tensor to 128 bytes after adding
/// `MATRIX_ROW_PADDING` for quantized rows (`ggml-cuda.cu:
/// ggml_backend_cuda_buffer_type_get_alloc_size`, `_get_alignment`); host buffers align to 32.
pub fn alloc_size(ty: GgmlType, ne0: u64, nbytes: u64, on_gpu: bool) -> u64 {
    if !on_gpu {
        return pad(nbytes, llama::CPU_ALIGNMENT);
    }
    let row_pad = llama::CUDA_MATRIX_ROW_PADDING;
    let extra = if ty.is_quantized() && !ne0.is_multiple_of(row_pad) {
        ty.row_size(row_pad - ne0 % row_pad).unwrap_or(0)
    } else {
        0
    };
    pad(nbytes + extra, llama::CUDA_ALIGNMENT)
}

/// Allocation size of one tensor on a host GPU: a local one takes CUDA's rule ([`alloc_size`]),
/// an RPC device the remote buffer's (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type_get_alloc_size`
/// returns `ggml_nbytes` unless a quantized row is not a multiple of 512, and then what the
/// server's buffer type says: CUDA/HIP add the row padding, CPU and Vulkan do not; the tensor's
/// offset is aligned to the server's `RPC_CMD_GET_ALIGNMENT`, `ggml-alloc.c`).
pub fn alloc_size_on(
    rpc: Option<&crate::host::RpcDevice>,
    ty: GgmlType,
    ne0: u64,
    nbytes: u64,
) -> u64 {
    let Some(r) = rpc else {
        return alloc_size(ty, ne0, nbytes, true);
    };
    let row_pad = llama::CUDA_MATRIX_ROW_PADDING;
    let extra = if r.row_padding && ty.is_quantized() && !ne0.is_multiple_of(row_pad) {
        ty.row_size(row_pad - ne0 % row_pad).unwrap_or(0)
    } else {
        0
    };
    pad(nbytes + extra, r.alignment.max(1))
}

/// Cache bytes of one layer: K + V (attention) or R + S (recurrent), as allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerCache {
    /// K + V bytes (attention layer).
    pub kv: u64,
    /// R + S bytes (recurrent layer).
    pub rs: u64,
    /// The same without per-buffer padding (what `llama_kv_cache: size = …` prints).
    pub kv_raw: u64,
}

/// Per-layer sizes shared by every device.
#[derive(Debug, Clone)]
pub struct CacheSizes {
    /// Cells per stream of the full-attention cache and of the SWA cache.
    pub n_kv: u32,
    /// Cells per stream of the SWA cache.
    pub n_kv_swa: u32,
    /// Some layer uses sliding-window attention.
    pub any_swa: bool,
    /// Some layer uses full attention.
    pub any_full: bool,
    /// KV streams (1 with a unified cache).
    pub n_stream: u32,
    /// (on GPU, on CPU) sizes per layer.
    pub layers: Vec<(LayerCache, LayerCache)>,
}

/// K width per layer (`n_embd_k_gqa`; MLA caches the latent + rope part only).
pub fn k_width(hp: &Hparams, il: usize) -> u64 {
    match hp.mla {
        Some(m) => m.k_width(),
        None => hp.head_dim_k as u64 * hp.n_head_kv.get(il).copied().unwrap_or(0) as u64,
    }
}

/// V width per layer (0 for MLA: `has_v = !is_mla`).
pub fn v_width(hp: &Hparams, il: usize) -> u64 {
    match hp.mla {
        Some(_) => 0,
        None => hp.head_dim_v as u64 * hp.n_head_kv.get(il).copied().unwrap_or(0) as u64,
    }
}

fn is_swa(hp: &Hparams, il: usize) -> bool {
    hp.n_swa > 0 && hp.swa_layers.get(il).copied().unwrap_or(false)
}

fn is_recurrent(hp: &Hparams, il: usize) -> bool {
    hp.recurrent_layers.get(il).copied().unwrap_or(false)
}

/// Recurrent state widths (`llama_hparams::n_embd_r`, `n_embd_s`): one formula, in anatomy.
pub fn rs_widths(hp: &Hparams) -> (u64, u64) {
    (
        crate::anatomy::kv::n_embd_r(hp),
        crate::anatomy::kv::n_embd_s(hp),
    )
}

/// Sizes of every layer's cache for a context shape.
pub fn cache_sizes(cfg: &LaunchConfig, hp: &Hparams, shape: &ContextShape) -> CacheSizes {
    let (_, unified) = sequences(cfg);
    let kv_size = shape.n_ctx_seq as u64;
    // llama_kv_cache_iswa: pad(min(kv_size, n_swa * (unified ? n_seq : 1) + n_ubatch), 256),
    // or the full size with --swa-full.
    let n_kv_swa = if cfg.swa_full {
        kv_size
    } else {
        let want =
            hp.n_swa as u64 * if unified { shape.n_seq as u64 } else { 1 } + shape.n_ubatch as u64;
        pad(kv_size.min(want), llama::SWA_PAD)
    };
    let n_stream = shape.n_stream as u64;
    let n_layer = hp.n_layer as usize;
    // FA explicitly off → V transposed; if V widths differ per layer, all use the max
    // (llama_kv_cache: `!v_trans ? n_embd_v_gqa(il) : n_embd_v_gqa_max()`).
    let v_trans = cfg.flash_attn == FlashAttn::Off;
    let v_max = (0..n_layer).map(|il| v_width(hp, il)).max().unwrap_or(0);
    // Recurrent: F32, rows = max(1, n_seq_max) (no rollback snapshots: n_rs_seq = 0).
    let (n_r, n_s) = rs_widths(hp);
    let rows = shape.n_seq.max(1) as u64;
    let f32t = GgmlType::F32;
    let mut any_swa = false;
    let mut any_full = false;
    let layers = (0..n_layer)
        .map(|il| {
            if is_recurrent(hp, il) && il < (hp.n_layer - hp.n_nextn) as usize {
                let r = n_r * rows * 4;
                let s = n_s * rows * 4;
                let cache = |gpu| LayerCache {
                    kv: 0,
                    rs: alloc_size(f32t, n_r, r, gpu) + alloc_size(f32t, n_s, s, gpu),
                    kv_raw: 0,
                };
                return (cache(true), cache(false));
            }
            if !hp.has_kv(il as u32) {
                return (LayerCache::default(), LayerCache::default());
            }
            let swa = is_swa(hp, il);
            any_swa |= swa;
            any_full |= !swa;
            let cells = if swa { n_kv_swa } else { kv_size } * n_stream;
            let kw = k_width(hp, il);
            let vw = if v_trans && hp.mla.is_none() {
                v_max
            } else {
                v_width(hp, il)
            };
            let k_bytes = cfg.type_k.row_size(kw).unwrap_or(0) * cells;
            let v_bytes = if vw == 0 {
                0
            } else {
                cfg.type_v.row_size(vw).unwrap_or(0) * cells
            };
            let cache = |gpu| LayerCache {
                kv: alloc_size(cfg.type_k, kw, k_bytes, gpu)
                    + if vw == 0 {
                        0
                    } else {
                        alloc_size(cfg.type_v, vw, v_bytes, gpu)
                    },
                rs: 0,
                kv_raw: k_bytes + v_bytes,
            };
            (cache(true), cache(false))
        })
        .collect();
    CacheSizes {
        n_kv: kv_size as u32,
        n_kv_swa: n_kv_swa as u32,
        any_swa,
        any_full,
        n_stream: shape.n_stream,
        layers,
    }
}
