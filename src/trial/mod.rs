//! `placer trial`: start each profile in the user's own llama-server, measure it with the
//! solve's workload, store the run where `placer calibrate` reads it, learn from it, and choose
//! by the users' rules (docs/trial.md, docs/users.md "The loop placer automates").
//!
//! * [`server`]: one llama-server on a free loopback port; never left running.
//! * [`measure`]: the requests (short prompt, the workload, a long prompt) and their timings.
//! * [`store`]: the run folder (manifest.json + log.txt.gz) under the user's data folder.
//! * [`choose`]: the users' decision rules.
//! * [`conf`]: the measured numbers into the section comments of models.conf.

pub mod choose;
pub mod conf;
pub mod measure;
pub mod server;
pub mod store;
pub mod tune;

use crate::logs::LogRun;
use measure::{Measurement, Phase, Plan};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether a candidate is the aggressive or the moderate profile (from its section name),
/// llama.cpp's own `--fit` choice (a baseline), or a step of the search from a profile, which
/// the decision rules use for ties and fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Aggressive,
    Moderate,
    Other,
    /// `--fit on` for the same request: llama.cpp places the tensors itself (src/trial/tune.rs).
    Baseline,
    /// A profile moved a little (src/trial/tune.rs `neighbours`).
    Tuned,
}

impl Kind {
    /// `…-aggressive` / `…-moderate` (as `placer solve --write` names them), else a word of the
    /// name.
    pub fn of_name(name: &str) -> Kind {
        let n = name.to_ascii_lowercase();
        if n.contains("aggressive") {
            Kind::Aggressive
        } else if n.contains("moderate") {
            Kind::Moderate
        } else {
            Kind::Other
        }
    }
}

/// One profile to try.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The models.conf section name.
    pub name: String,
    pub kind: Kind,
    /// llama-server's argv (no program name), `-m` resolved to the model file.
    pub argv: Vec<String>,
    /// The model file.
    pub model: PathBuf,
    /// `-c`.
    pub ctx: u32,
    /// placer's prediction for the same argv, when it could make one.
    pub predicted: Option<Predicted>,
}

/// What `check` predicts for a profile, next to what was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    /// Per GPU (CUDA0…) then `Host`: llama.cpp's own buffers in MiB (weights + KV + recurrent
    /// state + compute: what the exit breakdown's `self` measures), without the overhead.
    pub devices: Vec<(String, f64)>,
    /// Per GPU: the CUDA context / cuBLAS / pool overhead placer adds (the breakdown's
    /// "unaccounted"), MiB.
    #[serde(default)]
    pub overhead: Vec<(String, f64)>,
    pub fits: bool,
    pub verdict: String,
    pub decode_tps: Option<f64>,
    pub prefill_tps: Option<f64>,
}

/// Memory a loaded server used, per device (MiB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceUse {
    /// `CUDA0`, …, or `Host`.
    pub name: String,
    /// llama.cpp's own buffers: the exit breakdown's `self` when printed, else the sum of the
    /// log's buffer lines for the device.
    pub mib: f64,
    /// The device's total memory (breakdown, else the host file).
    pub total_mib: Option<f64>,
    /// The usable cap of the device in the host file (what placer plans with: 12,800 MiB on
    /// the users' 5070 Ti), for the percentage.
    #[serde(default)]
    pub cap_mib: Option<f64>,
    /// NVML: memory used on the whole GPU while the server was loaded, every process's (None
    /// without NVML). Not comparable with `mib` on a shared or emulated GPU.
    pub nvml_used_mib: Option<f64>,
    /// NVML: memory the server process itself held on the GPU (per-process accounting), where
    /// each of the host's GPUs is one physical GPU (not under virtual devices); the CUDA
    /// overhead is this minus `mib` (src/calibrate/learn.rs reads it).
    #[serde(default)]
    pub nvml_process_mib: Option<f64>,
}

