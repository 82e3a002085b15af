//! Log readers on the real llama.cpp logs in tests/fixtures/reference-runs (and data/runs when present).
//! Every asserted value was read off the log by hand (`zcat t2_fit.log.gz | grep …`).

use placer::logs::{parse_path, parse_paths, LogFormat, LogRun};
use std::path::PathBuf;

fn reference_dir() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2"),
    ];
    candidates.into_iter().find(|p| p.is_dir())
}

fn load(name: &str) -> Option<LogRun> {
    let Some(dir) = reference_dir() else {
        eprintln!("SKIPPED: tests/fixtures/reference-runs not present on this machine");
        return None;
    };
    Some(parse_path(&dir.join(name)).expect("reference log parses"))
}

#[test]
fn fit_run_final_load_not_the_trials() {
    let Some(r) = load("t2_fit.log.gz") else {
        return;
    };
    assert_eq!(r.format, LogFormat::Text);
    assert!(!r.truncated, "{:?}", r.warnings);
    assert_eq!(r.model_path.as_deref(), Some("/tmp/q3moe.gguf"));
    assert_eq!(
        r.model_info.get("arch").map(String::as_str),
        Some("qwen3moe")
    );
    assert_eq!(
        r.model_info.get("file size").map(String::as_str),
        Some("30.25 GiB (8.51 BPW)")
    );
    assert_eq!(
        (r.n_ctx, r.n_ctx_seq, r.n_seq_max),
        (Some(65536), Some(65536), Some(1))
    );
    assert_eq!(
        (r.n_batch, r.n_ubatch, r.n_outputs_max),
        (Some(2048), Some(512), Some(2048))
    );
    assert_eq!(
        r.flash_attn.as_deref(),
        Some("enabled"),
        "auto resolved by resolve_fused_ops"
    );
    assert_eq!(
        (r.type_k.as_deref(), r.type_v.as_deref()),
        (Some("f16"), Some("f16"))
    );
    assert_eq!(r.kv_unified, Some(false));
    assert_eq!(r.layers_offloaded, Some((49, 49)));
    assert_eq!(r.load_mode.as_deref(), Some("mmap"));
    // 14 dry-run loads by --fit (all buffers 0.00 MiB) before the real one.
    assert_eq!(r.fit_trials, 14);
    assert_eq!(r.fit_seconds, Some(4.61));
    assert_eq!(
        r.fit_result.as_deref(),
        Some("fitted: CUDA0 29 layers (1 overflowing), CUDA1 20 layers (8 overflowing)")
    );
    // Free memory as the real load saw it (the first trial saw 23475 / 12275).
    assert_eq!(r.free_at_load.get("CUDA0"), Some(&23473.0));
    assert_eq!(r.free_at_load.get("CUDA1"), Some(&12273.0));
    let b = &r.buffers;
    assert_eq!(b.model.get("CPU_Mapped"), Some(&30658.09));
    assert_eq!(b.model.get("CUDA0"), Some(&18128.12));
    assert_eq!(b.model.get("CUDA1"), Some(&8449.00));
    assert_eq!(b.kv.get("CUDA0"), Some(&3712.0));
    assert_eq!(b.kv.get("CUDA1"), Some(&2432.0));
    assert_eq!(b.compute.get("CUDA0"), Some(&412.25));
    assert_eq!(b.compute.get("CUDA1"), Some(&300.75));
    assert_eq!(b.compute.get("CUDA_Host"), Some(&72.01));
    assert_eq!(b.output.get("CUDA_Host"), Some(&0.58));
    assert!(b.rs.is_empty());
    assert_eq!(r.kv_size_mib, Some(6144.0));
    assert_eq!(r.graph_nodes, Some((3030, 3030)));
    assert_eq!(r.graph_splits, Some((32, 19)));
    assert_eq!(r.pipeline_parallel, Some(false));
    // Overrides of the real load only: 1 to CUDA1, 21 to CUDA_Host (CPU rules with mmap).
    assert_eq!(r.overrides.len(), 22);
    assert_eq!(
        r.overrides
            .get("blk.28.ffn_down_exps.weight")
            .map(String::as_str),
        Some("CUDA1")
    );
    assert_eq!(
        r.overrides
            .get("blk.41.ffn_gate_exps.weight")
            .map(String::as_str),
        Some("CUDA_Host")
    );
    assert_eq!(
        r.overrides.values().filter(|v| *v == "CUDA_Host").count(),
        21
    );
    assert_eq!(r.layer_device.len(), 49);
    assert_eq!(r.layer_device.get(&28).map(String::as_str), Some("CUDA0"));
    assert_eq!(r.layer_device.get(&29).map(String::as_str), Some("CUDA1"));
    assert_eq!(r.gpus.get("CUDA1").and_then(|g| g.vram_mib), Some(143155.0));
    // Exit breakdown, not one printed during the fit.
    let cuda0 = r
        .breakdown
        .iter()
        .find(|x| x.name == "CUDA0")
        .expect("CUDA0 row");
    assert_eq!(cuda0.description.as_deref(), Some("H200"));
    assert_eq!(
        (cuda0.total, cuda0.free, cuda0.self_),
        (Some(143155.0), Some(1041.0), 22252.0)
    );
    assert_eq!(
        (cuda0.model, cuda0.context, cuda0.compute, cuda0.unaccounted),
        (18128.0, 3712.0, 412.0, Some(119862.0))
    );
    let cuda1 = r
        .breakdown
        .iter()
        .find(|x| x.name == "CUDA1")
        .expect("CUDA1 row");
    assert_eq!(
        (cuda1.free, cuda1.self_, cuda1.model),
        (Some(913.0), 11181.0, 8448.0)
    );
    let host = r
        .breakdown
        .iter()
        .find(|x| x.name == "Host")
        .expect("Host row");
    assert_eq!(
        (host.self_, host.model, host.context, host.compute),
        (30730.0, 30658.0, 0.0, 72.0)
    );
    assert_eq!((r.prompt_tokens, r.prompt_tps), (Some(450), Some(2657.58)));
    assert_eq!((r.gen_tokens, r.gen_tps), (Some(127), Some(149.48)));
    assert!(r.oom.is_empty());
}

