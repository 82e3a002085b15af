//! GGUF header reading and writing (v2/v3, split files, header-only snapshots).
//!
//! Only header bytes are read: time and memory do not grow with the size of the tensor data.
//! See docs/gguf.md for why the `gguf` crate is not used.

mod reader;
mod types;
mod writer;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use reader::{
    open, open_split, open_with, parse_prefix, read_header, shard_paths, Prefix, ReadOptions,
    LARGE_ARRAY,
};
pub use types::GgmlType;
pub use writer::{
    gguf_file_size, with_offsets, write_gguf, write_gguf_with_progress, TensorData, WriteOptions,
    DEFAULT_ALIGNMENT, FILE_SIZE_KEY,
};

/// GGUF metadata value (`enum gguf_type` in `ggml/include/gguf.h`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Element type id (0..=12, never 9) and the values.
    Array(u32, Vec<MetaValue>),
}

impl MetaValue {
    /// Any integer (or bool) value widened to i128 so that no value is lost.
    pub fn as_int(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v as i128,
            MetaValue::I8(v) => v as i128,
            MetaValue::U16(v) => v as i128,
            MetaValue::I16(v) => v as i128,
            MetaValue::U32(v) => v as i128,
            MetaValue::I32(v) => v as i128,
            MetaValue::U64(v) => v as i128,
            MetaValue::I64(v) => v as i128,
            MetaValue::Bool(v) => v as i128,
            _ => return None,
        })
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.as_int().and_then(|v| u64::try_from(v).ok())
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v as f64),
            MetaValue::F64(v) => Some(v),
            _ => self.as_int().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(_, v) => Some(v),
            _ => None,
        }
    }

    /// The gguf_type id of this value.
    pub fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) => 8,
            MetaValue::Array(..) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }
}

/// Ordered key/value metadata (file order is kept so a header can be written back unchanged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub entries: Vec<(String, MetaValue)>,
    /// Arrays the reader skipped (`ReadOptions { keep_large_arrays: false }`): key and real
    /// length. Their entries hold `MetaValue::Array(elem, vec![])`; use [`Metadata::array_len`]
    /// for the length. Metadata with skipped arrays cannot be written back (the writer refuses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_arrays: Vec<(String, u64)>,
}

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetaValue::as_u64)
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetaValue::as_f64)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetaValue::as_str)
    }
    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
    /// `<arch>.<suffix>`, e.g. `arch_key("block_count")` → `qwen3moe.block_count`.
    pub fn arch_get(&self, suffix: &str) -> Option<&MetaValue> {
        let arch = self.architecture()?;
        self.get(&format!("{arch}.{suffix}"))
    }
    /// Length of the array at `key`, also when the reader skipped its elements.
    pub fn array_len(&self, key: &str) -> Option<u64> {
        if let Some((_, n)) = self.skipped_arrays.iter().find(|(k, _)| k == key) {
            return Some(*n);
        }
        self.get(key)
            .and_then(MetaValue::as_array)
            .map(|a| a.len() as u64)
    }
    pub fn set(&mut self, key: &str, value: MetaValue) {
        // The new value is complete: the key is no longer a skipped array.
        self.skipped_arrays.retain(|(k, _)| k != key);
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }
}

/// One tensor info from a GGUF header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    /// ne[0..n_dims]; ne[0] is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset relative to the shard's data section.
    pub offset: u64,
    /// `ggml_nbytes`: from the type table, or from the offsets when the type is unknown.
    pub nbytes: u64,
    /// True when `nbytes` had to be taken from the offsets (unknown type id): flagged, not fatal.
    pub size_from_offsets: bool,
    /// Index into `GgufModel::shards`.
    pub shard: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// One file of a (possibly split) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub path: Option<PathBuf>,
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section in this file.
    pub data_offset: u64,
    /// Size of the file on disk, when known (header-only snapshots record the real size in
    /// metadata key `placer.file_size` instead).
    pub file_size: Option<u64>,
    pub n_tensors: u64,
}

/// A whole model as llama.cpp would load it: metadata of the first shard, the tensors of all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GgufModel {
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub shards: Vec<Shard>,
}

impl GgufModel {
    /// Σ ggml_nbytes over all tensors (what llama.cpp's `print_info: file size` reports).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.nbytes).sum()
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Shards whose file ends before the tensor data its header declares, and that do not record
    /// the real file's size (`placer.file_size`, header snapshots): a truncated download, or a
    /// header cut off by hand. llama.cpp refuses such a file ("tensor '…' data is not within the file
    /// bounds, model is corrupted or incomplete", `src/llama-model-loader.h:llama_tensor_weight`); placer still places the declared tensors but must not present
    /// the size as the file's. (index, bytes on disk, bytes the header needs).
    pub fn incomplete_shards(&self) -> Vec<(usize, u64, u64)> {
        let recorded = self.metadata.get_u64(FILE_SIZE_KEY).is_some();
        (0..self.shards.len())
            .filter(|i| !(*i == 0 && recorded))
            .filter_map(|i| {
                let (have, need) = self.shard_extent(i);
                let have = have?;
                (have < need).then_some((i, have, need))
            })
            .collect()
    }

    /// Whether every shard's file on disk holds all the tensor bytes its header declares: a real
    /// model file that llama.cpp (and its `llama-fit-params` dry run) can open, not a header
    /// snapshot.
    pub fn has_tensor_data(&self) -> bool {
        (0..self.shards.len()).all(|i| {
            let (have, need) = self.shard_extent(i);
            have.is_some_and(|h| h >= need)
        })
    }

    /// (bytes on disk when known, bytes the header needs) of shard `i`.
    fn shard_extent(&self, i: usize) -> (Option<u64>, u64) {
        let s = &self.shards[i];
        let end = self
            .tensors
            .iter()
            .filter(|t| t.shard == i)
            .map(|t| t.offset.saturating_add(t.nbytes))
            .max()
            .unwrap_or(0);
        (s.file_size, s.data_offset.saturating_add(end))
    }
}

/// Typed reader errors: the reader never panics on bad input.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file: it starts with {}, a GGUF file starts with \"GGUF\"", crate::units::shown_bytes(.0))]
    BadMagic([u8; 4]),
    #[error("GGUF version {0} is not supported (placer reads versions 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("file is truncated: needed {needed} bytes at offset {offset} while reading {what}")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
    },
    #[error("value out of range while reading {0}")]
    Overflow(String),
    #[error("invalid GGUF: {0}")]
    Invalid(String),
    #[error("split model: shard {0} is missing (looked for {1})")]
    MissingShard(u32, PathBuf),
    /// The OS error is part of the message, not a `source`: printed with `{:#}` it would
    /// otherwise appear twice ("Is a directory (os error 21): Is a directory (os error 21)").
    #[error("I/O error on {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}