impl DeviceUse {
    /// llama.cpp's own buffers as a percentage of the device's usable cap (like for like with
    /// the prediction: `self` over the cap placer plans with, not NVML's whole-GPU use).
    pub fn percent(&self) -> Option<f64> {
        self.cap_mib
            .or(self.total_mib)
            .filter(|t| *t > 0.0)
            .map(|t| 100.0 * self.mib / t)
    }
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Loaded and answered every request.
    Ok,
    /// Did not become ready.
    LoadFailed { why: String, oom: bool },
    /// Loaded, then failed a request (crashed, or answered with an error).
    RequestFailed {
        phase: String,
        why: String,
        oom: bool,
    },
    /// Loaded and answering, but one request took longer than the limit (`--request-timeout`,
    /// or the cap of src/trial/tune.rs `request_cap` once a faster candidate finished): stopped,
    /// it cannot be the measured best.
    TooSlow { phase: String, limit_s: f64 },
    /// Loaded and answered, but llama.cpp's own buffers on a GPU exceeded the host file's usable
    /// memory of that device: on the machine the host file describes (the users' 12.8 GB of a
    /// 16 GB card, or a virtual device of testbed/ballast.py) it would not load. Not a candidate.
    OverCap {
        device: String,
        mib: f64,
        cap_mib: f64,
    },
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
    pub fn oom(&self) -> bool {
        matches!(
            self,
            Outcome::LoadFailed { oom: true, .. } | Outcome::RequestFailed { oom: true, .. }
        )
    }
    /// One short word for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::LoadFailed { oom: true, .. } => "OOM at load",
            Outcome::LoadFailed { .. } => "failed to load",
            Outcome::RequestFailed { oom: true, .. } => "OOM under load",
            Outcome::RequestFailed { .. } => "crashed",
            Outcome::TooSlow { .. } => "too slow",
            Outcome::OverCap { .. } => "over the cap",
        }
    }
}

/// The result of trying one profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialResult {
    pub name: String,
    pub kind: Kind,
    pub outcome: Outcome,
    /// The log lines that say why it failed (a short excerpt); empty when it did not fail.
    pub failure_lines: Vec<String>,
    pub measurements: Vec<Measurement>,
    pub memory: Vec<DeviceUse>,
    pub load_s: Option<f64>,
    pub port: Option<u16>,
    /// Full argv (program first), as started.
    pub argv: Vec<String>,
    pub predicted: Option<Predicted>,
    /// The workload as measured (after fitting it into the slot).
    pub workload: measure::Workload,
    pub long_tokens: u32,
    /// The run folder (manifest.json + log.txt.gz).
    pub run_dir: Option<PathBuf>,
    /// The server's build (`build: N (commit)` of its log).
    pub build: Option<String>,
    /// Ports that were taken and skipped.
    pub ports_skipped: Vec<u16>,
    /// How the workload's cached prefix got into the slot.
    pub prefix: measure::PrefixSource,
}

impl TrialResult {
    fn by(&self, what: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.what == what)
    }
    /// The workload's turns (one or two).
    pub fn workload_turns(&self) -> Vec<&Measurement> {
        self.measurements
            .iter()
            .filter(|m| m.what.starts_with("workload"))
            .collect()
    }
    /// Server time of each workload turn, seconds.
    fn turn_times(&self) -> Vec<f64> {
        self.workload_turns()
            .iter()
            .map(|m| m.request_s())
            .collect()
    }
    /// Median server time of the workload's turns, seconds.
    pub fn request_s(&self) -> Option<f64> {
        measure::median(&self.turn_times())
    }
    /// The measurement spread: (max − min) / median of the workload turns' times.
    pub fn spread(&self) -> Option<f64> {
        measure::spread_of(&self.turn_times())
    }
    /// Decode t/s of the workload's turn (median over its turns).
    pub fn decode_tps(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .workload_turns()
            .iter()
            .filter_map(|m| m.decode_tps())
            .collect();
        measure::median(&v)
    }
    /// Prefill t/s of the workload's new chunk (median over its turns).
    pub fn prefill_tps(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .workload_turns()
            .iter()
            .filter_map(|m| m.prefill_tps())
            .collect();
        measure::median(&v)
    }
    /// Prefill t/s of the long prompt.
    pub fn long_prefill_tps(&self) -> Option<f64> {
        self.by("long").and_then(|m| m.prefill_tps())
    }
}

