//! The oracle loop: llama.cpp's own `llama-fit-params` dry run (`oracle`) confirms the final
//! aggressive and moderate candidates. placer's memory model stays the solver's fast inner loop;
//! where llama.cpp's projection of a device (model + context + compute, `common/fit.cpp:
//! common_fit_print`) is larger than placer's and the difference eats into the profile's margin,
//! that device's margin grows by the difference and the profile is solved again. At most
//! [`MAX_DRY_RUNS`] dry runs per profile.

use super::Profile;
use crate::anatomy::Anatomy;
use crate::builds::BuildFacts;
use crate::host::DeviceId;
use crate::host_model::HostModel;
use crate::oracle::{DryRun, Oracle};
use crate::solver::SolveRequest;
use crate::units::MIB;

/// Dry runs per profile: the first confirms or corrects, the second confirms the correction,
/// the third catches a correction that moved the problem; each costs 0.4–1.4 s on the catalog's
/// models (docs/llama-builds.md, "Dry-run timings").
pub const MAX_DRY_RUNS: usize = 3;

/// One device: placer's prediction beside llama.cpp's (MiB, without placer's per-GPU overhead,
/// which llama-fit-params does not report).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SideBySide {
    /// `CUDA0`, `CUDA1`, …, or `host`.
    pub device: String,
    /// placer: weights, KV + recurrent state, compute.
    pub placer: [u64; 3],
    /// llama.cpp: model, context, compute.
    pub llama: [u64; 3],
}

/// What the dry runs said about one profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Confirmation {
    /// The profile's name.
    pub profile: String,
    /// Dry runs made.
    pub dry_runs: usize,
    /// Per device, for the final placement.
    pub devices: Vec<SideBySide>,
    /// MiB added to each GPU's margin because llama.cpp projected more than placer.
    pub corrected_mib: Vec<u64>,
    /// Seconds the dry runs took in all.
    pub seconds: f64,
    /// One line for the report.
    pub summary: String,
}

/// Confirm (and where needed correct) every solved profile with `oracle`. `extra_args` go in
/// front of the profile's flags (e.g. `--rpc host:port,…`).
#[allow(clippy::too_many_arguments)]
pub fn confirm_profiles(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    facts: &BuildFacts,
    oracle: &Oracle,
    extra_args: &[String],
    profiles: &mut [Profile],
) -> Vec<Confirmation> {
    let host = &hm.host;
    let mut out = Vec::new();
    for p in profiles.iter_mut() {
        if p.solution.is_none() {
            continue; // nothing to confirm: the report already says why it does not fit
        }
        let mut runs = 0;
        let mut seconds = 0.0;
        let mut corrected = vec![0u64; host.gpus.len()];
        let mut last: Option<(DryRun, Vec<SideBySide>)> = None;
        let mut failure: Option<String> = None;
        while runs < MAX_DRY_RUNS {
            let Some(sol) = &p.solution else { break };
            let mut argv: Vec<String> = extra_args.to_vec();
            argv.extend(crate::emit::argv_for(&sol.launch, facts).argv);
            runs += 1;
            let dry = match oracle.dry_run(&argv) {
                Ok(d) => d,
                Err(e) => {
                    failure = Some(format!("{e}"));
                    break;
                }
            };
            seconds += dry.elapsed.as_secs_f64();
            let rows = side_by_side(sol, &dry, host);
            let tool_gap = output_rows_gap(anatomy, hm, &sol.launch);
            // A GPU whose llama.cpp total leaves less than the margin: grow its margin.
            let mut bump = false;
            for (i, row) in rows.iter().enumerate().take(host.gpus.len()) {
                let d = &sol.devices[i];
                // llama-fit-params reserves the graph for n_batch outputs, llama-server for
                // n_parallel: what placer knows of that difference is not a shortfall.
                let gap = tool_gap.get(i).copied().unwrap_or(0);
                let llama_total =
                    (row.llama.iter().sum::<u64>() * MIB).saturating_sub(gap) + d.overhead;
                let room = d.cap.saturating_sub(d.margin);
                if llama_total > room {
                    let excess = (llama_total - room).div_ceil(MIB);
                    corrected[i] += excess;
                    p.margins.gpu_mib[i] += excess as f64;
                    bump = true;
                }
            }
            last = Some((dry, rows));
            if !bump {
                break;
            }
            match crate::solver::solve(anatomy, hm, req, &p.margins) {
                Ok(s) => p.solution = Some(s),
                Err(e) => {
                    p.solution = None;
                    p.infeasible = Some(e);
                    break;
                }
            }
            last = None; // the new placement is not confirmed yet
        }
        let devices = last.map(|(_, r)| r).unwrap_or_default();
        let name = p.kind.name().to_string();
        let summary = match (
            &failure,
            corrected.iter().any(|&c| c > 0),
            devices.is_empty(),
        ) {
            (Some(e), _, _) => {
                format!("{name}: llama.cpp dry run failed ({e}); placer's memory model only")
            }
            (None, false, false) => {
                format!("{name}: confirmed by llama.cpp's dry run ({runs} run, {seconds:.1} s)")
            }
            (None, true, false) => format!(
                "{name}: llama.cpp projected more than placer; margins raised by {} MiB and \
                 solved again; confirmed ({runs} dry runs, {seconds:.1} s)",
                corrected
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} {c}", host.device_name(DeviceId::Gpu(i))))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (None, _, true) => format!(
                "{name}: not confirmed after {runs} dry runs (margins raised by {:?} MiB); \
                 run `placer check` on the flags before trusting them",
                corrected
            ),
        };
        out.push(Confirmation {
            profile: name,
            dry_runs: runs,
            devices,
            corrected_mib: corrected,
            seconds,
            summary,
        });
    }
    out
}

