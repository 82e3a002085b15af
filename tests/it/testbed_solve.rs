//! Testbed helper, not a check: prints the aggressive and moderate placements placer's library
//! chooses for a testbed scenario, as JSON, for testbed/make-matrix.py when `placer solve` is not
//! available. Run: `TB_MODEL=qwen3-30b-a3b-q8 TB_HOST=users-4090-5070ti TB_CTX=32768 cargo test
//! --test testbed_solve -- --ignored --nocapture`.
use placer::calibrate::Calibration;
use placer::host::Host;
use placer::profile::{self, ProfileKind};
use placer::solver::{self, SolveRequest};

#[test]
#[ignore]
fn testbed_solve() {
    let model = std::env::var("TB_MODEL").expect("TB_MODEL");
    let host = Host::by_name_or_path(&std::env::var("TB_HOST").expect("TB_HOST")).unwrap();
    let ctx: u32 = std::env::var("TB_CTX").expect("TB_CTX").parse().unwrap();
    let gguf = placer::catalog::load_model(&model, None).unwrap();
    let anatomy = placer::anatomy::from_gguf(&gguf).unwrap();
    let cal = Calibration::load();
    let mut out = serde_json::Map::new();
    // The run's workload (optional): TB_PROMPT prompt tokens, TB_GEN generated tokens.
    let env_u32 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    for kind in ProfileKind::all() {
        let name = kind.name();
        let (margins, _) =
            profile::margins(kind, &placer::host_model::HostModel::resolve(&host, &cal));
        let req = SolveRequest {
            model_path: "MODEL".into(),
            ctx,
            prompt: env_u32("TB_PROMPT"),
            gen: env_u32("TB_GEN"),
            host_gpus: host.gpus.len(),
            ..SolveRequest::default()
        };
        let v = match solver::solve(
            &anatomy,
            &placer::host_model::HostModel::resolve(&host, &cal),
            &req,
            &margins,
        ) {
            Ok(s) => serde_json::json!({
                "profile": name,
                "argv": placer::emit::argv(&s.launch),
                "margins_mib": margins.gpu_mib,
                "solution": s,
            }),
            Err(e) => serde_json::json!({"profile": name, "infeasible": e}),
        };
        out.insert(name.to_string(), v);
    }
    println!("TESTBED-JSON {}", serde_json::Value::Object(out));
}
