//! `placer check`: the table people read (insta snapshot), models.conf sections, bad input.

use placer::anatomy::from_gguf;
use placer::calibrate::Calibration;
use placer::check::{check, render};
use placer::host::{default_host, Host};
use placer::launch::{from_section, parse_args_full, Tool};
use placer::modelsconf::read;
use std::process::Command;

/// Calibration with fixed numbers so the snapshot does not move when data/ is refitted.
fn fixed_calibration() -> Calibration {
    let mut c = Calibration::shipped();
    c.n_runs = 1;
    for g in &mut c.gpus {
        g.overhead_mib = 700.0;
    }
    c.compute.moe_scale = 1.0;
    c.compute.fixed_mib = 0.0;
    c
}

fn table(host: &Host, args: &str) -> String {
    let g = placer::catalog::load_model("qwen3-30b-a3b-q8", None).unwrap();
    let a = from_gguf(&g).unwrap();
    let argv: Vec<String> = args.split_whitespace().map(String::from).collect();
    let p = parse_args_full(Tool::Server, &argv).unwrap();
    let r = check(
        &a,
        &p.config,
        &placer::host_model::HostModel::resolve(host, &fixed_calibration()),
        p.warnings,
    )
    .unwrap();
    render(&r)
}

#[test]
fn table_for_the_users_manual_split() {
    let t = table(
        &default_host(),
        r"-m qwen3-30b-a3b-q8 -c 65536 -ngl 99 --fit off -ot blk\.([0-9]|1[0-9])\.=CUDA0,blk\.(2[0-9])\.=CUDA1,exps=CPU",
    );
    insta::assert_snapshot!(t);
}