/// Per GPU, the compute bytes by which llama-fit-params' projection exceeds a llama-server load
/// of the same flags because of the outputs the graph is reserved for: llama-fit-params is a
/// common tool whose `n_outputs_max` stays 0 = n_batch (`common/common.h: n_outputs_max`,
/// `src/llama-context.cpp: llama_context` → `cparams.n_outputs_max = … n_batch`), so its prompt
/// graph (`llama_context::sched_reserve`, `graph_reserve(n_tokens, n_seqs, min(n_tokens,
/// n_outputs_max))`) carries n_ubatch rows of logits on the output layer's GPU, where
/// llama-server reserves n_parallel (`common/speculative.cpp: n_outputs_max = n_parallel`).
/// placer predicts both; their difference is what the dry run shows beyond a real server load
/// (2026-12-06 c1: CUDA1 306 MiB projected, 322 predicted for the dry run's outputs, 191
/// predicted and measured for the server). Zero for a launch that is not llama-server's.
pub fn output_rows_gap(
    anatomy: &Anatomy,
    hm: &HostModel,
    launch: &crate::launch::LaunchConfig,
) -> Vec<u64> {
    use crate::launch::Tool;
    if launch.tool != Tool::Server {
        return Vec::new();
    }
    let pr = crate::memory::Predictor::with_constants(anatomy, &hm.host, &hm.memory);
    // The same sequences and KV layout (so only the outputs differ).
    let (n_seq, unified) = crate::memory::kv::sequences(launch);
    let as_tool = crate::launch::LaunchConfig {
        tool: Tool::Cli,
        n_parallel: Some(n_seq),
        kv_unified: Some(unified),
        ..launch.clone()
    };
    match (pr.predict(launch), pr.predict(&as_tool)) {
        (Ok(server), Ok(tool)) => server
            .gpus
            .iter()
            .zip(&tool.gpus)
            .map(|(s, t)| t.compute.saturating_sub(s.compute))
            .collect(),
        _ => Vec::new(),
    }
}

fn side_by_side(
    sol: &crate::solver::Solution,
    dry: &DryRun,
    host: &crate::host::Host,
) -> Vec<SideBySide> {
    let mib = |b: u64| b / MIB;
    let mut rows = Vec::new();
    let mut gpu = 0;
    for d in &sol.devices {
        let llama = match d.device {
            DeviceId::Gpu(_) => {
                let r = dry.devices.get(gpu);
                gpu += 1;
                r
            }
            DeviceId::Cpu => Some(&dry.host),
        };
        let Some(l) = llama else { continue };
        rows.push(SideBySide {
            device: match d.device {
                DeviceId::Gpu(_) => host.device_name(d.device),
                DeviceId::Cpu => "host".into(),
            },
            placer: [mib(d.weights), mib(d.kv), mib(d.compute)],
            llama: [l.model_mib, l.context_mib, l.compute_mib],
        });
    }
    rows
}

/// The side-by-side table of one confirmation, indented for the solve report.
pub fn render_confirmation(c: &Confirmation) -> String {
    let mut o = format!("  {}\n", c.summary);
    if !c.devices.is_empty() {
        o.push_str("    MiB (placer / llama.cpp)   weights          KV          compute\n");
        for r in &c.devices {
            o.push_str(&format!(
                "    {:<24} {:>7} / {:<7} {:>6} / {:<6} {:>6} / {:<6}\n",
                r.device, r.placer[0], r.llama[0], r.placer[1], r.llama[1], r.placer[2], r.llama[2]
            ));
        }
    }
    o
}
