//! One test per reader rule and typed error (llama.cpp's `gguf_init_from_reader` checks, plus
//! placer's own: unknown tensor types sized from offsets, header-only files, split models).
use crate::gguf_support;

use gguf_support::*;
use placer::gguf::{open, read_header, shard_paths, GgmlType, GgufError, MetaValue};
use std::path::{Path, PathBuf};

fn read(b: &[u8]) -> Result<placer::gguf::GgufModel, GgufError> {
    read_header(b)
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn small_model_reads() {
    let m = read(&small_model().bytes()).unwrap();
    assert_eq!(m.metadata.architecture(), Some("llama"));
    assert_eq!(m.tensors.len(), 2);
    assert_eq!(m.tensors[0].nbytes, 576);
    assert_eq!(m.tensors[1].nbytes, 1024);
    assert_eq!(m.tensor_bytes(), 1600);
    assert!(m.tensors.iter().all(|t| !t.size_from_offsets));
    let shard = &m.shards[0];
    assert_eq!(shard.version, 3);
    assert_eq!(shard.alignment, 32);
    assert_eq!(shard.data_offset % 32, 0);
    assert_eq!(
        shard.data_offset,
        small_model().bytes().len().div_ceil(32) as u64 * 32
    );
}

#[test]
fn version_2_reads() {
    let mut h = small_model();
    h.version = 2;
    assert_eq!(read(&h.bytes()).unwrap().shards[0].version, 2);
}

#[test]
fn every_metadata_type_reads() {
    let h = Hdr::default()
        .kv("u8", Val::U8(200))
        .kv("i8", Val::I8(-5))
        .kv("u16", Val::U16(60000))
        .kv("i16", Val::I16(-30000))
        .kv("u32", Val::U32(4_000_000_000))
        .kv("i32", Val::I32(-2_000_000_000))
        .kv("f32", Val::F32(1.5))
        .kv("bool", Val::Bool(true))
        .kv("str", Val::Str("héllo"))
        .kv("u64", Val::U64(u64::MAX))
        .kv("i64", Val::I64(i64::MIN))
        .kv("f64", Val::F64(-2.25))
        .kv(
            "arr_i16",
            Val::Arr(3, 2, [(-1i16).to_le_bytes(), 7i16.to_le_bytes()].concat()),
        )
        .kv("arr_bool", Val::Arr(7, 3, vec![0, 1, 2]))
        .kv("arr_f64", Val::Arr(12, 1, 0.5f64.to_le_bytes().to_vec()))
        .kv("arr_empty", Val::Arr(4, 0, vec![]));
    let m = read(&h.bytes()).unwrap();
    let md = &m.metadata;
    assert_eq!(md.get("u8"), Some(&MetaValue::U8(200)));
    assert_eq!(md.get("i8"), Some(&MetaValue::I8(-5)));
    assert_eq!(md.get("u16"), Some(&MetaValue::U16(60000)));
    assert_eq!(md.get("i16"), Some(&MetaValue::I16(-30000)));
    assert_eq!(md.get("u32"), Some(&MetaValue::U32(4_000_000_000)));
    assert_eq!(md.get("i32"), Some(&MetaValue::I32(-2_000_000_000)));
    assert_eq!(md.get("f32"), Some(&MetaValue::F32(1.5)));
    assert_eq!(md.get("bool"), Some(&MetaValue::Bool(true)));
    assert_eq!(md.get_str("str"), Some("héllo"));
    assert_eq!(md.get("u64"), Some(&MetaValue::U64(u64::MAX)));
    assert_eq!(md.get("i64"), Some(&MetaValue::I64(i64::MIN)));
    assert_eq!(md.get("f64"), Some(&MetaValue::F64(-2.25)));
    assert_eq!(
        md.get("arr_i16"),
        Some(&MetaValue::Array(
            3,
            vec![MetaValue::I16(-1), MetaValue::I16(7)]
        ))
    );
    // gguf_reader::read(bool&): any non-zero int8 is true.
    assert_eq!(
        md.get("arr_bool"),
        Some(&MetaValue::Array(
            7,
            vec![
                MetaValue::Bool(false),
                MetaValue::Bool(true),
                MetaValue::Bool(true)
            ]
        ))
    );
    assert_eq!(
        md.get("arr_f64"),
        Some(&MetaValue::Array(12, vec![MetaValue::F64(0.5)]))
    );
    assert_eq!(md.get("arr_empty"), Some(&MetaValue::Array(4, vec![])));
    // file order is kept
    assert_eq!(md.entries[0].0, "u8");
    assert_eq!(md.entries.last().unwrap().0, "arr_empty");
}

#[test]
fn every_known_ggml_type_is_sized_from_the_table() {
    for ty in GgmlType::all() {
        let block = ty.block_size().unwrap();
        let ne0 = block * 2;
        let h = Hdr::default().tensor("t", &[ne0 as i64, 3], ty.0, 0);
        let m = read(&h.bytes()).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(m.tensors[0].nbytes, 2 * ty.type_size().unwrap() * 3, "{ty}");
        assert!(!m.tensors[0].size_from_offsets);
    }
}

#[test]
fn bad_magic() {
    let mut b = small_model().bytes();
    b[0] = b'X';
    assert!(matches!(read(&b), Err(GgufError::BadMagic(m)) if &m == b"XGUF"));
}

#[test]
fn unsupported_versions() {
    // 0, 1 (GGUFv1), 4 (newer), and a v3 file written on a big-endian host.
    for v in [0u32, 1, 4, 3u32.swap_bytes()] {
        let mut h = small_model();
        h.version = v;
        assert!(
            matches!(read(&h.bytes()), Err(GgufError::UnsupportedVersion(x)) if x == v),
            "{v}"
        );
    }
}

#[test]
fn truncated_everywhere_before_the_end_of_the_tensor_infos() {
    let b = small_model().bytes();
    for cut in 0..b.len() {
        match read(&b[..cut]) {
            Err(GgufError::Truncated { offset, .. }) => assert!(offset <= cut as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn negative_counts_overflow() {
    let mut h = small_model();
    h.n_tensors = Some(-1);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
    let mut h = small_model();
    h.n_kv = Some(i64::MIN);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
}

#[test]
fn lying_counts_are_truncated_not_allocated() {
    // A stream: the reader finds the end of the bytes.
    let mut h = small_model();
    h.n_kv = Some(i64::MAX);
    assert!(matches!(
        read(&h.bytes()),
        Err(GgufError::Truncated { .. }) | Err(GgufError::Overflow(_))
    ));
    // A file: the count is checked against the file size before reading anything.
    let dir = tempfile::tempdir().unwrap();
    let mut h = small_model();
    h.n_tensors = Some(1 << 40);
    let p = write_tmp(dir.path(), "lie.gguf", &h.bytes());
    assert!(matches!(open(&p), Err(GgufError::Truncated { .. })));
}

#[test]
fn string_longer_than_gguf_max_string_length_overflows() {
    let mut b = Hdr {
        n_kv: Some(1),
        ..Hdr::default()
    }
    .bytes();
    b.extend_from_slice(&((1u64 << 30) + 1).to_le_bytes());
    assert!(matches!(read(&b), Err(GgufError::Overflow(_))));
}

#[test]
fn string_longer_than_the_stream_is_truncated() {
    let mut b = Hdr {
        n_kv: Some(1),
        ..Hdr::default()
    }
    .bytes();
    b.extend_from_slice(&(1u64 << 29).to_le_bytes());
    b.extend_from_slice(b"abc");
    assert!(matches!(read(&b), Err(GgufError::Truncated { .. })));
}

#[test]
fn array_longer_than_gguf_max_array_elements_overflows() {
    let h = Hdr::default().kv("a", Val::Arr(0, (1 << 30) + 1, vec![]));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
    let h = Hdr::default().kv("a", Val::Arr(8, u64::MAX, vec![]));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
}

#[test]
fn nested_arrays_and_invalid_types_are_refused() {
    let h = Hdr::default().kv("nested", Val::Arr(9, 1, vec![]));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("nested")));
    let h = Hdr::default().kv("weird", Val::Raw(13, vec![0; 8]));
    assert!(
        matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("invalid GGUF type 13"))
    );
    let h = Hdr::default().kv("weird", Val::Arr(200, 1, vec![0; 8]));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(_))));
}

