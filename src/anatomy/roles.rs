//! Tensor name → (layer, role, group). Names come from `src/llama-arch.cpp: LLM_TENSOR_NAMES`;
//! the layer of a global tensor from `LLM_TENSOR_INFOS` (`LLM_TENSOR_LAYER_INPUT/OUTPUT/REPEATING`).

use super::{GroupKind, Hparams, LayerRef, Role};

/// `N` of a `blk.N.` name.
pub fn block_index(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The tensor's base name inside its block, without the trailing `.weight` / `.bias` / `.scale`
/// etc.: `blk.3.ffn_gate_exps.bias` → `ffn_gate_exps`; `blk.0.ffn_up.7.weight` → `ffn_up.7`.
fn block_base(name: &str) -> &str {
    let rest = name.splitn(3, '.').nth(2).unwrap_or("");
    match rest.rsplit_once('.') {
        Some((base, last)) if !last.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => rest,
    }
}

/// Layer and role of one tensor. `None` role detail: unknown names get `Role::Other`.
pub fn classify(name: &str, hp: &Hparams) -> (LayerRef, Role) {
    if let Some(il) = block_index(name) {
        return (LayerRef::Block(il), block_role(name, il, hp));
    }
    global(name)
}

/// Tensors outside `blk.N`: token embeddings are input (always CPU in llama.cpp), the output
/// head and its norm are the output layer; `rope_freqs` & co are created with layer 0
/// (`LLM_TENSOR_LAYER_REPEATING`, e.g. `src/models/llama.cpp`: `i != 0 ? TENSOR_DUPLICATED`).
fn global(name: &str) -> (LayerRef, Role) {
    let base = name.rsplit_once('.').map_or(name, |(b, _)| b);
    match base {
        "token_embd" | "position_embd" | "token_types" | "per_layer_token_embd" => {
            (LayerRef::Input, Role::TokenEmbd)
        }
        "token_embd_norm" => (LayerRef::Input, Role::Norm),
        "output" => (LayerRef::Output, Role::Output),
        "output_norm" => (LayerRef::Output, Role::OutputNorm),
        "rope_freqs" | "rope_factors_long" | "rope_factors_short" => {
            (LayerRef::Block(0), Role::Attention)
        }
        _ => (LayerRef::Output, Role::Other),
    }
}

fn block_role(name: &str, il: u32, hp: &Hparams) -> Role {
    // The last nextn_predict_layers blocks are MTP blocks: llama.cpp creates all their tensors
    // with TENSOR_SKIP unless MTP is requested (src/models/deepseek2.cpp, glm4-moe.cpp).
    if il >= hp.n_layer.saturating_sub(hp.n_nextn) && hp.n_nextn > 0 {
        return Role::NextN;
    }
    let base = block_base(name);
    let role = base_role(base);
    // In a recurrent layer the projections named attn_* (qwen3next's attn_qkv / attn_gate)
    // feed the recurrent block.
    let recurrent = hp
        .recurrent_layers
        .get(il as usize)
        .copied()
        .unwrap_or(false);
    if recurrent && role == Role::Attention {
        return Role::Recurrent;
    }
    role
}

fn base_role(base: &str) -> Role {
    let (head, idx) = match base.split_once('.') {
        Some((h, rest)) => (h, Some(rest)),
        None => (base, None),
    };
    match head {
        "nextn" => return Role::NextN,
        // legacy per-expert tensors: blk.N.ffn_gate.E / ffn_up.E / ffn_down.E
        "ffn_gate" if idx.is_some() => return Role::ExpertsGate,
        "ffn_up" if idx.is_some() => return Role::ExpertsUp,
        "ffn_down" if idx.is_some() => return Role::ExpertsDown,
        "indexer" => return Role::Attention,
        "shortconv" => return Role::Recurrent,
        _ => {}
    }
    match base {
        "ffn_gate_exps" | "ffn_gate_chexps" => Role::ExpertsGate,
        "ffn_up_exps" | "ffn_up_chexps" => Role::ExpertsUp,
        "ffn_down_exps" | "ffn_down_chexps" => Role::ExpertsDown,
        "ffn_gate_up_exps" => Role::ExpertsGateUp,
        "ffn_gate_shexp" | "ffn_up_shexp" | "ffn_down_shexp" | "ffn_gate_inp_shexp" => {
            Role::SharedExpert
        }
        "ffn_gate_inp" | "exp_probs_b" | "exp_probs_b_vl" | "ffn_gate_tid2eid" => Role::Router,
        "ffn_gate" | "ffn_up" | "ffn_down" => Role::DenseFfn,
        "attn_norm"
        | "attn_norm_2"
        | "ffn_norm"
        | "ffn_norm_exps"
        | "post_attention_norm"
        | "post_ffw_norm"
        | "post_ffw_norm_1"
        | "post_ffw_norm_2"
        | "pre_ffw_norm_2"
        | "layer_output_norm"
        | "attn_sub_norm"
        | "ffn_sub_norm"
        | "post_norm"
        | "attn_post_norm" => Role::Norm,
        b if b.starts_with("attn_") || b.starts_with("rope_") => Role::Attention,
        b if b.starts_with("ssm_")
            || b.starts_with("time_mix_")
            || b.starts_with("channel_mix_") =>
        {
            Role::Recurrent
        }
        _ => Role::Other,
    }
}

/// The placement group of a tensor: routed experts and shared experts and the dense FFN may
/// move away from their layer; everything else stays with it (`LayerCore`).
pub fn group_kind(layer: LayerRef, role: Role) -> GroupKind {
    match layer {
        LayerRef::Input => return GroupKind::Input,
        LayerRef::Output => return GroupKind::Output,
        LayerRef::Block(_) => {}
    }
    match role {
        Role::ExpertsGate => GroupKind::ExpertsGate,
        Role::ExpertsUp => GroupKind::ExpertsUp,
        Role::ExpertsDown => GroupKind::ExpertsDown,
        Role::ExpertsGateUp => GroupKind::ExpertsGateUp,
        Role::SharedExpert => GroupKind::SharedExperts,
        Role::DenseFfn => GroupKind::DenseFfn,
        _ => GroupKind::LayerCore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(block_base("blk.3.ffn_gate_exps.bias"), "ffn_gate_exps");
        assert_eq!(block_base("blk.0.ffn_up.7.weight"), "ffn_up.7");
        assert_eq!(block_base("blk.12.nextn.eh_proj.weight"), "nextn.eh_proj");
        assert_eq!(block_base("blk.1.attn_sinks"), "attn_sinks");
        assert_eq!(block_index("blk.12.attn_q.weight"), Some(12));
        assert_eq!(block_index("blk.x.attn_q.weight"), None);
        assert_eq!(block_index("token_embd.weight"), None);
    }

    #[test]
    fn roles_by_name() {
        assert_eq!(base_role("ffn_gate_up_exps"), Role::ExpertsGateUp);
        assert_eq!(base_role("ffn_down.3"), Role::ExpertsDown);
        assert_eq!(base_role("ffn_down"), Role::DenseFfn);
        assert_eq!(base_role("ffn_up_shexp"), Role::SharedExpert);
        assert_eq!(base_role("attn_kv_a_mqa"), Role::Attention);
        assert_eq!(base_role("attn_sinks"), Role::Attention);
        assert_eq!(base_role("exp_probs_b"), Role::Router);
        assert_eq!(base_role("ssm_conv1d"), Role::Recurrent);
        assert_eq!(base_role("attn_norm"), Role::Norm);
        assert_eq!(base_role("something_new"), Role::Other);
        assert_eq!(global("output.weight"), (LayerRef::Output, Role::Output));
        assert_eq!(
            global("rope_freqs.weight"),
            (LayerRef::Block(0), Role::Attention)
        );
    }
}
