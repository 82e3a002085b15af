//! The tuner: `placer trial` measures candidates on the user's machine and keeps the measured
//! best, with llama.cpp's own `--fit` always among them (docs/trial.md, "The search").
//!
//! * [`baselines`]: `--fit on` for the same request, plain (llama.cpp's defaults for the load
//!   mode and `-ub`, as the user would start it) and with the load mode and `-ub` placer chose.
//! * [`neighbours`]: a profile's placement moved a little: `-ub` one step up or down, the routed
//!   experts of one more / one fewer layer on the CPU, the CPU expert layers at the first or the
//!   last layers instead, one layer from one GPU to the next.
//! * [`Search`]: which neighbour to measure next (the one the speed model ranks fastest among
//!   those that fit), when a step counts as better (beyond the measured spread), and when to
//!   stop (no better step `patience` times in a row, or the time budget).

use super::{Kind, Predicted};
use crate::anatomy::{Anatomy, LayerRef};
use crate::host::DeviceId;
use crate::launch::{GpuLayers, LaunchConfig, LoadMode, SplitMode};
use crate::placement::{self, Placement};
use std::time::Duration;

/// `-ub` values the search steps between (powers of two around llama.cpp's default 512,
/// `common/common.h: n_ubatch`).
pub const UB_STEPS: [u32; 5] = [256, 512, 1024, 2048, 4096];

/// One candidate launch: a name for tables, how it came about, the launch.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Short name: `fit`, `fit-tuned`, `ub1024`, `cpu+1`, …
    pub label: String,
    /// One line saying what changed.
    pub what: String,
    pub cfg: LaunchConfig,
}

/// The effective `-ub` (0 means the same as `-b`: `common/arg.cpp`).
fn ubatch(cfg: &LaunchConfig) -> u32 {
    if cfg.ubatch == 0 {
        cfg.batch
    } else {
        cfg.ubatch.min(cfg.batch.max(1))
    }
}

/// llama.cpp's own choice for the request of `cfg`: every placement flag removed (`-ngl`, `-ts`,
/// `-ot`, `--cpu-moe`/`--n-cpu-moe` which parse into `-ot` rules, `-sm`, `-mg`) and `--fit on`,
/// so `common/fit.cpp: common_fit_params` places the tensors at load. Two of them: `fit` with
/// llama.cpp's defaults for the load mode and `-ub` (what the user runs without placer), and
/// `fit-tuned` with the load mode and `-ub` of `cfg` (the same load mode placer emits, so a
/// placement is compared with `--fit` like for like; docs/testbed.md, "Protocol" 3). When the two
/// are the same launch, one. `extra` (e.g. `-fitt` for an emulated host) goes into both.
/// How many times the longest request of a finished candidate a later candidate's request may
/// take before it is stopped: such a candidate cannot be the measured best.
pub const SLOW_REQUEST_FACTOR: f64 = 5.0;
/// The shortest request limit the cap gives (a cold first request, a long prompt, a prefix that
/// a later candidate must prefill where the first one restored it).
pub const MIN_REQUEST_S: f64 = 120.0;

/// The request limit for the next candidate: `--request-timeout`, capped once a candidate has
/// finished at [`SLOW_REQUEST_FACTOR`] × the shortest of the finished candidates' longest
/// requests (at least [`MIN_REQUEST_S`]). Measured need: experts on a remote CPU over RPC
/// prefilled at 40 t/s (no op offload for RPC devices, `ggml-rpc.cpp:
/// ggml_backend_rpc_device_i`), one 16K-token request of 409 s where the other candidates took
/// ~25 s per run (data/runs/2026-12-07-glm-h100-rpccpu-c32k-trial); plain `--fit` on gpt-oss-120b
/// (mmap) prefilled at 104 t/s, a 28K-token prefix of ~270 s where placer's profiles took ~15 s
/// (data/runs/2026-12-07-gptoss120b-h100emul-c32k-trial).
pub fn request_cap(
    limit: std::time::Duration,
    fastest_longest_request_s: Option<f64>,
) -> std::time::Duration {
    match fastest_longest_request_s {
        Some(w) if w > 0.0 => limit.min(std::time::Duration::from_secs_f64(
            (SLOW_REQUEST_FACTOR * w).max(MIN_REQUEST_S),
        )),
        _ => limit,
    }
}

