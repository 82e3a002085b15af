//! Property test: for random placements on real tensor-name tables (the catalog's header
//! snapshots, plus the synthetic 94-layer table), the emitted `-ngl/-ts/-ot` flags, applied with
//! llama.cpp's rules, put EVERY tensor on exactly the intended device. Checked twice: with an
//! independent implementation of the rules written here, and with the memory model's
//! `memory::resolve`.

use crate::fixture;
use placer::anatomy::{Anatomy, GroupKind, LayerRef};
use placer::host::{DeviceId, Gpu, Host, Ram};
use placer::launch::{GpuLayers, LaunchConfig};
use placer::placement::Placement;
use placer::solver::SolveRequest;
use proptest::prelude::*;
use std::sync::OnceLock;

fn tables() -> &'static Vec<(String, Anatomy)> {
    static T: OnceLock<Vec<(String, Anatomy)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v = Vec::new();
        for id in [
            "glm-q8",
            "glm-q4",
            "gpt-oss-120b",
            "qwen3-coder-next-q5",
            "qwen3-30b-a3b-q8",
            "qwen3-32b-q8",
        ] {
            let g = placer::catalog::load_model(id, None).unwrap_or_else(|e| panic!("{id}: {e:#}"));
            v.push((id.to_string(), placer::anatomy::from_gguf(&g).unwrap()));
        }
        v.push((
            "synthetic-qwen3-235b".into(),
            fixture::build(&fixture::Spec::qwen3_235b_a22b()),
        ));
        v
    })
}

fn host(n_gpus: usize) -> Host {
    Host {
        name: "test".into(),
        description: String::new(),
        gpus: (0..n_gpus)
            .map(|_| Gpu {
                model: "test".into(),
                total_mib: 24576,
                usable_mib: 24000,
                bandwidth_gbs: 1000.0,
                pcie_gbs: 31.5,
                source: String::new(),
                reported_free_mib: None,
                rpc: None,
            })
            .collect(),
        ram: Ram {
            total_mib: 65536,
            usable_mib: 61440,
            bandwidth_gbs: 50.0,
            source: String::new(),
        },
    }
}

/// llama.cpp's rules, written independently of `emit`:
/// `src/llama-model.cpp:llama_model_base::load_tensors` (float split points, upper_bound) and
/// `src/llama-model-loader.cpp:create_tensor` (std::regex_search, first match wins).
fn apply_llama_rules(a: &Anatomy, cfg: &LaunchConfig, n_gpus: usize) -> Vec<DeviceId> {
    let n_all = a.hp.n_layer as i64;
    let ngl = match cfg.gpu_layers {
        GpuLayers::Count(n) => n as i64,
        _ => n_all + 1,
    };
    let ts: Vec<f32> = (0..n_gpus)
        .map(|i| {
            cfg.tensor_split
                .as_ref()
                .and_then(|v| v.get(i).copied())
                .unwrap_or(0.0) as f32
        })
        .collect();
    let ts: Vec<f32> = if ts.iter().all(|&x| x == 0.0) {
        vec![1.0; n_gpus]
    } else {
        ts
    };
    let mut cum = Vec::new();
    let mut acc = 0.0f32;
    for x in &ts {
        acc += x;
        cum.push(acc);
    }
    let cum: Vec<f32> = cum.iter().map(|c| c / acc).collect();
    let start = (n_all + 1 - ngl).max(0);
    let act = ngl.min(n_all + 1);
    let layer_dev = |il: i64| -> DeviceId {
        if il < start || il - start >= act {
            return DeviceId::Cpu;
        }
        let x = (il - start) as f32 / act as f32;
        let mut k = 0;
        while k < cum.len() && cum[k] <= x {
            k += 1;
        }
        DeviceId::Gpu(k)
    };
    let rules: Vec<(regex::Regex, DeviceId)> = cfg
        .overrides
        .iter()
        .map(|o| {
            let d = if o.buft == "CPU" {
                DeviceId::Cpu
            } else {
                DeviceId::Gpu(o.buft[4..].parse().unwrap())
            };
            (regex::Regex::new(&o.pattern).unwrap(), d)
        })
        .collect();
    a.tensors
        .iter()
        .map(|t| {
            for (re, d) in &rules {
                if re.find(&t.name).is_some() {
                    return *d;
                }
            }
            match t.layer {
                LayerRef::Input => DeviceId::Cpu,
                LayerRef::Block(il) => layer_dev(il as i64),
                LayerRef::Output => layer_dev(n_all),
            }
        })
        .collect()
}

