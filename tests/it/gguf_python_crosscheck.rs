//! placer's reader against an independent one: the `gguf` Python package (llama.cpp's gguf-py
//! from PyPI). tests/fixtures/gguf/expected.json was produced by dump_with_python_gguf.py (see
//! make_fixtures.py for how the fixtures were made); when `python3 -c "import gguf"` works, the
//! script is also run live on the same files and compared the same way.
use placer::gguf::{open, GgufModel, MetaValue};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf");

/// gguf-py's GGUFValueType names → gguf_type ids.
fn type_id(name: &str) -> u32 {
    let names = [
        "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32", "BOOL", "STRING",
        "ARRAY", "UINT64", "INT64", "FLOAT64",
    ];
    names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("type {name}")) as u32
}

/// A fixture as a plain .gguf path (gz fixtures are unpacked to `tmp`).
fn fixture(name: &str, tmp: &Path) -> PathBuf {
    let p = Path::new(DIR).join(name);
    match name.strip_suffix(".gz") {
        None => p,
        Some(plain) => {
            let out = tmp.join(plain);
            let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap());
            std::io::copy(&mut gz, &mut std::fs::File::create(&out).unwrap()).unwrap();
            out
        }
    }
}

fn scalar_eq(ours: &MetaValue, theirs: &Value) -> bool {
    match ours {
        MetaValue::Str(s) => theirs.as_str() == Some(s),
        MetaValue::Bool(b) => theirs.as_bool() == Some(*b),
        MetaValue::F32(_) | MetaValue::F64(_) => theirs.as_f64() == ours.as_f64(),
        MetaValue::Array(..) => false,
        _ => ours.as_int().map(|v| v.to_string()) == Some(theirs.to_string()),
    }
}

/// Same keys, same types, same values (arrays: element type, length, first elements).
fn compare_metadata(file: &str, model: &GgufModel, expected: &Value) {
    let exp = expected["metadata"].as_object().unwrap();
    let ours: Vec<&str> = model
        .metadata
        .entries
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    let mut theirs: Vec<&str> = exp.keys().map(String::as_str).collect();
    let mut sorted = ours.clone();
    sorted.sort();
    theirs.sort();
    assert_eq!(sorted, theirs, "{file}: metadata keys");
    for (key, value) in &model.metadata.entries {
        let e = &exp[key];
        let types: Vec<u32> = e["type"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| type_id(t.as_str().unwrap()))
            .collect();
        assert_eq!(types[0], value.type_id(), "{file}: type of {key}");
        match value {
            MetaValue::Array(elem, items) => {
                assert_eq!(
                    Some(*elem),
                    types.get(1).copied().or(Some(*elem)),
                    "{file}: element type of {key}"
                );
                assert_eq!(
                    items.len() as u64,
                    e["len"].as_u64().unwrap(),
                    "{file}: length of {key}"
                );
                for (i, h) in e["head"].as_array().unwrap().iter().enumerate() {
                    assert!(
                        scalar_eq(&items[i], h),
                        "{file}: {key}[{i}] = {:?} vs {h}",
                        items[i]
                    );
                }
            }
            _ => assert!(
                scalar_eq(value, &e["value"]),
                "{file}: {key} = {value:?} vs {}",
                e["value"]
            ),
        }
    }
}

