//! The dry-run oracle compares like with like: llama-fit-params reserves the prompt graph for
//! n_batch outputs, llama-server for n_parallel (src/profile/confirm.rs `output_rows_gap`). The
//! numbers are those of the GPU run 2026-12-06 c1 (data/runs/2026-12-06-glm-h200emul-c128k-trial):
//! GLM-4.7-Flash Q8_0 at 128K, placer's aggressive profile, where llama-fit-params projected 306
//! MiB of compute on CUDA1 and the loaded llama-server measured placer's 191.

use placer::anatomy::from_gguf;
use placer::calibration::Calibration;
use placer::host::Host;
use placer::launch::{parse_args, Tool};
use std::path::PathBuf;

fn run_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs/2026-12-06-glm-h200emul-c128k-trial")
}

#[test]
fn the_output_rows_gap_explains_the_dry_runs_extra_compute() {
    let anatomy = from_gguf(&placer::catalog::load_model("glm-q8", None).unwrap()).unwrap();
    let host = Host::load(&run_dir().join("host.toml")).unwrap();
    let cal = Calibration::shipped();
    let argv: Vec<String> = "-m glm-q8 -c 131072 -ngl 48 --fit off -ts 33,15 \
        -ot blk\\.(29|3[0-2])\\.ffn_(down|gate|up)_exps\\.=CPU,blk\\.28\\.ffn_(down|up)_exps\\.=CPU \
        -b 2048 -ub 512 -ctk f16 -ctv f16 -np 1 -lm none"
        .split_whitespace()
        .map(String::from)
        .collect();
    let cfg = parse_args(Tool::Server, &argv).unwrap();
    let gap = placer::profile::output_rows_gap(
        &anatomy,
        &placer::host_model::HostModel::resolve(&host, &cal),
        &cfg,
    );
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    assert_eq!(gap.len(), 2);
    // The output layer is on CUDA1: the whole gap is there.
    assert_eq!(gap[0], 0, "{gap:?}");
    // llama-fit-params 306 MiB vs the server's measured 191: a gap of ~115 MiB; placer's is
    // its own dry-run prediction (322) minus its server prediction (191).
    let g1 = mib(gap[1]);
    assert!((100.0..=150.0).contains(&g1), "CUDA1 gap {g1:.0} MiB");
    // With it, llama.cpp's projection no longer exceeds placer's server prediction by more than
    // a few MiB: nothing to correct, so no margin is raised.
    let pred = placer::memory::Predictor::new(&anatomy, &host, &cal)
        .predict(&cfg)
        .unwrap();
    let placer_compute = mib(pred.gpus[1].compute);
    assert!(
        (306.0 - g1 - placer_compute).abs() < 20.0,
        "306 - {g1:.0} vs {placer_compute:.0}"
    );
    // Not a server: no gap.
    let cli = placer::launch::LaunchConfig {
        tool: Tool::Cli,
        ..cfg
    };
    assert!(placer::profile::output_rows_gap(
        &anatomy,
        &placer::host_model::HostModel::resolve(&host, &cal),
        &cli
    )
    .is_empty());
}
