//! `placer trial models.conf:SECTION…`: start each section's llama-server, measure it with the
//! solve's workload, store the runs, learn, choose, and with `--write` record the results in the
//! section comments (docs/trial.md).

use super::common::CommonArgs;
use crate::launch::{self, Tool};
use crate::trial::{self, choose, conf, measure, store, tune, Kind, Profile, TrialResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// Workload preset, as `solve` takes it: agent (a cached prefix of half the context, 4096
    /// new prompt tokens, 256 generated), chat or long-prompt (docs/solver.md §2.4).
    #[arg(long, value_enum, default_value = "agent")]
    pub workload: crate::solver::WorkloadPreset,
    /// Workload: tokens already in the KV cache before the turn's prompt, as `solve --prefix`
    /// (default: the preset's).
    #[arg(long)]
    pub prefix: Option<u32>,
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
    /// Record the measured numbers in each section's comments and mark the chosen one; a
    /// winner that is no section (a `--fit` baseline, a search step) is written as
    /// `[BASE-tuned]`.
    #[arg(long)]
    pub write: bool,
    /// Do not run llama.cpp's own `--fit` choice beside the profiles.
    #[arg(long)]
    pub no_baseline: bool,
    /// Measure only the sections (and the baselines): no search around the best profile.
    #[arg(long)]
    pub no_search: bool,
    /// Do not load the two fastest candidates again (the best `--fit` baseline and the best of
    /// placer's when they are within 10 %, in reverse order) before choosing.
    #[arg(long)]
    pub no_confirm: bool,
    /// Wall time for the whole trial (`10m`, `90s`, `1h`); the sections and baselines always
    /// run, search steps while the budget lasts.
    #[arg(long, default_value = "5m", value_name = "TIME")]
    pub budget: String,
    /// Search steps in a row that do not beat the best beyond the measured spread before the
    /// search stops.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub patience: u32,
    /// Most workload turns per candidate (at least 2; more only while they differ by more
    /// than 3 %).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_turns: u32,
    /// Extra llama.cpp flags for the `--fit` baselines only, e.g. `-fitt 1024,12224` where
    /// llama.cpp sees more free memory than the host file's budget (an emulated host).
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub baseline_args: Option<String>,
    /// Prefill the workload's cached prefix in every candidate instead of restoring the first
    /// candidate's slot save (llama-server `--slot-save-path`, a temporary folder removed after
    /// the trial).
    #[arg(long)]
    pub no_prefix_cache: bool,
}

