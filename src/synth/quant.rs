//! Per-tensor type choice: what `convert_hf_to_gguf.py` writes and what `llama-quantize` then
//! picks for each tensor, for the file types placer synthesizes.
//!
//! Rules transcribed from the llama.cpp tree placer targets:
//! - `conversion/base.py: ModelBase.prepare_tensors`: 1-D tensors, `*_norm.weight`, the routers
//!   (`ffn_gate_inp`, `ffn_gate_inp_shexp`), `ssm_conv1d` and every tensor not named `*.weight`
//!   are written F32; everything else in the output type.
//! - `conversion/gpt_oss.py: GptOssModel.repack_mxfp4`: gpt-oss experts are always MXFP4.
//! - `src/llama-quant.cpp: tensor_allows_quantization`, `llama_tensor_get_type`,
//!   `llama_tensor_get_type_impl`, `tensor_type_fallback`, `tensor_get_category`,
//!   `init_quantize_state_counters`.

use super::SynthTensor;
use crate::gguf::GgmlType;
use serde::{Deserialize, Serialize};

/// A file type as llama.cpp names it (`enum llama_ftype`, `include/llama.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quant {
    #[serde(rename = "F16")]
    F16,
    #[serde(rename = "BF16")]
    BF16,
    #[serde(rename = "Q8_0")]
    Q8_0,
    #[serde(rename = "Q4_K_M")]
    Q4KM,
    #[serde(rename = "Q5_K_M")]
    Q5KM,
    #[serde(rename = "Q6_K")]
    Q6K,
    #[serde(rename = "MXFP4_MOE")]
    Mxfp4Moe,
}

impl Quant {
    pub const ALL: [Quant; 7] = [
        Quant::F16,
        Quant::BF16,
        Quant::Q8_0,
        Quant::Q4KM,
        Quant::Q5KM,
        Quant::Q6K,
        Quant::Mxfp4Moe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Quant::F16 => "F16",
            Quant::BF16 => "BF16",
            Quant::Q8_0 => "Q8_0",
            Quant::Q4KM => "Q4_K_M",
            Quant::Q5KM => "Q5_K_M",
            Quant::Q6K => "Q6_K",
            Quant::Mxfp4Moe => "MXFP4_MOE",
        }
    }

    pub fn parse(s: &str) -> Option<Quant> {
        Quant::ALL
            .into_iter()
            .find(|q| q.name().eq_ignore_ascii_case(s))
    }

    /// `general.file_type` (`enum llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
            Quant::Q4KM => 15,
            Quant::Q5KM => 17,
            Quant::Q6K => 18,
            Quant::BF16 => 32,
            Quant::Mxfp4Moe => 38,
        }
    }

    /// `llama_ftype_get_default_type`.
    fn default_type(self) -> GgmlType {
        match self {
            Quant::F16 => GgmlType::F16,
            Quant::BF16 => GgmlType::BF16,
            Quant::Q8_0 => GgmlType::Q8_0,
            Quant::Q4KM => GgmlType::Q4_K,
            Quant::Q5KM => GgmlType::Q5_K,
            Quant::Q6K => GgmlType::Q6_K,
            Quant::Mxfp4Moe => GgmlType::MXFP4,
        }
    }

    /// Made by the converter alone (no llama-quantize pass).
    fn is_converter_output(self) -> bool {
        matches!(self, Quant::F16 | Quant::BF16 | Quant::Q8_0)
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the converter writes for a tensor whose type it does not force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Forced F32 by the converter (norms, routers, biases, conv1d, 1-D tensors).
    F32,
    /// Written in the converter's output type (a weight matrix).
    Weight,
    /// Written MXFP4 whatever the output type (gpt-oss experts).
    Mxfp4,
}

/// `conversion/base.py: ModelBase.prepare_tensors` type forcing.
pub fn converter_source(name: &str, n_dims: usize) -> Source {
    let forced_f32 = n_dims <= 1
        || name.ends_with("_norm.weight")
        || name.contains("ffn_gate_inp.weight")
        || name.contains("ffn_gate_inp_shexp.weight")
        || name.contains("ssm_conv1d")
        || !name.ends_with(".weight");
    if forced_f32 {
        Source::F32
    } else {
        Source::Weight
    }
}

