//! The integer program (good_lp + HiGHS). See docs/solver.md for the formulation.
//!
//! Layer slots use ordered binaries: `y[s][k] = 1` iff slot `s` sits at rank ≥ k+1 in llama.cpp's
//! device order (CPU = rank 0, GPU d = rank d+1). `y` is non-increasing in `k` and non-decreasing
//! in `s`, which is exactly "CPU layers first, then contiguous ranges per GPU in device order"
//! (`-ngl`/`-ts`); the output layer is the last slot. Movable groups that are interchangeable
//! (same kind, bytes and largest tensor) form a class; an integer per class and GPU counts the
//! members kept on that GPU (at most the members whose layer is there); the others go to the CPU.

// Slot × device matrices are indexed on both axes; index loops read clearer than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::coeffs::LinearModel;
use crate::host::DeviceId;
use good_lp::{
    constraint, variable, Expression, ProblemVariables, Solution, SolverModel, Variable,
    WithInitialSolution,
};

/// Relative optimality gap HiGHS may stop at. Moving one expert tensor group between GPU and CPU
/// changes the predicted time by ~1–2 %, which is exactly the gap between the LP bound (fractional
/// groups) and any integer placement; proving 0.1 % costs seconds of branch and bound. 1 % is
/// well inside the speed model's own error (docs/solver.md).
pub const MIP_REL_GAP: f32 = 1e-2;

/// What the program optimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// Minimise predicted time per generated token (+ weighted prefill).
    Speed,
    /// Minimise bytes that must live in host RAM (RAM cap ignored): for "how much RAM is needed".
    MinHostBytes,
}

/// Per-device byte budgets the program must respect.
#[derive(Debug, Clone)]
pub struct Budgets {
    /// Per GPU: bytes available to weights + KV + compute + overhead (cap − margin − correction).
    pub gpu: Vec<f64>,
    pub ram: f64,
}

/// A solved program: the device of each slot, and for each movable group its device.
#[derive(Debug, Clone)]
pub struct IlpResult {
    pub slot_device: Vec<DeviceId>,
    pub movable_device: Vec<DeviceId>,
    pub objective_s: f64,
}

