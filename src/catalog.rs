//! The models/ catalog: one TOML file per model id (source, published size, hyper-parameters and
//! file type for `synth`) plus a header snapshot (models/headers/<id>.gguf), so that planning
//! works without the weights.
//!
//! Anywhere a MODEL is accepted it may be a path to a .gguf (any shard of a split model), a
//! catalog id, or a remote model: a URL or `hf:user/repo[:QUANT]` (src/remote, docs/remote.md).

use crate::gguf::{self, GgufModel};
use crate::synth::{self, Hparams, Quant, Synthesized};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One models/<id>.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    /// What people call it, e.g. "GLM-4.7-Flash Q8_0".
    pub name: String,
    /// File type synthesized (llama.cpp's name: Q8_0, Q4_K_M, MXFP4_MOE, …).
    pub quant: Quant,
    /// Vocab GGUF the tokenizer is copied from: a name under models/vocab/ (`qwen2`) or a path.
    pub tokenizer: String,
    /// Why this entry's synthesized file may differ from the published one.
    #[serde(default)]
    pub notes: Vec<String>,
    pub source: Source,
    pub published_size: PublishedSize,
    /// Published sizes of the same model in other file types (or of a model with the same
    /// tensor shapes), each compared with a synthesis in that type.
    #[serde(default)]
    pub checks: Vec<SizeCheck>,
    pub hparams: Hparams,
}

/// A published size of this architecture in some file type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeCheck {
    pub quant: Quant,
    pub file: String,
    pub bytes: u64,
    pub text: String,
    pub rounding_bytes: u64,
    pub url: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Where the real model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Hugging Face repo of the GGUF.
    pub repo: String,
    /// File name(s) in the repo (all shards of a split model).
    pub files: Vec<String>,
    /// The original (safetensors) model the GGUF was converted from.
    pub base_model: String,
}

/// The published file size, or the explicit statement that none was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedSize {
    /// Bytes (sum over shards), as published; absent when no size was found.
    pub bytes: Option<u64>,
    /// The size as the page writes it, e.g. "31.84 GB".
    pub text: Option<String>,
    /// ± how many bytes the published figure's rounding hides.
    pub rounding_bytes: Option<u64>,
    /// The page it came from.
    pub url: Option<String>,
    /// Why there is no published size (required when `bytes` is absent).
    pub missing: Option<String>,
}

impl Entry {
    /// Build the model's header (and, for a full file, what the writer needs).
    pub fn synthesize(&self, quant: Option<Quant>, models_dir: &Path) -> Result<Synthesized> {
        let vocab_path = synth::vocab_path(&self.tokenizer, models_dir);
        let tokenizer = synth::vocab::load_tokenizer(&vocab_path)?;
        synth::synthesize(
            &self.hparams,
            quant.unwrap_or(self.quant),
            &self.name,
            tokenizer,
        )
    }
}

