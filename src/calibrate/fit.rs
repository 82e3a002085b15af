//! Fitting what the memory and speed models leave open, from run records (records.rs).
//!
//! * per-GPU overhead ("unaccounted": CUDA context, cuBLAS, pool) = median over runs of
//!   free-before-start − free-at-exit − llama.cpp's own buffers (runs with a known baseline);
//! * compute buffers: `measured − c0 = moe_scale·(c1 − c0) + fixed` by least squares, where
//!   c1 / c0 are the memory model's prediction with the MoE term on / off (memory/compute.rs);
//! * decode: seconds per token = per_token + Σ_gpu-model (1/η_m)·Σ bytes_d/BW_d + (1/η_cpu)·
//!   bytes_cpu/BW_ram + per_split·splits_tg, non-negative least squares (exact NNLS by
//!   enumerating active sets: at most 6 unknowns);
//! * prefill: seconds per prompt token = prefill_per_token + (1/η_pcie)·(CPU weight bytes
//!   streamed per ubatch / PCIe spec / ubatch), NNLS;
//! * margins from the distribution of the per-device memory error after the fit, and an extra
//!   margin on a device that logged an OOM.
//!
//! Every fit refuses (keeps the incoming value, says how many points it needs) below its minimum.

use super::records::{device_predicted, Record, SpeedFeatures};
use super::{Calibration, DeviceMargin, GpuCalibration, HostSpeed};
use crate::memory::{self, Prediction};
use crate::speed;
use std::collections::BTreeMap;

pub const MIN_OVERHEAD_POINTS: usize = 3;
pub const MIN_COMPUTE_POINTS: usize = 4;
pub const MIN_MARGIN_POINTS: usize = 5;
/// Decode and prefill fits need at least this many runs more than unknowns.
pub const MIN_EXTRA_SPEED_POINTS: usize = 2;
/// The accuracy the project asks of memory predictions (max(128 MiB, 1.5 %)); used as the
/// quantum added to learned margins.
pub const MEMORY_TOLERANCE_MIB: f64 = 128.0;
/// llama.cpp's `--fit-target` default (common/common.h), the floor of the moderate margin.
pub const FIT_TARGET_MIB: f64 = crate::llama::FIT_TARGET_MIB as f64;

#[derive(Debug, Clone, Default)]
pub struct FitReport {
    pub lines: Vec<String>,
}

impl FitReport {
    pub(crate) fn say(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }
}

/// Least squares on a small dense system (normal equations, Gaussian elimination with pivoting).
pub fn least_squares(x: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let p = x.first()?.len();
    let mut a = vec![vec![0.0; p + 1]; p];
    for (row, &yi) in x.iter().zip(y) {
        for i in 0..p {
            for j in 0..p {
                a[i][j] += row[i] * row[j];
            }
            a[i][p] += row[i] * yi;
        }
    }
    if reduce(&mut a, p, 1e-300) < p {
        return None;
    }
    Some((0..p).map(|i| a[i][p] / a[i][i]).collect())
}

/// Gauss–Jordan elimination with partial pivoting over the first `cols` columns of `a`, in
/// place; a column whose largest remaining |value| is below `tol` has no pivot. Returns the
/// number of pivots (the rank of those columns); pivot k sits in row k.
fn reduce(a: &mut [Vec<f64>], cols: usize, tol: f64) -> usize {
    let mut rank = 0;
    for c in 0..cols {
        let Some(piv) = (rank..a.len()).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
        else {
            break;
        };
        if a[piv][c].abs() < tol {
            continue;
        }
        a.swap(rank, piv);
        let pivot = a[rank].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != rank {
                let f = row[c] / pivot[c];
                for (x, y) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * y;
                }
            }
        }
        rank += 1;
    }
    rank
}

