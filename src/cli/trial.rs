//! `placer trial models.conf:SECTION…`: start each section's llama-server, measure it with the
//! solve's workload, store the runs, learn, choose, and with `--write` record the results in the
//! section comments (docs/trial.md).

use super::common::CommonArgs;
use crate::launch::{self, Tool};
use crate::trial::{self, choose, conf, measure, store, Kind, Profile, TrialResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// `models.conf:SECTION`, one per profile to try.
    #[arg(required = true, value_name = "models.conf:SECTION")]
    pub profiles: Vec<String>,
    /// Long prompt as a share of the context (default: the workload's own share, at least
    /// 2048 tokens).
    #[arg(long, value_name = "F")]
    pub long_share: Option<f64>,
    /// Seconds a server may take to load before it counts as failed.
    #[arg(long, default_value_t = 600, value_name = "S")]
    pub load_timeout: u64,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 1800, value_name = "S")]
    pub request_timeout: u64,
    /// First loopback port to try (taken ports are skipped).
    #[arg(long, default_value_t = 18080, value_name = "PORT")]
    pub port_base: u16,
    /// Workload: new prompt tokens per turn (default: the solve's).
    #[arg(long)]
    pub prompt: Option<u32>,
    /// Workload: generated tokens per turn (default: the solve's).
    #[arg(long)]
    pub gen: Option<u32>,
    /// Workload: context depth of the turn's generation; beyond the prompt it is a cached
    /// prefix sent first (default: the solve's).
    #[arg(long)]
    pub depth: Option<u32>,
    /// Record the measured numbers in each section's comments and mark the chosen one.
    #[arg(long)]
    pub write: bool,
}