#[test]
fn table_for_an_oom() {
    let t = table(
        &default_host(),
        "-m qwen3-30b-a3b-q8 -c 131072 -sm none -mg 1 -fit off",
    );
    assert!(t.contains("verdict: OOM on CUDA1"), "{t}");
    assert!(t.contains("model load"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn pitfalls_are_warned_about() {
    let h = default_host();
    let t = table(
        &h,
        "-m qwen3-30b-a3b-q8 -c 8192 -ngl 99 -b 2048 -ub 2048 -ot nothing_matches_this=CPU",
    );
    assert!(t.contains("-ub 2048 equals -b 2048"), "{t}");
    assert!(t.contains("--fit on with a fixed -ngl"), "{t}");
    assert!(t.contains("matches no tensor"), "{t}");
    // Experts on CPU although everything fits on a big GPU.
    let big = Host::by_name_or_path("bench-8x3090").unwrap();
    let t = table(&big, "-m qwen3-30b-a3b-q8 -c 8192 --cpu-moe -fit off");
    assert!(t.contains("routed experts are on the CPU although"), "{t}");
}

#[test]
fn models_conf_sections() {
    let conf = "# production\n[glm]\nMODEL=GLM/x.gguf\nCTX_SIZE=131072\nN_GPU_LAYERS=99\nFIT=off\n\
                EXTRA_ARGS=--jinja -np 1 -ot blk\\.([0-9]|1[0-4])\\.=CUDA0,exps=CPU --temp 1.0\n\n\
                #[old]\n#MODEL=y\n[bench-glm]\nMODEL=z.gguf\n";
    let secs = read::parse(conf);
    assert_eq!(
        secs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["glm", "bench-glm"]
    );
    let p = from_section(&secs[0]).unwrap();
    let c = p.config;
    assert_eq!(c.model, "GLM/x.gguf");
    assert_eq!(c.ctx, 131072);
    assert!(!c.fit);
    assert_eq!(c.n_parallel, Some(1));
    assert_eq!(c.overrides.len(), 2);
    assert_eq!(c.overrides[0].pattern, r"blk\.([0-9]|1[0-4])\.");
    assert_eq!(c.passthrough, vec!["--jinja", "--temp", "1.0"]);
    let err = read::find(conf, "nope").unwrap_err().to_string();
    assert!(
        err.contains("no section [nope]") && err.contains("glm, bench-glm"),
        "{err}"
    );
}

/// Exit codes are documented in src/cli/mod.rs: 0 fits, 1 does not fit, 2 bad input.
#[test]
fn exit_codes_tell_fits_from_oom_from_bad_input() {
    let code = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_placer"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
            .status
            .code()
    };
    let check = |ctx: &str| code(&["check", "--", "-m", "glm-q8", "-c", ctx, "-ngl", "99"]);
    assert_eq!(check("8192"), Some(0));
    assert_eq!(check("131072"), Some(1));
    assert_eq!(code(&["check", "--", "-m", "no-such-model"]), Some(2));
    assert_eq!(code(&["solve", "glm-q8", "--ctx", "8192"]), Some(0));
    assert_eq!(
        code(&["solve", "glm-q8", "--ctx", "8192", "--host", "no-such-host"]),
        Some(2)
    );
}

fn placer(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn cli_answers_bad_input_clearly() {
    let (ok, out) = placer(&["check", "--", "-m", "qwen3-30b-a3b-q8", "-ot", "exps=CUDA7"]);
    assert!(
        !ok && out.contains("unknown buffer type \"CUDA7\"") && out.contains("CUDA0, CUDA1, CPU"),
        "{out}"
    );
    let (ok, out) = placer(&["check", "--", "-m", "qwen3-30b-a3b-q8", "-dev", "CUDA2"]);
    assert!(!ok && out.contains("no such device"), "{out}");
    let (ok, out) = placer(&["check", "--", "-m", "qwen3-30b-a3b-q8", "-fa", "maybe"]);
    assert!(!ok && out.contains("llama.cpp accepts on"), "{out}");
    let (ok, out) = placer(&["check", "--", "-m", "qwen3-30b-a3b-q8", "-ctk", "q3_K"]);
    assert!(!ok && out.contains("q8_0, q4_0"), "{out}");
    let (ok, out) = placer(&["check", "--host", "nowhere", "--", "-m", "qwen3-30b-a3b-q8"]);
    assert!(!ok && out.contains("unknown host"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, "[a]\nMODEL=qwen3-30b-a3b-q8\n").unwrap();
    let (ok, out) = placer(&["check", &format!("{}:b", conf.display())]);
    assert!(!ok && out.contains("no section [b]"), "{out}");
    let (ok, out) = placer(&["check", "--json", &format!("{}:a", conf.display())]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["prediction"]["gpus"].as_array().unwrap().len() == 2);
    let (ok, out) = placer(&[
        "check",
        "--",
        "llama-server",
        "-m",
        "qwen3-30b-a3b-q8",
        "-c",
        "4096",
        "-fit",
        "off",
    ]);
    assert!(ok && out.contains("verdict:"), "{out}");
}

#[test]
fn solve_refuses_a_workload_longer_than_the_context() {
    let (ok, out) = placer(&["solve", "glm-q8", "--ctx", "32768", "--gen", "100000"]);
    assert!(
        !ok && out.contains("--gen 100000 does not fit in --ctx 32768")
            && out.contains("--gen 16384"),
        "{out}"
    );
    let (ok, out) = placer(&[
        "solve", "glm-q8", "--ctx", "32768", "--prompt", "32000", "--gen", "1000",
    ]);
    assert!(
        !ok && out.contains("use --prompt 31768 or less, or --ctx 33792 or more"),
        "{out}"
    );
}

#[test]
fn an_oom_says_what_fits_instead() {
    let glm_at = |ctx: u32| {
        placer(&[
            "check",
            "--",
            "llama-server",
            "-m",
            "glm-q8",
            "-c",
            &ctx.to_string(),
            "-ngl",
            "99",
        ])
    };
    let (ok, out) = glm_at(131072);
    // An OOM verdict is an answer, not an error: the report is printed and the exit code is 1.
    assert!(!ok, "an OOM verdict exits non-zero: {out}");
    assert!(!out.contains("error:"), "{out}");
    assert!(out.contains("verdict: OOM on CUDA0"), "{out}");
    // Each suggestion is itself checked: the context found must fit and the next step must not.
    let c: u32 = out
        .split("fits with: -c ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no context suggestion: {out}"));
    let verdict = |ctx: u32| {
        let (_, o) = glm_at(ctx);
        o.lines()
            .find(|l| l.starts_with("verdict:"))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(verdict(c), "verdict: fits");
    assert!(verdict(c + 256).contains("OOM"));
    assert!(out.contains("fits with: -ctk q8_0 -ctv q8_0"), "{out}");
    assert!(
        out.contains("or run: placer solve glm-q8 --ctx 131072 --host users-4090-5070ti"),
        "{out}"
    );
}

/// `check` on the flags `solve` emitted predicts what `solve` printed for them: one speed model,
/// one placement resolution (the check re-derives the placement from the flags alone).
#[test]
fn check_predicts_the_speed_solve_printed_for_its_own_flags() {
    let host = "hardware/testbed-h100-24gb.toml";
    let (ok, out) = placer(&[
        "solve",
        "glm-q8",
        "--host",
        host,
        "--ctx",
        "32768",
        "--prompt",
        "15000",
        "--tool",
        "llama-completion",
        "--json",
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for prof in v["profiles"].as_array().unwrap() {
        let mut argv: Vec<String> = prof["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let m = argv.iter().position(|a| a == "-m").unwrap();
        argv[m + 1] = "glm-q8".into();
        let mut args = vec![
            "check",
            "--json",
            "--host",
            host,
            "--prompt",
            "15000",
            "--",
            "llama-completion",
        ];
        args.extend(argv.iter().map(String::as_str));
        let (ok, out) = placer(&args);
        assert!(ok, "{out}");
        let c: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want = prof["solution"]["decode_tps"].as_f64().unwrap();
        let got = c["speed"]["decode_tps"]
            .as_f64()
            .unwrap_or_else(|| panic!("no speed in check: {out}"));
        assert!(
            (got - want).abs() <= 0.01 * want,
            "{}: check {got:.2} t/s, solve {want:.2}",
            prof["kind"]
        );
        let want = prof["solution"]["prefill_tps"].as_f64().unwrap();
        let got = c["speed"]["prefill_tps"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 0.01 * want,
            "prefill: {got} vs {want}"
        );
    }
}

/// A command left to `--fit` is checked with what `--fit` would choose: the shared reference run
/// (Qwen3-30B-A3B Q8_0, 24,000 + 12,800 MiB, -c 65536) logged `-ngl 49 -ts 29,20`.
#[test]
fn a_command_left_to_fit_shows_what_fit_would_choose() {
    let (ok, out) = placer(&[
        "check",
        "--host",
        "testbed-h200x2-emulated",
        "--",
        "llama-completion",
        "-m",
        "qwen3-30b-a3b-q8",
        "-c",
        "65536",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("--fit would choose: -ngl 49 -ts 29,20"),
        "{out}"
    );
    assert!(out.contains("verdict: fits"), "{out}");
}

/// `check models.conf:SECTION --llama-build N`: the words after a section are placer's options
/// (a section is the whole llama.cpp command); a llama.cpp flag there is named as the culprit.
#[test]
fn options_after_a_section_are_placers_and_a_stray_flag_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, "[s]\nMODEL=qwen3-30b-a3b-q8\nCTX_SIZE=8192\n").unwrap();
    let spec = format!("{}:s", conf.display());
    let (ok, out) = placer(&["check", &spec, "--llama-build", "11434", "--no-oracle"]);
    assert!(ok, "{out}");
    assert!(out.contains("verdict"), "{out}");
    let (ok, out) = placer(&["check", &spec, "-ngl", "99"]);
    assert!(!ok, "{out}");
    assert!(out.contains("\"-ngl\" after"), "{out}");
    assert!(out.contains("EXTRA_ARGS"), "{out}");
    assert!(!out.contains("not an option of server"), "{out}");
}
