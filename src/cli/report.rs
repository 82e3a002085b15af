//! `placer report <what>`: regenerate the reports in docs/ from data/runs. One subcommand per
//! report (calibration: calibrate helper; memory: memory helper).

use crate::calibrate::{run, Calibration};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Predicted vs measured per run and error percentiles before / after fitting (no file written).
    Calibration(CalibrationArgs),
    /// Predicted vs measured memory per run and device → docs/error-report.md (memory helper).
    Memory(MemoryArgs),
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Logs or folders (default: data/runs).
    pub logs: Vec<PathBuf>,
    /// Where to write the report (`-` = stdout).
    #[arg(long, default_value = "docs/error-report.md")]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CalibrationArgs {
    /// Logs or folders (default: data/runs).
    pub logs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Calibration(a) => calibration(a),
        What::Memory(a) => memory(a),
    }
}

fn calibration(a: CalibrationArgs) -> anyhow::Result<()> {
    let logs = if a.logs.is_empty() {
        vec![PathBuf::from("data/runs")]
    } else {
        a.logs
    };
    let base = Calibration::shipped();
    let out = run::calibrate(&logs, &base, &run::Options::default(), |_| {});
    print!("{}", run::report(&out, &base));
    Ok(())
}

fn memory(a: MemoryArgs) -> anyhow::Result<()> {
    let logs = if a.logs.is_empty() {
        vec![PathBuf::from("data/runs")]
    } else {
        a.logs
    };
    let recs = crate::calibrate::report::records(
        &logs,
        &Calibration::load(),
        std::path::Path::new("hardware"),
    );
    let text = crate::calibrate::report::render(&recs, "placer report memory");
    if a.out.as_os_str() == "-" {
        print!("{text}");
    } else {
        crate::fsio::replace(&a.out, text.as_bytes())?;
        eprintln!("wrote {} ({} runs)", a.out.display(), recs.len());
    }
    Ok(())
}
