//! Synthesized tensor tables against what llama.cpp expects: the reference qwen3moe Q8_0 run
//! (data/runs/2026-11-23-reference-qwen3moe-h200x2/README.md and its log), and each
//! architecture's loader (`src/models/<arch>.cpp: load_arch_tensors`).

use placer::catalog;
use placer::gguf::{self, GgmlType, DEFAULT_ALIGNMENT};
use placer::synth::{Quant, Synthesized};
use std::path::{Path, PathBuf};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn synth(id: &str, quant: Option<Quant>) -> Synthesized {
    catalog::entry(id, &models())
        .unwrap()
        .synthesize(quant, &models())
        .unwrap()
}

fn count(m: &Synthesized, ty: GgmlType) -> usize {
    m.tensors.iter().filter(|t| t.ggml_type == ty).count()
}

fn ty(m: &Synthesized, name: &str) -> GgmlType {
    m.tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .ggml_type
}

#[test]
fn qwen3moe_q8_0_matches_the_reference_run() {
    let m = synth("qwen3-30b-a3b-q8", None);
    // Log: "loaded meta data with 24 key-value pairs and 579 tensors", "type f32: 241 tensors",
    // "type q8_0: 338 tensors", "file size = 30.25 GiB".
    assert_eq!(m.tensors.len(), 579);
    assert_eq!(count(&m, GgmlType::F32), 241);
    assert_eq!(count(&m, GgmlType::Q8_0), 338);
    let bytes: u64 = m.tensors.iter().map(|t| t.nbytes).sum();
    assert_eq!(
        format!("{:.2}", bytes as f64 / (1u64 << 30) as f64),
        "30.25"
    );
    // README tensor order.
    let names: Vec<&str> = m.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names[0], "token_embd.weight");
    let layer0: Vec<&str> = names[1..13]
        .iter()
        .map(|n| n.trim_start_matches("blk.0."))
        .collect();
    assert_eq!(
        layer0,
        [
            "attn_norm.weight",
            "attn_q.weight",
            "attn_k.weight",
            "attn_v.weight",
            "attn_output.weight",
            "attn_q_norm.weight",
            "attn_k_norm.weight",
            "ffn_norm.weight",
            "ffn_gate_inp.weight",
            "ffn_gate_exps.weight",
            "ffn_up_exps.weight",
            "ffn_down_exps.weight"
        ]
    );
    assert_eq!(&names[577..], ["output_norm.weight", "output.weight"]);
    // The reference file had 24 keys: ours without general.name and general.quantization_version.
    // With those two removed the file size must be the reference file's, to the byte.
    let mut md = m.metadata.clone();
    md.entries
        .retain(|(k, _)| k != "general.name" && k != "general.quantization_version");
    assert_eq!(md.entries.len(), 24);
    let size = gguf::gguf_file_size(&md, &m.tensors, DEFAULT_ALIGNMENT).unwrap();
    assert_eq!(size, 32_483_927_520);
}

#[test]
fn deepseek2_glm_has_mla_one_dense_lead_layer_and_shared_experts() {
    let m = synth("glm-q4", None);
    let has = |n: &str| m.tensors.iter().any(|t| t.name == n);
    assert!(has("blk.0.ffn_gate.weight") && !has("blk.0.ffn_gate_exps.weight"));
    for il in 1..47 {
        for s in [
            "ffn_gate_inp.weight",
            "exp_probs_b.bias",
            "ffn_up_exps.weight",
            "ffn_down_shexp.weight",
        ] {
            assert!(has(&format!("blk.{il}.{s}")), "blk.{il}.{s}");
        }
    }
    assert!(!has("blk.47.attn_norm.weight"));
    let kb = m
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.attn_k_b.weight")
        .unwrap();
    assert_eq!(kb.dims, vec![192, 512, 20]);
    // llama-quant.cpp tensor_type_fallback: 192 columns are not a multiple of 256 → q5_0.
    assert_eq!(kb.ggml_type, GgmlType::Q5_0);
    assert_eq!(ty(&m, "output.weight"), GgmlType::Q6_K);
    assert_eq!(ty(&m, "token_embd.weight"), GgmlType::Q4_K);
    // use_more_bits(i, 47): i < 5, i >= 41, or (i - 5) % 3 == 2.
    assert_eq!(ty(&m, "blk.0.ffn_down.weight"), GgmlType::Q6_K);
    assert_eq!(ty(&m, "blk.6.ffn_down_exps.weight"), GgmlType::Q4_K);
    assert_eq!(ty(&m, "blk.7.ffn_down_exps.weight"), GgmlType::Q6_K);
    assert_eq!(ty(&m, "blk.1.ffn_gate_inp.weight"), GgmlType::F32);
    let md = &m.metadata;
    assert_eq!(md.get_u64("deepseek2.attention.key_length_mla"), Some(256));
    assert_eq!(md.get_u64("deepseek2.vocab_size"), Some(154_880));
    assert_eq!(
        md.get("tokenizer.ggml.tokens")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        154_880
    );
}

