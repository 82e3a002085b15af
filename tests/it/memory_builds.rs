//! Per-build memory rules (`memory::rules`, docs/memory-model.md §5.1) against what the users
//! measured on their own build (b8022, docs/llama-builds.md "Nearest to b8022"): the held-out
//! checks the reference tree's rules missed.
//!
//! - GLM-4.7-Flash Q8_0, layers 0–32 on the 4090 and 33–46 on the 5070 Ti by `-ot`, 128K context,
//!   `-ub 1024`: their CUDA0 compute buffer was 897 MiB (the reference rules predict 432).
//! - gpt-oss-120b, 13 + 6 layers with the other experts on the CPU, `-c 10240 -b 512 -ub 512`
//!   (their benchmark profile): it did not survive on the 5070 Ti (13 + 5 did): `-fa auto`
//!   turns flash attention off for that split (`memory::compute::fa_auto_mismatch`).
//! - GLM-4.7-Flash Q4_K_M: their model buffers were 17,285 MiB.

use placer::calibration::Calibration;
use placer::check::{check_for_build, CheckReport, Workload};
use placer::host::{default_host, DeviceId};
use placer::launch::{parse_args, Tool};
use placer::memory::{rules_for, Verdict};
use placer::units::mib;

const GLM_33_14: &str = r"-m glm-q8 -c 131072 -b 2048 -ngl 99 -np 1 -ot blk\.([0-9]|[12][0-9]|3[0-2])\.=CUDA0,blk\.(3[3-9]|4[0-6])\.=CUDA1";
const OSS_13_6: &str = r"-m gpt-oss-120b -c 10240 -b 512 -ub 512 -ngl 99 -np 1 --fit off -ot blk\.([0-9]|1[0-2])\.=CUDA0,blk\.(1[3-8])\.=CUDA1,exps=CPU";
const OSS_13_5: &str = r"-m gpt-oss-120b -c 10240 -b 512 -ub 512 -ngl 99 -np 1 --fit off -ot blk\.([0-9]|1[0-2])\.=CUDA0,blk\.(1[3-7])\.=CUDA1,exps=CPU";

fn check(build: u32, cmd: &str) -> CheckReport {
    let argv: Vec<String> = cmd.split_whitespace().map(String::from).collect();
    let cfg = parse_args(Tool::Server, &argv).unwrap();
    let g = placer::catalog::load_model(&cfg.model, None).unwrap();
    let a = placer::anatomy::from_gguf(&g).unwrap();
    let selected = placer::builds::for_build(build).unwrap();
    check_for_build(
        &a,
        &cfg,
        &placer::host_model::HostModel::resolve(&default_host(), &Calibration::shipped()),
        Vec::new(),
        Workload::default(),
        rules_for(selected.facts.build),
    )
    .unwrap()
}

fn compute_mib(r: &CheckReport, gpu: usize) -> f64 {
    mib(r.prediction.gpus[gpu].compute)
}

#[test]
fn glm_q8_ub1024_cuda0_compute_is_the_users_897() {
    let cmd = format!("{GLM_33_14} -ub 1024");
    let old = check(8022, &cmd);
    let c0 = compute_mib(&old, 0);
    assert!(
        (c0 - 897.0).abs() <= 0.20 * 897.0,
        "b8022 CUDA0 compute {c0:.0} MiB, the users logged 897"
    );
    assert!(
        matches!(
            old.prediction.verdict,
            Verdict::Oom {
                device: DeviceId::Gpu(0),
                ..
            }
        ),
        "{}",
        old.verdict_text
    );
    assert!(old.prediction.gpus[0].total() > old.prediction.gpus[0].cap);
    // The reference rules (F16 mask input, one logit row): the 432 MiB that missed.
    let new = check(11434, &cmd);
    let n0 = compute_mib(&new, 0);
    assert!((n0 - 432.0).abs() < 10.0, "b11434 CUDA0 compute {n0:.0}");
    // b9093's tree has the same graph (memory::rules): the same prediction.
    assert_eq!(
        check(9093, &cmd).prediction.gpus[0].compute,
        old.prediction.gpus[0].compute
    );
}

/// The mask-cast phase grows with `-ub` (F32 copy + F16 cast + query working set, all ∝ ub).
#[test]
fn glm_q8_cast_phase_scales_with_ubatch() {
    let at = |ub: u32| compute_mib(&check(8022, &format!("{GLM_33_14} -ub {ub}")), 0);
    let (c512, c1024, c2048) = (at(512), at(1024), at(2048));
    let fixed = Calibration::shipped().compute.fixed_mib;
    let r1 = (c1024 - fixed) / (c512 - fixed);
    let r2 = (c2048 - fixed) / (c1024 - fixed);
    assert!(
        (r1 - 2.0).abs() < 0.05 && (r2 - 2.0).abs() < 0.05,
        "{c512:.0} {c1024:.0} {c2048:.0}"
    );
}