/// `tensor_get_category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_qkv.weight") {
        Category::AttnQkv
    } else if name.contains("attn_kv_b.weight") {
        Category::AttnKvB
    } else if name.contains("attn_v.weight") {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// `tensor_allows_quantization` (the parts that can apply to the architectures synthesized).
fn allows_quantization(name: &str, n_dims: usize) -> bool {
    n_dims >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && !name.contains("ssm_conv1d")
}

/// The model facts llama-quantize's rules look at.
#[derive(Debug, Clone, Copy)]
pub struct QuantModel {
    /// `hparams.n_layer_all` (`init_quantize_state_counters`: n_ffn_down/gate/up).
    pub n_layer_all: u32,
    /// `hparams.n_expert`.
    pub n_expert: u64,
    /// `model.type == LLM_TYPE_70B` (bumps attn_v for Q3_K/Q4_K).
    pub is_70b: bool,
}

/// Assign `ty` to every tensor: the converter's choice, then llama-quantize's for quantized
/// file types. Tensors are visited in file order, as llama-quantize does (its attn_v counter
/// depends on the order).
pub fn assign_types(tensors: &mut [SynthTensor], quant: Quant, model: QuantModel) {
    let converter_type = match quant {
        Quant::F16 | Quant::BF16 | Quant::Q8_0 => quant.default_type(),
        // llama-quantize starts from a converter output (BF16 for the published files).
        _ => GgmlType::BF16,
    };
    let n_attention_wv = tensors
        .iter()
        .filter(|t| is_attn_v_like(category(&t.name)))
        .count() as u32;
    let mut state = State {
        n_attention_wv,
        i_attention_wv: 0,
        i_ffn_down: 0,
    };
    for t in tensors.iter_mut() {
        let source = match t.source {
            Source::F32 => GgmlType::F32,
            Source::Mxfp4 => GgmlType::MXFP4,
            Source::Weight => converter_type,
        };
        t.ty = if quant.is_converter_output() {
            source
        } else {
            quantized_type(&mut state, t, source, quant, model)
        };
    }
}

struct State {
    n_attention_wv: u32,
    i_attention_wv: u32,
    i_ffn_down: u32,
}

fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// `llama_tensor_get_type` for a llama-quantize file type.
fn quantized_type(
    st: &mut State,
    t: &SynthTensor,
    source: GgmlType,
    quant: Quant,
    model: QuantModel,
) -> GgmlType {
    if !allows_quantization(&t.name, t.dims.len()) {
        return source;
    }
    let cat = category(&t.name);
    let new_type = get_type_impl(st, t, quant.default_type(), quant, model, cat);
    fallback(t, new_type)
}

/// `llama_tensor_get_type_impl`, for Q4_K_M, Q5_K_M, Q6_K and MXFP4_MOE.
fn get_type_impl(
    st: &mut State,
    t: &SynthTensor,
    mut new_type: GgmlType,
    quant: Quant,
    model: QuantModel,
    cat: Category,
) -> GgmlType {
    let n_expert = model.n_expert.max(1);
    // Output (and tied embeddings, never the case here): Q6_K unless the row does not split.
    if cat == Category::Output {
        let nx = t.dims[0];
        let qk_k = new_type.block_size().unwrap_or(1);
        if quant == Quant::Mxfp4Moe || !nx.is_multiple_of(qk_k) {
            return GgmlType::Q8_0;
        }
        if new_type != GgmlType::Q8_0 {
            return GgmlType::Q6_K;
        }
        return new_type;
    }
    if quant == Quant::Mxfp4Moe {
        // "MoE tensors -> MXFP4, other tensors -> Q8_0".
        return if t.dims.get(2).copied().unwrap_or(1) > 1 {
            GgmlType::MXFP4
        } else {
            GgmlType::Q8_0
        };
    }
    match cat {
        Category::TokenEmbd => {}
        c if is_attn_v_like(c) => {
            if matches!(quant, Quant::Q4KM | Quant::Q5KM)
                && use_more_bits(st.i_attention_wv as i64, st.n_attention_wv as i64)
            {
                new_type = GgmlType::Q6_K;
            }
            if model.is_70b && matches!(new_type, GgmlType::Q3_K | GgmlType::Q4_K) {
                new_type = GgmlType::Q5_K;
            }
            if model.n_expert == 8 {
                new_type = GgmlType::Q8_0;
            }
            st.i_attention_wv += 1;
        }
        Category::AttnK if model.n_expert == 8 => new_type = GgmlType::Q8_0,
        Category::FfnDown => {
            // With experts the layer comes from the name ("blk.%d."), else from the counter.
            let i_layer = if n_expert > 1 {
                layer_of(&t.name).unwrap_or(0) as i64
            } else {
                st.i_ffn_down as i64
            };
            let n_layer = model.n_layer_all as i64;
            if matches!(quant, Quant::Q4KM | Quant::Q5KM) && use_more_bits(i_layer, n_layer) {
                new_type = GgmlType::Q6_K;
            }
            st.i_ffn_down += 1;
        }
        Category::AttnOutput if model.n_expert == 8 && quant == Quant::Q4KM => {
            new_type = GgmlType::Q5_K;
        }
        _ => {}
    }
    new_type
}

/// `tensor_type_fallback`: a row that is not a whole number of blocks takes a smaller block.
fn fallback(t: &SynthTensor, target: GgmlType) -> GgmlType {
    let ncols = t.dims[0];
    let blck = target.block_size().unwrap_or(1);
    if ncols.is_multiple_of(blck) {
        return target;
    }
    let ret = match target {
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if !ncols.is_multiple_of(ret.block_size().unwrap_or(1)) {
        GgmlType::F16
    } else {
        ret
    }
}

/// The layer index of a `blk.N.` tensor name.
pub fn layer_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dims: &[u64]) -> SynthTensor {
        SynthTensor {
            name: name.into(),
            dims: dims.to_vec(),
            source: converter_source(name, dims.len()),
            ty: GgmlType::F32,
        }
    }

    #[test]
    fn use_more_bits_matches_llama_quant() {
        // 48 layers: the first 6, the last 6, and every third in between (i-6)%3==2.
        let picked: Vec<i64> = (0..48).filter(|&i| use_more_bits(i, 48)).collect();
        assert_eq!(
            picked,
            vec![
                0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 42, 43, 44, 45,
                46, 47
            ]
        );
    }

    #[test]
    fn converter_forces_f32_on_norms_routers_biases() {
        assert_eq!(converter_source("blk.0.attn_norm.weight", 1), Source::F32);
        assert_eq!(
            converter_source("blk.0.ffn_gate_inp.weight", 2),
            Source::F32
        );
        assert_eq!(converter_source("blk.0.attn_q.bias", 1), Source::F32);
        assert_eq!(converter_source("blk.0.ssm_a", 1), Source::F32);
        assert_eq!(converter_source("blk.0.ssm_conv1d.weight", 2), Source::F32);
        assert_eq!(converter_source("blk.0.attn_q.weight", 2), Source::Weight);
    }

    #[test]
    fn q4_k_m_rules() {
        let mut ts = vec![
            t("token_embd.weight", &[2048, 1000]),
            t("blk.0.attn_v.weight", &[2048, 512]),
            t("blk.0.ffn_down_exps.weight", &[768, 2048, 128]),
            t("blk.7.ffn_down_exps.weight", &[768, 2048, 128]),
            t("blk.0.attn_k_b.weight", &[192, 512, 20]),
            t("blk.0.ffn_gate_inp.weight", &[2048, 128]),
            t("output.weight", &[2048, 1000]),
        ];
        let model = QuantModel {
            n_layer_all: 48,
            n_expert: 128,
            is_70b: false,
        };
        assign_types(&mut ts, Quant::Q4KM, model);
        let ty: Vec<_> = ts.iter().map(|t| t.ty).collect();
        assert_eq!(
            ty,
            vec![
                GgmlType::Q4_K,
                GgmlType::Q6_K,
                GgmlType::Q6_K,
                GgmlType::Q4_K,
                GgmlType::Q5_0,
                GgmlType::F32,
                GgmlType::Q6_K
            ]
        );
    }
}
