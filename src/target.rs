//! The llama.cpp build placer writes for: which llama-server the user runs, which build it is,
//! and so which option table (`builds`) every emitted command must satisfy.
//!
//! Resolution, first match wins: `--llama-build N`; `--llama PATH`; `$PLACER_LLAMA`; the config
//! file's `llama`, then `llama_build`; `llama-server` on `PATH`; else the reference tree's table,
//! said in the output. A binary is asked `--version` (with a deadline) and its build number read
//! with `builds::parse_version_output`.

use crate::builds::{self, BuildFacts, Selected};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `llama-server --version` returns at once; a binary that takes longer is not llama-server.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// The target build and how it was found.
#[derive(Debug, Clone)]
pub struct Target {
    /// The option table used.
    pub selected: Selected,
    /// The llama-server binary, when one was found.
    pub server: Option<PathBuf>,
    /// How the build was determined (one line for the output).
    pub how: String,
}

impl Target {
    /// The option table of the target build.
    pub fn facts(&self) -> &'static BuildFacts {
        self.selected.facts
    }

    /// The reference tree, when nothing says otherwise.
    pub fn reference() -> Target {
        let facts = builds::reference();
        Target {
            selected: Selected {
                facts,
                requested: facts.build,
                newer_than_tables: false,
            },
            server: None,
            how: "no --llama / --llama-build given and no llama-server on PATH".into(),
        }
    }

    /// One line: "llama.cpp b11434 option table (llama-server /x --version: build 11434, …)".
    pub fn describe(&self) -> String {
        let f = self.facts();
        let mut s = format!(
            "llama.cpp b{} option table ({}; {})",
            f.build, f.source, self.how
        );
        if let Some(w) = self.selected.warning() {
            s.push_str(&format!("; warning: {w}"));
        }
        s
    }
}

/// What the user said about the target.
#[derive(Debug, Clone, Default)]
pub struct TargetArgs<'a> {
    /// `--llama PATH`.
    pub llama: Option<&'a Path>,
    /// `--llama-build N`.
    pub llama_build: Option<u32>,
}

/// Resolve the target build (see the module doc for the order).
pub fn resolve(args: TargetArgs, config: &crate::config::Config) -> anyhow::Result<Target> {
    if let Some(n) = args.llama_build {
        let selected = builds::for_build(n)?;
        let server = match args.llama {
            Some(p) => Some(server_binary(p)?),
            None => None,
        };
        return Ok(Target {
            selected,
            server,
            how: format!("--llama-build {n}"),
        });
    }
    let given = args
        .llama
        .map(|p| (p.to_path_buf(), "--llama"))
        .or_else(|| crate::env::path(crate::env::LLAMA).map(|p| (p, "$PLACER_LLAMA")))
        .or_else(|| config.llama.clone().map(|p| (p, "the config file's llama")));
    if let Some((path, from)) = given {
        let bin = server_binary(&path)?;
        let (n, commit) = probe(&bin)?;
        return from_binary(bin, n, &commit, from);
    }
    if let Some(n) = config.llama_build {
        return Ok(Target {
            selected: builds::for_build(n)?,
            server: None,
            how: format!("the config file's llama_build = {n}"),
        });
    }
    if let Some(bin) = on_path("llama-server") {
        if let Ok((n, commit)) = probe(&bin) {
            return from_binary(bin, n, &commit, "llama-server on PATH");
        }
    }
    Ok(Target::reference())
}

fn from_binary(bin: PathBuf, n: u32, commit: &str, from: &str) -> anyhow::Result<Target> {
    let selected = builds::for_build(n).map_err(|e| {
        anyhow::anyhow!(
            "{e}; {} (from {from}) says build {n}{}",
            bin.display(),
            if n == 0 {
                ": give the build with --llama-build N"
            } else {
                ""
            }
        )
    })?;
    Ok(Target {
        selected,
        how: format!(
            "{} --version: build {n}, commit {commit} (from {from})",
            bin.display()
        ),
        server: Some(bin),
    })
}

/// `PATH` given as llama-server itself or its folder (`DIR/llama-server`, `DIR/bin/llama-server`).
pub fn server_binary(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_dir() {
        for cand in [
            path.join("llama-server"),
            path.join("bin").join("llama-server"),
        ] {
            if cand.is_file() {
                return Ok(cand);
            }
        }
        anyhow::bail!(
            "{} holds no llama-server (looked for llama-server and bin/llama-server); give the \
             binary itself, e.g. --llama /path/to/build/bin/llama-server",
            path.display()
        );
    }
    anyhow::ensure!(
        path.is_file(),
        "{} does not exist; give llama-server or the folder it is in with --llama",
        path.display()
    );
    Ok(path.to_path_buf())
}

/// Build number and commit of a llama.cpp binary, from its `--version`.
pub fn probe(bin: &Path) -> anyhow::Result<(u32, String)> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version");
    let out = crate::process::run(cmd, VERSION_TIMEOUT).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a llama.cpp program placer can ask for its version: {e:#}",
            bin.display()
        )
    })?;
    let text = format!("{}\n{}", out.stdout, out.stderr);
    builds::parse_version_output(&text).ok_or_else(|| {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        anyhow::anyhow!(
            "{} is not llama.cpp's llama-server: `--version` printed no build number (first line: \
             {:?}); give llama-server with --llama, or the build with --llama-build N",
            bin.display(),
            first.chars().take(120).collect::<String>()
        )
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