/// One candidate: a section of the user's models.conf, a `--fit` baseline, or a search step.
#[derive(Clone)]
struct Prepared {
    profile: Profile,
    conf: PathBuf,
    workload: measure::Workload,
    /// The launch (parsed), for the search's steps.
    cfg: crate::launch::LaunchConfig,
    /// Index into `Models`.
    model: usize,
    /// The section it is (or was derived from).
    section: crate::modelsconf::read::Section,
    /// How it came about: "section", or what changed.
    what: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let host = args.common.host()?;
    let target = args.common.target()?;
    let (cal0, cal_src) = args.common.calibration()?;
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
    let limits = tune::Limits {
        budget: tune::parse_budget(&args.budget)?,
        patience: args.patience.max(1),
    };
    anyhow::ensure!(
        args.max_turns >= 2,
        "--max-turns {}: a spread needs at least 2 turns",
        args.max_turns
    );
    let baseline_extra = match &args.baseline_args {
        Some(s) => {
            let words = launch::split_words(s)
                .map_err(|e| anyhow::anyhow!("--baseline-args {s:?}: {e}"))?;
            launch::parse_args(Tool::Server, &words)
                .map_err(|e| anyhow::anyhow!("--baseline-args {s:?}: {e}"))?
        }
        None => launch::LaunchConfig::default(),
    };
    // Everything that can be wrong with the input is found before any server starts.
    let mut anatomies: Vec<(PathBuf, crate::anatomy::Anatomy)> = Vec::new();
    let mut prepared = Vec::new();
    // The host under the incoming calibration, resolved once; after every run it is resolved
    // again under what the run taught.
    let hm0 = crate::host_model::HostModel::resolve(&host, &cal0);
    for spec in &args.profiles {
        prepared.push(prepare(
            spec,
            &args,
            &target,
            &hm0,
            &models_dir,
            &mut anatomies,
        )?);
    }
    let mut confs: Vec<PathBuf> = prepared.iter().map(|p| p.conf.clone()).collect();
    confs.dedup();
    if args.write {
        for c in &confs {
            conf::check_writable(c)?;
        }
    }
    // llama.cpp's own choice for the same request, beside the first profile (the aggressive
    // one where there is one).
    if !args.no_baseline {
        let base = prepared
            .iter()
            .find(|p| p.profile.kind == Kind::Aggressive)
            .unwrap_or(&prepared[0])
            .clone();
        for b in tune::baselines(&base.cfg, &baseline_extra) {
            let mut cfg = b.cfg;
            cfg.passthrough
                .extend(baseline_extra.passthrough.iter().cloned());
            prepared.push(derived(
                &base,
                &format!("{}~{}", base_name(&base.profile.name), b.label),
                Kind::Baseline,
                b.what,
                cfg,
                &target,
                &hm0,
                &anatomies,
            ));
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
        "trying {} candidate(s) ({} section(s){}) with {} ({}); budget {}; runs go to {}; calibration: {cal_src}",
        prepared.len(),
        args.profiles.len(),
        if args.no_baseline { "" } else { " + llama.cpp's --fit" },
        server.display(),
        target.describe(),
        tune::fmt_duration(limits.budget),
        data.display()
    );
    // The cached prefix is filled once: the first candidate prefills and saves its slot, the
    // others restore it (docs/trial.md, "Measuring a candidate").
    // A model with sliding-window or recurrent layers cannot continue from a restored slot:
    // llama-server then reprocesses the whole prompt ("forcing full prompt re-processing due to
    // lack of cache data", tools/server/server-context.cpp `update_slots`), since the context
    // checkpoints it needs to roll back are made while prefilling and are not in the save.
    let no_reuse = anatomies.iter().find(|(_, a)| {
        a.hp.swa_layers.iter().any(|s| *s) || a.hp.recurrent_layers.iter().any(|r| *r)
    });
    let prefix_cache = if args.no_prefix_cache {
        None
    } else if let Some((path, a)) = no_reuse {
        println!(
            "note: {} ({}) has sliding-window or recurrent layers: llama-server cannot reuse a restored prefix, so every candidate prefills it",
            path.display(),
            a.arch
        );
        None
    } else {
        tempfile::Builder::new()
            .prefix("placer-trial-prefix-")
            .tempdir()
            .map_err(|e| {
                eprintln!(
                    "note: no folder for the cached prefix ({e}); every candidate prefills it"
                )
            })
            .ok()
    };
    let t_start = Instant::now();
    let mut hm = hm0.clone();
    let mut results: Vec<TrialResult> = Vec::new();
    let mut ran: Vec<Prepared> = Vec::new();
    let mut walls: Vec<f64> = Vec::new();
    let mut learned: Option<trial::Learned> = None;
    let mut search = tune::Search::new(limits);
    let n_first = prepared.len();
    let mut queue: std::collections::VecDeque<Prepared> = prepared.into();
    let oracle = crate::oracle::Oracle::beside(&server).ok();
    // Runs again of earlier candidates (the confirmation, tune::confirm_pair): (the original's
    // index in `results`, the repeat's), and whether the confirmation was considered.
    let mut again: Vec<(usize, usize)> = Vec::new();
    let mut confirm_of: std::collections::VecDeque<usize> = Default::default();
    let mut confirm_considered = false;
    loop {
        let next = match queue.pop_front() {
            Some(p) => p,
            None if !confirm_considered && (args.no_search || search.stopped.is_some()) => {
                confirm_considered = true;
                if let Some(why) = &search.stopped {
                    println!("search stopped: {why}");
                }
                let per_run = Duration::from_secs_f64(measure::median(&walls).unwrap_or(0.0));
                match tune::confirm_pair(&results, t_start.elapsed(), per_run, search.limits.budget)
                {
                    Some((a, b)) if !args.no_confirm => {
                        // The runner-up first: any drift since the first runs then favours
                        // neither (A B … B A).
                        println!(
                            "confirming: [{}] and [{}] again, in reverse order ({})",
                            results[b].name,
                            results[a].name,
                            tune::fmt_duration(per_run * 2)
                        );
                        for i in [b, a] {
                            queue.push_back(ran[i].clone());
                            confirm_of.push_back(i);
                        }
                        continue;
                    }
                    _ => break,
                }
            }
            None if confirm_considered => break,
            // The search's end (stopped, or --no-search) goes back to the confirmation above.
            None => {
                if results.len() == n_first && search.centre.is_none() {
                    search.start(&results);
                }
                if search.stopped.is_some() {
                    continue;
                }
                let per_run = Duration::from_secs_f64(measure::median(&walls).unwrap_or(0.0));
                // The confirmation, when the measured best baseline and placement are close,
                // runs after the search: its two runs are kept out of the search's share.
                let due = !args.no_confirm
                    && tune::confirm_pair(&results, Duration::ZERO, per_run, Duration::MAX)
                        .is_some();
                let reserve = if due { per_run * 2 } else { Duration::ZERO };
                if !search.fits_budget(t_start.elapsed(), per_run, reserve) {
                    continue;
                }
                match propose(&search, &ran, &anatomies, &hm, &target, oracle.as_ref()) {
                    Proposal::Step(p) => *p,
                    Proposal::Rejected(argv, line) => {
                        println!("{line}");
                        search.tried.push(argv);
                        continue;
                    }
                    Proposal::None(why) => {
                        search.stopped = Some(why);
                        continue;
                    }
                }
            }
        };
        search.tried.push(next.profile.argv.clone());
        let w = next.workload;
        let share = args.long_share.unwrap_or_else(|| {
            ((w.prefix + w.chunk) as f64 / next.profile.ctx.max(1) as f64).clamp(0.0, 1.0)
        });
        // A request several times slower than a finished candidate's longest cannot win.
        let fastest_ok = results
            .iter()
            .filter(|r| r.outcome.ok())
            .filter_map(|r| tune::longest_request_s(&r.measurements))
            .fold(None, |m: Option<f64>, w| Some(m.map_or(w, |m| m.min(w))));
        let opts = trial::Options {
            server: server.clone(),
            version: target.how.clone(),
            load_timeout: Duration::from_secs(args.load_timeout),
            request_timeout: tune::request_cap(
                Duration::from_secs(args.request_timeout),
                fastest_ok,
            ),
            port_base: args.port_base,
            workload: w,
            long_share: share,
            data_dir: data.clone(),
            scenario: format!("{date}-trial-{stem}"),
            host: host.clone(),
            turns: measure::Turns {
                max_turns: args.max_turns,
                ..measure::Turns::default()
            },
            prefix_cache: prefix_cache.as_ref().map(|d| d.path().to_path_buf()),
        };
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{prefix}] {msg} ({elapsed})")
                .expect("template"),
        );
        bar.set_prefix(next.profile.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        let status = status_line(&results, &search, t_start.elapsed(), n_first, results.len());
        let t0 = Instant::now();
        let r = trial::run_profile(&next.profile, &opts, |m| {
            bar.set_message(format!("{m} · {status}"))
        });
        walls.push(t0.elapsed().as_secs_f64());
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
            "[{}] {}{}{}",
            r.name,
            r.outcome.label(),
            match &r.outcome {
                trial::Outcome::Ok => r
                    .request_s()
                    .map(|t| {
                        format!(
                            ": {t:.2} s per turn (spread {:.1}% over {} turns)",
                            100.0 * r.spread().unwrap_or(0.0),
                            r.workload_turns().len()
                        )
                    })
                    .unwrap_or_default(),
                trial::Outcome::LoadFailed { why, .. } => format!(": {why}"),
                trial::Outcome::RequestFailed { phase, why, .. } => format!(" at {phase}: {why}"),
                trial::Outcome::TooSlow { phase, limit_s } => format!(
                    " at {phase}: one request took over {limit_s:.0} s (5 × the longest request of a finished candidate, or --request-timeout): stopped, it cannot be the best"
                ),
                trial::Outcome::OverCap {
                    device,
                    mib,
                    cap_mib,
                } => format!(
                    ": {device} held {mib:.0} MiB of llama.cpp's buffers, over the host file's {cap_mib:.0} MiB usable: it would not load there, so it is not a candidate"
                ),
            },
            if next.what == "section" {
                String::new()
            } else {
                format!(" — {}", next.what)
            }
        );
        for l in &r.failure_lines {
            println!("    | {l}");
        }
        let repeat_of = if confirm_considered {
            confirm_of.pop_front()
        } else {
            None
        };
        results.push(r);
        ran.push(next);
        match repeat_of {
            Some(i) => again.push((i, results.len() - 1)),
            None if results.len() > n_first => search.record(&results),
            None => {}
        }
        // Learn from every run: the next candidate is ranked with what this one taught.
        match trial::learn(&data, &cal0, &host, Some(&models_dir)) {
            Ok(l) => {
                hm = crate::host_model::HostModel::resolve(&host, &l.calibration);
                learned = Some(l);
            }
            Err(e) => eprintln!("warning: calibration not updated: {e:#}"),
        }
    }
    if let (false, Some(why)) = (confirm_considered, &search.stopped) {
        println!("search stopped: {why}");
    }
    // A repeat's workload turns join its candidate's (one median over both loads); the repeat's
    // run stays stored for calibrate, but is no candidate of its own.
    for &(i, j) in again.iter().rev() {
        let rep = results.remove(j);
        ran.remove(j);
        let n_before = results[i].workload_turns().len();
        if rep.outcome.ok() && results[i].outcome.ok() {
            for m in rep.workload_turns() {
                let mut m = m.clone();
                m.what = format!("{}-again", m.what);
                results[i].measurements.push(m);
            }
            println!(
                "[{}] pooled over two loads: {:.2} s per turn (spread {:.1}% over {} turns; first load {} turns)",
                results[i].name,
                results[i].request_s().unwrap_or(0.0),
                100.0 * results[i].spread().unwrap_or(0.0),
                results[i].workload_turns().len(),
                n_before
            );
        } else {
            println!(
                "[{}] again: {} — the first load's turns stand",
                rep.name,
                rep.outcome.label()
            );
        }
    }
    let conf_arg = (confs.len() == 1).then(|| confs[0].display().to_string());
    let choice = choose::choose(&results, conf_arg.as_deref());
    print!("{}", table(&results, &choice));
    println!("{}", choice.reason);
    println!(
        "{} candidate(s) in {}",
        results.len(),
        tune::fmt_duration(t_start.elapsed())
    );
    if let Some(c) = &choice.resolve {
        println!("re-solve with the learned margin: {c}");
    }
    if let Some(l) = &learned {
        println!(
            "calibrated on {} stored runs → {} (the next solve reads it)",
            l.n_records,
            l.path.display()
        );
        for line in &l.lines {
            println!("  {line}");
        }
        print!(
            "{}",
            learning_table(
                &results,
                &ran,
                &anatomies,
                &hm0,
                &crate::host_model::HostModel::resolve(&host, &l.calibration),
            )
        );
    }
    if args.write {
        for c in &confs {
            let mut mine: Vec<TrialResult> = Vec::new();
            let mut winner_local = None;
            let mut new_sections = Vec::new();
            for (i, (r, p)) in results.iter().zip(&ran).enumerate() {
                if &p.conf != c {
                    continue;
                }
                let is_section = p.what == "section";
                if choice.winner == Some(i) && !is_section {
                    // The winner is no section: written as one, so it runs as written.
                    let name = format!("{}-tuned", base_name(&p.section.name));
                    new_sections.push(tuned_section(&name, p, r, results.len(), target.facts()));
                    let mut r = r.clone();
                    r.name = name;
                    winner_local = Some(mine.len());
                    mine.push(r);
                } else if is_section {
                    if choice.winner == Some(i) {
                        winner_local = Some(mine.len());
                    }
                    mine.push(r.clone());
                }
            }
            let local = choose::Choice {
                winner: winner_local,
                ..choice.clone()
            };
            conf::write_results_with(c, &mine, &local, &date, &new_sections)?;
            println!("wrote the results into {}", c.display());
            for n in &new_sections {
                println!("  new section [{}]: the measured best", n.name);
            }
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

/// `glm-flash-aggressive` → `glm-flash`.
fn base_name(name: &str) -> &str {
    let n = name.split('~').next().unwrap_or(name);
    n.strip_suffix("-aggressive")
        .or_else(|| n.strip_suffix("-moderate"))
        .or_else(|| n.strip_suffix("-tuned"))
        .unwrap_or(n)
}

/// The progress line: candidates so far, the best measured, the budget left.
fn status_line(
    results: &[TrialResult],
    search: &tune::Search,
    elapsed: Duration,
    n_first: usize,
    done: usize,
) -> String {
    let best = results
        .iter()
        .filter(|r| r.outcome.ok())
        .filter_map(|r| r.request_s().map(|t| (r, t)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(r, t)| format!("best [{}] {t:.2} s", r.name))
        .unwrap_or_else(|| "no result yet".into());
    let left = search.limits.budget.saturating_sub(elapsed);
    let phase = if done < n_first {
        format!("candidate {} of {n_first}", done + 1)
    } else {
        format!("search step {}", done + 1 - n_first)
    };
    format!(
        "{phase} · {best} · {} of budget left",
        tune::fmt_duration(left)
    )
}

enum Proposal {
    Step(Box<Prepared>),
    /// Rejected before it ran (its argv, and the line saying why).
    Rejected(Vec<String>, String),
    None(String),
}

/// The next search step: the centre's neighbours not tried yet that placer's memory model says
/// fit, ranked by the predicted turn (with the calibration learned so far); the first is checked
/// with llama.cpp's dry run before it runs.
#[allow(clippy::too_many_arguments)]
fn propose(
    search: &tune::Search,
    ran: &[Prepared],
    anatomies: &[(PathBuf, crate::anatomy::Anatomy)],
    hm: &crate::host_model::HostModel,
    target: &crate::target::Target,
    oracle: Option<&crate::oracle::Oracle>,
) -> Proposal {
    let Some(c) = search.centre else {
        return Proposal::None("nothing to step from".into());
    };
    let centre = &ran[c];
    let anatomy = &anatomies[centre.model].1;
    let mut ranked: Vec<(f64, Prepared)> = Vec::new();
    for s in tune::neighbours(anatomy, &centre.cfg, hm.host.gpus.len()) {
        let name = format!(
            "{}~{}",
            base_name(&centre.section.name),
            step_name(centre, &s.label)
        );
        let p = derived(
            centre,
            &name,
            Kind::Tuned,
            format!("from [{}]: {}", centre.profile.name, s.what),
            s.cfg,
            target,
            hm,
            anatomies,
        );
        if search.tried.contains(&p.profile.argv) {
            continue;
        }
        let Some(pred) = &p.profile.predicted else {
            continue;
        };
        if !pred.fits {
            continue;
        }
        let t = tune::predicted_turn_s(pred, &p.workload).unwrap_or(f64::INFINITY);
        ranked.push((t, p));
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, p)) = ranked.into_iter().next() else {
        return Proposal::None(format!(
            "every neighbour of [{}] was tried or does not fit",
            centre.profile.name
        ));
    };
    if let Some(o) = oracle {
        if let Some(why) = oracle_rejects(o, &p, anatomy, hm) {
            return Proposal::Rejected(
                p.profile.argv.clone(),
                format!("[{}] not run: {why}", p.profile.name),
            );
        }
    }
    Proposal::Step(Box::new(p))
}

/// The step's name: the centre's own steps chained (`cpu+1.ub1024`).
fn step_name(centre: &Prepared, label: &str) -> String {
    match centre.profile.name.split_once('~') {
        Some((_, prev)) if centre.profile.kind == Kind::Tuned => format!("{prev}.{label}"),
        _ => label.to_string(),
    }
}

/// llama.cpp's dry run (`llama-fit-params`, src/oracle.rs) on the step's flags: a GPU where
/// llama.cpp's own projection plus placer's overhead exceeds the host file's usable cap would
/// not load; None when it fits or no dry run could be made (then placer's model decided).
fn oracle_rejects(
    o: &crate::oracle::Oracle,
    p: &Prepared,
    anatomy: &crate::anatomy::Anatomy,
    hm: &crate::host_model::HostModel,
) -> Option<String> {
    let dry = o.dry_run(&p.profile.argv).ok()?;
    // The dry run's graph carries n_batch outputs, a server's n_parallel (profile::confirm).
    let gap = crate::profile::output_rows_gap(anatomy, hm, &p.cfg);
    let over = p.profile.predicted.as_ref().map(|x| &x.overhead);
    for (i, (g, d)) in hm.host.gpus.iter().zip(&dry.devices).enumerate() {
        let oh = over.and_then(|v| v.get(i)).map(|x| x.1).unwrap_or(0.0);
        let gap_mib = gap.get(i).copied().unwrap_or(0) as f64 / (1u64 << 20) as f64;
        let need = d.self_mib() as f64 - gap_mib + oh;
        if need > g.usable_mib as f64 {
            return Some(format!(
                "llama.cpp's dry run projects {need:.0} MiB on CUDA{i} ({} MiB self, {gap_mib:.0} of it outputs a server does not reserve, + {oh:.0} overhead), over its {} MiB",
                d.self_mib(),
                g.usable_mib
            ));
        }
    }
    None
}

/// A candidate derived from `from` with another launch (a baseline or a search step),
/// predicted with `cal`.
#[allow(clippy::too_many_arguments)]
fn derived(
    from: &Prepared,
    name: &str,
    kind: Kind,
    what: String,
    cfg: crate::launch::LaunchConfig,
    target: &crate::target::Target,
    hm: &crate::host_model::HostModel,
    anatomies: &[(PathBuf, crate::anatomy::Anatomy)],
) -> Prepared {
    let argv = crate::emit::argv_for(&cfg, target.facts()).argv;
    let anatomy = &anatomies[from.model].1;
    let predicted = trial::predict(anatomy, &cfg, hm, &from.workload);
    Prepared {
        profile: Profile {
            name: name.to_string(),
            kind,
            argv,
            model: from.profile.model.clone(),
            ctx: from.profile.ctx,
            predicted,
        },
        conf: from.conf.clone(),
        workload: from.workload,
        cfg,
        model: from.model,
        section: from.section.clone(),
        what,
    }
}

/// The winner as a models.conf section in the users' format (MODEL as the user wrote it, the
/// user's keys carried over, the launch in N_GPU_LAYERS / FIT / EXTRA_ARGS).
fn tuned_section(
    name: &str,
    p: &Prepared,
    r: &TrialResult,
    n_candidates: usize,
    facts: &crate::builds::BuildFacts,
) -> crate::modelsconf::write::NewSection {
    use crate::launch::GpuLayers;
    let mut t = String::new();
    t.push_str(&format!(
        "# the measured best of {n_candidates} candidates of `placer trial` ({}): {:.2} s per turn, decode {} t/s\n",
        p.what,
        r.request_s().unwrap_or(0.0),
        r.decode_tps().map(|d| format!("{d:.1}")).unwrap_or_else(|| "–".into())
    ));
    t.push_str(&format!("[{name}]\n"));
    let own = crate::profile::OWN_KEYS;
    // The section it came from describes another placement: its NAME without the profile word,
    // and a DESCRIPTION of what this one is.
    if let Some(n) = p.section.get("NAME") {
        let n = n
            .trim_end_matches(" (aggressive)")
            .trim_end_matches(" (moderate)");
        t.push_str(&format!("NAME={n} (tuned)\n"));
    }
    t.push_str(&format!(
        "DESCRIPTION=placer trial, the measured best: {}\n",
        p.what
    ));
    if let Some(d) = r.decode_tps() {
        t.push_str(&format!("SPEED=~{d:.0} t/s (measured)\n"));
    }
    if let Some(m) = p.section.get("MODEL") {
        t.push_str(&format!("MODEL={m}\n"));
    }
    t.push_str(&format!("CTX_SIZE={}\n", p.profile.ctx));
    match p.cfg.gpu_layers {
        GpuLayers::Count(n) => t.push_str(&format!("N_GPU_LAYERS={n}\n")),
        GpuLayers::All => t.push_str("N_GPU_LAYERS=all\n"),
        GpuLayers::Auto => {}
    }
    t.push_str(&format!("FIT={}\n", if p.cfg.fit { "on" } else { "off" }));
    for (k, v) in &p.section.entries {
        if !own.contains(&k.as_str()) {
            t.push_str(&format!("{k}={v}\n"));
        }
    }
    t.push_str(&format!(
        "EXTRA_ARGS={}\n",
        crate::emit::extra_args_for(&p.cfg, facts).join(" ")
    ));
    crate::modelsconf::write::NewSection {
        name: name.to_string(),
        text: t,
    }
}

/// Predicted vs measured turn, decode and prefill for every candidate that ran: with the
/// calibration the trial started from, and with the one it learned.
fn learning_table(
    results: &[TrialResult],
    ran: &[Prepared],
    anatomies: &[(PathBuf, crate::anatomy::Anatomy)],
    before: &crate::host_model::HostModel,
    after: &crate::host_model::HostModel,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\npredicted vs measured, before → after learning (error of the prediction in %):"
    );
    let _ = writeln!(
        s,
        "{:<32} {:>26} {:>26}",
        "candidate", "decode t/s meas: before→after", "prefill t/s meas: before→after"
    );
    let pct = |p: Option<f64>, m: Option<f64>| match (p, m) {
        (Some(p), Some(m)) if m > 0.0 => format!("{:+.0}%", 100.0 * (p - m) / m),
        _ => "–".into(),
    };
    let mut err = [[0.0f64; 2]; 2];
    let mut n = 0usize;
    for (r, p) in results.iter().zip(ran) {
        if !r.outcome.ok() {
            continue;
        }
        let a = &anatomies[p.model].1;
        let pb = trial::predict(a, &p.cfg, before, &p.workload);
        let pa = trial::predict(a, &p.cfg, after, &p.workload);
        let (md, mp) = (r.decode_tps(), r.prefill_tps());
        let g = |x: &Option<trial::Predicted>, f: fn(&trial::Predicted) -> Option<f64>| {
            x.as_ref().and_then(f)
        };
        let (bd, ad) = (g(&pb, |x| x.decode_tps), g(&pa, |x| x.decode_tps));
        let (bp, ap) = (g(&pb, |x| x.prefill_tps), g(&pa, |x| x.prefill_tps));
        let f = |x: Option<f64>| x.map(|t| format!("{t:.1}")).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "{:<32} {:>26} {:>26}",
            r.name,
            format!("{}: {}→{}", f(md), pct(bd, md), pct(ad, md)),
            format!("{}: {}→{}", f(mp), pct(bp, mp), pct(ap, mp)),
        );
        if let (Some(m), Some(b), Some(a2)) = (md, bd, ad) {
            err[0][0] += ((b - m) / m).abs();
            err[0][1] += ((a2 - m) / m).abs();
            n += 1;
            if let (Some(m), Some(b), Some(a2)) = (mp, bp, ap) {
                err[1][0] += ((b - m) / m).abs();
                err[1][1] += ((a2 - m) / m).abs();
            }
        }
    }
    if n > 0 {
        let k = n as f64;
        let _ = writeln!(
            s,
            "mean |error|: decode {:.0}% → {:.0}%, prefill {:.0}% → {:.0}% over {n} candidate(s)",
            100.0 * err[0][0] / k,
            100.0 * err[0][1] / k,
            100.0 * err[1][0] / k,
            100.0 * err[1][1] / k
        );
    }
    s
}

