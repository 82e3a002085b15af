//! The GPU machine's RPC runs (docs/rpc.md, "On the GPU machine"): an H100 client and
//! `rpc-server -d CPU` on the same machine, GLM-4.7-Flash Q8_0 at 32K. The logs are kept in
//! data/logs (stopped runs: no exit breakdown), the host files and sections in data/runs.

use placer::calibration::Calibration;
use placer::check::{check_with, Workload};
use placer::host::Host;
use placer::host_model::HostModel;
use placer::launch::from_section;
use placer::logs::parse_path;
use placer::units::MIB;
use std::path::PathBuf;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// placer's check of section `section` of the run's models.conf, with its host file and
/// `workload`.
fn predict(run: &str, section: &str, workload: Workload) -> placer::check::CheckReport {
    let dir = repo("data/runs").join(run);
    let host = Host::load(&dir.join("host.toml")).unwrap();
    let g = placer::catalog::load_model("glm-q8", None).unwrap();
    let a = placer::anatomy::from_gguf(&g).unwrap();
    let conf = std::fs::read_to_string(dir.join("models.conf")).unwrap();
    let secs = placer::modelsconf::read::parse(&conf);
    let s = secs
        .iter()
        .find(|s| s.name == section)
        .expect("the section");
    let p = from_section(s).unwrap();
    let hm = HostModel::resolve(&host, &Calibration::shipped());
    check_with(&a, &p.config, &hm, p.warnings, workload).unwrap()
}

/// 2026-12-07 c5, placer's aggressive plan for a 24,000 MiB GPU, a 4 GiB client RAM and a 40 GiB
/// RPC CPU: layers 0–9 on RPC0, 10–46 on CUDA0, some experts in the client's RAM. It loaded and
/// generated; the weights and KV llama.cpp allocated on every device, the RPC one included, are
/// placer's to the MiB (compute within 10 %).
#[test]
fn a_model_across_the_gpu_and_an_rpc_cpu_loads_with_the_predicted_buffers() {
    let log = parse_path(&repo(
        "data/logs/2026-12-07-glm-h100-rpccpu-c32k-c5-aggressive-stopped.txt.gz",
    ))
    .unwrap();
    let r = predict(
        "2026-12-07-glm-h100-rpccpu-c32k-trial-c5",
        "glm-rpc-aggressive",
        Workload::default(),
    );
    let mib = |b: u64| b as f64 / MIB as f64;
    let rpc = "RPC0[127.0.0.1:50052]";
    let rows = [
        (rpc, &r.prediction.gpus[0]),
        ("CUDA0", &r.prediction.gpus[1]),
    ];
    for (name, g) in rows {
        let model = log.buffers.model[name];
        let kv = log.buffers.kv[name];
        let compute = log.buffers.compute[name];
        assert!(
            (mib(g.model) - model).abs() < 1.0,
            "{name} model {} vs {model}",
            mib(g.model)
        );
        assert!(
            (mib(g.kv) - kv).abs() < 1.0,
            "{name} KV {} vs {kv}",
            mib(g.kv)
        );
        assert!(
            (mib(g.compute) - compute).abs() / compute < 0.10,
            "{name} compute {} vs {compute}",
            mib(g.compute)
        );
    }
    let host = log.buffers.model["CUDA_Host"];
    let h = &r.prediction.host;
    assert!(
        (mib(h.cpu_model) - host).abs() < 1.0,
        "host {} vs {host}",
        mib(h.cpu_model)
    );
}

/// 2026-12-07 c4, every routed expert on the RPC CPU (`-ot exps=RPC0[…]`): a fresh 16,384-token
/// prompt at 40.05 t/s — the run `speed.rpc_cpu_matmul_bytes_per_flop` was fitted from
/// (data/calibration.toml provenance), so this holds the rule in place: an RPC CPU multiplies
/// every prompt token's weights itself (no op offload there), where the GPU-priced model said
/// 1,956 t/s.
#[test]
fn prefill_on_a_cpu_behind_rpc_is_priced_by_its_matmuls() {
    let log = parse_path(&repo(
        "data/logs/2026-12-07-glm-h100-rpccpu-c32k-hand-stopped.txt.gz",
    ))
    .unwrap();
    assert_eq!(log.prompt_tokens, Some(16384));
    let r = predict(
        "2026-12-07-glm-h100-rpccpu-c32k-trial",
        "glm-rpc-hand",
        Workload {
            prompt: Some(16384),
            prefix: Some(0),
            gen: Some(1),
            ..Workload::default()
        },
    );
    let pre = r.speed.as_ref().and_then(|s| s.prefill_tps).unwrap();
    let measured = log.prompt_tps.unwrap();
    assert!(
        (pre / measured - 1.0).abs() < 0.10,
        "prefill {pre:.1} t/s vs {measured}"
    );
}

/// The host file says what computes behind the rpc-server; without the key the alignment rule
/// decides (32 bytes, no row padding: the CPU backend's).
#[test]
fn an_rpc_device_computes_on_the_cpu_by_the_host_file_or_its_alignment() {
    let mut d = placer::host::RpcDevice {
        endpoint: "10.0.0.2:50052".into(),
        device: 0,
        alignment: 32,
        row_padding: false,
        compute: None,
        link_gbs: 1.25,
        latency_us: 100.0,
    };
    assert!(d.computes_on_cpu());
    d.compute = Some(placer::host::RpcCompute::Gpu);
    assert!(!d.computes_on_cpu(), "a Mac's Metal reports 32 too");
    d.compute = None;
    d.alignment = 128;
    d.row_padding = true;
    assert!(!d.computes_on_cpu(), "CUDA/HIP");
}
