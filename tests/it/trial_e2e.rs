//! `placer trial` end to end with the real llama-server (PLACER_LLAMA_BIN; without it the tests
//! that need it print a note and pass): tiny-moe synthesized into a temporary folder, a
//! models.conf with profiles for it, the runs stored, the calibration updated, a winner chosen
//! and written back; an injected load failure; bad input; and never a server left running.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::llama_support::tiny_moe;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// llama-server from `PLACER_LLAMA_BIN` (its folder or a binary in it).
fn llama_server() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("PLACER_LLAMA_BIN")?);
    let dir = if p.is_dir() {
        p
    } else {
        p.parent()?.to_path_buf()
    };
    let s = dir.join("llama-server");
    s.is_file().then_some(s)
}

/// A CPU-only host (this machine has no GPU): no GPUs, the RAM the tests may use.
const CPU_HOST: &str = r#"name = "cpu-only-test"
description = "CPU only (trial tests)"
gpus = []

[ram]
total_mib = 8192
usable_mib = 6144
bandwidth_gbs = 20.0
source = "test fixture"
"#;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("host.toml"), CPU_HOST).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Env { dir }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn placer(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_placer"))
            .arg("trial")
            .args(args)
            .env("PLACER_DATA", self.p("runs"))
            .env("PLACER_CALIBRATION", self.p("calibration.toml"))
            .env("PLACER_CONFIG", self.p("no-config.toml"))
            .env("HOME", self.dir.path())
            .env("TMPDIR", self.p("tmp"))
            .env_remove("PLACER_LLAMA")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .expect("runs placer");
        println!(
            "placer trial {args:?} → {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    /// No process whose command line names this test's folder.
    fn assert_no_process_left(&self) {
        let out = Command::new("pgrep")
            .args(["-f", &self.dir.path().display().to_string()])
            .output()
            .expect("pgrep runs");
        let pids = String::from_utf8_lossy(&out.stdout);
        assert!(pids.trim().is_empty(), "processes left behind: {pids}");
    }
}

const CONF: &str = "# my models (hand-written notes stay)\n\
# aggressive: bigger -ub\n\
# NOT YET TESTED\n\
[tiny-aggressive]\n\
NAME=tiny\n\
MODEL=tiny-moe.gguf\n\
CTX_SIZE=4096\n\
N_GPU_LAYERS=0\n\
EXTRA_ARGS=-ub 512 -np 1 -t 2 --no-warmup\n\
\n\
# NOT YET TESTED\n\
[tiny-moderate]\n\
NAME=tiny\n\
MODEL=tiny-moe.gguf\n\
CTX_SIZE=4096\n\
N_GPU_LAYERS=0\n\
EXTRA_ARGS=-ub 256 -np 1 -t 2 --no-warmup\n\
\n\
[broken-aggressive]\n\
MODEL=tiny-moe.gguf\n\
CTX_SIZE=4096\n\
EXTRA_ARGS=-np 1 -t 2 --override-kv qwen3moe.block_count=int:999\n";

fn non_comment(t: &str) -> String {
    t.split_inclusive('\n')
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn manifests(dir: &Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return v;
    };
    for scen in rd.flatten() {
        for run in std::fs::read_dir(scen.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let m = run.path().join("manifest.json");
            assert!(run.path().join("log.txt.gz").is_file(), "{:?}", run.path());
            let text = std::fs::read_to_string(&m).expect("manifest.json");
            v.push(serde_json::from_str(&text).unwrap());
        }
    }
    v
}

