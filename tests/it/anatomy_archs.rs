//! Anatomy from hand-built headers of each architecture placer knows, following the tensor
//! tables of llama.cpp's `src/models/<arch>.cpp:load_arch_tensors` and the hparams rules of
//! `load_arch_hparams`; plus the real Gemma 3 270M header.
use crate::anatomy_support;

use anatomy_support::*;
use placer::anatomy::kv::{kv_bytes_per_token, kv_bytes_per_token_with, rs_bytes_per_seq};
use placer::anatomy::{from_gguf, Anatomy, GroupKind, LayerRef, Role};
use placer::gguf::GgmlType;

fn kinds(a: &Anatomy, layer: LayerRef) -> Vec<GroupKind> {
    a.groups_of(layer).map(|(_, g)| g.kind).collect()
}

fn role(a: &Anatomy, name: &str) -> Role {
    a.tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name}"))
        .role
}

/// Invariants every anatomy must satisfy: each tensor in exactly one group, bytes add up.
fn check_groups(a: &Anatomy) {
    let mut seen = vec![0u32; a.tensors.len()];
    for g in &a.groups {
        let bytes: u64 = g.tensors.iter().map(|&i| a.tensors[i].nbytes).sum();
        assert_eq!(bytes, g.bytes);
        for &i in &g.tensors {
            seen[i] += 1;
            assert_eq!(a.tensors[i].layer, g.layer, "{}", a.tensors[i].name);
        }
    }
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(
        a.groups.iter().map(|g| g.bytes).sum::<u64>(),
        a.total_bytes()
    );
}

