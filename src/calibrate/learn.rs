//! Learning from few runs: after every run, move this host's constants toward what was measured,
//! by as much as the evidence warrants (docs/calibration.md "Learning from few runs").
//!
//! * **Speed**: per kind of host (its first GPU's model, like `GpuCalibration::host_speed`), one
//!   multiplicative factor on each of the speed model's term groups (`speed::decode_terms`:
//!   GPU, CPU, hand-off; `speed::prefill_terms`: GPU, CPU, PCIe). A maximum-a-posteriori fit in
//!   log space: `log(measured s/token) = log Σ_k e^{θ_k}·T_k + ε`, ε ~ N(0, σ²) per run, prior
//!   θ_k ~ N(0, τ²) (factor 1 = the incoming constants). With one run the prediction moves
//!   toward the measurement by τ²·w/(σ² + τ²·w) of the log gap (w = the terms' shares), never
//!   past it; with many runs the prior's weight vanishes and θ is the least-squares fit. Used
//!   where the full fit (fit.rs `fit_decode` / `fit_prefill`) refuses for lack of runs: once it
//!   fits, its constants are the data's and the factors are dropped.
//! * **Overhead** and **margins**: below the full rules' minimum points, the incoming value
//!   shrunk toward the data as a normal mean with a normal prior: `prior + n/(n + k)·(data −
//!   prior)`, `k = σ_within² / τ_between²`.
//!
//! σ, τ and k are measured on data/runs (computed by tests/it/calibrate_learn.rs
//! `prior_strengths_are_the_ones_data_runs_gives`, which fails when they drift).

use super::fit::{percentile, FitReport};
use super::records::{Record, SpeedFeatures};
use super::{Calibration, HostFactors};
use crate::speed;
use std::collections::BTreeMap;

/// τ: spread (RMS of ln(measured / predicted)) of decode on data/runs when a host runs on priors
/// only — the H100 runs predicted with the `*` GPU entry and the `[speed]` priors, which were
/// transferred from the H200 fit (the H200 runs would judge them in-sample): 0.292 with the
/// gpt-oss-120b runs of 2026-12-07 c5 (0.246 before them). How far a new host's factor is from 1.
pub const PRIOR_LOG_SD: f64 = 0.29;
/// σ: RMS of ln(measured / predicted) of decode on data/runs under the shipped calibration (each
/// host's own fit): 0.193 with the runs of 2026-12-07 c5 (0.167 after c4, 0.137 before: the
/// Qwen3-Coder-Next, RPC and gpt-oss-120b runs with CPU experts on the DDR4-like side scatter
/// more), what a run scatters around its host's right constants.
pub const RUN_LOG_SD: f64 = 0.193;
/// k for the CUDA overhead, (σ within / τ between)² of the measured overhead grouped by
/// scenario over data/runs: σ 8.6 MiB, τ 20.3 MiB (88 device observations): one measured
/// overhead is worth five priors.
pub const OVERHEAD_PRIOR_WEIGHT: f64 = 0.18;
/// k for the margins, (σ within / τ between)² of the device-total errors (measured − predicted)
/// grouped by scenario over data/runs: σ 46.6 MiB, τ 64.0 MiB.
pub const MARGIN_PRIOR_WEIGHT: f64 = 0.53;

/// `n/(n + k)`: the weight of n observations against a prior worth k of them.
pub fn data_weight(n: usize, k: f64) -> f64 {
    n as f64 / (n as f64 + k)
}

/// Huber's tuning constant (Huber, "Robust Estimation of a Location Parameter", 1964): residuals
/// beyond `HUBER_K · σ` count linearly, not squared (95 % efficiency when the scatter is normal).
/// One run of a trial on a saturated machine (a test run on 2 busy cores: `--fit` decoded
/// 2.8 t/s beside 150–200 t/s, a ln gap of ≈ 4) would otherwise pull every factor of the few-run
/// fit by itself.
pub const HUBER_K: f64 = 1.345;

