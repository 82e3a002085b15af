//! Every catalog entry, synthesized, against the published size of the real file (within 0.5%),
//! and every header snapshot in models/headers/ against a fresh synthesis (so a recipe change
//! that is not re-snapshotted fails here).

use placer::catalog::{self, Entry};
use placer::gguf::{self, DEFAULT_ALIGNMENT};
use placer::synth::Quant;
use std::path::{Path, PathBuf};

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn entries() -> Vec<Entry> {
    let dir = models();
    let ids = catalog::ids(&dir).unwrap();
    assert!(ids.len() >= 8, "catalog has {} entries", ids.len());
    ids.iter()
        .map(|id| catalog::entry(id, &dir).unwrap())
        .collect()
}

fn synth_file_size(e: &Entry, quant: Option<Quant>) -> u64 {
    let m = e.synthesize(quant, &models()).unwrap();
    gguf::gguf_file_size(&m.metadata, &m.tensors, DEFAULT_ALIGNMENT).unwrap()
}

fn rel_err(synth: u64, published: u64) -> f64 {
    (synth as f64 - published as f64) / published as f64
}

#[test]
fn users_models_are_in_the_catalog() {
    let ids = catalog::ids(&models()).unwrap();
    for id in [
        "glm-q4",
        "glm-q8",
        "gpt-oss-120b",
        "gpt-oss-20b",
        "qwen3-coder-next-q5",
        "qwen3-next",
        "qwen3-30b-a3b-q8",
        "qwen3-32b-q8",
    ] {
        assert!(ids.iter().any(|i| i == id), "missing catalog id {id}");
    }
}

#[test]
fn synthesized_sizes_are_within_half_a_percent_of_published_sizes() {
    let mut compared = 0;
    let mut report = Vec::new();
    for e in entries() {
        let mut cases: Vec<(Option<Quant>, u64, String)> = Vec::new();
        if let Some(b) = e.published_size.bytes {
            cases.push((None, b, "published".into()));
        } else {
            // An entry without a size must say why, and the docs must not invent one.
            assert!(e
                .published_size
                .missing
                .as_deref()
                .is_some_and(|m| m.len() > 20));
        }
        for c in &e.checks {
            cases.push((Some(c.quant), c.bytes, c.file.clone()));
        }
        for (quant, published, what) in cases {
            let synth = synth_file_size(&e, quant);
            let err = rel_err(synth, published);
            report.push(format!(
                "{} {:?} {what}: synth {synth} published {published} ({:+.3}%)",
                e.id,
                quant,
                err * 100.0
            ));
            assert!(
                err.abs() <= 0.005,
                "{} ({:?}, {what}): synthesized {synth} bytes vs published {published}: {:+.3}%",
                e.id,
                quant,
                err * 100.0
            );
            compared += 1;
        }
    }
    println!("{}", report.join("\n"));
    assert!(compared >= 10, "only {compared} size comparisons");
}

#[test]
fn snapshots_match_a_fresh_synthesis() {
    let dir = models();
    for e in entries() {
        let snap = catalog::load_model(&e.id, Some(&dir)).unwrap();
        let fresh = e.synthesize(None, &dir).unwrap();
        let full =
            gguf::gguf_file_size(&fresh.metadata, &fresh.tensors, DEFAULT_ALIGNMENT).unwrap();
        assert_eq!(
            snap.metadata.get_u64("placer.file_size"),
            Some(full),
            "{}: stale snapshot, rerun `placer synth {} --snapshot`",
            e.id,
            e.id
        );
        assert_eq!(snap.tensors.len(), fresh.tensors.len(), "{}", e.id);
        for (a, b) in snap.tensors.iter().zip(&fresh.tensors) {
            assert_eq!(
                (&a.name, &a.dims, a.ggml_type, a.offset, a.nbytes),
                (&b.name, &b.dims, b.ggml_type, b.offset, b.nbytes),
                "{}",
                e.id
            );
        }
        // Stripped tokenizer arrays leave their lengths and the vocab size behind.
        let arch = snap.metadata.architecture().unwrap().to_string();
        assert_eq!(
            snap.metadata.get_u64(&format!("{arch}.vocab_size")),
            Some(e.hparams.n_vocab)
        );
        assert_eq!(
            snap.metadata
                .get_u64("placer.stripped.tokenizer.ggml.tokens"),
            Some(e.hparams.n_vocab)
        );
        assert!(snap.metadata.get("tokenizer.ggml.tokens").is_none());
        let bytes = std::fs::metadata(catalog::snapshot_path(&e.id, &dir))
            .unwrap()
            .len();
        assert!(bytes < 200_000, "{}: snapshot is {bytes} bytes", e.id);
    }
}

#[test]
fn unknown_id_lists_the_known_ones() {
    let err = catalog::load_model("no-such-model", Some(&models())).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("glm-q8") && msg.contains("qwen3-next"),
        "{msg}"
    );
}

#[test]
fn a_path_loads_through_the_reader() {
    let snap = catalog::snapshot_path("gpt-oss-20b", &models());
    let m = catalog::load_model(snap.to_str().unwrap(), None).unwrap();
    assert_eq!(m.metadata.architecture(), Some("gpt-oss"));
}
