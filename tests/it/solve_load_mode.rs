//! `-lm none` (CPU weights in pinned host memory, solver `prefer_pinned`): emitted when op offload
//! streams CPU weights and host RAM holds them (the exact host row then keeps the RAM margin), never
//! when nothing streams.

use std::process::Command;

fn solve(model: &str, ctx: u32, host: Option<&std::path::Path>) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_placer"));
    cmd.args(["solve", model, "--ctx", &ctx.to_string(), "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(h) = host {
        cmd.arg("--host").arg(h);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each feasible profile's argv, as strings.
fn argvs(v: &serde_json::Value) -> Vec<Vec<String>> {
    v["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["solution"].is_object())
        .map(|p| {
            p["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn pinned(argv: &[String]) -> bool {
    argv.windows(2).any(|w| w[0] == "-lm" && w[1] == "none")
}

#[test]
fn streamed_cpu_experts_are_pinned_on_the_users_host() {
    // GLM-4.7-Flash Q8_0 at 128K does not fit the two GPUs: experts of some layers stay on the CPU.
    let v = solve("glm-q8", 131072, None);
    let a = argvs(&v);
    assert_eq!(a.len(), 2);
    for argv in &a {
        assert!(argv.iter().any(|x| x == "-ot"), "{argv:?}");
        assert!(pinned(argv), "{argv:?}");
    }
}

#[test]
fn nothing_streamed_nothing_pinned() {
    // gpt-oss-20b at 32K fits on the 4090: no CPU weight but the embeddings, nothing to copy.
    for argv in argvs(&solve("gpt-oss-20b", 32768, None)) {
        assert!(!pinned(&argv), "{argv:?}");
    }
}

#[test]
fn pinned_weights_stay_within_host_ram() {
    // The users' host with 8 GiB of RAM: just enough for GLM's CPU experts at 128K. Whatever the
    // solver emits, the host row it predicts (pinned weights + host compute) keeps the RAM margin.
    let users = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware/users-4090-5070ti.toml"),
    )
    .unwrap();
    let head = users.split("[ram]").next().unwrap();
    let host = format!(
        "{head}[ram]\ntotal_mib = 8192\nusable_mib = 7680\nbandwidth_gbs = 51.2\nsource = \"test\"\n"
    );
    let dir = std::env::temp_dir().join(format!("placer-lm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("small-ram.toml");
    std::fs::write(&path, host).unwrap();
    let v = solve("glm-q8", 131072, Some(&path));
    let mut checked = 0;
    for p in v["profiles"].as_array().unwrap() {
        let Some(sol) = p["solution"].as_object() else {
            continue;
        };
        let cpu = sol["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == "Cpu")
            .unwrap();
        let used: u64 = ["weights", "kv", "compute", "overhead"]
            .iter()
            .map(|k| cpu[*k].as_u64().unwrap())
            .sum();
        assert!(
            used + cpu["margin"].as_u64().unwrap() <= cpu["cap"].as_u64().unwrap(),
            "{cpu}"
        );
        checked += 1;
    }
    assert!(checked > 0, "no profile fits 8 GiB of RAM: {v}");
}

/// `--llama-build N`: the profiles are written in that build's options (b8022 and b9093 have no
/// `--load-mode`, so pinned host weights are asked for with `--no-mmap`), and the report says
/// which build's table was used.
#[test]
fn solve_speaks_the_target_builds_language() {
    for (build, pinned) in [
        (8022, "--no-mmap"),
        (9093, "--no-mmap"),
        (11434, "-lm none"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_placer"))
            .args(["solve", "qwen3-30b-a3b-q8", "--ctx", "32768"])
            .args(["--llama-build", &build.to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(&format!("flags for: llama.cpp b{build} option table")),
            "{text}"
        );
        let facts = placer::builds::for_build(build).unwrap().facts;
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("llama-server "))
        {
            let words = placer::launch::split_words(line.trim()).unwrap();
            facts
                .validate_argv(&words[1..], placer::builds::Tool::Server)
                .unwrap_or_else(|e| panic!("b{build}: {e}: {line}"));
            if line.contains("CPU") {
                assert!(line.contains(pinned), "b{build}: {line}");
            }
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(["solve", "glm-q8", "--ctx", "8192", "--llama-build", "7000"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("older than every supported build table"),
        "{err}"
    );
}
