//! Hand-built anatomies with llama.cpp's real tensor names (`src/llama-arch.cpp:
//! LLM_TENSOR_NAMES`), for tests and benchmarks that must not depend on a GGUF header: the
//! 94-layer benchmark model, random shapes in property tests. Shapes follow the published configs
//! named on each constructor; bytes are `ggml_nbytes` of the stated types. These are *synthetic*
//! tables: the catalog's header snapshots are the real thing wherever one exists.

#![allow(dead_code)]

use placer::anatomy::{Anatomy, GroupKind, Hparams, LayerRef, Mla, Role, Ssm, Tensor, TensorGroup};
use placer::gguf::GgmlType;

/// Shape of a (MoE or dense) transformer, enough to produce its tensor table.
#[derive(Debug, Clone)]
pub struct Spec {
    pub arch: String,
    pub n_layer: u32,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub n_vocab: u32,
    pub n_ctx_train: u32,
    /// 0 = dense model.
    pub n_expert: u32,
    pub n_expert_used: u32,
    pub n_ff_exp: u32,
    /// Shared experts (0 or 1 group per MoE layer).
    pub n_expert_shared: u32,
    pub n_ff_shexp: u32,
    /// Leading dense layers (deepseek2) — every layer for a dense model.
    pub n_dense_lead: u32,
    pub n_ff: u32,
    pub mla: Option<Mla>,
    /// Sliding window and the period of SWA layers (gpt-oss: 2 → even layers SWA).
    pub n_swa: u32,
    pub swa_period: u32,
    /// Every `full_attn_interval`-th layer has attention, the others are recurrent (qwen3next).
    pub full_attn_interval: u32,
    /// gpt-oss style `.bias` tensors on the expert matrices.
    pub expert_bias: bool,
    /// Fused `ffn_gate_up_exps`.
    pub fused_gate_up: bool,
    pub wtype: GgmlType,
    /// Type of the expert matrices (gpt-oss: MXFP4).
    pub exp_type: GgmlType,
}

impl Spec {
    /// Qwen3-30B-A3B (Qwen/Qwen3-30B-A3B config.json), all matrices Q8_0: the shape of the
    /// reference runs in data/runs/2026-11-23-reference-qwen3moe-h200x2.
    pub fn qwen3_30b_a3b() -> Spec {
        Spec {
            arch: "qwen3moe".into(),
            n_layer: 48,
            n_embd: 2048,
            n_head: 32,
            n_head_kv: 4,
            head_dim: 128,
            n_vocab: 151936,
            n_ctx_train: 262144,
            n_expert: 128,
            n_expert_used: 8,
            n_ff_exp: 768,
            n_expert_shared: 0,
            n_ff_shexp: 0,
            n_dense_lead: 0,
            n_ff: 6144,
            mla: None,
            n_swa: 0,
            swa_period: 0,
            full_attn_interval: 0,
            expert_bias: false,
            fused_gate_up: false,
            wtype: GgmlType::Q8_0,
            exp_type: GgmlType::Q8_0,
        }
    }

    /// Qwen3-235B-A22B (Qwen/Qwen3-235B-A22B config.json): 94 layers, 128 experts, 8 used.
    pub fn qwen3_235b_a22b() -> Spec {
        Spec {
            n_layer: 94,
            n_embd: 4096,
            n_head: 64,
            n_head_kv: 4,
            n_ff_exp: 1536,
            n_ff: 12288,
            n_ctx_train: 40960,
            wtype: GgmlType::Q4_K,
            exp_type: GgmlType::Q4_K,
            ..Spec::qwen3_30b_a3b()
        }
    }

    /// GLM-4.7-Flash (zai-org/GLM-4.7-Flash config.json): deepseek2 arch, MLA 512+64, 47 layers,
    /// 1 dense lead layer, 64 experts / 4 used + 1 shared.
    pub fn glm_4_7_flash(t: GgmlType) -> Spec {
        Spec {
            arch: "deepseek2".into(),
            n_layer: 47,
            n_embd: 2048,
            n_head: 20,
            n_head_kv: 1,
            head_dim: 576,
            n_vocab: 154880,
            n_ctx_train: 202752,
            n_expert: 64,
            n_expert_used: 4,
            n_ff_exp: 1536,
            n_expert_shared: 1,
            n_ff_shexp: 1536,
            n_dense_lead: 1,
            n_ff: 10240,
            mla: Some(Mla {
                kv_lora_rank: 512,
                rope_dim: 64,
            }),
            n_swa: 0,
            swa_period: 0,
            full_attn_interval: 0,
            expert_bias: false,
            fused_gate_up: false,
            wtype: t,
            exp_type: t,
        }
    }

