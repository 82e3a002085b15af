//! llama.cpp as a memory oracle: run `llama-fit-params --fit-print on` with a launch command and
//! read back the memory llama.cpp itself projects for every device.
//!
//! `llama-fit-params` (`tools/fit-params/fit-params.cpp: llama_fit_params`) parses the same
//! options as llama-server, loads the model with `no_alloc = true` (tensor metadata only, no
//! weights are read or allocated: `common/fit.cpp: common_get_device_memory_data_impl`), builds
//! the context and its worst-case graphs, and with `--fit-print on` prints one line per device
//! and one for the host on stdout (`common/fit.cpp: common_fit_print`):
//!
//! ```text
//! RPC0 6 2 9
//! RPC1 23 1 153
//! Host 19 0 5
//! ```
//!
//! — name, model, context (KV + recurrent state), compute, each in whole MiB rounded down
//! (tests/fixtures/oracle/tiny-moe-ts11.stdout). The model file must be complete in size but
//! its tensor data is never read: a header followed by a hole (a sparse file) is enough, so a
//! catalog model can be dry-run without its weights (the loader only checks that every tensor
//! lies within the file, `src/llama-model-loader.h: llama_tensor_weight`).
//! With `--log-jsonl` the same measurement is also logged as a JSON object
//! `{"type":"fit_memory_breakdown","data":{"unit":"MiB","rows":[…]}}`
//! (`common/fit.cpp: common_memory_breakdown_print`) that adds each device's description,
//! total and free memory; when present it is read too. With `-v` the log's buffer lines are
//! kept as well, but in a dry run only the compute and output buffers are real: weights and KV
//! sit in dummy zero-size buffers (`src/llama-model.cpp: load_tensors` allocates
//! `ggml_backend_buft_alloc_buffer(buft, 0)` under `no_alloc`, and `llama_model::memory_breakdown`
//! sizes them with `ggml_backend_alloc_ctx_tensors_from_buft_size`), so their lines read
//! `0.00 MiB` and the table is the only source for them. Compute lines give 0.01 MiB.
//!
//! The dry run is exact for the build that runs it by construction. What it uses for options
//! the command leaves unset are llama-fit-params' defaults, which can differ from llama-server's
//! (llama-server's `-np` auto and its output cap `n_outputs_max = n_parallel`,
//! `tools/server/server-context.cpp`): give `-np` explicitly when comparing with a server.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The executable's name.
pub const FIT_PARAMS: &str = "llama-fit-params";

/// Default limit for one dry run (a tiny model takes well under a second, a 30 GB one a few).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many lines of the child's log an error keeps.
const TAIL_LINES: usize = 20;

/// What went wrong running the dry run.
#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("llama-fit-params not found: {0}")]
    ToolNotFound(String),
    #[error("{path} is not llama.cpp's llama-fit-params: {why}")]
    NotLlamaCpp { path: PathBuf, why: String },
    #[error("llama-fit-params did not finish within {timeout:?} and was killed; last lines:\n{}", .log_tail.join("\n"))]
    TimedOut {
        timeout: Duration,
        log_tail: Vec<String>,
    },
    #[error("llama-fit-params failed ({status}); last lines:\n{}", .log_tail.join("\n"))]
    Crashed {
        status: String,
        log_tail: Vec<String>,
    },
    #[error("this build's llama-fit-params does not accept {flag} (a build from before the option existed)")]
    Unsupported { flag: String },
    #[error("cannot read llama-fit-params' output: {why}; last lines:\n{}", .log_tail.join("\n"))]
    Unparseable { why: String, log_tail: Vec<String> },
    #[error("running {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One device (or the host) as the dry run sized it. MiB are llama.cpp's: bytes / 2^20
/// rounded down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMemory {
    /// llama.cpp's device name (`CUDA0`, `RPC1`, `Vulkan0`; `Host` for the host row).
    pub name: String,
    /// Device description (`NVIDIA GeForce RTX 4090`, an RPC server's `host:port`), from the
    /// JSON breakdown when it was logged.
    pub description: Option<String>,
    pub model_mib: u64,
    /// KV cache and recurrent state.
    pub context_mib: u64,
    pub compute_mib: u64,
    /// What the device reported at the dry run (JSON breakdown only; not for the host row).
    pub free_mib: Option<u64>,
    pub total_mib: Option<u64>,
}

