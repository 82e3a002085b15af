//! Run records: a parsed log (plus the testbed's manifest.json when there is one, format in
//! testbed/MANIFEST.md) turned into measured numbers per device, placer's prediction for the
//! same launch next to each, and one CSV row per run (data/runs.csv).

use crate::anatomy::{self, Anatomy};
use crate::calibration::Calibration;
use crate::host::{Gpu, Host, Ram};
use crate::launch::{self, GpuLayers, LaunchConfig, Override, Tool};
use crate::logs::{self, LogRun};
use crate::memory::{self, Prediction};
use crate::units::mib;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// testbed/MANIFEST.md, schema 1 (every key optional here so that older or hand-written
/// manifests still load).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Manifest {
    pub schema: u32,
    pub run_id: String,
    pub model: String,
    pub placement: String,
    pub host: String,
    pub host_targets_mib: Vec<u64>,
    /// A copy stream shared the GPU with the run (testbed's "slower second GPU" attempt: on
    /// virtual devices of one chip it slows every device, so its speeds fit no host).
    pub slowdown: bool,
    pub emulation: String,
    pub env: Vec<String>,
    pub ballast_free_mib: Vec<i64>,
    pub ctx: u32,
    pub n_gen: u32,
    pub flags: Vec<String>,
    pub argv: Vec<String>,
    pub gpu: String,
    /// `source`, `version` (`llama-completion --version`), `build` (cmake flags).
    pub llama_cpp: serde_json::Value,
    pub rc: Option<i32>,
    pub timed_out: Option<bool>,
    /// `placer trial`'s own result (src/trial/store.rs): what is read here is the memory NVML
    /// saw per device while the server was loaded.
    pub trial: Option<TrialManifest>,
}

/// The part of a trial run's `trial` record the calibration reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrialManifest {
    /// Per device (`CUDA0`…, `Host`).
    pub memory: Vec<TrialDevice>,
    /// The requests the trial timed (src/trial/measure.rs `Measurement`): the workload's turns
    /// (`workload`, `workload-2`, …) are the speeds at the workload's depth.
    pub measurements: Vec<TrialRequest>,
}

/// One timed request of a trial run (llama-server's `timings`), as src/trial/measure.rs writes
/// it (`Measurement`) into the manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrialRequest {
    /// `short`, `workload`, `workload-2`, `long`, `prefix`.
    pub what: String,
    pub cache_n: u32,
    pub prompt_n: u32,
    pub prompt_ms: f64,
    pub predicted_n: u32,
    pub predicted_ms: f64,
}

/// Memory of one device in a trial run (MiB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrialDevice {
    /// `CUDA0`, …, or `Host`.
    pub name: String,
    /// NVML: memory the server process held on the GPU (per-process accounting), when read.
    pub nvml_process_mib: Option<f64>,
    /// NVML: memory used on the whole GPU while the server was loaded (other processes
    /// included: an upper bound of the server's).
    pub nvml_used_mib: Option<f64>,
}

/// One run as found on disk: its log, and its manifest when the testbed wrote one.
#[derive(Debug, Clone)]
pub struct RunInput {
    pub scenario: String,
    pub run_id: String,
    pub log_path: PathBuf,
    pub manifest: Option<Manifest>,
    pub log: LogRun,
}

/// Files next to a manifest that are not the llama.cpp log (`call.log` is the testbed runner's
/// own output for a whole scenario, testbed/MANIFEST.md).
const NOT_LOGS: [&str; 7] = [
    "call.log",
    "manifest.json",
    "smi.csv.gz",
    "smi.csv",
    "predictions.json",
    "matrix.tsv",
    "README.md",
];

/// The testbed runner's own output: `call.log`, or `call-<call>.log` since call 4
/// (testbed/MANIFEST.md).
pub fn is_runner_log(name: &str) -> bool {
    name == "call.log" || (name.starts_with("call-") && name.ends_with(".log"))
}

/// Log files under `paths` (files or folders, recursively), each with its manifest if its
/// folder has one. Sorted for stable output.
pub fn discover(paths: &[PathBuf]) -> Vec<(PathBuf, Option<PathBuf>)> {
    // Each real folder once, each file once: symlink loops end, a log counts once.
    let mut files = crate::fsio::walk_files(paths);
    files.sort();
    files
        .into_iter()
        .filter(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            // `.toml`: host files (`placer host detect` output kept with the runs).
            !NOT_LOGS.contains(&name.as_str())
                && !is_runner_log(&name)
                && !name.starts_with('.')
                && !name.ends_with(".toml")
        })
        .map(|f| {
            let m = f
                .parent()
                .map(|d| d.join("manifest.json"))
                .filter(|m| m.is_file());
            (f, m)
        })
        .collect()
}