/// The MAP fit of term factors: `pts` are (terms T_k at factor 1, measured seconds). Returns
/// θ = ln factors. Gauss–Newton (iteratively reweighted for Huber's loss, [`HUBER_K`]) with step
/// halving on J(θ) = Σ ρ(r/σ) + Σ θ²/τ², ρ(u) = u² for |u| ≤ k, 2k|u| − k² beyond.
pub fn map_log_factors(pts: &[([f64; 3], f64)], sigma: f64, tau: f64) -> [f64; 3] {
    let pts: Vec<&([f64; 3], f64)> = pts
        .iter()
        .filter(|(t, y)| *y > 0.0 && y.is_finite() && t.iter().sum::<f64>() > 0.0)
        .collect();
    let (is2, it2) = (1.0 / (sigma * sigma), 1.0 / (tau * tau));
    let pred = |th: &[f64; 3], t: &[f64; 3]| -> f64 { (0..3).map(|k| th[k].exp() * t[k]).sum() };
    let rho = |r: f64| -> f64 {
        let u = (r / sigma).abs();
        if u <= HUBER_K {
            u * u
        } else {
            2.0 * HUBER_K * u - HUBER_K * HUBER_K
        }
    };
    // The IRLS weight of a residual: 1 inside the band, k·σ/|r| beyond.
    let weight = |r: f64| -> f64 {
        let u = (r / sigma).abs();
        if u <= HUBER_K {
            1.0
        } else {
            HUBER_K / u
        }
    };
    let cost = |th: &[f64; 3]| -> f64 {
        pts.iter()
            .map(|(t, y)| rho(y.ln() - pred(th, t).ln()))
            .sum::<f64>()
            + th.iter().map(|x| x * x * it2).sum::<f64>()
    };
    let mut th = [0.0; 3];
    for _ in 0..100 {
        let mut a = [[0.0; 3]; 3];
        let mut g = [0.0; 3];
        for (k, row) in a.iter_mut().enumerate() {
            row[k] = it2;
            g[k] = -th[k] * it2;
        }
        for (t, y) in &pts {
            let p = pred(&th, t);
            let r = y.ln() - p.ln();
            let v = weight(r) * is2;
            let w: Vec<f64> = (0..3).map(|k| th[k].exp() * t[k] / p).collect();
            for i in 0..3 {
                g[i] += w[i] * r * v;
                for j in 0..3 {
                    a[i][j] += w[i] * w[j] * v;
                }
            }
        }
        let Some(step) = solve3(a, g) else { break };
        let c0 = cost(&th);
        let mut h = 1.0;
        let mut moved = false;
        for _ in 0..30 {
            let cand = [
                th[0] + h * step[0],
                th[1] + h * step[1],
                th[2] + h * step[2],
            ];
            if cost(&cand) <= c0 {
                th = cand;
                moved = true;
                break;
            }
            h *= 0.5;
        }
        if !moved || step.iter().map(|s| (h * s).abs()).fold(0.0, f64::max) < 1e-12 {
            break;
        }
    }
    th
}

fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for c in 0..3 {
        let piv = (c..3).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-300 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for r in 0..3 {
            if r != c {
                let f = a[r][c] / a[c][c];
                let pivot = a[c];
                for (x, p) in a[r][c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * p;
                }
                b[r] -= f * b[c];
            }
        }
    }
    Some([b[0] / a[0][0], b[1] / a[1][1], b[2] / a[2][2]])
}

/// The incoming calibration without any learned factors: what the terms are measured against.
fn without_factors(cal: &Calibration) -> Calibration {
    let mut c = cal.clone();
    c.host_factors.clear();
    c
}

