//! Fitting primitives and the record pipeline on the reference runs.

use placer::calibrate::fit::{self, least_squares, nnls, percentile};
use placer::calibrate::records::{self, Manifest, RunInput};
use placer::calibrate::run::{Errors, Options};
use placer::calibrate::Calibration;
use placer::logs::parse_path;
use std::path::PathBuf;

#[test]
fn nnls_recovers_known_coefficients() {
    // y = 0.002 + 1.25·a + 0.5·b + 0·c, exactly.
    let theta = [0.002, 1.25, 0.5, 0.0];
    let x: Vec<Vec<f64>> = (0..12)
        .map(|i| {
            let i = i as f64;
            vec![
                1.0,
                0.001 * (i + 1.0),
                0.003 * ((i * 7.0) % 5.0),
                0.002 * ((i * 3.0) % 4.0),
            ]
        })
        .collect();
    let y: Vec<f64> = x
        .iter()
        .map(|r| r.iter().zip(theta).map(|(a, b)| a * b).sum())
        .collect();
    let t = nnls(&x, &y).unwrap();
    for (got, want) in t.iter().zip(theta) {
        assert!((got - want).abs() < 1e-9, "{t:?}");
    }
}

#[test]
fn nnls_never_returns_negative_coefficients() {
    // Data that unconstrained least squares would explain with a negative slope.
    let x: Vec<Vec<f64>> = (0..6).map(|i| vec![1.0, i as f64]).collect();
    let y: Vec<f64> = (0..6).map(|i| 10.0 - i as f64).collect();
    let ls = least_squares(&x, &y).unwrap();
    assert!(ls[1] < 0.0);
    let t = nnls(&x, &y).unwrap();
    assert!(t.iter().all(|v| *v >= 0.0), "{t:?}");
    assert!((t[1]).abs() < 1e-12 && (t[0] - 7.5).abs() < 1e-9, "{t:?}");
}

#[test]
fn percentiles() {
    let v = [5.0, 1.0, 3.0, 2.0, 4.0];
    assert_eq!(percentile(&v, 0.5), 3.0);
    assert_eq!(percentile(&v, 1.0), 5.0);
    assert!((percentile(&v, 0.9) - 4.6).abs() < 1e-12);
}

fn reference() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2");
    p.is_dir().then_some(p)
}

/// The reference runs with the manifest the testbed would have written (ballast.txt: 23999 /
/// 12799 MiB free before start; emulated host 24000 + 12800).
fn reference_input(name: &str) -> Option<RunInput> {
    let dir = reference()?;
    let log = parse_path(&dir.join(name)).ok()?;
    let manifest = Manifest {
        run_id: name.into(),
        model: "qwen3-30b-a3b-q8".into(),
        host: "gpu:24000,12800".into(),
        emulation: "gpu".into(),
        host_targets_mib: vec![24000, 12800],
        ballast_free_mib: vec![23999, 12799],
        ..Default::default()
    };
    Some(RunInput {
        scenario: "reference".into(),
        run_id: name.into(),
        log_path: dir.join(name),
        manifest: Some(manifest),
        log,
    })
}

#[test]
fn reference_runs_measured_overhead_and_prediction_within_tolerance() {
    let Some(t2) = reference_input("t2_fit.log.gz") else {
        return;
    };
    let Some(t3) = reference_input("t3_cmoe.log.gz") else {
        return;
    };
    let opts = Options::default();
    let cal = Calibration::shipped();
    let recs: Vec<_> = [t2, t3]
        .into_iter()
        .map(|i| records::record(i, &cal, None, &opts.hardware_dir, None))
        .collect();
    // Overhead = free before start − free at exit − self (t2: 23999 − 1041 − 22252).
    assert_eq!(recs[0].measured[0].overhead, Some(706.0));
    assert_eq!(
        recs[0].measured[1].overhead,
        Some(12799.0 - 913.0 - 11181.0)
    );
    assert_eq!(recs[1].measured[0].total, Some(23999.0 - 17989.0));
    // --fit's placement was read back from the log: same model bytes per GPU as logged.
    for r in &recs {
        let p = r
            .predicted
            .as_ref()
            .unwrap_or_else(|| panic!("{}: {}", r.input.run_id, r.note));
        for (d, pd) in r.measured.iter().zip(p) {
            assert!(
                (d.model - pd.model).abs() < 1.0,
                "{} {}: model {} vs {}",
                r.input.run_id,
                d.name,
                d.model,
                pd.model
            );
            assert!(
                (d.kv - pd.kv).abs() < 1.0,
                "{} {}: kv {} vs {}",
                r.input.run_id,
                d.name,
                d.kv,
                pd.kv
            );
        }
    }
    let e = Errors::of(&recs, &cal);
    eprintln!("{}", e.summary());
    assert_eq!(e.memory.len(), 4);
    assert_eq!(e.memory_within_tolerance(), 4, "{:?}", e.memory);
}

