//! The `placer calibrate` pipeline as a library function: read logs → records (with
//! predictions under the incoming calibration) → fit → report before / after.

use super::fit::{self, decode_tps, memory_errors, percentile, FitReport, MEMORY_TOLERANCE_MIB};
use super::records::{self, Record};
use super::Calibration;
use crate::host::Host;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct Options {
    pub models_dir: Option<PathBuf>,
    pub hardware_dir: PathBuf,
    /// Host of logs that have no testbed manifest (else derived from the log).
    pub host: Option<Host>,
    /// Also learn from trial runs' workload turns (records::workload_record): the speeds at the
    /// workload's depth, beside each run's fresh long prompt. `placer trial` sets it.
    pub workload_turns: bool,
}

impl Default for Options {
    fn default() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Options {
            models_dir: None,
            hardware_dir: root.join("hardware"),
            host: None,
            workload_turns: false,
        }
    }
}

pub struct Outcome {
    pub records: Vec<Record>,
    pub skipped: Vec<String>,
    pub calibration: Calibration,
    pub fit: FitReport,
}

/// Records for every log under `paths`, predicted with `cal`. `on_done` ticks per parsed file.
pub fn build_records<F>(
    paths: &[PathBuf],
    cal: &Calibration,
    opts: &Options,
    on_done: F,
) -> (Vec<Record>, Vec<String>)
where
    F: Fn(&Path) + Sync,
{
    let (runs, skipped) = records::load_runs(paths, on_done);
    let mut recs: Vec<Record> = runs
        .into_iter()
        .map(|r| {
            records::record(
                r,
                cal,
                opts.models_dir.as_deref(),
                &opts.hardware_dir,
                opts.host.as_ref(),
            )
        })
        .collect();
    if opts.workload_turns {
        let turns: Vec<Record> = recs.iter().filter_map(records::workload_record).collect();
        recs.extend(turns);
    }
    (recs, skipped)
}

pub fn calibrate<F>(paths: &[PathBuf], base: &Calibration, opts: &Options, on_done: F) -> Outcome
where
    F: Fn(&Path) + Sync,
{
    let (records, skipped) = build_records(paths, base, opts, on_done);
    let (calibration, fit) = fit::fit(&records, base);
    Outcome {
        records,
        skipped,
        calibration,
        fit,
    }
}

/// Error summary of a calibration on a set of records.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// Per device: (run, device, predicted MiB, measured MiB).
    pub memory: Vec<(String, String, f64, f64)>,
    /// Per run: (run, predicted t/s, measured t/s).
    pub decode: Vec<(String, f64, f64)>,
    /// Per run: (run, predicted prefill t/s, measured prefill t/s).
    #[allow(clippy::type_complexity)]
    pub prefill: Vec<(String, f64, f64)>,
    /// Per device: (run, device, predicted, measured) model + KV + compute buffers, MiB.
    pub buffers: Vec<(String, String, f64, f64)>,
}

