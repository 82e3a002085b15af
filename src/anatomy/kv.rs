//! KV-cache and recurrent-state bytes per layer, as llama.cpp allocates them.
//!
//! Sources: `src/llama-kv-cache.cpp:llama_kv_cache::llama_kv_cache` (one K tensor
//! `[n_embd_k_gqa(il), kv_size, n_stream]` and, unless MLA, one V tensor per layer with KV),
//! `src/llama-hparams.cpp` (`n_embd_k_gqa`, `n_embd_v_gqa`, `is_mla`, `n_embd_r`, `n_embd_s`),
//! `src/llama-memory-recurrent.cpp` (R and S state rows, always F32). See
//! docs/memory-model.md §5.2–5.6.

use super::Hparams;
use crate::gguf::GgmlType;

/// Bytes one KV cell (one token of context, one stream) takes in layer `il`: the K row plus,
/// unless the model uses MLA, the V row. 0 for layers without a KV cache (recurrent layers,
/// NextN/MTP layers, which the main context filters out with `il < n_layer()`).
///
/// Assumes V is not transposed or all layers have the same V width (always true with flash
/// attention); see [`kv_bytes_per_token_with`] for the FA-off case.
pub fn kv_bytes_per_token(hp: &Hparams, il: u32, type_k: GgmlType, type_v: GgmlType) -> u64 {
    kv_bytes_per_token_with(hp, il, type_k, type_v, false)
}

/// As [`kv_bytes_per_token`]; `v_trans` = flash attention off. Then, when the V width varies
/// across layers, every layer's V row is `n_embd_v_gqa_max` wide ([TAG_V_CACHE_VARIABLE] in
/// `llama_kv_cache::llama_kv_cache`).
pub fn kv_bytes_per_token_with(
    hp: &Hparams,
    il: u32,
    type_k: GgmlType,
    type_v: GgmlType,
    v_trans: bool,
) -> u64 {
    if !hp.has_kv(il) {
        return 0;
    }
    let k = row_bytes(type_k, n_embd_k_gqa(hp, il));
    // has_v = !is_mla(): the MLA cache holds only the compressed latent + rope part (in K).
    if hp.mla.is_some() {
        return k;
    }
    let v_width = if v_trans && v_width_varies(hp) {
        n_embd_v_gqa_max(hp)
    } else {
        n_embd_v_gqa(hp, il)
    };
    k + row_bytes(type_v, v_width)
}

/// `n_embd_k_gqa(il) = n_embd_head_k(il) * n_head_kv(il)`. For MLA GGUFs `key_length` already
/// is `kv_lora_rank + n_rot` and `head_count_kv` is 1 (convert_hf_to_gguf.py, deepseek2).
pub fn n_embd_k_gqa(hp: &Hparams, il: u32) -> u64 {
    hp.head_dim_k as u64 * head_kv(hp, il)
}

/// `n_embd_v_gqa(il) = n_embd_head_v(il) * n_head_kv(il)`.
pub fn n_embd_v_gqa(hp: &Hparams, il: u32) -> u64 {
    hp.head_dim_v as u64 * head_kv(hp, il)
}

fn head_kv(hp: &Hparams, il: u32) -> u64 {
    hp.n_head_kv.get(il as usize).copied().unwrap_or(0) as u64
}

fn n_embd_v_gqa_max(hp: &Hparams) -> u64 {
    (0..hp.n_layer)
        .map(|il| n_embd_v_gqa(hp, il))
        .max()
        .unwrap_or(0)
}

fn v_width_varies(hp: &Hparams) -> bool {
    let first = n_embd_v_gqa(hp, 0);
    (0..hp.n_layer).any(|il| n_embd_v_gqa(hp, il) != first)
}

/// `ggml_row_size(type, n)`. llama.cpp refuses a cache type whose block does not divide the row
/// (`llama_init_from_model`: "K cache type … does not divide n_embd_head_k"); for such a
/// configuration this returns the byte rate rounded up to whole blocks, so callers still get
/// a bound rather than a panic.
pub fn row_bytes(ty: GgmlType, n: u64) -> u64 {
    match ty.row_size(n) {
        Some(b) => b,
        None => {
            let (blk, size) = (
                ty.block_size().unwrap_or(1).max(1),
                ty.type_size().unwrap_or(4),
            );
            n.div_ceil(blk).saturating_mul(size)
        }
    }
}

/// `n_embd_r()`: conv-state floats per sequence of one recurrent layer (Mamba-2, Gated
/// DeltaNet): `(d_conv - 1) * (d_inner + 2 * n_group * d_state)`.
pub fn n_embd_r(hp: &Hparams) -> u64 {
    hp.ssm.map_or(0, |s| {
        (s.d_conv.saturating_sub(1) as u64)
            * (s.d_inner as u64 + 2 * s.n_group as u64 * s.d_state as u64)
    })
}

/// `n_embd_s()`: recurrent-state floats per sequence of one recurrent layer: `d_state * d_inner`.
pub fn n_embd_s(hp: &Hparams) -> u64 {
    hp.ssm.map_or(0, |s| s.d_state as u64 * s.d_inner as u64)
}

/// Bytes of recurrent state (R + S, always F32) one sequence takes in layer `il`; 0 for layers
/// that are not recurrent. Scales with the number of sequences (`-np`), not with context.
pub fn rs_bytes_per_seq(hp: &Hparams, il: u32) -> u64 {
    let recurrent = il < hp.n_layer - hp.n_nextn
        && hp
            .recurrent_layers
            .get(il as usize)
            .copied()
            .unwrap_or(false);
    if !recurrent {
        return 0;
    }
    4 * (n_embd_r(hp) + n_embd_s(hp))
}
