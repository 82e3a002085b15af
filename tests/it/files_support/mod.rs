//! Helpers for the file-safety tests (issue 14, docs/files.md): run the placer binary with a time
//! bound, watch a child's peak memory, list temporary files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn placer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_placer"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        // The user's own calibration must not change what these tests see.
        .env("PLACER_CALIBRATION", "/nonexistent/placer-calibration.toml")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// What a bounded run gave.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub secs: f64,
    /// Peak resident memory seen (VmHWM), KiB.
    pub peak_kib: u64,
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Run `cmd`, killing it after `limit`; panics when it had to be killed (a hang).
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Ran {
    let start = Instant::now();
    let mut child: Child = cmd.spawn().expect("spawn placer");
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm(pid) {
            peak = peak.max(k);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("placer still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = child.wait_with_output().unwrap();
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        secs: start.elapsed().as_secs_f64(),
        peak_kib: peak,
    }
}

/// `placer solve MODEL --ctx 8192 --write F` (the `--write` of issue 14).
pub fn solve_write(model: &str, file: &Path) -> Command {
    let mut c = placer();
    c.args(["solve", model, "--ctx", "8192", "--write"])
        .arg(file);
    c
}

/// Temporary files placer left in `dir`.
pub fn temps(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

/// Active section names of a models.conf, in order.
pub fn sections(text: &str) -> Vec<String> {
    placer::modelsconf::read::parse(text)
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// A FIFO at `path` (the `mkfifo` command).
pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A small pseudo-random sequence (no extra crate): xorshift seeded from the clock, printed so
/// that a failure can be replayed.
pub struct Rng(u64);
impl Rng {
    pub fn new(what: &str) -> Rng {
        let seed = std::env::var("PLACER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{what}: PLACER_TEST_SEED={seed}");
        Rng(seed)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
