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

/// Relative optimality gap on the request time HiGHS may stop at: 3 %. Moving one expert tensor
/// group between GPU and CPU changes the predicted time by ~1–2 %, which is the gap between the LP
/// bound (fractional groups) and any integer placement; proving 0.1 % costs seconds of branch and
/// bound, and 1 % returned the same placement as 3 % in 8 of the 9 corpus scenarios (docs/solver.md
/// §2.4). 3 % is below the speed model's own error (docs/calibration.md, held-out decode error).
pub const MIP_REL_GAP: f32 = 3e-2;

/// Wall-clock limit of one HiGHS run, seconds. The corpus solves in well under a second per
/// program (docs/benchmarks.md "Solve time"); the limit only bounds a pathological program, and
/// HiGHS then returns its incumbent (the warm start at worst), which the exact check still
/// verifies.
pub const HIGHS_TIME_LIMIT_S: f64 = 30.0;

/// Why the integer program has no answer.
#[derive(Debug, thiserror::Error)]
pub enum IlpError {
    /// No placement satisfies the budgets (good_lp's `ResolutionError::Infeasible`).
    #[error("no placement fits the budgets")]
    Infeasible,
    /// HiGHS failed otherwise (unbounded, an option it rejected, an internal error).
    #[error("HiGHS: {0}")]
    Solver(good_lp::ResolutionError),
    /// A gap the solver computed is negative or infinite (a model with NaN or infinite times).
    #[error("optimality gap rejected: {0}")]
    Gap(String),
}

/// The optimality gap on the request time: `MIP_REL_GAP`, or `PLACER_MIP_GAP` (experiments).
fn gap() -> f64 {
    crate::env::mip_gap().unwrap_or(MIP_REL_GAP as f64)
}

/// Objective units (the all-CPU request is 100) a placement pays per GPU it skips before its
/// first layer: only decides between otherwise equal placements.
const TIE_BREAK: f64 = 1e-6;

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
    /// Host RAM: bytes available to CPU weights, CPU KV and host buffers.
    pub ram: f64,
}

/// A solved program: the device of each slot, and for each movable group its device.
#[derive(Debug, Clone)]
pub struct IlpResult {
    /// Device of each layer slot (the output layer last).
    pub slot_device: Vec<DeviceId>,
    /// Device of each movable group (same order as `LinearModel::movable`).
    pub movable_device: Vec<DeviceId>,
    /// Objective value: predicted seconds of the request for `Goal::Speed`, host bytes for
    /// `Goal::MinHostBytes`.
    pub objective_s: f64,
}