impl DeviceMemory {
    pub fn self_mib(&self) -> u64 {
        self.model_mib + self.context_mib + self.compute_mib
    }
}

/// One `… buffer size = X MiB` line of the loader's log (needs `-v`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferLine {
    /// Buffer type name as printed (`RPC0[127.0.0.1:50052]`, `CPU_Mapped`, `CUDA0`).
    pub buffer: String,
    /// `model`, `KV`, `RS`, `compute`, `output`.
    pub kind: String,
    pub mib: f64,
}

/// The result of one dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    /// The model's devices in llama.cpp's order (not the host).
    pub devices: Vec<DeviceMemory>,
    /// Host buffers (CPU weights, CPU KV, host compute).
    pub host: DeviceMemory,
    /// Buffer lines of the log, in order (empty without `-v`). Weights and KV read 0.00 MiB
    /// in a dry run (dummy buffers); compute and output buffers are real.
    pub buffers: Vec<BufferLine>,
    /// Arguments of the launch command that llama-fit-params does not take and were left out.
    pub dropped_args: Vec<String>,
    /// Wall time of the whole run (process start to exit).
    pub elapsed: Duration,
}

impl DryRun {
    /// A device by llama.cpp name (`RPC0`, `CUDA1`; case-insensitive).
    pub fn device(&self, name: &str) -> Option<&DeviceMemory> {
        self.devices
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// Sum of the buffer lines of one kind (`model`, `KV`, `compute`) whose buffer type name
    /// starts with `prefix` (`RPC0[` for an RPC device, `CUDA0`, `CPU`), MiB.
    pub fn buffer_mib(&self, prefix: &str, kind: &str) -> f64 {
        self.buffers
            .iter()
            .filter(|b| b.kind == kind && b.buffer.starts_with(prefix))
            .map(|b| b.mib)
            .sum()
    }
}

/// The build as `--version` reports it (see [`parse_version`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub number: u32,
    pub commit: String,
}

/// How to run the dry run.
#[derive(Debug, Clone)]
pub struct Oracle {
    pub tool: PathBuf,
    pub timeout: Duration,
    /// Ask for the JSON breakdown (`--log-jsonl`, adds free/total per device). Builds before
    /// the option existed reject it; turn it off for them.
    pub jsonl: bool,
    /// Log at full verbosity (`-v`) to get the compute buffers to 0.01 MiB (and the log tail
    /// an error shows).
    pub verbose: bool,
}

impl Oracle {
    pub fn new(tool: impl Into<PathBuf>) -> Oracle {
        Oracle {
            tool: tool.into(),
            timeout: DEFAULT_TIMEOUT,
            jsonl: true,
            verbose: true,
        }
    }