/// Learn the speed factors of every kind of host whose full decode or prefill fit refused
/// (`refused` = host kinds, from fit.rs), replacing earlier factors (the fit always starts from
/// the incoming constants at factor 1, so reading the same runs again gives the same factors).
pub fn learn_speed_factors(
    records: &[Record],
    cal: &mut Calibration,
    decode_refused: &[String],
    prefill_refused: &[String],
    rep: &mut FitReport,
) {
    let base = without_factors(cal);
    let mut by_host: BTreeMap<String, (Vec<&SpeedFeatures>, Vec<&Record>)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.speed_usable()) {
        if let Some(f) = r.speed.as_ref() {
            let e = by_host.entry(f.host_gpu.clone()).or_default();
            e.0.push(f);
            e.1.push(r);
        }
    }
    cal.host_factors.clear();
    for (host, (feats, recs)) in &by_host {
        let want_dec = decode_refused.contains(host);
        let want_pre = prefill_refused.contains(host);
        if !want_dec && !want_pre {
            continue;
        }
        let dec: Vec<([f64; 3], f64)> = feats
            .iter()
            .zip(recs)
            .filter_map(|(f, r)| {
                let t = speed::decode_terms(&speed::rates(&base, &f.host), &f.decode);
                Some((t, r.decode_s()?))
            })
            .collect();
        let pre: Vec<([f64; 3], f64)> = feats
            .iter()
            .zip(recs)
            .filter_map(|(f, r)| {
                let t = speed::prefill_terms(&speed::rates(&base, &f.host), &f.prefill);
                Some((t, r.prefill_s()?))
            })
            .collect();
        let dec = if want_dec { dec } else { Vec::new() };
        let pre = if want_pre { pre } else { Vec::new() };
        if dec.is_empty() && pre.is_empty() {
            continue;
        }
        let d = map_log_factors(&dec, RUN_LOG_SD, PRIOR_LOG_SD).map(f64::exp);
        let p = map_log_factors(&pre, RUN_LOG_SD, PRIOR_LOG_SD).map(f64::exp);
        let f = HostFactors {
            host_gpu: host.clone(),
            decode_gpu: d[0],
            decode_cpu: d[1],
            decode_handoff: d[2],
            prefill_gpu: p[0],
            prefill_cpu: p[1],
            prefill_pcie: p[2],
            n_decode_runs: dec.len(),
            n_prefill_runs: pre.len(),
        };
        let src = format!(
            "prior-plus-data (MAP in log space, prior sd {PRIOR_LOG_SD}, run sd {RUN_LOG_SD}, \
             docs/calibration.md): {} decode runs, {} prefill runs on {host} hosts; 1 = the \
             constants as fitted or transferred",
            dec.len(),
            pre.len()
        );
        rep.say(format!(
            "speed factors on {host} hosts ({} decode / {} prefill runs, shrunk toward 1): decode GPU ×{:.3}, CPU ×{:.3}, hand-off ×{:.3}; prefill GPU ×{:.3}, CPU ×{:.3}, PCIe ×{:.3}",
            dec.len(),
            pre.len(),
            f.decode_gpu,
            f.decode_cpu,
            f.decode_handoff,
            f.prefill_gpu,
            f.prefill_cpu,
            f.prefill_pcie
        ));
        cal.provenance.insert(format!("host_factors.{host}"), src);
        cal.host_factors.push(f);
    }
    // Factors of hosts now fitted in full (or without runs) are gone with their provenance.
    let kept: Vec<String> = cal
        .host_factors
        .iter()
        .map(|f| format!("host_factors.{}", f.host_gpu))
        .collect();
    cal.provenance
        .retain(|k, _| !k.starts_with("host_factors.") || kept.contains(k));
}

/// The incoming `prior` moved toward `data` by n/(n + k).
pub fn shrink(prior: f64, data: f64, n: usize, k: f64) -> f64 {
    prior + data_weight(n, k) * (data - prior)
}

