//! The solver-tests/ corpus: every scenario of solver-tests/scenarios.toml solved in both
//! profiles, its properties checked against the exact memory model, its emitted text snapshotted.

use placer::anatomy::Anatomy;
use placer::calibrate::Calibration;
use placer::gguf::GgmlType;
use placer::host::{DeviceId, Host};
use placer::profile::{self, Profile};
use placer::solver::SolveRequest;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
struct Corpus {
    scenario: Vec<Scenario>,
}

#[derive(Debug, Deserialize)]
struct Scenario {
    name: String,
    model: String,
    host: String,
    ctx: u32,
    kv: String,
    expect: String,
    #[serde(default)]
    only_gpus: Option<Vec<usize>>,
    #[serde(default)]
    uses_gpus: Option<Vec<usize>>,
    #[serde(default)]
    experts_on_cpu: Option<bool>,
    #[serde(default)]
    attention_on_gpus: Option<bool>,
    #[serde(default)]
    suggests_ram: Option<bool>,
    /// `--devices`: the GPUs (indices) the solve may use.
    #[serde(default)]
    devices: Option<Vec<usize>>,
    /// Nothing but the token embeddings on the CPU.
    #[serde(default)]
    all_on_gpu: Option<bool>,
    /// Weights spill to the CPU and the solution says which KV type would keep them all on the
    /// chosen GPUs.
    #[serde(default)]
    gpu_only_kv_suggestion: Option<String>,
}

fn calibration() -> Calibration {
    toml::from_str(&std::fs::read_to_string("solver-tests/calibration.toml").unwrap()).unwrap()
}

fn load(s: &Scenario) -> (Anatomy, Host, SolveRequest, String) {
    let g = placer::catalog::load_model(&s.model, None).unwrap();
    let a = placer::anatomy::from_gguf(&g).unwrap();
    let host = Host::by_name_or_path(&s.host).unwrap();
    let kv = GgmlType::from_name(&s.kv).unwrap();
    let e = placer::catalog::entry(&s.model, &placer::catalog::models_dir()).unwrap();
    let req = SolveRequest {
        model_path: e.source.files[0].clone(),
        ctx: s.ctx,
        type_k: kv,
        type_v: kv,
        host_gpus: host.gpus.len(),
        devices: s.devices.clone(),
        ..SolveRequest::default()
    };
    (a, host, req, e.name)
}