#[test]
fn qwen3moe_layers_roles_groups_kv() {
    let m = qwen3moe();
    let a = from_gguf(&m).unwrap();
    check_groups(&a);
    assert!(a.known_arch && a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(a.total_bytes(), m.tensor_bytes());
    let hp = &a.hp;
    assert_eq!((hp.n_layer, hp.n_embd, hp.n_ctx_train), (4, 64, 40960));
    assert_eq!(hp.n_head, vec![4; 4]);
    assert_eq!(hp.n_head_kv, vec![2; 4]);
    assert_eq!((hp.head_dim_k, hp.head_dim_v), (16, 16));
    assert_eq!((hp.n_expert, hp.n_expert_used, hp.n_ff_exp), (8, 2, 32));
    // feed_forward_length is set but no layer has a dense FFN
    assert_eq!(hp.n_ff, vec![0; 4]);
    assert_eq!(hp.n_vocab, 1000); // from token_embd (no tokenizer, no vocab_size key)
    assert_eq!(a.file_type.as_deref(), Some("Q8_0"));
    for il in 0..4 {
        assert_eq!(
            kinds(&a, LayerRef::Block(il)),
            [
                GroupKind::LayerCore,
                GroupKind::ExpertsGate,
                GroupKind::ExpertsUp,
                GroupKind::ExpertsDown
            ]
        );
        // f16 K and V: 2 heads × 16 dims × 2 bytes each
        assert_eq!(
            kv_bytes_per_token(hp, il, GgmlType::F16, GgmlType::F16),
            2 * 2 * 16 * 2
        );
        assert_eq!(
            kv_bytes_per_token(hp, il, GgmlType::Q8_0, GgmlType::Q8_0),
            2 * 34
        );
    }
    assert_eq!(kinds(&a, LayerRef::Input), [GroupKind::Input]);
    assert_eq!(kinds(&a, LayerRef::Output), [GroupKind::Output]);
    assert_eq!(role(&a, "blk.0.ffn_gate_inp.weight"), Role::Router);
    assert_eq!(role(&a, "blk.0.attn_k_norm.weight"), Role::Attention);
    assert_eq!(role(&a, "blk.0.ffn_norm.weight"), Role::Norm);
    assert_eq!(role(&a, "output_norm.weight"), Role::OutputNorm);
    assert_eq!(role(&a, "token_embd.weight"), Role::TokenEmbd);
    let t = &a.tensors[1];
    assert_eq!(t.file_offset, 4096 + m.tensors[1].offset);
}

/// GLM-4.7-Flash-shaped deepseek2: MLA, 1 dense lead layer, a shared expert, 1 NextN block.
pub(crate) fn deepseek2() -> placer::gguf::GgufModel {
    let (e, h, x, ffe, ff) = (64u64, 4u64, 8u64, 32u64, 96u64);
    let (rank, rope, q_rank, nope, vmla) = (32u64, 8u64, 64u64, 32u64, 16u64);
    let mut b = Builder::new("deepseek2")
        .a("block_count", u32v(4))
        .a("nextn_predict_layers", u32v(1))
        .a("context_length", u32v(202752))
        .a("embedding_length", u32v(e as u32))
        .a("feed_forward_length", u32v(ff as u32))
        .a("attention.head_count", u32v(h as u32))
        .a("attention.head_count_kv", u32v(1))
        .a("attention.key_length", u32v((rank + rope) as u32))
        .a("attention.value_length", u32v(rank as u32))
        .a("attention.key_length_mla", u32v((nope + rope) as u32))
        .a("attention.value_length_mla", u32v(vmla as u32))
        .a("attention.kv_lora_rank", u32v(rank as u32))
        .a("attention.q_lora_rank", u32v(q_rank as u32))
        .a("rope.dimension_count", u32v(rope as u32))
        .a("leading_dense_block_count", u32v(1))
        .a("expert_count", u32v(x as u32))
        .a("expert_used_count", u32v(2))
        .a("expert_shared_count", u32v(1))
        .a("expert_feed_forward_length", u32v(ffe as u32))
        .a("vocab_size", u32v(500))
        .t("token_embd.weight", &[e, 500], Q8_0);
    for il in 0..4u32 {
        let l = [il];
        b = b
            .per_layer(l, "attn_norm.weight", &[e], F32)
            .per_layer(l, "attn_q_a_norm.weight", &[q_rank], F32)
            .per_layer(l, "attn_kv_a_norm.weight", &[rank], F32)
            .per_layer(l, "attn_q_a.weight", &[e, q_rank], Q8_0)
            .per_layer(l, "attn_q_b.weight", &[q_rank, h * (nope + rope)], Q8_0)
            .per_layer(l, "attn_kv_a_mqa.weight", &[e, rank + rope], Q8_0)
            .per_layer(l, "attn_k_b.weight", &[nope, rank, h], Q8_0)
            .per_layer(l, "attn_v_b.weight", &[rank, vmla, h], Q8_0)
            .per_layer(l, "attn_output.weight", &[h * vmla, e], Q8_0)
            .per_layer(l, "ffn_norm.weight", &[e], F32);
        if il == 0 {
            b = b
                .per_layer(l, "ffn_gate.weight", &[e, ff], Q8_0)
                .per_layer(l, "ffn_down.weight", &[ff, e], Q8_0)
                .per_layer(l, "ffn_up.weight", &[e, ff], Q8_0);
        } else {
            b = b
                .per_layer(l, "ffn_gate_inp.weight", &[e, x], F32)
                .per_layer(l, "exp_probs_b.bias", &[x], F32)
                .per_layer(l, "ffn_gate_exps.weight", &[e, ffe, x], Q8_0)
                .per_layer(l, "ffn_up_exps.weight", &[e, ffe, x], Q8_0)
                .per_layer(l, "ffn_down_exps.weight", &[ffe, e, x], Q8_0)
                .per_layer(l, "ffn_gate_shexp.weight", &[e, ffe], Q8_0)
                .per_layer(l, "ffn_up_shexp.weight", &[e, ffe], Q8_0)
                .per_layer(l, "ffn_down_shexp.weight", &[ffe, e], Q8_0);
        }
        if il == 3 {
            b = b
                .per_layer(l, "nextn.eh_proj.weight", &[2 * e, e], Q8_0)
                .per_layer(l, "nextn.enorm.weight", &[e], F32)
                .per_layer(l, "nextn.hnorm.weight", &[e], F32)
                .per_layer(l, "nextn.shared_head_norm.weight", &[e], F32);
        }
    }
    b.t("output_norm.weight", &[e], F32)
        .t("output.weight", &[e, 500], Q8_0)
        .build()
}

#[test]
fn deepseek2_mla_dense_lead_shared_expert_nextn() {
    let a = from_gguf(&deepseek2()).unwrap();
    check_groups(&a);
    let hp = &a.hp;
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(
        (hp.n_layer, hp.n_nextn, hp.n_dense_lead, hp.n_vocab),
        (4, 1, 1, 500)
    );
    let mla = hp.mla.expect("key_length_mla + value_length_mla → MLA");
    assert_eq!((mla.kv_lora_rank, mla.rope_dim), (32, 8));
    assert_eq!(
        (
            hp.n_expert,
            hp.n_expert_used,
            hp.n_expert_shared,
            hp.n_ff_exp
        ),
        (8, 2, 1, 32)
    );
    assert_eq!(hp.n_ff, vec![96, 0, 0, 0]);
    // MLA caches only K = kv_lora_rank + n_rot per token (one "head"); no V.
    assert_eq!(
        kv_bytes_per_token(hp, 0, GgmlType::F16, GgmlType::F16),
        (32 + 8) * 2
    );
    assert_eq!(
        kv_bytes_per_token_with(hp, 1, GgmlType::F16, GgmlType::F16, true),
        (32 + 8) * 2
    );
    // the NextN block has no KV in the main context, and all its tensors are skipped
    assert_eq!(kv_bytes_per_token(hp, 3, GgmlType::F16, GgmlType::F16), 0);
    assert!(a
        .tensors
        .iter()
        .filter(|t| t.layer == LayerRef::Block(3))
        .all(|t| t.role == Role::NextN));
    assert_eq!(
        kinds(&a, LayerRef::Block(0)),
        [GroupKind::LayerCore, GroupKind::DenseFfn]
    );
    assert_eq!(
        kinds(&a, LayerRef::Block(1)),
        [
            GroupKind::LayerCore,
            GroupKind::SharedExperts,
            GroupKind::ExpertsGate,
            GroupKind::ExpertsUp,
            GroupKind::ExpertsDown
        ]
    );
    assert_eq!(role(&a, "blk.1.exp_probs_b.bias"), Role::Router);
    assert_eq!(role(&a, "blk.1.attn_kv_a_mqa.weight"), Role::Attention);
    assert_eq!(role(&a, "blk.1.attn_kv_a_norm.weight"), Role::Attention);
    assert_eq!(role(&a, "blk.2.ffn_down_shexp.weight"), Role::SharedExpert);
}

fn gpt_oss() -> placer::gguf::GgufModel {
    let (e, h, kvh, hd, x, ffe) = (64u64, 8u64, 2u64, 8u64, 4u64, 64u64);
    let l = 0..4;
    Builder::new("gpt-oss")
        .a("block_count", u32v(4))
        .a("context_length", u32v(131072))
        .a("embedding_length", u32v(e as u32))
        .a("feed_forward_length", u32v(ffe as u32))
        .a("attention.head_count", u32v(h as u32))
        .a("attention.head_count_kv", u32v(kvh as u32))
        .a("attention.key_length", u32v(hd as u32))
        .a("attention.value_length", u32v(hd as u32))
        .a("attention.sliding_window", u32v(128))
        .a("expert_count", u32v(x as u32))
        .a("expert_used_count", u32v(2))
        .a("expert_feed_forward_length", u32v(ffe as u32))
        .t("token_embd.weight", &[e, 300], Q8_0)
        .per_layer(l.clone(), "attn_norm.weight", &[e], F32)
        .per_layer(l.clone(), "post_attention_norm.weight", &[e], F32)
        .per_layer(l.clone(), "attn_q.weight", &[e, h * hd], Q8_0)
        .per_layer(l.clone(), "attn_q.bias", &[h * hd], F32)
        .per_layer(l.clone(), "attn_k.weight", &[e, kvh * hd], Q8_0)
        .per_layer(l.clone(), "attn_v.weight", &[e, kvh * hd], Q8_0)
        .per_layer(l.clone(), "attn_output.weight", &[h * hd, e], Q8_0)
        .per_layer(l.clone(), "attn_sinks.weight", &[h], F32)
        .per_layer(l.clone(), "ffn_gate_inp.weight", &[e, x], F32)
        .per_layer(l.clone(), "ffn_gate_inp.bias", &[x], F32)
        .per_layer(l.clone(), "ffn_gate_exps.weight", &[e, ffe, x], MXFP4)
        .per_layer(l.clone(), "ffn_gate_exps.bias", &[ffe, x], F32)
        .per_layer(l.clone(), "ffn_up_exps.weight", &[e, ffe, x], MXFP4)
        .per_layer(l.clone(), "ffn_up_exps.bias", &[ffe, x], F32)
        .per_layer(l.clone(), "ffn_down_exps.weight", &[ffe, e, x], MXFP4)
        .per_layer(l, "ffn_down_exps.bias", &[e, x], F32)
        .t("output_norm.weight", &[e], F32)
        .t("output.weight", &[e, 300], Q8_0)
        .build()
}

#[test]
fn gpt_oss_even_layers_are_sliding_window_and_expert_biases_go_with_experts() {
    let a = from_gguf(&gpt_oss()).unwrap();
    check_groups(&a);
    // openai-moe.cpp: load_swa_pattern(ml, 2) → set_swa_pattern(2): il % 2 < 1
    assert_eq!(a.hp.swa_layers, [true, false, true, false]);
    assert_eq!(a.hp.n_swa, 128);
    assert_eq!(role(&a, "blk.0.attn_sinks.weight"), Role::Attention);
    assert_eq!(role(&a, "blk.0.post_attention_norm.weight"), Role::Norm);
    assert_eq!(role(&a, "blk.0.ffn_gate_inp.bias"), Role::Router);
    for (name, kind) in [
        ("blk.2.ffn_gate_exps.bias", GroupKind::ExpertsGate),
        ("blk.2.ffn_up_exps.bias", GroupKind::ExpertsUp),
        ("blk.2.ffn_down_exps.bias", GroupKind::ExpertsDown),
    ] {
        let i = a.tensors.iter().position(|t| t.name == name).unwrap();
        let g = a.groups.iter().find(|g| g.tensors.contains(&i)).unwrap();
        assert_eq!(g.kind, kind, "{name}");
        assert_eq!(g.tensors.len(), 2, "{name}: weight + bias");
    }
}

#[test]
fn sliding_window_pattern_key_overrides_the_default() {
    // scalar pattern (n_pattern = 3 → 2 SWA + 1 full)
    let mut m = gpt_oss();
    m.metadata
        .set("gpt-oss.attention.sliding_window_pattern", u32v(3));
    assert_eq!(
        from_gguf(&m).unwrap().hp.swa_layers,
        [true, true, false, true]
    );
    // explicit per-layer booleans
    m.metadata.set(
        "gpt-oss.attention.sliding_window_pattern",
        arr_bool(&[false, true, true, false]),
    );
    assert_eq!(
        from_gguf(&m).unwrap().hp.swa_layers,
        [false, true, true, false]
    );
}

/// Qwen3-Next-shaped: 8 layers, Gated DeltaNet in 3 of every 4, shared expert without a count key.
fn qwen3next(extra: &[(&str, placer::gguf::MetaValue)]) -> placer::gguf::GgufModel {
    let (e, h, kvh, hd, x, ffe) = (64u64, 4u64, 2u64, 16u64, 16u64, 32u64);
    let (conv, inner, state, groups, dt) = (4u64, 64u64, 16u64, 2u64, 4u64);
    let mut b = Builder::new("qwen3next")
        .a("block_count", u32v(8))
        .a("context_length", u32v(262144))
        .a("embedding_length", u32v(e as u32))
        .a("feed_forward_length", u32v(5120))
        .a("attention.head_count", u32v(h as u32))
        .a("attention.head_count_kv", u32v(kvh as u32))
        .a("attention.key_length", u32v(hd as u32))
        .a("attention.value_length", u32v(hd as u32))
        .a("expert_count", u32v(x as u32))
        .a("expert_used_count", u32v(4))
        .a("expert_feed_forward_length", u32v(ffe as u32))
        .a("expert_shared_feed_forward_length", u32v(ffe as u32))
        .a("ssm.conv_kernel", u32v(conv as u32))
        .a("ssm.inner_size", u32v(inner as u32))
        .a("ssm.state_size", u32v(state as u32))
        .a("ssm.group_count", u32v(groups as u32))
        .a("ssm.time_step_rank", u32v(dt as u32))
        .a("full_attention_interval", u32v(4));
    for (k, v) in extra {
        b = b.a(k, v.clone());
    }
    b = b.t("token_embd.weight", &[e, 300], Q8_0);
    for il in 0..8u32 {
        let l = [il];
        b = b.per_layer(l, "attn_norm.weight", &[e], F32);
        if !(il + 1).is_multiple_of(4) {
            let qkv = 2 * groups * state + inner;
            b = b
                .per_layer(l, "attn_qkv.weight", &[e, qkv], Q8_0)
                .per_layer(l, "attn_gate.weight", &[e, inner], Q8_0)
                .per_layer(l, "ssm_conv1d.weight", &[conv, qkv], F32)
                .per_layer(l, "ssm_dt.bias", &[dt], F32)
                .per_layer(l, "ssm_a", &[dt], F32)
                .per_layer(l, "ssm_ba.weight", &[e, 2 * dt], Q8_0)
                .per_layer(l, "ssm_norm.weight", &[state], F32)
                .per_layer(l, "ssm_out.weight", &[inner, e], Q8_0);
        } else {
            b = b
                .per_layer(l, "attn_q.weight", &[e, 2 * h * hd], Q8_0)
                .per_layer(l, "attn_k.weight", &[e, kvh * hd], Q8_0)
                .per_layer(l, "attn_v.weight", &[e, kvh * hd], Q8_0)
                .per_layer(l, "attn_output.weight", &[h * hd, e], Q8_0)
                .per_layer(l, "attn_q_norm.weight", &[hd], F32)
                .per_layer(l, "attn_k_norm.weight", &[hd], F32);
        }
        b = b
            .per_layer(l, "post_attention_norm.weight", &[e], F32)
            .per_layer(l, "ffn_gate_inp.weight", &[e, x], F32)
            .per_layer(l, "ffn_gate_up_exps.weight", &[e, 2 * ffe, x], Q8_0)
            .per_layer(l, "ffn_down_exps.weight", &[ffe, e, x], Q8_0)
            .per_layer(l, "ffn_gate_inp_shexp.weight", &[e], F32)
            .per_layer(l, "ffn_gate_shexp.weight", &[e, ffe], Q8_0)
            .per_layer(l, "ffn_up_shexp.weight", &[e, ffe], Q8_0)
            .per_layer(l, "ffn_down_shexp.weight", &[ffe, e], Q8_0);
    }
    b.t("output_norm.weight", &[e], F32)
        .t("output.weight", &[e, 300], Q8_0)
        .build()
}

#[test]
fn qwen3next_deltanet_layers_fused_experts_shared_expert() {
    let a = from_gguf(&qwen3next(&[])).unwrap();
    check_groups(&a);
    let hp = &a.hp;
    // qwen3next.cpp: is_recr(i) = (i + 1) % full_attention_interval != 0
    assert_eq!(
        hp.recurrent_layers,
        [true, true, true, false, true, true, true, false]
    );
    let ssm = hp.ssm.unwrap();
    assert_eq!(
        (
            ssm.d_conv,
            ssm.d_inner,
            ssm.d_state,
            ssm.n_group,
            ssm.dt_rank
        ),
        (4, 64, 16, 2, 4)
    );
    assert_eq!((hp.n_expert_shared, hp.n_ff_shexp), (1, 32));
    assert_eq!(hp.n_ff, vec![0; 8]);
    // KV only on full-attention layers; recurrent state (F32) only on the others
    let r = (4 - 1) * (64 + 2 * 2 * 16);
    let s = 16 * 64;
    for il in 0..8 {
        let full = (il + 1u32).is_multiple_of(4);
        let kv = kv_bytes_per_token(hp, il, GgmlType::F16, GgmlType::F16);
        assert_eq!(kv, if full { 2 * 2 * 16 * 2 } else { 0 }, "layer {il}");
        assert_eq!(
            rs_bytes_per_seq(hp, il),
            if full { 0 } else { 4 * (r + s) },
            "layer {il}"
        );
    }
    assert_eq!(role(&a, "blk.0.attn_qkv.weight"), Role::Recurrent);
    assert_eq!(role(&a, "blk.0.ssm_a"), Role::Recurrent);
    assert_eq!(role(&a, "blk.3.attn_q.weight"), Role::Attention);
    assert_eq!(
        role(&a, "blk.0.ffn_gate_up_exps.weight"),
        Role::ExpertsGateUp
    );
    assert_eq!(
        role(&a, "blk.0.ffn_gate_inp_shexp.weight"),
        Role::SharedExpert
    );
    assert_eq!(
        kinds(&a, LayerRef::Block(0)),
        [
            GroupKind::LayerCore,
            GroupKind::SharedExperts,
            GroupKind::ExpertsDown,
            GroupKind::ExpertsGateUp
        ]
    );
}

#[test]
fn qwen3next_recurrent_layers_key_wins_over_the_interval() {
    let pattern = [true, false, true, false, true, false, true, false];
    let a = from_gguf(&qwen3next(&[(
        "attention.recurrent_layers",
        arr_bool(&pattern),
    )]))
    .unwrap();
    assert_eq!(a.hp.recurrent_layers, pattern);
    let a = from_gguf(&qwen3next(&[("full_attention_interval", u32v(2))])).unwrap();
    assert_eq!(a.hp.recurrent_layers, pattern);
    let e = from_gguf(&qwen3next(&[(
        "attention.recurrent_layers",
        arr_bool(&[true; 5]),
    )]))
    .unwrap_err();
    assert!(e.to_string().contains("wrong array length"), "{e}");
}

#[test]
fn qwen35moe_uses_the_same_recurrent_rule() {
    let mut m = qwen3next(&[]);
    let entries = std::mem::take(&mut m.metadata.entries);
    m.metadata.entries = entries
        .into_iter()
        .map(|(k, v)| (k.replacen("qwen3next", "qwen35moe", 1), v))
        .collect();
    m.metadata.set(
        "general.architecture",
        placer::gguf::MetaValue::Str("qwen35moe".into()),
    );
    let a = from_gguf(&m).unwrap();
    assert!(a.known_arch);
    assert_eq!(
        a.hp.recurrent_layers,
        [true, true, true, false, true, true, true, false]
    );
}

#[test]
fn nemotron_h_recurrent_attention_and_mlp_layers() {
    // nemotron-h.cpp: recurrent iff n_head_kv(il) == 0 && n_ff(il) == 0
    let (e, inner, state, conv) = (64u64, 128u64, 16u64, 4u64);
    let kinds_ = ["M", "-", "*", "M", "-", "*"]; // mamba, mlp, attention
    let mut b = Builder::new("nemotron_h")
        .a("block_count", u32v(6))
        .a("embedding_length", u32v(e as u32))
        .a("context_length", u32v(8192))
        .a("attention.head_count", arr_u32(&[0, 0, 4, 0, 0, 4]))
        .a("attention.head_count_kv", arr_u32(&[0, 0, 2, 0, 0, 2]))
        .a("attention.key_length", u32v(16))
        .a("attention.value_length", u32v(16))
        .a("feed_forward_length", arr_u32(&[0, 96, 0, 0, 96, 0]))
        .a("ssm.conv_kernel", u32v(conv as u32))
        .a("ssm.inner_size", u32v(inner as u32))
        .a("ssm.state_size", u32v(state as u32))
        .a("ssm.group_count", u32v(8))
        .a("ssm.time_step_rank", u32v(8))
        .t("token_embd.weight", &[e, 100], Q8_0);
    for (il, k) in kinds_.iter().enumerate() {
        let l = [il as u32];
        b = b.per_layer(l, "attn_norm.weight", &[e], F32);
        b = match *k {
            "M" => b
                .per_layer(l, "ssm_in.weight", &[e, 2 * inner], Q8_0)
                .per_layer(l, "ssm_conv1d.weight", &[conv, inner], F32)
                .per_layer(l, "ssm_out.weight", &[inner, e], Q8_0),
            "-" => b.per_layer(l, "ffn_up.weight", &[e, 96], Q8_0).per_layer(
                l,
                "ffn_down.weight",
                &[96, e],
                Q8_0,
            ),
            _ => b
                .per_layer(l, "attn_q.weight", &[e, 64], Q8_0)
                .per_layer(l, "attn_k.weight", &[e, 32], Q8_0)
                .per_layer(l, "attn_v.weight", &[e, 32], Q8_0)
                .per_layer(l, "attn_output.weight", &[64, e], Q8_0),
        };
    }
    let a = from_gguf(&b.t("output_norm.weight", &[e], F32).build()).unwrap();
    check_groups(&a);
    assert_eq!(
        a.hp.recurrent_layers,
        [true, false, false, true, false, false]
    );
    assert_eq!(a.hp.n_ff, vec![0, 96, 0, 0, 96, 0]);
    let kv: Vec<u64> = (0..6)
        .map(|il| kv_bytes_per_token(&a.hp, il, GgmlType::F16, GgmlType::F16))
        .collect();
    assert_eq!(kv, [0, 0, 128, 0, 0, 128]);
    assert!(rs_bytes_per_seq(&a.hp, 0) > 0 && rs_bytes_per_seq(&a.hp, 1) == 0);
    assert_eq!(role(&a, "blk.0.ssm_in.weight"), Role::Recurrent);
    assert_eq!(
        kinds(&a, LayerRef::Block(1)),
        [GroupKind::LayerCore, GroupKind::DenseFfn]
    );
    // tied output: no output.weight in this file
    assert!(a.tensors.iter().all(|t| t.role != Role::Output));
}

#[test]
fn llama_dense_with_rope_freqs_in_layer_0() {
    let (e, ff) = (64u64, 128u64);
    let l = 0..2;
    let m = Builder::new("llama")
        .a("block_count", u32v(2))
        .a("embedding_length", u32v(e as u32))
        .a("feed_forward_length", u32v(ff as u32))
        .a("attention.head_count", u32v(8))
        .a("attention.head_count_kv", u32v(2))
        .a("context_length", u32v(131072))
        .kv(
            "tokenizer.ggml.tokens",
            placer::gguf::MetaValue::Array(8, vec![placer::gguf::MetaValue::Str("a".into()); 7]),
        )
        .t("token_embd.weight", &[e, 7], F16)
        .t("rope_freqs.weight", &[4], F32)
        .per_layer(l.clone(), "attn_norm.weight", &[e], F32)
        .per_layer(l.clone(), "attn_q.weight", &[e, e], F16)
        .per_layer(l.clone(), "attn_k.weight", &[e, 16], F16)
        .per_layer(l.clone(), "attn_v.weight", &[e, 16], F16)
        .per_layer(l.clone(), "attn_output.weight", &[e, e], F16)
        .per_layer(l.clone(), "ffn_norm.weight", &[e], F32)
        .per_layer(l.clone(), "ffn_gate.weight", &[e, ff], F16)
        .per_layer(l.clone(), "ffn_up.weight", &[e, ff], F16)
        .per_layer(l, "ffn_down.weight", &[ff, e], F16)
        .t("output_norm.weight", &[e], F32)
        .t("output.weight", &[e, 7], F16)
        .build();
    let a = from_gguf(&m).unwrap();
    check_groups(&a);
    // head dim = n_embd / n_head when key_length is absent
    assert_eq!((a.hp.head_dim_k, a.hp.head_dim_v), (8, 8));
    assert_eq!(a.hp.n_vocab, 7); // tokenizer list
    assert_eq!(a.hp.n_ff, vec![128, 128]);
    let t = a
        .tensors
        .iter()
        .find(|t| t.name == "rope_freqs.weight")
        .unwrap();
    assert_eq!((t.layer, t.role), (LayerRef::Block(0), Role::Attention));
    assert_eq!(
        kinds(&a, LayerRef::Block(1)),
        [GroupKind::LayerCore, GroupKind::DenseFfn]
    );
    assert_eq!(
        kv_bytes_per_token(&a.hp, 0, GgmlType::F16, GgmlType::F16),
        2 * 2 * 8 * 2
    );
}

#[test]
fn unknown_architecture_gets_generic_roles_and_a_warning() {
    let m = Builder::new("brandnew")
        .a("block_count", u32v(1))
        .a("embedding_length", u32v(32))
        .a("attention.sliding_window", u32v(64))
        .t("token_embd.weight", &[32, 10], F16)
        .t("blk.0.attn_q.weight", &[32, 32], F16)
        .t("blk.0.ffn_up_exps.weight", &[32, 32, 2], F16)
        .t("blk.0.weird_thing.weight", &[32], F32)
        .build();
    let a = from_gguf(&m).unwrap();
    check_groups(&a);
    assert!(!a.known_arch);
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("'brandnew' is not one placer knows")),
        "{:?}",
        a.warnings
    );
    assert!(
        a.warnings.iter().any(|w| w.contains("sliding_window")),
        "{:?}",
        a.warnings
    );
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("blk.0.weird_thing.weight")),
        "{:?}",
        a.warnings
    );
    assert_eq!(role(&a, "blk.0.attn_q.weight"), Role::Attention);
    assert_eq!(role(&a, "blk.0.ffn_up_exps.weight"), Role::ExpertsUp);
    assert_eq!(role(&a, "blk.0.weird_thing.weight"), Role::Other);
}

