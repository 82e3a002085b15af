//! The integer program (good_lp + HiGHS) choosing a `Placement`.
//!
//! Contract: `solve` returns a placement whose `memory::predict` (through `emit` → flags →
//! `launch` → `memory`) respects every device cap minus the margin; the solver's linear memory
//! terms are checked against the exact prediction and corrected until they agree.
//!
//! Pipeline: [`coeffs::build`] (linear model: bytes, bytes read per token, bandwidths) →
//! [`ilp::solve`] (HiGHS) → [`Placement`] → [`crate::placement::to_launch`] → `memory::Predictor` (exact
//! bytes per device) → if a device is over its budget, its linear budget is corrected by the
//! difference and the program is solved again (at most [`MAX_ROUNDS`] times). An infeasible
//! request is answered with the smallest change that fits ([`Infeasible`]).

#![warn(missing_docs)]

pub mod coeffs;
pub mod ilp;

use crate::anatomy::{Anatomy, GroupKind};
use crate::gguf::GgmlType;
use crate::host::{DeviceId, Host};
use crate::host_model::HostModel;
use crate::launch::{FlashAttn, LaunchConfig, Tool};
use crate::memory::{Prediction, Predictor};
use crate::placement::Placement;
use crate::units::{from_mib, mib, MIB};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Generated tokens per request of the `long-prompt` workload: the users and the testbed measure
/// decode over 128 tokens after a long prompt (docs/users.md, "The loop placer automates" step 4;
/// docs/testbed.md).
pub const DEFAULT_GEN: u32 = 128;

/// New prompt tokens per turn of the `agent` workload: an agentic-coding turn appends a tool
/// result or a file of a few thousand tokens to a conversation whose prefix the KV cache keeps
/// (docs/users.md, "The loop placer automates": their workload).
pub const AGENT_CHUNK: u32 = 4096;
/// Generated tokens per turn of the `agent` workload: a few hundred (docs/users.md).
pub const AGENT_GEN: u32 = 256;
/// Prompt tokens of the `chat` workload: the users' short-prompt check, a fresh request
/// (docs/users.md, step 4).
pub const CHAT_PROMPT: u32 = 512;
/// Generated tokens of the `chat` workload.
pub const CHAT_GEN: u32 = 512;

/// The request a profile is optimised for (`--workload`); `--prompt/--gen/--prefix/--depth`
/// override its numbers. docs/solver.md §2.4 gives the numbers and their sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadPreset {
    /// The users' agentic coding through llama-server: the KV cache holds a prefix of half the
    /// context, each turn prefills [`AGENT_CHUNK`] new tokens after it and generates
    /// [`AGENT_GEN`]; decode at that depth dominates what they record (SPEED = decode t/s).
    #[default]
    Agent,
    /// A fresh short request: [`CHAT_PROMPT`] prompt tokens, [`CHAT_GEN`] generated.
    Chat,
    /// A fresh prompt of half the context, then [`DEFAULT_GEN`] generated tokens: the testbed's
    /// protocol and the users' long-prompt stability check.
    LongPrompt,
}

impl WorkloadPreset {
    /// `(prefix, prompt, gen)` tokens for a context of `n_ctx`: cached tokens before the
    /// request, prompt tokens processed, tokens generated. Always fits: prefix + prompt + gen ≤
    /// n_ctx.
    pub fn tokens(self, n_ctx: u32) -> (u32, u32, u32) {
        let (prefix, prompt, gen) = match self {
            WorkloadPreset::Agent => (n_ctx / 2, AGENT_CHUNK.min(n_ctx / 4), AGENT_GEN),
            WorkloadPreset::Chat => (0, CHAT_PROMPT.min(n_ctx / 2), CHAT_GEN),
            WorkloadPreset::LongPrompt => (0, n_ctx / 2, DEFAULT_GEN),
        };
        let gen = gen.min(n_ctx / 4);
        (prefix, prompt, gen)
    }

    /// The preset's name as `--workload` spells it.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadPreset::Agent => "agent",
            WorkloadPreset::Chat => "chat",
            WorkloadPreset::LongPrompt => "long-prompt",
        }
    }
}

/// The tokens of a request: the preset's, overridden by what was given, clamped so that
/// prefix + prompt + gen fits in `n_ctx`: a number given wins over the preset's, which gives
/// way (the prefix before the prompt).
pub fn workload_tokens(
    preset: WorkloadPreset,
    n_ctx: u32,
    prefix: Option<u32>,
    prompt: Option<u32>,
    gen: Option<u32>,
) -> (u32, u32, u32) {
    let (p0, q0, g0) = preset.tokens(n_ctx);
    let gen = gen.unwrap_or(g0).min(n_ctx);
    let room = n_ctx - gen;
    let (prefix, prompt) = match (prefix, prompt) {
        (Some(p), Some(q)) => {
            let p = p.min(room);
            (p, q.min(room - p))
        }
        (None, Some(q)) => {
            let q = q.min(room);
            (p0.min(room - q), q)
        }
        (Some(p), None) => {
            let p = p.min(room);
            (p, q0.min(room - p))
        }
        (None, None) => {
            let p = p0.min(room);
            (p, q0.min(room - p))
        }
    };
    (prefix, prompt, gen)
}

