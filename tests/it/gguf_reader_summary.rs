//! `gguf::open_with(path, ReadOptions::SUMMARY)`: the same model as `gguf::open` except that the
//! elements of arrays longer than `LARGE_ARRAY` are not kept (their lengths are), with the same
//! validation: on truncated or mutated files both reads fail with the same error.
use placer::gguf::{
    open, open_with, write_gguf, GgmlType, GgufModel, MetaValue, Metadata, ReadOptions, TensorInfo,
    WriteOptions, LARGE_ARRAY,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn strings(n: usize, prefix: &str) -> MetaValue {
    MetaValue::Array(
        8,
        (0..n)
            .map(|i| MetaValue::Str(format!("{prefix}{i}")))
            .collect(),
    )
}

fn tensor(name: &str, dims: &[u64], offset: u64) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dims: dims.to_vec(),
        ggml_type: GgmlType(0),
        offset,
        nbytes: dims.iter().product::<u64>() * 4,
        size_from_offsets: false,
        shard: 0,
    }
}

/// A llama header with a tokenizer (tokens/merges longer than LARGE_ARRAY, a short array that
/// must be kept) and two tensors.
fn model_metadata(n_tokens: usize) -> Metadata {
    let mut md = Metadata::default();
    md.set("general.architecture", MetaValue::Str("llama".into()));
    md.set("llama.block_count", MetaValue::U32(1));
    md.set(
        "llama.attention.head_count",
        MetaValue::Array(4, vec![MetaValue::U32(8)]),
    );
    md.set("tokenizer.ggml.tokens", strings(n_tokens, "tok"));
    md.set(
        "tokenizer.ggml.scores",
        MetaValue::Array(6, vec![MetaValue::F32(0.5); n_tokens]),
    );
    md.set("tokenizer.ggml.merges", strings(n_tokens + 7, "m "));
    md.set("tokenizer.ggml.short", strings(LARGE_ARRAY as usize, "s"));
    md
}

fn write(dir: &Path, name: &str, md: &Metadata) -> PathBuf {
    let path = dir.join(name);
    let tensors = [
        tensor("token_embd.weight", &[8, 16], 0),
        tensor("output_norm.weight", &[8], 512),
    ];
    write_gguf(&path, md, &tensors, &WriteOptions::default()).unwrap();
    path
}

/// What a SUMMARY read should give, derived from a full read.
fn summarized(mut full: GgufModel) -> GgufModel {
    for (k, v) in full.metadata.entries.iter_mut() {
        if let MetaValue::Array(_, items) = v {
            if items.len() as u64 > LARGE_ARRAY {
                full.metadata
                    .skipped_arrays
                    .push((k.clone(), items.len() as u64));
                items.clear();
            }
        }
    }
    full
}

#[test]
fn summary_keeps_everything_but_large_array_elements() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.gguf", &model_metadata(5000));
    let full = open(&path).unwrap();
    let sum = open_with(&path, ReadOptions::SUMMARY).unwrap();
    assert_eq!(sum, summarized(full.clone()));
    let md = &sum.metadata;
    assert_eq!(
        md.get("tokenizer.ggml.tokens"),
        Some(&MetaValue::Array(8, vec![]))
    );
    assert_eq!(md.array_len("tokenizer.ggml.tokens"), Some(5000));
    assert_eq!(md.array_len("tokenizer.ggml.scores"), Some(5000));
    assert_eq!(md.array_len("tokenizer.ggml.merges"), Some(5007));
    // An array of exactly LARGE_ARRAY elements and per-layer arrays are kept whole.
    assert_eq!(
        md.get("tokenizer.ggml.short"),
        full.metadata.get("tokenizer.ggml.short")
    );
    assert_eq!(md.array_len("llama.attention.head_count"), Some(1));
    assert_eq!(md.array_len("general.architecture"), None);
    // The default options read everything.
    assert_eq!(open_with(&path, ReadOptions::default()).unwrap(), full);
    assert!(full.metadata.skipped_arrays.is_empty());
}

#[test]
fn writer_refuses_metadata_with_skipped_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.gguf", &model_metadata(5000));
    let sum = open_with(&path, ReadOptions::SUMMARY).unwrap();
    let out = dir.path().join("back.gguf");
    let err = write_gguf(&out, &sum.metadata, &sum.tensors, &WriteOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
    assert!(err.contains("gguf::open"), "{err}");
    // Setting a full value for every skipped key makes the metadata complete again.
    let full = open(&path).unwrap();
    let mut md = sum.metadata.clone();
    for (k, _) in &sum.metadata.skipped_arrays {
        md.set(k, full.metadata.get(k).unwrap().clone());
    }
    assert_eq!(md, full.metadata);
    write_gguf(&out, &md, &sum.tensors, &WriteOptions::default()).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
}

/// Anatomy (via catalog::load_model, which reads with SUMMARY) still knows the vocab size from
/// the token count when `<arch>.vocab_size` is absent, and matches an anatomy from a full read.
#[test]
fn vocab_size_survives_summary_read() {
    let dir = tempfile::tempdir().unwrap();
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/headers/gpt-oss-120b.gguf");
    let model = open(&snap).unwrap();
    let mut md = model.metadata.clone();
    md.entries
        .retain(|(k, _)| k != "gpt-oss.vocab_size" && !k.starts_with("placer."));
    md.set("tokenizer.ggml.tokens", strings(201_088, "t"));
    let path = dir.path().join("gpt-oss.gguf");
    write_gguf(&path, &md, &model.tensors, &WriteOptions::default()).unwrap();

    let loaded = placer::catalog::load_model(path.to_str().unwrap(), None).unwrap();
    assert_eq!(loaded.metadata.skipped_arrays.len(), 1);
    let a = placer::anatomy::from_gguf(&loaded).unwrap();
    let b = placer::anatomy::from_gguf(&open(&path).unwrap()).unwrap();
    assert_eq!(a.hp.n_vocab, 201_088);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Truncated or mutated files: a SUMMARY read fails exactly when a full read fails, with the
    /// same message, and otherwise gives the summarized full model.
    #[test]
    fn summary_agrees_with_full_read(
        cut in prop::option::of(0.0f64..1.0),
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "m.gguf", &model_metadata(LARGE_ARRAY as usize + 3));
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, b) in flips {
            let i = (at * bytes.len() as f64) as usize % bytes.len();
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate((c * bytes.len() as f64) as usize);
        }
        std::fs::write(&path, &bytes).unwrap();
        match (open(&path), open_with(&path, ReadOptions::SUMMARY)) {
            (Ok(full), Ok(sum)) => prop_assert_eq!(sum, summarized(full)),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "full {:?} vs summary {:?}", a.err(), b.err()),
        }
    }
}

/// A corrupt string length inside a skipped array fails both reads with the same message: too
/// long for GGUF, past the end of the file, or (small change) misaligning the rest.
#[test]
fn corrupt_length_in_skipped_array_is_the_same_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "m.gguf", &model_metadata(5000));
    let clean = std::fs::read(&path).unwrap();
    let at = clean.windows(7).position(|w| w == b"tok4321").unwrap() - 8;
    for len in [u64::MAX, 1 << 30, clean.len() as u64, 3] {
        let mut bytes = clean.clone();
        bytes[at..at + 8].copy_from_slice(&len.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let full = open(&path).map(|_| ()).unwrap_err().to_string();
        let sum = open_with(&path, ReadOptions::SUMMARY)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert_eq!(full, sum, "length {len}");
    }
}
