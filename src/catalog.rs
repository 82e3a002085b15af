//! The models/ catalog: one TOML file per model id (source, published size, architecture
//! recipe for `synth`) plus a header snapshot, so planning works without the weights.
//! OWNER: anatomy helper.

use crate::gguf::GgufModel;
use std::path::Path;

/// Resolve MODEL (a path to a .gguf, a header snapshot, or a catalog id) to its header.
pub fn load_model(_model: &str, _models_dir: Option<&Path>) -> anyhow::Result<GgufModel> {
    anyhow::bail!("catalog not implemented yet")
}