    /// The llama-fit-params beside a llama-server binary (or in a bin folder).
    pub fn beside(server_or_dir: &Path) -> Result<Oracle, OracleError> {
        Ok(Oracle::new(find_fit_params(server_or_dir)?))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Oracle {
        self.timeout = timeout;
        self
    }

    /// `llama-fit-params --version`: the build number and commit; an error when the binary is
    /// not llama.cpp.
    pub fn version(&self) -> Result<BuildInfo, OracleError> {
        let out = run_with_timeout(&self.tool, &["--version".to_string()], self.timeout)?;
        let text = format!("{}\n{}", out.stdout, out.stderr);
        parse_version(&text).ok_or_else(|| OracleError::NotLlamaCpp {
            path: self.tool.clone(),
            why: format!(
                "--version printed no `version: …` build line ({})",
                status_text(out.status)
            ),
        })
    }

    /// Run the dry run for a launch command (`-m FILE -c N -ngl … -ts … -ot …`, the program
    /// name left out). Options llama-fit-params does not take (server-only ones such as
    /// `--port` or `--jinja`, and `--fit` itself) are dropped and listed in the result.
    pub fn dry_run(&self, launch_argv: &[String]) -> Result<DryRun, OracleError> {
        let (mut argv, dropped) = fit_params_argv(launch_argv);
        argv.push("--fit-print".into());
        argv.push("on".into());
        if self.verbose {
            argv.push("-v".into());
        }
        let mut jsonl = self.jsonl;
        let start = Instant::now();
        let out = loop {
            let mut full = argv.clone();
            if jsonl {
                full.push("--log-jsonl".into());
            }
            let out = run_with_timeout(&self.tool, &full, self.timeout)?;
            // `common/arg.cpp: common_params_parse` rejects an option the build does not know
            // with "error: invalid argument: FLAG" before loading anything.
            match rejected_option(&out.stderr) {
                Some(flag) if flag == "--log-jsonl" && jsonl => jsonl = false,
                Some(flag) if flag == "--fit-print" || flag == "-fitp" => {
                    return Err(OracleError::Unsupported { flag })
                }
                _ => break out,
            }
        };
        let elapsed = start.elapsed();
        let tail = log_tail(&out.stdout, &out.stderr);
        if !out.status.success() {
            return Err(OracleError::Crashed {
                status: status_text(out.status),
                log_tail: tail,
            });
        }
        let parsed = parse_output(&out.stdout, &out.stderr).map_err(|why| {
            if !looks_like_llama(&out.stdout, &out.stderr) {
                OracleError::NotLlamaCpp {
                    path: self.tool.clone(),
                    why: format!("its output has no line llama.cpp prints ({why})"),
                }
            } else {
                OracleError::Unparseable {
                    why,
                    log_tail: tail.clone(),
                }
            }
        })?;
        Ok(DryRun {
            devices: parsed.devices,
            host: parsed.host,
            buffers: parsed.buffers,
            dropped_args: dropped,
            elapsed,
        })
    }
}

/// Find llama-fit-params next to a llama-server binary, in a bin folder, or the path itself
/// when it is llama-fit-params.
pub fn find_fit_params(server_or_dir: &Path) -> Result<PathBuf, OracleError> {
    let dir = if server_or_dir.is_dir() {
        server_or_dir.to_path_buf()
    } else if server_or_dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(FIT_PARAMS))
    {
        if server_or_dir.is_file() {
            return Ok(server_or_dir.to_path_buf());
        }
        return Err(OracleError::ToolNotFound(format!(
            "{} does not exist",
            server_or_dir.display()
        )));
    } else {
        match server_or_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    for name in [FIT_PARAMS, "llama-fit-params.exe"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(OracleError::ToolNotFound(format!(
        "no {FIT_PARAMS} in {} (builds before the tool existed do not have it)",
        dir.display()
    )))
}

/// Options llama-fit-params accepts that change what is allocated where, with how many values
/// each takes (`common/arg.cpp`: options without `set_examples` are common to every tool).
const KEEP: &[(&str, usize)] = &[
    ("-m", 1),
    ("--model", 1),
    ("-c", 1),
    ("--ctx-size", 1),
    ("-n", 1),
    ("--n-predict", 1),
    ("-b", 1),
    ("--batch-size", 1),
    ("-ub", 1),
    ("--ubatch-size", 1),
    ("-np", 1),
    ("--parallel", 1),
    ("-ngl", 1),
    ("--gpu-layers", 1),
    ("--n-gpu-layers", 1),
    ("-sm", 1),
    ("--split-mode", 1),
    ("-ts", 1),
    ("--tensor-split", 1),
    ("-mg", 1),
    ("--main-gpu", 1),
    ("-dev", 1),
    ("--device", 1),
    ("--rpc", 1),
    ("-ot", 1),
    ("--override-tensor", 1),
    ("-cmoe", 0),
    ("--cpu-moe", 0),
    ("-ncmoe", 1),
    ("--n-cpu-moe", 1),
    ("-ctk", 1),
    ("--cache-type-k", 1),
    ("-ctv", 1),
    ("--cache-type-v", 1),
    ("-fa", 1),
    ("--flash-attn", 1),
    ("-nkvo", 0),
    ("--no-kv-offload", 0),
    ("-kvu", 0),
    ("--kv-unified", 0),
    ("--no-kv-unified", 0),
    ("--swa-full", 0),
    ("-lm", 1),
    ("--load-mode", 1),
    ("--mmap", 0),
    ("--no-mmap", 0),
    ("--mlock", 0),
    ("--no-op-offload", 0),
    ("--override-kv", 1),
    ("-t", 1),
    ("--threads", 1),
];

/// Split a launch command into what llama-fit-params takes and what it would reject. An
/// unknown option is dropped together with the values after it (tokens up to the next one
/// that starts with `-` and a letter). `--fit`/`-fit`, `--fit-target`, `--fit-ctx`,
/// `--fit-print` are dropped: the oracle measures the command as written.
pub fn fit_params_argv(launch_argv: &[String]) -> (Vec<String>, Vec<String>) {
    let mut keep = Vec::new();
    let mut dropped = Vec::new();
    let mut i = 0;
    // The program name, when the caller left it in.
    if launch_argv
        .first()
        .is_some_and(|a| !a.starts_with('-') && !a.ends_with(".gguf"))
    {
        i = 1;
    }
    let is_option = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2 && b[0] == b'-' && (b[1].is_ascii_alphabetic() || b[1] == b'-')
    };
    while i < launch_argv.len() {
        let arg = &launch_argv[i];
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg.as_str(), None),
        };
        match KEEP.iter().find(|(k, _)| *k == name) {
            Some((_, n)) => {
                keep.push(arg.clone());
                if inline.is_none() {
                    for _ in 0..*n {
                        i += 1;
                        if let Some(v) = launch_argv.get(i) {
                            keep.push(v.clone());
                        }
                    }
                }
                i += 1;
            }
            None => {
                dropped.push(arg.clone());
                i += 1;
                while i < launch_argv.len() && !is_option(&launch_argv[i]) {
                    dropped.push(launch_argv[i].clone());
                    i += 1;
                }
            }
        }
    }
    (keep, dropped)
}