#[test]
fn bad_metadata_is_an_error_not_a_panic() {
    let no_arch = placer::gguf::GgufModel {
        metadata: Default::default(),
        tensors: vec![],
        shards: vec![],
    };
    assert!(from_gguf(&no_arch)
        .unwrap_err()
        .to_string()
        .contains("general.architecture"));
    let m = Builder::new("llama")
        .a("block_count", u32v(100_000))
        .build();
    assert!(from_gguf(&m)
        .unwrap_err()
        .to_string()
        .contains("LLAMA_MAX_LAYERS"));
    let m = Builder::new("llama")
        .a("block_count", u32v(2))
        .a("attention.head_count", arr_u32(&[4, 4, 4]))
        .build();
    assert!(from_gguf(&m)
        .unwrap_err()
        .to_string()
        .contains("wrong array length"));
    let m = Builder::new("llama")
        .a("block_count", u32v(1))
        .t("blk.5.attn_q.weight", &[4], F32)
        .build();
    assert!(from_gguf(&m).unwrap_err().to_string().contains("block 5"));
    let m = Builder::new("llama")
        .a("block_count", placer::gguf::MetaValue::I32(-3))
        .build();
    assert!(from_gguf(&m).is_err());
    let m = Builder::new("llama")
        .a("block_count", u32v(4))
        .a("nextn_predict_layers", u32v(5))
        .build();
    assert!(from_gguf(&m).is_err());
}