/// Non-negative least squares, exact for few unknowns: the best unconstrained fit over every
/// subset of columns whose solution is non-negative (the NNLS optimum is one of them).
pub fn nnls(x: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let p = x.first()?.len();
    assert!(p <= 12, "nnls by enumeration is for small systems");
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 0u32..(1 << p) {
        let cols: Vec<usize> = (0..p).filter(|i| mask & (1 << i) != 0).collect();
        let theta_sub = if cols.is_empty() {
            Some(Vec::new())
        } else {
            let xs: Vec<Vec<f64>> = x
                .iter()
                .map(|r| cols.iter().map(|&c| r[c]).collect())
                .collect();
            least_squares(&xs, y)
        };
        let Some(ts) = theta_sub else { continue };
        if ts.iter().any(|t| *t < 0.0 || !t.is_finite()) {
            continue;
        }
        let mut theta = vec![0.0; p];
        for (c, t) in cols.iter().zip(ts) {
            theta[*c] = t;
        }
        let sse: f64 = x
            .iter()
            .zip(y)
            .map(|(r, yi)| (dot(r, &theta) - yi).powi(2))
            .sum();
        if best.as_ref().is_none_or(|(b, _)| sse < *b) {
            best = Some((sse, theta));
        }
    }
    best.map(|(_, t)| t)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Linear-interpolated percentile (q in 0..=1) of `v`; NaN for an empty slice.
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Re-run the memory model for a record under another calibration.
pub fn repredict(r: &Record, cal: &Calibration) -> Option<Prediction> {
    memory::predict(
        r.anatomy.as_ref()?,
        r.launch.as_ref()?,
        r.host.as_ref()?,
        cal,
    )
    .ok()
}

/// A run whose measured memory is complete: started, not OOM, breakdown at exit.
fn complete(r: &Record) -> bool {
    r.input.log.oom.is_empty() && !r.input.log.truncated && r.prediction.is_some()
}

/// Host constants for a run: those fitted on hosts with its first GPU's model, else the
/// global `[speed]` values (priors for hosts without runs).
pub fn host_speed(cal: &Calibration, f: &SpeedFeatures) -> HostSpeed {
    cal.host_speed(&f.host_gpu)
}

/// Predicted decode tokens/s for a run's features under a calibration (src/speed.rs).
pub fn decode_tps(cal: &Calibration, f: &SpeedFeatures) -> Option<f64> {
    let t = speed::decode_s(&speed::rates(cal, &f.host), &f.decode);
    (t > 0.0 && t.is_finite()).then(|| 1.0 / t)
}

/// Predicted prefill tokens/s for a run's features under a calibration (src/speed.rs).
pub fn prefill_tps(cal: &Calibration, f: &SpeedFeatures) -> Option<f64> {
    let t = speed::prefill_s_per_token(&speed::rates(cal, &f.host), &f.prefill);
    (t > 0.0 && t.is_finite()).then(|| 1.0 / t)
}
/// Fit a calibration from records, starting from `base` (values that cannot be fitted stay).
pub fn fit(records: &[Record], base: &Calibration) -> (Calibration, FitReport) {
    let mut cal = base.clone();
    let mut rep = FitReport::default();
    let used = records.iter().filter(|r| r.prediction.is_some()).count();
    rep.say(format!(
        "{} runs, {} with a prediction (model, host and launch resolved)",
        records.len(),
        used
    ));
    fit_overhead(records, &mut cal, &mut rep);
    fit_compute(records, &mut cal, &mut rep);
    // A trial run's workload turns (`<run>#turns`, records::workload_record) are the same load
    // and placement as their run: they count toward the few-run factors below, not toward the
    // number of runs a full fit needs (one trial would otherwise refit 4 constants from 5 loads).
    let runs: Vec<Record> = records
        .iter()
        .filter(|r| !r.input.run_id.ends_with("#turns"))
        .cloned()
        .collect();
    let decode_refused = fit_decode(&runs, &mut cal, &mut rep);
    let prefill_refused = fit_prefill(&runs, &mut cal, &mut rep);
    transfer_priors(&mut cal, &mut rep);
    super::learn::learn_speed_factors(
        records,
        &mut cal,
        &decode_refused,
        &prefill_refused,
        &mut rep,
    );
    fit_margins(records, &mut cal, &mut rep);
    learn_ooms(records, &mut cal, &mut rep);
    cal.n_runs = used;
    cal.llama_build = most_common(records.iter().filter_map(|r| r.input.log.build.clone()))
        .or_else(|| {
            // No `build: N (commit)` line (llama-completion -v does not print one): the manifest's.
            most_common(records.iter().filter_map(|r| {
                let l = &r.input.manifest.as_ref()?.llama_cpp;
                let v = l
                    .get("version")
                    .and_then(|v| v.as_str())
                    .filter(|v| !v.is_empty());
                v.or(l.get("source").and_then(|v| v.as_str()))
                    .map(str::to_string)
            }))
        })
        .unwrap_or(base.llama_build.clone());
    cal.host = most_common(
        records
            .iter()
            .filter_map(|r| r.host.as_ref().map(|h| h.name.clone())),
    )
    .unwrap_or(base.host.clone());
    (cal, rep)
}

fn most_common(it: impl Iterator<Item = String>) -> Option<String> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for s in it {
        *m.entry(s).or_insert(0) += 1;
    }
    m.into_iter().max_by_key(|(_, n)| *n).map(|(s, _)| s)
}

fn gpu_entry<'a>(cal: &'a mut Calibration, model: &str) -> &'a mut GpuCalibration {
    if !cal.gpus.iter().any(|g| g.model == model) {
        let mut g = cal.gpu(model);
        g.model = model.to_string();
        cal.gpus.push(g);
    }
    cal.gpus
        .iter_mut()
        .find(|g| g.model == model)
        .expect("just added")
}

