//! The user's placer configuration: `$PLACER_CONFIG`, else `$XDG_CONFIG_HOME/placer/config.toml`,
//! else `~/.config/placer/config.toml`. Every key is optional; a command-line option wins over an
//! environment variable, which wins over the file.
//!
//! ```toml
//! llama = "/opt/llama.cpp/build/bin"   # llama-server (or its folder) placer writes for and runs
//! llama_build = 8022                    # when no binary is at hand (planning for another machine)
//! models_dir = "/srv/models"            # where models.conf's MODEL= paths are relative to
//! ```

use serde::Deserialize;
use std::path::PathBuf;

/// The configuration file's keys.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// llama-server binary or its folder.
    pub llama: Option<PathBuf>,
    /// llama.cpp build number to write flags for when no binary is given.
    pub llama_build: Option<u32>,
    /// Folder that models.conf's MODEL= paths are relative to (also searched for catalog ids).
    pub models_dir: Option<PathBuf>,
}

/// A configuration file is a few lines; anything larger is not one.
const CONFIG_LIMIT: u64 = 64 << 10;

impl Config {
    /// Where the file is looked for.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = crate::env::path(crate::env::CONFIG) {
            return Some(p);
        }
        let base = crate::env::path("XDG_CONFIG_HOME")
            .or_else(|| crate::env::path("HOME").map(|h| h.join(".config")))?;
        Some(base.join("placer").join("config.toml"))
    }

    /// The user's configuration; an absent file is the empty configuration, a bad one an error
    /// that names the file and the key.
    pub fn load() -> anyhow::Result<Config> {
        let Some(path) = Self::path() else {
            return Ok(Config::default());
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        anyhow::ensure!(
            meta.is_file() && meta.len() <= CONFIG_LIMIT,
            "{} is not a placer configuration file (a regular file of at most {} KiB); fix or \
             remove it, or point $PLACER_CONFIG elsewhere",
            path.display(),
            CONFIG_LIMIT >> 10
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} does not parse: {e}; the keys are llama, llama_build, models_dir",
                path.display()
            )
        })
    }
}
