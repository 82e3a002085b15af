//! Solve time of both profiles (aggressive + moderate) — issue 4 targets: ≤ 0.2 s for a 48-layer
//! MoE on 2 GPUs + CPU, ≤ 2 s for a 94-layer model on 8 GPUs.
//! Run: `cargo bench --bench solve` (numbers in docs/benchmarks.md, "Solve time").

use criterion::{criterion_group, criterion_main, Criterion};
use placer::calibrate::Calibration;
use placer::host::Host;
#[path = "../tests/it/fixture.rs"]
mod fixture;
use placer::solver::SolveRequest;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let cal = Calibration::shipped();
    // 48-layer MoE (Qwen3-30B-A3B Q8_0, the catalog's header) on the users' 4090 + 5070 Ti + CPU.
    let g = placer::catalog::load_model("qwen3-30b-a3b-q8", None).expect("catalog header");
    let a48 = placer::anatomy::from_gguf(&g).expect("anatomy");
    let users = placer::host::default_host();
    let r48 = SolveRequest {
        ctx: 65536,
        host_gpus: users.gpus.len(),
        ..SolveRequest::default()
    };
    // 94-layer MoE (Qwen3-235B-A22B shape, Q4_K, synthetic tensor table) on 8 × 24 GB + CPU.
    let a94 = fixture::build(&fixture::Spec::qwen3_235b_a22b());
    let eight = Host::by_name_or_path("bench-8x3090").expect("shipped host");
    let r94 = SolveRequest {
        ctx: 32768,
        host_gpus: eight.gpus.len(),
        ..SolveRequest::default()
    };

    let mut grp = c.benchmark_group("solve_both_profiles");
    grp.sample_size(10)
        .measurement_time(Duration::from_secs(20));
    grp.bench_function("qwen3-30b-a3b-q8_48L_2gpu", |b| {
        let hm = placer::host_model::HostModel::resolve(&users, &cal);
        b.iter(|| placer::profile::solve_profiles(&a48, &hm, &r48))
    });
    grp.bench_function("qwen3-235b-a22b-q4k_94L_8gpu", |b| {
        let hm = placer::host_model::HostModel::resolve(&eight, &cal);
        b.iter(|| placer::profile::solve_profiles(&a94, &hm, &r94))
    });
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