/// What the parser recovers from one run's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub devices: Vec<DeviceMemory>,
    pub host: DeviceMemory,
    pub buffers: Vec<BufferLine>,
}

fn table_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(\S+) (\d+) (\d+) (\d+) ?$").expect("regex"))
}

fn buffer_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `src/llama-model.cpp: load_tensors` "%s model buffer size = %8.2f MiB",
    // `src/llama-kv-cache.cpp` "%10s KV buffer size = %8.2f MiB",
    // `src/llama-context.cpp` "%10s compute buffer size = %8.2f MiB" / "output buffer size".
    RE.get_or_init(|| {
        // An optional `M.SS.mmm.uuu L ` prefix (`common/log.cpp`, timestamps and level).
        Regex::new(
            r"^(?:[0-9.]+ [A-Z] )?\w+:\s+(\S+)\s+(model|KV|RS|compute|output) buffer size =\s+([0-9.]+) MiB",
        )
        .expect("regex")
    })
}

/// Parse llama-fit-params' stdout (the `--fit-print` table, JSON lines with `--log-jsonl`) and
/// stderr (text log). The table is authoritative for model/context/compute; the JSON
/// breakdown adds description, free and total. Never panics.
pub fn parse_output(stdout: &str, stderr: &str) -> Result<Parsed, String> {
    let mut table: Vec<DeviceMemory> = Vec::new();
    let mut json_rows: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut log_lines: Vec<String> = Vec::new();
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('{') {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match v.get("type").and_then(|t| t.as_str()) {
                Some("fit_memory_breakdown") => {
                    if let Some(rows) = v.pointer("/data/rows").and_then(|r| r.as_array()) {
                        for r in rows {
                            if let Some(name) = r.get("name").and_then(|n| n.as_str()) {
                                // The last breakdown wins (one per measurement).
                                json_rows.insert(name.to_string(), r.clone());
                            }
                        }
                    }
                }
                Some("log") => {
                    if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                        log_lines.extend(m.lines().map(str::to_string));
                    }
                }
                _ => {}
            }
            continue;
        }
        if let Some(c) = table_re().captures(line) {
            let num = |i: usize| c[i].parse::<u64>().unwrap_or(0);
            table.push(DeviceMemory {
                name: c[1].to_string(),
                description: None,
                model_mib: num(2),
                context_mib: num(3),
                compute_mib: num(4),
                free_mib: None,
                total_mib: None,
            });
        }
    }
    log_lines.extend(stderr.lines().map(str::to_string));
    let buffers = log_lines
        .iter()
        .filter_map(|l| {
            let c = buffer_re().captures(l.trim_end())?;
            Some(BufferLine {
                buffer: c[1].to_string(),
                kind: c[2].to_string(),
                mib: c[3].parse().ok()?,
            })
        })
        .collect();

    let Some(host_pos) = table.iter().rposition(|d| d.name == "Host") else {
        return Err(if table.is_empty() {
            "no `--fit-print` table on stdout (expected lines `NAME model context compute`)"
                .to_string()
        } else {
            "the `--fit-print` table has no `Host` row".to_string()
        });
    };
    let host = table[host_pos].clone();
    // Device rows directly precede the Host row.
    let first = table[..host_pos]
        .iter()
        .rposition(|d| d.name == "Host")
        .map_or(0, |p| p + 1);
    let mut devices: Vec<DeviceMemory> = table[first..host_pos].to_vec();
    for d in &mut devices {
        if let Some(r) = json_rows.get(&d.name) {
            let u = |k: &str| r.get(k).and_then(|v| v.as_u64());
            d.description = r
                .get("description")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            d.free_mib = u("free");
            d.total_mib = u("total");
        }
    }
    Ok(Parsed {
        devices,
        host,
        buffers,
    })
}