impl Errors {
    pub fn of(records: &[Record], cal: &Calibration) -> Errors {
        let memory = memory_errors(records, cal);
        let decode = records
            .iter()
            .filter(|r| r.speed_usable())
            .filter_map(|r| {
                let meas = r.input.log.gen_tps?;
                let pred = decode_tps(cal, r.speed.as_ref()?)?;
                Some((r.input.run_id.clone(), pred, meas))
            })
            .collect();
        let prefill = records
            .iter()
            .filter(|r| r.speed_usable())
            .filter_map(|r| {
                let meas = r.input.log.prompt_tps?;
                let pred = fit::prefill_tps(cal, r.speed.as_ref()?)?;
                Some((r.input.run_id.clone(), pred, meas))
            })
            .collect();
        let buffers = fit::buffer_errors(records, cal);
        Errors {
            memory,
            decode,
            prefill,
            buffers,
        }
    }
    /// Devices whose total is within max(128 MiB, 1.5 %) of the measurement.
    pub fn memory_within_tolerance(&self) -> usize {
        self.memory
            .iter()
            .filter(|(_, _, p, m)| (p - m).abs() <= MEMORY_TOLERANCE_MIB.max(0.015 * m))
            .count()
    }
    pub fn memory_abs(&self) -> Vec<f64> {
        self.memory
            .iter()
            .map(|(_, _, p, m)| (p - m).abs())
            .collect()
    }
    pub fn decode_rel(&self) -> Vec<f64> {
        self.decode
            .iter()
            .map(|(_, p, m)| (p - m).abs() / m)
            .collect()
    }
    pub fn prefill_rel(&self) -> Vec<f64> {
        self.prefill
            .iter()
            .map(|(_, p, m)| (p - m).abs() / m)
            .collect()
    }
    pub fn summary(&self) -> String {
        let a = self.memory_abs();
        let d = self.decode_rel();
        let mut s = String::new();
        if a.is_empty() {
            s.push_str("memory: no device with a measured total (needs a free-memory baseline in the manifest)\n");
        } else {
            let _ = writeln!(
                s,
                "memory total per device: |error| p50 {:.0} MiB, p90 {:.0} MiB, max {:.0} MiB; {}/{} within max(128 MiB, 1.5%)",
                percentile(&a, 0.5),
                percentile(&a, 0.9),
                percentile(&a, 1.0),
                self.memory_within_tolerance(),
                a.len()
            );
        }
        let b: Vec<f64> = self
            .buffers
            .iter()
            .map(|(_, _, p, m)| (p - m).abs())
            .collect();
        if !b.is_empty() {
            let within = self
                .buffers
                .iter()
                .filter(|(_, _, p, m)| (p - m).abs() <= MEMORY_TOLERANCE_MIB.max(0.015 * m))
                .count();
            let _ = writeln!(
                s,
                "model+KV+compute per device: |error| p50 {:.0} MiB, p90 {:.0} MiB, max {:.0} MiB; {within}/{} within max(128 MiB, 1.5%)",
                percentile(&b, 0.5),
                percentile(&b, 0.9),
                percentile(&b, 1.0),
                b.len()
            );
        }
        if d.is_empty() {
            s.push_str("decode: no run with timings and speed features\n");
        } else {
            let _ = writeln!(
                s,
                "decode t/s: |error| p50 {:.1}%, p90 {:.1}%, max {:.1}% over {} runs",
                100.0 * percentile(&d, 0.5),
                100.0 * percentile(&d, 0.9),
                100.0 * percentile(&d, 1.0),
                d.len()
            );
        }
        let pf = self.prefill_rel();
        if !pf.is_empty() {
            let _ = writeln!(
                s,
                "prefill t/s: |error| p50 {:.1}%, p90 {:.1}%, max {:.1}% over {} runs",
                100.0 * percentile(&pf, 0.5),
                100.0 * percentile(&pf, 0.9),
                100.0 * percentile(&pf, 1.0),
                pf.len()
            );
        }
        s
    }
}

