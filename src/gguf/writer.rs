//! GGUF writer (for `placer synth` and header snapshots). OWNER: gguf helper. Stub.
use super::{GgufError, Metadata, TensorInfo};
use std::path::Path;

/// What to put in the data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorData {
    /// Header only: no data section (a header snapshot).
    None,
    /// Full-size random, valid blocks (seeded), so real llama.cpp loads and runs the file.
    Random { seed: u64 },
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub alignment: u64,
    pub data: TensorData,
}

/// Write a GGUF v3 file with these metadata and tensor infos (offsets are recomputed).
pub fn write_gguf(
    _path: &Path,
    _metadata: &Metadata,
    _tensors: &[TensorInfo],
    _opts: &WriteOptions,
) -> Result<(), GgufError> {
    Err(GgufError::Invalid("writer not implemented yet".into()))
}
