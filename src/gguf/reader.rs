//! GGUF header reader. OWNER: gguf helper. Stub until implemented.
use super::{GgufError, GgufModel};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Read one GGUF header (one shard) from a stream positioned at the file start.
pub fn read_header<R: Read>(_r: R) -> Result<GgufModel, GgufError> {
    Err(GgufError::Invalid("reader not implemented yet".into()))
}

/// Open a model file; for a split model given any shard, read every shard's header.
pub fn open(_path: &Path) -> Result<GgufModel, GgufError> {
    Err(GgufError::Invalid("reader not implemented yet".into()))
}

/// All shard paths of a split model given any one of them (a single path for unsplit files).
pub fn shard_paths(path: &Path) -> Vec<PathBuf> {
    vec![path.to_path_buf()]
}