/// `-ub` values the solver tries when the user did not fix one and CPU weights stream to GPU 0
/// during prefill (llama.cpp's default is 512, `common/common.h`; larger ones cost compute
/// buffer, docs/solver.md §2.5).
pub const UB_CHOICES: [u32; 4] = [512, 1024, 2048, 4096];

/// Rounds of "solve → exact check → correct budgets".
pub const MAX_ROUNDS: usize = 6;

/// What the user asks for: the launch settings placer must keep, and the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveRequest {
    /// `-m` as it should appear in the emitted command / models.conf MODEL.
    pub model_path: String,
    /// `-c`; 0 = the model's training context.
    pub ctx: u32,
    /// `-b`.
    pub batch: u32,
    /// `-ub`; the solver may choose another unless `ubatch_fixed`.
    pub ubatch: u32,
    /// `-ctk`.
    pub type_k: GgmlType,
    /// `-ctv`.
    pub type_v: GgmlType,
    /// `-np`.
    pub n_parallel: u32,
    /// `-kvu` with `-np > 1`.
    pub kv_unified: bool,
    /// `-fa`.
    pub flash_attn: FlashAttn,
    /// `--op-offload` / `--no-op-offload`.
    pub op_offload: bool,
    /// Context depth (tokens) attention reads per generated token in the speed model; None =
    /// the workload's: prompt + half the generated tokens.
    pub decode_depth: Option<u32>,
    /// Workload: prompt tokens processed per request; None = half the context (docs/solver.md
    /// §2.4: the users run 128K–256K contexts for agentic coding, whose turns carry long
    /// prompts; the testbed's workloads are 46 % of the context).
    #[serde(default)]
    pub prompt: Option<u32>,
    /// Workload: tokens generated per request; None = 128 (what the users and the testbed
    /// measure after the prompt, docs/users.md, issue 5).
    #[serde(default)]
    pub gen: Option<u32>,
    /// `-ub` given explicitly: keep it; otherwise the solver chooses it (`UB_CHOICES`).
    #[serde(default)]
    pub ubatch_fixed: bool,
    /// Restrict the solve to these GPUs of the host (indices, llama.cpp's `--device CUDAi,…`);
    /// None = every GPU.
    #[serde(default)]
    pub devices: Option<Vec<usize>>,
    /// Nothing but the token embeddings may stay on the CPU (used to answer "what would it take
    /// to fit on the GPUs alone").
    #[serde(default)]
    pub gpu_only: bool,
    /// The llama.cpp program that will run the flags: llama-server (default) reserves
    /// `n_parallel` output rows, llama-completion / llama-cli a whole batch
    /// (`memory::kv::outputs_max`), which changes the compute buffers.
    #[serde(default = "default_tool")]
    pub tool: Tool,
    /// GPUs llama.cpp will see (the host's); decides whether `-ts` is needed. 0 = unknown.
    pub host_gpus: usize,
    /// The workload preset; `prompt`, `gen`, `prefix`, `decode_depth` override its numbers.
    #[serde(default)]
    pub workload: WorkloadPreset,
    /// Workload: tokens already in the KV cache before the request's prompt (a conversation's
    /// kept prefix); None = the preset's.
    #[serde(default)]
    pub prefix: Option<u32>,
    /// Arguments the user's command carries that placer does not decide (`--jinja`, sampler
    /// flags, `--no-context-shift`, anything unknown): kept verbatim, after placer's flags.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// `--rpc` servers of the host (its RPC devices, [`Host::rpc_servers`]); empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rpc: Vec<String>,
    /// Buffer-type name per host GPU as `-ot` spells it (`RPC0[host:port]`, `CUDA0`;
    /// [`Host::buft_name`]); empty = `CUDA<i>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buft_names: Vec<String>,
}

impl Default for SolveRequest {
    /// llama-server's defaults (`common/common.h`), one slot as the users run it (`-np 1`).
    fn default() -> Self {
        SolveRequest {
            model_path: String::new(),
            ctx: 0,
            batch: 2048,
            ubatch: 512,
            type_k: GgmlType::F16,
            type_v: GgmlType::F16,
            n_parallel: 1,
            kv_unified: false,
            flash_attn: FlashAttn::Auto,
            op_offload: true,
            decode_depth: None,
            prompt: None,
            gen: None,
            ubatch_fixed: false,
            devices: None,
            gpu_only: false,
            tool: Tool::Server,
            host_gpus: 0,
            workload: WorkloadPreset::Agent,
            prefix: None,
            extra_args: Vec::new(),
            rpc: Vec::new(),
            buft_names: Vec::new(),
        }
    }
}