/// Parse the discovered files in parallel; files that are not llama.cpp logs come back as errors.
pub fn load_runs<F>(paths: &[PathBuf], on_done: F) -> (Vec<RunInput>, Vec<String>)
where
    F: Fn(&Path) + Sync,
{
    let found = discover(paths);
    let logs: Vec<PathBuf> = found.iter().map(|(l, _)| l.clone()).collect();
    let parsed = logs::parse_paths(&logs, on_done);
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (pf, (_, manifest_path)) in parsed.into_iter().zip(found) {
        match pf.result {
            Ok(log) => {
                let manifest = manifest_path.and_then(|m| {
                    let text = crate::fsio::read_text(&m, crate::fsio::SMALL_TOML).ok()?;
                    serde_json::from_str::<Manifest>(&text).ok()
                });
                let dir = pf.path.parent().unwrap_or(Path::new(""));
                let (scenario, run_id) = match &manifest {
                    Some(m) => (
                        dir.parent()
                            .and_then(|p| p.file_name())
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default(),
                        if m.run_id.is_empty() {
                            dir_name(dir)
                        } else {
                            m.run_id.clone()
                        },
                    ),
                    None => (
                        dir_name(dir),
                        pf.path.file_name().unwrap().to_string_lossy().to_string(),
                    ),
                };
                runs.push(RunInput {
                    scenario,
                    run_id,
                    log_path: pf.path,
                    manifest,
                    log,
                });
            }
            Err(e) => skipped.push(e.to_string()),
        }
    }
    (runs, skipped)
}

fn dir_name(d: &Path) -> String {
    d.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Measured memory of one GPU (MiB).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMeasured {
    pub name: String,
    pub model: f64,
    pub kv: f64,
    pub compute: f64,
    /// Free before llama.cpp started (testbed ballast), when known.
    pub baseline_free: Option<f64>,
    /// baseline − free at exit − llama.cpp's own buffers: CUDA context, cuBLAS, pool.
    pub overhead: Option<f64>,
    /// Everything the process took on the device: self + overhead.
    pub total: Option<f64>,
    /// Where the total came from: `ballast baseline`, `NVML per-process`, `NVML device used`
    /// (empty when there is none).
    #[serde(default)]
    pub total_from: String,
}

/// What the prediction said for one GPU (MiB), and what bytes a token reads there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevicePredicted {
    pub model: f64,
    pub kv: f64,
    pub compute: f64,
    pub overhead: f64,
    pub total: f64,
    pub cap: f64,
}

/// Inputs of the speed model (src/speed.rs) for one run: what its placement makes each device
/// do per generated token and per prompt token, and the host it ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedFeatures {
    pub host: Host,
    /// GPU model of the host's first GPU: which host constants apply (`GpuCalibration::host_speed`).
    pub host_gpu: String,
    /// Per generated token at the run's mean decode depth (prompt + half the generated tokens).
    pub decode: crate::speed::DecodeLoad,
    /// Per prompt token (ubatch as launched, prompt at its average depth).
    pub prefill: crate::speed::PrefillLoad,
}

/// One run with measurements and, when placer could model it, its prediction.
#[derive(Debug, Clone)]
pub struct Record {
    pub input: RunInput,
    pub measured: Vec<DeviceMeasured>,
    pub host: Option<Host>,
    pub launch: Option<LaunchConfig>,
    pub anatomy: Option<Anatomy>,
    pub predicted: Option<Vec<DevicePredicted>>,
    pub prediction: Option<Prediction>,
    pub speed: Option<SpeedFeatures>,
    /// Why there is no prediction.
    pub note: String,
}

impl Record {
    pub fn decode_s(&self) -> Option<f64> {
        self.input.log.gen_tps.filter(|t| *t > 0.0).map(|t| 1.0 / t)
    }
    pub fn prefill_s(&self) -> Option<f64> {
        self.input
            .log
            .prompt_tps
            .filter(|t| *t > 0.0)
            .map(|t| 1.0 / t)
    }
    /// Speeds this run can teach or test the speed model with: it finished (no OOM) and had its
    /// GPU to itself (a `slowdown` run shared it with a copy stream the model does not describe).
    pub fn speed_usable(&self) -> bool {
        self.input.log.oom.is_empty() && !self.contended()
    }
    /// The manifest says a copy stream shared the GPU with the run.
    pub fn contended(&self) -> bool {
        self.input.manifest.as_ref().is_some_and(|m| m.slowdown)
    }
    /// The run's manifest says it ran on `emul:` virtual devices (one physical GPU).
    pub fn emulated(&self) -> bool {
        self.input
            .manifest
            .as_ref()
            .is_some_and(|m| m.emulation == "emul" || m.host.starts_with("emul:"))
    }
}

/// Measured per-GPU numbers from the log (buffers) and the exit breakdown; overhead needs the
/// free memory before start (manifest `ballast_free_mib`, physical GPU i = device i under `gpu:`).
/// The device a log key names: `CUDA1`, `RPC0`, or `RPC0` for an RPC buffer type
/// `RPC0[host:port]`; None for host buffers.
fn device_name_of(key: &str) -> Option<String> {
    for p in ["CUDA", "RPC"] {
        if let Some(rest) = key.strip_prefix(p) {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let tail = &rest[digits.len()..];
            if !digits.is_empty() && (tail.is_empty() || (p == "RPC" && tail.starts_with('['))) {
                return Some(format!("{p}{digits}"));
            }
        }
    }
    None
}

