//! `placer check [--host H] [--json] -- <llama.cpp argv>` or `placer check models.conf:SECTION`.

use super::common::CommonArgs;
use crate::check::{check_for_build, render};
use crate::launch::{self, Tool};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub workload: super::common::WorkloadArgs,
    /// Do not run llama.cpp's `llama-fit-params` dry run beside the prediction (run by default
    /// when the target llama-server has it and MODEL is a full GGUF file).
    #[arg(long)]
    pub no_oracle: bool,
    /// Arguments put in front of the command for the dry run (e.g. `--rpc host:port,…`).
    #[arg(
        long,
        value_name = "ARGS",
        allow_hyphen_values = true,
        value_delimiter = ' '
    )]
    pub oracle_args: Vec<String>,
    /// `models.conf:SECTION`, or the llama.cpp command after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `placer check models.conf:SECTION --llama-build N …`: clap's trailing command would take
/// every word after the section as llama.cpp's argv. A section is a whole command, so what
/// follows it can only be placer's own options: the section moves behind them (after `--`) and
/// clap reads them. A word after the section that is not one of check's options is refused
/// here, by name.
pub fn normalize_argv(args: Vec<String>) -> Result<Vec<String>, String> {
    if args.get(1).map(String::as_str) != Some("check") {
        return Ok(args);
    }
    let cmd = <Args as clap::Args>::augment_args(clap::Command::new("check"));
    // Some(takes a value) for one of check's options, None for any other word.
    let option = |w: &str| -> Option<bool> {
        if w == "--help" || w == "-h" {
            return Some(false);
        }
        let long = w
            .strip_prefix("--")
            .map(|l| l.split_once('=').map_or(l, |(n, _)| n));
        let short = w
            .strip_prefix('-')
            .filter(|s| s.len() == 1)
            .and_then(|s| s.chars().next());
        cmd.get_arguments()
            .find(|a| {
                long.is_some_and(|l| {
                    a.get_long() == Some(l) || a.get_all_aliases().is_some_and(|al| al.contains(&l))
                }) || short.is_some_and(|c| a.get_short() == Some(c))
            })
            .map(|a| a.get_action().takes_values() && !w.contains('='))
    };
    let mut i = 2;
    while i < args.len() {
        let w = &args[i];
        if w == "--" {
            return Ok(args);
        }
        if w.starts_with('-') {
            i += if option(w) == Some(true) { 2 } else { 1 };
            continue;
        }
        break;
    }
    let Some(spec) = args.get(i).filter(|w| is_section_spec(w)).cloned() else {
        return Ok(args);
    };
    let rest = &args[i + 1..];
    let mut j = 0;
    while j < rest.len() {
        let w = &rest[j];
        match option(w) {
            Some(takes) if w.starts_with('-') => j += if takes { 2 } else { 1 },
            _ => {
                return Err(format!(
                    "{w:?} after {spec} is not an option of placer check: a models.conf section \
                     is the whole llama.cpp command, so llama.cpp flags belong in the section \
                     (EXTRA_ARGS=…) and only placer's options (--host, --llama-build, …, see \
                     `placer check --help`) may follow it; or check a command: \
                     `placer check -- -m MODEL …`"
                ))
            }
        }
    }
    if rest.is_empty() {
        return Ok(args);
    }
    let mut out: Vec<String> = args[..i].to_vec();
    out.extend(rest.iter().cloned());
    out.push("--".into());
    out.push(spec);
    Ok(out)
}

/// `FILE:SECTION` where FILE is a file and the whole word is not.
fn is_section_spec(w: &str) -> bool {
    !w.starts_with('-')
        && !Path::new(w).exists()
        && w.rsplit_once(':')
            .is_some_and(|(f, s)| !f.is_empty() && !s.is_empty() && Path::new(f).is_file())
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
    let argv_used: Vec<String>;
    if words.len() > 1 && is_section_spec(&words[0]) {
        // Not reached from the command line (normalize_argv moves the section); a caller that
        // builds Args itself gets the same answer.
        anyhow::bail!(
            "{} after {}: a models.conf section is the whole llama.cpp command; placer's options \
             go before it, llama.cpp flags in the section (EXTRA_ARGS=…)",
            words[1],
            words[0]
        );
    }
    let (parsed, conf_dir) =
        if words.len() == 1 && !words[0].starts_with('-') && words[0].contains(':') {
            let (path, section) = crate::modelsconf::read::load_spec(&words[0])?;
            argv_used = launch::section_argv(&section)?;
            validate(&target, &argv_used, Tool::Server)
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
            argv_used = words.clone();
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
        &args.common.remote(),
    )?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    let workload = args.workload.check_workload();
    let rules = crate::memory::rules_for(target.facts().build);
    let report = check_for_build(
        &anatomy,
        &cfg,
        &crate::host_model::HostModel::resolve(&host, &cal),
        parsed.warnings,
        workload,
        rules,
    )?;
    let oracle = dry_run(
        &args,
        &target,
        &cfg.model,
        conf_dir.as_deref(),
        &gguf,
        &argv_used,
    );
    if args.common.json {
        let mut v = serde_json::to_value(&report)?;
        v["oracle"] = match &oracle {
            Ok(d) => serde_json::to_value(d)?,
            Err(why) => serde_json::json!({ "not_run": why }),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&report));
        match &oracle {
            Ok(d) => print!("{}", side_by_side(&report, d)),
            Err(why) => println!("llama.cpp dry run: {why}"),
        }
    }
    if !report.fits() {
        return Err(super::DoesNotFit(format!("placer check: {}", report.verdict_text)).into());
    }
    Ok(())
}

