//! `speed::estimate_splits` (what `check` uses when no log gives the count) against the
//! token-generation graph splits llama.cpp logged for the same placement (data/runs).

use placer::calibrate::run::{build_records, Options};
use placer::calibrate::Calibration;
use std::path::PathBuf;

#[test]
fn estimated_splits_follow_the_logged_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    let (records, _) = build_records(
        &[root],
        &Calibration::shipped(),
        &Options::default(),
        |_| {},
    );
    let mut rows = Vec::new();
    for r in &records {
        let (Some(p), Some(a), Some(cfg), Some(host)) =
            (&r.prediction, &r.anatomy, &r.launch, &r.host)
        else {
            continue;
        };
        let Some((_, tg)) = r.input.log.graph_splits else {
            continue;
        };
        let w = placer::speed::Where {
            anatomy: a,
            resolved: &p.resolved,
            n_gpu: host.gpus.len(),
            type_k: cfg.type_k,
            type_v: cfg.type_v,
        };
        let est = placer::speed::estimate_splits(&w);
        eprintln!("{}: logged {tg}, estimated {est}", r.input.run_id);
        rows.push((tg as f64, est));
    }
    assert!(
        rows.len() >= 20,
        "only {} runs with logged splits",
        rows.len()
    );
    // llama.cpp counts graph splits (hand-offs + 1, plus the input split); the estimate counts
    // hand-offs. What the speed model needs is the slope: one more hand-off, one more split.
    let mut off: Vec<f64> = rows.iter().map(|(t, e)| t - e).collect();
    off.sort_by(f64::total_cmp);
    let med = off[off.len() / 2];
    let within = rows
        .iter()
        .filter(|(t, e)| (t - e - med).abs() <= 2.0)
        .count();
    eprintln!(
        "logged − estimated: median {med}, {within}/{} within ±2 of it",
        rows.len()
    );
    assert!(
        within * 10 >= rows.len() * 8,
        "{within}/{} within ±2 of the median offset {med}",
        rows.len()
    );
}