/// How to run the trials.
#[derive(Debug, Clone)]
pub struct Options {
    /// The llama-server binary.
    pub server: PathBuf,
    /// `llama-server --version`'s build, for the records.
    pub version: String,
    pub load_timeout: Duration,
    /// Limit for one request.
    pub request_timeout: Duration,
    pub port_base: u16,
    /// The solve's workload.
    pub workload: measure::Workload,
    /// The long prompt as a share of the context.
    pub long_share: f64,
    /// Where runs are stored (`store::data_dir`).
    pub data_dir: PathBuf,
    /// Scenario folder name under `data_dir` (`<date>-trial-<conf>`).
    pub scenario: String,
    pub host: crate::host::Host,
    /// How often the workload's turn is repeated (until the spread is known).
    pub turns: measure::Turns,
    /// A folder for llama-server's slot saves (`--slot-save-path`), shared by the trial's
    /// candidates: the cached prefix is prefilled once and restored by the others. `None`:
    /// every candidate prefills it.
    pub prefix_cache: Option<PathBuf>,
}

/// The slot-save file for a workload's prefix in this launch: the same model, prefix and KV
/// layout (cache types, flash attention: what `llama_state_seq_load_file` must find equal) give
/// the same name, so only a compatible candidate restores it.
pub fn prefix_file_name(argv: &[String], prefix: u32) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let value = |names: &[&str]| -> Option<&String> {
        argv.iter()
            .position(|a| names.contains(&a.as_str()))
            .and_then(|i| argv.get(i + 1))
    };
    for names in [
        &["-m", "--model"][..],
        &["-ctk", "--cache-type-k"],
        &["-ctv", "--cache-type-v"],
        &["-fa", "--flash-attn"],
        &["-c", "--ctx-size"],
        &["-np", "--parallel"],
    ] {
        value(names).hash(&mut h);
    }
    prefix.hash(&mut h);
    format!("placer-prefix-{:016x}.bin", h.finish())
}

/// The users' long prompt is 2K+ tokens (docs/users.md, step 4).
pub const LONG_MIN_TOKENS: u32 = 2048;

/// Generated tokens after the short and the long prompt.
pub const GEN_SHORT: u32 = 32;