/// The build line `--version` prints on stderr: older builds (`common/arg.cpp`)
/// `version: 8022 (a1b2c3d)`, newer ones (`common/build-info.cpp.in`)
/// `version: 0.6.0-dev (build 11434, commit b11434)`.
pub fn parse_version(text: &str) -> Option<BuildInfo> {
    static NEW: OnceLock<Regex> = OnceLock::new();
    static OLD: OnceLock<Regex> = OnceLock::new();
    let new = NEW.get_or_init(|| {
        Regex::new(r"(?m)^version: \S+ \(build (\d+), commit ([^)]*)\)").expect("regex")
    });
    let old = OLD.get_or_init(|| Regex::new(r"(?m)^version: (\d+) \(([^)]*)\)").expect("regex"));
    let c = new.captures(text).or_else(|| old.captures(text))?;
    Some(BuildInfo {
        number: c[1].parse().ok()?,
        commit: c[2].to_string(),
    })
}

/// The option `common_params_parse` refused (`error: invalid argument: FLAG`), if any.
fn rejected_option(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        let rest = l.split("error: invalid argument: ").nth(1)?;
        Some(rest.split_whitespace().next()?.to_string())
    })
}

fn looks_like_llama(stdout: &str, stderr: &str) -> bool {
    let markers = [
        "llama_model_load",
        "llama_model_loader",
        "load_tensors",
        "llama_context",
        "print_info",
        "build:",
        "ggml_",
        "\"type\":\"log\"",
    ];
    markers
        .iter()
        .any(|m| stdout.contains(m) || stderr.contains(m))
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `tool argv…`, reading both pipes, and kill it when `timeout` passes.
fn run_with_timeout(
    tool: &Path,
    argv: &[String],
    timeout: Duration,
) -> Result<Output, OracleError> {
    let mut child = Command::new(tool)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                OracleError::ToolNotFound(format!("{} does not exist", tool.display()))
            }
            std::io::ErrorKind::PermissionDenied => OracleError::NotLlamaCpp {
                path: tool.to_path_buf(),
                why: "not executable".into(),
            },
            _ => OracleError::Io {
                path: tool.to_path_buf(),
                source: e,
            },
        })?;
    // Readers append to shared buffers, so that a timed-out run still shows what it printed
    // and a grandchild holding the pipes open cannot block the return.
    type Shared = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let buf: Shared = Default::default();
        let sink = buf.clone();
        let handle = std::thread::spawn(move || {
            let Some(mut p) = pipe else { return };
            let mut chunk = [0u8; 8192];
            while let Ok(n) = p.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = sink.lock() {
                    b.extend_from_slice(&chunk[..n]);
                }
            }
        });
        (buf, handle)
    };
    let (out_buf, out_t) = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (err_buf, err_t) = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(OracleError::Io {
                    path: tool.to_path_buf(),
                    source: e,
                });
            }
        }
    };
    // After a normal exit the pipes close and the readers finish; after a kill, give them a
    // moment and take what they have.
    let drain_until = Instant::now() + Duration::from_millis(500);
    for t in [&out_t, &err_t] {
        while !t.is_finished() && Instant::now() < drain_until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let text = |b: &Shared| {
        String::from_utf8_lossy(&b.lock().map(|v| v.clone()).unwrap_or_default()).into_owned()
    };
    let (stdout, stderr) = (text(&out_buf), text(&err_buf));
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(OracleError::TimedOut {
            timeout,
            log_tail: log_tail(&stdout, &stderr),
        }),
    }
}

fn status_text(s: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit status {c}"),
        None => "no exit status".into(),
    }
}