/// llama.cpp's own projection of the command (`llama-fit-params`, src/oracle.rs), or why it was
/// not run (one line).
fn dry_run(
    args: &Args,
    target: &crate::target::Target,
    model: &str,
    conf_dir: Option<&Path>,
    gguf: &crate::gguf::GgufModel,
    argv: &[String],
) -> Result<crate::oracle::DryRun, String> {
    let only = "placer's memory model only";
    if args.no_oracle {
        return Err(format!("not run (--no-oracle); {only}"));
    }
    let Some(server) = &target.server else {
        return Err(format!(
            "not run (no llama-server given: --llama PATH); {only}"
        ));
    };
    let file =
        match crate::catalog::resolve_model(model, conf_dir, args.common.models_dir.as_deref()) {
            Some(crate::catalog::ModelRef::File(f)) if gguf.has_tensor_data() => f,
            _ => {
                return Err(format!(
                    "not run (MODEL is a header snapshot, a catalog id or a remote header, not a full GGUF on disk); {only}"
                ))
            }
        };
    let oracle =
        crate::oracle::Oracle::beside(server).map_err(|e| format!("not run ({e}); {only}"))?;
    // The model as the dry run must open it (MODEL= may be relative to the models folder).
    let mut argv: Vec<String> = argv.to_vec();
    if let Some(i) = argv.iter().position(|a| a == "-m" || a == "--model") {
        if let Some(v) = argv.get_mut(i + 1) {
            *v = file.to_string_lossy().to_string();
        }
    }
    let mut full = args.oracle_args.clone();
    full.extend(argv);
    oracle
        .dry_run(&full)
        .map_err(|e| format!("failed ({e}); {only}"))
}

/// placer's prediction beside llama.cpp's dry run, per device (MiB).
fn side_by_side(r: &crate::check::CheckReport, d: &crate::oracle::DryRun) -> String {
    let mib = |b: u64| b / crate::units::MIB;
    let mut o = format!(
        "llama.cpp's own dry run (llama-fit-params, {:.1} s), MiB placer / llama.cpp:\n",
        d.elapsed.as_secs_f64()
    );
    o.push_str("  device      weights            KV                 compute\n");
    for (i, g) in r.prediction.gpus.iter().enumerate() {
        let Some(l) = d.devices.get(i) else { break };
        o.push_str(&format!(
            "  {:<10} {:>7} / {:<8} {:>7} / {:<8} {:>7} / {:<8}\n",
            r.gpu_labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("CUDA{i}")),
            mib(g.model),
            l.model_mib,
            mib(g.kv + g.rs),
            l.context_mib,
            mib(g.compute),
            l.compute_mib
        ));
    }
    let h = &r.prediction.host;
    o.push_str(&format!(
        "  {:<10} {:>7} / {:<8} {:>7} / {:<8} {:>7} / {:<8}\n",
        "host",
        mib(h.cpu_model + h.cpu_weights),
        d.host.model_mib,
        mib(h.kv + h.rs),
        d.host.context_mib,
        mib(h.compute),
        d.host.compute_mib
    ));
    o
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
    remote: &crate::remote::Options,
) -> anyhow::Result<crate::gguf::GgufModel> {
    match crate::catalog::resolve_model(model, conf_dir, models_dir) {
        Some(crate::catalog::ModelRef::File(f)) => {
            return crate::catalog::load_model(&f.to_string_lossy(), models_dir)
        }
        Some(crate::catalog::ModelRef::Remote(s)) => {
            return Ok(crate::catalog::load_remote(&s, remote)?.model)
        }
        _ => {}
    }
    if let Some(Err(e)) = crate::remote::Source::parse(model) {
        return Err(e);
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