impl SolveRequest {
    /// Take the host's device facts: its GPU count, `--rpc` list and `-ot` names.
    pub fn set_host(&mut self, host: &Host) {
        self.host_gpus = host.gpus.len();
        self.rpc = host.rpc_servers();
        self.buft_names = if self.rpc.is_empty() {
            Vec::new()
        } else {
            (0..host.gpus.len())
                .map(|i| host.buft_name(DeviceId::Gpu(i)))
                .collect()
        };
    }
    /// Context the request resolves to for `anatomy` (0 → training context).
    pub fn n_ctx(&self, anatomy: &Anatomy) -> u32 {
        if self.ctx == 0 {
            anatomy.hp.n_ctx_train
        } else {
            self.ctx
        }
    }
    /// `(prefix, prompt, gen)` of the request ([`workload_tokens`]).
    pub fn tokens(&self, anatomy: &Anatomy) -> (u32, u32, u32) {
        workload_tokens(
            self.workload,
            self.n_ctx(anatomy),
            self.prefix,
            self.prompt,
            self.gen,
        )
    }
    /// Tokens generated per request (workload).
    pub fn gen_tokens(&self, anatomy: &Anatomy) -> u32 {
        self.tokens(anatomy).2
    }
    /// Prompt tokens per request (workload): the given number, else the preset's; never more
    /// than the context leaves room for after the prefix and the generated tokens.
    pub fn prompt_tokens(&self, anatomy: &Anatomy) -> u32 {
        self.tokens(anatomy).1
    }
    /// Tokens in the KV cache before the prompt (workload).
    pub fn prefix_tokens(&self, anatomy: &Anatomy) -> u32 {
        self.tokens(anatomy).0
    }
    /// Average depth of a prompt token (prefill attention): the prefix plus half the prompt.
    pub fn prefill_depth(&self, anatomy: &Anatomy) -> u32 {
        let (prefix, prompt, _) = self.tokens(anatomy);
        prefix + prompt / 2
    }
    /// Tokens of context attention reads per generated token (speed model): prefix, prompt and
    /// half the generated tokens (the average over the generation), unless given.
    pub fn depth(&self, anatomy: &Anatomy) -> u32 {
        let (prefix, prompt, gen) = self.tokens(anatomy);
        self.decode_depth
            .unwrap_or(prefix.saturating_add(prompt).saturating_add(gen / 2))
    }
}

fn default_tool() -> Tool {
    Tool::Server
}

/// The request's launch settings with no placement yet (for the memory model's KV shapes).
pub fn request_launch(req: &SolveRequest) -> LaunchConfig {
    LaunchConfig {
        model: req.model_path.clone(),
        ctx: req.ctx,
        batch: req.batch,
        ubatch: req.ubatch,
        n_parallel: Some(req.n_parallel),
        kv_unified: (req.n_parallel > 1 && req.kv_unified).then_some(true),
        type_k: req.type_k,
        type_v: req.type_v,
        flash_attn: req.flash_attn,
        op_offload: req.op_offload,
        fit: false,
        passthrough: req.extra_args.clone(),
        rpc: req.rpc.clone(),
        ..LaunchConfig::for_tool(req.tool)
    }
}

/// The launch (llama-server flags) that realises `placement` for `req`: the request's launch
/// ([`request_launch`]) with the placement's `-ngl -ts -ot` ([`crate::placement::to_launch`]).
/// `-ot` targets are spelled as llama.cpp names the host's buffer types (`RPC0[host:port]` for
/// an RPC device, [`SolveRequest::buft_names`]).
pub fn launch_for(anatomy: &Anatomy, placement: &Placement, req: &SolveRequest) -> LaunchConfig {
    let mut l =
        crate::placement::to_launch(anatomy, placement, &request_launch(req), req.host_gpus);
    if !req.buft_names.is_empty() {
        for o in l.overrides.iter_mut() {
            let gpu = o
                .buft
                .strip_prefix("CUDA")
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(name) = gpu.and_then(|i| req.buft_names.get(i)) {
                o.buft = name.clone();
            }
        }
    }
    l
}

pub use crate::host_model::Margins;

/// One row of the per-device table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceUse {
    /// The device (a GPU, or the CPU for the host row).
    pub device: DeviceId,
    /// Weight bytes (on the host: mapped and non-mapped CPU weights).
    pub weights: u64,
    /// KV cache + recurrent state.
    pub kv: u64,
    /// Compute-buffer bytes.
    pub compute: u64,
    /// CUDA context and other calibrated overhead, bytes (0 on the host).
    pub overhead: u64,
    /// Usable bytes.
    pub cap: u64,
    /// Bytes the profile keeps free.
    pub margin: u64,
}

impl DeviceUse {
    /// Weights + KV + compute + overhead.
    pub fn total(&self) -> u64 {
        self.weights + self.kv + self.compute + self.overhead
    }
    /// Cap minus total (negative: over).
    pub fn free(&self) -> i64 {
        self.cap as i64 - self.total() as i64
    }
}

/// A solved placement with its flags and predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Solution {
    /// Where each layer and group lives.
    pub placement: Placement,
    /// The llama.cpp launch that realises the placement.
    pub launch: LaunchConfig,
    /// GPUs in order, then the host (CPU) row. Bytes from `memory::predict`.
    pub devices: Vec<DeviceUse>,
    /// Predicted decode tokens/s at the workload's depth (speed model of docs/solver.md).
    pub decode_tps: f64,
    /// Predicted prefill (prompt) tokens/s for the workload's prompt; None when the calibration
    /// prices no prefill term for this placement.
    pub prefill_tps: Option<f64>,
    /// Predicted seconds of the whole request (prompt + generated tokens): the objective.
    pub request_s: f64,
    /// The workload priced: prompt tokens, generated tokens, decode depth.
    pub workload: Workload,
    /// How `-ub` was chosen (None: the user's, or nothing on the CPU to stream).
    #[serde(default)]
    pub ubatch_choice: Option<String>,
    /// Where the speed constants came from.
    #[serde(default)]
    pub speed_source: String,
    /// When weights spill to the CPU on a `--devices` request: why, and the smallest changes that
    /// would keep everything on those GPUs.
    #[serde(default)]
    pub gpu_only: Option<Infeasible>,
    /// Predicted backend hand-offs per generated token.
    pub splits: u32,
    /// Solve-and-check rounds it took.
    pub rounds: usize,
    /// Seconds the solve took.
    pub solve_s: f64,
    /// The memory prediction's notes on the launch.
    pub warnings: Vec<String>,
    /// Per device (GPUs, then host): exact − linear bytes at this placement. Another profile of
    /// the same request starts from it (`solve_with_hint`) and usually needs one round less.
    #[serde(skip)]
    pub corrections: Vec<f64>,
}

