//! Hand-built `GgufModel` values (metadata + tensor infos) for the anatomy and inspect tests.
#![allow(dead_code)]

use placer::gguf::{GgmlType, GgufModel, MetaValue, Metadata, Shard, TensorInfo};

pub struct Builder {
    arch: String,
    md: Metadata,
    tensors: Vec<TensorInfo>,
    next_offset: u64,
}

pub fn u32v(v: u32) -> MetaValue {
    MetaValue::U32(v)
}

pub fn arr_u32(v: &[u32]) -> MetaValue {
    MetaValue::Array(4, v.iter().map(|&x| MetaValue::U32(x)).collect())
}

pub fn arr_bool(v: &[bool]) -> MetaValue {
    MetaValue::Array(7, v.iter().map(|&x| MetaValue::Bool(x)).collect())
}

pub const F32: GgmlType = GgmlType::F32;
pub const F16: GgmlType = GgmlType::F16;
pub const Q8_0: GgmlType = GgmlType::Q8_0;
pub const MXFP4: GgmlType = GgmlType::MXFP4;

impl Builder {
    pub fn new(arch: &str) -> Self {
        let mut md = Metadata::default();
        md.set("general.architecture", MetaValue::Str(arch.into()));
        Builder {
            arch: arch.into(),
            md,
            tensors: vec![],
            next_offset: 0,
        }
    }

    /// `<arch>.<suffix>` = value.
    pub fn a(mut self, suffix: &str, v: MetaValue) -> Self {
        let key = format!("{}.{suffix}", self.arch);
        self.md.set(&key, v);
        self
    }

    pub fn kv(mut self, key: &str, v: MetaValue) -> Self {
        self.md.set(key, v);
        self
    }

    pub fn t(mut self, name: &str, dims: &[u64], ty: GgmlType) -> Self {
        let nbytes = ty.nbytes(dims).expect("test tensor dims fit the type");
        self.tensors.push(TensorInfo {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type: ty,
            offset: self.next_offset,
            nbytes,
            size_from_offsets: false,
            shard: 0,
        });
        self.next_offset += nbytes.div_ceil(32) * 32;
        self
    }

    /// One tensor per layer: `blk.{il}.{base}`.
    pub fn per_layer(
        mut self,
        layers: impl IntoIterator<Item = u32>,
        base: &str,
        dims: &[u64],
        ty: GgmlType,
    ) -> Self {
        for il in layers {
            self = self.t(&format!("blk.{il}.{base}"), dims, ty);
        }
        self
    }

    pub fn build(self) -> GgufModel {
        let n = self.tensors.len() as u64;
        GgufModel {
            metadata: self.md,
            tensors: self.tensors,
            shards: vec![Shard {
                path: None,
                version: 3,
                alignment: 32,
                data_offset: 4096,
                file_size: Some(4096 + self.next_offset),
                n_tensors: n,
            }],
        }
    }
}

/// A small Qwen3-30B-A3B-shaped model (qwen3moe): 4 layers, 8 experts, 2 used.
pub fn qwen3moe() -> GgufModel {
    let (e, h, kvh, hd, x, ffe) = (64u64, 4u64, 2u64, 16u64, 8u64, 32u64);
    let l = 0..4;
    Builder::new("qwen3moe")
        .a("block_count", u32v(4))
        .a("context_length", u32v(40960))
        .a("embedding_length", u32v(e as u32))
        .a("feed_forward_length", u32v(96))
        .a("attention.head_count", u32v(h as u32))
        .a("attention.head_count_kv", u32v(kvh as u32))
        .a("attention.key_length", u32v(hd as u32))
        .a("attention.value_length", u32v(hd as u32))
        .a("expert_count", u32v(x as u32))
        .a("expert_used_count", u32v(2))
        .a("expert_feed_forward_length", u32v(ffe as u32))
        .kv("general.file_type", u32v(7))
        .t("token_embd.weight", &[e, 1000], Q8_0)
        .per_layer(l.clone(), "attn_norm.weight", &[e], F32)
        .per_layer(l.clone(), "attn_q.weight", &[e, h * hd], Q8_0)
        .per_layer(l.clone(), "attn_k.weight", &[e, kvh * hd], Q8_0)
        .per_layer(l.clone(), "attn_v.weight", &[e, kvh * hd], Q8_0)
        .per_layer(l.clone(), "attn_output.weight", &[h * hd, e], Q8_0)
        .per_layer(l.clone(), "attn_q_norm.weight", &[hd], F32)
        .per_layer(l.clone(), "attn_k_norm.weight", &[hd], F32)
        .per_layer(l.clone(), "ffn_norm.weight", &[e], F32)
        .per_layer(l.clone(), "ffn_gate_inp.weight", &[e, x], F32)
        .per_layer(l.clone(), "ffn_gate_exps.weight", &[e, ffe, x], Q8_0)
        .per_layer(l.clone(), "ffn_up_exps.weight", &[e, ffe, x], Q8_0)
        .per_layer(l, "ffn_down_exps.weight", &[ffe, e, x], Q8_0)
        .t("output_norm.weight", &[e], F32)
        .t("output.weight", &[e, 1000], Q8_0)
        .build()
}
