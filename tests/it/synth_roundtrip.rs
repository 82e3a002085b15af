//! Writer → reader round trip, and full-size random data that is valid.

use placer::catalog;
use placer::gguf::{self, GgmlType, MetaValue, Metadata, TensorData, TensorInfo, WriteOptions};
use placer::synth::{self, Arch, Hparams, Quant};
use std::path::Path;

fn tiny(arch: Arch) -> Hparams {
    let toml = match arch {
        Arch::Qwen3Moe => "arch='qwen3moe'\nn_expert=8\nn_expert_used=2\nn_ff_exp=256",
        Arch::Deepseek2 => "arch='deepseek2'\nn_expert=8\nn_expert_used=2\nn_expert_shared=1\nn_ff_exp=256\nn_ff=512\nn_dense_lead=1\nq_lora_rank=256\nkv_lora_rank=256\nqk_nope_head_dim=64\nqk_rope_head_dim=32\nv_head_dim=64",
        Arch::GptOss => "arch='gpt-oss'\nn_expert=4\nn_expert_used=2\nn_ff_exp=256\nsliding_window=128",
        Arch::Qwen3Next => "arch='qwen3next'\nn_expert=8\nn_expert_used=2\nn_ff_exp=256\nn_ff_shexp=256\nn_rot=16\nssm_conv_kernel=4\nssm_state_size=64\nssm_group_count=2\nssm_time_step_rank=4\nfull_attention_interval=4",
        _ => "arch='qwen3'\nn_ff=1024",
    };
    let text = format!(
        "{toml}\nsource='test'\nn_layer=4\nn_embd=256\nn_head=4\nn_head_kv=2\nhead_dim=64\nn_vocab=151936\ncontext_length=4096\nrope_freq_base=10000.0\nrms_eps=1e-6\n"
    );
    toml::from_str(&text).unwrap()
}

fn vocab() -> Metadata {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    synth::vocab::load_tokenizer(&dir.join(synth::DEFAULT_VOCAB)).unwrap()
}

fn f16(h: u16) -> f32 {
    let e = ((h >> 10) & 0x1F) as i32;
    let m = (h & 0x3FF) as f32;
    let s = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    match e {
        0 => s * m * 2f32.powi(-24),
        31 => f32::NAN,
        _ => s * (1.0 + m / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Check every block of a tensor's data: f32/f16 finite and not all zero, q8_0/q4_K/q6_K scales
/// small positive, mxfp4 exponents sane.
fn check_data(t: &TensorInfo, data: &[u8]) {
    assert!(data.iter().any(|&b| b != 0), "{} is all zero", t.name);
    let scale_at = |block: usize, off: usize| {
        for b in data.chunks_exact(block) {
            let v = f16(u16::from_le_bytes([b[off], b[off + 1]]));
            assert!(
                v.is_finite() && v > 0.0 && v < 0.01,
                "{}: scale {v}",
                t.name
            );
        }
    };
    match t.ggml_type {
        GgmlType::F32 => {
            for c in data.chunks_exact(4) {
                assert!(f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite());
            }
        }
        GgmlType::F16 => {
            for c in data.chunks_exact(2) {
                assert!(f16(u16::from_le_bytes([c[0], c[1]])).is_finite());
            }
        }
        GgmlType::Q8_0 => scale_at(34, 0),
        GgmlType::Q4_K => scale_at(144, 0),
        GgmlType::Q6_K => scale_at(210, 208),
        GgmlType::Q5_0 => scale_at(22, 0),
        GgmlType::MXFP4 => {
            for b in data.chunks_exact(17) {
                assert!((110..=127).contains(&b[0]), "{}: e8m0 {}", t.name, b[0]);
            }
        }
        _ => {}
    }
}

fn roundtrip(arch: Arch, quant: Quant) {
    let m = synth::synthesize(&tiny(arch), quant, "tiny", vocab()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let opts = WriteOptions {
        data: TensorData::Random { seed: 7 },
        ..WriteOptions::default()
    };
    gguf::write_gguf(&path, &m.metadata, &m.tensors, &opts).unwrap();
    let expected = gguf::gguf_file_size(&m.metadata, &m.tensors, 32).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), expected);

    let back = gguf::open(&path).unwrap();
    assert_eq!(back.metadata.entries, m.metadata.entries, "{arch:?}");
    assert_eq!(back.tensors.len(), m.tensors.len());
    let bytes = std::fs::read(&path).unwrap();
    let data_offset = back.shards[0].data_offset as usize;
    for (a, b) in back.tensors.iter().zip(&m.tensors) {
        assert_eq!(
            (&a.name, &a.dims, a.ggml_type, a.offset, a.nbytes),
            (&b.name, &b.dims, b.ggml_type, b.offset, b.nbytes)
        );
        let start = data_offset + a.offset as usize;
        check_data(a, &bytes[start..start + a.nbytes as usize]);
    }
    // Same seed, same bytes.
    let again = dir.path().join("again.gguf");
    gguf::write_gguf(&again, &m.metadata, &m.tensors, &opts).unwrap();
    assert!(std::fs::read(&again).unwrap() == bytes);
}

#[test]
fn tiny_models_round_trip_with_valid_data() {
    roundtrip(Arch::Qwen3Moe, Quant::Q8_0);
    roundtrip(Arch::Qwen3Moe, Quant::Q4KM);
    roundtrip(Arch::Deepseek2, Quant::Q4KM);
    roundtrip(Arch::GptOss, Quant::Mxfp4Moe);
    roundtrip(Arch::Qwen3Next, Quant::Q5KM);
    roundtrip(Arch::Qwen3, Quant::F16);
}

#[test]
fn header_only_records_the_full_size() {
    let e = catalog::entry(
        "glm-q8",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
    )
    .unwrap();
    let m = e
        .synthesize(None, &Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.gguf");
    gguf::write_gguf(&path, &m.metadata, &m.tensors, &WriteOptions::default()).unwrap();
    let full = gguf::gguf_file_size(&m.metadata, &m.tensors, 32).unwrap();
    let back = gguf::open(&path).unwrap();
    assert_eq!(back.metadata.get_u64("placer.file_size"), Some(full));
    assert_eq!(
        back.tensor_bytes(),
        m.tensors.iter().map(|t| t.nbytes).sum::<u64>()
    );
    assert!(std::fs::metadata(&path).unwrap().len() < 10_000_000);
    // The full file never carries the snapshot key.
    assert!(m.metadata.get("placer.file_size").is_none());
}

#[test]
fn writer_refuses_bad_input_without_panicking() {
    let mut md = Metadata::default();
    md.set("general.architecture", MetaValue::Str("x".into()));
    md.set(
        "bad",
        MetaValue::Array(4, vec![MetaValue::Str("not u32".into())]),
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(gguf::write_gguf(
        &dir.path().join("a.gguf"),
        &md,
        &[],
        &WriteOptions::default()
    )
    .is_err());
    let t = TensorInfo {
        name: "w".into(),
        dims: vec![33, 2],
        ggml_type: GgmlType::Q8_0,
        offset: 0,
        nbytes: 0,
        size_from_offsets: false,
        shard: 0,
    };
    let md = Metadata::default();
    assert!(gguf::write_gguf(
        &dir.path().join("b.gguf"),
        &md,
        &[t],
        &WriteOptions::default()
    )
    .is_err());
}