pub fn solve(
    m: &LinearModel,
    budgets: &Budgets,
    goal: Goal,
    prefill_weight: f64,
) -> Result<IlpResult, String> {
    let g = m.n_gpus;
    let s_n = m.n_slots;
    let mut vars = ProblemVariables::new();
    let y: Vec<Vec<Variable>> = (0..s_n)
        .map(|_| (0..g).map(|_| vars.add(variable().binary())).collect())
        .collect();
    let zero = Expression::from(0.0);
    let x = |s: usize, d: usize| -> Expression {
        let nxt = if d + 1 < g {
            Expression::from(y[s][d + 1])
        } else {
            zero.clone()
        };
        Expression::from(y[s][d]) - nxt
    };
    let x_cpu = |s: usize| -> Expression {
        if g == 0 {
            Expression::from(1.0)
        } else {
            1.0 - Expression::from(y[s][0])
        }
    };
    // Symmetric movable groups (same kind, bytes, largest tensor) form a class; per class and
    // GPU an integer counts how many members stay on that GPU (the rest go to the CPU). Which
    // members does not change memory or bytes read, so the program does not choose it: the
    // members kept are the last ones of the GPU's layer range (CPU-resident ones first, which
    // also gives compact -ot ranges).
    let classes = classes_of(m);
    let n: Vec<Vec<Variable>> = classes
        .iter()
        .map(|c| {
            (0..g)
                .map(|_| vars.add(variable().integer().min(0.0).max(c.members.len() as f64)))
                .collect()
        })
        .collect();
    let any_cpu: Vec<Variable> = classes
        .iter()
        .map(|_| vars.add(variable().binary()))
        .collect();
    let used: Vec<Variable> = (0..g)
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let stage = vars.add(variable().min(0.0));
    let e: Vec<Variable> = (0..g).map(|_| vars.add(variable().min(0.0))).collect();

    // Seconds per byte; bandwidths are positive by construction of the host file.
    let inv = |bw: f64| if bw > 0.0 { 1.0 / bw } else { 1.0 };
    let cpu_inv = inv(m.cpu_bw);
    let ms = 1e3; // objective in milliseconds keeps coefficients O(1)

    // Memory rows in GiB keep HiGHS's coefficients O(1) (bytes would be ~1e10).
    let gb = |b: f64| b / (1u64 << 30) as f64;
    let mut cons = Vec::new();
    for s in 0..s_n {
        for k in 0..g {
            if k + 1 < g {
                cons.push(constraint!(y[s][k] >= y[s][k + 1]));
            }
            if s + 1 < s_n {
                cons.push(constraint!(y[s + 1][k] >= y[s][k]));
            }
        }
    }
    // Members of class c whose layer is on GPU d.
    let members_on = |c: &Class, d: usize| -> Expression {
        c.members
            .iter()
            .fold(Expression::from(0.0), |a, &mi| a + x(m.movable[mi].slot, d))
    };
    let kept =
        |ci: usize| -> Expression { n[ci].iter().fold(Expression::from(0.0), |a, v| a + *v) };
    for (ci, c) in classes.iter().enumerate() {
        for d in 0..g {
            cons.push(constraint!(n[ci][d] <= members_on(c, d)));
            if !c.is_output {
                // Layers on d with a group of this class elsewhere: two hand-offs each.
                cons.push(constraint!(e[d] >= members_on(c, d) - n[ci][d]));
            }
        }
        let size = c.members.len() as f64;
        cons.push(constraint!(size * any_cpu[ci] >= size - kept(ci)));
    }
    // Memory per GPU.
    for d in 0..g {
        let mut mem = Expression::from(gb(m.overhead[d] as f64));
        for s in 0..s_n {
            let w = gb((m.slot_fixed[s] + m.slot_kv[s]) as f64);
            if w > 0.0 {
                mem += w * x(s, d);
            }
            cons.push(constraint!(used[d] >= x(s, d)));
        }
        for (ci, c) in classes.iter().enumerate() {
            let mut per = gb(c.bytes as f64);
            if c.is_output {
                per += gb(m.compute_logits as f64);
            }
            mem += per * n[ci][d];
        }
        if !classes.iter().any(|c| c.is_output) {
            mem += gb(m.compute_logits as f64) * x(s_n - 1, d);
        }
        mem += gb(m.compute_base as f64) * used[d];
        if d == 0 && m.op_offload {
            mem += stage;
        }
        cons.push(constraint!(mem <= gb(budgets.gpu[d])));
    }
    if m.op_offload && g > 0 {
        for (ci, c) in classes.iter().enumerate() {
            cons.push(constraint!(stage >= gb(c.max_tensor as f64) * any_cpu[ci]));
        }
        for s in 0..s_n {
            if m.slot_fixed_max_tensor[s] > 0 {
                cons.push(constraint!(
                    stage >= gb(m.slot_fixed_max_tensor[s] as f64) * x_cpu(s)
                ));
            }
        }
    }
    // Host RAM.
    let mut host = Expression::from(gb((m.input_bytes + m.host_fixed) as f64));
    let mut cpu_weights = Expression::from(0.0);
    for s in 0..s_n {
        let w = gb(m.slot_fixed[s] as f64);
        host += (w + gb(m.slot_kv[s] as f64)) * x_cpu(s);
        cpu_weights += w * x_cpu(s);
    }
    for (ci, c) in classes.iter().enumerate() {
        let off = c.members.len() as f64 - kept(ci);
        host += gb(c.bytes as f64) * off.clone();
        cpu_weights += gb(c.bytes as f64) * off;
    }
    if goal == Goal::Speed && budgets.ram.is_finite() {
        cons.push(constraint!(host.clone() <= gb(budgets.ram)));
    }

    let objective: Expression = match goal {
        Goal::MinHostBytes => host.clone(),
        Goal::Speed => {
            let mut t = Expression::from(0.0);
            for s in 0..s_n {
                let r = m.slot_fixed_read[s] + m.slot_kv_read[s];
                if r <= 0.0 {
                    continue;
                }
                t += r * cpu_inv * ms;
                for d in 0..g {
                    t += r * (inv(m.gpu_bw[d]) - cpu_inv) * ms * x(s, d);
                }
            }
            for (ci, c) in classes.iter().enumerate() {
                t += c.read * c.members.len() as f64 * cpu_inv * ms;
                for d in 0..g {
                    t += c.read * (inv(m.gpu_bw[d]) - cpu_inv) * ms * n[ci][d];
                }
            }
            let split = m.per_split_s * ms;
            for ev in &e {
                t += 2.0 * split * *ev;
            }
            for k in 0..g {
                t += split * (Expression::from(y[s_n - 1][k]) - y[0][k]);
            }
            if prefill_weight > 0.0 {
                if let Some(pcie) = m.pcie_bw {
                    let per_token = (1u64 << 30) as f64 / (pcie * m.n_ubatch_f());
                    t += prefill_weight * per_token * ms * cpu_weights.clone();
                }
            }
            t
        }
    };

    let mut problem = vars
        .minimise(objective.clone())
        .using(good_lp::solvers::highs::highs);
    problem = problem
        .set_mip_rel_gap(MIP_REL_GAP)
        .map_err(|e| e.to_string())?;
    problem = problem.set_threads(1);
    // Presolve probing (rule 15, bit 32768) tries every binary of the slot chain and found nothing
    // to reduce on our models while taking ~90 % of the time (HiGHS log, 94 layers × 8 GPUs).
    problem = problem.set_option("presolve_rule_off", 32768);
    if std::env::var_os("PLACER_HIGHS_VERBOSE").is_some() {
        problem.set_verbose(true);
    }
    problem = problem.set_time_limit(30.0);
    for c in cons {
        problem = problem.with(c);
    }
    // Warm start: a --fit-like whole-layer fill gives HiGHS an incumbent at once, so branch and
    // bound only has to close the 1 % gap (without it, finding a first feasible point dominates).
    if goal == Goal::Speed {
        if let Some(start) = greedy_start(m, budgets, &classes) {
            let mut init: Vec<(Variable, f64)> = Vec::new();
            for s in 0..s_n {
                for k in 0..g {
                    init.push((y[s][k], if start.rank[s] > k { 1.0 } else { 0.0 }));
                }
            }
            for (ci, c) in classes.iter().enumerate() {
                let kept: usize = start.keep[ci].iter().sum();
                for d in 0..g {
                    init.push((n[ci][d], start.keep[ci][d] as f64));
                }
                init.push((any_cpu[ci], if kept < c.members.len() { 1.0 } else { 0.0 }));
            }
            for d in 0..g {
                let used_d = start.rank.contains(&(d + 1));
                init.push((used[d], if used_d { 1.0 } else { 0.0 }));
                // Layers on d with some class member on the CPU (two hand-offs each).
                let off = classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.is_output)
                    .map(|(ci, c)| {
                        let on_d = c
                            .members
                            .iter()
                            .filter(|&&mi| start.rank[m.movable[mi].slot] == d + 1)
                            .count();
                        on_d - start.keep[ci][d]
                    })
                    .max()
                    .unwrap_or(0);
                init.push((e[d], off as f64));
            }
            init.push((stage, start.stage));
            problem = problem.with_initial_solution(init);
        }
    }
    let t_solve = std::time::Instant::now();
    let sol = problem.solve().map_err(|e| e.to_string())?;
    if std::env::var_os("PLACER_DEBUG_SOLVER").is_some() {
        eprintln!(
            "  highs: {:.3}s ({} classes, {} slots, {} gpus)",
            t_solve.elapsed().as_secs_f64(),
            classes.len(),
            s_n,
            g
        );
    }
    let rank = |s: usize| (0..g).filter(|&k| sol.value(y[s][k]) > 0.5).count();
    let dev_of_rank = |r: usize| {
        if r == 0 {
            DeviceId::Cpu
        } else {
            DeviceId::Gpu(r - 1)
        }
    };
    let slot_device: Vec<DeviceId> = (0..s_n).map(|s| dev_of_rank(rank(s))).collect();
    let mut movable_device = vec![DeviceId::Cpu; m.movable.len()];
    for (ci, c) in classes.iter().enumerate() {
        for d in 0..g {
            let keep = sol.value(n[ci][d]).round().max(0.0) as usize;
            let on_d: Vec<usize> = c
                .members
                .iter()
                .copied()
                .filter(|&mi| slot_device[m.movable[mi].slot] == DeviceId::Gpu(d))
                .collect();
            for &mi in on_d.iter().rev().take(keep) {
                movable_device[mi] = DeviceId::Gpu(d);
            }
        }
    }
    let objective_s = sol.eval(&objective) / ms;
    Ok(IlpResult {
        slot_device,
        movable_device,
        objective_s,
    })
}

