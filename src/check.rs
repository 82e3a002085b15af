//! `placer check`: predict memory per device for a launch command and say whether it fits.
//! The library side: the prediction, the users' recorded pitfalls as
//! warnings, and the table people read.

use crate::anatomy::{Anatomy, Role};
use crate::host::DeviceId;
use crate::host_model::HostModel;
use crate::launch::{GpuLayers, LaunchConfig, Tool};
use crate::memory::{MemoryRules, Prediction, Predictor, Stage, Verdict};
use crate::units::{mib, MIB};
use serde::Serialize;
use std::fmt::Write;

/// Everything `placer check` reports; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub model: String,
    pub arch: String,
    pub host: String,
    pub tool: Tool,
    pub gpu_names: Vec<String>,
    /// Each GPU's name as llama.cpp prints it (`RPC0`, `CUDA0`: RPC devices first).
    pub gpu_labels: Vec<String>,
    pub prediction: Prediction,
    /// One line: "fits" or "OOM on CUDA1 by 312 MiB at KV allocation".
    pub verdict_text: String,
    /// When it does not fit: the smallest changes to this command that do, and what else to run.
    pub fixes: Vec<String>,
    /// When it fits: the speed model's decode and prefill for this placement.
    pub speed: Option<SpeedEstimate>,
    /// When the command leaves the placement to `--fit`: what it would choose (src/fitsim.rs),
    /// which the table then shows.
    pub fit_choice: Option<String>,
    pub warnings: Vec<String>,
    /// The target build's allocation rules the prediction used (`memory::rules`).
    pub rules: MemoryRules,
    /// When it fits: the GPUs left with less free memory than the moderate profile's margin
    /// (`HostModel::check_margins_mib`), one line each. Empty when every GPU keeps that margin.
    pub headroom: Vec<String>,
}

impl CheckReport {
    /// Whether the command fits (the verdict is not an OOM).
    pub fn fits(&self) -> bool {
        self.prediction.verdict == Verdict::Fits
    }

    /// Whether it fits with the moderate margin left on every GPU it uses: what placer calls
    /// safe to run (a launch between the aggressive and the moderate margin starts, but the
    /// margin is what the runs' prediction errors and runtime growth need; docs/calibration.md).
    pub fn safe(&self) -> bool {
        self.fits() && self.headroom.is_empty()
    }
}

/// The speed model (src/speed.rs, the one the solver optimises and calibrate fits) on the
/// checked placement.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedEstimate {
    pub decode_tps: f64,
    /// Cells of context attention reads per generated token.
    pub depth: u64,
    /// None when the calibration has no prefill constants for this host.
    pub prefill_tps: Option<f64>,
    pub prompt_tokens: u64,
    /// Backend hand-offs per generated token (estimated as the solver counts them).
    pub splits: f64,
    /// Where the constants come from.
    pub source: String,
}

/// Tokens of the request the speed estimate prices (as `placer solve`'s workload).
#[derive(Debug, Clone, Copy, Default)]
pub struct Workload {
    /// The preset whose numbers the others override (default: agent, as `solve`).
    pub preset: crate::solver::WorkloadPreset,
    /// Prompt tokens (None: the preset's).
    pub prompt: Option<u32>,
    /// Generated tokens (None: the preset's).
    pub gen: Option<u32>,
    /// Tokens cached before the prompt (None: the preset's).
    pub prefix: Option<u32>,
}

/// Predict and collect warnings (`extra` = warnings from parsing the command line).
pub fn check(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    hm: &HostModel,
    extra: Vec<String>,
) -> anyhow::Result<CheckReport> {
    check_with(anatomy, cfg, hm, extra, Workload::default())
}

/// [`check`] with the workload the speed estimate prices.
pub fn check_with(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    hm: &HostModel,
    extra: Vec<String>,
    workload: Workload,
) -> anyhow::Result<CheckReport> {
    check_for_build(anatomy, cfg, hm, extra, workload, MemoryRules::default())
}