/// The request the objective prices (printed with every prediction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Prompt tokens per request.
    pub prompt_tokens: u32,
    /// Tokens generated per request.
    pub gen_tokens: u32,
    /// Context depth attention reads per generated token.
    pub decode_depth: u32,
}

/// A request that does not fit, with the smallest changes that do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Infeasible {
    /// Why it does not fit, in words.
    pub reason: String,
    /// The smallest changes that fit.
    pub suggestions: Vec<Suggestion>,
}

/// One change that makes the request fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suggestion {
    /// What to change, in words ("-c 65536 instead of 131072").
    pub change: String,
    /// The changed request, when placer can solve it.
    pub request: Option<SolveRequest>,
    /// More host RAM needed (MiB), when that is the change.
    pub more_ram_mib: Option<u64>,
}

impl std::fmt::Display for Infeasible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.reason)?;
        for s in &self.suggestions {
            writeln!(f, "  - {}", s.change)?;
        }
        Ok(())
    }
}

/// Linear usage per GPU and on the host for a (slot, movable) assignment.
fn linear_usage(m: &coeffs::LinearModel, slots: &[DeviceId], mov: &[DeviceId]) -> (Vec<f64>, f64) {
    let g = m.n_gpus;
    let mut gpu = m.overhead.iter().map(|&o| o as f64).collect::<Vec<_>>();
    let mut host = (m.input_bytes + m.host_fixed) as f64;
    let mut used = vec![false; g];
    for (s, d) in slots.iter().enumerate() {
        let w = (m.slot_fixed[s] + m.slot_kv[s]) as f64;
        match d {
            DeviceId::Gpu(i) => {
                gpu[*i] += w;
                used[*i] = true;
            }
            DeviceId::Cpu => host += w,
        }
    }
    let mut stage = 0u64;
    for (mv, d) in m.movable.iter().zip(mov) {
        match d {
            DeviceId::Gpu(i) => {
                gpu[*i] += mv.bytes as f64;
                if mv.kind == GroupKind::Output {
                    gpu[*i] += m.compute_logits as f64;
                }
            }
            DeviceId::Cpu => {
                host += mv.bytes as f64;
                stage = stage.max(mv.max_tensor);
            }
        }
    }
    for (s, d) in slots.iter().enumerate() {
        if *d == DeviceId::Cpu {
            stage = stage.max(m.slot_fixed_max_tensor[s]);
        }
    }
    for i in 0..g {
        if used[i] {
            gpu[i] += m.compute_base as f64;
        }
    }
    if m.op_offload && g > 0 {
        gpu[0] += stage as f64;
    }
    (gpu, host)
}

fn to_placement(m: &coeffs::LinearModel, r: &ilp::IlpResult) -> Placement {
    let moved = m
        .movable
        .iter()
        .zip(&r.movable_device)
        .filter(|(mv, d)| **d != r.slot_device[mv.slot])
        .map(|(mv, d)| (mv.group, *d))
        .collect();
    Placement {
        layer_device: r.slot_device.clone(),
        moved,
    }
}

/// Per-device rows from the exact prediction.
fn device_rows(p: &Prediction, margins: &Margins) -> Vec<DeviceUse> {
    let mut rows: Vec<DeviceUse> = p
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| DeviceUse {
            device: g.device,
            weights: g.model,
            kv: g.kv + g.rs,
            compute: g.compute,
            overhead: g.overhead,
            cap: g.cap,
            margin: from_mib(margins.gpu_mib.get(i).copied().unwrap_or(0.0)),
        })
        .collect();
    let h = &p.host;
    rows.push(DeviceUse {
        device: DeviceId::Cpu,
        weights: h.cpu_mapped + h.cpu_model,
        kv: h.kv + h.rs,
        compute: h.compute,
        overhead: 0,
        cap: h.cap,
        margin: from_mib(margins.ram_mib),
    });
    rows
}

/// Bytes by which each device (GPUs, then host) exceeds cap − margin (0 when it fits).
fn overshoot(rows: &[DeviceUse]) -> Vec<f64> {
    rows.iter()
        .map(|r| (r.total() as f64 + r.margin as f64 - r.cap as f64).max(0.0))
        .collect()
}

/// Solve one request with one set of margins.
pub fn solve(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
) -> Result<Solution, Infeasible> {
    solve_with_hint(anatomy, hm, req, margins, None)
}