/// Turn times closer than this (relative) between the best `--fit` baseline and the best other
/// candidate are confirmed by loading both again.
pub const CONFIRM_WITHIN: f64 = 0.10;

/// The pair to confirm, (fastest, runner-up) indices into `results`: the fastest candidate that
/// finished and the fastest of the other side (a `--fit` baseline against placer's profiles and
/// steps), when their turn times are within [`CONFIRM_WITHIN`] and two more runs of `per_run`
/// fit in `budget`. One load per candidate in sequence cannot tell a placement from drift of the
/// machine (2026-12-07 c5: `--fit` 13.18 s and placer 14.23 s, each 1.4 % over its own turns).
pub fn confirm_pair(
    results: &[super::TrialResult],
    elapsed: Duration,
    per_run: Duration,
    budget: Duration,
) -> Option<(usize, usize)> {
    if elapsed + per_run * 2 > budget {
        return None;
    }
    let ok: Vec<(usize, f64, bool)> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome.ok())
        .filter_map(|(i, r)| r.request_s().map(|s| (i, s, r.kind == Kind::Baseline)))
        .collect();
    let best = ok.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied()?;
    let other = ok
        .iter()
        .filter(|x| x.2 != best.2)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .copied()?;
    (other.1 / best.1 - 1.0 <= CONFIRM_WITHIN).then_some((best.0, other.0))
}

/// The longest request of a run, seconds (prompt + generation as the server timed them).
pub fn longest_request_s(ms: &[super::measure::Measurement]) -> Option<f64> {
    ms.iter()
        .map(|m| (m.prompt_ms + m.predicted_ms) / 1000.0)
        .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))))
}

pub fn baselines(cfg: &LaunchConfig, extra: &LaunchConfig) -> Vec<Step> {
    let fit = |load_mode: LoadMode, ub: u32, batch: u32| LaunchConfig {
        gpu_layers: GpuLayers::Auto,
        tensor_split: None,
        overrides: Vec::new(),
        split_mode: SplitMode::Layer,
        main_gpu: 0,
        fit: true,
        fit_target_mib: extra.fit_target_mib.clone(),
        load_mode,
        ubatch: ub,
        batch,
        ..cfg.clone()
    };
    let d = LaunchConfig::default();
    let plain = fit(d.load_mode, d.ubatch, d.batch.max(cfg.batch));
    let tuned = fit(cfg.load_mode, cfg.ubatch, cfg.batch);
    let mut out = vec![Step {
        label: "fit".into(),
        what: "llama.cpp's --fit, load mode and -ub at llama.cpp's defaults".into(),
        cfg: plain.clone(),
    }];
    if tuned != plain {
        out.push(Step {
            label: "fit-tuned".into(),
            what: format!(
                "llama.cpp's --fit with placer's load mode and -ub (-lm {}, -ub {})",
                load_mode_word(cfg.load_mode),
                ubatch(cfg)
            ),
            cfg: tuned,
        });
    }
    out
}

fn load_mode_word(m: LoadMode) -> &'static str {
    match m {
        LoadMode::Mmap => "mmap",
        LoadMode::None => "none",
        LoadMode::Mlock => "mlock",
        LoadMode::Dio => "dio",
    }
}

