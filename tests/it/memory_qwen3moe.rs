//! The memory model on the reference model (Qwen3-30B-A3B Q8_0, catalog header) for the
//! configurations `--fit` measured in data/runs/2026-11-23-reference-qwen3moe-h200x2/t2_fit.log.gz: its dry runs print
//! a memory breakdown (integer MiB, truncated) for each candidate placement. Model and context
//! must match to the MiB; compute within max(128 MiB, 1.5 %).

use placer::anatomy::{from_gguf, Anatomy};
use placer::calibrate::Calibration;
use placer::host::{DeviceId, Host};
use placer::launch::{parse_args, Tool};
use placer::memory::{predict, Prediction, Stage, Verdict};
use placer::units::MIB;

fn model() -> Anatomy {
    let g = placer::catalog::load_model("qwen3-30b-a3b-q8", None).expect("catalog header");
    from_gguf(&g).expect("anatomy")
}

fn host() -> Host {
    Host::by_name_or_path("testbed-h200x2-emulated").unwrap()
}

fn run(args: &str) -> Prediction {
    let argv: Vec<String> = args.split_whitespace().map(String::from).collect();
    let cfg = parse_args(Tool::Cli, &argv).unwrap();
    predict(&model(), &cfg, &host(), &Calibration::shipped()).unwrap()
}

/// (model, context, compute) MiB per GPU, then host (model, context, compute), as logged.
type Row = (u64, u64, u64);

fn assert_breakdown(p: &Prediction, gpus: &[Row], host: Row) {
    for (i, &(m, c, k)) in gpus.iter().enumerate() {
        let d = &p.gpus[i];
        assert_eq!(d.model / MIB, m, "CUDA{i} model");
        assert_eq!((d.kv + d.rs) / MIB, c, "CUDA{i} context");
        let got = d.compute as f64 / MIB as f64;
        assert!(
            (got - k as f64).abs() <= 128f64.max(0.015 * k as f64),
            "CUDA{i} compute {got:.2} vs {k}"
        );
    }
    let h = &p.host;
    assert_eq!(h.cpu_model / MIB, host.0, "host model");
    assert_eq!((h.kv + h.rs) / MIB, host.1, "host context");
    let got = h.compute as f64 / MIB as f64;
    assert!(
        (got - host.2 as f64).abs() <= 128.0,
        "host compute {got:.2} vs {}",
        host.2
    );
}

// --fit dry runs use load_mode none: CPU weights are copied (Host model column).
const COMMON: &str = "-m x -c 65536 -lm none";

#[test]
fn baseline_default_split_by_free_memory_with_pipeline_parallelism() {
    // 23475 / 12275 MiB free at load → layers 0..32 on CUDA0, 33..47 + output on CUDA1.
    let p = run(COMMON);
    assert!(p.pipeline_parallel);
    assert_breakdown(&p, &[(20860, 4224, 352), (9797, 1920, 629)], (315, 0, 276));
    assert_eq!(p.resolved.layer_device[32], DeviceId::Gpu(0));
    assert_eq!(p.resolved.layer_device[33], DeviceId::Gpu(1));
}

#[test]
fn all_experts_on_cpu_turns_pipeline_parallelism_off() {
    let p = run(&format!(
        r"{COMMON} -ot blk\.\d+\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU"
    ));
    assert!(!p.pipeline_parallel);
    assert_breakdown(&p, &[(664, 4224, 412), (617, 1920, 300)], (29691, 0, 72));
}

#[test]
fn no_layers_on_gpu_still_reserves_op_offload_compute_on_cuda0() {
    let p = run(&format!("{COMMON} -ngl 0"));
    assert_breakdown(&p, &[(0, 0, 620), (0, 0, 0)], (30973, 6144, 72));
}

#[test]
fn output_layer_alone_on_cuda1() {
    let p = run(&format!("{COMMON} -ngl 49 -ts 48,1"));
    assert!(p.pipeline_parallel);
    assert_breakdown(&p, &[(30342, 6144, 352), (315, 0, 316)], (315, 0, 276));
}

#[test]
fn fitparams_choice_parsed_from_its_printed_flags() {
    // fitparams.log: the flags --fit chose, as llama-fit-params printed them.
    let ot = r"blk\.28\.ffn_down.*=CUDA1,blk\.41\.ffn_(gate|gate_up|down).*=CPU,blk\.42\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.43\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.44\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.45\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.46\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.47\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU,blk\.48\.ffn_(up|down|gate_up|gate)_(ch|)exps=CPU";
    let p = run(&format!("-m x -c 65536 -ngl 49 -ts 29,20 -ot {ot}"));
    // t2_fit.log.gz final load (mmap): CUDA0 18128.12, CUDA1 8449.00, CPU_Mapped 30658.09;
    // KV 3712.00 / 2432.00; compute 412.25 / 300.75 / CUDA_Host 72.01.
    let mib2 = |b: u64| format!("{:.2}", b as f64 / MIB as f64);
    assert_eq!(mib2(p.gpus[0].model), "18128.12");
    assert_eq!(mib2(p.gpus[1].model), "8449.00");
    assert_eq!(mib2(p.host.cpu_mapped), "30658.09");
    assert_eq!(mib2(p.gpus[0].kv), "3712.00");
    assert_eq!(mib2(p.gpus[1].kv), "2432.00");
    // blk\.48\. matches nothing (48 layers: 0..47): reported, not silently ignored.
    assert_eq!(p.resolved.unused_overrides, vec![8]);
    assert!(p.warnings.iter().any(|w| w.contains(r"blk\.48\.")));
    assert_eq!(p.verdict, Verdict::Fits);
}

#[test]
fn everything_on_the_24gb_gpu_is_an_oom_at_load() {
    let p = run("-m x -c 65536 -sm none -mg 0");
    match p.verdict {
        Verdict::Oom {
            device,
            stage,
            short_by,
        } => {
            assert_eq!(device, DeviceId::Gpu(0));
            assert_eq!(stage, Stage::Load);
            assert!(short_by > 6000 * MIB, "{short_by}");
        }
        v => panic!("expected OOM, got {v:?}"),
    }
}