/// Solve the program with HiGHS under `budgets`, for `goal`.
pub fn solve(m: &LinearModel, budgets: &Budgets, goal: Goal) -> Result<IlpResult, IlpError> {
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
    // members kept are chosen when the solution is read back (see there): a run of layers per
    // class, which also gives compact -ot ranges.
    let classes = classes_of(m);
    let n: Vec<Vec<Variable>> = classes
        .iter()
        .map(|c| {
            (0..g)
                .map(|_| vars.add(variable().integer().min(0.0).max(c.members.len() as f64)))
                .collect()
        })
        .collect();
    let start = match goal {
        Goal::Speed => heuristic_start(m, budgets, &classes),
        Goal::MinHostBytes => None,
    };
    // The op-offload stage on GPU 0 (its largest CPU-resident tensor) as a max of binaries makes
    // the LP bound weak. When the incumbent already streams weights, its stage is reserved as a
    // constant instead and nothing with a larger tensor may go to the CPU, which keeps the
    // program exact for every placement it can return.
    let fixed_stage: Option<f64> = match &start {
        Some((_, st)) if m.op_offload && g > 0 && st.stage > 0.0 => Some(st.stage),
        _ => None,
    };
    let any_cpu: Vec<Variable> = if fixed_stage.is_none() {
        classes
            .iter()
            .map(|_| vars.add(variable().binary()))
            .collect()
    } else {
        Vec::new()
    };
    let used: Vec<Variable> = (0..g)
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let stage = vars.add(variable().min(0.0));
    let e: Vec<Variable> = (0..g).map(|_| vars.add(variable().min(0.0))).collect();

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
        match fixed_stage {
            None => cons.push(constraint!(size * any_cpu[ci] >= size - kept(ci))),
            Some(st) if m.op_offload && gb(c.max_tensor as f64) > st + 1e-9 => {
                cons.push(constraint!(kept(ci) >= size));
            }
            Some(_) => {}
        }
    }
    if m.gpu_only {
        for s in 0..s_n {
            cons.push(constraint!(x_cpu(s) <= 0.0));
        }
        for (ci, c) in classes.iter().enumerate() {
            cons.push(constraint!(kept(ci) >= c.members.len() as f64));
        }
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
        if d == m.offload_dev && m.op_offload {
            match fixed_stage {
                Some(st) => mem += st,
                None => mem += stage,
            }
        }
        // The output matrix on the CPU: in the prompt graph llama.cpp reserves, op offload runs
        // it on GPU 0, whose compute buffer then holds its logits as well as the weight copy
        // (`stage`). `compute_logits` is llama-server's (n_outputs_max = n_parallel rows);
        // llama-completion reserves a whole ubatch of rows (testbed call 5,
        // dense32b-gpu24-c32k aggressive: 2,015 MiB = 826 MiB weight copy + 2,048 × 151,936
        // f32 logits), which the exact memory model judges by the launch's tool.
        if d == m.offload_dev && m.op_offload {
            for (ci, c) in classes.iter().enumerate() {
                if c.is_output {
                    mem += gb(m.compute_logits as f64) * (c.members.len() as f64 - kept(ci));
                }
            }
        }
        cons.push(constraint!(mem <= gb(budgets.gpu[d])));
    }
    if let Some(st) = fixed_stage {
        for s in 0..s_n {
            if gb(m.slot_fixed_max_tensor[s] as f64) > st + 1e-9 {
                cons.push(constraint!(x_cpu(s) <= 0.0));
            }
        }
    } else if m.op_offload && g > 0 {
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
    for s in 0..s_n {
        let w = gb(m.slot_fixed[s] as f64);
        host += (w + gb(m.slot_kv[s] as f64)) * x_cpu(s);
    }
    for (ci, c) in classes.iter().enumerate() {
        let off = c.members.len() as f64 - kept(ci);
        host += gb(c.bytes as f64) * off;
    }
    if goal == Goal::Speed && budgets.ram.is_finite() {
        cons.push(constraint!(host.clone() <= gb(budgets.ram)));
    }

    // Objective scale: seconds of the request → O(1..100) coefficients for HiGHS.
    let scale = objective_scale(m);
    let objective: Expression = match goal {
        Goal::MinHostBytes => host.clone(),
        Goal::Speed => {
            let cpu = g;
            let mut t = Expression::from(0.0);
            for s in 0..s_n {
                let c_cpu = m.slot_cost(s, cpu);
                t += c_cpu * scale;
                for d in 0..g {
                    let delta = m.slot_cost(s, d) - c_cpu;
                    if delta != 0.0 {
                        t += delta * scale * x(s, d);
                    }
                }
            }
            for (ci, c) in classes.iter().enumerate() {
                let mi = c.members[0];
                let c_cpu = m.mov_cost(mi, cpu);
                t += c_cpu * c.members.len() as f64 * scale;
                for d in 0..g {
                    t += (m.mov_cost(mi, d) - c_cpu) * scale * n[ci][d];
                }
            }
            // An RPC device holding any layer pays its link once per graph step
            // (speed::rpc_step_s): the program prefers few hosts and the local devices.
            for d in 0..g {
                let c = m.rpc_cost(d);
                if c > 0.0 {
                    t += c * scale * used[d];
                }
            }
            let split = m.split_cost() * scale;
            for ev in &e {
                t += 2.0 * split * *ev;
            }
            for k in 0..g {
                t += split * (Expression::from(y[s_n - 1][k]) - y[0][k]);
            }
            // Ties (identical GPUs, one of them left empty) go to the users' device order: the
            // first layers on the lowest GPU (a cost far below any real term).
            for k in 1..g {
                t += TIE_BREAK * Expression::from(y[0][k]);
            }
            t
        }
    };

    let mut problem = vars
        .minimise(objective.clone())
        .using(good_lp::solvers::highs::highs);
    // The gap is on the request time: HiGHS drops the objective's constant (good_lp passes only
    // column costs), so its own relative gap would be relative to "time saved against all on
    // the CPU", many times looser. An absolute gap of MIP_REL_GAP × the incumbent's time is the
    // intended one.
    match &start {
        Some((t, _)) => {
            problem = problem
                .set_mip_rel_gap(1e-6)
                .and_then(|p| p.set_mip_abs_gap((gap() * t * scale) as f32))
                .map_err(|e| IlpError::Gap(e.to_string()))?;
        }
        None => {
            problem = problem
                .set_mip_rel_gap(MIP_REL_GAP)
                .map_err(|e| IlpError::Gap(e.to_string()))?;
        }
    }
    problem = problem.set_threads(1);
    // HiGHS's own primal heuristics (sub-MIPs, RINS/RENS) took half the time on these programs
    // and never improved the incumbent `heuristic_start` hands over (HiGHS log of
    // qwen3-30b-a3b-q8 -c 65536, docs/benchmarks.md "Solve time"): off, unless no incumbent.
    if start.is_some() {
        problem = problem.set_option("mip_heuristic_effort", 0.0);
    }
    // Presolve probing (rule 15, bit 32768) tries every binary of the slot chain and found nothing
    // to reduce on our models while taking ~90 % of the time (HiGHS log, 94 layers × 8 GPUs).
    problem = problem.set_option("presolve_rule_off", 32768);
    if crate::env::flag(crate::env::HIGHS_VERBOSE) {
        problem.set_verbose(true);
    }
    problem = problem.set_time_limit(HIGHS_TIME_LIMIT_S);
    if let Ok(opts) = std::env::var(crate::env::HIGHS_OPTS) {
        for kv in opts.split(';').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            problem = if let Ok(i) = v.parse::<i32>() {
                problem.set_option(k, i)
            } else if let Ok(f) = v.parse::<f64>() {
                problem.set_option(k, f)
            } else if v == "true" || v == "false" {
                problem.set_option(k, v == "true")
            } else {
                problem.set_option(k, v)
            };
        }
    }
    for c in cons {
        problem = problem.with(c);
    }
    // Warm start: a --fit-like whole-layer fill gives HiGHS an incumbent at once, so branch and
    // bound only has to close the gap (without it, finding a first feasible point dominates).
    if goal == Goal::Speed {
        if let Some((_, start)) = &start {
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
                if let Some(v) = any_cpu.get(ci) {
                    init.push((*v, if kept < c.members.len() { 1.0 } else { 0.0 }));
                }
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
            if fixed_stage.is_none() {
                init.push((stage, start.stage));
            }
            problem = problem.with_initial_solution(init);
        }
    }
    let t_solve = std::time::Instant::now();
    let sol = problem.solve().map_err(|e| match e {
        good_lp::ResolutionError::Infeasible => IlpError::Infeasible,
        e => IlpError::Solver(e),
    })?;
    if crate::env::flag(crate::env::DEBUG_SOLVER) {
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
    // GPUs that send some class member to the CPU.
    let spilling = (0..g)
        .filter(|&d| {
            classes.iter().enumerate().any(|(ci, c)| {
                let on_d = c
                    .members
                    .iter()
                    .filter(|&&mi| slot_device[m.movable[mi].slot] == DeviceId::Gpu(d))
                    .count();
                (sol.value(n[ci][d]).round().max(0.0) as usize) < on_d
            })
        })
        .count();
    let cpu_last = spilling <= 1;
    for (ci, c) in classes.iter().enumerate() {
        for d in 0..g {
            let keep = sol.value(n[ci][d]).round().max(0.0) as usize;
            let on_d: Vec<usize> = c
                .members
                .iter()
                .copied()
                .filter(|&mi| slot_device[m.movable[mi].slot] == DeviceId::Gpu(d))
                .collect();
            // Which members stay costs the same in the program. When one GPU sends members to
            // the CPU they are its LAST layers — where --fit's overflow puts them
            // (common/fit.cpp "filling them front-to-back with overflow") and what prefilled
            // faster on the testbed (docs/calibration.md, the 0.68× finding). When several do,
            // they are the first layers of each range, which keeps the CPU weights' mapped file
            // span (CPU_Mapped, what the host-RAM check counts) from covering whole GPU ranges.
            let kept: Vec<usize> = if cpu_last {
                on_d.iter().copied().take(keep).collect()
            } else {
                on_d.iter().rev().copied().take(keep).collect()
            };
            for mi in kept {
                movable_device[mi] = DeviceId::Gpu(d);
            }
        }
    }
    let objective_s = match goal {
        Goal::Speed => sol.eval(&objective) / scale,
        Goal::MinHostBytes => sol.eval(&objective),
    };
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
    let base = |d: usize| {
        m.overhead[d] as f64 + m.compute_base as f64 + if d == m.offload_dev { stage } else { 0.0 }
    };
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

/// The request time of the incumbent [`heuristic_start`] finds for `m` within `budgets`, and
/// whether it keeps any weight (besides the token embeddings) on the CPU. Cheap (no HiGHS): the
/// solver compares `-ub` candidates with it.
pub fn incumbent(m: &LinearModel, budgets: &Budgets) -> Option<(f64, bool)> {
    let classes = classes_of(m);
    let (t, st) = heuristic_start(m, budgets, &classes)?;
    let cpu_slot = st.rank.contains(&0);
    let cpu_member = classes
        .iter()
        .enumerate()
        .any(|(ci, c)| st.keep[ci].iter().sum::<usize>() < c.members.len());
    // + the placement-independent part, so the printed request times are whole.
    let constant = m.gen_tokens * m.dec_const + m.prompt_tokens * m.pre_const;
    Some((t + constant, cpu_slot || cpu_member))
}

/// Seconds of the request → objective units: the all-on-CPU request time maps to 100, which
/// keeps HiGHS's cost coefficients O(1) whatever the workload (ms per token or minutes per
/// request).
fn objective_scale(m: &LinearModel) -> f64 {
    let cpu = m.n_gpus;
    let all_cpu: f64 = (0..m.n_slots).map(|s| m.slot_cost(s, cpu)).sum::<f64>()
        + (0..m.movable.len())
            .map(|i| m.mov_cost(i, cpu))
            .sum::<f64>();
    if all_cpu > 0.0 {
        100.0 / all_cpu
    } else {
        1.0
    }
}

/// The incumbent handed to HiGHS: [`greedy_start`]'s whole-layer fill (what `--fit` would do),
/// then a local search over the layer counts per device (move 1, 2, 4 or 8 slots across each
/// boundary of the CPU prefix and the GPU ranges) where each candidate keeps the movable classes
/// that save most time per byte on each GPU ([`fill`]) and is priced with the program's own
/// objective. HiGHS then only has to close the gap from a near-optimal point (docs/solver.md
/// §2, "Warm start").
fn heuristic_start(m: &LinearModel, b: &Budgets, classes: &[Class]) -> Option<(f64, Start)> {
    let g = m.n_gpus;
    let s_n = m.n_slots;
    let counts_of = |rank: &[usize]| {
        let mut c = vec![0usize; g + 1];
        for &r in rank {
            c[r] += 1;
        }
        c
    };
    let rank_of = |c: &[usize]| {
        let mut r = Vec::with_capacity(s_n);
        for (k, &n) in c.iter().enumerate() {
            r.extend(std::iter::repeat_n(k, n));
        }
        r
    };
    let mut seeds: Vec<Vec<usize>> = Vec::new();
    if let Some(st) = greedy_start(m, b, classes) {
        seeds.push(counts_of(&st.rank));
    }
    // All slots on the GPUs in proportion to their budgets (the start when experts must go).
    if g > 0 {
        let tot: f64 = b.gpu.iter().map(|x| x.max(0.0)).sum();
        let mut c = vec![0usize; g + 1];
        let mut left = s_n;
        for d in 0..g {
            let k = if d + 1 == g || tot <= 0.0 {
                left
            } else {
                ((s_n as f64 * b.gpu[d].max(0.0) / tot).round() as usize).min(left)
            };
            c[d + 1] = k;
            left -= k;
        }
        seeds.push(c);
    }
    let mut best: Option<(f64, Start)> = None;
    for seed in seeds {
        let Some((mut t, mut st)) = fill(m, b, classes, &rank_of(&seed)) else {
            continue;
        };
        let mut cur = seed;
        for _ in 0..400 {
            let mut improved = false;
            for k in 0..g {
                for step in [1usize, 2, 4, 8, usize::MAX] {
                    for dir in [false, true] {
                        let (from, to) = if dir { (k, k + 1) } else { (k + 1, k) };
                        // usize::MAX: empty `from` into its neighbour (one hand-off less).
                        let step = if step == usize::MAX { cur[from] } else { step };
                        if step == 0 || cur[from] < step {
                            continue;
                        }
                        let mut c = cur.clone();
                        c[from] -= step;
                        c[to] += step;
                        if let Some((t2, st2)) = fill(m, b, classes, &rank_of(&c)) {
                            if t2 < t - 1e-12 * t.abs() {
                                t = t2;
                                st = st2;
                                cur = c;
                                improved = true;
                            }
                        }
                    }
                }
            }
            if !improved {
                break;
            }
        }
        // GPUs left empty at the front (equal GPUs, fewer hand-offs): shift the ranges down
        // so the users' device order is kept when it costs nothing.
        let lead = cur[1..].iter().take_while(|&&n| n == 0).count();
        if lead > 0 && lead < g {
            let mut c = vec![cur[0]];
            c.extend(cur[1 + lead..].iter().copied());
            c.resize(g + 1, 0);
            if let Some((t2, st2)) = fill(m, b, classes, &rank_of(&c)) {
                if t2 <= t * (1.0 + 1e-9) {
                    t = t2;
                    st = st2;
                }
            }
        }
        if best.as_ref().is_none_or(|(bt, _)| t < *bt) {
            best = Some((t, st));
        }
    }
    if crate::env::flag(crate::env::DEBUG_SOLVER) {
        if let Some((t, st)) = &best {
            eprintln!("  start: {t:.4} s, counts {:?}", {
                let mut c = vec![0usize; g + 1];
                st.rank.iter().for_each(|&r| c[r] += 1);
                c
            });
        }
    }
    best
}

/// For a whole-layer assignment `rank` (0 = CPU, d+1 = GPU d): on each GPU keep the movable
/// class members that save the most request time per byte while room is left (the op-offload
/// stage on GPU 0 re-reserved until it no longer grows), then price the placement with the
/// program's objective. None when a GPU or the host RAM row does not hold it.
///
/// A movable output matrix is decided both ways as well as by the knapsack, and the cheapest wins:
/// with n_batch logits rows (llama-completion) its logits go to GPU 0's compute buffer when it is on
/// the CPU (op offload) and to its own GPU when kept, and the knapsack alone reserved both (testbed
/// GLM 128K: 1.2 GB of CUDA0 left unused, docs/solver.md §2.4).
fn fill(m: &LinearModel, b: &Budgets, classes: &[Class], rank: &[usize]) -> Option<(f64, Start)> {
    let free = fill_with(m, b, classes, rank, OutputMode::Knapsack);
    if !classes.iter().any(|c| c.is_output) || !m.op_offload || m.n_gpus == 0 {
        return free;
    }
    [OutputMode::Cpu, OutputMode::Kept]
        .into_iter()
        .filter_map(|mode| fill_with(m, b, classes, rank, mode))
        .chain(free)
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// How [`fill_with`] treats a movable output matrix.
#[derive(Clone, Copy, PartialEq)]
enum OutputMode {
    /// Like any class: kept while room is left, its CPU logits reserved on GPU 0 up front.
    Knapsack,
    /// On the CPU (its logits on GPU 0 through op offload).
    Cpu,
    /// On the GPU of its slot, with its logits; nothing reserved on GPU 0 for it.
    Kept,
}

fn fill_with(
    m: &LinearModel,
    b: &Budgets,
    classes: &[Class],
    rank: &[usize],
    out_mode: OutputMode,
) -> Option<(f64, Start)> {
    let g = m.n_gpus;
    let s_n = m.n_slots;
    let has_output_class = classes.iter().any(|c| c.is_output);
    let mut base = vec![0f64; g];
    let mut used = vec![false; g];
    for d in 0..g {
        base[d] = m.overhead[d] as f64;
    }
    for s in 0..s_n {
        if rank[s] > 0 {
            let d = rank[s] - 1;
            base[d] += (m.slot_fixed[s] + m.slot_kv[s]) as f64;
            used[d] = true;
        }
    }
    for d in 0..g {
        if used[d] {
            base[d] += m.compute_base as f64;
        }
    }
    if !has_output_class && rank[s_n - 1] > 0 {
        base[rank[s_n - 1] - 1] += m.compute_logits as f64;
    }
    // An output matrix on the CPU is op-offloaded in the reserved prompt graph: its logits land
    // in GPU 0's compute buffer (ILP row below). Reserved here as if it were off; keeping it on
    // GPU 0 then costs only its bytes there.
    let out_off_logits = if m.op_offload && g > 0 && out_mode != OutputMode::Kept {
        classes
            .iter()
            .filter(|c| c.is_output)
            .map(|c| c.members.len() as f64 * m.compute_logits as f64)
            .sum::<f64>()
    } else {
        0.0
    };
    if g > 0 {
        base[m.offload_dev.min(g - 1)] += out_off_logits;
    }
    let mut on: Vec<Vec<usize>> = classes
        .iter()
        .map(|c| {
            let mut v = vec![0usize; g];
            for &mi in &c.members {
                let r = rank[m.movable[mi].slot];
                if r > 0 {
                    v[r - 1] += 1;
                }
            }
            v
        })
        .collect();
    // A decided output class leaves the knapsack: kept ones take their room first.
    let mut out_kept: Vec<(usize, Vec<usize>)> = Vec::new();
    if out_mode != OutputMode::Knapsack {
        for (ci, c) in classes.iter().enumerate().filter(|(_, c)| c.is_output) {
            if out_mode == OutputMode::Kept {
                if on[ci].iter().sum::<usize>() < c.members.len() {
                    return None; // its slot is on the CPU
                }
                for d in 0..g {
                    base[d] += on[ci][d] as f64 * (c.bytes + m.compute_logits) as f64;
                }
                out_kept.push((ci, on[ci].clone()));
            }
            on[ci] = vec![0; g];
        }
    }
    // Per class: bytes one member takes on a GPU, and the request seconds it saves there.
    let per: Vec<f64> = classes
        .iter()
        .map(|c| {
            c.bytes as f64
                + if c.is_output {
                    m.compute_logits as f64
                } else {
                    0.0
                }
        })
        .collect();
    let save = |ci: usize, d: usize| {
        let mi = classes[ci].members[0];
        m.mov_cost(mi, g) - m.mov_cost(mi, d)
    };
    let cpu_slot_max = (0..s_n)
        .filter(|&s| rank[s] == 0)
        .map(|s| m.slot_fixed_max_tensor[s])
        .max()
        .unwrap_or(0);
    let mut keep = vec![vec![0usize; g]; classes.len()];
    let mut stage = if m.op_offload {
        cpu_slot_max as f64
    } else {
        0.0
    };
    for _ in 0..4 {
        for d in 0..g {
            let room = b.gpu[d] - base[d] - if d == m.offload_dev { stage } else { 0.0 };
            if room < 0.0 {
                return None;
            }
            let per_d: Vec<f64> = classes
                .iter()
                .zip(&per)
                .map(|(c, &p)| {
                    if d == m.offload_dev && c.is_output && out_off_logits > 0.0 {
                        p - m.compute_logits as f64
                    } else {
                        p
                    }
                })
                .collect();
            keep_on_gpu(
                &mut keep,
                d,
                room,
                &on,
                &per_d,
                &|ci| save(ci, d),
                classes,
                m.split_cost(),
            )?;
            for (ci, v) in &out_kept {
                keep[*ci][d] = v[d];
            }
        }
        if !m.op_offload || g == 0 {
            break;
        }
        let need = classes
            .iter()
            .enumerate()
            .filter(|(ci, c)| keep[*ci].iter().sum::<usize>() < c.members.len())
            .map(|(_, c)| c.max_tensor)
            .chain([cpu_slot_max])
            .max()
            .unwrap_or(0) as f64;
        if need <= stage {
            break;
        }
        stage = need;
    }
    if m.gpu_only
        && (rank.contains(&0)
            || classes
                .iter()
                .enumerate()
                .any(|(ci, c)| keep[ci].iter().sum::<usize>() < c.members.len()))
    {
        return None;
    }
    // Host RAM row.
    let mut host = (m.input_bytes + m.host_fixed) as f64;
    for s in 0..s_n {
        if rank[s] == 0 {
            host += (m.slot_fixed[s] + m.slot_kv[s]) as f64;
        }
    }
    for (ci, c) in classes.iter().enumerate() {
        host += (c.members.len() - keep[ci].iter().sum::<usize>()) as f64 * c.bytes as f64;
    }
    if host > b.ram {
        return None;
    }
    // Price it exactly as the program does.
    let dev = |r: usize| if r == 0 { g } else { r - 1 };
    let mut t = 0.0;
    for s in 0..s_n {
        t += m.slot_cost(s, dev(rank[s]));
    }
    let mut e = vec![0usize; g];
    for (ci, c) in classes.iter().enumerate() {
        let mi = c.members[0];
        let kept: usize = keep[ci].iter().sum();
        t += (c.members.len() - kept) as f64 * m.mov_cost(mi, g);
        for d in 0..g {
            t += keep[ci][d] as f64 * m.mov_cost(mi, d);
            if !c.is_output {
                e[d] = e[d].max(on[ci][d] - keep[ci][d]);
            }
        }
    }
    let hops = rank[s_n - 1] - rank[0];
    t += m.split_cost() * (2 * e.iter().sum::<usize>() + hops) as f64;
    Some((
        t,
        Start {
            rank: rank.to_vec(),
            keep,
            stage: stage / (1u64 << 30) as f64,
        },
    ))
}

/// On GPU `d` with `room` bytes: how many members of each class to keep. The layers of `d` with
/// some group on the CPU cost two hand-offs each, and the program keeps the first members of each
/// class, so what counts is `e` = the most members any class sends to the CPU. For each `e`:
/// every class keeps at least `on − e` members (None if that does not fit), then the room left
/// goes to the members that save the most time per byte (at most `e` more per class); the
/// cheapest `e` wins. None when not even `e = on` fits.
#[allow(clippy::too_many_arguments)]
fn keep_on_gpu(
    keep: &mut [Vec<usize>],
    d: usize,
    room: f64,
    on: &[Vec<usize>],
    per: &[f64],
    save: &dyn Fn(usize) -> f64,
    classes: &[Class],
    split_cost: f64,
) -> Option<()> {
    let n_c = classes.len();
    let max_on = (0..n_c).map(|ci| on[ci][d]).max().unwrap_or(0);
    let mut order: Vec<usize> = (0..n_c).filter(|&ci| on[ci][d] > 0).collect();
    order.sort_by(|&a, &b| (save(b) / per[b].max(1.0)).total_cmp(&(save(a) / per[a].max(1.0))));
    let mut best: Option<(f64, Vec<usize>)> = None;
    for e in 0..=max_on {
        let mut k: Vec<usize> = (0..n_c)
            .map(|ci| {
                // The output layer is not a per-layer hand-off: it may always go.
                if classes[ci].is_output {
                    0
                } else {
                    on[ci][d].saturating_sub(e)
                }
            })
            .collect();
        let mut left = room - (0..n_c).map(|ci| k[ci] as f64 * per[ci]).sum::<f64>();
        if left < 0.0 {
            continue;
        }
        for &ci in &order {
            if save(ci) <= 0.0 {
                continue;
            }
            let more = on[ci][d] - k[ci];
            let fit = if per[ci] <= 0.0 {
                more
            } else {
                ((left / per[ci]).floor().max(0.0) as usize).min(more)
            };
            k[ci] += fit;
            left -= fit as f64 * per[ci];
        }
        let off_max = (0..n_c)
            .filter(|&ci| !classes[ci].is_output)
            .map(|ci| on[ci][d] - k[ci])
            .max()
            .unwrap_or(0);
        let cost = -(0..n_c).map(|ci| k[ci] as f64 * save(ci)).sum::<f64>()
            + 2.0 * off_max as f64 * split_cost;
        if best.as_ref().is_none_or(|(b, _)| cost < *b) {
            best = Some((cost, k));
        }
    }
    let (_, k) = best?;
    for ci in 0..n_c {
        keep[ci][d] = k[ci];
    }
    Some(())
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
        let key = (
            mv.kind as u8,
            mv.bytes,
            mv.max_tensor,
            mv.read.to_bits()
                ^ mv.pre
                    .last()
                    .copied()
                    .unwrap_or(0.0)
                    .to_bits()
                    .rotate_left(7),
        );
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