/// Properties that hold for every feasible profile.
fn check_solution(s: &Scenario, a: &Anatomy, host: &Host, cal: &Calibration, p: &Profile) {
    let sol = p.solution.as_ref().unwrap();
    let n = &s.name;
    sol.placement
        .validate(a)
        .unwrap_or_else(|e| panic!("{n}: {e}"));
    // Exact memory of the emitted flags, recomputed here.
    let pred = placer::memory::predict(a, &sol.launch, host, cal).unwrap();
    for (i, g) in pred.gpus.iter().enumerate() {
        let margin = (p.margins.gpu_mib[i] * 1048576.0) as u64;
        assert!(
            g.total() + margin <= g.cap,
            "{n} {}: CUDA{i} {} + margin {} > cap {}",
            p.kind.name(),
            g.total(),
            margin,
            g.cap
        );
    }
    assert!(
        matches!(pred.verdict, placer::memory::Verdict::Fits),
        "{n}: {:?}",
        pred.verdict
    );
    // Every tensor placed exactly once, where the placement says.
    let want = sol.placement.tensor_devices(a);
    assert_eq!(pred.resolved.tensor_device.len(), a.tensors.len());
    assert_eq!(
        pred.resolved.tensor_device, want,
        "{n}: flags do not reproduce the placement"
    );
    let moved: std::collections::HashSet<usize> = sol.placement.moved.iter().map(|m| m.0).collect();
    assert_eq!(
        moved.len(),
        sol.placement.moved.len(),
        "{n}: a group moved twice"
    );
    let n_layer = a.hp.n_layer as usize;
    let kv_layers: Vec<usize> = (0..n_layer).filter(|&il| a.hp.has_kv(il as u32)).collect();
    if let Some(only) = &s.only_gpus {
        for (il, d) in sol.placement.layer_device.iter().enumerate() {
            assert!(
                matches!(d, DeviceId::Gpu(g) if only.contains(g)),
                "{n}: slot {il} on {d}"
            );
        }
        assert!(
            sol.placement.moved.is_empty(),
            "{n}: {:?}",
            sol.placement.moved
        );
    }
    if let Some(uses) = &s.uses_gpus {
        for g in uses {
            assert!(
                sol.placement.layer_device.contains(&DeviceId::Gpu(*g)),
                "{n}: CUDA{g} unused"
            );
        }
    }
    if s.attention_on_gpus == Some(true) {
        for &il in &kv_layers {
            assert_ne!(
                sol.placement.layer_device[il],
                DeviceId::Cpu,
                "{n}: layer {il} attention/KV on CPU"
            );
        }
    }
    if let Some(on_cpu) = s.experts_on_cpu {
        let any = sol
            .placement
            .moved
            .iter()
            .any(|&(g, d)| d == DeviceId::Cpu && a.groups[g].kind.is_routed_experts());
        assert_eq!(any, on_cpu, "{n}: routed experts on CPU");
        // Most of the bytes on the CPU are routed experts (the program may move a small shared
        // expert within its 1 % optimality gap, but never trade attention for experts).
        let mut routed = 0u64;
        let mut other = 0u64;
        for &(g, d) in &sol.placement.moved {
            if d == DeviceId::Cpu {
                if a.groups[g].kind.is_routed_experts() {
                    routed += a.groups[g].bytes;
                } else {
                    other += a.groups[g].bytes;
                }
            }
        }
        assert!(
            other * 50 <= routed,
            "{n}: {other} bytes of non-routed groups on CPU vs {routed} routed"
        );
    }
    if let Some(devs) = &s.devices {
        for d in &sol.placement.layer_device {
            assert!(
                matches!(d, DeviceId::Cpu) || matches!(d, DeviceId::Gpu(g) if devs.contains(g)),
                "{n}: a layer on {d} outside --devices {devs:?}"
            );
        }
        let want: Vec<String> = devs.iter().map(|i| format!("CUDA{i}")).collect();
        assert_eq!(
            sol.launch.devices.as_ref(),
            Some(&want),
            "{n}: -dev not emitted"
        );
    }
    let on_cpu = sol.placement.layer_device.contains(&DeviceId::Cpu)
        || sol.placement.moved.iter().any(|(_, d)| *d == DeviceId::Cpu);
    if let Some(all) = s.all_on_gpu {
        assert_eq!(!on_cpu, all, "{n}: all weights on the GPUs");
        assert!(sol.gpu_only.is_none(), "{n}: nothing to explain");
    }
    if let Some(kv) = &s.gpu_only_kv_suggestion {
        assert!(on_cpu, "{n}: expected weights on the CPU");
        let inf = sol
            .gpu_only
            .as_ref()
            .unwrap_or_else(|| panic!("{n}: spills without saying what would fit"));
        let hit = inf.suggestions.iter().any(|x| {
            x.request
                .as_ref()
                .is_some_and(|r| r.type_k.name() == kv.as_str() && r.ctx == s.ctx)
        });
        assert!(hit, "{n}: no -ctk {kv} suggestion in {inf}");
    }
    assert!(sol.decode_tps.is_finite() && sol.decode_tps > 0.0);
}

#[test]
fn corpus() {
    let corpus: Corpus =
        toml::from_str(&std::fs::read_to_string("solver-tests/scenarios.toml").unwrap()).unwrap();
    let cal = calibration();
    assert!(corpus.scenario.len() >= 8);
    for s in &corpus.scenario {
        let (a, host, req, name) = load(s);
        let profiles = profile::solve_profiles(
            &a,
            &placer::host_model::HostModel::resolve(&host, &cal),
            &req,
        );
        let mut text = String::new();
        for p in &profiles {
            match (s.expect.as_str(), &p.solution, &p.infeasible) {
                ("feasible", Some(_), _) => check_solution(s, &a, &host, &cal, p),
                ("infeasible", None, Some(inf)) => {
                    assert!(
                        !inf.suggestions.is_empty(),
                        "{}: infeasible without a suggestion",
                        s.name
                    );
                    if s.suggests_ram == Some(true) {
                        assert!(
                            inf.suggestions.iter().any(|x| x.more_ram_mib.is_some()),
                            "{}: {inf}",
                            s.name
                        );
                    }
                }
                (e, sol, inf) => panic!(
                    "{}: expected {e}, got solution {} / infeasible {:?}",
                    s.name,
                    sol.is_some(),
                    inf
                ),
            }
            text.push_str(&format!("## {}\n", p.kind.name()));
            if let Some(sol) = &p.solution {
                every_build_accepts(s, &a, &host, &cal, p, &name);
                text.push_str(&placer::emit::command_line(&sol.launch));
                text.push('\n');
                let src = placer::profile::ConfSource {
                    id: &s.model,
                    name: &name,
                    arch_source: &format!("GGUF header snapshot models/headers/{}.gguf", s.model),
                    host: &host,
                    host_model: &placer::host_model::HostModel::resolve(&host, &cal),
                    fit_baseline: None,
                    build: placer::builds::reference(),
                    from_section: None,
                    section_name: None,
                };
                text.push_str(&placer::profile::conf_section(&src, &a, p).unwrap().text);
            }
            if let Some(inf) = &p.infeasible {
                text.push_str(&inf.to_string());
            }
        }
        insta::with_settings!({snapshot_path => "../../solver-tests/snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(s.name.clone(), text);
        });
    }
}