#[test]
fn gemma3_270m_real_header() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gguf/gemma-3-270m-q4_k_m.header.gguf.gz"
    );
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let m = placer::gguf::read_header(std::io::BufReader::new(gz)).unwrap();
    let a = from_gguf(&m).unwrap();
    check_groups(&a);
    assert!(a.known_arch && a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(a.arch, "gemma3");
    assert_eq!(a.file_type.as_deref(), Some("Q4_K_M"));
    let hp = &a.hp;
    assert_eq!(
        (hp.n_layer, hp.n_embd, hp.n_ctx_train, hp.n_vocab),
        (18, 640, 32768, 262144)
    );
    assert_eq!(
        (hp.n_head[0], hp.n_head_kv[0], hp.head_dim_k, hp.head_dim_v),
        (4, 1, 256, 256)
    );
    assert_eq!(hp.n_swa, 512);
    // gemma3.cpp: load_swa_pattern(ml, 6) → 5 sliding-window layers then 1 full
    let expected: Vec<bool> = (0..18).map(|il| il % 6 < 5).collect();
    assert_eq!(hp.swa_layers, expected);
    assert_eq!(hp.n_ff, vec![2048; 18]);
    assert_eq!(a.total_bytes(), m.tensor_bytes());
    assert!(
        a.tensors.iter().all(|t| t.role != Role::Other),
        "every Gemma tensor has a known role"
    );
    assert_eq!(
        kv_bytes_per_token(hp, 0, GgmlType::F16, GgmlType::F16),
        2 * 256 * 2
    );
}