pub fn measure(input: &RunInput) -> Vec<DeviceMeasured> {
    let log = &input.log;
    let mut names: Vec<String> = log
        .free_at_load
        .keys()
        .chain(log.buffers.model.keys())
        .filter_map(|n| device_name_of(n))
        .collect();
    // llama.cpp's device order: the RPC devices first, then the local GPUs
    // (`src/llama.cpp: llama_prepare_model_devices`), as in the host file.
    names.sort_by_key(|n| {
        let rpc = n.starts_with("RPC");
        let k = n.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        (!rpc, k.parse::<usize>().unwrap_or(0))
    });
    names.dedup();
    let gpu_mode = input
        .manifest
        .as_ref()
        .is_some_and(|m| m.emulation == "gpu" || m.host.starts_with("gpu:"));
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // an RPC device's buffers are named by buffer type, `RPC<d>[host:port]`
            // (`ggml-rpc.cpp: ggml_backend_rpc_buffer_type`); `d` is the server's own index,
            // equal to the device name's for one server (several servers: not told apart)
            let g = |m: &BTreeMap<String, f64>| {
                m.iter()
                    .filter(|(k, _)| {
                        *k == name
                            || (name.starts_with("RPC") && k.starts_with(&format!("{name}[")))
                    })
                    .map(|(_, v)| *v)
                    .sum::<f64>()
            };
            let row = log.breakdown.iter().find(|r| &r.name == name);
            let baseline = if gpu_mode {
                input
                    .manifest
                    .as_ref()
                    .and_then(|m| m.ballast_free_mib.get(i))
                    .map(|v| *v as f64)
            } else {
                None
            };
            let mut overhead = match (baseline, row.and_then(|r| r.free)) {
                (Some(b), Some(free)) => row.map(|r| b - free - r.self_),
                _ => None,
            };
            let (model, kv, compute) = (
                g(&log.buffers.model),
                g(&log.buffers.kv) + g(&log.buffers.rs),
                g(&log.buffers.compute),
            );
            let self_ = row.map(|r| r.self_);
            let mut total = self_.zip(overhead).map(|(s, o)| s + o);
            let mut total_from = if total.is_some() {
                "ballast baseline".to_string()
            } else {
                String::new()
            };
            // No baseline: what NVML saw the process (else the whole GPU) hold while loaded.
            // llama.cpp's own buffers are the breakdown's `self`, else the log's buffer lines.
            if total.is_none() && log.oom.is_empty() {
                let nvml = nvml_total(input, name);
                let own = self_.unwrap_or(model + kv + compute);
                if let Some((t, from)) = nvml.filter(|(t, _)| own > 0.0 && *t > own) {
                    total = Some(t);
                    overhead = Some(t - own);
                    total_from = from.to_string();
                }
            }
            DeviceMeasured {
                name: name.clone(),
                model,
                kv,
                compute,
                baseline_free: baseline,
                overhead,
                total,
                total_from,
            }
        })
        .collect()
}

/// A trial run's NVML memory for device `name`: per-process when recorded, else the whole GPU's.
fn nvml_total(input: &RunInput, name: &str) -> Option<(f64, &'static str)> {
    let d = input
        .manifest
        .as_ref()?
        .trial
        .as_ref()?
        .memory
        .iter()
        .find(|d| d.name == name)?;
    // Only the server's own memory: NVML's whole-GPU use counts every process on the GPU (a
    // testbed ballast, a desktop, another server), which is no device total of this run
    // (2026-12-06 c1: 130,212 MiB "used" on an H200 holding a 48 GB ballast).
    d.nvml_process_mib
        .filter(|v| *v > 0.0)
        .map(|v| (v, "NVML per-process"))
}