/// The placement a launch realises: the layer of every slot from `-ngl`/`-ts`
/// ([`placement::layer_devices`]), and every tensor group whose tensors the `-ot` rules send
/// elsewhere ([`placement::resolve`], llama.cpp's first-match rule) as moved. A group split
/// between devices by a hand-written rule counts as on the device of its first tensor.
pub fn placement_of(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    n_gpus: usize,
) -> anyhow::Result<Placement> {
    let layer_device = placement::layer_devices(anatomy.n_layer(), cfg, n_gpus);
    let tensor_device = placement::resolve(anatomy, cfg, n_gpus)?;
    let home = Placement {
        layer_device,
        moved: Vec::new(),
    };
    let mut moved = Vec::new();
    for (gi, g) in anatomy.groups.iter().enumerate() {
        let Some(&t) = g.tensors.first() else {
            continue;
        };
        let d = tensor_device[t];
        if d != home.group_device(anatomy, gi) {
            moved.push((gi, d));
        }
    }
    Ok(Placement {
        layer_device: home.layer_device,
        moved,
    })
}

/// Routed-expert groups of block `il`.
fn expert_groups(anatomy: &Anatomy, il: u32) -> Vec<usize> {
    anatomy
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.kind.is_routed_experts() && g.layer == LayerRef::Block(il))
        .map(|(i, _)| i)
        .collect()
}

/// With `experts_on_cpu` the set of layers (on a GPU) whose routed experts go to the CPU, the
/// placement `p` with exactly that set (other moved groups kept).
fn with_cpu_expert_layers(anatomy: &Anatomy, p: &Placement, layers: &[u32]) -> Placement {
    let mut moved: Vec<(usize, DeviceId)> = p
        .moved
        .iter()
        .filter(|(g, d)| !(anatomy.groups[*g].kind.is_routed_experts() && *d == DeviceId::Cpu))
        .copied()
        .collect();
    for &il in layers {
        if p.layer_device[il as usize] == DeviceId::Cpu {
            continue;
        }
        for g in expert_groups(anatomy, il) {
            moved.retain(|(x, _)| *x != g);
            moved.push((g, DeviceId::Cpu));
        }
    }
    moved.sort();
    Placement {
        layer_device: p.layer_device.clone(),
        moved,
    }
}

/// Layers on a GPU whose routed experts are on the CPU.
fn cpu_expert_layers(anatomy: &Anatomy, p: &Placement) -> Vec<u32> {
    (0..anatomy.n_layer())
        .filter(|&il| {
            p.layer_device[il as usize] != DeviceId::Cpu && {
                let gs = expert_groups(anatomy, il);
                !gs.is_empty()
                    && gs
                        .iter()
                        .all(|&g| p.group_device(anatomy, g) == DeviceId::Cpu)
            }
        })
        .collect()
}