#[test]
fn too_few_runs_are_refused_with_the_number_needed() {
    let Some(t3) = reference_input("t3_cmoe.log.gz") else {
        return;
    };
    let cal = Calibration::shipped();
    let rec = records::record(t3, &cal, None, &Options::default().hardware_dir, None);
    let (fitted, rep) = fit::fit(std::slice::from_ref(&rec), &cal);
    let text = rep.lines.join("\n");
    assert!(text.contains("need 3"), "{text}");
    assert!(
        text.contains("decode on NVIDIA H200 hosts: 1 runs"),
        "{text}"
    );
    assert_eq!(fitted.speed, cal.speed);
    // One measured total is below the percentile rule's minimum: the margin moves from the
    // prior toward the rule's value on it by n/(n + k) (learn.rs), and the report says so.
    assert!(text.contains("need 5 for the full rule"), "{text}");
    assert!(
        fitted.margins.aggressive_mib < cal.margins.aggressive_mib,
        "{:?}",
        fitted.margins
    );
    assert_eq!(fitted.margins.moderate_mib, cal.margins.moderate_mib);
}

/// The dense Qwen3-32B runs at 15K depth on 24 GB: `--fit` (whole layers, KV included, on the
/// CPU) decoded 2.21 t/s, the hand placement (attention + KV on the GPU, 48 FFN blocks on the
/// CPU) 3.70 t/s. Bytes alone cannot order them (the hand run reads *more* from RAM); the CPU
/// attention term of src/speed.rs, fitted on all of data/runs, must, and the KV-on-CPU run must
/// carry CPU attention work while the hand run carries none.
#[test]
fn cpu_attention_orders_the_dense_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    let dir = root.join("2026-11-23-dense32b-gpu24-c32k");
    if !dir.is_dir() {
        return;
    }
    let cal = Calibration::shipped();
    let (recs, _) =
        placer::calibrate::run::build_records(&[dir], &cal, &Options::default(), |_| {});
    let find = |id: &str| {
        recs.iter()
            .find(|r| r.input.run_id == id && r.speed.is_some())
            .unwrap_or_else(|| panic!("{id} not in data/runs"))
    };
    let fit_run = find("dense32b-gpu24-c32k--fit");
    let hand = find("dense32b-gpu24-c32k--hand--c4");
    let (f, h) = (
        fit_run.speed.as_ref().unwrap(),
        hand.speed.as_ref().unwrap(),
    );
    assert!(f.decode.cpu_attn_head_cells > 0.0);
    assert_eq!(h.decode.cpu_attn_head_cells, 0.0);
    assert!(
        h.decode.cpu_bytes > f.decode.cpu_bytes,
        "hand reads more from RAM"
    );
    let pf = fit::decode_tps(&cal, f).unwrap();
    let ph = fit::decode_tps(&cal, h).unwrap();
    assert!(
        ph > 1.3 * pf,
        "hand predicted {ph:.2} t/s, --fit {pf:.2}: measured 3.70 vs 2.21"
    );
    for (r, p) in [(fit_run, pf), (hand, ph)] {
        let m = r.input.log.gen_tps.unwrap();
        assert!(
            (p - m).abs() / m < 0.15,
            "{}: {p:.2} vs {m:.2}",
            r.input.run_id
        );
    }
}
