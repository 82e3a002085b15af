//! `placer synth`: the exact tensor table and metadata llama.cpp's loader expects for an
//! architecture, its hyper-parameters and a file type, written header-only (a snapshot for the
//! catalog) or full-size with random valid weights (for real llama.cpp runs).
//!
//! - `tables`: the per-architecture tensor tables (`src/models/<arch>.cpp: load_arch_tensors`).
//! - `quant`: converter and llama-quantize per-tensor type choices (`src/llama-quant.cpp`).
//! - `vocab`: the tokenizer, copied from a llama.cpp vocab GGUF and padded to the vocab size.
//!
//! The hyper-parameters come from the models' published configs; each catalog file
//! (models/<id>.toml) carries them with their source.

pub mod quant;
pub mod tables;
pub mod vocab;

use crate::gguf::{GgmlType, MetaValue, Metadata, TensorInfo};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use quant::Quant;

/// The architectures placer can synthesize (`general.architecture`, `src/llama-arch.cpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "qwen3moe")]
    Qwen3Moe,
    #[serde(rename = "qwen3")]
    Qwen3,
    #[serde(rename = "llama")]
    Llama,
    #[serde(rename = "deepseek2")]
    Deepseek2,
    #[serde(rename = "gpt-oss")]
    GptOss,
    #[serde(rename = "qwen3next")]
    Qwen3Next,
}

impl Arch {
    pub const ALL: [Arch; 6] = [
        Arch::Qwen3Moe,
        Arch::Qwen3,
        Arch::Llama,
        Arch::Deepseek2,
        Arch::GptOss,
        Arch::Qwen3Next,
    ];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Qwen3 => "qwen3",
            Arch::Llama => "llama",
            Arch::Deepseek2 => "deepseek2",
            Arch::GptOss => "gpt-oss",
            Arch::Qwen3Next => "qwen3next",
        }
    }
}

/// A model's hyper-parameters, in llama.cpp's terms (the `[hparams]` table of a catalog file).
/// Field names follow llama.cpp's `llama_hparams`; the catalog maps each one to its HF
/// config.json key in comments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hparams {
    pub arch: Arch,
    /// Where these numbers come from (a URL or a file in the repo).
    pub source: String,
    pub n_layer: u32,
    pub n_embd: u64,
    pub n_head: u64,
    /// Defaults to `n_head`.
    pub n_head_kv: Option<u64>,
    /// `attention.key_length` = `value_length`; defaults to `n_embd / n_head`.
    pub head_dim: Option<u64>,
    pub n_vocab: u64,
    pub context_length: u64,
    pub rope_freq_base: f32,
    pub rms_eps: f32,
    /// `rope.dimension_count` when not the whole head.
    pub n_rot: Option<u64>,
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Dense FFN width (`feed_forward_length`).
    pub n_ff: Option<u64>,
    #[serde(default)]
    pub n_expert: u64,
    #[serde(default)]
    pub n_expert_used: u64,
    #[serde(default)]
    pub n_expert_shared: u64,
    pub n_ff_exp: Option<u64>,
    pub n_ff_shexp: Option<u64>,
    /// deepseek2 (MLA).
    pub n_dense_lead: Option<u64>,
    pub q_lora_rank: Option<u64>,
    pub kv_lora_rank: Option<u64>,
    pub qk_nope_head_dim: Option<u64>,
    pub qk_rope_head_dim: Option<u64>,
    pub v_head_dim: Option<u64>,
    pub expert_weights_scale: Option<f32>,
    pub expert_weights_norm: Option<bool>,
    /// 1 softmax, 2 sigmoid (`llama_expert_gating_func_type`).
    pub expert_gating_func: Option<u32>,
    /// gpt-oss sliding window (every other layer, `load_swa_pattern(ml, 2)`).
    pub sliding_window: Option<u64>,
    pub rope_scaling_type: Option<String>,
    pub rope_scaling_factor: Option<f32>,
    pub rope_scaling_orig_ctx: Option<u64>,
    /// qwen3next Gated DeltaNet.
    pub ssm_conv_kernel: Option<u64>,
    pub ssm_state_size: Option<u64>,
    pub ssm_group_count: Option<u64>,
    pub ssm_time_step_rank: Option<u64>,
    pub full_attention_interval: Option<u64>,
}

impl Hparams {
    pub fn n_head_kv(&self) -> u64 {
        self.n_head_kv.unwrap_or(self.n_head)
    }
    pub fn head_dim(&self) -> Result<u64, String> {
        match self.head_dim {
            Some(d) => Ok(d),
            None if self.n_head > 0 => Ok(self.n_embd / self.n_head),
            None => Err("hparams.n_head must be > 0".into()),
        }
    }
    pub fn rope_dim(&self) -> Result<u64, String> {
        match self.n_rot {
            Some(r) => Ok(r),
            None => self.head_dim(),
        }
    }
}

/// One tensor of a synthesized table before it becomes a `TensorInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub source: quant::Source,
    pub ty: GgmlType,
}