/// The host a run ran on: the manifest's per-device targets (or what llama.cpp found free at
/// load plus the CUDA context), GPU names from the log, bandwidths from a hardware/*.toml file
/// that has the same GPU model (none: no speed features).
pub fn run_host(input: &RunInput, hardware_dir: &Path, given: Option<&Host>) -> Option<Host> {
    if let Some(h) = given {
        return Some(h.clone());
    }
    let log = &input.log;
    let known = known_gpus(hardware_dir);
    let n = log
        .free_at_load
        .keys()
        .filter(|k| k.starts_with("CUDA"))
        .count();
    if n == 0 {
        return None;
    }
    // RPC devices (`RPC0`…, llama.cpp's first devices) are GPUs of the host file too.
    let n_all = n + log
        .free_at_load
        .keys()
        .filter(|k| k.starts_with("RPC"))
        .count();
    // A trial's scenario folder keeps the host file the trial ran with (`placer trial --host`,
    // copied as host.toml beside its run folders): the GPUs' budgets and bandwidths and the RAM
    // bandwidth measured on that machine, which the log does not show.
    if input.manifest.as_ref().is_some_and(|m| m.trial.is_some()) {
        let beside = input
            .log_path
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("host.toml"));
        if let Some(h) = beside
            .filter(|p| p.is_file())
            .and_then(|p| Host::load_record(&p).ok())
            .filter(|h| h.gpus.len() == n || h.gpus.len() == n_all)
        {
            return Some(h);
        }
    }
    let targets: Vec<f64> = match input
        .manifest
        .as_ref()
        .filter(|m| m.host_targets_mib.len() == n)
    {
        Some(m) => m.host_targets_mib.iter().map(|v| *v as f64).collect(),
        None => (0..n)
            .map(|i| {
                log.free_at_load
                    .get(&format!("CUDA{i}"))
                    .copied()
                    .unwrap_or(0.0)
                    + memory::predict::PRIOR_LOAD_CONTEXT_MIB
            })
            .collect(),
    };
    let gpus = (0..n)
        .map(|i| {
            let seen = log.gpus.get(&format!("CUDA{i}"));
            let model = seen
                .map(|g| g.description.clone())
                .unwrap_or_else(|| "unknown".into());
            let spec = known.iter().find(|g| g.model == model);
            Gpu {
                model: model.clone(),
                total_mib: seen.and_then(|g| g.vram_mib).unwrap_or(targets[i]) as u64,
                usable_mib: targets[i] as u64,
                bandwidth_gbs: spec.map(|g| g.bandwidth_gbs).unwrap_or(0.0),
                pcie_gbs: spec.map(|g| g.pcie_gbs).unwrap_or(0.0),
                source: "from the run's log/manifest; bandwidth from hardware/ for this GPU model"
                    .into(),
                reported_free_mib: None,
                rpc: None,
            }
        })
        .collect();
    let mut ram = known_ram(hardware_dir, &input.manifest);
    if let Some(bw) = detected_ram_gbs(input) {
        ram.bandwidth_gbs = bw;
        ram.source = "bandwidth measured by `placer host detect` in the run's device call".into();
    }
    let name = input
        .manifest
        .as_ref()
        .map(|m| m.host.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "log".into());
    Some(Host {
        name,
        description: String::new(),
        gpus,
        ram,
    })
}

fn hardware_files(dir: &Path) -> Vec<Host> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v.iter().filter_map(|p| Host::load_record(p).ok()).collect()
}

fn known_gpus(dir: &Path) -> Vec<Gpu> {
    hardware_files(dir)
        .into_iter()
        .flat_map(|h| h.gpus)
        .collect()
}

/// The RAM read bandwidth `placer host detect` measured on the machine that made the run: its
/// device call's `host-detect.toml`, kept next to the runs (data/runs/*/<call>/host-detect.toml,
/// the call from the run id's `--cN` suffix). Machines of one GPU model differ in their CPU
/// (the nvidia-h200-x2 machine: 32 threads, 162 GB/s; the single-H200 one: 16 threads, 99 GB/s),
/// and the CPU side of a placement streams at that machine's bandwidth. The size stays the
/// host file's: the lent VMs report a MemTotal that grows with use (testbed/ram-limit.py).
fn detected_ram_gbs(input: &RunInput) -> Option<f64> {
    let call = input.run_id.rsplit("--").next()?;
    if input.run_id.matches("--").count() < 2
        || !call.starts_with('c')
        || !call[1..].chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let root = input.log_path.parent()?.parent()?.parent()?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path().join(call).join("host-detect.toml"))
        .filter(|p| p.is_file())
        .collect();
    dirs.sort();
    let h = Host::load_record(dirs.first()?).ok()?;
    (h.ram.bandwidth_gbs > 0.0).then_some(h.ram.bandwidth_gbs)
}

/// RAM of the testbed host file whose GPU matches (its bandwidth is the same prior for all).
fn known_ram(dir: &Path, manifest: &Option<Manifest>) -> Ram {
    let hosts = hardware_files(dir);
    let want = manifest.as_ref().map(|m| m.gpu.clone()).unwrap_or_default();
    hosts
        .iter()
        .find(|h| {
            h.gpus
                .iter()
                .any(|g| !want.is_empty() && want.contains(&g.model))
        })
        .or(hosts.first())
        .map(|h| h.ram.clone())
        .unwrap_or(Ram {
            total_mib: 0,
            usable_mib: u64::MAX / (1 << 21),
            bandwidth_gbs: 0.0,
            source: "unknown".into(),
        })
}