fn prepare(
    spec: &str,
    args: &Args,
    target: &crate::target::Target,
    hm: &crate::host_model::HostModel,
    models_dir: &Path,
    anatomies: &mut Vec<(PathBuf, crate::anatomy::Anatomy)>,
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
        workload: args.workload,
        prefix: args.prefix,
        prompt: args.prompt,
        gen: args.gen,
        decode_depth: args.depth,
        ..Default::default()
    };
    let workload = measure::Workload::from_request(&req, &anatomy);
    cfg.model = file.display().to_string();
    let predicted = trial::predict(&anatomy, &cfg, hm, &workload);
    let model = match anatomies.iter().position(|(f, _)| f == &file) {
        Some(i) => i,
        None => {
            anatomies.push((file.clone(), anatomy));
            anatomies.len() - 1
        }
    };
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
        cfg,
        model,
        section,
        what: "section".into(),
    })
}

/// One table: per candidate, memory per device like for like (llama.cpp's own buffers measured
/// / predicted, placer's overhead shown apart, percent of the host file's usable cap), prefill
/// and decode t/s (measured / predicted), the turn's median time and its spread, outcome.
pub fn table(results: &[TrialResult], choice: &choose::Choice) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<30} {:<14} {:>44} {:>20} {:>20} {:>15}",
        "candidate",
        "outcome",
        "self MiB measured/predicted (+overhead) %cap",
        "prefill meas/pred",
        "decode meas/pred",
        "turn s (spread)"
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
                let oh = pred
                    .and_then(|p| p.overhead.iter().find(|(d, _)| d == n).map(|x| x.1))
                    .map(|o| format!(" (+{o:.0})"))
                    .unwrap_or_default();
                let pct = m
                    .and_then(|d| d.percent())
                    .map(|p| format!(" {p:.0}%"))
                    .unwrap_or_default();
                format!(
                    "{n} {}/{}{oh}{pct}",
                    m.map(|d| format!("{:.0}", d.mib))
                        .unwrap_or_else(|| "–".into()),
                    p.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into())
                )
            })
            .collect();
        let mark = if choice.winner == Some(i) { "*" } else { " " };
        let _ = writeln!(
            s,
            "{mark}{:<29} {:<14} {:>44} {:>20} {:>20} {:>15}",
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
                .map(|t| format!("{t:.2} ({:.1}%)", 100.0 * r.spread().unwrap_or(0.0)))
                .unwrap_or_else(|| "–".into())
        );
    }
    if let Some(r) = results.iter().find(|r| r.outcome.ok()) {
        let w = &r.workload;
        let _ = writeln!(
            s,
            "workload turn: {} cached + {} new prompt tokens, {} generated; long prompt {} tokens; \
             self = llama.cpp's buffers (exit breakdown), %cap = of the host file's usable memory; * = chosen",
            w.prefix, w.chunk, w.gen, r.long_tokens
        );
    }
    s
}