/// Metadata and tensor infos of a synthesized model (offsets are laid out by the writer).
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
}

/// Build the model: tensor table with types, architecture metadata, tokenizer padded to
/// `n_vocab`.
pub fn synthesize(
    h: &Hparams,
    quant: Quant,
    display_name: &str,
    mut tokenizer: Metadata,
) -> Result<Synthesized> {
    check(h, quant)?;
    let mut table = tables::tensor_table(h).map_err(anyhow::Error::msg)?;
    quant::assign_types(
        &mut table,
        quant,
        quant::QuantModel {
            n_layer_all: h.n_layer,
            n_expert: h.n_expert,
            // `LLM_TYPE_70B` is what `src/models/llama.cpp` names an 80-layer llama.
            is_70b: h.arch == Arch::Llama && h.n_layer == 80,
        },
    );
    vocab::pad_to(&mut tokenizer, h.n_vocab)?;
    let mut metadata = arch_metadata(h, quant, display_name);
    metadata.entries.extend(tokenizer.entries);
    let tensors = table
        .into_iter()
        .map(|t| TensorInfo {
            name: t.name,
            dims: t.dims,
            ggml_type: t.ty,
            offset: 0,
            nbytes: 0,
            size_from_offsets: false,
            shard: 0,
        })
        .collect::<Vec<_>>();
    let tensors = crate::gguf::with_offsets(&tensors, crate::gguf::DEFAULT_ALIGNMENT)?;
    Ok(Synthesized { metadata, tensors })
}

/// Reject combinations llama.cpp would refuse, with a message that says what to change.
fn check(h: &Hparams, quant: Quant) -> Result<()> {
    if h.n_layer == 0 || h.n_embd == 0 || h.n_head == 0 || h.n_vocab == 0 {
        bail!("hparams: n_layer, n_embd, n_head and n_vocab must all be > 0");
    }
    let moe = matches!(
        h.arch,
        Arch::Qwen3Moe | Arch::Deepseek2 | Arch::GptOss | Arch::Qwen3Next
    );
    if moe && (h.n_expert == 0 || h.n_expert_used == 0 || h.n_expert_used > h.n_expert) {
        bail!(
            "{} needs 0 < n_expert_used <= n_expert (got {} of {})",
            h.arch.name(),
            h.n_expert_used,
            h.n_expert
        );
    }
    if quant == Quant::Mxfp4Moe && !moe {
        bail!("MXFP4_MOE is for mixture-of-experts models; pick Q8_0, Q4_K_M, F16 or BF16");
    }
    Ok(())
}