/// Try one profile: start, measure, stop, store. Never returns with a server running.
/// `progress` gets a line per phase.
pub fn run_profile(p: &Profile, o: &Options, mut progress: impl FnMut(&str)) -> TrialResult {
    let run_dir = store::new_run_dir(&o.data_dir, &o.scenario, &p.name);
    let log_path = run_dir
        .as_ref()
        .map(|d| d.join("log.txt"))
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("placer-trial-{}.log", p.name)));
    let launch = server::Launch {
        binary: o.server.clone(),
        argv: p.argv.clone(),
        log_path: log_path.clone(),
        port_base: o.port_base,
        load_timeout: o.load_timeout,
        slot_dir: o.prefix_cache.clone(),
    };
    let mut res = TrialResult {
        name: p.name.clone(),
        kind: p.kind,
        outcome: Outcome::Ok,
        failure_lines: Vec::new(),
        measurements: Vec::new(),
        memory: Vec::new(),
        load_s: None,
        port: None,
        argv: Vec::new(),
        predicted: p.predicted.clone(),
        workload: o.workload,
        long_tokens: 0,
        run_dir: run_dir.as_ref().ok().cloned(),
        build: None,
        ports_skipped: Vec::new(),
        prefix: measure::PrefixSource::None,
    };
    progress("loading");
    let t0 = Instant::now();
    let started = server::start(&launch, || {});
    let wall0 = t0;
    let mut nvml_used = None;
    let mut nvml_proc: Option<Vec<f64>> = None;
    let exit;
    match started {
        Err(f) => {
            res.argv = f.argv.clone();
            if let server::LoadFailure::PortTaken(p) = &f.why {
                res.ports_skipped = p.clone();
            }
            exit = f.exit.clone();
            let text = read_text(&log_path);
            let log = parse_log(&text);
            let oom = log.as_ref().is_some_and(|l| !l.oom.is_empty()) || text_says_oom(&text);
            res.failure_lines = failure_excerpt(&text);
            res.outcome = Outcome::LoadFailed {
                why: f.why.to_string(),
                oom,
            };
        }
        Ok(mut s) => {
            res.argv = s.argv.clone();
            res.port = Some(s.port);
            res.ports_skipped = (o.port_base..s.port).collect();
            res.load_s = Some(s.load_s);
            nvml_used = nvml_used_mib();
            nvml_proc = u32::try_from(s.pid()).ok().and_then(nvml_process_mib);
            let client = measure::Client::new(s.url(), o.request_timeout);
            let slot = client.slot_ctx().unwrap_or(p.ctx).max(1);
            let workload = o.workload.fit_into(slot);
            let long = ((o.long_share * p.ctx as f64) as u32)
                .max(LONG_MIN_TOKENS)
                .min(slot.saturating_sub(GEN_SHORT + 8));
            res.workload = workload;
            res.long_tokens = long;
            let plan = Plan {
                workload,
                long,
                gen_short: GEN_SHORT,
                turns: o.turns,
                prefix_file: o
                    .prefix_cache
                    .as_ref()
                    .map(|_| prefix_file_name(&p.argv, workload.prefix)),
            };
            let (ms, source, err) = measure::run_plan(&client, &plan, |ph| {
                progress(match ph {
                    Phase::Short => "short prompt",
                    Phase::Prefix => "cached prefix",
                    Phase::Workload => "workload (prompt + generation)",
                    Phase::Long => "long prompt",
                })
            });
            res.measurements = ms;
            res.prefix = source;
            let alive = s.alive();
            progress("stopping");
            exit = s.stop().map(|st| format!("{st}"));
            if let Some((phase, why)) = err {
                let text = read_text(&log_path);
                let oom =
                    text_says_oom(&text) || parse_log(&text).is_some_and(|l| !l.oom.is_empty());
                res.failure_lines = failure_excerpt(&text);
                // A live server that did not answer in time is slow, not broken (ureq says
                // "timed out reading response" when the request's deadline passes).
                let phase = format!("{phase:?}").to_lowercase();
                if alive && !oom && why.contains("timed out") {
                    res.outcome = Outcome::TooSlow {
                        phase,
                        limit_s: o.request_timeout.as_secs_f64(),
                    };
                    res.failure_lines.clear();
                } else {
                    let why = if alive {
                        why
                    } else {
                        format!("llama-server died ({why})")
                    };
                    res.outcome = Outcome::RequestFailed { phase, why, oom };
                }
            }
        }
    }
    let text = read_text(&log_path);
    let log = parse_log(&text);
    if let Some(l) = &log {
        res.build = l.build.clone();
        res.memory = memory_of(l, &o.host, nvml_used.as_deref());
        // Per-process memory only where GPU i of the host is physical GPU i.
        if let Some(p) = nvml_proc.filter(|p| p.len() == o.host.gpus.len()) {
            for (i, d) in res
                .memory
                .iter_mut()
                .filter(|d| d.name != "Host")
                .enumerate()
            {
                d.nvml_process_mib = p.get(i).copied().filter(|v| *v > 0.0);
            }
        }
    }
    if res.outcome.ok() {
        if let Some(d) = over_cap(&res.memory) {
            res.outcome = Outcome::OverCap {
                device: d.name.clone(),
                mib: d.mib,
                cap_mib: d.cap_mib.unwrap_or(0.0),
            };
        }
    }
    if let Ok(dir) = &run_dir {
        if let Err(e) = store::finish(dir, &log_path, p, o, &res, exit, wall0.elapsed()) {
            progress(&format!("warning: run not stored: {e:#}"));
            res.run_dir = None;
        }
    }
    res
}

/// The first GPU whose measured buffers exceed the host file's usable memory for it.
pub fn over_cap(memory: &[DeviceUse]) -> Option<&DeviceUse> {
    memory
        .iter()
        .filter(|d| d.name != "Host")
        .find(|d| d.cap_mib.is_some_and(|c| c > 0.0 && d.mib > c))
}