/// The profile `cfg` moved a little (module docs). Each neighbour keeps every other setting of
/// `cfg` (KV types, context, the user's own flags). Placements llama.cpp cannot express are left
/// out ([`Placement::validate`]); duplicates too.
pub fn neighbours(anatomy: &Anatomy, cfg: &LaunchConfig, n_gpus: usize) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let ub = ubatch(cfg);
    let pos = UB_STEPS
        .iter()
        .position(|&u| u >= ub)
        .unwrap_or(UB_STEPS.len() - 1);
    for &i in &[
        pos.checked_sub(1),
        (pos + 1 < UB_STEPS.len()).then_some(pos + 1),
    ] {
        let Some(i) = i else { continue };
        let u = UB_STEPS[i];
        if u == ub {
            continue;
        }
        let mut c = cfg.clone();
        c.ubatch = u;
        c.batch = c.batch.max(u);
        out.push(Step {
            label: format!("ub{u}"),
            what: format!("-ub {u} instead of {ub}"),
            cfg: c,
        });
    }
    let Ok(p) = placement_of(anatomy, cfg, n_gpus) else {
        return out;
    };
    let realise = |q: &Placement| -> Option<LaunchConfig> {
        q.validate(anatomy).ok()?;
        let mut c = placement::to_launch(anatomy, q, cfg, n_gpus);
        c.fit = cfg.fit && !matches!(c.gpu_layers, GpuLayers::Count(_));
        Some(c)
    };
    let n = anatomy.n_layer();
    let cpu = cpu_expert_layers(anatomy, &p);
    let gpu_expert: Vec<u32> = (0..n)
        .filter(|&il| {
            p.layer_device[il as usize] != DeviceId::Cpu
                && !expert_groups(anatomy, il).is_empty()
                && !cpu.contains(&il)
        })
        .collect();
    let mut push = |label: String, what: String, q: &Placement| {
        if let Some(c) = realise(q) {
            out.push(Step {
                label,
                what,
                cfg: c,
            });
        }
    };
    if !gpu_expert.is_empty() {
        // The GPU layer next to the CPU set (the boundary the solver chose), else the last one.
        let near = *gpu_expert
            .iter()
            .min_by_key(|&&il| cpu.iter().map(|&c| c.abs_diff(il)).min().unwrap_or(n - il))
            .expect("non-empty");
        let mut set = cpu.clone();
        set.push(near);
        push(
            "cpu+1".into(),
            format!("the experts of layer {near} on the CPU too"),
            &with_cpu_expert_layers(anatomy, &p, &set),
        );
    }
    if let Some(&last) = cpu.iter().max() {
        let set: Vec<u32> = cpu.iter().copied().filter(|&l| l != last).collect();
        push(
            "cpu-1".into(),
            format!("the experts of layer {last} back on its GPU"),
            &with_cpu_expert_layers(anatomy, &p, &set),
        );
        let k = cpu.len() as u32;
        let on_gpu: Vec<u32> = (0..n)
            .filter(|&il| p.layer_device[il as usize] != DeviceId::Cpu)
            .filter(|&il| !expert_groups(anatomy, il).is_empty())
            .collect();
        if on_gpu.len() as u32 >= k {
            let first: Vec<u32> = on_gpu[..k as usize].to_vec();
            let lastk: Vec<u32> = on_gpu[on_gpu.len() - k as usize..].to_vec();
            if first != cpu {
                push(
                    "cpu-first".into(),
                    format!("the {k} CPU expert layers at the first layers"),
                    &with_cpu_expert_layers(anatomy, &p, &first),
                );
            }
            if lastk != cpu && lastk != first {
                push(
                    "cpu-last".into(),
                    format!("the {k} CPU expert layers at the last layers"),
                    &with_cpu_expert_layers(anatomy, &p, &lastk),
                );
            }
        }
    }
    // One layer across each GPU boundary, both ways (repeating layers only; the output slot
    // stays where it is).
    for g in 0..n_gpus.saturating_sub(1) {
        let (a, b) = (DeviceId::Gpu(g), DeviceId::Gpu(g + 1));
        let ld = &p.layer_device[..n as usize];
        let last_a = ld.iter().rposition(|&d| d == a);
        let first_b = ld.iter().position(|&d| d == b);
        let (Some(la), Some(fb)) = (last_a, first_b) else {
            continue;
        };
        for (label, il, to) in [
            (format!("ts{g}>{}", g + 1), la, b),
            (format!("ts{}>{g}", g + 1), fb, a),
        ] {
            let mut layer_device = p.layer_device.clone();
            layer_device[il] = to;
            // A group moved to the layer's new device is at home there now.
            let home = Placement {
                layer_device,
                moved: Vec::new(),
            };
            let moved = p
                .moved
                .iter()
                .copied()
                .filter(|&(gi, d)| d != home.group_device(anatomy, gi))
                .collect();
            let q = Placement { moved, ..home };
            push(
                label,
                format!(
                    "layer {il} on {} instead of {}",
                    to.buft_name(),
                    ld[il].buft_name()
                ),
                &q,
            );
        }
    }
    let mut seen: Vec<Vec<String>> = vec![crate::emit::argv(cfg)];
    out.retain(|s| {
        let a = crate::emit::argv(&s.cfg);
        if seen.contains(&a) {
            false
        } else {
            seen.push(a);
            true
        }
    });
    out
}