/// The architecture keys, in the order `convert_hf_to_gguf.py` writes them.
pub fn arch_metadata(h: &Hparams, quant: Quant, display_name: &str) -> Metadata {
    let a = h.arch.name();
    let mut m = Metadata::default();
    let mut put = |k: &str, v: MetaValue| {
        let key = if k.starts_with("general.") {
            k.to_string()
        } else {
            format!("{a}.{k}")
        };
        m.entries.push((key, v));
    };
    let u32v = |v: u64| MetaValue::U32(v as u32);
    put("general.architecture", MetaValue::Str(a.into()));
    put("general.name", MetaValue::Str(display_name.into()));
    put("block_count", u32v(h.n_layer as u64));
    put("context_length", u32v(h.context_length));
    put("embedding_length", u32v(h.n_embd));
    if let Some(ff) = h.n_ff {
        put("feed_forward_length", u32v(ff));
    }
    put("attention.head_count", u32v(h.n_head));
    match h.arch {
        Arch::Deepseek2 => {
            // MLA as converted: one KV head of the latent (kv_lora_rank + rope) width.
            let kv_lora = h.kv_lora_rank.unwrap_or(0);
            let rope = h.qk_rope_head_dim.unwrap_or(0);
            put("attention.head_count_kv", u32v(1));
            put("rope.freq_base", MetaValue::F32(h.rope_freq_base));
            put(
                "attention.layer_norm_rms_epsilon",
                MetaValue::F32(h.rms_eps),
            );
            put("expert_used_count", u32v(h.n_expert_used));
            put(
                "leading_dense_block_count",
                u32v(h.n_dense_lead.unwrap_or(0)),
            );
            put("vocab_size", u32v(h.n_vocab));
            put("attention.q_lora_rank", u32v(h.q_lora_rank.unwrap_or(0)));
            put("attention.kv_lora_rank", u32v(kv_lora));
            put("attention.key_length", u32v(kv_lora + rope));
            put("attention.value_length", u32v(kv_lora));
            put(
                "attention.key_length_mla",
                u32v(h.qk_nope_head_dim.unwrap_or(0) + rope),
            );
            put(
                "attention.value_length_mla",
                u32v(h.v_head_dim.unwrap_or(0)),
            );
            put("expert_feed_forward_length", u32v(h.n_ff_exp.unwrap_or(0)));
            put("expert_count", u32v(h.n_expert));
            put("expert_shared_count", u32v(h.n_expert_shared));
            put(
                "expert_weights_scale",
                MetaValue::F32(h.expert_weights_scale.unwrap_or(1.0)),
            );
            put(
                "expert_weights_norm",
                MetaValue::Bool(h.expert_weights_norm.unwrap_or(false)),
            );
            put(
                "expert_gating_func",
                u32v(h.expert_gating_func.unwrap_or(1) as u64),
            );
            put("rope.dimension_count", u32v(rope));
        }
        _ => {
            put("attention.head_count_kv", u32v(h.n_head_kv()));
            put("rope.freq_base", MetaValue::F32(h.rope_freq_base));
            put(
                "attention.layer_norm_rms_epsilon",
                MetaValue::F32(h.rms_eps),
            );
            if h.n_expert > 0 {
                put("expert_count", u32v(h.n_expert));
                put("expert_used_count", u32v(h.n_expert_used));
            }
            let hd = h.head_dim().unwrap_or(0);
            put("attention.key_length", u32v(hd));
            put("attention.value_length", u32v(hd));
            if let Some(ff) = h.n_ff_exp {
                put("expert_feed_forward_length", u32v(ff));
            }
            if let Some(ff) = h.n_ff_shexp {
                put("expert_shared_feed_forward_length", u32v(ff));
            }
            if let Some(r) = h.n_rot {
                put("rope.dimension_count", u32v(r));
            }
            if h.arch == Arch::Llama {
                put("vocab_size", u32v(h.n_vocab));
                if h.n_rot.is_none() {
                    put("rope.dimension_count", u32v(hd));
                }
            }
        }
    }
    if let Some(w) = h.sliding_window {
        put("attention.sliding_window", u32v(w));
    }
    if let Some(t) = &h.rope_scaling_type {
        if t != "llama3" {
            put("rope.scaling.type", MetaValue::Str(t.clone()));
            if let Some(f) = h.rope_scaling_factor {
                put("rope.scaling.factor", MetaValue::F32(f));
            }
            if let Some(c) = h.rope_scaling_orig_ctx {
                put("rope.scaling.original_context_length", u32v(c));
            }
        }
    }
    if h.arch == Arch::Qwen3Next {
        put("ssm.conv_kernel", u32v(h.ssm_conv_kernel.unwrap_or(0)));
        put("ssm.state_size", u32v(h.ssm_state_size.unwrap_or(0)));
        put("ssm.group_count", u32v(h.ssm_group_count.unwrap_or(0)));
        put(
            "ssm.time_step_rank",
            u32v(h.ssm_time_step_rank.unwrap_or(0)),
        );
        put(
            "ssm.inner_size",
            u32v(h.ssm_state_size.unwrap_or(0) * h.ssm_time_step_rank.unwrap_or(0)),
        );
        put(
            "full_attention_interval",
            u32v(h.full_attention_interval.unwrap_or(4)),
        );
    }
    put("general.file_type", MetaValue::U32(quant.file_type()));
    put("general.quantization_version", MetaValue::U32(2));
    m
}

/// Tokenizer arrays a header snapshot leaves out (they are most of a header's bytes).
pub const STRIPPED_KEYS: [&str; 4] = [
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.scores",
];

/// Prefix of the keys that record a stripped array's length.
pub const STRIPPED_PREFIX: &str = "placer.stripped.";

/// Metadata for a header snapshot: the tokenizer arrays replaced by their lengths
/// (`placer.stripped.<key>` = length), and `<arch>.vocab_size` so the vocab size stays known.
pub fn snapshot_metadata(full: &Metadata) -> Metadata {
    let mut out = Metadata::default();
    let mut n_vocab = None;
    for (k, v) in &full.entries {
        if STRIPPED_KEYS.contains(&k.as_str()) {
            let len = full.array_len(k).unwrap_or(0);
            if k == "tokenizer.ggml.tokens" {
                n_vocab = Some(len);
            }
            out.entries
                .push((format!("{STRIPPED_PREFIX}{k}"), MetaValue::U64(len)));
        } else {
            out.entries.push((k.clone(), v.clone()));
        }
    }
    if let (Some(arch), Some(n)) = (full.architecture().map(str::to_string), n_vocab) {
        let key = format!("{arch}.vocab_size");
        if out.get(&key).is_none() {
            out.set(&key, MetaValue::U32(n as u32));
        }
    }
    out
}

/// The vocab file placer ships (the llama.cpp tree's `models/ggml-vocab-qwen2.gguf`, gzipped).
pub const DEFAULT_VOCAB: &str = "vocab/ggml-vocab-qwen2.gguf.gz";

/// Resolve a tokenizer name from a catalog file (`qwen2`) or a path to a vocab GGUF.
pub fn vocab_path(tokenizer: &str, models_dir: &Path) -> PathBuf {
    let p = Path::new(tokenizer);
    if p.extension().is_some() {
        return p.to_path_buf();
    }
    models_dir.join(format!("vocab/ggml-vocab-{tokenizer}.gguf.gz"))
}