#[test]
fn trial_two_profiles_measures_stores_learns_chooses_and_writes() {
    let Some(server) = llama_server() else {
        println!("PLACER_LLAMA_BIN not set: skipping the trial end-to-end test");
        return;
    };
    let env = Env::new();
    tiny_moe(env.dir.path());
    let conf = env.p("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    // A port taken by someone else: trial skips it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let c = conf.display().to_string();
    let out = env.placer(&[
        "--llama",
        &server.display().to_string(),
        "--host",
        &env.p("host.toml").display().to_string(),
        "--port-base",
        &port.to_string(),
        "--no-baseline",
        "--no-search",
        "--write",
        &format!("{c}:tiny-aggressive"),
        &format!("{c}:tiny-moderate"),
    ]);
    let so = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(so.contains(&format!("port(s) [{port}] taken")), "{so}");
    assert!(so.contains("chosen: [tiny-"), "{so}");
    env.assert_no_process_left();
    drop(taken);

    // Two runs stored in the data folder, in data/runs' form, with real timings.
    let ms = manifests(&env.p("runs"));
    assert_eq!(ms.len(), 2);
    for m in &ms {
        assert_eq!(m["schema"], 1);
        assert_eq!(m["trial"]["outcome"], "Ok", "{m}");
        for t in m["trial"]["measurements"].as_array().unwrap() {
            assert!(t["prompt_ms"].as_f64().unwrap() > 0.0, "{t}");
            assert!(t["predicted_ms"].as_f64().unwrap() > 0.0, "{t}");
        }
        assert!(m["measured"]["decode_tps"].as_f64().unwrap() > 0.0);
        assert!(m["measured"]["prompt_tokens"].as_u64().unwrap() >= 2048);
    }
    // `placer calibrate`'s reader takes them as runs.
    let (runs, skipped) = placer::calibrate::records::load_runs(&[env.p("runs")], |_| {});
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.log.gen_tps.unwrap_or(0.0) > 0.0));
    // The user's calibration was written from them.
    let cal = std::fs::read_to_string(env.p("calibration.toml")).expect("calibration written");
    assert!(cal.starts_with("# Written by `placer trial`"), "{cal}");
    placer::calibration::Calibration::from_file(&env.p("calibration.toml")).expect("reads back");
    // The next solve reads it (one calibration rule for every command, shown in the report).
    let solve = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args([
            "solve",
            &format!("{c}:tiny-aggressive"),
            "--no-oracle",
            "--host",
        ])
        .arg(env.p("host.toml"))
        .env("PLACER_CALIBRATION", env.p("calibration.toml"))
        .env("PLACER_CONFIG", env.p("no-config.toml"))
        .env("HOME", env.dir.path())
        .env_remove("PLACER_LLAMA")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&solve.stdout);
    assert!(
        text.contains(&format!(
            "calibration: {}",
            env.p("calibration.toml").display()
        )),
        "the next solve must read the trial's calibration:\n{text}{}",
        String::from_utf8_lossy(&solve.stderr)
    );

    // Written back: every non-comment byte kept, NOT YET TESTED replaced, one CHOSEN.
    let after = std::fs::read_to_string(&conf).unwrap();
    println!("{after}");
    assert_eq!(non_comment(CONF), non_comment(&after));
    assert!(!after.contains("NOT YET TESTED"));
    assert_eq!(after.matches("CHOSEN").count(), 1);
    assert_eq!(after.matches("# placer trial 20").count(), 2);
    assert!(after.contains("# my models (hand-written notes stay)\n# aggressive: bigger -ub\n"));
}

#[test]
fn trial_a_profile_that_cannot_load_is_recorded_and_the_other_wins() {
    let Some(server) = llama_server() else {
        println!("PLACER_LLAMA_BIN not set: skipping the trial failure test");
        return;
    };
    let env = Env::new();
    tiny_moe(env.dir.path());
    let conf = env.p("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let c = conf.display().to_string();
    let out = env.placer(&[
        "--llama",
        &server.display().to_string(),
        "--host",
        &env.p("host.toml").display().to_string(),
        "--no-baseline",
        "--no-search",
        &format!("{c}:broken-aggressive"),
        &format!("{c}:tiny-moderate"),
    ]);
    let so = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(so.contains("[broken-aggressive] failed to load"), "{so}");
    assert!(so.contains("chosen: [tiny-moderate]"), "{so}");
    assert!(
        so.contains(&format!("placer solve {c}:broken --write")),
        "the re-solve command: {so}"
    );
    env.assert_no_process_left();
    let ms = manifests(&env.p("runs"));
    assert_eq!(ms.len(), 2);
    let failed = ms
        .iter()
        .find(|m| m["placement"] == "trial:broken-aggressive")
        .expect("the failed run is stored");
    assert!(
        failed["trial"]["outcome"]["LoadFailed"].is_object(),
        "{failed}"
    );
    let lines = failed["trial"]["failure_lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "the log lines that say why");
    // Without --write the file is untouched.
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), CONF);
}

