//! `placer check [--host H] [--json] -- <llama.cpp argv>` or `placer check models.conf:SECTION`.

use crate::calibrate::Calibration;
use crate::check::{check_with, render, Workload};
use crate::host::Host;
use crate::launch::{self, Tool};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host: a shipped name (users-4090-5070ti, single-24gb, testbed-h200x2-emulated,
    /// testbed-h200-24gb, bench-8x3090) or a host TOML file. Default: the users' host.
    #[arg(long)]
    pub host: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Which llama.cpp tool the command is for (server: -np auto = 4 slots, logits reserved for
    /// 4 outputs; cli: 1 sequence, n_batch outputs). Inferred from a program name in argv.
    #[arg(long, value_parser = ["server", "cli", "completion", "bench"])]
    pub tool: Option<String>,
    /// Catalog directory (default: $PLACER_MODELS, else ./models).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Calibration file (default: the shipped data/calibration.toml, or the user's).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Workload of the speed estimate: prompt tokens (default: half the context).
    #[arg(long)]
    pub prompt: Option<u32>,
    /// Workload of the speed estimate: generated tokens (default: 128).
    #[arg(long)]
    pub gen: Option<u32>,
    /// `models.conf:SECTION`, or the llama.cpp command after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn tool_of(name: &str) -> Tool {
    match name {
        "cli" | "completion" => Tool::Cli,
        "bench" => Tool::Bench,
        _ => Tool::Server,
    }
}

/// A program name at the front of argv (`llama-server`, `./build/bin/llama-cli`…).
fn program_tool(word: &str) -> Option<Tool> {
    let base = Path::new(word).file_name()?.to_string_lossy().to_string();
    if !base.starts_with("llama-") && base != "main" && base != "server" {
        return None;
    }
    Some(if base.contains("server") {
        Tool::Server
    } else if base.contains("bench") {
        Tool::Bench
    } else {
        Tool::Cli
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let host = match &args.host {
        Some(h) => Host::by_name_or_path(h)?,
        None => crate::host::default_host(),
    };
    let cal = match &args.calibration {
        Some(p) => Calibration::from_file(p)?,
        None => Calibration::load(),
    };
    anyhow::ensure!(
        !args.command.is_empty(),
        "nothing to check: give `placer check -- -m MODEL …` (a llama.cpp command) or `placer check models.conf:SECTION`"
    );
    let mut words = args.command.clone();
    if words.first().is_some_and(|w| w == "--") {
        words.remove(0);
    }
    let (parsed, conf_dir) =
        if words.len() == 1 && !words[0].starts_with('-') && words[0].contains(':') {
            let (path, section) = crate::modelsconf::read::load_spec(&words[0])?;
            let parsed = launch::from_section(&section)?;
            (parsed, path.parent().map(Path::to_path_buf))
        } else {
            let mut tool = args.tool.as_deref().map(tool_of);
            if let Some(t) = words.first().and_then(|w| program_tool(w)) {
                tool = tool.or(Some(t));
                words.remove(0);
            }
            (
                launch::parse_args_full(tool.unwrap_or(Tool::Server), &words)?,
                None,
            )
        };
    let cfg = parsed.config;
    anyhow::ensure!(
        !cfg.model.is_empty(),
        "the command has no -m MODEL (a .gguf, a header snapshot or a catalog id)"
    );
    let gguf = load_model(&cfg.model, conf_dir.as_deref(), args.models_dir.as_deref())?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    let workload = Workload {
        prompt: args.prompt,
        gen: args.gen,
    };
    let report = check_with(&anatomy, &cfg, &host, &cal, parsed.warnings, workload)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// MODEL as given, else relative to the models.conf's folder (and its models/ subfolder, where
/// the users keep them), else a catalog id.
fn load_model(
    model: &str,
    conf_dir: Option<&Path>,
    models_dir: Option<&Path>,
) -> anyhow::Result<crate::gguf::GgufModel> {
    if let Some(dir) = conf_dir {
        for cand in [dir.join(model), dir.join("models").join(model)] {
            if cand.is_file() {
                return crate::catalog::load_model(&cand.to_string_lossy(), models_dir);
            }
        }
    }
    crate::catalog::load_model(model, models_dir).map_err(|e| {
        e.context(format!(
            "cannot read model {model:?}: give a .gguf path, a header snapshot, or a catalog id (see models/)"
        ))
    })
}
