//! The options every planning command shares (`solve`, `check`, `trial`), with one resolution
//! rule each, so the commands cannot drift apart.

use crate::calibration::Calibration;
use crate::host::Host;
use crate::launch::Tool;
use std::path::PathBuf;

/// `--host --calibration --models-dir --tool --json`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// Host: a shipped name (users-4090-5070ti, single-24gb, testbed-h200x2-emulated,
    /// testbed-h200-24gb, bench-8x3090) or a host TOML file. Default: the users' host.
    #[arg(long)]
    pub host: Option<String>,
    /// Calibration file. Default: the user's ($PLACER_CALIBRATION or
    /// ~/.config/placer/calibration.toml, what `placer calibrate` writes) when present, else the
    /// shipped data/calibration.toml.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Catalog directory (default: $PLACER_MODELS, else ./models, else the repo's models/).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// The llama.cpp program that runs the command: server (llama-server: -np auto = 4 slots,
    /// logits for 4 outputs), cli (llama-cli / llama-completion: 1 sequence, n_batch outputs) or
    /// bench. Default: server, or the program named at the front of a command.
    #[arg(long, value_enum)]
    pub tool: Option<Tool>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The llama-server the flags are for (the binary or its folder; also $PLACER_LLAMA, the
    /// config file's `llama`, or llama-server on PATH): its `--version` says which build's
    /// options to use.
    #[arg(long, value_name = "PATH")]
    pub llama: Option<PathBuf>,
    /// The llama.cpp build number to write flags for when no binary is at hand (e.g. planning
    /// for another machine); see docs/llama-builds.md for the supported builds.
    #[arg(long, value_name = "N")]
    pub llama_build: Option<u32>,
    /// A remote MODEL (a URL, `hf:user/repo[:QUANT]`) is read from the header caches only
    /// (placer's, llama.cpp's); nothing is fetched (also $PLACER_OFFLINE). docs/remote.md.
    #[arg(long)]
    pub offline: bool,
}

/// Which calibration a command used, for its output.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CalibrationSource {
    /// The file, or "shipped (data/calibration.toml)".
    pub from: String,
    /// Runs it was fitted on.
    pub n_runs: usize,
}

impl std::fmt::Display for CalibrationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} runs)", self.from, self.n_runs)
    }
}

impl CommonArgs {
    /// `--host`, else the users' host.
    pub fn host(&self) -> anyhow::Result<Host> {
        match &self.host {
            Some(h) => Host::by_name_or_path(h),
            None => Ok(crate::host::default_host()),
        }
    }

    /// `--calibration` (an error if it does not read), else the user's calibration when present,
    /// else the shipped one: the same rule for every command.
    pub fn calibration(&self) -> anyhow::Result<(Calibration, CalibrationSource)> {
        let (cal, from) = match &self.calibration {
            Some(p) => (Calibration::from_file(p)?, p.display().to_string()),
            None => match Calibration::user_path().filter(|p| p.is_file()) {
                Some(p) => match Calibration::from_file(&p) {
                    Ok(c) => (c, p.display().to_string()),
                    Err(e) => {
                        eprintln!("warning: {e:#}; using the shipped calibration");
                        (Calibration::shipped(), SHIPPED.to_string())
                    }
                },
                None => (Calibration::shipped(), SHIPPED.to_string()),
            },
        };
        let n_runs = cal.n_runs;
        Ok((cal, CalibrationSource { from, n_runs }))
    }

    /// `--models-dir`, else the config file's `models_dir`, else the catalog's rule
    /// (`catalog::models_dir`).
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .or_else(|| {
                crate::config::Config::load()
                    .ok()
                    .and_then(|c| c.models_dir)
            })
            .unwrap_or_else(crate::catalog::models_dir)
    }

    /// How a remote MODEL is read: the environment's rules, `--offline` on top.
    pub fn remote(&self) -> crate::remote::Options {
        remote_options(self.offline)
    }

    /// The llama.cpp build the commands are for (src/target.rs).
    pub fn target(&self) -> anyhow::Result<crate::target::Target> {
        let config = crate::config::Config::load()?;
        crate::target::resolve(
            crate::target::TargetArgs {
                llama: self.llama.as_deref(),
                llama_build: self.llama_build,
            },
            &config,
        )
    }
}

const SHIPPED: &str = "shipped (data/calibration.toml)";

/// [`crate::remote::Options::from_env`], offline when `offline` is given.
pub fn remote_options(offline: bool) -> crate::remote::Options {
    let mut o = crate::remote::Options::from_env();
    o.offline |= offline;
    o
}

/// The request a speed estimate prices: `--workload` and the numbers that override it (shared by
/// `solve`, `check` and `trial`, so the profile, its check and its measurement agree).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkloadArgs {
    /// agent (default: a cached prefix of half the context, 4096 new prompt tokens, 256
    /// generated: the users' agentic coding, decode-first), chat (512 prompt, 512 generated) or
    /// long-prompt (a fresh prompt of half the context, 128 generated). docs/solver.md §2.4.
    #[arg(long, value_enum, default_value = "agent")]
    pub workload: crate::solver::WorkloadPreset,
    /// Prompt tokens per request (default: the workload's).
    #[arg(long)]
    pub prompt: Option<u32>,
    /// Generated tokens per request (default: the workload's).
    #[arg(long)]
    pub gen: Option<u32>,
    /// Tokens already in the KV cache before the prompt (default: the workload's).
    #[arg(long)]
    pub prefix: Option<u32>,
}

impl WorkloadArgs {
    /// As `check::Workload`.
    pub fn check_workload(&self) -> crate::check::Workload {
        crate::check::Workload {
            preset: self.workload,
            prompt: self.prompt,
            gen: self.gen,
            prefix: self.prefix,
        }
    }
}