#[test]
fn trial_bad_input_is_refused_with_nothing_written() {
    let env = Env::new();
    let conf = env.p("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    // A model file is needed for the checks past MODEL: an empty one is not a GGUF, so only the
    // cases before reading it use it.
    let c = conf.display().to_string();
    let host = env.p("host.toml").display().to_string();
    let refuse = |args: &[&str], says: &str| {
        let out = env.placer(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let e = stderr(&out);
        assert!(e.contains(says), "{args:?}: {e}");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), CONF);
        assert!(!env.p("runs").exists(), "nothing stored for bad input");
        assert!(!env.p("calibration.toml").exists());
    };
    // Server binary missing.
    refuse(
        &[
            "--llama",
            "/nonexistent/llama-server",
            &format!("{c}:tiny-moderate"),
        ],
        "does not exist",
    );
    // Not llama.cpp.
    let fake = env.p("not-llama");
    std::fs::write(&fake, "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    refuse(
        &[
            "--llama",
            &fake.display().to_string(),
            &format!("{c}:tiny-moderate"),
        ],
        "is not llama.cpp's llama-server",
    );
    // A llama-server that hangs at load (answers --version, then sleeps).
    let hang = env.p("hang/llama-server");
    std::fs::create_dir_all(hang.parent().unwrap()).unwrap();
    std::fs::write(
        &hang,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'version: 11434 (b11434)'; exit 0; fi\nexec sleep 600\n",
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hang_s = hang.display().to_string();
    // Section missing.
    refuse(
        &["--llama", &hang_s, &format!("{c}:nosuch")],
        "no section [nosuch] in models.conf; sections there: tiny-aggressive, tiny-moderate, broken-aggressive",
    );
    // Model file missing.
    refuse(
        &[
            "--llama",
            &hang_s,
            "--host",
            &host,
            &format!("{c}:tiny-moderate"),
        ],
        "MODEL=tiny-moe.gguf is not a model file",
    );
    // models.conf read-only with --write (the model exists now: every other check passes).
    let model = tiny_moe(env.dir.path());
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o444)).unwrap();
    refuse(
        &[
            "--llama",
            &hang_s,
            "--host",
            &host,
            "--write",
            &format!("{c}:tiny-moderate"),
        ],
        "is read-only",
    );
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Hangs at load: a timeout, recorded as a failed run; exit 1 (no profile survived), no
    // process left.
    let out = env.placer(&[
        "--llama",
        &hang_s,
        "--host",
        &host,
        "--load-timeout",
        "2",
        &format!("{c}:tiny-moderate"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("llama-server was not ready within 2 s"),
        "{}",
        stdout(&out)
    );
    env.assert_no_process_left();
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), CONF);
    let _ = model;
}

/// Server time of each of a stored run's workload turns, seconds.
fn turn_times(m: &serde_json::Value) -> Vec<f64> {
    m["trial"]["measurements"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["what"].as_str().unwrap_or("").starts_with("workload"))
                .map(|x| {
                    (x["prompt_ms"].as_f64().unwrap() + x["predicted_ms"].as_f64().unwrap())
                        / 1000.0
                })
                .collect()
        })
        .unwrap_or_default()
}

fn median(mut t: Vec<f64>) -> Option<f64> {
    if t.is_empty() {
        return None;
    }
    t.sort_by(f64::total_cmp);
    let n = t.len();
    Some(if n % 2 == 1 {
        t[n / 2]
    } else {
        (t[n / 2 - 1] + t[n / 2]) / 2.0
    })
}

