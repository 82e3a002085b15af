//! The tensor table of each architecture: names, shapes and order as llama.cpp's loader creates
//! them (`src/models/<arch>.cpp: load_arch_tensors`, names from `src/llama-arch.cpp`
//! `LLM_TENSOR_NAMES`). Shapes are ggml order: `ne[0]` (the row length) first.

use super::quant::{converter_source, Source};
use super::{Arch, Hparams, SynthTensor};
use crate::gguf::GgmlType;

/// Every tensor of the model, in file order.
pub fn tensor_table(h: &Hparams) -> Result<Vec<SynthTensor>, String> {
    let mut t = Table::default();
    t.add("token_embd.weight", &[h.n_embd, h.n_vocab]);
    for il in 0..h.n_layer {
        match h.arch {
            Arch::Qwen3Moe => qwen3moe_layer(&mut t, h, il)?,
            Arch::Qwen3 | Arch::Llama => dense_layer(&mut t, h, il)?,
            Arch::Deepseek2 => deepseek2_layer(&mut t, h, il)?,
            Arch::GptOss => gpt_oss_layer(&mut t, h, il)?,
            Arch::Qwen3Next => qwen3next_layer(&mut t, h, il)?,
        }
    }
    t.add("output_norm.weight", &[h.n_embd]);
    if !h.tied_embeddings {
        t.add("output.weight", &[h.n_embd, h.n_vocab]);
    }
    if h.arch == Arch::Llama && h.rope_scaling_type.as_deref() == Some("llama3") {
        // Llama 3.1+ rope scaling: `conversion/llama.py` writes `rope_freqs.weight` ({n_rot/2}),
        // `src/models/llama.cpp` loads it (TENSOR_NOT_REQUIRED | TENSOR_DUPLICATED per layer).
        t.add("rope_freqs.weight", &[h.rope_dim()? / 2]);
    }
    Ok(t.0)
}

#[derive(Default)]
struct Table(Vec<SynthTensor>);

impl Table {
    fn add(&mut self, name: &str, dims: &[u64]) {
        self.0.push(SynthTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            source: converter_source(name, dims.len()),
            ty: GgmlType::F32,
        });
    }
    fn blk(&mut self, il: u32, suffix: &str, dims: &[u64]) {
        self.add(&format!("blk.{il}.{suffix}"), dims);
    }
    /// gpt-oss experts: MXFP4 in every converter output (`conversion/gpt_oss.py`).
    fn blk_mxfp4(&mut self, il: u32, suffix: &str, dims: &[u64]) {
        self.blk(il, suffix, dims);
        self.0.last_mut().expect("just pushed").source = Source::Mxfp4;
    }
}

fn need(v: Option<u64>, what: &str) -> Result<u64, String> {
    v.ok_or_else(|| format!("hparams.{what} is required for this architecture"))
}

/// `src/models/qwen3moe.cpp: load_arch_tensors`; order as in the reference run
/// (data/runs/2026-11-23-reference-qwen3moe-h200x2/README.md).
fn qwen3moe_layer(t: &mut Table, h: &Hparams, il: u32) -> Result<(), String> {
    let (e, hd) = (h.n_embd, h.head_dim()?);
    let n_ff_exp = need(h.n_ff_exp, "n_ff_exp")?;
    t.blk(il, "attn_norm.weight", &[e]);
    t.blk(il, "attn_q.weight", &[e, hd * h.n_head]);
    t.blk(il, "attn_k.weight", &[e, hd * h.n_head_kv()]);
    t.blk(il, "attn_v.weight", &[e, hd * h.n_head_kv()]);
    t.blk(il, "attn_output.weight", &[hd * h.n_head, e]);
    t.blk(il, "attn_q_norm.weight", &[hd]);
    t.blk(il, "attn_k_norm.weight", &[hd]);
    t.blk(il, "ffn_norm.weight", &[e]);
    t.blk(il, "ffn_gate_inp.weight", &[e, h.n_expert]);
    t.blk(il, "ffn_gate_exps.weight", &[e, n_ff_exp, h.n_expert]);
    t.blk(il, "ffn_up_exps.weight", &[e, n_ff_exp, h.n_expert]);
    t.blk(il, "ffn_down_exps.weight", &[n_ff_exp, e, h.n_expert]);
    Ok(())
}