/// [`check_with`] for a target build whose allocation rules are `rules`
/// (`memory::rules_for(table build)`).
pub fn check_for_build(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    hm: &HostModel,
    extra: Vec<String>,
    workload: Workload,
    rules: MemoryRules,
) -> anyhow::Result<CheckReport> {
    let host = &hm.host;
    let predictor = Predictor::with_constants(anatomy, host, &hm.memory).with_rules(rules);
    // A command that leaves layers to --fit is checked with what --fit would choose.
    let fit_left_to_llama = cfg.fit
        && cfg.gpu_layers == GpuLayers::Auto
        && cfg.tensor_split.is_none()
        && cfg.overrides.is_empty()
        && !host.gpus.is_empty();
    let mut fit_choice = None;
    let fitted;
    let cfg = if fit_left_to_llama {
        let budgets = crate::fitsim::budgets_mib(&predictor, cfg);
        let choice = crate::fitsim::simulate(&predictor, cfg, &budgets)?;
        fitted = choice.launch.clone();
        fit_choice = Some(fit_text(&choice, host));
        &fitted
    } else {
        cfg
    };
    let prediction = predictor.predict(cfg)?;
    let mut warnings = extra;
    warnings.extend(prediction.warnings.iter().cloned());
    warnings.extend(pitfalls(&predictor, cfg, &prediction));
    let fixes = fixes(&predictor, cfg, &prediction, &host.name);
    let speed = (prediction.verdict == Verdict::Fits)
        .then(|| speed_estimate(anatomy, cfg, hm, &prediction, workload));
    let headroom = headroom(&prediction, hm);
    Ok(CheckReport {
        model: anatomy.name.clone().unwrap_or_else(|| cfg.model.clone()),
        arch: anatomy.arch.clone(),
        host: host.name.clone(),
        tool: cfg.tool,
        gpu_names: host.gpus.iter().map(|g| g.model.clone()).collect(),
        gpu_labels: (0..host.gpus.len())
            .map(|i| host.device_name(DeviceId::Gpu(i)))
            .collect(),
        verdict_text: prediction.verdict.to_string(),
        fixes,
        speed,
        fit_choice,
        prediction,
        warnings,
        rules,
        headroom,
    })
}

/// GPUs a fitting launch leaves with less than the moderate margin (`[margins] moderate_mib`
/// plus what OOMs taught about that GPU).
fn headroom(p: &Prediction, hm: &HostModel) -> Vec<String> {
    if p.verdict != Verdict::Fits {
        return Vec::new();
    }
    let margins = &hm.check_margins_mib;
    p.gpus
        .iter()
        .zip(margins)
        .filter(|(g, _)| g.total() > 0)
        .filter(|(g, &m)| (g.free() as f64) < m * MIB as f64)
        .map(|(g, &m)| {
            format!(
                "{}: {} MiB free, under the moderate margin of {m:.0} MiB — it may start and then fail on a long prompt (runtime buffers grow); not safe",
                g.device,
                g.free() / MIB as i64
            )
        })
        .collect()
}

/// `--fit`'s choice as flags, with how it got there.
fn fit_text(c: &crate::fitsim::FitChoice, host: &crate::host::Host) -> String {
    let n_gpus = host.gpus.len();
    let l = &c.launch;
    let mut flags = match l.gpu_layers {
        GpuLayers::Count(n) => format!("-ngl {n}"),
        _ => "-ngl all".into(),
    };
    if let Some(ts) = &l.tensor_split {
        let v: Vec<String> = ts.iter().map(|x| format!("{x:.0}")).collect();
        flags += &format!(" -ts {}", v.join(","));
    }
    if !l.overrides.is_empty() {
        flags += &format!(" + {} -ot overrides", l.overrides.len());
    }
    if c.unchanged {
        return format!(
            "{flags} (llama.cpp's default split) — {}",
            c.steps.join("; ")
        );
    }
    let parts: Vec<String> = (0..n_gpus)
        .map(|d| {
            format!(
                "{} {} layers ({} partial)",
                host.device_name(DeviceId::Gpu(d)),
                c.layers.get(d).copied().unwrap_or(0),
                c.partial.get(d).copied().unwrap_or(0)
            )
        })
        .collect();
    format!("{flags}: {} — {}", parts.join(", "), c.steps.join("; "))
}

