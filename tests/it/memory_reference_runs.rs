//! The memory model against real llama.cpp logs: tests/fixtures/reference-runs (qwen3moe on the
//! emulated 24,000 + 12,800 MiB host) and every run in data/runs/ that has a manifest.
//! Model and KV bytes per device must EQUAL the logged values (printed to 0.01 MiB); compute
//! and total within max(128 MiB, 1.5 %).

use placer::calibrate::records::{load_runs, record, Record};
use placer::calibrate::Calibration;
use placer::host::Host;
use placer::memory::Verdict;
use std::path::{Path, PathBuf};

use crate::known_gaps;
use known_gaps::known_gap;

/// The reference runs (tests/fixtures/reference-runs: logs, ballast and dry run as recorded).
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2"
);

fn records(paths: &[PathBuf], host: Option<&Host>) -> Vec<Record> {
    let cal = Calibration::shipped();
    let hw = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware");
    let (runs, _skipped) = load_runs(paths, |_| {});
    runs.into_iter()
        .map(|r| {
            let mut rec = record(r, &cal, None, &hw, host);
            placer::calibrate::report::repredict(&mut rec, &cal);
            rec
        })
        .collect()
}

fn tolerance(measured: f64) -> f64 {
    (128.0f64).max(0.015 * measured)
}

/// Compare one record; returns the list of failures (empty = pass).
fn check(rec: &Record) -> Vec<String> {
    let mut bad = Vec::new();
    let id = format!("{}/{}", rec.input.scenario, rec.input.run_id);
    let Some(pred) = &rec.predicted else {
        // Only a --fit placement that the log does not show may go unpredicted.
        if !rec.note.contains("--fit chose") {
            bad.push(format!("{id}: no prediction: {}", rec.note));
        }
        return bad;
    };
    if let Some(pr) = &rec.prediction {
        let logged = &rec.input.log.buffers;
        if let Some(&mapped) = logged.model.get("CPU_Mapped") {
            let p = placer::units::mib(pr.host.cpu_mapped);
            if (p - mapped).abs() >= 0.006 {
                bad.push(format!(
                    "{id} CPU_Mapped: predicted {p:.2} MiB, logged {mapped:.2}"
                ));
            }
        }
        for host_buft in ["CUDA_Host", "CPU"] {
            if let Some(&c) = logged.compute.get(host_buft) {
                let p = placer::units::mib(pr.host.compute);
                if (p - c).abs() > tolerance(c) {
                    bad.push(format!(
                        "{id} {host_buft} compute: predicted {p:.2} MiB, logged {c:.2}"
                    ));
                }
            }
        }
    }
    // The verdict: a logged OOM at start-up must be predicted on that device; a run that
    // finished must be predicted to fit.
    if known_gaps::KNOWN_OOM_MISSES.contains(&rec.input.run_id.as_str()) {
        return bad;
    }
    if let Some(pr) = &rec.prediction {
        let log = &rec.input.log;
        match (log.oom.first(), &pr.verdict) {
            // Under `emul:` the virtual devices share one pool: the device that fails first is
            // the one whose allocation overflows the pool, which need not be the first device
            // over its own budget — a logged device predicted over its budget too is a match.
            (Some(o), Verdict::Oom { device, .. })
                if o.device
                    .as_deref()
                    .is_some_and(|d| d != device.buft_name() && !predicted_over_cap(rec, d)) =>
            {
                bad.push(format!(
                    "{id}: logged OOM on {:?}, predicted on {device}",
                    o.device
                ));
            }
            (Some(o), Verdict::Fits) if o.stage != "runtime" => {
                bad.push(format!(
                    "{id}: logged OOM at {} ({}), predicted fits",
                    o.stage, o.line
                ));
            }
            (
                None,
                Verdict::Oom {
                    device, short_by, ..
                },
            ) if !log.truncated
                && log.gen_tokens.is_some()
                && placer::units::mib(*short_by) > tolerance(0.0)
                && !emulated_overflow(rec, &device.buft_name()) =>
            {
                bad.push(format!(
                    "{id}: the run finished, predicted {:?}",
                    pr.verdict
                ));
            }
            _ => {}
        }
    }
    for (i, m) in rec.measured.iter().enumerate() {
        let Some(p) = pred.get(i) else { continue };
        let eq = |a: f64, b: f64| (a - b).abs() < 0.006;
        if !eq(p.model, m.model) {
            bad.push(format!(
                "{id} {}: model predicted {:.2} MiB, logged {:.2}",
                m.name, p.model, m.model
            ));
        }
        if !eq(p.kv, m.kv) {
            bad.push(format!(
                "{id} {}: KV predicted {:.2} MiB, logged {:.2}",
                m.name, p.kv, m.kv
            ));
        }
        // A compute reserve that failed logs no buffer line, but its OOM line says the size.
        let oom_compute = rec
            .input
            .log
            .oom
            .iter()
            .find(|o| o.stage == "compute" && o.device.as_deref() == Some(m.name.as_str()));
        let compute = match oom_compute.and_then(|o| o.bytes) {
            Some(b) if m.compute == 0.0 => placer::units::mib(b),
            _ => m.compute,
        };
        // A reserve that failed on another device logs no compute buffer for this one.
        if compute == 0.0 && rec.input.log.oom.iter().any(|o| o.stage == "compute") {
            continue;
        }
        let gap = known_gap(&rec.input.scenario, &m.name);
        let allowed = match gap {
            Some(g) => g * compute,
            None => tolerance(compute),
        };
        if (p.compute - compute).abs() > allowed {
            bad.push(format!(
                "{id} {}: compute predicted {:.2} MiB, logged {:.2}",
                m.name, p.compute, compute
            ));
        }
        if let Some(t) = m.total {
            // a known compute gap carries into the device's total
            let allowed = tolerance(t) + gap.map_or(0.0, |g| g * compute);
            if (p.total - t).abs() > allowed {
                bad.push(format!(
                    "{id} {}: total predicted {:.2} MiB, measured {:.2}",
                    m.name, p.total, t
                ));
            }
        }
    }
    bad
}

