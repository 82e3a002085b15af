//! Placement and cache rules on catalog headers, against the numbers of
//! docs/memory-model.md §4–§5 (measured with the reference tree's allocator).

use placer::anatomy::{from_gguf, Anatomy, LayerRef, Role};
use placer::calibrate::Calibration;
use placer::host::{DeviceId, Host};
use placer::launch::{parse_args, Tool};
use placer::memory::{predict, Prediction};
use placer::units::{mib, MIB};

fn anatomy(id: &str) -> Anatomy {
    from_gguf(&placer::catalog::load_model(id, None).unwrap()).unwrap()
}

fn big_host(n: usize) -> Host {
    let mut h = Host::by_name_or_path("testbed-h200x2-emulated").unwrap();
    h.gpus.truncate(n.max(1));
    for g in &mut h.gpus {
        g.usable_mib = 140_000;
    }
    h
}

fn run(a: &Anatomy, tool: Tool, args: &str, gpus: usize) -> Prediction {
    let argv: Vec<String> = args.split_whitespace().map(String::from).collect();
    let cfg = parse_args(tool, &argv).unwrap();
    predict(a, &cfg, &big_host(gpus), &Calibration::shipped()).unwrap()
}

fn kv_mib(p: &Prediction) -> f64 {
    mib(p.gpus.iter().map(|g| g.kv).sum::<u64>() + p.host.kv)
}

fn rs_mib(p: &Prediction) -> f64 {
    mib(p.gpus.iter().map(|g| g.rs).sum::<u64>() + p.host.rs)
}

#[test]
fn mla_caches_k_only() {
    let a = anatomy("glm-q4");
    // §5.4: 47 × 32768 × 576 × 2 B = 1692.00 MiB f16; q8_0 898.90 MiB.
    assert_eq!(
        format!("{:.2}", kv_mib(&run(&a, Tool::Cli, "-c 32768", 1))),
        "1692.00"
    );
    let q8 = run(&a, Tool::Cli, "-c 32768 -ctk q8_0 -ctv q8_0", 1);
    // On CUDA, 576 % 512 ≠ 0 adds a row of padding per tensor (ggml_backend_cuda_buffer_type_get_alloc_size).
    let raw = 47.0 * 32768.0 * 576.0 * 34.0 / 32.0 / MIB as f64;
    assert!((kv_mib(&q8) - raw).abs() < 0.1, "{} vs {raw}", kv_mib(&q8));
    // 898.88 MiB (llamacpp-internals.md prints 898.90 for its GLM-like dry-run shape).
    assert_eq!(format!("{raw:.2}"), "898.88");
}

#[test]
fn sliding_window_cache_sizes() {
    let a = anatomy("gpt-oss-120b");
    // §5.3: -c 32768 -ub 512: SWA 768 cells on 18 layers (27 MiB) + 18 full layers (1152 MiB).
    assert_eq!(kv_mib(&run(&a, Tool::Cli, "-c 32768", 1)), 1179.0);
    // -ub 2048 → SWA pad(128 + 2048, 256) = 2304 cells: +54 MiB.
    assert_eq!(kv_mib(&run(&a, Tool::Cli, "-c 32768 -ub 2048", 1)), 1233.0);
    // --swa-full: every layer 32768 cells.
    assert_eq!(
        kv_mib(&run(&a, Tool::Cli, "-c 32768 --swa-full", 1)),
        2304.0
    );
}

#[test]
fn hybrid_recurrent_state_scales_with_sequences_not_context() {
    let a = anatomy("qwen3-next");
    // §5.6: -np 4: 36 layers × 4 × (96 KiB + 2 MiB) = 301.50 MiB; KV 12 × 32768 × 2 × 512 × 2 B = 768 MiB.
    let p = run(&a, Tool::Cli, "-c 32768 -np 4", 1);
    assert_eq!(rs_mib(&p), 301.5);
    assert_eq!(kv_mib(&p), 768.0);
    let p = run(&a, Tool::Cli, "-c 65536 -np 4", 1);
    assert_eq!(rs_mib(&p), 301.5);
    assert_eq!(kv_mib(&p), 1536.0);
    assert_eq!(rs_mib(&run(&a, Tool::Cli, "-c 32768", 1)), 301.5 / 4.0);
}

#[test]
fn context_bookkeeping() {
    let a = anatomy("qwen3-30b-a3b-q8");
    let s = run(&a, Tool::Cli, "-c 1000", 1).shape;
    assert_eq!(
        (s.n_ctx, s.n_ctx_seq, s.n_stream, s.n_batch, s.n_ubatch),
        (1024, 1024, 1, 1024, 512)
    );
    // non-unified -np 3: n_ctx_seq = pad(8192/3, 256) = 2816, n_ctx = 8448.
    let s = run(&a, Tool::Cli, "-c 8192 -np 3", 1).shape;
    assert_eq!((s.n_ctx, s.n_ctx_seq, s.n_stream), (8448, 2816, 3));
    // llama-server -np auto: 4 slots, unified, logits reserved for 4 outputs.
    let s = run(&a, Tool::Server, "-c 8192", 1).shape;
    assert_eq!(
        (s.n_seq, s.n_stream, s.n_ctx_seq, s.n_outputs_max),
        (4, 1, 8192, 4)
    );
    // -c 0: the training context.
    assert_eq!(run(&a, Tool::Cli, "-c 0", 1).shape.n_ctx, a.hp.n_ctx_train);
}