/// A random placement llama.cpp can express: sorted boundaries → CPU prefix then GPU ranges;
/// each movable group moved (or not) to a random other device.
fn placement_from(a: &Anatomy, n_gpus: usize, cuts: &[f64], moves: &[(f64, u8)]) -> Placement {
    let n_slots = a.hp.n_layer as usize + 1;
    let mut b: Vec<usize> = cuts.iter().map(|c| (c * n_slots as f64) as usize).collect();
    b.sort_unstable();
    let layer_device: Vec<DeviceId> = (0..n_slots)
        .map(|s| {
            let rank = b.iter().filter(|&&x| s >= x).count();
            if rank == 0 {
                DeviceId::Cpu
            } else {
                DeviceId::Gpu(rank - 1)
            }
        })
        .collect();
    let mut moved = Vec::new();
    for (gi, g) in a.groups.iter().enumerate() {
        if matches!(g.kind, GroupKind::LayerCore | GroupKind::Input) {
            continue;
        }
        let (p, dev) = moves[gi % moves.len()];
        if p < 0.35 {
            continue;
        }
        let own = match g.layer {
            LayerRef::Block(il) => layer_device[il as usize],
            LayerRef::Output => layer_device[n_slots - 1],
            LayerRef::Input => DeviceId::Cpu,
        };
        let target = if (dev as usize) % (n_gpus + 1) == n_gpus {
            DeviceId::Cpu
        } else {
            DeviceId::Gpu(dev as usize % (n_gpus + 1))
        };
        if target != own {
            moved.push((gi, target));
        }
    }
    Placement {
        layer_device,
        moved,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn emitted_flags_reproduce_every_tensor_device(
        which in 0usize..7,
        n_gpus in 1usize..4,
        cuts in proptest::collection::vec(0.0f64..1.0, 3),
        moves in proptest::collection::vec((0.0f64..1.0, 0u8..8), 1..64),
    ) {
        let (id, a) = &tables()[which % tables().len()];
        let p = placement_from(a, n_gpus, &cuts[..n_gpus], &moves);
        p.validate(a).unwrap();
        let req = SolveRequest { ctx: 4096, host_gpus: n_gpus, ..SolveRequest::default() };
        let cfg = placer::solver::launch_for(a, &p, &req);
        for o in &cfg.overrides {
            prop_assert!(!o.pattern.contains(',') && !o.pattern.contains('=') && !o.pattern.contains('{'),
                "{id}: pattern {} cannot pass through -ot", o.pattern);
            prop_assert!(!o.pattern.ends_with('$'), "{id}: fell back to exact per-tensor patterns ({})", o.pattern);
        }
        let want = p.tensor_devices(a);
        let ours = apply_llama_rules(a, &cfg, n_gpus);
        for (i, t) in a.tensors.iter().enumerate() {
            prop_assert_eq!(ours[i], want[i], "{}: {} (flags {:?})", id, t.name, placer::emit::argv(&cfg));
        }
        let h = host(n_gpus);
        let r = placer::memory::resolve(a, &cfg, &h, &vec![24000.0; n_gpus]).unwrap();
        prop_assert_eq!(&r.layer_device, &p.layer_device, "{}", id);
        for (i, t) in a.tensors.iter().enumerate() {
            prop_assert_eq!(r.tensor_device[i], want[i], "{}: {} (memory::resolve)", id, t.name);
        }
    }
}

#[test]
fn cpu_moe_style_placement_is_one_compact_pattern() {
    let (_, a) = &tables()[4]; // qwen3-30b-a3b-q8: 48 layers
    let n = a.hp.n_layer as usize + 1;
    let layer_device = vec![DeviceId::Gpu(0); n];
    let moved = a
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            g.kind.is_routed_experts() && matches!(g.layer, LayerRef::Block(il) if il >= 16)
        })
        .map(|(i, _)| (i, DeviceId::Cpu))
        .collect();
    let p = Placement {
        layer_device,
        moved,
    };
    let req = SolveRequest {
        host_gpus: 1,
        ..SolveRequest::default()
    };
    let cfg = placer::solver::launch_for(a, &p, &req);
    assert_eq!(cfg.overrides.len(), 1);
    assert_eq!(
        cfg.overrides[0].pattern,
        r"blk\.(1[6-9]|[23][0-9]|4[0-7])\.ffn_(down|gate|up)_exps\."
    );
    assert_eq!(cfg.tensor_split, None, "one GPU: no -ts needed");
}