fn read_text(log: &Path) -> String {
    let mut s = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    // The console holds what was printed before the log file opened (option errors).
    if let Ok(b) = std::fs::read(server::console_path(log)) {
        if s.trim().is_empty() {
            s = String::from_utf8_lossy(&b).into_owned();
        } else {
            let c = String::from_utf8_lossy(&b);
            for l in c.lines().filter(|l| is_failure_line(l)) {
                if !s.contains(l) {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
    }
    s
}

fn parse_log(text: &str) -> Option<LogRun> {
    crate::logs::parse_bytes("llama-server log", text.as_bytes()).ok()
}

fn text_says_oom(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("out of memory")
        || t.contains("failed to allocate")
        || t.contains("unable to allocate")
        || t.contains("bad_alloc")
}

fn is_failure_line(l: &str) -> bool {
    let t = l.to_ascii_lowercase();
    [
        "error",
        "failed",
        "out of memory",
        "unable to",
        "exception",
        "abort",
        "ggml_assert",
        "couldn't",
        "invalid",
        "terminate",
        "segmentation",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// The lines of a log that say why a server failed: up to 8 lines with an error word, else its
/// last 5 lines.
pub fn failure_excerpt(text: &str) -> Vec<String> {
    let hits: Vec<String> = text
        .lines()
        .filter(|l| is_failure_line(l))
        .map(|l| l.trim_end().chars().take(240).collect())
        .collect();
    let mut v: Vec<String> = if hits.is_empty() {
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(5)..]
            .iter()
            .map(|l| l.chars().take(240).collect())
            .collect()
    } else {
        hits
    };
    v.dedup();
    if v.len() > 8 {
        v.drain(8..);
    }
    v
}

/// Device of a buffer name: `CUDA0` → `CUDA0`; `CUDA_Host`, `CPU`, `CPU_Mapped`, `CPU_REPACK` → `Host`.
/// The device a buffer (or breakdown row) belongs to, by llama.cpp's device name: `CUDA1`,
/// `RPC0` — an RPC buffer type is `RPC<d>[host:port]` with the server's own index `d`
/// (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type`), named here as the host file's device —, or
/// `Host` for host buffers (`CUDA_Host`, `CPU_Mapped`, `CPU`).
fn device_of_buffer(name: &str, host: &crate::host::Host) -> String {
    let gpu = |p: &str| {
        name.strip_prefix(p)
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
    };
    if ["CUDA", "ROCm", "Vulkan", "Metal", "SYCL", "RPC"]
        .iter()
        .any(|p| gpu(p))
    {
        return name.to_string();
    }
    if let Some((d, rest)) = name.strip_prefix("RPC").and_then(|r| r.split_once('[')) {
        let endpoint = rest.trim_end_matches(']');
        if let Ok(d) = d.parse::<u32>() {
            let i = host.gpus.iter().position(|g| {
                g.rpc
                    .as_ref()
                    .is_some_and(|r| r.endpoint == endpoint && r.device == d)
            });
            return match i {
                Some(i) => host.device_name(crate::host::DeviceId::Gpu(i)),
                None => format!("RPC{d}"),
            };
        }
    }
    "Host".to_string()
}

/// Memory per device from the log: the exit breakdown's `self` where printed
/// (`common/log` breakdown at exit, `src/llama-context.cpp: llama_memory_breakdown_print`), else
/// the buffer lines summed per device.
pub fn memory_of(
    log: &LogRun,
    host: &crate::host::Host,
    nvml_used: Option<&[f64]>,
) -> Vec<DeviceUse> {
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    let b = &log.buffers;
    for m in [&b.model, &b.kv, &b.rs, &b.compute] {
        for (k, v) in m {
            *by.entry(device_of_buffer(k, host)).or_insert(0.0) += v;
        }
    }
    let mut out: Vec<DeviceUse> = Vec::new();
    let mut names: Vec<String> = by.keys().filter(|k| *k != "Host").cloned().collect();
    for r in &log.breakdown {
        let n = device_of_buffer(r.name.split_whitespace().next().unwrap_or(""), host);
        if n != "Host" && !names.contains(&n) {
            names.push(n);
        }
    }
    // llama.cpp's device order (RPC devices first), which is the host file's
    let index_of = |n: &str| {
        (0..host.gpus.len()).find(|&i| host.device_name(crate::host::DeviceId::Gpu(i)) == n)
    };
    names.sort_by_key(|n| (index_of(n).unwrap_or(usize::MAX), n.clone()));
    names.push("Host".into());
    for (pos, n) in names.iter().enumerate() {
        let i = index_of(n).unwrap_or(pos);
        let row = log.breakdown.iter().find(|r| {
            let first = r.name.split_whitespace().next().unwrap_or("");
            if n == "Host" {
                first.eq_ignore_ascii_case("host")
            } else {
                first == n
            }
        });
        let mib = row
            .map(|r| r.self_)
            .or_else(|| by.get(n).copied())
            .unwrap_or(0.0);
        let gpu_total = if n == "Host" {
            None
        } else {
            row.and_then(|r| r.total)
                .or_else(|| host.gpus.get(i).map(|g| g.total_mib as f64))
        };
        let total_mib = if n == "Host" {
            (host.ram.total_mib > 0).then_some(host.ram.total_mib as f64)
        } else {
            gpu_total
        };
        let cap_mib = if n == "Host" {
            (host.ram.usable_mib > 0).then_some(host.ram.usable_mib as f64)
        } else {
            host.gpus
                .get(i)
                .map(|g| g.usable_mib as f64)
                .filter(|c| *c > 0.0)
        };
        out.push(DeviceUse {
            name: n.clone(),
            mib,
            total_mib,
            cap_mib,
            nvml_process_mib: None,
            nvml_used_mib: if n == "Host" {
                None
            } else {
                nvml_used.and_then(|u| u.get(i).copied())
            },
        });
    }
    out
}

/// Memory used per GPU now, by NVML (None where NVML is absent: a CPU-only machine).
pub fn nvml_used_mib() -> Option<Vec<f64>> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let n = nvml.device_count().ok()?;
    let mut v = Vec::new();
    for i in 0..n {
        let d = nvml.device_by_index(i).ok()?;
        let m = d.memory_info().ok()?;
        v.push(m.used as f64 / (1u64 << 20) as f64);
    }
    Some(v)
}

/// Memory process `pid` holds on each GPU now, by NVML's per-process accounting (0 where it
/// holds none or the driver does not say; None where NVML is absent).
pub fn nvml_process_mib(pid: u32) -> Option<Vec<f64>> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let n = nvml.device_count().ok()?;
    let mut v = Vec::new();
    for i in 0..n {
        let d = nvml.device_by_index(i).ok()?;
        let used = d
            .running_compute_processes()
            .ok()
            .and_then(|ps| ps.into_iter().find(|p| p.pid == pid))
            .and_then(|p| match p.used_gpu_memory {
                nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
            })
            .unwrap_or(0);
        v.push(used as f64 / (1u64 << 20) as f64);
    }
    Some(v)
}

/// The date as `YYYY-MM-DD` (UTC) and seconds since the epoch.
pub fn today() -> (String, u64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (civil_date(secs / 86400), secs)
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (H. Hinnant's civil_from_days).
pub fn civil_date(days: u64) -> String {
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", if m <= 2 { y + 1 } else { y }, m, d)
}

/// placer's prediction for a profile (`check::check_with` on the same argv and workload).
pub fn predict(
    anatomy: &crate::anatomy::Anatomy,
    cfg: &crate::launch::LaunchConfig,
    hm: &crate::host_model::HostModel,
    workload: &measure::Workload,
) -> Option<Predicted> {
    let w = crate::check::Workload {
        preset: crate::solver::WorkloadPreset::Agent,
        prompt: Some(workload.chunk),
        gen: Some(workload.gen),
        prefix: Some(workload.prefix),
    };
    let r = crate::check::check_with(anatomy, cfg, hm, Vec::new(), w).ok()?;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let label = |i: usize| {
        r.gpu_labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("CUDA{i}"))
    };
    let mut devices: Vec<(String, f64)> = r
        .prediction
        .gpus
        .iter()
        .enumerate()
        .map(|(i, d)| (label(i), mib(d.total() - d.overhead)))
        .collect();
    let overhead = r
        .prediction
        .gpus
        .iter()
        .enumerate()
        .map(|(i, d)| (label(i), mib(d.overhead)))
        .collect();
    let h = &r.prediction.host;
    devices.push((
        "Host".into(),
        mib(h.cpu_mapped + h.cpu_model + h.kv + h.rs + h.compute),
    ));
    Some(Predicted {
        devices,
        overhead,
        fits: r.fits(),
        verdict: r.verdict_text.clone(),
        decode_tps: r.speed.as_ref().map(|s| s.decode_tps),
        prefill_tps: r.speed.as_ref().and_then(|s| s.prefill_tps),
    })
}

/// What learning from the runs produced.
pub struct Learned {
    pub path: PathBuf,
    pub calibration: crate::calibration::Calibration,
    pub lines: Vec<String>,
    pub n_records: usize,
}

/// `placer calibrate` on every run in the data folder (this trial's and earlier ones), starting
/// from `base`, written to the user's calibration (`Calibration::user_path`), which the next
/// `solve` / `check` read. An OOM raises that device's margin; speeds fit this host's constants
/// where there are enough runs (src/calibrate/fit.rs).
pub fn learn(
    data_dir: &Path,
    base: &crate::calibration::Calibration,
    host: &crate::host::Host,
    models_dir: Option<&Path>,
) -> anyhow::Result<Learned> {
    let opts = crate::calibrate::run::Options {
        host: Some(host.clone()),
        models_dir: models_dir.map(Path::to_path_buf),
        workload_turns: true,
        ..crate::calibrate::run::Options::default()
    };
    let (records, _) =
        crate::calibrate::run::build_records(&[data_dir.to_path_buf()], base, &opts, |_| {});
    let out = crate::calibrate::learn::update(&records, base);
    let path = crate::calibration::Calibration::user_path().ok_or_else(|| {
        anyhow::anyhow!(
            "no home folder for ~/.config/placer/calibration.toml: set PLACER_CALIBRATION"
        )
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let header = format!(
        "# Written by `placer trial` (calibrate on {}) from {} runs (llama.cpp {}, host {}). Provenance of each value below.\n",
        data_dir.display(),
        out.calibration.n_runs,
        out.calibration.llama_build,
        out.calibration.host
    );
    write_calibration(&path, &(header + &out.calibration.to_toml()))?;
    Ok(Learned {
        path,
        n_records: records.len(),
        lines: out.lines(),
        calibration: out.calibration,
    })
}

/// Through the one file writer (src/fsio.rs): locked, atomic, mode-keeping.
fn write_calibration(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::fsio::replace(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20819), "2027-01-01");
        assert_eq!(civil_date(19782), "2024-02-29");
    }

    #[test]
    fn a_gpu_over_its_usable_memory_is_over_the_cap() {
        // 2026-12-07 GPU trial (data/runs/2026-12-07-glm-h100emul-c128k-trial): the users'
        // `--fit on` section put 19,040 MiB on the 12,800 MiB virtual device.
        let dev = |name: &str, mib: f64, cap: f64| DeviceUse {
            name: name.into(),
            mib,
            total_mib: Some(40539.0),
            cap_mib: Some(cap),
            nvml_used_mib: None,
            nvml_process_mib: None,
        };
        let within = [
            dev("CUDA0", 22966.0, 24000.0),
            dev("CUDA1", 11740.0, 12800.0),
        ];
        assert!(over_cap(&within).is_none());
        let over = [
            dev("CUDA0", 18994.0, 24000.0),
            dev("CUDA1", 19040.0, 12800.0),
            dev("Host", 90000.0, 61440.0),
        ];
        assert_eq!(over_cap(&over).map(|d| d.name.as_str()), Some("CUDA1"));
        // Host RAM is not a GPU cap: llama.cpp's host buffers may page.
        assert!(over_cap(&over[2..]).is_none());
    }

    #[test]
    fn kinds_and_buffers() {
        assert_eq!(Kind::of_name("glm-q8-aggressive"), Kind::Aggressive);
        assert_eq!(Kind::of_name("tiny-moderate"), Kind::Moderate);
        assert_eq!(Kind::of_name("mine"), Kind::Other);
        let h = crate::host::default_host();
        assert_eq!(device_of_buffer("CUDA1", &h), "CUDA1");
        assert_eq!(device_of_buffer("CUDA_Host", &h), "Host");
        assert_eq!(device_of_buffer("CPU_Mapped", &h), "Host");
        assert_eq!(device_of_buffer("RPC0", &h), "RPC0");
        // an RPC buffer type the host file does not list keeps the server's index
        assert_eq!(device_of_buffer("RPC1[10.0.0.2:50052]", &h), "RPC1");
    }

    #[test]
    fn excerpt_prefers_error_lines() {
        let t = "a\nb\nllama_model_load: error loading model: boom\nc\n";
        assert_eq!(
            failure_excerpt(t),
            vec!["llama_model_load: error loading model: boom"]
        );
        assert_eq!(failure_excerpt("x\ny\n"), vec!["x", "y"]);
    }
}