#[test]
fn cpu_moe_run() {
    let Some(r) = load("t3_cmoe.log.gz") else {
        return;
    };
    assert!(!r.truncated);
    assert_eq!(r.fit_trials, 0);
    assert_eq!(r.fit_seconds, None);
    assert_eq!(r.free_at_load.get("CUDA0"), Some(&23475.0));
    assert_eq!(r.free_at_load.get("CUDA1"), Some(&12275.0));
    assert_eq!(r.buffers.model.get("CUDA0"), Some(&664.67));
    assert_eq!(r.buffers.model.get("CUDA1"), Some(&617.43));
    assert_eq!(r.buffers.model.get("CPU_Mapped"), Some(&30658.09));
    assert_eq!(r.buffers.kv.get("CUDA0"), Some(&4224.0));
    assert_eq!(r.buffers.kv.get("CUDA1"), Some(&1920.0));
    assert_eq!(r.graph_splits, Some((162, 98)));
    // --cpu-moe: 48 layers × 3 expert tensors.
    assert_eq!(r.overrides.len(), 144);
    assert!(r.overrides.keys().all(|k| k.contains("_exps")));
    let cuda0 = r.breakdown.iter().find(|x| x.name == "CUDA0").unwrap();
    assert_eq!(
        (cuda0.free, cuda0.self_, cuda0.unaccounted),
        (Some(17989.0), 5300.0, Some(119865.0))
    );
    assert_eq!((r.prompt_tokens, r.prompt_tps), (Some(450), Some(542.87)));
    assert_eq!((r.gen_tokens, r.gen_tps), (Some(127), Some(36.22)));
}

#[test]
fn fit_params_output() {
    let Some(r) = load("fitparams.log") else {
        return;
    };
    let fit = r.fit_result.expect("fit-params line");
    assert!(fit.starts_with("-c 65536 -ngl 49 -ts 29,20 -ot "), "{fit}");
}

#[test]
fn ballast_file_is_not_a_log() {
    let Some(dir) = reference_dir() else { return };
    let err = parse_path(&dir.join("ballast.txt")).unwrap_err();
    assert!(err.to_string().contains("not a llama.cpp log"), "{err}");
}

/// Every log the testbed stored in data/runs parses without error (the data grows over time).
#[test]
fn data_runs_logs_parse() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let logs: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            // call.log / call-c4.log: the testbed runner's own output (testbed/MANIFEST.md).
            !placer::calibrate::records::is_runner_log(&n)
                && (n.ends_with(".log") || n.ends_with(".log.gz") || n == "log.txt.gz")
        })
        .collect();
    eprintln!("data/runs: {} log files", logs.len());
    for pf in parse_paths(&logs, |_| {}) {
        let run = pf
            .result
            .unwrap_or_else(|e| panic!("{}: {e}", pf.path.display()));
        assert!(
            run.model_path.is_some() || !run.bench.is_empty() || run.fit_result.is_some(),
            "{}",
            pf.path.display()
        );
    }
}

fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