/// The launch the run used: the manifest's argv (else defaults), with the placement llama.cpp
/// actually made when `--fit` chose it (layers per device and per-tensor overrides from the log).
pub fn run_launch(input: &RunInput, anatomy: Option<&Anatomy>) -> anyhow::Result<LaunchConfig> {
    let (tool, args) = match input.manifest.as_ref().filter(|m| !m.argv.is_empty()) {
        Some(m) => {
            let tool = if m.argv[0].contains("server") {
                Tool::Server
            } else {
                Tool::Cli
            };
            (tool, m.argv[1..].to_vec())
        }
        None => (Tool::Cli, Vec::new()),
    };
    let mut cfg = if args.is_empty() {
        LaunchConfig::for_tool(tool)
    } else {
        launch::parse_args(tool, &args)?
    };
    let log = &input.log;
    if args.is_empty() {
        // No command line: take what the log printed.
        if let Some(c) = log.n_ctx {
            cfg.ctx = c;
        }
        if let Some(b) = log.n_batch {
            cfg.batch = b;
        }
        if let Some(u) = log.n_ubatch {
            cfg.ubatch = u;
        }
        if let Some(n) = log.n_seq_max {
            cfg.n_parallel = Some(n);
        }
        cfg.kv_unified = log.kv_unified;
        if let Some(t) = log
            .type_k
            .as_deref()
            .and_then(crate::gguf::GgmlType::from_name)
        {
            cfg.type_k = t;
        }
        if let Some(t) = log
            .type_v
            .as_deref()
            .and_then(crate::gguf::GgmlType::from_name)
        {
            cfg.type_v = t;
        }
    }
    let shown_per_tensor = !log.overrides.is_empty() || !log.layer_device.is_empty();
    if cfg.fit && !shown_per_tensor && !log.fit_devices.is_empty() {
        // -lv 4 without -v: the per-tensor lines are missing, but --fit printed its result.
        fit_placement(&mut cfg, log, anatomy);
    } else if cfg.fit && shown_per_tensor || !log.overrides.is_empty() && cfg.overrides.is_empty() {
        observed_placement(&mut cfg, log);
    } else if cfg.fit {
        // --fit ran and changed nothing ("no changes needed", or it refused because the user set
        // overrides): the command line's own placement is what loaded.
        cfg.fit = false;
    }
    // --fit may also have shrunk the context (`common_params_fit_impl` logs it).
    if log
        .warnings
        .iter()
        .any(|w| w.starts_with("--fit reduced the context"))
    {
        if let Some(c) = log.n_ctx {
            cfg.ctx = c;
        }
    }
    Ok(cfg)
}

/// Rebuild the placement --fit chose from the result it logged (`common/fit.cpp:
/// common_params_fit_impl`, `set_ngl_tensor_split_tbo`): `-ngl` = Σ layers, `-ts` = layers per
/// device (only with several devices), and for each device, after its full layers, `n_part`
/// partial layers whose MoE weights go to the CPU (`get_overflow_pattern(il, MOE)`); the first
/// partial layer of a device uses that device's overflow type (ATTN / UP / GATE) and goes to
/// the next device (the CPU on the last one). The layer range starts at `n_layer + 1 − ngl`
/// (the output layer counts as one).
pub fn fit_placement(cfg: &mut LaunchConfig, log: &LogRun, anatomy: Option<&Anatomy>) {
    cfg.fit = false;
    let nd = log.fit_devices.len();
    let hp_ngl = anatomy.map(|a| a.hp.n_layer).unwrap_or(0);
    let moe = anatomy.is_some_and(|a| a.hp.n_expert > 0);
    let ngl: u32 = log.fit_devices.iter().map(|d| d.n_layer).sum();
    cfg.gpu_layers = GpuLayers::Count(ngl);
    cfg.tensor_split = (nd > 1).then(|| log.fit_devices.iter().map(|d| d.n_layer as f64).collect());
    let mut overrides = Vec::new();
    let mut il0 = (hp_ngl + 1).saturating_sub(ngl);
    for (id, d) in log.fit_devices.iter().enumerate() {
        // Dense path (no "(N overflowing)"): a MoE model's GPU layers are all dense-only there,
        // except the output layer on the last device (`n_part = n_layer − 1`).
        let n_part = match d.n_part {
            Some(p) => p,
            None if moe && id + 1 < nd => d.n_layer,
            None if moe => d.n_layer.saturating_sub(1),
            None => 0,
        }
        .min(d.n_layer);
        il0 += d.n_layer - n_part;
        for il in il0..il0 + n_part {
            let first = il == il0;
            let kind = if first {
                log.fit_overflow
                    .get(&id)
                    .map(String::as_str)
                    .unwrap_or("MOE")
            } else {
                "MOE"
            };
            let pattern = match kind {
                "ATTN" => format!("blk\\.{il}\\.ffn_(gate|up|gate_up|down).*"),
                "UP" => format!("blk\\.{il}\\.ffn_(gate|gate_up|down).*"),
                "GATE" => format!("blk\\.{il}\\.ffn_down.*"),
                _ => format!("blk\\.{il}\\.ffn_(up|down|gate_up|gate)_(ch|)exps"),
            };
            // overflow_bufts[id] is the next device only once the extra-layer step moved it there.
            let buft = if first && kind != "MOE" && id + 1 < nd {
                format!("CUDA{}", id + 1)
            } else {
                "CPU".to_string()
            };
            overrides.push(Override { pattern, buft });
        }
        il0 += n_part;
    }
    cfg.overrides = overrides;
}