    /// gpt-oss-120b (openai/gpt-oss-120b config.json): 36 layers, 128 experts / 4 used, MXFP4
    /// experts with biases, even layers sliding-window (128).
    pub fn gpt_oss_120b() -> Spec {
        Spec {
            arch: "gpt-oss".into(),
            n_layer: 36,
            n_embd: 2880,
            n_head: 64,
            n_head_kv: 8,
            head_dim: 64,
            n_vocab: 201088,
            n_ctx_train: 131072,
            n_expert: 128,
            n_expert_used: 4,
            n_ff_exp: 2880,
            n_expert_shared: 0,
            n_ff_shexp: 0,
            n_dense_lead: 0,
            n_ff: 0,
            mla: None,
            n_swa: 128,
            swa_period: 2,
            full_attn_interval: 0,
            expert_bias: true,
            fused_gate_up: false,
            wtype: GgmlType::F16,
            exp_type: GgmlType::MXFP4,
        }
    }

    /// Qwen3-Coder-Next / Qwen3-Next-80B-A3B (Qwen/Qwen3-Next-80B-A3B-Instruct config.json):
    /// 48 layers, every 4th full attention, the others Gated DeltaNet; 512 experts / 10 used + 1
    /// shared.
    pub fn qwen3_next_80b(t: GgmlType) -> Spec {
        Spec {
            arch: "qwen3next".into(),
            n_layer: 48,
            n_embd: 2048,
            n_head: 16,
            n_head_kv: 2,
            head_dim: 256,
            n_vocab: 151936,
            n_ctx_train: 262144,
            n_expert: 512,
            n_expert_used: 10,
            n_ff_exp: 512,
            n_expert_shared: 1,
            n_ff_shexp: 512,
            n_dense_lead: 0,
            n_ff: 5120,
            mla: None,
            n_swa: 0,
            swa_period: 0,
            full_attn_interval: 4,
            expert_bias: false,
            fused_gate_up: false,
            wtype: t,
            exp_type: t,
        }
    }

    /// Qwen3-32B (Qwen/Qwen3-32B config.json): dense, 64 layers.
    pub fn qwen3_32b(t: GgmlType) -> Spec {
        Spec {
            arch: "qwen3".into(),
            n_layer: 64,
            n_embd: 5120,
            n_head: 64,
            n_head_kv: 8,
            head_dim: 128,
            n_vocab: 151936,
            n_ctx_train: 40960,
            n_expert: 0,
            n_expert_used: 0,
            n_ff_exp: 0,
            n_expert_shared: 0,
            n_ff_shexp: 0,
            n_dense_lead: 64,
            n_ff: 25600,
            mla: None,
            n_swa: 0,
            swa_period: 0,
            full_attn_interval: 0,
            expert_bias: false,
            fused_gate_up: false,
            wtype: t,
            exp_type: t,
        }
    }
}

struct Builder {
    tensors: Vec<Tensor>,
    groups: Vec<TensorGroup>,
}

impl Builder {
    fn add(
        &mut self,
        name: String,
        layer: LayerRef,
        role: Role,
        t: GgmlType,
        dims: Vec<u64>,
    ) -> usize {
        // Types whose block does not divide the row fall back to F16 (llama-quantize does too).
        let t = if t.row_size(dims[0]).is_some() {
            t
        } else {
            GgmlType::F16
        };
        let nbytes = t.nbytes(&dims).unwrap_or(0);
        self.tensors.push(Tensor {
            name,
            layer,
            role,
            ggml_type: t,
            dims,
            nbytes,
            shard: 0,
            file_offset: 0,
        });
        self.tensors.len() - 1
    }
    fn group(&mut self, layer: LayerRef, kind: GroupKind, tensors: Vec<usize>) {
        if tensors.is_empty() {
            return;
        }
        let bytes = tensors.iter().map(|&t| self.tensors[t].nbytes).sum();
        self.groups.push(TensorGroup {
            layer,
            kind,
            tensors,
            bytes,
        });
    }
}

