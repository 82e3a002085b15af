//! `placer check [--host H] [--json] -- <llama.cpp argv>` or `placer check models.conf:SECTION`.

use super::common::CommonArgs;
use crate::check::{check_with, render};
use crate::launch::{self, Tool};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub workload: super::common::WorkloadArgs,
    /// `models.conf:SECTION`, or the llama.cpp command after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
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
    let host = args.common.host()?;
    let target = args.common.target()?;
    let (cal, _) = args.common.calibration()?;
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
            validate(&target, &launch::section_argv(&section)?, Tool::Server)
                .map_err(|e| e.context(format!("models.conf section [{}]", section.name)))?;
            let parsed = launch::from_section(&section)?;
            (parsed, path.parent().map(Path::to_path_buf))
        } else {
            let mut tool = args.common.tool;
            if let Some(t) = words.first().and_then(|w| program_tool(w)) {
                tool = tool.or(Some(t));
                words.remove(0);
            }
            let tool = tool.unwrap_or(Tool::Server);
            validate(&target, &words, tool)?;
            (launch::parse_args_full(tool, &words)?, None)
        };
    let cfg = parsed.config;
    anyhow::ensure!(
        !cfg.model.is_empty(),
        "the command has no -m MODEL (a .gguf, a header snapshot or a catalog id)"
    );
    let gguf = load_model(
        &cfg.model,
        conf_dir.as_deref(),
        args.common.models_dir.as_deref(),
    )?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    let workload = args.workload.check_workload();
    let report = check_with(&anatomy, &cfg, &host, &cal, parsed.warnings, workload)?;
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if !report.fits() {
        return Err(super::DoesNotFit(format!("placer check: {}", report.verdict_text)).into());
    }
    Ok(())
}

/// llama.cpp refuses to start on an option it does not know (`common/arg.cpp:
/// common_params_parse_ex` throws "error: invalid argument"), so check refuses it too, with the
/// target build's own option table, instead of predicting a command that never runs.
fn validate(target: &crate::target::Target, argv: &[String], tool: Tool) -> anyhow::Result<()> {
    let Some(t) = crate::emit::build_tool(tool) else {
        return Ok(()); // llama-bench: its own parser, no table
    };
    target.facts().validate_argv(argv, t).map_err(|e| {
        anyhow::anyhow!(
            "{e}; llama.cpp would refuse to start (option table: {})",
            target.describe()
        )
    })
}

/// MODEL as given, else relative to the models.conf's folder (and its models/ subfolder, where
/// the users keep them), else a catalog id.
fn load_model(
    model: &str,
    conf_dir: Option<&Path>,
    models_dir: Option<&Path>,
) -> anyhow::Result<crate::gguf::GgufModel> {
    if let Some(crate::catalog::ModelRef::File(f)) =
        crate::catalog::resolve_model(model, conf_dir, models_dir)
    {
        return crate::catalog::load_model(&f.to_string_lossy(), models_dir);
    }
    // The hint is for a MODEL that is neither a file nor a catalog id; a file that was found but
    // does not read has its own message (bad magic, truncated, …).
    let given_a_path = Path::new(model).exists() || model.ends_with(".gguf");
    crate::catalog::load_model(model, models_dir).map_err(|e| {
        if given_a_path {
            e
        } else {
            e.context(format!(
                "cannot read model {model:?}: give a .gguf path, a header snapshot, or a catalog id (see models/)"
            ))
        }
    })
}
