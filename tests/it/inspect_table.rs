//! `placer inspect`: the table people read (insta snapshot on the real Gemma 3 270M header), and
//! the invariant that its totals equal the file's tensor data.
use crate::anatomy_support;

use placer::cli::inspect::{layer_ranges, render, report};
use placer::gguf::{open, read_header, GgufModel};
use std::path::Path;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf");

fn gemma() -> GgufModel {
    let gz = flate2::read::GzDecoder::new(
        std::fs::File::open(Path::new(FIXTURES).join("gemma-3-270m-q4_k_m.header.gguf.gz"))
            .unwrap(),
    );
    read_header(std::io::BufReader::new(gz)).unwrap()
}

#[test]
fn gemma_table_snapshot() {
    insta::assert_snapshot!(render(&report(&gemma()).unwrap()));
}

#[test]
fn totals_equal_the_file_tensor_data() {
    let mut models = vec![gemma(), anatomy_support::qwen3moe()];
    models.push(open(&Path::new(FIXTURES).join("gemma-3-270m-split-00003-of-00003.gguf")).unwrap());
    // the catalog's header snapshots, when the write side has produced them
    let headers = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/headers");
    for e in std::fs::read_dir(&headers).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "gguf") {
            models.push(
                open(&e.path()).unwrap_or_else(|err| panic!("{}: {err}", e.path().display())),
            );
        }
    }
    for m in &models {
        let r = report(m).unwrap();
        let by_layer: u64 = r.layers.iter().map(|l| l.total).sum();
        let by_role: u64 = r.roles.iter().map(|l| l.bytes).sum();
        let columns: u64 = r
            .layers
            .iter()
            .map(|l| l.core + l.dense_ffn + l.shared_experts + l.experts + l.io)
            .sum();
        let file: u64 = m.tensors.iter().map(|t| t.nbytes).sum();
        assert_eq!(by_layer, file, "{:?}", r.name);
        assert_eq!(by_role, file, "{:?}", r.name);
        assert_eq!(columns, file, "{:?}", r.name);
        assert_eq!(r.file_tensor_bytes, file);
        assert_eq!(
            r.roles.iter().map(|x| x.tensors).sum::<usize>(),
            m.tensors.len()
        );
    }
}

#[test]
fn ranges() {
    assert_eq!(
        layer_ranges(&[true, true, false, true, false, true, true, true]),
        "0-1,3,5-7"
    );
    assert_eq!(layer_ranges(&[false, false]), "");
}

#[test]
fn cli_json_on_a_split_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(["inspect", "--json"])
        .arg(Path::new(FIXTURES).join("gemma-3-270m-split-00002-of-00003.gguf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["arch"], "gemma3");
    assert_eq!(v["shards"].as_array().unwrap().len(), 3);
    assert_eq!(v["total_bytes"], v["file_tensor_bytes"]);
    assert_eq!(v["n_tensors"], 236);
}

#[test]
fn cli_error_is_actionable() {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(["inspect", "/nonexistent/x.gguf"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/x.gguf"), "{err}");
}