#[test]
fn gpt_oss_has_sinks_biases_and_mxfp4_experts() {
    let m = synth("gpt-oss-20b", Some(Quant::Mxfp4Moe));
    for il in 0..24 {
        for s in [
            "attn_sinks.weight",
            "attn_q.bias",
            "attn_output.bias",
            "ffn_gate_inp.bias",
            "ffn_up_exps.bias",
            "post_attention_norm.weight",
        ] {
            assert!(
                m.tensors.iter().any(|t| t.name == format!("blk.{il}.{s}")),
                "blk.{il}.{s}"
            );
        }
        for s in ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"] {
            assert_eq!(ty(&m, &format!("blk.{il}.{s}.weight")), GgmlType::MXFP4);
        }
        assert_eq!(ty(&m, &format!("blk.{il}.attn_q.weight")), GgmlType::Q8_0);
    }
    assert_eq!(ty(&m, "output.weight"), GgmlType::Q8_0);
    assert_eq!(count(&m, GgmlType::MXFP4), 72);
    assert_eq!(
        m.metadata.get_u64("gpt-oss.attention.sliding_window"),
        Some(128)
    );
    // The F16 converter output keeps MXFP4 experts (conversion/gpt_oss.py).
    let f = synth("gpt-oss-20b", Some(Quant::F16));
    assert_eq!(ty(&f, "blk.0.ffn_down_exps.weight"), GgmlType::MXFP4);
    assert_eq!(ty(&f, "blk.0.attn_q.weight"), GgmlType::F16);
}

#[test]
fn qwen3next_has_one_attention_layer_in_four() {
    let m = synth("qwen3-next", None);
    let attn: Vec<u32> = (0..48)
        .filter(|il| {
            m.tensors
                .iter()
                .any(|t| t.name == format!("blk.{il}.attn_q.weight"))
        })
        .collect();
    assert_eq!(attn, (0..12).map(|i| 4 * i + 3).collect::<Vec<u32>>());
    for il in (0..48u32).filter(|il| !attn.contains(il)) {
        for s in [
            "attn_qkv.weight",
            "attn_gate.weight",
            "ssm_conv1d.weight",
            "ssm_a",
            "ssm_dt.bias",
            "ssm_ba.weight",
            "ssm_out.weight",
        ] {
            assert!(
                m.tensors.iter().any(|t| t.name == format!("blk.{il}.{s}")),
                "blk.{il}.{s}"
            );
        }
        assert_eq!(
            ty(&m, &format!("blk.{il}.ssm_conv1d.weight")),
            GgmlType::F32
        );
    }
    let exps = m
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.ffn_down_exps.weight")
        .unwrap();
    assert_eq!(exps.dims, vec![512, 2048, 512]);
    assert_eq!(m.metadata.get_u64("qwen3next.ssm.inner_size"), Some(4096));
}

#[test]
fn every_synthesized_row_is_whole_blocks() {
    for id in catalog::ids(&models()).unwrap() {
        let m = synth(&id, None);
        for t in &m.tensors {
            assert_eq!(
                t.ggml_type.nbytes(&t.dims),
                Some(t.nbytes),
                "{id} {}",
                t.name
            );
        }
    }
}
