//! Header read benchmarks (docs/benchmarks.md, "Header read").
//!
//! Reading a model is reading its header: time and memory depend on the header (tensor infos,
//! tokenizer arrays), not on the tensor data. Three inputs:
//! - the real Gemma 3 270M Q4_K_M header (6.5 MB, 262k-token tokenizer), and the same model as a
//!   3-shard split written by gguf-py (tests/fixtures/gguf/);
//! - a 63 GB-class split model: the catalog's gpt-oss-120b header snapshot
//!   (models/headers/gpt-oss-120b.gguf, 60.4 GiB of tensors) split into 3 shards, with tokenizer
//!   arrays of gpt-oss's real sizes (201,088 tokens, 446,189 merges; synthetic strings) put
//!   back into shard 1, since the snapshot strips them.
//!
//! Each is read both ways: `open` (everything materialized, what a writer needs) and
//! `open_with(ReadOptions::SUMMARY)` (tokenizer list elements skipped, what `placer inspect`,
//! `solve`, `check` use through `catalog::load_model`).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use placer::gguf::{open, open_with, write_gguf, GgufModel, MetaValue, ReadOptions, WriteOptions};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn gemma_single(dir: &Path) -> PathBuf {
    let src = Path::new(ROOT).join("tests/fixtures/gguf/gemma-3-270m-q4_k_m.header.gguf.gz");
    let out = dir.join("gemma-3-270m-q4_k_m.gguf");
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(src).unwrap());
    std::io::copy(&mut gz, &mut std::fs::File::create(&out).unwrap()).unwrap();
    out
}

fn strings(n: usize, prefix: &str) -> MetaValue {
    MetaValue::Array(
        8,
        (0..n)
            .map(|i| MetaValue::Str(format!("{prefix}{i:x}")))
            .collect(),
    )
}

/// gpt-oss-120b's header snapshot as a 3-shard split with real-size tokenizer arrays.
fn big_split(dir: &Path) -> PathBuf {
    let model: GgufModel = open(&Path::new(ROOT).join("models/headers/gpt-oss-120b.gguf")).unwrap();
    let n = model.tensors.len();
    let parts = [
        &model.tensors[..n / 3],
        &model.tensors[n / 3..2 * n / 3],
        &model.tensors[2 * n / 3..],
    ];
    for (i, part) in parts.iter().enumerate() {
        let mut md = if i == 0 {
            model.metadata.clone()
        } else {
            Default::default()
        };
        md.entries.retain(|(k, _)| k != "placer.file_size");
        if i == 0 {
            md.set("tokenizer.ggml.tokens", strings(201_088, "tok"));
            md.set(
                "tokenizer.ggml.token_type",
                MetaValue::Array(5, vec![MetaValue::I32(1); 201_088]),
            );
            md.set("tokenizer.ggml.merges", strings(446_189, "m "));
        }
        md.set("split.no", MetaValue::U16(i as u16));
        md.set("split.count", MetaValue::U16(3));
        md.set("split.tensors.count", MetaValue::I32(n as i32));
        let path = dir.join(format!("gpt-oss-120b-{:05}-of-00003.gguf", i + 1));
        write_gguf(&path, &md, part, &WriteOptions::default()).unwrap();
    }
    dir.join("gpt-oss-120b-00001-of-00003.gguf")
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let gemma_split =
        Path::new(ROOT).join("tests/fixtures/gguf/gemma-3-270m-split-00001-of-00003.gguf");
    let gemma = gemma_single(dir.path());
    let big = big_split(dir.path());
    let m = open(&big).unwrap();
    eprintln!(
        "63 GB-class split: {} tensors, {:.1} GiB of tensor data, header bytes per shard {:?}",
        m.tensors.len(),
        m.tensor_bytes() as f64 / (1u64 << 30) as f64,
        m.shards.iter().map(|s| s.data_offset).collect::<Vec<_>>()
    );

    let mut g = c.benchmark_group("header_read");
    g.bench_function("gemma3-270m split 3 shards: open", |b| {
        b.iter(|| open(black_box(&gemma_split)).unwrap())
    });
    g.bench_function("gemma3-270m single 6.5 MB header: open", |b| {
        b.iter(|| open(black_box(&gemma)).unwrap())
    });
    g.bench_function("gemma3-270m single 6.5 MB header: open_with SUMMARY", |b| {
        b.iter(|| open_with(black_box(&gemma), ReadOptions::SUMMARY).unwrap())
    });
    g.bench_function("gpt-oss-120b-class 63 GB split 3 shards: open", |b| {
        b.iter(|| open(black_box(&big)).unwrap())
    });
    g.bench_function(
        "gpt-oss-120b-class 63 GB split 3 shards: open_with SUMMARY",
        |b| b.iter(|| open_with(black_box(&big), ReadOptions::SUMMARY).unwrap()),
    );
    // What `placer inspect MODEL` does: catalog::load_model (SUMMARY read) + the report.
    let big_arg = big.to_str().unwrap().to_string();
    g.bench_function(
        "gpt-oss-120b-class 63 GB split 3 shards: load_model + inspect report",
        |b| {
            b.iter(|| {
                let m = placer::catalog::load_model(black_box(&big_arg), None).unwrap();
                placer::cli::inspect::report(&m).unwrap()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
