//! Compute buffers the memory model is known to miss by more than the tests' tolerance, with the
//! bound the tests still hold them to (fraction of the logged compute buffer) and why. Shared by
//! tests/memory_reference_runs.rs and tests/calibrate_heldout.rs; written up in
//! docs/error-report.md ("Known gaps").
//!
//! Under-predictions (-ub 2048, llama-completion's 2048 rows of logits, the output on a GPU that
//! also runs MoE layers): logged − predicted = 137–143 MiB on glm-gpu24-c32k (one GPU, routed
//! experts of the last 16 layers on the CPU), glm-h200x2-c128k CUDA1 (aggressive and moderate)
//! and qwen3moe-h200x2-c128k CUDA1 (routed experts of CUDA1's first layers on the CPU); the same
//! flags on two virtual devices of one H200 (2026-12-04 c12–c15, glm-h200emul-c128k and
//! qwen3moe-h200emul-c128k CUDA1) log the very same buffers (1372.11 and 1350.14 MiB). The logged
//! buffer is the same at 32K and 128K (GLM: 1372.11 MiB both), so it is not the mask; it matches
//! three MoE intermediates of n_expert_used × n_ff_exp × n_ubatch F32 (both models: 6144 × 2048 ×
//! 4 B = 48 MiB each), left below the logits by the allocator. Runs with the same flags but the CPU
//! experts elsewhere (qwen3moe-gpu24-*, qwen3moe-emul-c128k) log logits + HID exactly, so the
//! condition is a fragmentation pattern of ggml-alloc, not yet modelled. The learned aggressive
//! margin (data/calibration.toml, 279 MiB) covers it; no run OOMed on it after call 5.
//!
//! Over-predictions (one GPU holding every layer and the output): gptoss20b-gpu24-c128k (-ub 512):
//! logged 404.00 MiB = logits + HID, predicted 553.32 (+ the 128.75 MiB F16 mask and the residual
//! set); gptoss20b-h200-gpu24-c128k (-ub 2048, call 9, run to settle this): logged 1616.00,
//! predicted 2186.13 (the 512 MiB mask at 2048 × 128K, and the residual set). So the testbed binary
//! (ggml 0.25.3) frees the mask before the logits at both ubatch sizes. The allocator dry runs of
//! the newer tree (llamacpp-internals.md §6.3, ggml 0.26.0, gpt-oss-120b shape at 128K: 544.02
//! MiB) keep it live; placer keeps that larger rule: it over-predicts on the older binary rather
//! than under-predict on current llama.cpp.
//!
//! gpt-oss-120b 32K (gptoss120b-h100emul-c32k-trial, -ub 2048, routed experts of 17–18 layers on
//! the CPU, output on CUDA1): CUDA0 logged 944.95 MiB, predicted 1116.80 (+18 %), the same
//! over-prediction on llama.cpp b11434 CUDA.
pub const KNOWN_COMPUTE_GAPS: &[(&str, &str, f64)] = &[
    ("glm-gpu24-c32k", "CUDA0", 0.12),
    ("glm-h200x2-c128k", "CUDA1", 0.12),
    ("qwen3moe-h200x2-c128k", "CUDA1", 0.12),
    ("glm-h200emul-c128k", "CUDA1", 0.12),
    ("qwen3moe-h200emul-c128k", "CUDA1", 0.12),
    ("gptoss20b-gpu24-c128k", "CUDA0", 0.40),
    ("gptoss20b-h200-gpu24-c128k", "CUDA0", 0.40),
    ("gptoss120b-h100emul-c32k-trial", "CUDA0", 0.20),
    // gpt-oss-120b 32K, 2026-12-07 c5 (the same profiles as c3 plus the `--fit` baselines): placer
    // over-predicts CUDA0's compute where CPU experts are op-offloaded — 1,116.80 / 944.95 MiB at
    // -ub 2048 (+18 %), 1,099.93 / 615.66 at --fit's -ub 512 (+79 %). The staging of the largest
    // CPU expert tensor it adds (memory/compute.rs) is more than llama.cpp reserves; on the safe
    // side (a profile is never called fitting that does not), not explained yet.
    ("gptoss120b-h100emul-c32k-trial-c5", "CUDA0", 0.80),
    // Qwen3-Coder-Next (qwen3next: gated delta net + attention every 4th layer), 128K trial of
    // 2026-12-07 c4: the recurrent layers' chunked graph is not modelled; placer is 14–16 % low
    // at -ub 2048 (1232.76 / 1456.02, 876.76 / 1020.04 MiB) and 28 % high for --fit's choice
    // (723.71 / 564.01); the b11434 and b8022 dry runs (tests/it/memory_dryruns.rs) show the
    // same gap.
    ("qwen3codernext-h100emul-c128k-trial", "CUDA0", 0.30),
    ("qwen3codernext-h100emul-c128k-trial", "CUDA1", 0.30),
    // GLM-4.7-Flash Q8_0 32K on the local GPU with an RPC CPU device listed (2026-12-07 c4,
    // -ub 2048, pipeline parallelism on because llama.cpp counts the RPC device): logged
    // 1016.16 MiB on CUDA0, predicted 896 (−12 %), host 672.22 vs 592.
    ("glm-h100-rpccpu-c32k-trial", "CUDA0", 0.15),
];

/// Runs whose start-up OOM the memory model does not predict, and why they are kept. None
/// now: the users' own gpt-oss-120b section (`-ot blk\.(1[1-3])\.=CUDA1` off the `-ts`
/// split), whose 33,046.51 MiB CUDA1 prompt buffer was the last one, is `-fa auto` turning flash
/// attention off (`memory::compute::fa_auto_mismatch`, tests/it/memory_builds.rs).
pub const KNOWN_OOM_MISSES: &[&str] = &[];

/// The known gap of this device of this scenario (matched on the scenario's end, the date
/// prefix aside), if any.
#[allow(dead_code)]
pub fn known_gap(scenario: &str, device: &str) -> Option<f64> {
    KNOWN_COMPUTE_GAPS
        .iter()
        .find(|g| scenario.ends_with(g.0) && device == g.1)
        .map(|g| g.2)
}
