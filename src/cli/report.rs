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
}

#[derive(Debug, clap::Args)]
pub struct CalibrationArgs {
    /// Logs or folders (default: data/runs).
    pub logs: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Calibration(a) => calibration(a),
    }
}

fn calibration(a: CalibrationArgs) -> anyhow::Result<()> {
    let logs = if a.logs.is_empty() { vec![PathBuf::from("data/runs")] } else { a.logs };
    let base = Calibration::shipped();
    let out = run::calibrate(&logs, &base, &run::Options::default(), |_| {});
    print!("{}", run::report(&out, &base));
    Ok(())
}