/// A whole-layer assignment: rank per slot (0 = CPU, d+1 = GPU d) and the op-offload stage (GiB).
struct Start {
    rank: Vec<usize>,
    /// Members of each class kept on each GPU.
    keep: Vec<Vec<usize>>,
    stage: f64,
}

/// `--fit`'s order (common/fit.cpp: "filling dense layers back-to-front", then "converting
/// dense-only layers to full layers"): decide which slots fit on the GPUs with their routed
/// experts on the CPU, give those slots to the GPUs front to back (GPU 0 first), then keep routed
/// expert classes on each GPU while room is left, best bytes-read-per-byte first. None if the host
/// RAM row would not hold the rest.
fn greedy_start(m: &LinearModel, b: &Budgets, classes: &[Class]) -> Option<Start> {
    let g = m.n_gpus;
    let s_n = m.n_slots;
    let routed = |c: &Class| !c.is_output && m.movable[c.members[0]].kind.is_routed_experts();
    let mut core = vec![0f64; s_n];
    let mut slot_max = m.slot_fixed_max_tensor.clone();
    for s in 0..s_n {
        core[s] = (m.slot_fixed[s] + m.slot_kv[s]) as f64;
    }
    for c in classes.iter().filter(|c| !routed(c)) {
        for &mi in &c.members {
            let mv = &m.movable[mi];
            core[mv.slot] += mv.bytes as f64
                + if c.is_output {
                    m.compute_logits as f64
                } else {
                    0.0
                };
            slot_max[mv.slot] = slot_max[mv.slot].max(mv.max_tensor);
        }
    }
    if !classes.iter().any(|c| c.is_output) {
        core[s_n - 1] += m.compute_logits as f64;
    }
    // Conservative stage: the largest tensor anywhere (routed or not).
    let all_max = classes
        .iter()
        .map(|c| c.max_tensor)
        .chain(slot_max.iter().copied())
        .max()
        .unwrap_or(0);
    let stage = if m.op_offload { all_max as f64 } else { 0.0 };
    let base =
        |d: usize| m.overhead[d] as f64 + m.compute_base as f64 + if d == 0 { stage } else { 0.0 };
    // How many trailing slots the GPUs hold (back to front).
    let mut next = s_n;
    for d in (0..g).rev() {
        let mut mem = base(d);
        while next > 0 && mem + core[next - 1] <= b.gpu[d] {
            mem += core[next - 1];
            next -= 1;
        }
    }
    // Give them out front to back in proportion to each GPU's room (so every GPU also gets
    // expert room, as --fit's "full layers" end up), else greedily front to back, else back to
    // front.
    let n_gpu_slots = s_n - next;
    let total_room: f64 = (0..g).map(|d| (b.gpu[d] - base(d)).max(0.0)).sum();
    let assign = |mode: u8| -> Option<(Vec<usize>, Vec<f64>)> {
        let mut rank = vec![0usize; s_n];
        let mut room: Vec<f64> = (0..g).map(|d| b.gpu[d] - base(d)).collect();
        if mode < 2 {
            let mut s = next;
            for d in 0..g {
                let quota = if mode == 0 && d + 1 < g && total_room > 0.0 {
                    s + ((n_gpu_slots as f64) * room[d].max(0.0) / total_room).round() as usize
                } else {
                    s_n
                };
                while s < s_n.min(quota.max(s)) && core[s] <= room[d] {
                    room[d] -= core[s];
                    rank[s] = d + 1;
                    s += 1;
                }
            }
            (s == s_n).then_some((rank, room))
        } else {
            let mut s = s_n;
            for d in (0..g).rev() {
                while s > next && core[s - 1] <= room[d] {
                    room[d] -= core[s - 1];
                    rank[s - 1] = d + 1;
                    s -= 1;
                }
            }
            (s == next).then_some((rank, room))
        }
    };
    let (rank, mut room) = assign(0).or_else(|| assign(1)).or_else(|| assign(2))?;
    // Routed experts back onto their layer's GPU while they fit, most valuable per byte first.
    let mut order: Vec<usize> = (0..classes.len())
        .filter(|&ci| routed(&classes[ci]))
        .collect();
    order.sort_by(|&a, &b2| {
        let v = |c: &Class| c.read / c.bytes.max(1) as f64;
        v(&classes[b2])
            .partial_cmp(&v(&classes[a]))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut keep = vec![vec![0usize; g]; classes.len()];
    let mut host = (m.input_bytes + m.host_fixed) as f64;
    for s in 0..s_n {
        if rank[s] == 0 {
            host += core[s];
        }
    }
    for ci in order {
        let c = &classes[ci];
        for d in 0..g {
            let on_d = c
                .members
                .iter()
                .filter(|&&mi| rank[m.movable[mi].slot] == d + 1)
                .count();
            let fit = if c.bytes == 0 {
                on_d
            } else {
                (room[d] / c.bytes as f64).floor().max(0.0) as usize
            };
            let k = on_d.min(fit);
            keep[ci][d] = k;
            room[d] -= k as f64 * c.bytes as f64;
        }
        let kept: usize = keep[ci].iter().sum();
        host += (c.members.len() - kept) as f64 * c.bytes as f64;
    }
    for (ci, c) in classes.iter().enumerate() {
        if !routed(c) {
            for d in 0..g {
                keep[ci][d] = c
                    .members
                    .iter()
                    .filter(|&&mi| rank[m.movable[mi].slot] == d + 1)
                    .count();
            }
        }
    }
    (host <= b.ram).then_some(Start {
        rank,
        keep,
        stage: stage / (1u64 << 30) as f64,
    })
}

/// Movable groups that are interchangeable for the program.
struct Class {
    members: Vec<usize>,
    bytes: u64,
    max_tensor: u64,
    read: f64,
    is_output: bool,
}

fn classes_of(m: &LinearModel) -> Vec<Class> {
    let mut map: std::collections::BTreeMap<(u8, u64, u64, u64), usize> = Default::default();
    let mut out: Vec<Class> = Vec::new();
    for (mi, mv) in m.movable.iter().enumerate() {
        let key = (mv.kind as u8, mv.bytes, mv.max_tensor, mv.read.to_bits());
        let ci = *map.entry(key).or_insert_with(|| {
            out.push(Class {
                members: Vec::new(),
                bytes: mv.bytes,
                max_tensor: mv.max_tensor,
                read: mv.read,
                is_output: mv.kind == crate::anatomy::GroupKind::Output,
            });
            out.len() - 1
        });
        out[ci].members.push(mi);
    }
    out
}

impl LinearModel {
    fn n_ubatch_f(&self) -> f64 {
        self.n_ubatch.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_stays_on_gpu_when_memory_is_plenty() {
        let a = crate::solver::fixture::build(&crate::solver::fixture::Spec::gpt_oss_120b());
        let host = crate::host::default_host();
        let req = crate::solver::SolveRequest {
            ctx: 8192,
            ..Default::default()
        };
        let m = crate::solver::coeffs::build(
            &a,
            &host,
            &req,
            &crate::calibrate::Calibration::shipped(),
        );
        let b = Budgets {
            gpu: vec![1e12; m.n_gpus],
            ram: 1e13,
        };
        let r = solve(&m, &b, Goal::Speed, 0.0).unwrap();
        let out = m
            .movable
            .iter()
            .position(|mv| mv.kind == crate::anatomy::GroupKind::Output)
            .unwrap();
        eprintln!(
            "{:?} {:?} obj {}",
            r.slot_device, r.movable_device[out], r.objective_s
        );
        assert_ne!(r.movable_device[out], DeviceId::Cpu);
        assert!(r.movable_device.iter().all(|d| *d != DeviceId::Cpu));
    }
}
