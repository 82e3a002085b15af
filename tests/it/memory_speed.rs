//! The solver calls `predict` many times: it must stay well under a millisecond for a 48-layer
//! MoE (579 tensors) with a handful of overrides. Measured in the test profile (opt-level 1,
//! dependencies at 2), so the bound here is loose; `cargo bench --bench predict` gives the number.

use placer::anatomy::from_gguf;
use placer::calibrate::Calibration;
use placer::host::default_host;
use placer::launch::{parse_args, Tool};
use placer::memory::Predictor;
use std::time::Instant;

#[test]
fn predict_is_fast_enough_for_the_solver() {
    let a = from_gguf(&placer::catalog::load_model("qwen3-30b-a3b-q8", None).unwrap()).unwrap();
    let host = default_host();
    let cal = Calibration::shipped();
    let argv: Vec<String> = r"-c 65536 -ngl 49 -ts 29,20 -ot blk\.28\.ffn_down.*=CUDA1,blk\.41\.ffn_(gate|gate_up|down).*=CPU --n-cpu-moe 4 -ot blk\.4[2-7]\.ffn_(up|down|gate)_exps=CPU"
        .split_whitespace()
        .map(String::from)
        .collect();
    let cfg = parse_args(Tool::Server, &argv).unwrap();
    let p = Predictor::new(&a, &host, &cal);
    p.predict(&cfg).unwrap();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(p.predict(&cfg).unwrap());
    }
    let per = t.elapsed().as_secs_f64() / n as f64;
    eprintln!(
        "predict: {:.3} ms per call ({} tensors, {} overrides)",
        per * 1e3,
        a.tensors.len(),
        cfg.overrides.len()
    );
    assert!(per < 5e-3, "predict took {:.3} ms", per * 1e3);
}