/// Every emitted command and models.conf section, rendered for each supported llama.cpp build,
/// passes that build's own option table (data/llama-builds/, `builds::validate_argv`).
fn every_build_accepts(
    s: &Scenario,
    a: &Anatomy,
    host: &Host,
    cal: &Calibration,
    p: &Profile,
    name: &str,
) {
    let sol = p.solution.as_ref().unwrap();
    for facts in placer::builds::all() {
        let r = placer::emit::argv_for(&sol.launch, facts);
        facts
            .validate_argv(&r.argv, placer::builds::Tool::Server)
            .unwrap_or_else(|e| {
                panic!(
                    "{} {}: b{}: {e}: {:?}",
                    s.name,
                    p.kind.name(),
                    facts.build,
                    r.argv
                )
            });
        let src = placer::profile::ConfSource {
            id: &s.model,
            name,
            arch_source: "",
            host,
            host_model: &placer::host_model::HostModel::resolve(host, cal),
            fit_baseline: None,
            build: facts,
            from_section: None,
            section_name: None,
        };
        let sec = placer::profile::conf_section(&src, a, p).unwrap();
        let parsed = placer::modelsconf::read::parse(&sec.text);
        let argv = placer::launch::section_argv(&parsed[0]).unwrap();
        facts
            .validate_argv(&argv, placer::builds::Tool::Server)
            .unwrap_or_else(|e| {
                panic!(
                    "{} {} section: b{}: {e}",
                    s.name,
                    p.kind.name(),
                    facts.build
                )
            });
    }
}

#[test]
fn solve_is_deterministic() {
    let corpus: Corpus =
        toml::from_str(&std::fs::read_to_string("solver-tests/scenarios.toml").unwrap()).unwrap();
    let s = corpus
        .scenario
        .iter()
        .find(|s| s.name == "glm-q8-128k-users")
        .unwrap();
    let (a, host, req, _) = load(s);
    let cal = calibration();
    let one = profile::solve_profiles(
        &a,
        &placer::host_model::HostModel::resolve(&host, &cal),
        &req,
    );
    let two = profile::solve_profiles(
        &a,
        &placer::host_model::HostModel::resolve(&host, &cal),
        &req,
    );
    for (x, y) in one.iter().zip(&two) {
        assert_eq!(
            x.solution.as_ref().map(|s| &s.placement),
            y.solution.as_ref().map(|s| &s.placement)
        );
    }
    let _ = Path::new(".");
}

/// `--tool llama-completion`: the flags are checked against llama-completion's reservation (a
/// whole ubatch of output rows, `memory::kv::outputs_max`), so its compute buffer on the device
/// holding the logits is larger than llama-server's, the caps still hold, and the command names
/// the program.
#[test]
fn tool_changes_the_reserved_outputs() {
    let cal = calibration();
    let g = placer::catalog::load_model("glm-q4", None).unwrap();
    let a = placer::anatomy::from_gguf(&g).unwrap();
    let host = Host::by_name_or_path("users-4090-5070ti").unwrap();
    let base = SolveRequest {
        model_path: "m.gguf".into(),
        ctx: 32768,
        host_gpus: host.gpus.len(),
        devices: Some(vec![0]),
        ..SolveRequest::default()
    };
    let cli = SolveRequest {
        tool: placer::launch::Tool::Cli,
        ..base.clone()
    };
    let hm = placer::host_model::HostModel::resolve(&host, &cal);
    let (m, _) = profile::margins(profile::ProfileKind::Moderate, &hm);
    let s = placer::solver::solve(&a, &hm, &base, &m).unwrap();
    let c = placer::solver::solve(&a, &hm, &cli, &m).unwrap();
    assert!(placer::emit::command_line(&s.launch).starts_with("llama-server "));
    assert!(placer::emit::command_line(&c.launch).starts_with("llama-completion "));
    let compute = |x: &placer::solver::Solution| x.devices[0].compute;
    assert!(
        compute(&c) > compute(&s) + (100 << 20),
        "{} vs {}",
        compute(&c),
        compute(&s)
    );
    for d in &c.devices {
        assert!(d.total() + d.margin <= d.cap, "{d:?}");
    }
}
