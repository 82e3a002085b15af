//! `placer calibrate LOGS... [--report] [--out FILE] [--csv FILE]`: learn from measured runs.

use crate::calibrate::{run, Calibration};
use crate::host::Host;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Log files or folders (searched recursively; testbed runs with a manifest.json, plain
    /// llama-server / llama-cli / llama-completion logs, --log-jsonl, llama-bench md/csv/json;
    /// .gz accepted).
    #[arg(required = true)]
    pub logs: Vec<PathBuf>,
    /// Print predicted vs measured per run and error percentiles before and after fitting.
    #[arg(long)]
    pub report: bool,
    /// Where to write the fitted calibration (default: the user file,
    /// ~/.config/placer/calibration.toml; data/calibration.toml for the shipped one).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write one row per run (measured and predicted side by side), e.g. data/runs.csv.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Host file for logs without a testbed manifest (default: derived from each log).
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// Start from the shipped calibration instead of the user's.
    #[arg(long)]
    pub from_shipped: bool,
    /// Fit and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let base = if args.from_shipped {
        Calibration::shipped()
    } else {
        Calibration::load()
    };
    let host = args.host.as_deref().map(Host::load).transpose()?;
    // A trial's workload turns (speeds at the workload's depth) count for the few-run factors,
    // as after `placer trial` (src/calibrate/fit.rs).
    let opts = run::Options {
        host,
        workload_turns: true,
        ..run::Options::default()
    };
    let n_files = crate::calibrate::records::discover(&args.logs).len();
    if n_files == 0 {
        anyhow::bail!(
            "no files under {:?}; give log files or folders that hold them",
            args.logs
        );
    }
    let bar = ProgressBar::new(n_files as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} logs {elapsed}").expect("template"),
    );
    if n_files < 20 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let out = run::calibrate(&args.logs, &base, &opts, |_| bar.inc(1));
    bar.finish_and_clear();
    if args.report {
        print!("{}", run::report(&out, &base));
    } else {
        for l in &out.fit.lines {
            println!("{l}");
        }
        if !out.skipped.is_empty() {
            println!(
                "{} files skipped (not llama.cpp logs or unreadable); --report lists them",
                out.skipped.len()
            );
        }
    }
    if args.dry_run {
        return Ok(());
    }
    // A run that read no usable log has nothing to say: it must not replace a calibration fitted
    // on real runs (its n_runs would drop to 0).
    if out.records.is_empty() {
        anyhow::bail!(
            "no usable llama.cpp log among the {n_files} files under {:?} ({} skipped; --report \
             lists why): nothing written, the calibration stays as it was",
            args.logs,
            out.skipped.len()
        );
    }
    if let Some(csv) = &args.csv {
        crate::calibrate::records::write_csv(csv, &run::csv_rows(&out.records, &out.calibration))?;
        println!("wrote {} rows to {}", out.records.len(), csv.display());
    }
    let path = match args.out.or_else(Calibration::user_path) {
        Some(p) => p,
        None => anyhow::bail!(
            "no --out given and no home directory for ~/.config/placer/calibration.toml"
        ),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let header = format!(
        "# Written by `placer calibrate` from {} runs (llama.cpp {}, host {}). Provenance of each value below.\n",
        out.calibration.n_runs, out.calibration.llama_build, out.calibration.host
    );
    // Through the one file-writing path (src/fsio.rs): a failed write leaves the old file whole.
    crate::fsio::replace(&path, (header + &out.calibration.to_toml()).as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