/// The models directory: `$PLACER_MODELS`, else ./models when it holds a catalog, else the
/// repo's models/ (compile-time path).
pub fn models_dir() -> PathBuf {
    if let Some(p) = crate::env::path(crate::env::MODELS) {
        return p;
    }
    let local = PathBuf::from("models");
    if local.join("headers").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// All catalog ids, sorted.
pub fn ids(models_dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(models_dir)
        .with_context(|| format!("reading the catalog directory {}", models_dir.display()))?;
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Read models/<id>.toml.
pub fn entry(id: &str, models_dir: &Path) -> Result<Entry> {
    let path = models_dir.join(format!("{id}.toml"));
    if !path.is_file() {
        let known = ids(models_dir).unwrap_or_default().join(", ");
        bail!(
            "unknown model '{id}': not a file and not a catalog id (known ids in {}: {known})",
            models_dir.display()
        );
    }
    entry_from_file(&path)
}

/// Parse a catalog file at any path.
pub fn entry_from_file(path: &Path) -> Result<Entry> {
    let text = crate::fsio::read_text(path, crate::fsio::SMALL_TOML)?;
    let e: Entry = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if e.published_size.bytes.is_none() && e.published_size.missing.is_none() {
        bail!(
            "{}: published_size needs `bytes` or a `missing` explanation",
            path.display()
        );
    }
    Ok(e)
}

/// Path of an id's header snapshot.
pub fn snapshot_path(id: &str, models_dir: &Path) -> PathBuf {
    models_dir.join("headers").join(format!("{id}.gguf"))
}

/// Placement needs every value but the elements of the tokenizer lists (their lengths are
/// kept): skipping them makes reading a 200k-token header milliseconds instead of ~90 ms.
const READ: gguf::ReadOptions = gguf::ReadOptions::SUMMARY;

/// Resolve MODEL (a path to a .gguf — any shard of a split model —, a header snapshot, or a
/// catalog id) to its header.
pub fn load_model(model: &str, models_dir: Option<&Path>) -> Result<GgufModel> {
    load_model_with(model, models_dir, &crate::remote::Options::from_env())
}

/// [`load_model`] where a remote MODEL (a URL, `hf:…`) is read with `remote`'s options.
pub fn load_model_with(
    model: &str,
    models_dir: Option<&Path>,
    remote: &crate::remote::Options,
) -> Result<GgufModel> {
    if let Some(source) = crate::remote::Source::parse(model) {
        return Ok(load_remote(&source?, remote)?.model);
    }
    let path = Path::new(model);
    if path.is_file() || model.ends_with(".gguf") {
        return gguf::open_with(path, READ)
            .with_context(|| format!("reading GGUF header of {model}"));
    }
    let dir = models_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(self::models_dir);
    entry(model, &dir)?;
    let snap = snapshot_path(model, &dir);
    if !snap.is_file() {
        bail!(
            "catalog id '{model}' has no header snapshot at {}; write it with `placer synth {model} --header-only -o {}`",
            snap.display(),
            snap.display()
        );
    }
    gguf::open_with(&snap, READ)
        .with_context(|| format!("reading header snapshot {}", snap.display()))
}

/// A remote model's header(s), read as placement needs them.
pub fn load_remote(
    source: &crate::remote::Source,
    remote: &crate::remote::Options,
) -> Result<crate::remote::Remote> {
    crate::remote::open(source, remote, READ)
        .with_context(|| format!("reading the GGUF header of {}", source.launch_word()))
}

/// What a `-m` / `MODEL=` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A GGUF file (or a header snapshot) on disk.
    File(PathBuf),
    /// A catalog id (models/<id>.toml), read from its header snapshot.
    CatalogId(String),
    /// A URL or `hf:user/repo[:QUANT]`: only the header is fetched (src/remote).
    Remote(crate::remote::Source),
}

/// Resolve a models.conf `MODEL=` (or a `-m`) the way the users' start.sh does: relative to the
/// models folder (`--models-dir`, `$PLACER_MODELS`, the config file's `models_dir`), then to the
/// models.conf's own folder and its `models/` subfolder, then as given; a word that names no file
/// but a catalog entry is a catalog id. `None` when nothing matches (the caller says what was
/// tried).
pub fn resolve_model(
    model: &str,
    conf_dir: Option<&Path>,
    models_dir: Option<&Path>,
) -> Option<ModelRef> {
    if let Some(source) = crate::remote::Source::parse(model) {
        return source.ok().map(ModelRef::Remote);
    }
    let p = Path::new(model);
    let mut cands: Vec<PathBuf> = Vec::new();
    if p.is_absolute() {
        cands.push(p.to_path_buf());
    } else {
        if let Some(d) = models_dir {
            cands.push(d.join(p));
        }
        if let Some(d) = conf_dir {
            cands.push(d.join(p));
            cands.push(d.join("models").join(p));
        }
        cands.push(p.to_path_buf());
    }
    if let Some(f) = cands.into_iter().find(|c| c.is_file()) {
        return Some(ModelRef::File(f));
    }
    let dir = models_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(models_dir_default);
    let is_id = !model.contains('/') && !model.ends_with(".gguf");
    if is_id && (entry(model, &dir).is_ok() || entry(model, &self::models_dir()).is_ok()) {
        return Some(ModelRef::CatalogId(model.to_string()));
    }
    None
}

fn models_dir_default() -> PathBuf {
    self::models_dir()
}
