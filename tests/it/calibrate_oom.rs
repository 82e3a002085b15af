//! An OOM log for the device a profile filled makes the next solve leave more free memory there.

use crate::fixture;
use placer::calibrate::fit::{learn_ooms, FitReport};
use placer::calibrate::records::{device_predicted, Record, RunInput};
use placer::calibrate::Calibration;
use placer::host::{DeviceId, Host};
use placer::logs::parse_bytes;
use placer::memory;
use placer::solver::{self, Margins, SolveRequest};
use std::path::Path;

fn solve(a: &placer::anatomy::Anatomy, host: &Host, cal: &Calibration) -> solver::Solution {
    let req = SolveRequest {
        ctx: 65536,
        model_path: "m.gguf".into(),
        ..Default::default()
    };
    let margins = Margins {
        gpu_mib: cal.gpu_margins_mib(true, host),
        ram_mib: cal.margins.aggressive_mib,
    };
    solver::solve(
        a,
        &placer::host_model::HostModel::resolve(host, cal),
        &req,
        &margins,
    )
    .unwrap_or_else(|e| panic!("infeasible: {}", e.reason))
}

fn free_mib(s: &solver::Solution, gpu: usize) -> f64 {
    let d = s
        .devices
        .iter()
        .find(|d| d.device == DeviceId::Gpu(gpu))
        .unwrap();
    d.free() as f64 / 1048576.0
}

#[test]
fn oom_on_a_device_moves_memory_off_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = Host::load(&root.join("hardware/users-4090-5070ti.toml")).unwrap();
    let a = fixture::build(&fixture::Spec::qwen3_30b_a3b());
    let cal = Calibration::shipped();
    let first = solve(&a, &host, &cal);
    // The GPU the aggressive profile left with the least free memory OOMs at the first decode.
    let gpu = (0..host.gpus.len())
        .min_by(|&i, &j| free_mib(&first, i).total_cmp(&free_mib(&first, j)))
        .unwrap();
    let before = free_mib(&first, gpu);
    let log_text = format!(
        "llama_model_loader: loaded meta data with 24 key-value pairs and 579 tensors from m.gguf (version GGUF V3 (latest))\n\
         sched_reserve:      CUDA{gpu} compute buffer size =   412.25 MiB\n\
         CUDA error: out of memory\n  current device: {gpu}, in function alloc at ggml-cuda.cu:470\n"
    );
    let log = parse_bytes("oom.log", log_text.as_bytes()).unwrap();
    assert_eq!(log.oom.len(), 1);
    assert_eq!(
        log.oom[0].device.as_deref(),
        Some(format!("CUDA{gpu}").as_str())
    );
    let pred = memory::predict(&a, &first.launch, &host, &cal).unwrap();
    let rec = Record {
        input: RunInput {
            scenario: "t".into(),
            run_id: "oom".into(),
            log_path: "oom.log".into(),
            manifest: None,
            log,
        },
        measured: Vec::new(),
        host: Some(host.clone()),
        launch: Some(first.launch.clone()),
        predicted: Some(pred.gpus.iter().map(device_predicted).collect()),
        anatomy: Some(a.clone()),
        prediction: Some(pred),
        speed: None,
        note: String::new(),
    };
    let mut learned = cal.clone();
    let mut rep = FitReport::default();
    learn_ooms(std::slice::from_ref(&rec), &mut learned, &mut rep);
    eprintln!("{}", rep.lines.join("\n"));
    let extra = learned.device_extra_mib(&host.name, &format!("CUDA{gpu}"));
    assert!(
        extra >= before - cal.margins.aggressive_mib,
        "margin +{extra} MiB does not exclude the failed profile"
    );
    // Reading the same logs again (a re-fit from the learned calibration) changes nothing, also
    // with two OOM runs on one device (a shipped file fitted after 2026-11-23 c4–c5 compounded them).
    let mut rec2 = rec.clone();
    rec2.input.run_id = "oom-again".into();
    let both = [rec.clone(), rec2];
    let mut once = cal.clone();
    learn_ooms(&both, &mut once, &mut FitReport::default());
    let mut twice = once.clone();
    learn_ooms(&both, &mut twice, &mut FitReport::default());
    assert_eq!(twice.device_margins, once.device_margins);
    assert_eq!(
        once.device_extra_mib(&host.name, &format!("CUDA{gpu}")),
        extra
    );
    let second = solve(&a, &host, &learned);
    let after = free_mib(&second, gpu);
    eprintln!("CUDA{gpu}: {before:.0} MiB free before the OOM, {after:.0} MiB after");
    assert!(
        after > before,
        "CUDA{gpu}: {after:.0} MiB free after learning, {before:.0} before"
    );
    assert_ne!(
        second.launch, first.launch,
        "the failed profile was proposed again"
    );
}