#[test]
fn trial_tunes_with_a_fit_baseline_and_a_search_and_keeps_the_measured_best() {
    let Some(server) = llama_server() else {
        println!("PLACER_LLAMA_BIN not set: skipping the tuner test");
        return;
    };
    let env = Env::new();
    tiny_moe(env.dir.path());
    let conf = env.p("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let c = conf.display().to_string();
    let out = env.placer(&[
        "--llama",
        &server.display().to_string(),
        "--host",
        &env.p("host.toml").display().to_string(),
        "--prompt",
        "256",
        "--gen",
        "16",
        "--budget",
        "4m",
        "--patience",
        "1",
        "--max-turns",
        "3",
        "--write",
        &format!("{c}:tiny-aggressive"),
        &format!("{c}:tiny-moderate"),
    ]);
    let so = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.assert_no_process_left();
    // llama.cpp's own --fit ran beside the profiles, and the search measured at least one step.
    assert!(so.contains("[tiny~fit] ok"), "{so}");
    assert!(so.contains("— from [tiny-"), "a search step ran: {so}");
    assert!(so.contains("search stopped: "), "{so}");
    // The table compares like with like.
    assert!(
        so.contains("self MiB measured/predicted (+overhead) %cap"),
        "{so}"
    );
    assert!(
        so.contains("predicted vs measured, before → after learning"),
        "{so}"
    );
    let ms = manifests(&env.p("runs"));
    assert!(ms.len() >= 4, "sections + baseline + a step: {}", ms.len());
    let chosen = so
        .lines()
        .find_map(|l| l.strip_prefix("chosen: ["))
        .and_then(|l| l.strip_suffix(']'))
        .expect("a chosen line")
        .to_string();
    // Per candidate, the median over every stored run of it (the confirmation loads the two
    // closest candidates again and pools their turns).
    let mut by_name: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for m in ms.iter().filter(|m| m["trial"]["outcome"] == "Ok") {
        let Some(name) = m["trial"]["name"].as_str() else {
            continue;
        };
        by_name
            .entry(name.to_string())
            .or_default()
            .extend(turn_times(m));
    }
    let turns: Vec<(String, f64)> = by_name
        .into_iter()
        .filter_map(|(n, v)| Some((n, median(v)?)))
        .collect();
    if so.contains("confirming: ") {
        assert!(
            so.contains("pooled over two loads") || so.contains("the first load's turns stand"),
            "{so}"
        );
    }
    let best = turns.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
    let best_fit = turns
        .iter()
        .filter(|t| t.0.contains("~fit"))
        .map(|t| t.1)
        .fold(f64::INFINITY, f64::min);
    let mine = turns
        .iter()
        .find(|t| t.0 == chosen)
        .map(|t| t.1)
        .unwrap_or_else(|| panic!("chosen [{chosen}] among {turns:?}"));
    // The measured best, up to the decision rules' tie (at most 5 %), and never slower than --fit.
    assert!(
        mine <= best * 1.05 + 1e-9,
        "{chosen} {mine} vs best {best}: {turns:?}"
    );
    assert!(
        mine <= best_fit + 1e-9,
        "{chosen} {mine} vs --fit {best_fit}"
    );
    // The winner runs as written: when it is no section, it is one now.
    let after = std::fs::read_to_string(&conf).unwrap();
    let secs = placer::modelsconf::read::parse(&after);
    let section = if chosen.contains('~') {
        "tiny-tuned".to_string()
    } else {
        chosen.clone()
    };
    assert!(
        secs.iter().any(|s| s.name == section),
        "[{section}] in {after}"
    );
    if chosen.contains('~') {
        assert!(after.contains("candidates of `placer trial`"), "{after}");
    }
    // One trial moves the next prediction toward what was measured: `check` of the aggressive
    // section with the calibration the trial wrote, against the shipped one.
    // The candidates are one placement on a CPU host (only -ub differs), so the fit scales the
    // decode prediction toward the middle of what it learns from: each stored run's
    // decode as `placer calibrate` reads it (the log's last generation, after the long prompt).
    let (runs, _) = placer::calibrate::records::load_runs(&[env.p("runs")], |_| {});
    let logs: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.log.gen_tps)
        .filter(|t| *t > 0.0)
        .map(f64::ln)
        .collect();
    assert!(!logs.is_empty(), "runs with a decode");
    // The median, as the fit's Huber loss (src/calibrate/learn.rs) lets one run of a saturated
    // machine count little.
    let mut logs = logs;
    logs.sort_by(f64::total_cmp);
    let n = logs.len();
    let measured = ((logs[(n - 1) / 2] + logs[n / 2]) / 2.0).exp();
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/calibration.toml");
    let predict = |cal: &Path| -> f64 {
        let out = Command::new(env!("CARGO_BIN_EXE_placer"))
            .args(["check", "--json", "--no-oracle", "--host"])
            .arg(env.p("host.toml"))
            .arg("--calibration")
            .arg(cal)
            .arg(format!("{c}:tiny-aggressive"))
            .env("PLACER_CONFIG", env.p("no-config.toml"))
            .env("HOME", env.dir.path())
            .output()
            .expect("runs placer check");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["speed"]["decode_tps"]
            .as_f64()
            .expect("a decode prediction")
    };
    let before = predict(&shipped);
    let learned = predict(&env.p("calibration.toml"));
    // Where the prior is already close (within 15 %), the noise of single runs on a shared CPU
    // decides the direction: then the learned prediction must stay close (within 25 %).
    let (eb, ea) = (
        (before / measured).ln().abs(),
        (learned / measured).ln().abs(),
    );
    assert!(
        if eb > 0.15 { ea < eb } else { ea < 0.25 },
        "decode: measured {measured:.1}, predicted {before:.1} before the trial, {learned:.1} after"
    );
}