/// `src/models/qwen3.cpp` (with q/k norms) and `src/models/llama.cpp` (without).
fn dense_layer(t: &mut Table, h: &Hparams, il: u32) -> Result<(), String> {
    let (e, hd) = (h.n_embd, h.head_dim()?);
    let n_ff = need(h.n_ff, "n_ff")?;
    t.blk(il, "attn_norm.weight", &[e]);
    t.blk(il, "attn_q.weight", &[e, hd * h.n_head]);
    t.blk(il, "attn_k.weight", &[e, hd * h.n_head_kv()]);
    t.blk(il, "attn_v.weight", &[e, hd * h.n_head_kv()]);
    t.blk(il, "attn_output.weight", &[hd * h.n_head, e]);
    if h.arch == Arch::Qwen3 {
        t.blk(il, "attn_q_norm.weight", &[hd]);
        t.blk(il, "attn_k_norm.weight", &[hd]);
    }
    t.blk(il, "ffn_norm.weight", &[e]);
    t.blk(il, "ffn_gate.weight", &[e, n_ff]);
    t.blk(il, "ffn_up.weight", &[e, n_ff]);
    t.blk(il, "ffn_down.weight", &[n_ff, e]);
    Ok(())
}

/// `src/models/deepseek2.cpp: load_arch_tensors` with MLA (`hparams.is_mla()`: key_length_mla
/// and value_length_mla present, so `attn_k_b`/`attn_v_b` instead of `attn_kv_b`).
fn deepseek2_layer(t: &mut Table, h: &Hparams, il: u32) -> Result<(), String> {
    let e = h.n_embd;
    let q_lora = need(h.q_lora_rank, "q_lora_rank")?;
    let kv_lora = need(h.kv_lora_rank, "kv_lora_rank")?;
    let rope = need(h.qk_rope_head_dim, "qk_rope_head_dim")?;
    let nope = need(h.qk_nope_head_dim, "qk_nope_head_dim")?;
    let v_head = need(h.v_head_dim, "v_head_dim")?;
    let k_mla = nope + rope;
    let n_head = h.n_head;
    t.blk(il, "attn_norm.weight", &[e]);
    t.blk(il, "attn_q_a_norm.weight", &[q_lora]);
    t.blk(il, "attn_kv_a_norm.weight", &[kv_lora]);
    t.blk(il, "attn_q_a.weight", &[e, q_lora]);
    t.blk(il, "attn_q_b.weight", &[q_lora, n_head * k_mla]);
    t.blk(il, "attn_kv_a_mqa.weight", &[e, kv_lora + rope]);
    t.blk(il, "attn_k_b.weight", &[nope, kv_lora, n_head]);
    t.blk(il, "attn_v_b.weight", &[kv_lora, v_head, n_head]);
    t.blk(il, "attn_output.weight", &[n_head * v_head, e]);
    t.blk(il, "ffn_norm.weight", &[e]);
    if (il as u64) < h.n_dense_lead.unwrap_or(0) {
        let n_ff = need(h.n_ff, "n_ff")?;
        t.blk(il, "ffn_gate.weight", &[e, n_ff]);
        t.blk(il, "ffn_down.weight", &[n_ff, e]);
        t.blk(il, "ffn_up.weight", &[e, n_ff]);
    } else {
        let ff = need(h.n_ff_exp, "n_ff_exp")?;
        let n_exp = h.n_expert;
        let shared = ff * h.n_expert_shared;
        t.blk(il, "ffn_gate_inp.weight", &[e, n_exp]);
        t.blk(il, "exp_probs_b.bias", &[n_exp]);
        t.blk(il, "ffn_down_exps.weight", &[ff, e, n_exp]);
        t.blk(il, "ffn_gate_exps.weight", &[e, ff, n_exp]);
        t.blk(il, "ffn_up_exps.weight", &[e, ff, n_exp]);
        t.blk(il, "ffn_gate_shexp.weight", &[e, shared]);
        t.blk(il, "ffn_down_shexp.weight", &[shared, e]);
        t.blk(il, "ffn_up_shexp.weight", &[e, shared]);
    }
    Ok(())
}