/// Predicted decode (and prefill) speed of a checked command on `host` for `workload`.
pub fn speed_estimate(
    anatomy: &Anatomy,
    cfg: &LaunchConfig,
    hm: &HostModel,
    p: &Prediction,
    workload: Workload,
) -> SpeedEstimate {
    use crate::speed;
    let host = &hm.host;
    let w = speed::Where {
        anatomy,
        resolved: &p.resolved,
        n_gpu: host.gpus.len(),
        type_k: cfg.type_k,
        type_v: cfg.type_v,
    };
    let n_ctx = p.shape.n_ctx_seq.max(1);
    let (prefix, prompt, gen) = crate::solver::workload_tokens(
        workload.preset,
        n_ctx,
        workload.prefix,
        workload.prompt,
        workload.gen,
    );
    let (prefix, prompt, gen) = (prefix as u64, prompt as u64, gen as u64);
    let depth = prefix + prompt + gen / 2;
    let rates = &hm.rates;
    let mut load = speed::decode_load(&w, depth);
    load.splits = speed::estimate_splits(&w);
    load.nodes = speed::graph_nodes(anatomy);
    let pre = speed::prefill_load(
        &w,
        prompt,
        prefix + prompt / 2,
        p.shape.n_ubatch,
        cfg.op_offload,
    );
    let (rpc_dec, rpc_pre) =
        speed::rpc_handoff_s(host, &w, depth.min(n_ctx as u64), p.shape.n_ubatch);
    let pre_s = speed::prefill_s_per_token(rates, &pre) + rpc_pre;
    SpeedEstimate {
        decode_tps: 1.0 / (speed::decode_s(rates, &load) + rpc_dec),
        depth,
        prefill_tps: (rates.pcie_s_per_byte.is_some() && pre_s > 0.0).then(|| 1.0 / pre_s),
        prompt_tokens: prompt,
        splits: load.splits,
        source: hm.rates_source.clone(),
    }
}

/// For an OOM: the changes to this very command that fit under the same memory model — the
/// largest context, q8_0 KV, -ub 512 — each checked by a prediction, then `placer solve`, which
/// moves tensors instead. Empty when the command fits.
pub fn fixes(pr: &Predictor, cfg: &LaunchConfig, p: &Prediction, host: &str) -> Vec<String> {
    let Verdict::Oom { stage, .. } = p.verdict else {
        return Vec::new();
    };
    let fits = |c: &LaunchConfig| pr.predict(c).is_ok_and(|q| q.verdict == Verdict::Fits);
    let n_ctx = p.shape.n_ctx;
    let mut out = Vec::new();
    if stage != Stage::Load {
        // The prediction grows with the context; the largest multiple of 256 that fits.
        const STEP: u32 = 256;
        let with_ctx = |c: u32| LaunchConfig {
            ctx: c * STEP,
            ..cfg.clone()
        };
        let (mut lo, mut hi) = (0u32, n_ctx / STEP);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&with_ctx(mid)) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo > 0 && lo * STEP < n_ctx {
            out.push(format!(
                "-c {} (the largest context that fits with these flags; asked {n_ctx})",
                lo * STEP
            ));
        }
        let f16 = crate::gguf::GgmlType::F16;
        if cfg.type_k == f16 && cfg.type_v == f16 && cfg.flash_attn != crate::launch::FlashAttn::Off
        {
            let q8 = LaunchConfig {
                type_k: crate::gguf::GgmlType::Q8_0,
                type_v: crate::gguf::GgmlType::Q8_0,
                ..cfg.clone()
            };
            if fits(&q8) {
                out.push(format!(
                    "-ctk q8_0 -ctv q8_0 (half the KV cache, at -c {n_ctx})"
                ));
            }
        }
        if cfg.ubatch > 512 {
            let ub = LaunchConfig {
                ubatch: 512,
                ..cfg.clone()
            };
            if fits(&ub) {
                out.push(format!(
                    "-ub 512 (smaller compute buffers; -ub {} asked)",
                    cfg.ubatch
                ));
            }
        }
    }
    let model = if cfg.model.is_empty() {
        "MODEL"
    } else {
        cfg.model.as_str()
    };
    out.push(format!(
        "or run: placer solve {model} --ctx {n_ctx} --host {host} (moves layers and experts until it fits, and says what to change when nothing does)"
    ));
    out
}