#[test]
fn trial_prefills_the_cached_prefix_once_and_restores_it_in_the_next_candidate() {
    let Some(server) = llama_server() else {
        println!("PLACER_LLAMA_BIN not set: skipping the prefix-restore test");
        return;
    };
    let env = Env::new();
    tiny_moe(env.dir.path());
    let conf = env.p("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let c = conf.display().to_string();
    let out = env.placer(&[
        "--llama",
        &server.display().to_string(),
        "--host",
        &env.p("host.toml").display().to_string(),
        "--prompt",
        "128",
        "--gen",
        "8",
        "--depth",
        "1536",
        "--max-turns",
        "2",
        "--no-baseline",
        "--no-search",
        &format!("{c}:tiny-aggressive"),
        &format!("{c}:tiny-moderate"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.assert_no_process_left();
    let mut ms = manifests(&env.p("runs"));
    ms.sort_by_key(|m| m["run_id"].as_str().unwrap_or("").to_string());
    assert_eq!(ms.len(), 2);
    let mut sources: Vec<String> = ms
        .iter()
        .map(|m| m["prefix_source"].as_str().unwrap_or("").to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, ["prefilled", "restored"], "{ms:?}");
    for m in &ms {
        let prefix = m["trial"]["workload"]["prefix"].as_u64().unwrap();
        assert!(prefix > 1000, "{m}");
        let turns: Vec<&serde_json::Value> = m["trial"]["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["what"].as_str().unwrap_or("").starts_with("workload"))
            .collect();
        assert!(!turns.is_empty(), "{m}");
        for t in turns {
            // The turn reuses the whole prefix from the slot and processes only the new chunk.
            assert!(t["cache_n"].as_u64().unwrap() >= prefix, "{t}");
            assert!(t["prompt_n"].as_u64().unwrap() <= 128 + 1, "{t}");
        }
        let restored = m["prefix_source"] == "restored";
        let has_prefix_run = m["trial"]["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["what"] == "prefix");
        assert_eq!(has_prefix_run, !restored, "{m}");
    }
    // The temporary folder of slot saves is gone with the trial.
    let left: Vec<_> = std::fs::read_dir(env.p("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("placer-trial-prefix-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