/// Build the tensor table of `s` with llama.cpp's names and group it the way placer moves it.
pub fn build(s: &Spec) -> Anatomy {
    let mut b = Builder {
        tensors: Vec::new(),
        groups: Vec::new(),
    };
    let (e, v) = (s.n_embd as u64, s.n_vocab as u64);
    let f32t = GgmlType::F32;
    let te = b.add(
        "token_embd.weight".into(),
        LayerRef::Input,
        Role::TokenEmbd,
        s.wtype,
        vec![e, v],
    );
    b.group(LayerRef::Input, GroupKind::Input, vec![te]);
    let recurrent =
        |il: u32| s.full_attn_interval > 0 && !(il + 1).is_multiple_of(s.full_attn_interval);
    let hd = s.head_dim as u64;
    for il in 0..s.n_layer {
        let l = LayerRef::Block(il);
        let p = |n: &str| format!("blk.{il}.{n}");
        let mut core = vec![b.add(p("attn_norm.weight"), l, Role::Norm, f32t, vec![e])];
        if recurrent(il) {
            let inner = 2 * e * 2;
            core.push(b.add(
                p("ssm_in.weight"),
                l,
                Role::Recurrent,
                s.wtype,
                vec![e, inner + 2 * 2048],
            ));
            core.push(b.add(
                p("ssm_conv1d.weight"),
                l,
                Role::Recurrent,
                f32t,
                vec![4, inner + 2048],
            ));
            core.push(b.add(p("ssm_a"), l, Role::Recurrent, f32t, vec![32]));
            core.push(b.add(p("ssm_dt.bias"), l, Role::Recurrent, f32t, vec![32]));
            core.push(b.add(p("ssm_norm.weight"), l, Role::Recurrent, f32t, vec![128]));
            core.push(b.add(
                p("ssm_out.weight"),
                l,
                Role::Recurrent,
                s.wtype,
                vec![inner, e],
            ));
        } else if let Some(m) = s.mla {
            let (r, rope) = (m.kv_lora_rank as u64, m.rope_dim as u64);
            let nh = s.n_head as u64;
            core.push(b.add(
                p("attn_q_a.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![e, 768],
            ));
            core.push(b.add(
                p("attn_q_a_norm.weight"),
                l,
                Role::Attention,
                f32t,
                vec![768],
            ));
            core.push(b.add(
                p("attn_q_b.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![768, nh * (192 + 64)],
            ));
            core.push(b.add(
                p("attn_kv_a_mqa.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![e, r + rope],
            ));
            core.push(b.add(
                p("attn_kv_a_norm.weight"),
                l,
                Role::Attention,
                f32t,
                vec![r],
            ));
            core.push(b.add(
                p("attn_k_b.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![192, r, nh],
            ));
            core.push(b.add(
                p("attn_v_b.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![r, 256, nh],
            ));
            core.push(b.add(
                p("attn_output.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![nh * 256, e],
            ));
        } else {
            let (q, kv) = (s.n_head as u64 * hd, s.n_head_kv as u64 * hd);
            core.push(b.add(p("attn_q.weight"), l, Role::Attention, s.wtype, vec![e, q]));
            core.push(b.add(p("attn_k.weight"), l, Role::Attention, s.wtype, vec![e, kv]));
            core.push(b.add(p("attn_v.weight"), l, Role::Attention, s.wtype, vec![e, kv]));
            core.push(b.add(
                p("attn_output.weight"),
                l,
                Role::Attention,
                s.wtype,
                vec![q, e],
            ));
            if s.expert_bias {
                core.push(b.add(
                    p("attn_sinks.weight"),
                    l,
                    Role::Attention,
                    f32t,
                    vec![s.n_head as u64],
                ));
            }
        }
        core.push(b.add(p("ffn_norm.weight"), l, Role::Norm, f32t, vec![e]));
        let moe = s.n_expert > 0 && il >= s.n_dense_lead;
        if moe {
            let (ne, ff) = (s.n_expert as u64, s.n_ff_exp as u64);
            core.push(b.add(p("ffn_gate_inp.weight"), l, Role::Router, f32t, vec![e, ne]));
            let xt = s.exp_type;
            let exp = |b: &mut Builder, stem: &str, role, dims: Vec<u64>, kind| {
                let mut ts = vec![b.add(p(&format!("{stem}.weight")), l, role, xt, dims.clone())];
                if s.expert_bias {
                    ts.push(b.add(p(&format!("{stem}.bias")), l, role, f32t, vec![dims[1], ne]));
                }
                b.group(l, kind, ts);
            };
            if s.fused_gate_up {
                exp(
                    &mut b,
                    "ffn_gate_up_exps",
                    Role::ExpertsGateUp,
                    vec![e, 2 * ff, ne],
                    GroupKind::ExpertsGateUp,
                );
            } else {
                exp(
                    &mut b,
                    "ffn_gate_exps",
                    Role::ExpertsGate,
                    vec![e, ff, ne],
                    GroupKind::ExpertsGate,
                );
                exp(
                    &mut b,
                    "ffn_up_exps",
                    Role::ExpertsUp,
                    vec![e, ff, ne],
                    GroupKind::ExpertsUp,
                );
            }
            exp(
                &mut b,
                "ffn_down_exps",
                Role::ExpertsDown,
                vec![ff, e, ne],
                GroupKind::ExpertsDown,
            );
            if s.n_expert_shared > 0 {
                let sf = s.n_ff_shexp as u64;
                let sh = vec![
                    b.add(
                        p("ffn_gate_shexp.weight"),
                        l,
                        Role::SharedExpert,
                        s.wtype,
                        vec![e, sf],
                    ),
                    b.add(
                        p("ffn_up_shexp.weight"),
                        l,
                        Role::SharedExpert,
                        s.wtype,
                        vec![e, sf],
                    ),
                    b.add(
                        p("ffn_down_shexp.weight"),
                        l,
                        Role::SharedExpert,
                        s.wtype,
                        vec![sf, e],
                    ),
                ];
                b.group(l, GroupKind::SharedExperts, sh);
            }
        } else {
            let ff = s.n_ff as u64;
            let d = vec![
                b.add(
                    p("ffn_gate.weight"),
                    l,
                    Role::DenseFfn,
                    s.wtype,
                    vec![e, ff],
                ),
                b.add(p("ffn_up.weight"), l, Role::DenseFfn, s.wtype, vec![e, ff]),
                b.add(
                    p("ffn_down.weight"),
                    l,
                    Role::DenseFfn,
                    s.wtype,
                    vec![ff, e],
                ),
            ];
            b.group(l, GroupKind::DenseFfn, d);
        }
        b.group(l, GroupKind::LayerCore, core);
    }
    let on = b.add(
        "output_norm.weight".into(),
        LayerRef::Output,
        Role::OutputNorm,
        f32t,
        vec![e],
    );
    let o = b.add(
        "output.weight".into(),
        LayerRef::Output,
        Role::Output,
        s.wtype,
        vec![e, v],
    );
    b.group(LayerRef::Output, GroupKind::Output, vec![on, o]);

    let n = s.n_layer as usize;
    let hp = Hparams {
        n_layer: s.n_layer,
        n_nextn: 0,
        n_embd: s.n_embd,
        n_vocab: s.n_vocab,
        n_ctx_train: s.n_ctx_train,
        n_head: vec![s.n_head; n],
        n_head_kv: vec![s.n_head_kv; n],
        head_dim_k: s.head_dim,
        head_dim_v: if s.mla.is_some() { 512 } else { s.head_dim },
        mla: s.mla,
        n_swa: s.n_swa,
        swa_layers: (0..s.n_layer)
            .map(|il| s.swa_period > 0 && il % s.swa_period < s.swa_period - 1)
            .collect(),
        recurrent_layers: (0..s.n_layer).map(recurrent).collect(),
        ssm: (s.full_attn_interval > 0).then_some(Ssm {
            d_conv: 4,
            d_inner: 4096,
            d_state: 128,
            n_group: 16,
            dt_rank: 32,
        }),
        n_expert: s.n_expert,
        n_expert_used: s.n_expert_used,
        n_expert_shared: s.n_expert_shared,
        n_dense_lead: if s.n_expert > 0 { s.n_dense_lead } else { 0 },
        n_ff: (0..s.n_layer)
            .map(|il| {
                if s.n_expert == 0 || il < s.n_dense_lead {
                    s.n_ff
                } else {
                    0
                }
            })
            .collect(),
        n_ff_exp: s.n_ff_exp,
        n_ff_shexp: s.n_ff_shexp,
    };
    Anatomy {
        arch: s.arch.clone(),
        known_arch: true,
        hp,
        tensors: b.tensors,
        groups: b.groups,
        file_type: Some(s.wtype.name()),
        name: Some(format!("synthetic {}", s.arch)),
        shards: vec![(0, None)],
        warnings: vec!["synthetic tensor table (solver fixture)".into()],
    }
}