/// What one run's numbers were predicted before and after an update, next to the measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The run.
    pub run: String,
    /// What: `decode t/s`, `prefill t/s`, `CUDA0 total MiB`.
    pub what: String,
    /// Measured.
    pub measured: f64,
    /// Predicted under the incoming calibration.
    pub before: f64,
    /// Predicted under the updated one.
    pub after: f64,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |p: f64| 100.0 * (p - self.measured) / self.measured;
        write!(
            f,
            "{} {}: measured {:.1}, predicted {:.1} before ({:+.1}%), {:.1} after ({:+.1}%)",
            self.run,
            self.what,
            self.measured,
            self.before,
            pct(self.before),
            self.after,
            pct(self.after)
        )
    }
}

/// Predicted vs measured for every run, under `before` and `after`: decode and prefill t/s, and
/// each GPU's total where one was measured.
pub fn changes(records: &[Record], before: &Calibration, after: &Calibration) -> Vec<Change> {
    let mut out = Vec::new();
    for r in records {
        let id = &r.input.run_id;
        if let (Some(f), true) = (r.speed.as_ref(), r.speed_usable()) {
            let speeds = [
                (
                    "decode t/s",
                    r.input.log.gen_tps,
                    super::fit::decode_tps as fn(&Calibration, &SpeedFeatures) -> Option<f64>,
                ),
                (
                    "prefill t/s",
                    r.input.log.prompt_tps,
                    super::fit::prefill_tps,
                ),
            ];
            for (what, meas, tps) in speeds {
                if let (Some(m), Some(b), Some(a)) = (meas, tps(before, f), tps(after, f)) {
                    out.push(Change {
                        run: id.clone(),
                        what: what.into(),
                        measured: m,
                        before: b,
                        after: a,
                    });
                }
            }
        }
        let (pb, pa) = (
            super::fit::repredict(r, before),
            super::fit::repredict(r, after),
        );
        for (i, d) in r.measured.iter().enumerate() {
            let total = |p: &Option<crate::memory::Prediction>| {
                p.as_ref()
                    .and_then(|p| p.gpus.get(i))
                    .map(|g| super::records::device_predicted(g).total)
            };
            if let (Some(m), Some(b), Some(a)) = (d.total, total(&pb), total(&pa)) {
                out.push(Change {
                    run: id.clone(),
                    what: format!("{} total MiB", d.name),
                    measured: m,
                    before: b,
                    after: a,
                });
            }
        }
    }
    out
}

/// The result of learning after a run.
#[derive(Debug, Clone)]
pub struct Update {
    /// The calibration to write.
    pub calibration: Calibration,
    /// What each fit did (fit.rs lines, then the speed factors).
    pub fit: FitReport,
    /// Predicted vs measured before and after, per run.
    pub changes: Vec<Change>,
}

impl Update {
    /// The report lines: the fit, then predicted vs measured before → after.
    pub fn lines(&self) -> Vec<String> {
        let mut v = self.fit.lines.clone();
        if !self.changes.is_empty() {
            v.push("predicted vs measured, before → after this update:".into());
            v.extend(self.changes.iter().map(|c| format!("  {c}")));
        }
        v
    }
}

/// Learn from every loaded run (`records`, predicted under `base`): the full fits where there
/// are enough runs, the prior-plus-data steps below that (fit.rs `fit`), and predicted vs
/// measured before and after. `calibrate` and `trial` call this after each run.
pub fn update(records: &[Record], base: &Calibration) -> Update {
    let (calibration, fit) = super::fit::fit(records, base);
    let changes = changes(records, base, &calibration);
    Update {
        calibration,
        fit,
        changes,
    }
}

/// Median |relative error| of decode predictions over `records` (for reports and tests).
pub fn decode_median_error(records: &[Record], cal: &Calibration) -> Option<f64> {
    let e: Vec<f64> = records
        .iter()
        .filter(|r| r.speed_usable())
        .filter_map(|r| {
            let m = r.input.log.gen_tps?;
            let p = super::fit::decode_tps(cal, r.speed.as_ref()?)?;
            Some((p - m).abs() / m)
        })
        .collect();
    (!e.is_empty()).then(|| percentile(&e, 0.5))
}