#[test]
fn duplicate_and_empty_keys_are_refused() {
    let h = Hdr::default().kv("a", Val::U8(1)).kv("a", Val::U8(2));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("duplicate key")));
    let h = Hdr::default().kv("", Val::U8(1));
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("empty")));
}

#[test]
fn alignment_rules() {
    let h = small_model().kv("general.alignment", Val::U32(64));
    let m = read(&h.bytes()).unwrap();
    assert_eq!(m.shards[0].alignment, 64);
    assert_eq!(m.shards[0].data_offset % 64, 0);
    // 576 bytes of token_embd padded to 64 is still 576; a 16-byte tensor would be padded to 64.
    let h = Hdr::default()
        .kv("general.alignment", Val::U32(64))
        .tensor("a", &[4], F32, 0)
        .tensor("b", &[4], F32, 64);
    assert_eq!(read(&h.bytes()).unwrap().tensors[1].offset, 64);
    let h = small_model().kv("general.alignment", Val::U64(32));
    assert!(
        matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("must be of type u32"))
    );
    for bad in [0u32, 48] {
        let h = small_model().kv("general.alignment", Val::U32(bad));
        assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("power of 2")));
    }
}

#[test]
fn tensor_name_limits() {
    let ok = "x".repeat(63);
    assert!(read(&Hdr::default().tensor(&ok, &[4], F32, 0).bytes()).is_ok());
    let long = "x".repeat(64);
    let r = read(&Hdr::default().tensor(&long, &[4], F32, 0).bytes());
    assert!(matches!(r, Err(GgufError::Invalid(m)) if m.contains("too long")));
    let h = Hdr::default()
        .tensor("a", &[8], F32, 0)
        .tensor("a", &[8], F32, 32);
    assert!(
        matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("duplicate tensor"))
    );
}