/// The last lines of the run's log (stderr, and the `msg` of JSON log lines on stdout).
fn log_tail(stdout: &str, stderr: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for l in stdout.lines() {
        if l.starts_with('{') {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                    lines.extend(m.lines().map(str::to_string));
                }
                continue;
            }
        }
        lines.push(l.to_string());
    }
    lines.extend(stderr.lines().map(str::to_string));
    lines.retain(|l| !l.trim().is_empty());
    let n = lines.len().saturating_sub(TAIL_LINES);
    lines.split_off(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/oracle/",
                $name
            ))
        };
    }

    fn row(name: &str, model: u64, context: u64, compute: u64) -> (String, u64, u64, u64) {
        (name.to_string(), model, context, compute)
    }

    fn rows(p: &Parsed) -> Vec<(String, u64, u64, u64)> {
        p.devices
            .iter()
            .chain([&p.host])
            .map(|d| row(&d.name, d.model_mib, d.context_mib, d.compute_mib))
            .collect()
    }

    #[test]
    fn plain_table() {
        let p = parse_output(
            fixture!("tiny-moe-ts11.stdout"),
            fixture!("tiny-moe-ts11.stderr"),
        )
        .unwrap();
        assert_eq!(
            rows(&p),
            vec![
                row("RPC0", 6, 2, 9),
                row("RPC1", 23, 1, 153),
                row("Host", 19, 0, 5)
            ]
        );
        assert!(p.devices.iter().all(|d| d.free_mib.is_none()));
        assert!(p.buffers.is_empty());
    }

    #[test]
    fn jsonl_adds_free_total_and_description() {
        let p = parse_output(
            fixture!("tiny-moe-ts11-exps-cpu-jsonl.stdout"),
            fixture!("tiny-moe-ts11-exps-cpu-jsonl.stderr"),
        )
        .unwrap();
        assert_eq!(
            rows(&p),
            vec![
                row("RPC0", 0, 2, 1),
                row("RPC1", 19, 1, 148),
                row("Host", 29, 0, 4)
            ]
        );
        let d = &p.devices[1];
        assert_eq!(d.description.as_deref(), Some("127.0.0.1:50153"));
        assert_eq!((d.free_mib, d.total_mib), (Some(24105), Some(24105)));
        assert_eq!(p.devices[1].self_mib(), 168);
    }

    #[test]
    fn verbose_log_buffers() {
        let p = parse_output(
            fixture!("tiny-moe-ts31-verbose.stdout"),
            fixture!("tiny-moe-ts31-verbose.stderr"),
        )
        .unwrap();
        assert_eq!(
            rows(&p),
            vec![
                row("RPC0", 9, 3, 9),
                row("RPC1", 19, 0, 149),
                row("Host", 19, 0, 5)
            ]
        );
        let dry = DryRun {
            devices: p.devices.clone(),
            host: p.host.clone(),
            buffers: p.buffers.clone(),
            dropped_args: vec![],
            elapsed: Duration::ZERO,
        };
        // Dummy weight buffers in a dry run; real compute buffers.
        assert_eq!(dry.buffer_mib("RPC0[127.0.0.1:50152]", "model"), 0.0);
        assert_eq!(dry.buffer_mib("RPC0[127.0.0.1:50152]", "compute"), 9.03);
        assert_eq!(dry.buffer_mib("RPC0[127.0.0.1:50153]", "compute"), 149.0);
        assert_eq!(dry.buffer_mib("CPU", "output"), 0.58);
        assert_eq!(dry.device("rpc1").map(|d| d.model_mib), Some(19));
    }

    #[test]
    fn version_lines() {
        let v = parse_version(fixture!("version.stderr")).unwrap();
        assert_eq!((v.number, v.commit.as_str()), (11434, "b11434"));
        let old = parse_version("version: 8022 (3f6a1b2)\nbuilt with cc for x86_64\n").unwrap();
        assert_eq!((old.number, old.commit.as_str()), (8022, "3f6a1b2"));
        assert!(parse_version("Python 3.11.7").is_none());
    }

    #[test]
    fn no_table_is_an_error() {
        let e = parse_output("", fixture!("missing-model.stderr")).unwrap_err();
        assert!(e.contains("no `--fit-print` table"), "{e}");
        assert!(parse_output("RPC0 1 2 3\n", "").is_err());
        assert!(looks_like_llama("", fixture!("missing-model.stderr")));
        assert!(!looks_like_llama("hello\n", ""));
    }

    #[test]
    fn argv_keeps_memory_flags_and_drops_the_rest() {
        let argv: Vec<String> = [
            "llama-server",
            "-m",
            "a.gguf",
            "--port",
            "8080",
            "--jinja",
            "-c",
            "4096",
            "-ngl",
            "99",
            "-ot",
            "exps=CPU",
            "--fit",
            "off",
            "--seed",
            "-1",
            "-ts",
            "1,1",
            "--ctx-size=8192",
            "--no-mmap",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (keep, dropped) = fit_params_argv(&argv);
        assert_eq!(
            keep,
            [
                "-m",
                "a.gguf",
                "-c",
                "4096",
                "-ngl",
                "99",
                "-ot",
                "exps=CPU",
                "-ts",
                "1,1",
                "--ctx-size=8192",
                "--no-mmap"
            ]
        );
        assert_eq!(
            dropped,
            ["--port", "8080", "--jinja", "--fit", "off", "--seed", "-1"]
        );
    }

    #[test]
    fn find_beside_server() {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("llama-server");
        std::fs::write(&server, "").unwrap();
        assert!(matches!(
            find_fit_params(&server),
            Err(OracleError::ToolNotFound(_))
        ));
        std::fs::write(dir.path().join(FIT_PARAMS), "").unwrap();
        assert_eq!(
            find_fit_params(&server).unwrap(),
            dir.path().join(FIT_PARAMS)
        );
        assert_eq!(
            find_fit_params(dir.path()).unwrap(),
            dir.path().join(FIT_PARAMS)
        );
    }

    #[cfg(unix)]
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(FIT_PARAMS);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[cfg(unix)]
    #[test]
    fn child_failures_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let argv = vec!["-m".to_string(), "x.gguf".to_string()];

        let hang =
            Oracle::new(script(dir.path(), "sleep 30")).with_timeout(Duration::from_millis(300));
        let t = Instant::now();
        let e = hang.dry_run(&argv).unwrap_err();
        assert!(matches!(e, OracleError::TimedOut { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));

        let crash = Oracle::new(script(
            dir.path(),
            "echo 'llama_model_load: error loading model' >&2; exit 3",
        ));
        match crash.dry_run(&argv).unwrap_err() {
            OracleError::Crashed { status, log_tail } => {
                assert_eq!(status, "exit status 3");
                assert_eq!(log_tail, ["llama_model_load: error loading model"]);
            }
            e => panic!("{e}"),
        }

        let echo = Oracle::new(script(dir.path(), "echo \"$@\""));
        let e = echo.dry_run(&argv).unwrap_err();
        assert!(matches!(e, OracleError::NotLlamaCpp { .. }), "{e}");
        assert!(matches!(
            echo.version().unwrap_err(),
            OracleError::NotLlamaCpp { .. }
        ));

        let fake = Oracle::new(script(
            dir.path(),
            "echo 'load_tensors: offloaded 7/7 layers to GPU' >&2; printf 'RPC0 6 2 9 \\nHost 19 0 5 \\n'",
        ));
        let d = fake.dry_run(&argv).unwrap();
        assert_eq!(d.devices.len(), 1);
        assert_eq!(d.host.model_mib, 19);

        // An old build: no --log-jsonl (retried without), or no --fit-print at all.
        let old = Oracle::new(script(
            dir.path(),
            "for a in \"$@\"; do [ \"$a\" = --log-jsonl ] && { echo 'error: invalid argument: --log-jsonl' >&2; exit 1; }; done; \
             echo 'load_tensors: offloaded' >&2; printf 'CUDA0 1 2 3 \\nHost 4 5 6 \\n'",
        ));
        assert_eq!(old.dry_run(&argv).unwrap().devices[0].name, "CUDA0");
        let older = Oracle::new(script(
            dir.path(),
            "echo 'error: invalid argument: --fit-print' >&2; exit 1",
        ));
        assert!(matches!(
            older.dry_run(&argv).unwrap_err(),
            OracleError::Unsupported { flag } if flag == "--fit-print"
        ));

        let missing = Oracle::new(dir.path().join("nope"));
        assert!(matches!(
            missing.dry_run(&argv).unwrap_err(),
            OracleError::ToolNotFound(_)
        ));
    }
}
