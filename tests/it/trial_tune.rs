//! The tuner's neighbourhood (src/trial/tune.rs): every step is a launch llama.cpp can express,
//! differs from where it started, keeps the user's own flags, and moves what its name says.

use placer::anatomy::{from_gguf, Anatomy};
use placer::host::DeviceId;
use placer::launch::{parse_args, GpuLayers, LaunchConfig, Tool};
use placer::trial::tune::{neighbours, placement_of};
use proptest::prelude::*;

fn glm() -> Anatomy {
    from_gguf(&placer::catalog::load_model("glm-q8", None).unwrap()).unwrap()
}

fn launch(ts: (u32, u32), cpu_layers: &[u32], ub: u32) -> LaunchConfig {
    let mut a: Vec<String> = format!(
        "-m glm-q8 -c 131072 -ngl 48 --fit off -ts {},{} -b 2048 -ub {ub} -np 1 -lm none --jinja",
        ts.0, ts.1
    )
    .split_whitespace()
    .map(String::from)
    .collect();
    if !cpu_layers.is_empty() {
        let l: Vec<String> = cpu_layers.iter().map(|l| l.to_string()).collect();
        a.push("-ot".into());
        a.push(format!(
            "blk\\.({})\\.ffn_(down|gate|up)_exps\\.=CPU",
            l.join("|")
        ));
    }
    parse_args(Tool::Server, &a).unwrap()
}

fn cpu_expert_layers(an: &Anatomy, cfg: &LaunchConfig) -> Vec<u32> {
    let p = placement_of(an, cfg, 2).unwrap();
    let mut v: Vec<u32> = p
        .moved
        .iter()
        .filter(|(g, d)| *d == DeviceId::Cpu && an.groups[*g].kind.is_routed_experts())
        .filter_map(|(g, _)| match an.groups[*g].layer {
            placer::anatomy::LayerRef::Block(il) => Some(il),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn the_neighbourhood_of_an_aggressive_glm_profile() {
    let an = glm();
    let cfg = launch((33, 15), &[28, 29, 30, 31, 32], 512);
    let steps = neighbours(&an, &cfg, 2);
    let labels: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
    for want in [
        "ub256",
        "ub1024",
        "cpu+1",
        "cpu-1",
        "cpu-first",
        "cpu-last",
        "ts0>1",
        "ts1>0",
    ] {
        assert!(labels.contains(&want), "{want} missing from {labels:?}");
    }
    let before = cpu_expert_layers(&an, &cfg);
    assert_eq!(before, vec![28, 29, 30, 31, 32]);
    for s in &steps {
        assert!(
            s.cfg.passthrough.contains(&"--jinja".to_string()),
            "{}",
            s.label
        );
        assert_eq!(s.cfg.ctx, 131072);
        let after = cpu_expert_layers(&an, &s.cfg);
        match s.label.as_str() {
            "cpu+1" => assert_eq!(after.len(), 6, "{after:?}"),
            "cpu-1" => assert_eq!(after, vec![28, 29, 30, 31]),
            // Layer 0 of GLM-4.7-Flash is dense (leading_dense_block_count = 1): no experts.
            "cpu-first" => assert_eq!(after, vec![1, 2, 3, 4, 5]),
            "cpu-last" => assert_eq!(after, vec![42, 43, 44, 45, 46]),
            "ub256" | "ub1024" => assert_eq!(after, before),
            _ => {}
        }
        if s.label.starts_with("ts") {
            assert_eq!(s.cfg.gpu_layers, GpuLayers::Count(48));
            let ts = s.cfg.tensor_split.clone().expect("-ts");
            assert!(
                ts == vec![32.0, 16.0] || ts == vec![34.0, 14.0],
                "{}: {ts:?}",
                s.label
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Every step validates, round-trips through its own flags, and is a different launch.
    #[test]
    fn every_step_is_an_expressible_different_launch(
        a in 20u32..40,
        cpu in proptest::collection::btree_set(0u32..47, 0..8),
        ub in prop_oneof![Just(256u32), Just(512), Just(1024), Just(2048)],
    ) {
        let an = glm();
        let cpu: Vec<u32> = cpu.into_iter().collect();
        let cfg = launch((a, 48 - a), &cpu, ub);
        let me = placer::emit::argv(&cfg);
        for s in neighbours(&an, &cfg, 2) {
            let argv = placer::emit::argv(&s.cfg);
            prop_assert_ne!(&argv, &me, "{} is the same launch", s.label);
            let p = placement_of(&an, &s.cfg, 2).unwrap();
            prop_assert!(p.validate(&an).is_ok(), "{}: {:?}", s.label, p.validate(&an));
            let again = parse_args(Tool::Server, &argv).unwrap();
            prop_assert_eq!(placement_of(&an, &again, 2).unwrap(), p, "{} round trip", s.label);
        }
    }
}
