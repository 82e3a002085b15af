//! What the tests that run real llama.cpp share: the tiny model they load.

use placer::gguf::{self, TensorData, WriteOptions};
use std::path::{Path, PathBuf};

/// Synthesize tests/fixtures/models/tiny-moe.toml full-size (random weights) into `dir`: a
/// qwen3moe of 6 layers that llama-server loads and generates with on a CPU.
pub fn tiny_moe(dir: &Path) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let recipe = repo.join("tests/fixtures/models/tiny-moe.toml");
    let entry = placer::catalog::entry_from_file(&recipe).expect("recipe parses");
    let model = entry
        .synthesize(None, &repo.join("models"))
        .expect("synthesizes");
    let path = dir.join("tiny-moe.gguf");
    let opts = WriteOptions {
        data: TensorData::Random { seed: 1 },
        ..WriteOptions::default()
    };
    gguf::write_gguf(&path, &model.metadata, &model.tensors, &opts).expect("writes");
    path
}