/// `solve`, starting from the linear-vs-exact corrections of an earlier solve of the same request
/// (e.g. the other profile).
pub fn solve_with_hint(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
    hint: Option<&[f64]>,
) -> Result<Solution, Infeasible> {
    if let Some(devs) = req.devices.clone() {
        return solve_on_devices(anatomy, hm, req, margins, hint, &devs);
    }
    let (chosen, choice) = choose_ubatch(anatomy, hm, req, margins, hint);
    match solve_inner(anatomy, hm, &chosen, margins, hint) {
        Ok(mut s) => {
            s.ubatch_choice = choice;
            Ok(s)
        }
        // The exact memory model can refuse what the linear one priced: keep the request's -ub.
        Err(_) if chosen.ubatch != req.ubatch => {
            match solve_inner(anatomy, hm, req, margins, hint) {
                Ok(mut s) => {
                    s.ubatch_choice = Some(format!(
                    "-ub {} kept: -ub {} looked faster but does not fit under the exact memory model",
                    req.ubatch, chosen.ubatch
                ));
                    Ok(s)
                }
                Err(reason) => Err(diagnose(anatomy, hm, req, margins, reason)),
            }
        }
        Err(reason) => Err(diagnose(anatomy, hm, req, margins, reason)),
    }
}

/// The host as llama.cpp sees it with `--device` = `devs` (in that order): only those GPUs.
pub fn sub_host(host: &Host, devs: &[usize]) -> Host {
    Host {
        gpus: devs.iter().map(|&i| host.gpus[i].clone()).collect(),
        ..host.clone()
    }
}