/// The users' 13 + 6 did not survive on the 5070 Ti, their 13 + 5 did. `-ot blk.13–18=CUDA1`
/// moves those layers' attention sinks off their `-ts` split device (CUDA0), so `-fa auto`
/// turns flash attention off (`memory::compute::fa_auto_mismatch`) and CUDA1 holds the F32
/// scores twice (split input + softmax result): 2 × 4·10240·512·64 B = 2,560 MiB. Measured on
/// b11434 CUDA with the same split (data/dryrun/2026-12-07-dryrun-b11434-v2.csv): CUDA0
/// 1,350.0 and CUDA1 2,585.6 MiB compute.
#[test]
fn gpt_oss_13_6_ooms_on_the_5070ti_and_13_5_fits() {
    for build in [8022, 11434] {
        let r = check(build, OSS_13_6);
        assert!(
            !r.prediction.shape.flash_attn,
            "b{build}: -fa auto resolves to off"
        );
        assert!(
            matches!(
                r.prediction.verdict,
                Verdict::Oom {
                    device: DeviceId::Gpu(1),
                    ..
                }
            ),
            "b{build}: {}",
            r.verdict_text
        );
        let c1 = compute_mib(&r, 1);
        assert!(
            (c1 - 2585.6).abs() <= 0.03 * 2585.6,
            "b{build} CUDA1 compute {c1:.0}"
        );
        assert!(
            r.prediction
                .warnings
                .iter()
                .any(|w| w.contains("-fa auto turns flash attention off")),
            "{:?}",
            r.prediction.warnings
        );
        let ok = check(build, OSS_13_5);
        assert!(ok.fits(), "b{build} 13+5: {}", ok.verdict_text);
    }
    // With -fa on the same split keeps flash attention, and the 5070 Ti is not over its cap.
    let on = check(8022, &format!("{OSS_13_6} -fa on"));
    assert!(on.prediction.shape.flash_attn);
    assert!(compute_mib(&on, 1) < 1000.0, "{}", compute_mib(&on, 1));
}

/// The users' own gpt-oss-120b section (`-ot blk.0–10=CUDA0, blk.11–13=CUDA1, exps=CPU`, `-ub
/// 2048`, 32K): the 33 GB compute buffer that failed at load on the GPU machine
/// (data/runs/2026-12-07-gptoss120b-h100emul-c32k-trial); the b11434 dry run of the same split
/// logged CUDA0 16,812.1 and CUDA1 33,046.5 MiB.
#[test]
fn gpt_oss_users_section_compute_is_the_33_gb_dry_run() {
    let r = check(
        11434,
        r"-m gpt-oss-120b -c 32768 -b 2048 -ub 2048 -ngl 99 -np 1 -ts 24000,12800 -ot blk\.([0-9]|10)\.=CUDA0,blk\.(1[1-3])\.=CUDA1,exps=CPU",
    );
    let (c0, c1) = (compute_mib(&r, 0), compute_mib(&r, 1));
    assert!((c0 - 16812.1).abs() <= 0.015 * 16812.1, "CUDA0 {c0:.0}");
    assert!((c1 - 33046.5).abs() <= 0.015 * 33046.5, "CUDA1 {c1:.0}");
}

/// llama-quantize's Q4_K_M choice (`src/llama-quant.cpp: llama_tensor_get_type_impl`) is the same
/// in the 0.3.17 and 0.3.36 trees, and the catalog's tensor table is what it picks; its weights
/// are 17,283.67 MiB, of which token_embd (170.16 MiB) stays on the CPU
/// (`src/llama-model.cpp: llama_model::load_tensors`: the input layer is always on the CPU).
/// The users' 17,285 MiB is the file's model buffers together (CUDA0 + CPU_Mapped).
#[test]
fn glm_q4_model_buffers_are_the_users_17285() {
    let r = check(
        8022,
        "-m glm-q4 -c 10240 -ngl 99 -sm none -mg 0 -np 1 --fit off",
    );
    let p = &r.prediction;
    let cuda0 = mib(p.gpus[0].model);
    let cpu = mib(p.host.cpu_mapped);
    let all = cuda0 + cpu;
    assert!(
        (all - 17285.0).abs() <= 0.005 * 17285.0,
        "CUDA0 {cuda0:.2} + CPU_Mapped {cpu:.2} = {all:.2} MiB"
    );
    assert!(
        (cpu - 170.16).abs() < 0.01,
        "token_embd on the CPU: {cpu:.2}"
    );
}