/// The prediction puts device `name` (llama.cpp's buffer name) over its usable budget.
fn predicted_over_cap(rec: &Record, name: &str) -> bool {
    let Some(pr) = &rec.prediction else {
        return false;
    };
    let Some(i) = rec.measured.iter().position(|m| m.name == name) else {
        return false;
    };
    pr.gpus.get(i).is_some_and(|g| g.total() > g.cap)
}

/// Virtual devices of one physical GPU (`emul:`, GGML_CUDA_DEVICES) do not enforce their
/// emulated budget: a placement that overflows one still runs. A predicted OOM is then
/// confirmed by the log when llama.cpp's own buffers on that device (model + KV + compute,
/// before the CUDA context) already exceed the device's emulated budget less the overhead the
/// memory model adds — the real host would have failed there.
fn emulated_overflow(rec: &Record, device: &str) -> bool {
    let emul = rec
        .input
        .manifest
        .as_ref()
        .is_some_and(|m| m.emulation == "emul");
    let (Some(host), Some(pr)) = (&rec.host, &rec.prediction) else {
        return false;
    };
    let Some(i) = rec.measured.iter().position(|m| m.name == device) else {
        return false;
    };
    let (Some(gpu), Some(dm), m) = (host.gpus.get(i), pr.gpus.get(i), &rec.measured[i]) else {
        return false;
    };
    let overhead = placer::units::mib(dm.overhead);
    emul && m.model + m.kv + m.compute + overhead > gpu.usable_mib as f64
}

fn report(recs: &[Record]) -> Vec<String> {
    let mut all = Vec::new();
    for r in recs {
        eprintln!("== {}/{}", r.input.scenario, r.input.run_id);
        if let Some(p) = &r.predicted {
            for (m, p) in r.measured.iter().zip(p) {
                eprintln!(
                    "  {}: model {:.2}/{:.2} kv {:.2}/{:.2} compute {:.2}/{:.2} total {:.2}/{:?}",
                    m.name, p.model, m.model, p.kv, m.kv, p.compute, m.compute, p.total, m.total
                );
            }
        }
        all.extend(check(r));
    }
    all
}

#[test]
fn reference_runs_match_the_logs() {
    let host = Host::by_name_or_path("testbed-h200x2-emulated").unwrap();
    let mut recs: Vec<Record> = records(&[PathBuf::from(REFERENCE)], Some(&host))
        .into_iter()
        .filter(|r| !r.measured.is_empty())
        .collect();
    // The reference runs have no manifest: the free memory before start is in ballast.txt
    // ("gpu0: … free now 23999 MiB"), which gives the measured total per device.
    let ballast = std::fs::read_to_string(Path::new(REFERENCE).join("ballast.txt")).unwrap();
    let free_before: Vec<f64> = ballast
        .lines()
        .filter_map(|l| {
            l.split("free now ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    for r in &mut recs {
        for (i, m) in r.measured.iter_mut().enumerate() {
            let row = r.input.log.breakdown.iter().find(|b| b.name == m.name);
            if let (Some(row), Some(before)) = (row, free_before.get(i)) {
                m.total = row.free.map(|f| before - f);
            }
        }
    }
    assert!(
        recs.len() >= 2,
        "expected t2_fit and t3_cmoe, got {}",
        recs.len()
    );
    let bad = report(&recs);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_data_run_with_a_manifest_matches_its_log() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    let recs: Vec<Record> = records(&[dir], None)
        .into_iter()
        .filter(|r| {
            r.input.manifest.is_some()
                && !r.measured.is_empty()
                && !r.input.log.buffers.model.is_empty()
        })
        .collect();
    let bad = report(&recs);
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