#[test]
fn tensor_shape_rules() {
    let h = Hdr::default().tensor("t", &[1, 1, 1, 1, 1], F32, 0);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("dimensions")));
    let h = Hdr::default().tensor("t", &[4, -1], F32, 0);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("< 0")));
    // element count overflows int64
    let h = Hdr::default().tensor("t", &[1 << 32, 1 << 32], F32, 0);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
    // element count fits int64 but bytes overflow u64 (f64: 8 bytes each)
    let h = Hdr::default().tensor("t", &[1 << 31, 1 << 31], 28, 0);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Overflow(_))));
    // q4_K rows must be whole blocks of 256
    let h = Hdr::default().tensor("t", &[100], Q4_K, 0);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("block size")));
    // zero-element tensors are fine (llama.cpp allows them)
    let m = read(&Hdr::default().tensor("t", &[0, 4], F32, 0).bytes()).unwrap();
    assert_eq!(m.tensors[0].nbytes, 0);
}

#[test]
fn offsets_must_be_contiguous_like_llama_cpp() {
    let h = Hdr::default()
        .tensor("a", &[8], F32, 0)
        .tensor("b", &[8], F32, 64);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("expected 32")));
    let h = Hdr::default().tensor("a", &[8], F32, 16);
    assert!(matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("expected 0")));
}

#[test]
fn unknown_type_is_sized_from_the_next_offset_and_flagged() {
    let h = Hdr::default()
        .tensor("a", &[8], F32, 0)
        .tensor("new", &[1000], 99, 32)
        .tensor("b", &[8], F32, 32 + 640);
    let m = read(&h.bytes()).unwrap();
    assert_eq!(m.tensors[1].ggml_type, GgmlType(99));
    assert_eq!(m.tensors[1].nbytes, 640);
    assert!(m.tensors[1].size_from_offsets);
    assert!(!m.tensors[2].size_from_offsets);
    // removed ids (Q4_2 = 4) are not in the table either: sized the same way
    let h = Hdr::default()
        .tensor("old", &[32], 4, 0)
        .tensor("b", &[8], F32, 96);
    assert_eq!(read(&h.bytes()).unwrap().tensors[0].nbytes, 96);
}