/// The users' recorded pitfalls (docs/users.md, "Lessons"), checked on the
/// command and its prediction.
pub fn pitfalls(pr: &Predictor, cfg: &LaunchConfig, p: &Prediction) -> Vec<String> {
    let mut w = Vec::new();
    // Lesson 5: -ub = -b doubles the compute buffer; -b does not size it.
    if cfg.ubatch >= 1024 && cfg.ubatch == cfg.batch {
        let mut smaller = cfg.clone();
        smaller.ubatch = 512;
        let saved = pr.predict(&smaller).ok().map(|q| {
            p.gpus
                .iter()
                .zip(&q.gpus)
                .map(|(a, b)| a.compute.saturating_sub(b.compute))
                .max()
                .unwrap_or(0)
        });
        w.push(format!(
            "-ub {} equals -b {}: the compute buffer grows with -ub (not -b){}; keep -ub 512 unless prompt speed needs more",
            cfg.ubatch,
            cfg.batch,
            saved.map(|s| format!(", -ub 512 would free {} MiB on the largest GPU buffer", s / MIB)).unwrap_or_default()
        ));
    }
    // Lesson 7: a hard -ngl defeats --fit's layer placement.
    if cfg.fit && matches!(cfg.gpu_layers, GpuLayers::Count(_) | GpuLayers::All) {
        w.push(
            "--fit on with a fixed -ngl: --fit may only choose layers when -ngl is auto (common/fit.cpp aborts its layer step); \
             it can still shrink the context if -c is unset. Use -ngl auto with --fit, or --fit off with explicit flags"
                .to_string(),
        );
    } else if cfg.fit
        && cfg.gpu_layers == GpuLayers::Auto
        && cfg.tensor_split.is_none()
        && cfg.overrides.is_empty()
    {
        w.push(
            "--fit on with -ngl auto: llama.cpp chooses layers and overrides at start-up; the table shows what it would \
             choose, replayed on placer's memory model (src/fitsim.rs). `placer solve` gives explicit, faster flags"
                .to_string(),
        );
    }
    // Lesson 2: experts on CPU while the model would fit.
    let experts_on_cpu = pr
        .anatomy
        .tensors
        .iter()
        .zip(&p.resolved.tensor_device)
        .any(|(t, d)| {
            *d == DeviceId::Cpu
                && matches!(
                    t.role,
                    Role::ExpertsGate | Role::ExpertsUp | Role::ExpertsDown | Role::ExpertsGateUp
                )
        });
    if experts_on_cpu && !p.resolved.devices.is_empty() {
        let mut all_gpu = cfg.clone();
        all_gpu.overrides.clear();
        all_gpu.gpu_layers = GpuLayers::All;
        if let Ok(q) = pr.predict(&all_gpu) {
            if q.verdict == Verdict::Fits {
                w.push(format!(
                    "routed experts are on the CPU although the whole model fits on the GPUs without overrides \
                     (smallest free: {} MiB): experts on GPU are always faster — drop --cpu-moe/-ot for them",
                    q.gpus.iter().filter(|g| g.overhead > 0).map(|g| g.free() / MIB as i64).min().unwrap_or(0)
                ));
            }
        }
    }
    // An -ot that moves a layer's attention weights to another GPU leaves its KV behind
    // (llama_kv_cache follows dev_layer, not the overrides): usually not what the user meant.
    let mut split_layers: Vec<u32> = Vec::new();
    for (i, t) in pr.anatomy.tensors.iter().enumerate() {
        if let (crate::anatomy::LayerRef::Block(il), Role::Attention) = (t.layer, t.role) {
            let kv = p.resolved.kv_device.get(il as usize).copied();
            let d = p.resolved.tensor_device[i];
            if p.resolved.matched_override[i].is_some()
                && matches!(d, DeviceId::Gpu(_))
                && kv.is_some_and(|k| k != d)
                && !split_layers.contains(&il)
            {
                split_layers.push(il);
            }
        }
    }
    if !split_layers.is_empty() {
        w.push(format!(
            "-ot moves the attention weights of {} layer(s) (first: {}) to another GPU, but their KV cache stays on the \
             layer's -ngl/-ts device: attention then reads KV across devices. Move layers with -ts instead",
            split_layers.len(),
            split_layers[0]
        ));
    }
    // mmap'ed CPU weights are page cache: they never fail an allocation, but if they do not fit
    // in RAM next to the rest, every token re-reads them from disk.
    let h = &p.host;
    let ram_need = h.cpu_weights.max(h.cpu_model) + h.kv + h.rs + h.compute;
    if h.cpu_mapped > 0 && ram_need > h.cap {
        w.push(format!(
            "CPU weights ({} MiB, mmap'ed) plus host KV and compute need {} MiB of RAM but the host has {} MiB usable: \
             llama.cpp will start but read weights from disk for every token",
            h.cpu_weights / MIB,
            ram_need / MIB,
            h.cap / MIB
        ));
    }
    // -ts with more entries than devices: the extra entries are ignored by llama.cpp.
    if let Some(ts) = &cfg.tensor_split {
        if ts.len() > p.resolved.devices.len() {
            w.push(format!(
                "-ts has {} entries but llama.cpp uses {} device(s): the extra entries are ignored",
                ts.len(),
                p.resolved.devices.len()
            ));
        }
    }
    if !p.resolved.devices.is_empty()
        && !cfg.overrides.is_empty()
        && cfg.load_mode == crate::launch::LoadMode::Mmap
    {
        let cpu_override = p
            .resolved
            .matched_override
            .iter()
            .zip(&p.resolved.tensor_device)
            .any(|(m, d)| m.is_some() && *d == DeviceId::Cpu);
        if cpu_override {
            w.push("tensor overrides to CPU with mmap: llama.cpp suggests --load-mode none for better performance (memory: CPU weights then live in pinned CUDA_Host)".to_string());
        }
    }
    w
}