/// Replace the placement flags by what the log shows llama.cpp did: `-ngl`, `-ts` as layer
/// counts, and one `-ot ^name$=BUFT` per overridden tensor (`CUDA_Host`, the pinned buffer a CPU
/// override lands in with mmap, is the CPU).
pub fn observed_placement(cfg: &mut LaunchConfig, log: &LogRun) {
    cfg.fit = false;
    if let Some((n, _)) = log.layers_offloaded {
        cfg.gpu_layers = GpuLayers::Count(n);
    }
    let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
    for dev in log.layer_device.values() {
        if let Some(i) = dev
            .strip_prefix("CUDA")
            .and_then(|d| d.parse::<usize>().ok())
        {
            *counts.entry(i).or_insert(0.0) += 1.0;
        }
    }
    if let Some(max) = counts.keys().max() {
        cfg.tensor_split = Some(
            (0..=*max)
                .map(|i| counts.get(&i).copied().unwrap_or(0.0))
                .collect(),
        );
    }
    cfg.overrides = log
        .overrides
        .iter()
        .map(|(t, b)| Override {
            pattern: format!("^{}$", regex::escape(t)),
            buft: if b.starts_with("CUDA") && b[4..].chars().all(|c| c.is_ascii_digit()) {
                b.clone()
            } else {
                "CPU".into()
            },
        })
        .collect();
}

/// Build the record: measurements always; the prediction when model, host and launch resolve.
pub fn record(
    input: RunInput,
    cal: &Calibration,
    models_dir: Option<&Path>,
    hardware_dir: &Path,
    given_host: Option<&Host>,
) -> Record {
    let measured = measure(&input);
    let mut rec = Record {
        input,
        measured,
        host: None,
        launch: None,
        anatomy: None,
        predicted: None,
        prediction: None,
        speed: None,
        note: String::new(),
    };
    if let Err(e) = predict_into(&mut rec, cal, models_dir, hardware_dir, given_host) {
        rec.note = format!("{e:#}");
    }
    rec
}

fn predict_into(
    rec: &mut Record,
    cal: &Calibration,
    models_dir: Option<&Path>,
    hardware_dir: &Path,
    given_host: Option<&Host>,
) -> anyhow::Result<()> {
    let model = rec
        .input
        .manifest
        .as_ref()
        .map(|m| m.model.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| rec.input.log.model_path.clone())
        .ok_or_else(|| anyhow::anyhow!("no model named in the log or manifest"))?;
    let gguf = match crate::catalog::load_model(&model, models_dir) {
        Ok(g) => g,
        Err(e) => match catalog_match(&rec.input.log, models_dir) {
            Some(id) => crate::catalog::load_model(&id, models_dir)?,
            None => {
                return Err(e.context(
                    "and no catalog entry has this log's arch, layer count and file size",
                ))
            }
        },
    };
    let anatomy = anatomy::from_gguf(&gguf)?;
    let host = run_host(&rec.input, hardware_dir, given_host)
        .ok_or_else(|| anyhow::anyhow!("no GPU in the log"))?;
    let mut launch = run_launch(&rec.input, Some(&anatomy))?;
    default_split_from_log(&mut launch, &rec.input.log, host.gpus.len());
    let pred = memory::predict(&anatomy, &launch, &host, cal)?;
    rec.predicted = Some(pred.gpus.iter().map(device_predicted).collect());
    rec.speed = Some(speed_features(
        &anatomy,
        &pred,
        &host,
        &rec.input.log,
        &launch,
    ));
    rec.prediction = Some(pred);
    rec.anatomy = Some(anatomy);
    rec.host = Some(host);
    rec.launch = Some(launch);
    Ok(())
}

/// Without `-ts`, llama.cpp splits layers by the free memory each device reports at load
/// (`src/llama-model.cpp:load_tensors`, "default split, by free memory", fills `splits` from
/// `ggml_backend_dev_memory` when every `tensor_split` entry is 0). The log shows those numbers
/// (`using device CUDA0 (…) - N MiB free`); they are not the host's targets under `emul:`, where
/// every virtual device reports the same share of the one GPU. Writing them as `-ts` gives the
/// same split.
pub fn default_split_from_log(cfg: &mut LaunchConfig, log: &LogRun, n_gpus: usize) {
    if cfg.tensor_split.is_some() || n_gpus < 2 {
        return;
    }
    let free: Option<Vec<f64>> = (0..n_gpus)
        .map(|i| log.free_at_load.get(&format!("CUDA{i}")).copied())
        .collect();
    if let Some(f) = free.filter(|f| f.iter().any(|v| *v > 0.0)) {
        cfg.tensor_split = Some(f);
    }
}

