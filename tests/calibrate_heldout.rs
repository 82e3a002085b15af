//! Held-out check on the project's own runs (data/runs): fit on two thirds, predict the rest.
//! Targets: memory per device within max(128 MiB, 1.5 %), decode median error ≤ 10 %.
//! With too few runs the test says so and checks that the fit refuses, instead of passing
//! on nothing.

use placer::calibrate::fit;
use placer::calibrate::run::{build_records, Errors, Options};
use placer::calibrate::Calibration;
use std::path::PathBuf;

/// Runs with a prediction and a measured per-device total needed for the split to mean anything
/// (6 to fit the margins and overhead with the minimums of fit.rs, 3 held out).
const NEED: usize = 9;

#[test]
fn held_out_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    let cal = Calibration::shipped();
    let (records, skipped) = build_records(&[root], &cal, &Options::default(), |_| {});
    let usable: Vec<_> = records
        .into_iter()
        .filter(|r| r.prediction.is_some() && r.input.log.oom.is_empty() && !r.input.log.truncated)
        .collect();
    eprintln!(
        "data/runs: {} usable runs, {} files skipped",
        usable.len(),
        skipped.len()
    );
    if usable.len() < NEED {
        eprintln!(
            "HELD-OUT TEST NOT EVALUATED: data/runs holds {} usable runs (prediction + complete log), need {NEED}",
            usable.len()
        );
        let (fitted, rep) = fit::fit(&usable, &cal);
        let text = rep.lines.join("\n");
        eprintln!("{text}");
        assert!(
            text.contains("need"),
            "with {} runs some fit must refuse: {text}",
            usable.len()
        );
        if usable.is_empty() {
            assert_eq!(fitted.speed, cal.speed);
        }
        return;
    }
    let (train, test): (Vec<_>, Vec<_>) = usable
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 3 != 2);
    let train: Vec<_> = train.into_iter().map(|(_, r)| r).collect();
    let test: Vec<_> = test.into_iter().map(|(_, r)| r).collect();
    let (fitted, rep) = fit::fit(&train, &cal);
    eprintln!("{}", rep.lines.join("\n"));
    let e = Errors::of(&test, &fitted);
    eprintln!("held-out ({} runs):\n{}", test.len(), e.summary());
    for (run, dev, p, m) in &e.memory {
        let tol = 128f64.max(0.015 * m);
        assert!(
            (p - m).abs() <= tol,
            "{run} {dev}: predicted {p:.0} MiB, measured {m:.0} MiB (tolerance {tol:.0})"
        );
    }
    let d = e.decode_rel();
    if !d.is_empty() {
        let med = fit::percentile(&d, 0.5);
        assert!(med <= 0.10, "decode median error {:.1}% > 10%", 100.0 * med);
    }
}