struct Prepared {
    profile: Profile,
    conf: PathBuf,
    workload: measure::Workload,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let host = args.common.host()?;
    let target = args.common.target()?;
    let (cal, cal_src) = args.common.calibration()?;
    let server = target.server.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "no llama-server to run: give --llama PATH (the binary or its folder), set $PLACER_LLAMA, or put llama-server on PATH ({})",
            target.describe()
        )
    })?;
    let models_dir = args.common.models_dir();
    if let Some(s) = args.long_share {
        anyhow::ensure!(
            s > 0.0 && s <= 1.0,
            "--long-share {s}: give a share of the context in (0, 1]"
        );
    }
    // Everything that can be wrong with the input is found before any server starts.
    let mut prepared = Vec::new();
    for spec in &args.profiles {
        prepared.push(prepare(spec, &args, &target, &host, &cal, &models_dir)?);
    }
    let mut confs: Vec<PathBuf> = prepared.iter().map(|p| p.conf.clone()).collect();
    confs.dedup();
    if args.write {
        for c in &confs {
            conf::check_writable(c)?;
        }
    }
    let data = store::data_dir()?;
    store::check_writable(&data)?;
    let (date, _) = trial::today();
    let stem = confs
        .first()
        .and_then(|c| c.file_stem())
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "models".into());
    println!(
        "trying {} profile(s) with {} ({}); runs go to {}; calibration: {cal_src}",
        prepared.len(),
        server.display(),
        target.describe(),
        data.display()
    );
    let mut results: Vec<TrialResult> = Vec::new();
    for p in &prepared {
        let w = p.workload;
        let share = args.long_share.unwrap_or_else(|| {
            ((w.prefix + w.chunk) as f64 / p.profile.ctx.max(1) as f64).clamp(0.0, 1.0)
        });
        let opts = trial::Options {
            server: server.clone(),
            version: target.how.clone(),
            load_timeout: Duration::from_secs(args.load_timeout),
            request_timeout: Duration::from_secs(args.request_timeout),
            port_base: args.port_base,
            workload: w,
            long_share: share,
            data_dir: data.clone(),
            scenario: format!("{date}-trial-{stem}"),
            host: host.clone(),
        };
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{prefix}] {msg} {elapsed}").expect("template"),
        );
        bar.set_prefix(p.profile.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        let r = trial::run_profile(&p.profile, &opts, |m| bar.set_message(m.to_string()));
        bar.finish_and_clear();
        if !r.ports_skipped.is_empty() && r.port.is_some() {
            println!(
                "[{}] port(s) {:?} taken: used {}",
                r.name,
                r.ports_skipped,
                r.port.unwrap_or(0)
            );
        }
        println!(
            "[{}] {}{}",
            r.name,
            r.outcome.label(),
            match &r.outcome {
                trial::Outcome::Ok => String::new(),
                trial::Outcome::LoadFailed { why, .. } => format!(": {why}"),
                trial::Outcome::RequestFailed { phase, why, .. } => format!(" at {phase}: {why}"),
            }
        );
        for l in &r.failure_lines {
            println!("    | {l}");
        }
        results.push(r);
    }
    let conf_arg = (confs.len() == 1).then(|| confs[0].display().to_string());
    let choice = choose::choose(&results, conf_arg.as_deref());
    print!("{}", table(&results, &choice));
    println!("{}", choice.reason);
    if let Some(c) = &choice.resolve {
        println!("re-solve with the learned margin: {c}");
    }
    match trial::learn(&data, &cal, &host, Some(&models_dir)) {
        Ok(l) => {
            println!(
                "calibrated on {} stored runs → {} (the next solve reads it)",
                l.n_records,
                l.path.display()
            );
            for line in &l.lines {
                println!("  {line}");
            }
        }
        Err(e) => eprintln!("warning: calibration not updated: {e:#}"),
    }
    if args.write {
        for c in &confs {
            let mine: Vec<TrialResult> = results
                .iter()
                .zip(&prepared)
                .filter(|(_, p)| &p.conf == c)
                .map(|(r, _)| r.clone())
                .collect();
            let winner = choice.winner.map(|i| results[i].name.clone());
            let local = choose::Choice {
                winner: winner.and_then(|w| mine.iter().position(|r| r.name == w)),
                ..choice.clone()
            };
            conf::write_results(c, &mine, &local, &date)?;
            println!("wrote the results into {}", c.display());
        }
    }
    match choice.winner {
        Some(i) => {
            println!("chosen: [{}]", results[i].name);
            Ok(())
        }
        None => Err(super::DoesNotFit(
            "placer trial: no profile loaded and survived the long prompt".into(),
        )
        .into()),
    }
}

