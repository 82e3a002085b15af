//! The integer program (good_lp + HiGHS). See docs/solver.md for the formulation.
//!
//! Layer slots use ordered binaries: `y[s][k] = 1` iff slot `s` sits at rank ≥ k+1 in llama.cpp's
//! device order (CPU = rank 0, GPU d = rank d+1). `y` is non-increasing in `k` and non-decreasing
//! in `s`, which is exactly "CPU layers first, then contiguous ranges per GPU in device order"
//! (`-ngl`/`-ts`); the output layer is the last slot. A movable group may stay on its layer's GPU
//! (`u[m][d] = 1`, only if the layer is on GPU d) or go to the CPU.

use super::coeffs::LinearModel;
use crate::host::DeviceId;
use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel, Variable};

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
    let y: Vec<Vec<Variable>> = (0..s_n).map(|_| (0..g).map(|_| vars.add(variable().binary())).collect()).collect();
    let zero = Expression::from(0.0);
    let x = |s: usize, d: usize| -> Expression {
        let nxt = if d + 1 < g { Expression::from(y[s][d + 1]) } else { zero.clone() };
        Expression::from(y[s][d]) - nxt
    };
    let x_cpu = |s: usize| -> Expression {
        if g == 0 {
            Expression::from(1.0)
        } else {
            1.0 - Expression::from(y[s][0])
        }
    };
    let u: Vec<Vec<Variable>> = m.movable.iter().map(|_| (0..g).map(|_| vars.add(variable().binary())).collect()).collect();
    let used: Vec<Variable> = (0..g).map(|_| vars.add(variable().min(0.0).max(1.0))).collect();
    let stage = vars.add(variable().min(0.0));
    let n_layers = s_n - 1;
    let e: Vec<Variable> = (0..s_n).map(|_| vars.add(variable().min(0.0).max(1.0))).collect();

    // Seconds per byte; bandwidths are positive by construction of the host file.
    let inv = |bw: f64| if bw > 0.0 { 1.0 / bw } else { 1.0 };
    let cpu_inv = inv(m.cpu_bw);
    let ms = 1e3; // objective in milliseconds keeps coefficients O(1)

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
    for (mi, mv) in m.movable.iter().enumerate() {
        for d in 0..g {
            cons.push(constraint!(u[mi][d] <= x(mv.slot, d)));
        }
    }
    // Symmetry breaking: equal groups of consecutive layers on the same GPU keep the CPU-resident
    // ones first (any order costs the same; this one also gives compact -ot ranges).
    let mut prev_of_kind: std::collections::HashMap<(crate::anatomy::GroupKind, u64), usize> = Default::default();
    for (mi, mv) in m.movable.iter().enumerate() {
        if mv.slot >= n_layers {
            continue;
        }
        if let Some(&pi) = prev_of_kind.get(&(mv.kind, mv.bytes)) {
            if m.movable[pi].slot + 1 == mv.slot {
                for d in 0..g {
                    cons.push(constraint!(u[mi][d] >= u[pi][d] + x(mv.slot, d) - 1.0));
                }
            }
        }
        prev_of_kind.insert((mv.kind, mv.bytes), mi);
    }
    let on_gpu = |mi: usize| -> Expression { u[mi].iter().fold(Expression::from(0.0), |a, v| a + *v) };
    // Memory per GPU.
    for d in 0..g {
        let mut mem = Expression::from(m.overhead[d] as f64);
        for s in 0..s_n {
            let w = (m.slot_fixed[s] + m.slot_kv[s]) as f64;
            if w > 0.0 {
                mem += w * x(s, d);
            }
            cons.push(constraint!(used[d] >= x(s, d)));
        }
        for (mi, mv) in m.movable.iter().enumerate() {
            mem += mv.bytes as f64 * u[mi][d];
            if mv.kind == crate::anatomy::GroupKind::Output {
                mem += m.compute_logits as f64 * u[mi][d];
            }
        }
        if m.movable.iter().all(|mv| mv.kind != crate::anatomy::GroupKind::Output) {
            mem += m.compute_logits as f64 * x(s_n - 1, d);
        }
        mem += m.compute_base as f64 * used[d];
        if d == 0 && m.op_offload {
            mem += stage;
        }
        cons.push(constraint!(mem <= budgets.gpu[d]));
    }
    if m.op_offload && g > 0 {
        for (mi, mv) in m.movable.iter().enumerate() {
            cons.push(constraint!(stage >= mv.max_tensor as f64 * (1.0 - on_gpu(mi))));
        }
        for s in 0..s_n {
            if m.slot_fixed_max_tensor[s] > 0 {
                cons.push(constraint!(stage >= m.slot_fixed_max_tensor[s] as f64 * x_cpu(s)));
            }
        }
    }
    // Host RAM.
    let mut host = Expression::from((m.input_bytes + m.host_fixed) as f64);
    let mut cpu_weights = Expression::from(0.0);
    for s in 0..s_n {
        let w = m.slot_fixed[s] as f64;
        host += (w + m.slot_kv[s] as f64) * x_cpu(s);
        cpu_weights += w * x_cpu(s);
    }
    for (mi, mv) in m.movable.iter().enumerate() {
        host += mv.bytes as f64 * (1.0 - on_gpu(mi));
        cpu_weights += mv.bytes as f64 * (1.0 - on_gpu(mi));
    }
    if goal == Goal::Speed {
        cons.push(constraint!(host.clone() <= budgets.ram));
    }
    // Hand-offs: a layer whose movable groups are not all with it costs two splits per token.
    for (mi, mv) in m.movable.iter().enumerate() {
        let layer_on_gpu = if g > 0 { Expression::from(y[mv.slot][0]) } else { Expression::from(0.0) };
        cons.push(constraint!(e[mv.slot] >= layer_on_gpu - on_gpu(mi)));
    }

    let objective: Expression = match goal {
        Goal::MinHostBytes => host.clone() * 1e-9,
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
            for (mi, mv) in m.movable.iter().enumerate() {
                t += mv.read * cpu_inv * ms;
                for d in 0..g {
                    t += mv.read * (inv(m.gpu_bw[d]) - cpu_inv) * ms * u[mi][d];
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
                    let per_token = 1.0 / (pcie * m.n_ubatch_f());
                    t += prefill_weight * per_token * ms * cpu_weights.clone();
                }
            }
            // Tie-break towards fewer bytes in RAM (1 ns per GB): same speed, more headroom.
            t + host.clone() * 1e-12
        }
    };

    let mut problem = vars.minimise(objective.clone()).using(good_lp::solvers::highs::highs);
    problem = problem.set_mip_rel_gap(1e-4).map_err(|e| e.to_string())?;
    problem = problem.set_threads(1);
    problem = problem.set_time_limit(30.0);
    for c in cons {
        problem = problem.with(c);
    }
    let sol = problem.solve().map_err(|e| e.to_string())?;
    let rank = |s: usize| (0..g).filter(|&k| sol.value(y[s][k]) > 0.5).count();
    let dev_of_rank = |r: usize| if r == 0 { DeviceId::Cpu } else { DeviceId::Gpu(r - 1) };
    let slot_device: Vec<DeviceId> = (0..s_n).map(|s| dev_of_rank(rank(s))).collect();
    let movable_device = (0..m.movable.len())
        .map(|mi| match (0..g).find(|&d| sol.value(u[mi][d]) > 0.5) {
            Some(d) => DeviceId::Gpu(d),
            None => DeviceId::Cpu,
        })
        .collect();
    let objective_s = sol.eval(&objective) / ms;
    Ok(IlpResult { slot_device, movable_device, objective_s })
}

impl LinearModel {
    fn n_ubatch_f(&self) -> f64 {
        self.n_ubatch.max(1) as f64
    }
}
