//! Trial runs on disk, in the form of data/runs (testbed/MANIFEST.md): a folder per run with
//! `manifest.json` (schema 1, the keys `calibrate::records::Manifest` reads) and the server's
//! complete log as `log.txt.gz`, under the user's data folder, so `placer calibrate` reads them.

use super::{Options, Profile, TrialResult};
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The user's runs folder: `$PLACER_DATA`, else `$XDG_DATA_HOME/placer/runs`, else
/// `~/.local/share/placer/runs`.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(p) = crate::env::path(crate::env::DATA) {
        return Ok(p);
    }
    if let Some(x) = crate::env::path("XDG_DATA_HOME") {
        return Ok(x.join("placer").join("runs"));
    }
    let home = crate::env::path("HOME").ok_or_else(|| {
        anyhow::anyhow!(
            "no $PLACER_DATA, $XDG_DATA_HOME or $HOME: set PLACER_DATA to a folder for the runs"
        )
    })?;
    Ok(home
        .join(".local")
        .join("share")
        .join("placer")
        .join("runs"))
}

/// Check that the runs folder can be created and written, before anything runs.
pub fn check_writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the runs folder {}: {e} (set PLACER_DATA to a writable folder)",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".placer-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        anyhow::anyhow!(
            "cannot write in the runs folder {}: {e} (set PLACER_DATA to a writable folder)",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A new, empty run folder `<data>/<scenario>/<section>--<epoch seconds>[-N]`.
pub fn new_run_dir(data: &Path, scenario: &str, section: &str) -> anyhow::Result<PathBuf> {
    let (_, secs) = super::today();
    let base = format!("{}--{secs}", safe(section));
    let parent = data.join(scenario);
    std::fs::create_dir_all(&parent)?;
    for i in 0..1000 {
        let name = if i == 0 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let d = parent.join(name);
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("no free run folder name under {}", parent.display())
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write manifest.json and log.txt.gz (from the server's log), remove the plain log and the
/// console file.
pub fn finish(
    dir: &Path,
    log_path: &Path,
    p: &Profile,
    o: &Options,
    r: &TrialResult,
    exit: Option<String>,
    wall: Duration,
) -> anyhow::Result<()> {
    let console = super::server::console_path(log_path);
    let mut bytes = std::fs::read(log_path).unwrap_or_default();
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        bytes = std::fs::read(&console).unwrap_or_default();
    }
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes)?;
    write_file(&dir.join("log.txt.gz"), &gz.finish()?)?;
    let manifest = manifest(p, o, r, exit, wall);
    write_file(
        &dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    let _ = std::fs::remove_file(log_path);
    let _ = std::fs::remove_file(console);
    Ok(())
}

/// Through the one file writer (src/fsio.rs): locked, atomic, mode-keeping.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::fsio::replace(path, bytes)?;
    Ok(())
}

/// The manifest (testbed/MANIFEST.md schema 1 keys; `trial` holds this run's full result).
pub fn manifest(
    p: &Profile,
    o: &Options,
    r: &TrialResult,
    exit: Option<String>,
    wall: Duration,
) -> serde_json::Value {
    let long = r.measurements.iter().find(|m| m.what == "long");
    let code = exit.as_deref().and_then(|e| {
        e.rsplit(' ')
            .next()
            .and_then(|c| c.trim_end_matches(')').parse::<i32>().ok())
    });
    let mut argv = vec!["llama-server".to_string()];
    argv.extend(p.argv.iter().cloned());
    serde_json::json!({
        "schema": 1,
        "run_id": r.run_dir.as_ref().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        "model": p.model.display().to_string(),
        "model_file_bytes": std::fs::metadata(&p.model).map(|m| m.len()).unwrap_or(0),
        "placement": format!("trial:{}", p.name),
        "host": o.host.name,
        "host_targets_mib": o.host.gpus.iter().map(|g| g.usable_mib).collect::<Vec<_>>(),
        // "emul": the host's GPUs are virtual devices of one physical GPU (a host file from
        // `placer host detect --emulate` with more entries than GPUs says so in their source):
        // they share one memory pool, which the calibration must know (records::emulated).
        "emulation": if o.host.gpus.iter().any(|g| g.source.contains("virtual device")) { "emul" } else { "" },
        "env": [],
        "ballast_free_mib": [],
        "ctx": p.ctx,
        "prompt_tokens_target": r.long_tokens,
        // "restored": the cached prefix came from an earlier candidate's slot save.
        "prefix_source": r.prefix,
        "n_gen": super::GEN_SHORT,
        "flags": p.argv,
        "argv": argv,
        "binary": "llama-server",
        "server_argv": r.argv,
        "llama_cpp": {
            "source": o.server.display().to_string(),
            "version": o.version,
            "build": "",
        },
        "gpu": "",
        "cpu_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "rc": code,
        "timed_out": matches!(&r.outcome, super::Outcome::LoadFailed { why, .. } if why.contains("not ready within")),
        "wall_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
        "measured": {
            "prefill_tps": long.and_then(|m| m.prefill_tps()),
            "prompt_tokens": long.map(|m| m.prompt_n),
            "decode_tps": long.and_then(|m| m.decode_tps()),
            "gen_tokens": long.map(|m| m.predicted_n),
            "oom": r.outcome.oom(),
            "oom_lines": r.failure_lines,
        },
        "trial": r,
    })
}