fn prepare(
    spec: &str,
    args: &Args,
    target: &crate::target::Target,
    host: &crate::host::Host,
    cal: &crate::calibration::Calibration,
    models_dir: &Path,
) -> anyhow::Result<Prepared> {
    anyhow::ensure!(
        spec.contains(':'),
        "{spec:?}: give a profile as models.conf:SECTION"
    );
    let (path, section) = crate::modelsconf::read::load_spec(spec)?;
    let ctxt = |e: anyhow::Error| e.context(format!("models.conf section [{}]", section.name));
    let mut argv = launch::section_argv(&section).map_err(ctxt)?;
    target
        .facts()
        .validate_argv(&argv, crate::emit::build_tool(Tool::Server).expect("server table"))
        .map_err(|e| {
            anyhow::anyhow!(
                "models.conf section [{}]: {e}; llama-server would refuse to start (option table: {})",
                section.name,
                target.describe()
            )
        })?;
    let model = section
        .get("MODEL")
        .ok_or_else(|| anyhow::anyhow!("models.conf section [{}] has no MODEL=", section.name))?;
    let conf_dir = path.parent().map(Path::to_path_buf);
    let file = match crate::catalog::resolve_model(model, conf_dir.as_deref(), Some(models_dir)) {
        Some(crate::catalog::ModelRef::File(f)) if f.is_file() => f,
        _ => anyhow::bail!(
            "models.conf section [{}]: MODEL={model} is not a model file (looked in {}, next to {} and as given); a trial needs the real .gguf",
            section.name,
            models_dir.display(),
            path.display()
        ),
    };
    let file = std::fs::canonicalize(&file).unwrap_or(file);
    // -m as the server must open it.
    for i in 0..argv.len() {
        if (argv[i] == "-m" || argv[i] == "--model") && i + 1 < argv.len() {
            argv[i + 1] = file.display().to_string();
        }
    }
    let parsed = launch::parse_args_full(Tool::Server, &argv).map_err(ctxt)?;
    let gguf = crate::gguf::open(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e:#}", file.display()))?;
    let anatomy = crate::anatomy::from_gguf(&gguf)?;
    let mut cfg = parsed.config;
    let ctx = if cfg.ctx == 0 {
        anatomy.hp.n_ctx_train
    } else {
        cfg.ctx
    };
    let req = crate::solver::SolveRequest {
        ctx,
        prompt: args.prompt,
        gen: args.gen,
        decode_depth: args.depth,
        ..Default::default()
    };
    let workload = measure::Workload::from_request(&req, &anatomy);
    cfg.model = file.display().to_string();
    let predicted = trial::predict(&anatomy, &cfg, host, cal, &workload);
    Ok(Prepared {
        profile: Profile {
            name: section.name.clone(),
            kind: Kind::of_name(&section.name),
            argv,
            model: file,
            ctx,
            predicted,
        },
        conf: path,
        workload,
    })
}

/// One table: per profile, memory per device (measured / predicted), prefill and decode t/s
/// (measured / predicted), outcome.
pub fn table(results: &[TrialResult], choice: &choose::Choice) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<24} {:<16} {:>34} {:>22} {:>22} {:>9}",
        "profile",
        "outcome",
        "memory MiB measured/predicted",
        "prefill t/s meas/pred",
        "decode t/s meas/pred",
        "turn s"
    );
    let f = |x: Option<f64>| x.map(|t| format!("{t:.1}")).unwrap_or_else(|| "–".into());
    for (i, r) in results.iter().enumerate() {
        let pred = r.predicted.as_ref();
        let mut names: Vec<String> = r.memory.iter().map(|d| d.name.clone()).collect();
        if let Some(p) = pred {
            for (n, _) in &p.devices {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        let mem: Vec<String> = names
            .iter()
            .map(|n| {
                let m = r.memory.iter().find(|d| &d.name == n);
                let p = pred.and_then(|p| p.devices.iter().find(|(d, _)| d == n).map(|x| x.1));
                let pct = m
                    .and_then(|d| d.percent())
                    .map(|p| format!(" {p:.0}%"))
                    .unwrap_or_default();
                format!(
                    "{n} {}/{}{pct}",
                    m.map(|d| format!("{:.0}", d.mib))
                        .unwrap_or_else(|| "–".into()),
                    p.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into())
                )
            })
            .collect();
        let mark = if choice.winner == Some(i) { "*" } else { " " };
        let _ = writeln!(
            s,
            "{mark}{:<23} {:<16} {:>34} {:>22} {:>22} {:>9}",
            r.name,
            r.outcome.label(),
            mem.join(", "),
            format!(
                "{}/{}",
                f(r.prefill_tps()),
                f(pred.and_then(|p| p.prefill_tps))
            ),
            format!(
                "{}/{}",
                f(r.decode_tps()),
                f(pred.and_then(|p| p.decode_tps))
            ),
            r.request_s()
                .map(|t| format!("{t:.2}"))
                .unwrap_or_else(|| "–".into())
        );
    }
    if let Some(r) = results.iter().find(|r| r.outcome.ok()) {
        let w = &r.workload;
        let _ = writeln!(
            s,
            "workload turn: {} cached + {} new prompt tokens, {} generated; long prompt {} tokens; * = chosen",
            w.prefix, w.chunk, w.gen, r.long_tokens
        );
    }
    s
}