/// The per-device table.
pub fn render(r: &CheckReport) -> String {
    let p = &r.prediction;
    let s = &p.shape;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "placer check — {} ({}) on host {}",
        r.model, r.arch, r.host
    );
    let _ = writeln!(
        out,
        "{:?}: n_ctx {} ({} seq, {} stream{} × {} cells), -b {} -ub {}, outputs reserved {}, flash-attn {}, pipeline parallel {}",
        r.tool,
        s.n_ctx,
        s.n_seq,
        s.n_stream,
        if s.n_stream == 1 { "" } else { "s" },
        s.n_ctx_seq,
        s.n_batch,
        s.n_ubatch,
        s.n_outputs_max,
        if s.flash_attn { "on/auto" } else { "off" },
        if p.pipeline_parallel { "on" } else { "off" }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "device [MiB]", "weights", "KV", "compute", "overhead", "total", "cap", "free"
    );
    for (i, g) in p.gpus.iter().enumerate() {
        let name = format!(
            "{} {}",
            r.gpu_labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| g.device.to_string()),
            short_gpu(r.gpu_names.get(i).map(String::as_str).unwrap_or(""))
        );
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            m(g.model),
            m(g.kv + g.rs),
            m(g.compute),
            m(g.overhead),
            m(g.total()),
            m(g.cap),
            g.free() / MIB as i64
        );
    }
    let h = &p.host;
    let host_weights = if h.cpu_model > 0 {
        h.cpu_model
    } else {
        h.cpu_weights
    };
    let host_total = host_weights + h.kv + h.rs + h.compute;
    let _ = writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "CPU (RAM)",
        m(host_weights),
        m(h.kv + h.rs),
        m(h.compute),
        "-",
        m(host_total),
        m(h.cap),
        (h.cap as i64 - host_total as i64) / MIB as i64
    );
    if h.cpu_mapped > 0 {
        let _ = writeln!(
            out,
            "  CPU weights are mmap'ed: llama.cpp prints CPU_Mapped = {} MiB (file span); {} MiB of it are CPU tensors",
            m(h.cpu_mapped),
            m(h.cpu_weights)
        );
    }
    let layers = layer_summary(p, &r.gpu_labels);
    let _ = writeln!(out, "  layers: {layers}");
    let _ = writeln!(out);
    if let Some(f) = &r.fit_choice {
        let _ = writeln!(out, "--fit would choose: {f}");
    }
    if !r.rules.is_current() {
        let _ = writeln!(out, "memory rules: {}", r.rules.describe());
    }
    let _ = writeln!(out, "verdict: {}", r.verdict_text);
    for h in &r.headroom {
        let _ = writeln!(out, "  headroom: {h}");
    }
    for f in &r.fixes {
        if f.starts_with("or run:") {
            let _ = writeln!(out, "  {f}");
        } else {
            let _ = writeln!(out, "  fits with: {f}");
        }
    }
    if let Some(sp) = &r.speed {
        let _ = writeln!(
            out,
            "predicted: decode {:.1} t/s at depth {}, prefill {} for a {}-token prompt ({:.0} hand-offs/token; {})",
            sp.decode_tps,
            sp.depth,
            crate::units::tps_text(sp.prefill_tps),
            sp.prompt_tokens,
            sp.splits,
            sp.source
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn m(b: u64) -> String {
    format!("{:.0}", mib(b))
}

fn short_gpu(name: &str) -> String {
    name.trim_start_matches("NVIDIA ")
        .trim_start_matches("GeForce ")
        .to_string()
}

/// "CPU 0-3, CUDA0 4-32, CUDA1 33-47 + output".
fn layer_summary(p: &Prediction, labels: &[String]) -> String {
    let ld = &p.resolved.layer_device;
    let name = |d: DeviceId| match d {
        DeviceId::Gpu(i) => labels.get(i).cloned().unwrap_or_else(|| d.to_string()),
        DeviceId::Cpu => d.to_string(),
    };
    let n = ld.len().saturating_sub(1);
    let mut parts: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        if i == n || ld[i] != ld[start] {
            parts.push(format!("{} {}-{}", name(ld[start]), start, i - 1));
            start = i;
        }
    }
    if n == 0 {
        parts.push(String::new());
    }
    format!("{}; output on {}", parts.join(", "), name(ld[n]))
}