/// The catalog entry whose header matches what the log printed about the model (`print_info:
/// arch`, `n_layer`, `file size = X GiB` to 2 decimals): for logs whose GGUF is not on this machine.
pub fn catalog_match(log: &LogRun, models_dir: Option<&Path>) -> Option<String> {
    let arch = log.model_info.get("arch")?;
    let size = log
        .model_info
        .get("file size")?
        .split_whitespace()
        .next()?
        .to_string();
    let unit_gib = log.model_info.get("file size")?.contains("GiB");
    let dir = models_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(crate::catalog::models_dir);
    for id in crate::catalog::ids(&dir).ok()? {
        let Ok(g) = crate::catalog::load_model(&id, Some(&dir)) else {
            continue;
        };
        let Ok(a) = anatomy::from_gguf(&g) else {
            continue;
        };
        if &a.arch != arch
            || log
                .model_info
                .get("n_layer")
                .is_some_and(|n| n != &a.hp.n_layer.to_string())
        {
            continue;
        }
        let bytes = a.total_bytes() as f64;
        let shown = if unit_gib {
            bytes / (1u64 << 30) as f64
        } else {
            bytes / crate::units::MIB as f64
        };
        if format!("{shown:.2}") == size {
            return Some(id);
        }
    }
    None
}

pub fn device_predicted(d: &memory::DeviceMemory) -> DevicePredicted {
    DevicePredicted {
        model: mib(d.model),
        kv: mib(d.kv + d.rs),
        compute: mib(d.compute),
        overhead: mib(d.overhead),
        total: mib(d.total()),
        cap: mib(d.cap),
    }
}

/// The speed model's load for a run: its placement (the memory model's resolution of the
/// launch) at the run's depth, with the graph's splits and nodes from the log.
pub fn speed_features(
    a: &Anatomy,
    p: &Prediction,
    host: &Host,
    log: &LogRun,
    cfg: &LaunchConfig,
) -> SpeedFeatures {
    speed_features_at(a, p, host, log, cfg, 0)
}

/// [`speed_features`] for a prompt that follows `cached` tokens the server reused (a trial's
/// workload turn): decode at `cached` + prompt + half the generated tokens, the prompt at the
/// average depth `cached` + half of it (`check::speed_estimate`).
pub fn speed_features_at(
    a: &Anatomy,
    p: &Prediction,
    host: &Host,
    log: &LogRun,
    cfg: &LaunchConfig,
    cached: u64,
) -> SpeedFeatures {
    let w = crate::speed::Where {
        anatomy: a,
        resolved: &p.resolved,
        n_gpu: host.gpus.len(),
        type_k: cfg.type_k,
        type_v: cfg.type_v,
    };
    let prompt = log.prompt_tokens.unwrap_or(0) as u64;
    let depth = cached + prompt + log.gen_tokens.unwrap_or(0) as u64 / 2;
    let mut decode = crate::speed::decode_load(&w, depth);
    decode.splits = log.graph_splits.map(|(_, tg)| tg as f64).unwrap_or(0.0);
    decode.nodes = log.graph_nodes.map(|(_, tg)| tg as f64).unwrap_or(0.0);
    let ub = log.n_ubatch.unwrap_or(cfg.ubatch.min(cfg.batch));
    // A log's timing lines are of a fresh prompt (no cached prefix): average depth half the
    // prompt; a trial's turn follows its cached prefix.
    let prefill = crate::speed::prefill_load(&w, prompt, cached + prompt / 2, ub, cfg.op_offload);
    SpeedFeatures {
        host: host.clone(),
        host_gpu: host
            .gpus
            .first()
            .map(|g| g.model.clone())
            .unwrap_or_default(),
        decode,
        prefill,
    }
}

/// A trial run's workload turns as a record of their own, for the speed fits only (no memory:
/// the run's record has it): the median turn's prefill and decode at the workload's depth (the
/// cached prefix the server reused, `cache_n`), with the speed model's load at that depth, the
/// same as `check::speed_estimate` predicts the workload with. `None` when the run has no turn or
/// no prediction. Its id is the run's with `#turns`.
pub fn workload_record(r: &Record) -> Option<Record> {
    let turns: Vec<&TrialRequest> = r
        .input
        .manifest
        .as_ref()?
        .trial
        .as_ref()?
        .measurements
        .iter()
        .filter(|m| m.what.starts_with("workload") && m.prompt_ms > 0.0 && m.predicted_ms > 0.0)
        .collect();
    if turns.is_empty() || !r.speed_usable() {
        return None;
    }
    let (a, p, host, cfg) = (
        r.anatomy.as_ref()?,
        r.prediction.as_ref()?,
        r.host.as_ref()?,
        r.launch.as_ref()?,
    );
    let med = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let prefill_tps = med(turns
        .iter()
        .map(|m| m.prompt_n as f64 * 1000.0 / m.prompt_ms)
        .collect());
    let decode_tps = med(turns
        .iter()
        .map(|m| m.predicted_n as f64 * 1000.0 / m.predicted_ms)
        .collect());
    let cached = med(turns.iter().map(|m| m.cache_n as f64).collect()) as u64;
    let prompt = med(turns.iter().map(|m| m.prompt_n as f64).collect()) as u64;
    let gen = med(turns.iter().map(|m| m.predicted_n as f64).collect()) as u64;
    let mut rec = r.clone();
    rec.input.run_id = format!("{}#turns", r.input.run_id);
    rec.measured = Vec::new();
    rec.predicted = None;
    rec.input.log.prompt_tps = Some(prefill_tps);
    rec.input.log.gen_tps = Some(decode_tps);
    rec.input.log.prompt_tokens = u32::try_from(prompt).ok();
    rec.input.log.gen_tokens = u32::try_from(gen).ok();
    rec.speed = Some(speed_features_at(a, p, host, &rec.input.log, cfg, cached));
    Some(rec)
}