/// Human report: each run's predicted vs measured numbers, then error percentiles before and
/// after the fit.
pub fn report(out: &Outcome, base: &Calibration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} runs read, {} files skipped",
        out.records.len(),
        out.skipped.len()
    );
    for k in &out.skipped {
        let _ = writeln!(s, "  skipped: {k}");
    }
    for r in &out.records {
        let log = &r.input.log;
        let _ = writeln!(
            s,
            "\n{} / {}{}{}{}",
            r.input.scenario,
            r.input.run_id,
            if log.truncated { " [truncated]" } else { "" },
            if r.contended() {
                " [GPU shared with a copy stream: speeds not fitted]"
            } else {
                ""
            },
            if log.oom.is_empty() {
                String::new()
            } else {
                format!(" [OOM {:?} at {}]", log.oom[0].device, log.oom[0].stage)
            }
        );
        if !r.note.is_empty() {
            let _ = writeln!(s, "  no prediction: {}", r.note);
        }
        let before = fit::repredict(r, base);
        let after = fit::repredict(r, &out.calibration);
        let _ = writeln!(
            s,
            "  {:<6} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
            "device", "model", "kv", "compute", "total", "pred.bef", "pred.aft", "err.aft"
        );
        for (i, d) in r.measured.iter().enumerate() {
            let pb = before
                .as_ref()
                .and_then(|p| p.gpus.get(i))
                .map(records::device_predicted);
            let pa = after
                .as_ref()
                .and_then(|p| p.gpus.get(i))
                .map(records::device_predicted);
            let f = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into());
            let err = d
                .total
                .zip(pa.as_ref().map(|p| p.total))
                .map(|(m, p)| p - m);
            let _ = writeln!(
                s,
                "  {:<6} {:>9.0} {:>9.0} {:>9.0} {:>9} | {:>9} {:>9} {:>9}",
                d.name,
                d.model,
                d.kv,
                d.compute,
                f(d.total),
                f(pb.map(|p| p.total)),
                f(pa.map(|p| p.total)),
                f(err)
            );
        }
        if let Some(f) = r.speed.as_ref() {
            let gb = |v: f64| v / 1e9;
            let d = &f.decode;
            let _ = writeln!(
                s,
                "  speed load per token: decode reads GPU {:.2} GB, CPU {:.2} GB; attention GPU {:.1} GFLOP, CPU {:.1} GFLOP; tg nodes {:.0}, splits {:.0}; prefill PCIe {:.1} MB, attention GPU {:.1} GFLOP, CPU {:.1} GFLOP",
                gb(d.gpu_bytes.iter().sum()),
                gb(d.cpu_bytes),
                gb(d.gpu_attn_flops.iter().sum()),
                gb(d.cpu_attn_flops),
                d.nodes,
                d.splits,
                f.prefill.pcie_bytes_per_token / 1e6,
                gb(f.prefill.gpu_attn_flops.iter().sum()),
                gb(f.prefill.cpu_attn_flops)
            );
        }
        if let Some(meas) = log.gen_tps {
            let pb = r.speed.as_ref().and_then(|f| decode_tps(base, f));
            let pa = r
                .speed
                .as_ref()
                .and_then(|f| decode_tps(&out.calibration, f));
            let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into());
            let _ = writeln!(
                s,
                "  decode {meas:.1} t/s measured; predicted {} before, {} after",
                f(pb),
                f(pa)
            );
        }
        if let Some(meas) = log.prompt_tps {
            let pb = r.speed.as_ref().and_then(|f| fit::prefill_tps(base, f));
            let pa = r
                .speed
                .as_ref()
                .and_then(|f| fit::prefill_tps(&out.calibration, f));
            let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into());
            let _ = writeln!(
                s,
                "  prefill {meas:.1} t/s measured; predicted {} before, {} after",
                f(pb),
                f(pa)
            );
        }
    }
    let _ = writeln!(s, "\nfit:");
    for l in &out.fit.lines {
        let _ = writeln!(s, "  {l}");
    }
    let _ = writeln!(
        s,
        "\nbefore fitting:\n{}",
        indent(&Errors::of(&out.records, base).summary())
    );
    let _ = writeln!(
        s,
        "after fitting (in-sample):\n{}",
        indent(&Errors::of(&out.records, &out.calibration).summary())
    );
    s
}

fn indent(t: &str) -> String {
    t.lines().map(|l| format!("  {l}\n")).collect()
}

/// data/runs.csv rows for the records, predictions under `cal`.
pub fn csv_rows(records: &[Record], cal: &Calibration) -> Vec<Vec<(String, String)>> {
    records
        .iter()
        .map(|r| {
            let mut r2 = r.clone();
            if let Some(p) = fit::repredict(r, cal) {
                r2.predicted = Some(p.gpus.iter().map(records::device_predicted).collect());
            }
            let tps = r.speed.as_ref().and_then(|f| decode_tps(cal, f));
            let ptps = r.speed.as_ref().and_then(|f| fit::prefill_tps(cal, f));
            records::csv_row(&r2, tps, ptps)
        })
        .collect()
}