fn fit_overhead(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) {
    let mut by_model: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.input.log.oom.is_empty() && !r.input.log.truncated)
    {
        for (i, d) in r.measured.iter().enumerate() {
            let Some(o) = d.overhead else { continue };
            let model = r
                .host
                .as_ref()
                .and_then(|h| h.gpus.get(i).map(|g| g.model.clone()))
                .or_else(|| r.input.log.gpus.get(&d.name).map(|g| g.description.clone()))
                .unwrap_or_else(|| "*".into());
            let src = sources.entry(model.clone()).or_default();
            if !src.contains(&d.total_from) {
                src.push(d.total_from.clone());
            }
            by_model.entry(model).or_default().push(o);
        }
    }
    if by_model.is_empty() {
        rep.say(format!(
            "overhead: not fitted — no run with a known free-memory baseline (manifest ballast_free_mib under gpu: emulation) or NVML memory (trial runs); need {MIN_OVERHEAD_POINTS} per GPU model"
        ));
    }
    for (model, v) in by_model {
        if v.len() < MIN_OVERHEAD_POINTS {
            // Below the median's minimum: the incoming value moved toward the mean measured,
            // a normal prior worth OVERHEAD_PRIOR_WEIGHT observations (learn.rs).
            let prior = cal.gpu(&model).overhead_mib;
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let k = super::learn::OVERHEAD_PRIOR_WEIGHT;
            let o = super::learn::shrink(prior, mean, v.len(), k).round();
            gpu_entry(cal, &model).overhead_mib = o;
            cal.provenance.insert(
                format!("gpus.{model}.overhead_mib"),
                format!(
                    "prior {prior:.0} MiB shrunk toward the mean of {} measured ({mean:.0} MiB; {}) by n/(n + {k})",
                    v.len(),
                    sources.get(&model).map(|s| s.join(", ")).unwrap_or_default()
                ),
            );
            rep.say(format!(
                "overhead {model}: {o:.0} MiB ({} points, need {MIN_OVERHEAD_POINTS} for the median: prior {prior:.0} moved toward their mean {mean:.0})",
                v.len()
            ));
            continue;
        }
        let med = percentile(&v, 0.5);
        gpu_entry(cal, &model).overhead_mib = med.round();
        cal.provenance.insert(
            format!("gpus.{model}.overhead_mib"),
            format!(
                "median of {} GPU observations (min {:.0}, max {:.0} MiB)",
                v.len(),
                percentile(&v, 0.0),
                percentile(&v, 1.0)
            ),
        );
        rep.say(format!(
            "overhead {model}: {med:.0} MiB (median of {} GPU observations, range {:.0}–{:.0})",
            v.len(),
            percentile(&v, 0.0),
            percentile(&v, 1.0)
        ));
    }
}

fn with_compute(cal: &Calibration, moe_scale: f64, fixed: f64) -> Calibration {
    let mut c = cal.clone();
    c.compute.moe_scale = moe_scale;
    c.compute.fixed_mib = fixed;
    c
}

fn fit_compute(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) {
    let (c_on, c_off) = (with_compute(cal, 1.0, 0.0), with_compute(cal, 0.0, 0.0));
    let mut pts: Vec<(f64, f64)> = Vec::new(); // (moe term MiB, measured − c0 MiB)
    for r in records.iter().filter(|r| complete(r)) {
        let (Some(p1), Some(p0)) = (repredict(r, &c_on), repredict(r, &c_off)) else {
            continue;
        };
        for (i, d) in r.measured.iter().enumerate() {
            if d.compute <= 0.0 || i >= p1.gpus.len() {
                continue;
            }
            let (a, b) = (
                device_predicted(&p1.gpus[i]).compute,
                device_predicted(&p0.gpus[i]).compute,
            );
            pts.push((a - b, d.compute - b));
        }
    }
    if pts.len() < MIN_COMPUTE_POINTS {
        rep.say(format!(
            "compute: {} GPU compute buffers measured, need {MIN_COMPUTE_POINTS}; kept moe_scale {} fixed {} MiB",
            pts.len(),
            cal.compute.moe_scale,
            cal.compute.fixed_mib
        ));
        return;
    }
    let moe: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let spread = percentile(&moe, 1.0) - percentile(&moe, 0.0);
    let x: Vec<Vec<f64>> = pts.iter().map(|p| vec![p.0, 1.0]).collect();
    let y: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let both = if spread > 1.0 {
        least_squares(&x, &y).filter(|t| t[0] >= 0.0)
    } else {
        None
    };
    let (s, fixed) = match both {
        Some(t) => (t[0], t[1]),
        None => {
            // The MoE term does not vary enough (or came out negative): fit the constant only.
            let s = cal.compute.moe_scale;
            let r: Vec<f64> = pts.iter().map(|p| p.1 - s * p.0).collect();
            (s, r.iter().sum::<f64>() / r.len() as f64)
        }
    };
    cal.compute.moe_scale = s;
    cal.compute.fixed_mib = fixed;
    cal.provenance.insert(
        "compute".into(),
        format!("least squares over {} GPU compute buffers", pts.len()),
    );
    rep.say(format!(
        "compute: moe_scale {s:.3}, fixed {fixed:.1} MiB ({} buffers)",
        pts.len()
    ));
}

/// One unknown of a speed fit: its name and its column (a run's feature, in seconds at unit
/// coefficient).
struct Column<'a> {
    name: String,
    value: Box<dyn Fn(&SpeedFeatures) -> f64 + 'a>,
}

fn col<'a>(name: impl Into<String>, f: impl Fn(&SpeedFeatures) -> f64 + 'a) -> Column<'a> {
    Column {
        name: name.into(),
        value: Box::new(f),
    }
}

/// Σ over the host's GPUs of model `m` of `per_gpu[g]` / spec bandwidth (s at unit coefficient).
fn per_gpu_model(f: &SpeedFeatures, m: &str, per_gpu: &[f64]) -> f64 {
    f.host
        .gpus
        .iter()
        .zip(per_gpu)
        .filter(|(g, _)| g.model == m && g.bandwidth_gbs > 0.0)
        .map(|(g, v)| v / (g.bandwidth_gbs * 1e9))
        .sum()
}

fn per_pcie(f: &SpeedFeatures, v: f64) -> f64 {
    let pcie = f.host.gpus.first().map(|g| g.pcie_gbs).unwrap_or(0.0);
    if pcie > 0.0 {
        v / (pcie * 1e9)
    } else {
        0.0
    }
}