/// One CSV row per record: fixed columns, then per GPU measured and predicted side by side.
pub fn csv_row(
    r: &Record,
    predicted_tps: Option<f64>,
    predicted_prefill_tps: Option<f64>,
) -> Vec<(String, String)> {
    let log = &r.input.log;
    let m = r.input.manifest.as_ref();
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
    let mut row: Vec<(String, String)> = vec![
        ("scenario".into(), r.input.scenario.clone()),
        ("run_id".into(), r.input.run_id.clone()),
        (
            "model".into(),
            m.map(|m| m.model.clone())
                .filter(|s| !s.is_empty())
                .or(log.model_path.clone())
                .unwrap_or_default(),
        ),
        (
            "host".into(),
            r.host
                .as_ref()
                .map(|h| h.name.clone())
                .or(m.map(|m| m.host.clone()))
                .unwrap_or_default(),
        ),
        (
            "placement".into(),
            m.map(|m| m.placement.clone()).unwrap_or_default(),
        ),
        (
            "flags".into(),
            m.map(|m| m.flags.join(" ")).unwrap_or_default(),
        ),
        ("build".into(), log.build.clone().unwrap_or_default()),
        (
            "n_ctx".into(),
            log.n_ctx.map(|v| v.to_string()).unwrap_or_default(),
        ),
        (
            "n_ubatch".into(),
            log.n_ubatch.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("type_k".into(), log.type_k.clone().unwrap_or_default()),
        ("fit_trials".into(), log.fit_trials.to_string()),
        ("oom".into(), (!log.oom.is_empty()).to_string()),
        (
            "oom_device".into(),
            log.oom
                .first()
                .and_then(|o| o.device.clone())
                .unwrap_or_default(),
        ),
        (
            "oom_stage".into(),
            log.oom.first().map(|o| o.stage.clone()).unwrap_or_default(),
        ),
        ("truncated".into(), log.truncated.to_string()),
        ("contended".into(), r.contended().to_string()),
        (
            "prompt_tokens".into(),
            log.prompt_tokens.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("prefill_tps".into(), opt(log.prompt_tps)),
        ("prefill_tps_pred".into(), opt(predicted_prefill_tps)),
        (
            "gen_tokens".into(),
            log.gen_tokens.map(|v| v.to_string()).unwrap_or_default(),
        ),
        ("decode_tps".into(), opt(log.gen_tps)),
        ("decode_tps_pred".into(), opt(predicted_tps)),
    ];
    for (i, d) in r.measured.iter().enumerate() {
        let p = r.predicted.as_ref().and_then(|p| p.get(i));
        let pairs = [
            ("model", Some(d.model), p.map(|p| p.model)),
            ("kv", Some(d.kv), p.map(|p| p.kv)),
            ("compute", Some(d.compute), p.map(|p| p.compute)),
            ("overhead", d.overhead, p.map(|p| p.overhead)),
            ("total", d.total, p.map(|p| p.total)),
        ];
        for (what, meas, pred) in pairs {
            row.push((format!("{}_{what}_mib", d.name), opt(meas)));
            row.push((format!("{}_{what}_mib_pred", d.name), opt(pred)));
        }
    }
    row.push(("note".into(), r.note.clone()));
    row
}

/// Write rows with the union of their columns (runs with more GPUs add columns).
pub fn write_csv(path: &Path, rows: &[Vec<(String, String)>]) -> anyhow::Result<()> {
    let mut header: Vec<String> = Vec::new();
    for row in rows {
        for (k, _) in row {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    // Keep the note last.
    if let Some(i) = header.iter().position(|h| h == "note") {
        let n = header.remove(i);
        header.push(n);
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for row in rows {
        let map: BTreeMap<&str, &str> = row.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        w.write_record(
            header
                .iter()
                .map(|h| map.get(h.as_str()).copied().unwrap_or("")),
        )?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    crate::fsio::replace(path, &bytes)?;
    Ok(())
}