/// Solve on a subset of the host's GPUs: the program runs on the host restricted to them (GPU i
/// of the sub-host = `devs[i]`), then devices are renamed back and `-dev CUDAa,CUDAb` is emitted
/// (llama.cpp's `--device`, `src/llama.cpp:llama_prepare_model_devices`: `-ts` and `-ngl` then
/// apply to that list in that order).
fn solve_on_devices(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
    hint: Option<&[f64]>,
    devs: &[usize],
) -> Result<Solution, Infeasible> {
    let host = &hm.host;
    let bad = devs.is_empty()
        || devs.iter().any(|&i| i >= host.gpus.len())
        || (1..devs.len()).any(|k| devs[..k].contains(&devs[k]));
    if bad {
        return Err(Infeasible {
            reason: format!(
                "--devices {}: host {} has {} (each at most once)",
                devs.iter()
                    .map(|&i| host.device_name(crate::host::DeviceId::Gpu(i)))
                    .collect::<Vec<_>>()
                    .join(","),
                host.name,
                (0..host.gpus.len())
                    .map(|i| host.device_name(crate::host::DeviceId::Gpu(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            suggestions: Vec::new(),
        });
    }
    let sub = hm.restrict(devs);
    let sub_margins = Margins {
        gpu_mib: devs
            .iter()
            .map(|&i| margins.gpu_mib.get(i).copied().unwrap_or(0.0))
            .collect(),
        ram_mib: margins.ram_mib,
    };
    let sub_req = SolveRequest {
        devices: None,
        host_gpus: devs.len(),
        ..req.clone()
    };
    let rename = |d: DeviceId| match d {
        DeviceId::Gpu(i) => DeviceId::Gpu(devs[i]),
        DeviceId::Cpu => DeviceId::Cpu,
    };
    match solve_with_hint(anatomy, &sub, &sub_req, &sub_margins, hint) {
        Ok(mut s) => {
            s.placement.layer_device = s
                .placement
                .layer_device
                .iter()
                .map(|&d| rename(d))
                .collect();
            for (_, d) in s.placement.moved.iter_mut() {
                *d = rename(*d);
            }
            for row in s.devices.iter_mut() {
                row.device = rename(row.device);
            }
            s.launch.devices = Some(
                devs.iter()
                    .map(|&i| host.device_name(DeviceId::Gpu(i)))
                    .collect(),
            );
            let spills = s.placement.layer_device.contains(&DeviceId::Cpu)
                || s.placement.moved.iter().any(|(_, d)| *d == DeviceId::Cpu);
            if spills && !req.gpu_only {
                let r = SolveRequest {
                    gpu_only: true,
                    ..sub_req.clone()
                };
                if let Err(mut inf) = solve_with_hint(anatomy, &sub, &r, &sub_margins, None) {
                    inf.reason = spill_reason(anatomy, host, &s, &sub_margins, devs);
                    for sug in inf.suggestions.iter_mut() {
                        if let Some(r) = sug.request.as_mut() {
                            r.devices = req.devices.clone();
                            r.host_gpus = host.gpus.len();
                        }
                    }
                    s.gpu_only = Some(inf);
                }
            }
            Ok(s)
        }
        Err(mut inf) => {
            for sug in inf.suggestions.iter_mut() {
                if let Some(r) = sug.request.as_mut() {
                    r.devices = req.devices.clone();
                    r.host_gpus = host.gpus.len();
                }
            }
            Err(inf)
        }
    }
}

/// Why a `--devices` solution spills to the CPU, in MiB: all weights on those GPUs would need
/// the GPU rows plus the CPU weights (less the token embeddings, which stay on the CPU anyway),
/// against their usable memory minus the margin.
fn spill_reason(
    anatomy: &Anatomy,
    host: &Host,
    s: &Solution,
    margins: &Margins,
    devs: &[usize],
) -> String {
    // Every weight llama.cpp loads except the token embeddings (NextN blocks are skipped).
    let w: u64 = anatomy
        .tensors
        .iter()
        .filter(|t| {
            t.role != crate::anatomy::Role::NextN
                && !matches!(t.layer, crate::anatomy::LayerRef::Input)
        })
        .map(|t| t.nbytes)
        .sum();
    let gpus: Vec<&DeviceUse> = s
        .devices
        .iter()
        .filter(|d| d.device != DeviceId::Cpu)
        .collect();
    let kv: u64 = gpus.iter().map(|d| d.kv).sum();
    let comp: u64 = gpus.iter().map(|d| d.compute + d.overhead).sum();
    let cap: u64 = gpus.iter().map(|d| d.cap).sum();
    let margin: f64 = margins.gpu_mib.iter().sum();
    format!(
        "all weights on {} would need ≈ {:.0} MiB (weights {:.0} + KV {:.0} + compute and overhead {:.0}) of {:.0} MiB usable − {:.0} MiB margin",
        devs.iter()
            .map(|&i| host.device_name(DeviceId::Gpu(i)))
            .collect::<Vec<_>>()
            .join("+"),
        mib(w + kv + comp),
        mib(w),
        mib(kv),
        mib(comp),
        mib(cap),
        margin
    )
}

/// `-ub` for the request: the user's when given (`ubatch_fixed`); otherwise, when the incumbent
/// placement at the default keeps weights on the CPU (which op offload streams to GPU 0 once
/// per ubatch, so prefill time per token falls with the ubatch) each of [`UB_CHOICES`] up to
/// `-b` and the context is priced by the incumbent heuristic (no HiGHS, a few ms each; a larger
/// ubatch also grows the compute buffers, which the linear model sizes with llama.cpp's rules)
/// and the fastest request wins. Returns the request to solve and the choice in words.
fn choose_ubatch(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
    hint: Option<&[f64]>,
) -> (SolveRequest, Option<String>) {
    let host = &hm.host;
    if req.ubatch_fixed || !req.op_offload || host.gpus.is_empty() {
        return (req.clone(), None);
    }
    let g = host.gpus.len();
    let cap = req.batch.min(req.n_ctx(anatomy)).max(1);
    let price = |ub: u32| -> Option<(f64, bool)> {
        let r = SolveRequest {
            ubatch: ub,
            host_gpus: g,
            ..req.clone()
        };
        let m = coeffs::build(anatomy, hm, &r);
        let corr = hint.filter(|h| h.len() == g + 1);
        let budgets = ilp::Budgets {
            gpu: (0..g)
                .map(|d| {
                    m.gpu_cap[d] as f64
                        - margins.gpu_mib.get(d).copied().unwrap_or(0.0) * MIB as f64
                        - corr.map(|c| c[d]).unwrap_or(0.0)
                })
                .collect(),
            ram: m.ram_cap as f64
                - margins.ram_mib * MIB as f64
                - corr.map(|c| c[g]).unwrap_or(0.0),
        };
        ilp::incumbent(&m, &budgets)
    };
    let Some((t0, streams)) = price(req.ubatch) else {
        return (req.clone(), None);
    };
    if !streams {
        return (req.clone(), None);
    }
    let mut best = (t0, req.ubatch);
    let mut tried = vec![format!("{}: {t0:.1} s", req.ubatch)];
    for ub in UB_CHOICES {
        if ub == req.ubatch || ub > cap {
            continue;
        }
        match price(ub) {
            Some((t, _)) => {
                tried.push(format!("{ub}: {t:.1} s"));
                if t < best.0 * (1.0 - 1e-3) {
                    best = (t, ub);
                }
            }
            None => tried.push(format!("{ub}: does not fit")),
        }
    }
    let note = format!(
        "-ub {} chosen: CPU weights stream to CUDA0 once per ubatch during prefill; request time by -ub ({}; -ub capped by -b {} and the context)",
        best.1,
        tried.join(", "),
        req.batch
    );
    (
        SolveRequest {
            ubatch: best.1,
            ..req.clone()
        },
        Some(note),
    )
}

fn solve_inner(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
    hint: Option<&[f64]>,
) -> Result<Solution, String> {
    let host = &hm.host;
    let t0 = Instant::now();
    let mut req = req.clone();
    req.set_host(host);
    let m = coeffs::build(anatomy, hm, &req);
    let predictor = Predictor::with_constants(anatomy, host, &hm.memory);
    let g = host.gpus.len();
    let base_budget: Vec<f64> = (0..g)
        .map(|d| m.gpu_cap[d] as f64 - margins.gpu_mib.get(d).copied().unwrap_or(0.0) * MIB as f64)
        .collect();
    let base_ram = m.ram_cap as f64 - margins.ram_mib * MIB as f64;
    // Correction per device: exact − linear at the last placement (+ overshoot when it failed).
    let mut corr = match hint {
        Some(h) if h.len() == g + 1 => h.to_vec(),
        _ => vec![0.0; g + 1],
    };
    let mut best: Option<(f64, Solution)> = None;
    let mut last_reason = String::new();
    let mut seen: Vec<Placement> = Vec::new();
    for round in 1..=MAX_ROUNDS {
        let budgets = ilp::Budgets {
            gpu: (0..g).map(|d| base_budget[d] - corr[d]).collect(),
            ram: base_ram - corr[g],
        };
        let r = match ilp::solve(&m, &budgets, ilp::Goal::Speed) {
            Ok(r) => r,
            Err(e) => {
                last_reason = match e {
                    ilp::IlpError::Infeasible => {
                        "no placement fits the GPUs and host RAM with these margins".to_string()
                    }
                    e => format!("the solver failed: {e}"),
                };
                break;
            }
        };
        let placement = to_placement(&m, &r);
        if seen.contains(&placement) {
            break;
        }
        seen.push(placement.clone());
        let (launch, pred) = prefer_pinned(
            anatomy,
            &predictor,
            launch_for(anatomy, &placement, &req),
            margins,
        )
        .map_err(|e| format!("memory model rejected the emitted flags: {e:#}"))?;
        let rows = device_rows(&pred, margins);
        let over = overshoot(&rows);
        let (lin_gpu, lin_host) = linear_usage(&m, &r.slot_device, &r.movable_device);
        let exact: Vec<f64> = rows.iter().map(|r| r.total() as f64).collect();
        let lin: Vec<f64> = lin_gpu.iter().copied().chain([lin_host]).collect();
        if crate::env::flag(crate::env::DEBUG_SOLVER) {
            let t = m.times(&r.slot_device, &r.movable_device).request_s;
            let f = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{:.0}", x / MIB as f64))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            eprintln!(
                "round {round} at {:.3}s: obj {:.4} s, t {:.4} s, exact {} lin {} over {} corr {} | {}",
                t0.elapsed().as_secs_f64(),
                r.objective_s,
                t,
                f(&exact),
                f(&lin),
                f(&over),
                f(&corr),
                crate::emit::argv(&launch).join(" ")
            );
        }
        if over.iter().all(|&o| o <= 0.0) {
            let times = m.times(&r.slot_device, &r.movable_device);
            let t = times.request_s;
            let sol = Solution {
                placement,
                launch,
                devices: rows,
                decode_tps: 1.0 / times.decode_s,
                prefill_tps: (times.prefill_s > 0.0).then(|| 1.0 / times.prefill_s),
                request_s: times.request_s,
                workload: Workload {
                    prompt_tokens: m.prompt_tokens as u32,
                    gen_tokens: m.gen_tokens as u32,
                    decode_depth: req.depth(anatomy),
                },
                ubatch_choice: None,
                speed_source: m.rates_source.clone(),
                gpu_only: None,
                splits: times.splits,
                rounds: round,
                solve_s: 0.0,
                warnings: pred.warnings.clone(),
                corrections: exact.iter().zip(&lin).map(|(e, l)| e - l).collect(),
            };
            if best.as_ref().is_none_or(|(bt, _)| t < *bt - 1e-12) {
                best = Some((t, sol));
            }
            // Correct towards the exact model (may loosen a budget the linear model over-estimates);
            // worth another round only if some GPU gains or loses room for a movable group.
            // (the median group: a change smaller than that rarely moves anything that matters)
            let mut sizes: Vec<u64> = m.movable.iter().map(|mv| mv.bytes).collect();
            sizes.sort_unstable();
            let smallest = sizes.get(sizes.len() / 2).copied().unwrap_or(u64::MAX) as f64;
            let mut changed = false;
            for i in 0..=g {
                let c = exact[i] - lin[i];
                if i < g && (c - corr[i]).abs() >= smallest {
                    changed = true;
                }
                corr[i] = c;
            }
            if !changed {
                break;
            }
        } else {
            last_reason = over
                .iter()
                .enumerate()
                .filter(|(_, &o)| o > 0.0)
                .map(|(i, o)| format!("{} over by {:.0} MiB", rows[i].device, o / MIB as f64))
                .collect::<Vec<_>>()
                .join(", ");
            for i in 0..=g {
                corr[i] = (exact[i] - lin[i]).max(corr[i] + over[i]);
            }
        }
    }
    match best {
        Some((_, mut s)) => {
            s.solve_s = t0.elapsed().as_secs_f64();
            Ok(s)
        }
        None => Err(if last_reason.is_empty() {
            "no placement fits".into()
        } else {
            last_reason
        }),
    }
}

/// `-lm none` when op offload streams CPU-resident weights to the GPU during prefill and host RAM
/// can hold them. Without mmap llama.cpp puts CPU weights in the first GPU's pinned host buffer
/// (`src/llama-model.cpp:make_cpu_buft_list`, "storing the tensors in a host buffer is useful when
/// the processing of large batches is offloaded to a GPU device"; `llama-model-loader.cpp` warns
/// "tensor overrides to CPU are used with mmap enabled - consider using --load-mode none"), and
/// copies from pinned memory are faster. Measured (call 12, data/runs/2026-12-04-qwen3moe-h200emul-c32k):
/// prefill 5,760 → 9,026 t/s for the same moderate placement, 8,141 → 8,409 for the aggressive one,
/// decode and GPU memory unchanged. The price is host RAM: the CPU weights must fit in it (pinned,
/// no page cache to fall back on), which the exact model checks here; else mmap stays.
fn prefer_pinned(
    anatomy: &Anatomy,
    predictor: &Predictor,
    launch: LaunchConfig,
    margins: &Margins,
) -> anyhow::Result<(LaunchConfig, Prediction)> {
    use crate::launch::LoadMode;
    let mapped = |launch: LaunchConfig| {
        let pred = predictor.predict(&launch)?;
        Ok((launch, pred))
    };
    if !launch.op_offload || launch.load_mode != LoadMode::Mmap || launch.ubatch < 32 {
        return mapped(launch);
    }
    let pinned = LaunchConfig {
        load_mode: LoadMode::None,
        ..launch.clone()
    };
    match predictor.predict(&pinned) {
        Ok(pred)
            if streams_cpu_weights(anatomy, &pred)
                && overshoot(&device_rows(&pred, margins))
                    .iter()
                    .all(|&o| o <= 0.0) =>
        {
            Ok((pinned, pred))
        }
        _ => mapped(launch),
    }
}

/// Whether a CPU-resident matrix other than the token embeddings (a row lookup) and the output
/// matrix (logits rows only, never offloaded) is multiplied during prefill: what op offload copies
/// to the GPU once per ubatch (`speed::prefill_load`).
fn streams_cpu_weights(anatomy: &Anatomy, pred: &Prediction) -> bool {
    use crate::anatomy::Role;
    anatomy.tensors.iter().enumerate().any(|(i, t)| {
        pred.resolved.tensor_device.get(i) == Some(&DeviceId::Cpu)
            && !pred.resolved.skipped.get(i).copied().unwrap_or(false)
            && !matches!(t.role, Role::TokenEmbd | Role::Output)
            && t.dims.len() >= 2
    })
}

/// Find the smallest changes that make an infeasible request fit.
fn diagnose(
    anatomy: &Anatomy,
    hm: &HostModel,
    req: &SolveRequest,
    margins: &Margins,
    reason: String,
) -> Infeasible {
    let host = &hm.host;
    let mut suggestions = Vec::new();
    let fits = |r: &SolveRequest| solve_inner(anatomy, hm, r, margins, None).is_ok();
    let n_ctx = req.n_ctx(anatomy);
    // 1. The largest context that fits (multiples of 1024, binary search).
    let mut lo = 0u32;
    let mut hi = n_ctx / 1024;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let r = SolveRequest {
            ctx: mid * 1024,
            ..req.clone()
        };
        if fits(&r) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if lo > 0 {
        let r = SolveRequest {
            ctx: lo * 1024,
            ..req.clone()
        };
        suggestions.push(Suggestion {
            change: format!(
                "-c {} instead of {} (the largest context that fits)",
                lo * 1024,
                n_ctx
            ),
            request: Some(r),
            more_ram_mib: None,
        });
    }
    // 2. A smaller KV type at the requested context.
    for t in [GgmlType::Q8_0, GgmlType::Q4_0] {
        let cur = req.type_k.type_size().unwrap_or(2) as f64
            / req.type_k.block_size().unwrap_or(1) as f64;
        let new = t.type_size().unwrap_or(2) as f64 / t.block_size().unwrap_or(1) as f64;
        if new >= cur {
            continue;
        }
        let r = SolveRequest {
            type_k: t,
            type_v: t,
            ..req.clone()
        };
        if fits(&r) {
            suggestions.push(Suggestion {
                change: format!(
                    "-ctk {t} -ctv {t} (KV cache in {t} instead of {}) at -c {n_ctx}",
                    req.type_k
                ),
                request: Some(r),
                more_ram_mib: None,
            });
            break;
        }
    }
    if req.gpu_only {
        return Infeasible {
            reason: format!("it does not fit on the GPUs alone: {reason}"),
            suggestions,
        };
    }
    // 3. More host RAM: the fewest bytes that must stay in RAM when the GPUs are full.
    let mut r2 = req.clone();
    r2.host_gpus = host.gpus.len();
    let m = coeffs::build(anatomy, hm, &r2);
    let budgets = ilp::Budgets {
        gpu: (0..m.n_gpus)
            .map(|d| {
                m.gpu_cap[d] as f64 - margins.gpu_mib.get(d).copied().unwrap_or(0.0) * MIB as f64
            })
            .collect(),
        ram: f64::INFINITY,
    };
    match ilp::solve(&m, &budgets, ilp::Goal::MinHostBytes) {
        Ok(r) => {
            let (_, host_need) = linear_usage(&m, &r.slot_device, &r.movable_device);
            let need = host_need + margins.ram_mib * MIB as f64 - m.ram_cap as f64;
            if need > 0.0 {
                let more = (need / MIB as f64).ceil() as u64;
                suggestions.push(Suggestion {
                    change: format!(
                        "about {:.1} GiB more host RAM (needs ≈ {:.1} GiB with the GPUs full, has {:.1} GiB usable) at -c {n_ctx}",
                        more as f64 / 1024.0,
                        mib(host_need as u64 + from_mib(margins.ram_mib)) / 1024.0,
                        mib(m.ram_cap) / 1024.0
                    ),
                    request: None,
                    more_ram_mib: Some(more),
                });
            }
        }
        Err(_) => suggestions.push(Suggestion {
            change: format!(
                "a smaller -ub than {}: even with every weight in RAM the GPU compute buffers do not fit",
                req.ubatch
            ),
            request: None,
            more_ram_mib: None,
        }),
    }
    Infeasible {
        reason: format!("the request does not fit: {reason}"),
        suggestions,
    }
}