fn per_ram(f: &SpeedFeatures, v: f64) -> f64 {
    if f.host.ram.bandwidth_gbs > 0.0 {
        v / (f.host.ram.bandwidth_gbs * 1e9)
    } else {
        0.0
    }
}

fn gpu_models(pts: &[(&SpeedFeatures, f64)]) -> Vec<String> {
    let mut m: Vec<String> = pts
        .iter()
        .flat_map(|(f, _)| f.host.gpus.iter().map(|g| g.model.clone()))
        .collect();
    m.sort();
    m.dedup();
    m
}

/// The result of one NNLS fit over named columns.
struct ColumnFit {
    /// (name, coefficient) of the columns that entered the fit.
    theta: Vec<(String, f64)>,
    /// Relative error on tokens/s per point.
    errors: Vec<f64>,
}

impl ColumnFit {
    fn get(&self, name: &str) -> Option<f64> {
        self.theta.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

/// NNLS of seconds per token on the columns that are non-zero for at least two runs, rows
/// scaled by 1/measured (each run's *relative* error counts the same: a 2 t/s run would
/// otherwise outweigh every 200 t/s run). Refuses (Err with the reason) with fewer than
/// unknowns + MIN_EXTRA_SPEED_POINTS runs.
fn fit_columns(pts: &[(&SpeedFeatures, f64)], cols: Vec<Column>) -> Result<ColumnFit, String> {
    let cols: Vec<Column> = cols
        .into_iter()
        .filter(|c| pts.iter().filter(|(f, _)| (c.value)(f) > 0.0).count() >= 2)
        .collect();
    let p = cols.len();
    let need = p + MIN_EXTRA_SPEED_POINTS;
    let names = cols
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if pts.len() < need {
        return Err(format!(
            "{} runs, need {need} for {p} unknowns ({names})",
            pts.len()
        ));
    }
    let row = |f: &SpeedFeatures| cols.iter().map(|c| (c.value)(f)).collect::<Vec<f64>>();
    // Runs that differ in fewer directions than there are unknowns cannot tell the terms apart:
    // NNLS then gives the time to one of them and 0 to the others, and a 0 cannot be written
    // back for every constant (an efficiency of 0 means "not fitted, use the prior"), so the
    // stored calibration would predict what the fit did not (one placement's runs on a CPU
    // host: identical bytes, splits and nodes in every run).
    let rank = rank(&pts.iter().map(|(f, _)| row(f)).collect::<Vec<_>>());
    if rank < p {
        return Err(format!(
            "{} runs, but they differ in only {rank} of the {p} directions ({names}): runs of other placements, contexts or depths tell the terms apart",
            pts.len()
        ));
    }
    let x: Vec<Vec<f64>> = pts
        .iter()
        .map(|(f, t)| row(f).into_iter().map(|v| v / t).collect())
        .collect();
    let y = vec![1.0; pts.len()];
    let theta = nnls(&x, &y).ok_or_else(|| format!("singular system ({names})"))?;
    let errors = pts
        .iter()
        .map(|(f, t)| {
            let pred = dot(&row(f), &theta);
            // Error on tokens/s, the number people read.
            ((1.0 / pred) - (1.0 / t)).abs() / (1.0 / t)
        })
        .collect();
    Ok(ColumnFit {
        theta: cols.iter().map(|c| c.name.clone()).zip(theta).collect(),
        errors,
    })
}

/// Numerical rank of the rows `x` (columns scaled to a largest |value| of 1, pivots below 1e-6
/// count as 0).
fn rank(x: &[Vec<f64>]) -> usize {
    let Some(p) = x.first().map(Vec::len) else {
        return 0;
    };
    let scale: Vec<f64> = (0..p)
        .map(|j| x.iter().map(|r| r[j].abs()).fold(0.0, f64::max))
        .collect();
    let mut a: Vec<Vec<f64>> = x
        .iter()
        .map(|r| {
            r.iter()
                .zip(&scale)
                .map(|(v, s)| if *s > 0.0 { v / s } else { 0.0 })
                .collect()
        })
        .collect();
    reduce(&mut a, p, 1e-6)
}

/// Runs grouped by the model of their host's first GPU, with the measured seconds per token
/// that `measured` picks.
fn by_host(
    records: &[Record],
    measured: impl Fn(&Record) -> Option<f64>,
) -> BTreeMap<String, Vec<(&SpeedFeatures, f64)>> {
    let mut m: BTreeMap<String, Vec<(&SpeedFeatures, f64)>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.speed_usable()) {
        if let (Some(f), Some(t)) = (r.speed.as_ref(), measured(r)) {
            m.entry(f.host_gpu.clone()).or_default().push((f, t));
        }
    }
    m
}

/// Fits decode per kind of host; returns the kinds whose fit refused (too few runs), which
/// learn.rs then moves by a prior-plus-data step.
fn fit_decode(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) -> Vec<String> {
    let groups = by_host(records, Record::decode_s);
    if groups.is_empty() {
        rep.say("decode: no run with decode timings and a prediction; kept the incoming speed constants");
    }
    groups
        .iter()
        .filter(|(host, pts)| !fit_decode_host(host, pts, cal, rep))
        .map(|(host, _)| host.clone())
        .collect()
}

/// Decode on one kind of host (runs whose first GPU is `host`), src/speed.rs's model:
/// seconds per token = per_node·nodes + per_split·splits + Σ_m (1/η_m)·Σ bytes_g/BW_g +
/// (1/η_cpu)·bytes_cpu/BW_ram + Σ_m t_m·MLA layers on m + k_cpu·head-cells_cpu/BW_ram, NNLS.
/// Host constants go to that GPU model's `host_speed`, GPU terms to each GPU model's entry.
fn fit_decode_host(
    host: &str,
    pts: &[(&SpeedFeatures, f64)],
    cal: &mut Calibration,
    rep: &mut FitReport,
) -> bool {
    let models = gpu_models(pts);
    // No fixed per-token column: with one graph per model it is collinear with the node count
    // (the fit traded one for the other from fold to fold).
    let mut cols = vec![];
    for m in &models {
        let m2 = m.clone();
        cols.push(col(format!("bytes {m}"), move |f| {
            per_gpu_model(f, &m2, &f.decode.gpu_bytes)
        }));
    }
    cols.push(col("bytes CPU", |f| per_ram(f, f.decode.cpu_bytes)));
    cols.push(col("splits", |f| f.decode.splits));
    cols.push(col("nodes", |f| f.decode.nodes));
    // GQA attention on a GPU gets no column: for one token CUDA runs it with the vector
    // kernel (fattn.cu `can_use_vector_kernel`), which streams K and V once, a cost already in
    // the KV bytes. Wide (MLA) attention runs on the MMA kernel, ~38 flops per cached byte.
    for m in &models {
        // Wide (MLA) attention: a fixed cost per layer. A per-flop column at depth was tried
        // and came out 0 on all runs (GLM 15K vs 60K differ by what bytes, CPU and splits
        // explain); with the MLA runs at one depth in a fold the two are collinear, so only
        // the per-layer term is fitted (`Rates::gpu_s_per_wide_attn_flop` stays 0 for decode).
        let m2 = m.clone();
        cols.push(col(format!("wide layers {m}"), move |f| {
            f.host
                .gpus
                .iter()
                .zip(&f.decode.gpu_wide_attn_layers)
                .filter(|(g, _)| g.model == m2)
                .map(|(_, n)| n)
                .sum()
        }));
    }
    cols.push(col("attn CPU", |f| {
        per_ram(f, f.decode.cpu_attn_head_cells)
    }));
    let fit = match fit_columns(pts, cols) {
        Ok(f) => f,
        Err(why) => {
            rep.say(format!(
                "decode on {host} hosts: {why}; kept the incoming speed constants"
            ));
            return false;
        }
    };
    let mut hs = cal.host_speed(host);
    hs.n_runs = pts.len();
    hs.per_token_s = fit.get("per_token").unwrap_or(0.0);
    hs.per_split_s = fit.get("splits").unwrap_or(hs.per_split_s);
    hs.per_node_s = fit.get("nodes").unwrap_or(hs.per_node_s);
    if let Some(t) = fit.get("bytes CPU").filter(|t| *t > 0.0) {
        hs.cpu_bandwidth_efficiency = 1.0 / t;
    }
    // 0 = not fitted here (no run with KV in RAM): the `[speed]` prior applies at use.
    hs.cpu_attn_bytes_per_head_cell = fit.get("attn CPU").unwrap_or(0.0);
    let src = format!("NNLS over {} decode runs on {host} hosts", pts.len());
    for m in &models {
        match fit.get(&format!("bytes {m}")) {
            Some(t) if t > 0.0 => {
                gpu_entry(cal, m).bandwidth_efficiency = 1.0 / t;
                cal.provenance
                    .insert(format!("gpus.{m}.bandwidth_efficiency"), src.clone());
            }
            Some(_) => rep.say(format!(
                "decode on {host} hosts: {m} reads explain none of the time (coefficient 0); efficiency kept"
            )),
            None => {}
        }
        if let Some(t) = fit.get(&format!("attn {m}")) {
            gpu_entry(cal, m).attn_bytes_per_flop = t;
            cal.provenance
                .insert(format!("gpus.{m}.attn_bytes_per_flop"), src.clone());
        }
        if let Some(t) = fit.get(&format!("wide layers {m}")) {
            gpu_entry(cal, m).wide_attn_layer_s = t;
            cal.provenance
                .insert(format!("gpus.{m}.wide_attn_layer_s"), src.clone());
        }
        if let Some(t) = fit.get(&format!("wide attn {m}")) {
            gpu_entry(cal, m).wide_attn_bytes_per_flop = t;
            cal.provenance
                .insert(format!("gpus.{m}.wide_attn_bytes_per_flop"), src.clone());
        }
    }
    rep.say(format!(
        "decode on {host} hosts: per_token {:.3} ms, per_node {:.2} µs, per_split {:.1} µs, GPU eff {}, CPU eff {:.2}, attention bytes/flop {} CPU {:.3}; fit median error {:.1}%, max {:.1}% ({} runs)",
        hs.per_token_s * 1e3,
        hs.per_node_s * 1e6,
        hs.per_split_s * 1e6,
        models.iter().map(|m| format!("{m} {:.2}", cal.gpu(m).bandwidth_efficiency)).collect::<Vec<_>>().join(", "),
        hs.cpu_bandwidth_efficiency,
        models.iter().map(|m| format!("{m} {:.4} (wide {:.4}, {:.1} µs/MLA layer)", cal.gpu(m).attn_bytes_per_flop, cal.gpu(m).wide_attn_bytes_per_flop, cal.gpu(m).wide_attn_layer_s * 1e6)).collect::<Vec<_>>().join(", "),
        hs.cpu_attn_bytes_per_head_cell,
        100.0 * percentile(&fit.errors, 0.5),
        100.0 * fit.errors.iter().cloned().fold(0.0, f64::max),
        pts.len()
    ));
    cal.provenance.insert(
        format!("gpus.{host}.host_speed"),
        format!(
            "{src} ({} unknowns: {}; rows scaled by 1/measured)",
            fit.theta.len(),
            fit.theta
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    gpu_entry(cal, host).host_speed = Some(hs);
    true
}

/// Prefill per kind of host (grouped as for decode), src/speed.rs's model: seconds per prompt
/// token = prefill_per_token + PCIe terms (dense and routed-expert bytes per token / PCIe spec) +
/// Σ_m k_m·Σ flops_g/BW_g + k_cpu·head-cells_cpu/BW_ram, NNLS. Stored in that GPU model's
/// `host_speed` (a PCIe efficiency measured on one platform is not a prior for another) and
/// each GPU model's entry.
fn fit_prefill(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) -> Vec<String> {
    let mut refused = Vec::new();
    for (host, pts) in &by_host(records, Record::prefill_s) {
        let models = gpu_models(pts);
        let mut cols = vec![
            col("per_token", |_| 1.0),
            // Dense and routed-expert weights apart: llama.cpp copies only the experts a
            // ubatch routes to (ggml-backend.cpp:ggml_backend_sched_compute_splits).
            col("pcie", |f| {
                per_pcie(
                    f,
                    f.prefill.pcie_bytes_per_token - f.prefill.pcie_expert_bytes_per_token,
                )
            }),
            col("pcie experts", |f| {
                per_pcie(f, f.prefill.pcie_expert_bytes_per_token)
            }),
        ];
        for m in &models {
            let m2 = m.clone();
            cols.push(col(format!("attn {m}"), move |f| {
                per_gpu_model(f, &m2, &f.prefill.gpu_attn_flops)
            }));
            let m2 = m.clone();
            cols.push(col(format!("wide attn {m}"), move |f| {
                per_gpu_model(f, &m2, &f.prefill.gpu_wide_attn_flops)
            }));
        }
        cols.push(col("attn CPU", |f| {
            per_ram(f, f.prefill.cpu_attn_head_cells)
        }));
        let fit = match fit_columns(pts, cols) {
            Ok(f) => f,
            Err(why) => {
                rep.say(format!(
                    "prefill on {host} hosts: {why}; kept the incoming constants"
                ));
                refused.push(host.clone());
                continue;
            }
        };
        let mut hs = cal.host_speed(host);
        hs.prefill_per_token_s = fit.get("per_token").unwrap_or(0.0);
        if let Some(t) = fit.get("pcie").filter(|t| *t > 0.0) {
            hs.pcie_efficiency = 1.0 / t;
        }
        hs.pcie_expert_efficiency = fit
            .get("pcie experts")
            .filter(|t| *t > 0.0)
            .map_or(0.0, |t| 1.0 / t);
        hs.prefill_cpu_attn_bytes_per_head_cell = fit.get("attn CPU").unwrap_or(0.0);
        for m in &models {
            if let Some(t) = fit.get(&format!("attn {m}")) {
                gpu_entry(cal, m).prefill_attn_bytes_per_flop = t;
            }
            if let Some(t) = fit.get(&format!("wide attn {m}")) {
                gpu_entry(cal, m).prefill_wide_attn_bytes_per_flop = t;
            }
        }
        rep.say(format!(
            "prefill on {host} hosts: {:.3} ms/token + PCIe at {:.2} of spec (routed experts counted whole: {:.2}), attention bytes/flop {} CPU {:.3}; fit median error {:.1}%, max {:.1}% ({} runs)",
            hs.prefill_per_token_s * 1e3,
            hs.pcie_efficiency,
            hs.pcie_expert_efficiency,
            models.iter().map(|m| format!("{m} {:.4} (wide {:.4})", cal.gpu(m).prefill_attn_bytes_per_flop, cal.gpu(m).prefill_wide_attn_bytes_per_flop)).collect::<Vec<_>>().join(", "),
            hs.prefill_cpu_attn_bytes_per_head_cell,
            100.0 * percentile(&fit.errors, 0.5),
            100.0 * fit.errors.iter().cloned().fold(0.0, f64::max),
            pts.len()
        ));
        cal.provenance.insert(
            format!("gpus.{host}.host_speed.prefill"),
            format!(
                "NNLS over {} prefill runs on {host} hosts ({}; rows scaled by 1/measured)",
                pts.len(),
                fit.theta
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        gpu_entry(cal, host).host_speed = Some(hs);
    }
    refused
}
/// Speed terms that have no published prior (per-node cost, attention costs, prefill fixed
/// cost) become the `[speed]` priors for hosts without runs: the values fitted on the kind of
/// host with the most runs, moved by speed.rs's transfer rule (attention in bytes-equivalent per
/// flop of the device's own memory bandwidth; per-node and per-token costs unchanged). Only
/// non-zero fitted values move; each is labelled PRIOR with its source in `[provenance]`.
fn transfer_priors(cal: &mut Calibration, rep: &mut FitReport) {
    let Some(src) = cal
        .gpus
        .iter()
        .filter_map(|g| g.host_speed.as_ref().map(|h| (g, h)))
        .max_by_key(|(_, h)| h.n_runs)
        .map(|(g, h)| (g.clone(), h.clone()))
    else {
        return;
    };
    let (g, h) = src;
    let from = format!(
        "PRIOR: transferred from the fit on {} hosts ({} decode runs)",
        g.model, h.n_runs
    );
    let rule_gpu = "rule: attention seconds per flop = bytes/flop ÷ the GPU's spec bandwidth";
    let rule_cpu = "rule: CPU attention seconds per (query head, cached cell) = bytes-equivalent ÷ the host's RAM bandwidth (`ram.bandwidth_gbs`)";
    let mut moved = Vec::new();
    let mut set =
        |name: &str, dst: &mut f64, v: f64, rule: &str, prov: &mut BTreeMap<String, String>| {
            if v > 0.0 {
                *dst = v;
                prov.insert(format!("speed.{name}"), format!("{from}; {rule}"));
                moved.push(name.to_string());
            }
        };
    let sp = &mut cal.speed;
    let prov = &mut cal.provenance;
    set(
        "per_node_s",
        &mut sp.per_node_s,
        h.per_node_s,
        "rule: same cost per graph node",
        prov,
    );
    set(
        "prefill_per_token_s",
        &mut sp.prefill_per_token_s,
        h.prefill_per_token_s,
        "rule: same fixed cost per prompt token",
        prov,
    );
    set(
        "gpu_attn_bytes_per_flop",
        &mut sp.gpu_attn_bytes_per_flop,
        g.attn_bytes_per_flop,
        rule_gpu,
        prov,
    );
    set(
        "prefill_gpu_attn_bytes_per_flop",
        &mut sp.prefill_gpu_attn_bytes_per_flop,
        g.prefill_attn_bytes_per_flop,
        rule_gpu,
        prov,
    );
    set(
        "gpu_wide_attn_bytes_per_flop",
        &mut sp.gpu_wide_attn_bytes_per_flop,
        g.wide_attn_bytes_per_flop,
        rule_gpu,
        prov,
    );
    set(
        "gpu_wide_attn_layer_s",
        &mut sp.gpu_wide_attn_layer_s,
        g.wide_attn_layer_s,
        "rule: same seconds per MLA layer",
        prov,
    );
    set(
        "prefill_gpu_wide_attn_bytes_per_flop",
        &mut sp.prefill_gpu_wide_attn_bytes_per_flop,
        g.prefill_wide_attn_bytes_per_flop,
        rule_gpu,
        prov,
    );
    set(
        "cpu_attn_bytes_per_head_cell",
        &mut sp.cpu_attn_bytes_per_head_cell,
        h.cpu_attn_bytes_per_head_cell,
        rule_cpu,
        prov,
    );
    set(
        "prefill_cpu_attn_bytes_per_head_cell",
        &mut sp.prefill_cpu_attn_bytes_per_head_cell,
        h.prefill_cpu_attn_bytes_per_head_cell,
        rule_cpu,
        prov,
    );
    if !moved.is_empty() {
        rep.say(format!(
            "priors for hosts without runs, from {} hosts: {}",
            g.model,
            moved.join(", ")
        ));
    }
}

/// Per-device memory errors (measured − predicted total, MiB; positive = placer under-predicted).
pub fn memory_errors(records: &[Record], cal: &Calibration) -> Vec<(String, String, f64, f64)> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| complete(r)) {
        let Some(p) = repredict(r, cal) else { continue };
        for (i, d) in r.measured.iter().enumerate() {
            if let (Some(meas), Some(g)) = (d.total, p.gpus.get(i)) {
                out.push((
                    r.input.run_id.clone(),
                    d.name.clone(),
                    device_predicted(g).total,
                    meas,
                ));
            }
        }
    }
    out
}

/// Per-device errors on llama.cpp's own buffers (model + KV/RS + compute, MiB) for every run
/// whose log shows all three (finished or cut short by the time box; an OOM run lacks the buffer
/// that failed). Unlike the total this needs no free-memory baseline, so `emul:` runs count.
pub fn buffer_errors(records: &[Record], cal: &Calibration) -> Vec<(String, String, f64, f64)> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.input.log.oom.is_empty()) {
        let Some(p) = repredict(r, cal) else { continue };
        for (i, d) in r.measured.iter().enumerate() {
            let Some(g) = p.gpus.get(i).map(device_predicted) else {
                continue;
            };
            if d.compute <= 0.0 && g.compute > 0.0 {
                continue; // the log never reached the compute reservation
            }
            out.push((
                r.input.run_id.clone(),
                d.name.clone(),
                g.model + g.kv + g.compute,
                d.model + d.kv + d.compute,
            ));
        }
    }
    out
}

fn fit_margins(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) {
    let errs: Vec<f64> = memory_errors(records, cal)
        .iter()
        .map(|(_, _, p, m)| m - p)
        .collect();
    if errs.is_empty() {
        rep.say(format!(
            "margins: 0 device totals measured (need a free-memory baseline or NVML memory), {MIN_MARGIN_POINTS} for the full rule; kept aggressive {} / moderate {} MiB",
            cal.margins.aggressive_mib,
            cal.margins.moderate_mib
        ));
        return;
    }
    let p90 = percentile(&errs, 0.9).max(0.0);
    let max = percentile(&errs, 1.0).max(0.0);
    let aggressive = (p90 + MEMORY_TOLERANCE_MIB).ceil();
    let moderate = (max + MEMORY_TOLERANCE_MIB).max(FIT_TARGET_MIB).ceil();
    if errs.len() < MIN_MARGIN_POINTS {
        // Below the percentile's minimum: each margin moved from the incoming one toward the
        // rule's value on these totals, a prior worth MARGIN_PRIOR_WEIGHT totals (learn.rs).
        let k = super::learn::MARGIN_PRIOR_WEIGHT;
        let (pa, pm) = (cal.margins.aggressive_mib, cal.margins.moderate_mib);
        cal.margins.aggressive_mib = super::learn::shrink(pa, aggressive, errs.len(), k).ceil();
        cal.margins.moderate_mib = super::learn::shrink(pm, moderate, errs.len(), k)
            .max(FIT_TARGET_MIB)
            .ceil();
        cal.provenance.insert(
            "margins".into(),
            format!("prior aggressive {pa} / moderate {pm} MiB shrunk by n/(n + {k}) toward the rule's values on {} device totals ({aggressive} / {moderate} MiB)", errs.len()),
        );
        rep.say(format!(
            "margins: aggressive {} MiB, moderate {} MiB ({} device totals, need {MIN_MARGIN_POINTS} for the full rule: prior {pa} / {pm} moved toward {aggressive} / {moderate}; error max {max:.0} MiB)",
            cal.margins.aggressive_mib,
            cal.margins.moderate_mib,
            errs.len()
        ));
        return;
    }
    cal.margins.aggressive_mib = aggressive;
    cal.margins.moderate_mib = moderate;
    cal.provenance.insert(
        "margins".into(),
        format!("aggressive = p90 under-prediction + {MEMORY_TOLERANCE_MIB}; moderate = max(max under-prediction + {MEMORY_TOLERANCE_MIB}, {FIT_TARGET_MIB}); {} device totals", errs.len()),
    );
    rep.say(format!(
        "margins: aggressive {} MiB, moderate {} MiB (error p90 {p90:.0}, max {max:.0} MiB over {} devices)",
        cal.margins.aggressive_mib,
        cal.margins.moderate_mib,
        errs.len()
    ));
}

/// An OOM on device d of a host: raise that device's margin so that the predicted free memory
/// of the failed launch is no longer enough (free_pred + tolerance − aggressive margin), or, with
/// no prediction, by the size of the failed allocation.
pub fn learn_ooms(records: &[Record], cal: &mut Calibration, rep: &mut FitReport) {
    for r in records {
        for o in &r.input.log.oom {
            let Some(dev) = o.device.clone().filter(|d| d.starts_with("CUDA")) else {
                rep.say(format!(
                    "OOM in {} ({} stage) names no GPU: no margin learned",
                    r.input.run_id, o.stage
                ));
                continue;
            };
            let idx = dev[4..].parse::<usize>().ok();
            let pred_free = r
                .prediction
                .as_ref()
                .and_then(|_| repredict(r, cal))
                .and_then(|p| {
                    idx.and_then(|i| p.gpus.get(i).map(|g| g.free() as f64 / (1024.0 * 1024.0)))
                });
            let host = r
                .host
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_else(|| "log".into());
            let extra = match (pred_free, o.bytes) {
                (Some(f), _) => (f + MEMORY_TOLERANCE_MIB - cal.margins.aggressive_mib)
                    .max(MEMORY_TOLERANCE_MIB),
                (None, Some(b)) => b as f64 / (1024.0 * 1024.0),
                (None, None) => {
                    rep.say(format!(
                        "OOM on {dev} in {}: no prediction and no size; no margin learned",
                        r.input.run_id
                    ));
                    continue;
                }
            };
            add_device_margin(cal, &host, &dev, extra.ceil(), &r.input.run_id);
            rep.say(format!(
                "OOM on {dev} of {host} ({} stage) in {}: margin there +{:.0} MiB",
                o.stage,
                r.input.run_id,
                extra.ceil()
            ));
        }
    }
}

/// One entry per OOM run and device: the margin that run alone needs. A device's margin is the
/// largest of its entries (`Calibration::device_extra_mib`), so re-reading the same logs — a
/// re-fit from a calibration that already learned them — changes nothing, and a new OOM of a
/// launch that was solved with the old margin raises it (its predicted free memory included it).
pub fn add_device_margin(cal: &mut Calibration, host: &str, device: &str, extra: f64, from: &str) {
    cal.device_margins
        .retain(|m| !(m.host == host && m.device == device && m.from == from));
    cal.device_margins.push(DeviceMargin {
        host: host.to_string(),
        device: device.to_string(),
        extra_mib: extra,
        from: from.to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::rank;

    #[test]
    fn rank_counts_the_directions_runs_differ_in() {
        // One placement's runs on a CPU host: the same bytes, splits and nodes every time.
        let same = vec![vec![3.0e7, 1.0, 315.0]; 6];
        assert_eq!(rank(&same), 1);
        let two = vec![
            vec![3.0e7, 1.0, 315.0],
            vec![6.0e7, 2.0, 630.0],
            vec![2.0e7, 0.0, 0.0],
        ];
        assert_eq!(rank(&two), 2);
        let full = vec![
            vec![1.0, 0.0, 2.0],
            vec![0.0, 1.0, 1.0],
            vec![1.0, 1.0, 0.0],
        ];
        assert_eq!(rank(&full), 3);
        assert_eq!(rank(&[]), 0);
    }
}