#[test]
fn layer_split_rules() {
    let a = anatomy("qwen3-30b-a3b-q8");
    // §4.2: -ngl 99 -ts 1,1 → 49 slots, il/49 < 0.5 → 0..24 on CUDA0.
    let p = run(&a, Tool::Cli, "-c 4096 -ts 1,1", 2);
    assert_eq!(p.resolved.layer_device[24], DeviceId::Gpu(0));
    assert_eq!(p.resolved.layer_device[25], DeviceId::Gpu(1));
    assert_eq!(p.resolved.layer_device[48], DeviceId::Gpu(1));
    // -ngl 10: output + last 9 repeating layers on the GPU, the first ones on the CPU.
    let p = run(&a, Tool::Cli, "-c 4096 -ngl 10", 1);
    assert_eq!(p.resolved.layer_device[38], DeviceId::Cpu);
    assert_eq!(p.resolved.layer_device[39], DeviceId::Gpu(0));
    assert_eq!(p.host.kv, 39 * 4096 * 2048);
    // -sm none -mg 1: everything on CUDA1.
    let p = run(&a, Tool::Cli, "-c 4096 -sm none -mg 1", 2);
    assert!(p
        .resolved
        .layer_device
        .iter()
        .all(|d| *d == DeviceId::Gpu(1)));
    assert_eq!(p.gpus[0].model, 0);
    // token_embd always on the CPU.
    let te = a
        .tensors
        .iter()
        .position(|t| t.role == Role::TokenEmbd)
        .unwrap();
    assert_eq!(p.resolved.tensor_device[te], DeviceId::Cpu);
}

#[test]
fn kv_follows_the_layer_not_the_override() {
    let a = anatomy("qwen3-30b-a3b-q8");
    // Move every weight of layer 0 to CUDA1: its KV stays on CUDA0 (§4.5).
    let base = run(&a, Tool::Cli, "-c 4096 -ts 1,1", 2);
    let moved = run(&a, Tool::Cli, r"-c 4096 -ts 1,1 -ot blk\.0\.=CUDA1", 2);
    assert_eq!(base.gpus[0].kv, moved.gpus[0].kv);
    assert!(moved.gpus[1].model > base.gpus[1].model);
    assert!(
        base.pipeline_parallel && !moved.pipeline_parallel,
        "any -ot turns pipeline parallelism off"
    );
    // -nkvo: all KV on the CPU.
    let p = run(&a, Tool::Cli, "-c 4096 -nkvo", 2);
    assert_eq!(p.gpus.iter().map(|g| g.kv).sum::<u64>(), 0);
    assert_eq!(p.host.kv, 48 * 4096 * 2048);
}

#[test]
fn tied_embeddings_are_duplicated_on_the_output_device() {
    let mut a = anatomy("qwen3-30b-a3b-q8");
    let with_output = run(&a, Tool::Cli, "-c 4096", 1);
    let out_bytes = a
        .tensors
        .iter()
        .find(|t| t.role == Role::Output)
        .unwrap()
        .nbytes;
    let embd_bytes = a
        .tensors
        .iter()
        .find(|t| t.role == Role::TokenEmbd)
        .unwrap()
        .nbytes;
    a.tensors.retain(|t| t.role != Role::Output);
    let tied = run(&a, Tool::Cli, "-c 4096", 1);
    assert_eq!(tied.resolved.tied_output_device, Some(DeviceId::Gpu(0)));
    // Same shape and type here, so the GPU buffer is unchanged and token_embd stays on CPU.
    assert_eq!(out_bytes, embd_bytes);
    assert_eq!(tied.gpus[0].model, with_output.gpus[0].model);
    assert_eq!(tied.host.cpu_weights, embd_bytes);
}

#[test]
fn nextn_blocks_are_skipped() {
    let mut a = anatomy("qwen3-30b-a3b-q8");
    let full = run(&a, Tool::Cli, "-c 4096", 1);
    a.hp.n_nextn = 1;
    let skipped = run(&a, Tool::Cli, "-c 4096", 1);
    let last: u64 = a
        .tensors
        .iter()
        .filter(|t| t.layer == LayerRef::Block(47))
        .map(|t| t.nbytes)
        .sum();
    assert!(full.gpus[0].model - skipped.gpus[0].model >= last);
    // and layer 47 has no KV (the NextN block is outside the main context's cache).
    assert_eq!(full.gpus[0].kv - skipped.gpus[0].kv, 4096 * 2048);
}

#[test]
fn row_and_tensor_split_modes_are_refused_with_a_reason() {
    let a = anatomy("qwen3-30b-a3b-q8");
    let cfg = parse_args(Tool::Cli, &["-sm".into(), "row".into()]).unwrap();
    let e = predict(&a, &cfg, &big_host(2), &Calibration::shipped())
        .unwrap_err()
        .to_string();
    assert!(e.contains("split buffers"), "{e}");
}

/// llamacpp-internals.md §6.3 (dry runs of the reference tree's allocator on one H100, all
/// layers on the GPU, n_seq 1, n_outputs_max = n_batch): CUDA0 compute buffer, MiB.
#[test]
fn single_gpu_compute_buffers_from_the_reference_table() {
    let rows = [
        ("qwen3-30b-a3b-q8", "-c 32768", 348.77),
        ("qwen3-30b-a3b-q8", "-c 32768 -fa off", 2166.01),
        ("glm-q4", "-c 32768", 350.51),
        ("glm-q4", "-c 131072", 446.51),
        ("gpt-oss-120b", "-c 32768", 448.02),
        ("gpt-oss-120b", "-c 131072", 544.02),
        ("gpt-oss-120b", "-c 131072 -ub 2048", 2182.09),
    ];
    for (id, args, want) in rows {
        let a = anatomy(id);
        let p = run(&a, Tool::Cli, args, 1);
        let got = mib(p.gpus[0].compute);
        eprintln!("{id} {args}: predicted {got:.2} MiB, table {want:.2}");
        assert!(
            (got - want).abs() <= 128f64.max(0.015 * want),
            "{id} {args}: {got:.2} vs {want:.2}"
        );
    }
}