#[test]
fn unknown_last_tensor_is_sized_from_the_file_end() {
    let h = Hdr::default()
        .tensor("a", &[8], F32, 0)
        .tensor("new", &[1000], 77, 32);
    // a stream of unknown length cannot size it: typed error, not a guess
    assert!(
        matches!(read(&h.bytes()), Err(GgufError::Invalid(m)) if m.contains("open the file by path"))
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write_tmp(dir.path(), "m.gguf", &h.file(32 + 500));
    let m = open(&p).unwrap();
    assert_eq!(m.tensors[1].nbytes, 500);
    assert!(m.tensors[1].size_from_offsets);
    // a header-only snapshot says where the real file ends
    let real = h.bytes().len().div_ceil(32) as u64 * 32 + 32 + 700;
    let h2 = Hdr {
        kvs: vec![("placer.file_size".into(), Val::U64(real))],
        ..h
    };
    let m = read(&h2.bytes()).unwrap();
    assert_eq!(m.tensors[1].nbytes, real - m.shards[0].data_offset - 32);
}

#[test]
fn header_only_and_partial_files_read_like_full_ones() {
    let h = small_model();
    let dir = tempfile::tempdir().unwrap();
    let full = open(&write_tmp(dir.path(), "full.gguf", &h.file(1600))).unwrap();
    let head = open(&write_tmp(dir.path(), "head.gguf", &h.bytes())).unwrap();
    let part = open(&write_tmp(dir.path(), "part.gguf", &h.file(100))).unwrap();
    assert_eq!(full.tensors, head.tensors);
    assert_eq!(full.tensors, part.tensors);
    assert_eq!(full.metadata, head.metadata);
    assert_eq!(full.shards[0].file_size, Some(h.file(1600).len() as u64));
    assert_eq!(head.shards[0].file_size, Some(h.bytes().len() as u64));
}

#[test]
fn zero_tensors_data_offset_is_unpadded_like_gguf_cpp() {
    // gguf_init_from_reader only seeks to the aligned data start when n_tensors > 0.
    let h = Hdr::default().kv("general.architecture", Val::Str("x"));
    let b = h.bytes();
    assert_eq!(read(&b).unwrap().shards[0].data_offset, b.len() as u64);
}

#[test]
fn io_errors_name_the_path() {
    let e = open(Path::new("/nonexistent/dir/model.gguf")).unwrap_err();
    assert!(matches!(&e, GgufError::Io { path, .. } if path.ends_with("model.gguf")));
    assert!(e.to_string().contains("/nonexistent/dir/model.gguf"));
}

fn shard(no: u16, count: u16, total: i32, tensors: &[(&str, i64)]) -> Hdr {
    let mut h = Hdr::default();
    if no == 0 {
        h = h.kv("general.architecture", Val::Str("llama"));
    }
    h = h
        .kv("split.no", Val::U16(no))
        .kv("split.count", Val::U16(count))
        .kv("split.tensors.count", Val::I32(total));
    let mut off = 0;
    for (name, n) in tensors {
        h = h.tensor(name, &[*n], F32, off);
        off += (*n as u64 * 4).div_ceil(32) * 32;
    }
    h
}

fn write_split(dir: &Path, shards: &[Hdr]) -> Vec<PathBuf> {
    let n = shards.len();
    shards
        .iter()
        .enumerate()
        .map(|(i, h)| write_tmp(dir, &format!("m-{:05}-of-{n:05}.gguf", i + 1), &h.bytes()))
        .collect()
}

#[test]
fn split_model_from_any_shard() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_split(
        dir.path(),
        &[
            shard(0, 3, 4, &[("a", 8)]),
            shard(1, 3, 4, &[("b", 16), ("c", 8)]),
            shard(2, 3, 4, &[("d", 4)]),
        ],
    );
    for p in &paths {
        assert_eq!(shard_paths(p), paths);
        let m = open(p).unwrap();
        assert_eq!(m.shards.len(), 3);
        let names: Vec<_> = m
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shard))
            .collect();
        assert_eq!(names, [("a", 0), ("b", 1), ("c", 1), ("d", 2)]);
        assert_eq!(m.metadata.architecture(), Some("llama"));
        assert_eq!(m.tensor_bytes(), (8 + 16 + 8 + 4) * 4);
    }
}

#[test]
fn split_model_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // missing shard
    let p = write_split(
        &d.join(""),
        &[shard(0, 2, 2, &[("a", 8)]), shard(1, 2, 2, &[("b", 8)])],
    );
    std::fs::remove_file(&p[1]).unwrap();
    assert!(matches!(open(&p[0]), Err(GgufError::MissingShard(2, _))));
    // wrong split.no
    let sub = d.join("no");
    std::fs::create_dir(&sub).unwrap();
    let p = write_split(
        &sub,
        &[shard(0, 2, 2, &[("a", 8)]), shard(0, 2, 2, &[("b", 8)])],
    );
    assert!(
        matches!(open(&p[0]), Err(GgufError::Invalid(m)) if m.contains("invalid split file idx"))
    );
    // tensor count disagrees with split.tensors.count
    let sub = d.join("count");
    std::fs::create_dir(&sub).unwrap();
    let p = write_split(
        &sub,
        &[shard(0, 2, 5, &[("a", 8)]), shard(1, 2, 5, &[("b", 8)])],
    );
    assert!(
        matches!(open(&p[1]), Err(GgufError::Invalid(m)) if m.contains("5 tensors expected but 2 found"))
    );
    // same tensor in two shards
    let sub = d.join("dup");
    std::fs::create_dir(&sub).unwrap();
    let p = write_split(
        &sub,
        &[shard(0, 2, 2, &[("a", 8)]), shard(1, 2, 2, &[("a", 8)])],
    );
    assert!(matches!(open(&p[0]), Err(GgufError::Invalid(m)) if m.contains("more than one shard")));
    // a split header under a plain name
    let p = write_tmp(d, "renamed.gguf", &shard(0, 2, 2, &[("a", 8)]).bytes());
    assert!(
        matches!(open(&p), Err(GgufError::Invalid(m)) if m.contains("restore the split file names"))
    );
}

#[test]
fn shard_paths_pattern() {
    let p = Path::new("/x/Model-Q4-00002-of-00004.gguf");
    let v = shard_paths(p);
    assert_eq!(v.len(), 4);
    assert_eq!(v[0], Path::new("/x/Model-Q4-00001-of-00004.gguf"));
    assert_eq!(v[3], Path::new("/x/Model-Q4-00004-of-00004.gguf"));
    for plain in [
        "/x/model.gguf",
        "/x/m-0002-of-0004.gguf",
        "/x/m-00005-of-00004.gguf",
        "/x/-00001-of-00002.gguf",
    ] {
        assert_eq!(
            shard_paths(Path::new(plain)),
            vec![PathBuf::from(plain)],
            "{plain}"
        );
    }
}
