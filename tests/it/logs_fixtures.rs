//! Log readers on the constructed fixtures (older wordings, OOMs at each stage, JSONL,
//! llama-bench outputs). See tests/fixtures/logs/README.md for where each format comes from.

use placer::logs::{parse_path, LogFormat, LogRun};
use std::path::PathBuf;

fn fixture(name: &str) -> LogRun {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    parse_path(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn old_build_wording_and_compute_oom() {
    let r = fixture("old_build_compute_oom.log");
    assert_eq!(r.build.as_deref(), Some("b3427 (b5e9546)"));
    assert_eq!(
        r.model_path.as_deref(),
        Some("/models/llama-70b-q4_k_m.gguf")
    );
    assert_eq!(r.layers_offloaded, Some((78, 81)));
    assert_eq!(r.buffers.model.get("CPU"), Some(&22994.45));
    assert_eq!(r.buffers.model.get("CUDA0"), Some(&12633.25));
    assert_eq!(r.buffers.model.get("CUDA1"), Some(&8652.0));
    assert_eq!(r.buffers.kv.get("CUDA_Host"), Some(&64.0));
    assert_eq!(r.buffers.kv.get("CUDA0"), Some(&1472.0));
    assert_eq!(r.kv_size_mib, Some(2560.0));
    assert_eq!(
        (r.n_ctx, r.n_batch, r.n_ubatch),
        (Some(8192), Some(2048), Some(512))
    );
    assert_eq!(r.flash_attn.as_deref(), Some("disabled"));
    assert_eq!(r.type_k.as_deref(), Some("f16"));
    assert_eq!(r.pipeline_parallel, Some(true));
    assert_eq!(r.gpus.len(), 2);
    assert_eq!(r.oom.len(), 1, "{:?}", r.oom);
    let o = &r.oom[0];
    assert_eq!(
        (o.device.as_deref(), o.bytes, o.stage.as_str()),
        (Some("CUDA0"), Some(9332334592), "compute")
    );
    assert!(!r.truncated);
}

#[test]
fn bracketed_server_prefix_kv_oom_and_failed_fit() {
    let r = fixture("server_bracket_kv_oom.log");
    assert_eq!(r.build.as_deref(), Some("b5913 (6c9ee3b1)"));
    assert_eq!(r.free_at_load.get("CUDA0"), Some(&22850.0));
    assert_eq!(
        r.model_path.as_deref(),
        Some("/models/Qwen3-30B-A3B-Q4_K_M.gguf")
    );
    assert_eq!(r.buffers.model.get("CUDA0"), Some(&17524.43));
    assert_eq!(
        (r.n_seq_max, r.n_ctx, r.n_ctx_seq),
        (Some(4), Some(131072), Some(131072))
    );
    assert_eq!(
        (r.flash_attn.as_deref(), r.kv_unified),
        (Some("enabled"), Some(true))
    );
    assert_eq!(
        (r.type_k.as_deref(), r.type_v.as_deref()),
        (Some("f16"), Some("f16"))
    );
    assert_eq!(r.fit_seconds, Some(0.41));
    assert!(r
        .fit_result
        .as_deref()
        .unwrap()
        .starts_with("failed: n_gpu_layers already set"));
    assert_eq!(r.oom.len(), 1, "{:?}", r.oom);
    let o = &r.oom[0];
    assert_eq!(
        (o.device.as_deref(), o.bytes, o.stage.as_str()),
        (Some("CUDA0"), Some(12884901888), "kv")
    );
    assert!(!r.truncated);
}

#[test]
fn load_oom_on_second_gpu() {
    let r = fixture("load_oom.log");
    assert_eq!(r.oom.len(), 1, "{:?}", r.oom);
    let o = &r.oom[0];
    assert_eq!(
        (o.device.as_deref(), o.bytes, o.stage.as_str()),
        (Some("CUDA1"), Some(13633060864), "load")
    );
    assert_eq!(
        r.gpus.get("CUDA1").map(|g| g.description.as_str()),
        Some("NVIDIA GeForce RTX 5070 Ti")
    );
    assert_eq!(r.gpus.get("CUDA1").and_then(|g| g.vram_mib), Some(16302.0));
    assert_eq!(r.free_at_load.get("CUDA1"), Some(&12311.0));
    assert!(!r.truncated);
}

#[test]
fn runtime_oom_docker_prefix_iswa_kv_summed() {
    let r = fixture("runtime_oom.log");
    assert_eq!(r.build.as_deref(), Some("b6800 (a1b2c3d4)"));
    // iSWA prints two caches on the same device: the KV buffer is their sum.
    assert_eq!(r.buffers.kv.get("CUDA0"), Some(&3096.0));
    assert_eq!(r.kv_size_mib, Some(3096.0));
    assert_eq!(r.buffers.compute.get("CUDA0"), Some(&8430.0));
    assert_eq!(r.graph_nodes, Some((1352, 1352)));
    assert_eq!(r.graph_splits, Some((2, 2)));
    assert_eq!(r.oom.len(), 1, "{:?}", r.oom);
    assert_eq!(
        (r.oom[0].device.as_deref(), r.oom[0].stage.as_str()),
        (Some("CUDA0"), "runtime")
    );
    assert_eq!(r.prompt_tps, None, "progress lines are not timings");
}

#[test]
fn jsonl_log_with_json_breakdown() {
    let r = fixture("server_jsonl.log");
    assert_eq!(r.format, LogFormat::Jsonl);
    assert_eq!(r.build.as_deref(), Some("b7100 (0badc0de)"));
    assert_eq!(r.buffers.model.get("CUDA0"), Some(&17524.43));
    assert_eq!((r.n_ctx, r.n_ubatch), (Some(32768), Some(1024)));
    assert_eq!(r.buffers.kv.get("CUDA0"), Some(&3072.0));
    assert_eq!(r.buffers.compute.get("CUDA0"), Some(&500.5));
    assert_eq!((r.prompt_tokens, r.prompt_tps), (Some(3000), Some(2000.0)));
    assert_eq!((r.gen_tokens, r.gen_tps), (Some(256), Some(128.0)));
    // The JSON rows replace the text table printed just before them (same data).
    assert_eq!(r.breakdown.len(), 2);
    let g = &r.breakdown[0];
    assert_eq!(
        (g.name.as_str(), g.free, g.self_, g.unaccounted),
        ("CUDA0", Some(1900.0), 21097.0, Some(1083.0))
    );
    assert_eq!(r.breakdown[1].compute, 34.0);
    assert!(!r.truncated);
}

#[test]
fn pipeline_retry_is_not_an_oom() {
    let r = fixture("pipeline_retry.log");
    assert!(r.oom.is_empty(), "{:?}", r.oom);
    assert_eq!(r.pipeline_parallel, Some(false));
    assert!(
        r.warnings.iter().any(|w| w.contains("retried without")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.buffers.compute.get("CUDA1"), Some(&1937.18));
    assert!(!r.truncated);
}

#[test]
fn bench_markdown_read_from_the_row_end() {
    let r = fixture("bench.md");
    assert_eq!(r.format, LogFormat::BenchMarkdown);
    assert_eq!(r.build.as_deref(), Some("b7302 (8f1d81a0)"));
    assert_eq!(r.bench.len(), 3);
    let b = &r.bench[2];
    assert_eq!(
        (b.test.as_str(), b.n_gen, b.n_depth, b.avg_ts, b.stddev_ts),
        ("tg128 @ d8192", 128, 8192, 33.90, Some(0.30))
    );
    assert_eq!(r.bench[0].n_ubatch, Some(2048));
    assert_eq!(r.bench[0].overrides.as_deref(), Some("exps=CPU"));
    assert_eq!((r.prompt_tokens, r.prompt_tps), (Some(2048), Some(911.52)));
    assert_eq!(r.gen_tps, Some(38.07));
}

#[test]
fn bench_csv_json_jsonl() {
    let c = fixture("bench.csv");
    assert_eq!(c.format, LogFormat::BenchCsv);
    assert_eq!(c.build.as_deref(), Some("b7302 (8f1d81a0)"));
    assert_eq!((c.prompt_tps, c.gen_tps), (Some(4654.55), Some(150.59)));
    assert_eq!(c.bench[0].tensor_split.as_deref(), Some("0.60/0.40"));
    assert_eq!(c.bench[0].flash_attn.as_deref(), Some("auto"));
    assert_eq!(c.model_path.as_deref(), Some("/tmp/q3moe.gguf"));
    let j = fixture("bench.json");
    assert_eq!(j.format, LogFormat::BenchJson);
    assert_eq!((j.gen_tps, j.gen_tokens), (Some(150.59), Some(128)));
    assert_eq!(j.bench[0].type_k.as_deref(), Some("q8_0"));
    assert_eq!(j.bench[0].flash_attn.as_deref(), Some("enabled"));
    let l = fixture("bench.jsonl");
    assert_eq!(l.format, LogFormat::BenchJson);
    assert_eq!((l.prompt_tps, l.gen_tps), (Some(4654.55), Some(150.59)));
    assert_eq!(
        l.build.as_deref(),
        None,
        "JSONL rows carry the build per row only"
    );
}