/// The turn's predicted server time, seconds: the new chunk at the predicted prefill rate plus
/// the generated tokens at the predicted decode rate (what the measured turn's `prompt_ms +
/// predicted_ms` is). None without a decode prediction; without a prefill one, decode alone.
pub fn predicted_turn_s(p: &Predicted, w: &super::measure::Workload) -> Option<f64> {
    let d = p.decode_tps.filter(|t| *t > 0.0)?;
    let pf = p
        .prefill_tps
        .filter(|t| *t > 0.0)
        .map_or(0.0, |t| w.chunk as f64 / t);
    Some(pf + w.gen as f64 / d)
}

/// How the search ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Wall time for the whole trial; the first candidates (the sections and the baselines)
    /// always run, a search step only when the runs so far say it fits in what is left.
    pub budget: Duration,
    /// Steps in a row that do not beat the best beyond the measured spread before the search
    /// stops.
    pub patience: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            budget: Duration::from_secs(5 * 60),
            patience: 2,
        }
    }
}

/// `10m`, `90s`, `1h30m`, `300` (seconds).
pub fn parse_budget(s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    anyhow::ensure!(
        !t.is_empty(),
        "--budget: give a time such as 10m, 90s or 1h"
    );
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let mult = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => anyhow::bail!("--budget {s:?}: '{ch}' is not a unit; use s, m or h (e.g. 10m)"),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("--budget {s:?}: a number must come before '{ch}'"))?;
        total += n * mult;
        num.clear();
    }
    anyhow::ensure!(
        num.is_empty(),
        "--budget {s:?}: the last number has no unit; use s, m or h (e.g. 10m)"
    );
    Ok(Duration::from_secs(total))
}

/// The search's state: the centre it steps from, the best measured, and the misses in a row.
#[derive(Debug, Clone)]
pub struct Search {
    pub limits: Limits,
    /// Index (into the results) of the placement the next step starts from.
    pub centre: Option<usize>,
    /// Steps in a row without an improvement beyond the spread.
    pub misses: u32,
    /// Launches already tried (argv), never run twice.
    pub tried: Vec<Vec<String>>,
    /// Why the search stopped (None while it runs).
    pub stopped: Option<String>,
}

impl Search {
    /// A search over `limits`.
    pub fn new(limits: Limits) -> Search {
        Search {
            limits,
            centre: None,
            misses: 0,
            tried: Vec::new(),
            stopped: None,
        }
    }

    /// Whether a result may be a centre: a placement placer wrote (a section or a step), that
    /// loaded and answered every request.
    pub fn can_centre(r: &super::TrialResult) -> bool {
        r.outcome.ok() && r.request_s().is_some() && r.kind != Kind::Baseline
    }

    /// After the first candidates: the fastest placer placement measured is the centre.
    pub fn start(&mut self, results: &[super::TrialResult]) {
        self.centre = (0..results.len())
            .filter(|&i| Search::can_centre(&results[i]))
            .min_by(|&a, &b| {
                results[a]
                    .request_s()
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&results[b].request_s().unwrap_or(f64::INFINITY))
            });
        if self.centre.is_none() {
            self.stopped =
                Some("no placer profile loaded and answered: nothing to step from".into());
        }
    }

    /// The tolerance of a comparison between two results (the decision rules' tie:
    /// [`super::choose::tie_tolerance`]).
    pub fn tolerance(a: &super::TrialResult, b: &super::TrialResult) -> f64 {
        super::choose::tie_tolerance(a, b)
    }

    /// A step was measured (its result is the last of `results`): it becomes the centre when it
    /// beats the centre beyond the spread, else it is a miss; `patience` misses in a row stop
    /// the search.
    pub fn record(&mut self, results: &[super::TrialResult]) {
        let last = results.len() - 1;
        let r = &results[last];
        let Some(c) = self.centre else { return };
        let better = Search::can_centre(r)
            && r.request_s().unwrap_or(f64::INFINITY)
                < results[c].request_s().unwrap_or(f64::INFINITY)
                    * (1.0 - Search::tolerance(r, &results[c]));
        if better {
            self.centre = Some(last);
            self.misses = 0;
        } else {
            self.misses += 1;
            if self.misses >= self.limits.patience {
                self.stopped = Some(format!(
                    "{} step(s) in a row did not beat [{}] beyond the measured spread",
                    self.misses, results[c].name
                ));
            }
        }
    }

    /// Whether one more candidate fits in the budget: `elapsed` so far, `per_run` the median
    /// wall time of the runs so far, `reserve` kept for what follows the search (the
    /// confirmation's two runs when it is due: [`confirm_pair`]).
    pub fn fits_budget(&mut self, elapsed: Duration, per_run: Duration, reserve: Duration) -> bool {
        if elapsed + per_run + reserve > self.limits.budget {
            let kept = if reserve.is_zero() {
                String::new()
            } else {
                format!(", {} kept for the confirmation", fmt_duration(reserve))
            };
            self.stopped = Some(format!(
                "time budget: {} used of {}, a run takes about {}{kept}",
                fmt_duration(elapsed),
                fmt_duration(self.limits.budget),
                fmt_duration(per_run)
            ));
            return false;
        }
        true
    }
}