/// `src/models/openai-moe.cpp: load_arch_tensors` (q/k/v biases through `create_tensor_qkv`;
/// the gpt-oss checkpoints have them).
fn gpt_oss_layer(t: &mut Table, h: &Hparams, il: u32) -> Result<(), String> {
    let (e, hd) = (h.n_embd, h.head_dim()?);
    let ff = need(h.n_ff_exp, "n_ff_exp")?;
    let (q, kv, n_exp) = (h.n_head * hd, h.n_head_kv() * hd, h.n_expert);
    t.blk(il, "attn_norm.weight", &[e]);
    t.blk(il, "post_attention_norm.weight", &[e]);
    t.blk(il, "attn_q.weight", &[e, q]);
    t.blk(il, "attn_k.weight", &[e, kv]);
    t.blk(il, "attn_v.weight", &[e, kv]);
    t.blk(il, "attn_q.bias", &[q]);
    t.blk(il, "attn_k.bias", &[kv]);
    t.blk(il, "attn_v.bias", &[kv]);
    t.blk(il, "attn_output.weight", &[q, e]);
    t.blk(il, "attn_sinks.weight", &[h.n_head]);
    t.blk(il, "ffn_gate_inp.weight", &[e, n_exp]);
    t.blk_mxfp4(il, "ffn_gate_exps.weight", &[e, ff, n_exp]);
    t.blk_mxfp4(il, "ffn_down_exps.weight", &[ff, e, n_exp]);
    t.blk_mxfp4(il, "ffn_up_exps.weight", &[e, ff, n_exp]);
    t.blk(il, "attn_output.bias", &[e]);
    t.blk(il, "ffn_gate_inp.bias", &[n_exp]);
    t.blk(il, "ffn_gate_exps.bias", &[ff, n_exp]);
    t.blk(il, "ffn_down_exps.bias", &[e, n_exp]);
    t.blk(il, "ffn_up_exps.bias", &[ff, n_exp]);
    Ok(())
}

/// `src/models/qwen3next.cpp: load_arch_tensors` (`load_block_trunk`): full attention every
/// `full_attention_interval`-th layer, Gated DeltaNet otherwise, with the split `attn_qkv` +
/// `attn_gate` that `conversion/qwen.py: Qwen3NextModel.modify_tensors` writes.
fn qwen3next_layer(t: &mut Table, h: &Hparams, il: u32) -> Result<(), String> {
    let e = h.n_embd;
    let hd = h.head_dim()?;
    let interval = h.full_attention_interval.unwrap_or(4).max(1) as u32;
    let recurrent = !(il + 1).is_multiple_of(interval);
    t.blk(il, "attn_norm.weight", &[e]);
    t.blk(il, "post_attention_norm.weight", &[e]);
    if !recurrent {
        // Q carries the output gate: n_embd_head_k * n_head * 2.
        t.blk(il, "attn_q.weight", &[e, hd * h.n_head * 2]);
        t.blk(il, "attn_k.weight", &[e, hd * h.n_head_kv()]);
        t.blk(il, "attn_v.weight", &[e, hd * h.n_head_kv()]);
        t.blk(il, "attn_output.weight", &[hd * h.n_head, e]);
        t.blk(il, "attn_q_norm.weight", &[hd]);
        t.blk(il, "attn_k_norm.weight", &[hd]);
    } else {
        let head_k = need(h.ssm_state_size, "ssm_state_size")?;
        let n_k_heads = need(h.ssm_group_count, "ssm_group_count")?;
        let n_v_heads = need(h.ssm_time_step_rank, "ssm_time_step_rank")?;
        let conv = need(h.ssm_conv_kernel, "ssm_conv_kernel")?;
        let key_dim = head_k * n_k_heads;
        let value_dim = head_k * n_v_heads;
        let conv_dim = key_dim * 2 + value_dim;
        t.blk(il, "attn_qkv.weight", &[e, conv_dim]);
        t.blk(il, "attn_gate.weight", &[e, value_dim]);
        t.blk(il, "ssm_conv1d.weight", &[conv, conv_dim]);
        t.blk(il, "ssm_dt.bias", &[n_v_heads]);
        t.blk(il, "ssm_a", &[n_v_heads]);
        t.blk(il, "ssm_ba.weight", &[e, n_v_heads * 2]);
        t.blk(il, "ssm_norm.weight", &[head_k]);
        t.blk(il, "ssm_out.weight", &[value_dim, e]);
    }
    let ff = need(h.n_ff_exp, "n_ff_exp")?;
    let ff_sh = need(h.n_ff_shexp, "n_ff_shexp")?;
    let n_exp = h.n_expert;
    t.blk(il, "ffn_gate_inp.weight", &[e, n_exp]);
    t.blk(il, "ffn_down_exps.weight", &[ff, e, n_exp]);
    t.blk(il, "ffn_gate_exps.weight", &[e, ff, n_exp]);
    t.blk(il, "ffn_up_exps.weight", &[e, ff, n_exp]);
    t.blk(il, "ffn_gate_inp_shexp.weight", &[e]);
    t.blk(il, "ffn_gate_shexp.weight", &[e, ff_sh]);
    t.blk(il, "ffn_up_shexp.weight", &[e, ff_sh]);
    t.blk(il, "ffn_down_shexp.weight", &[ff_sh, e]);
    Ok(())
}