/// Same tensors in the same order: name, type id, dims, relative offset, bytes.
fn compare_tensors(file: &str, model: &GgufModel, expected: &Value) {
    let exp = expected["tensors"].as_array().unwrap();
    assert_eq!(model.tensors.len(), exp.len(), "{file}: tensor count");
    for (t, e) in model.tensors.iter().zip(exp) {
        assert_eq!(t.name, e["name"].as_str().unwrap(), "{file}");
        assert_eq!(
            t.ggml_type.0 as u64,
            e["type"].as_u64().unwrap(),
            "{file}: {}",
            t.name
        );
        let dims: Vec<u64> = e["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, dims, "{file}: {}", t.name);
        assert_eq!(
            t.offset,
            e["offset"].as_u64().unwrap(),
            "{file}: {}",
            t.name
        );
        assert_eq!(
            t.nbytes,
            e["nbytes"].as_u64().unwrap(),
            "{file}: {}",
            t.name
        );
        assert!(!t.size_from_offsets);
    }
    assert_eq!(
        model.tensor_bytes(),
        expected["tensor_bytes"].as_u64().unwrap(),
        "{file}: tensor bytes"
    );
}

fn compare_file(model: &GgufModel, expected: &Value) {
    let file = expected["file"].as_str().unwrap();
    let shard = &model.shards[0];
    assert_eq!(
        shard.version as u64,
        expected["version"].as_u64().unwrap(),
        "{file}"
    );
    assert_eq!(
        shard.alignment,
        expected["alignment"].as_u64().unwrap(),
        "{file}"
    );
    if model.tensors.is_empty() {
        // gguf.cpp does not pad the data offset of a file without tensors; gguf-py does.
        assert_eq!(
            shard.data_offset,
            expected["header_bytes"].as_u64().unwrap(),
            "{file}"
        );
    } else {
        assert_eq!(
            shard.data_offset,
            expected["data_offset"].as_u64().unwrap(),
            "{file}"
        );
    }
    compare_metadata(file, model, expected);
    compare_tensors(file, model, expected);
}

/// Each fixture read on its own (split shards as single files via read_header) vs the JSON.
fn check_all(expected: &Value, tmp: &Path) {
    let files = expected.as_array().unwrap();
    assert!(files.len() >= 6, "expected.json lists the 6 fixtures");
    for e in files {
        let path = fixture(e["file"].as_str().unwrap(), tmp);
        let f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let model =
            placer::gguf::read_header(f).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        compare_file(&model, e);
    }
}

fn expected_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(DIR).join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn matches_committed_python_gguf_dump() {
    let tmp = tempfile::tempdir().unwrap();
    check_all(&expected_json(), tmp.path());
}

#[test]
fn split_gemma_reads_as_one_model_from_any_shard() {
    let expected = expected_json();
    let shards: Vec<&Value> = expected
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["file"]
                .as_str()
                .unwrap()
                .starts_with("gemma-3-270m-split-")
        })
        .collect();
    assert_eq!(shards.len(), 3);
    let tensors: Vec<(String, usize, u64)> = shards
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            e["tensors"].as_array().unwrap().iter().map(move |t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    i,
                    t["nbytes"].as_u64().unwrap(),
                )
            })
        })
        .collect();
    for k in 1..=3 {
        let m =
            open(&Path::new(DIR).join(format!("gemma-3-270m-split-{k:05}-of-00003.gguf"))).unwrap();
        assert_eq!(m.shards.len(), 3);
        let ours: Vec<(String, usize, u64)> = m
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shard, t.nbytes))
            .collect();
        assert_eq!(ours, tensors);
        assert_eq!(m.metadata.architecture(), Some("gemma3"));
        assert_eq!(m.metadata.get_u64("split.tensors.count"), Some(236));
    }
}

#[test]
fn split_and_single_gemma_have_the_same_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let single = open(&fixture("gemma-3-270m-q4_k_m.header.gguf.gz", tmp.path())).unwrap();
    let split = open(&Path::new(DIR).join("gemma-3-270m-split-00002-of-00003.gguf")).unwrap();
    let key = |m: &GgufModel| {
        let mut v: Vec<_> = m
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.ggml_type, t.dims.clone(), t.nbytes))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(key(&single), key(&split));
    // what llama.cpp prints as "file size" for this model: Σ ggml_nbytes
    assert_eq!(single.tensor_bytes(), split.tensor_bytes());
}

#[test]
fn live_python_gguf_agrees() {
    let ok = Command::new("python3")
        .args(["-c", "import gguf"])
        .output()
        .map(|o| o.status.success());
    if !matches!(ok, Ok(true)) {
        eprintln!("SKIPPED live_python_gguf_agrees: `python3 -c \"import gguf\"` fails (pip install gguf to run it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let committed = expected_json();
    let files: Vec<String> = committed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    let out = Command::new("python3")
        .arg(Path::new(DIR).join("dump_with_python_gguf.py"))
        .args(files.iter().map(|f| Path::new(DIR).join(f)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_all(&live, tmp.path());
}