/// `1m05s`, `42s`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_slow_candidate_gets_a_few_requests_of_the_fastest() {
        use std::time::Duration;
        let limit = Duration::from_secs(1800);
        assert_eq!(request_cap(limit, None), limit);
        assert_eq!(request_cap(limit, Some(30.0)), Duration::from_secs(150));
        assert_eq!(request_cap(limit, Some(5.0)), Duration::from_secs(120));
        assert_eq!(
            request_cap(Duration::from_secs(60), Some(30.0)),
            Duration::from_secs(60)
        );
    }

    use super::*;

    #[test]
    fn budgets() {
        assert_eq!(parse_budget("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_budget("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_budget("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_budget("300").unwrap(), Duration::from_secs(300));
        assert!(parse_budget("10x").unwrap_err().to_string().contains("'x'"));
        assert!(parse_budget("1h5").is_err());
        assert!(parse_budget("").is_err());
    }

    #[test]
    fn the_search_keeps_the_confirmation_runs_in_the_budget() {
        let s = |n| Duration::from_secs(n);
        let limits = Limits {
            budget: s(600),
            patience: 2,
        };
        // 6m49s used, runs of 1m22s (2026-12-07 c5): one step fits, but not with the
        // confirmation's two runs kept.
        assert!(Search::new(limits).fits_budget(s(409), s(82), Duration::ZERO));
        let mut search = Search::new(limits);
        assert!(!search.fits_budget(s(409), s(82), s(164)));
        assert!(search
            .stopped
            .unwrap()
            .contains("kept for the confirmation"));
    }

    #[test]
    fn baselines_strip_placement_and_keep_the_request() {
        let a: Vec<String> = "-m x.gguf -c 8192 -ngl 30 -ts 20,10 -ot blk\\.1\\.ffn_.*_exps=CPU -ub 1024 -lm none -ctk q8_0 --jinja"
            .split_whitespace()
            .map(String::from)
            .collect();
        let cfg = crate::launch::parse_args(crate::launch::Tool::Server, &a).unwrap();
        let b = baselines(&cfg, &LaunchConfig::default());
        assert_eq!(b.len(), 2);
        for s in &b {
            assert!(s.cfg.fit && s.cfg.overrides.is_empty() && s.cfg.tensor_split.is_none());
            assert_eq!(s.cfg.gpu_layers, GpuLayers::Auto);
            assert_eq!(s.cfg.ctx, 8192);
            assert!(s.cfg.passthrough.contains(&"--jinja".to_string()));
        }
        assert_eq!(b[0].cfg.ubatch, 512);
        assert_eq!(b[0].cfg.load_mode, LoadMode::Mmap);
        assert_eq!(b[1].cfg.ubatch, 1024);
        assert_eq!(b[1].cfg.load_mode, LoadMode::None);
        // Defaults already: one baseline.
        let plain = crate::launch::parse_args(crate::launch::Tool::Server, &a[..6]).unwrap();
        assert_eq!(baselines(&plain, &LaunchConfig::default()).len(), 1);
    }
}
