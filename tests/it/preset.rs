//! llama-server's router preset file (`--models-preset`, src/preset.rs, docs/presets.md): every
//! corpus profile survives argv → preset section → argv; a write keeps the user's keys, comments
//! and global section; every key written is an option llama-server b11434 knows; and, with
//! `PLACER_LLAMA_BIN`, the real router reads the file and starts each model with exactly the
//! flags placer meant.

use placer::builds::BuildFacts;
use placer::modelsconf::write::NewSection;
use placer::preset;
use std::path::{Path, PathBuf};
use std::process::Command;

fn b11434() -> &'static BuildFacts {
    placer::builds::for_build(11434).unwrap().facts
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Every feasible profile of the solver-tests corpus, as (scenario-kind, launch).
fn corpus_launches() -> Vec<(String, placer::launch::LaunchConfig)> {
    let corpus: toml::Value =
        toml::from_str(&std::fs::read_to_string("solver-tests/scenarios.toml").unwrap()).unwrap();
    let cal: placer::calibrate::Calibration =
        toml::from_str(&std::fs::read_to_string("solver-tests/calibration.toml").unwrap()).unwrap();
    let mut out = Vec::new();
    for sc in corpus["scenario"].as_array().unwrap() {
        let model = sc["model"].as_str().unwrap();
        let g = placer::catalog::load_model(model, None).unwrap();
        let a = placer::anatomy::from_gguf(&g).unwrap();
        let host = placer::host::Host::by_name_or_path(sc["host"].as_str().unwrap()).unwrap();
        let kv = placer::gguf::GgmlType::from_name(sc["kv"].as_str().unwrap()).unwrap();
        let e = placer::catalog::entry(model, &placer::catalog::models_dir()).unwrap();
        let devices = sc
            .get("devices")
            .and_then(|d| d.as_array())
            .map(|d| d.iter().map(|x| x.as_integer().unwrap() as usize).collect());
        let req = placer::solver::SolveRequest {
            model_path: e.source.files[0].clone(),
            ctx: sc["ctx"].as_integer().unwrap() as u32,
            type_k: kv,
            type_v: kv,
            host_gpus: host.gpus.len(),
            devices,
            ..Default::default()
        };
        for p in placer::profile::solve_profiles(
            &a,
            &placer::host_model::HostModel::resolve(&host, &cal),
            &req,
        ) {
            if let Some(sol) = p.solution {
                out.push((
                    format!("{} {}", sc["name"].as_str().unwrap(), p.kind.name()),
                    sol.launch,
                ));
            }
        }
    }
    assert!(out.len() >= 16, "corpus profiles: {}", out.len());
    out
}

/// argv → section → argv: the same options, values and meaning (llama.cpp's long spellings).
fn round_trip(what: &str, argv: &[String], facts: &BuildFacts) {
    let text = preset::section_text("p", &["why".into()], argv, facts)
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let secs = preset::parse(&text).unwrap();
    assert_eq!(secs.len(), 1, "{what}");
    for (k, _) in &secs[0].entries {
        let (opt, negated) =
            preset::option_of_key(k, facts).unwrap_or_else(|| panic!("{what}: key {k}"));
        assert!(!negated, "{what}: {k}");
        assert_eq!(
            preset::key_of(opt),
            *k,
            "{what}: llama.cpp's to_ini spelling"
        );
    }
    let back = preset::section_argv(&secs[0], facts).unwrap();
    assert_eq!(
        back,
        preset::long_form(argv, facts).unwrap(),
        "{what}\n{text}"
    );
    facts
        .validate_argv(&back, placer::builds::Tool::Server)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // The same launch, the user's flags (kept verbatim, so compared as words) in llama.cpp's
    // long spelling.
    let tool = placer::launch::Tool::Server;
    let mut want = placer::launch::parse_args(tool, argv).unwrap();
    want.passthrough = preset::long_form(&want.passthrough, facts).unwrap();
    assert_eq!(
        placer::launch::parse_args(tool, &back).unwrap(),
        want,
        "{what}: the launch read back differs\n{text}"
    );
}

#[test]
fn every_corpus_profile_round_trips() {
    let facts = b11434();
    for (what, mut launch) in corpus_launches() {
        launch.model = "/models/x.gguf".into();
        let argv = placer::emit::argv_for(&launch, facts).argv;
        round_trip(&what, &argv, facts);
        // With the user's own flags kept verbatim beside placer's.
        launch.passthrough = s(&[
            "--jinja",
            "--temp",
            "0.6",
            "--no-context-shift",
            "-a",
            "glm,fast",
        ]);
        let argv = placer::emit::argv_for(&launch, facts).argv;
        round_trip(&format!("{what} + user flags"), &argv, facts);
    }
}

const FILE: &str = "; my router presets\r\n\
version = 1\r\n\
\r\n\
[*]\r\n\
# every model\r\n\
jinja = true\r\n\
LLAMA_ARG_THREADS = 8 ; comment after a value\r\n\
\r\n\
[mine]\r\n\
model = /m/mine.gguf\r\n\
temp = 0.7\r\n\
\r\n\
# notes on the old profile\r\n\
[glm-q8-aggressive]\r\n\
model = /m/old.gguf\r\n\
n-gpu-layers = 10\r\n\
alias = glm-fast\r\n\
load-on-startup = true\r\n\
temp = 0.6\r\n\
; tail comment\r\n\
\r\n\
[after]\r\n\
model = /m/after.gguf\r\n";

fn new_section() -> NewSection {
    let argv = s(&[
        "-m",
        "/m/glm.gguf",
        "-c",
        "131072",
        "-ngl",
        "48",
        "-ot",
        "blk\\.(2[89]|3[0-2])\\.ffn_(down|gate|up)_exps\\.=CPU",
        "--fit",
        "off",
    ]);
    NewSection {
        name: "glm-q8-aggressive".into(),
        text: preset::section_text(
            "glm-q8-aggressive",
            &["placer solve".into()],
            &argv,
            b11434(),
        )
        .unwrap(),
    }
}

#[test]
fn comments_global_and_other_sections_kept_byte_for_byte() {
    let (out, notes) = preset::upsert(FILE, &[new_section()], b11434());
    assert!(notes.is_empty(), "{notes:?}");
    let head = FILE.split("# notes on the old profile").next().unwrap();
    assert!(out.starts_with(head), "{out}");
    assert!(
        out.ends_with("\r\n\r\n[after]\r\nmodel = /m/after.gguf\r\n"),
        "{out}"
    );
    // The file's CRLF endings throughout; the old section is history (comments to llama.cpp).
    assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
    assert!(out.contains("# [glm-q8-aggressive]\r\n# model = /m/old.gguf\r\n"));
    let secs = preset::parse(&out).unwrap();
    let names: Vec<&str> = secs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["default", "*", "mine", "glm-q8-aggressive", "after"],
        "{out}"
    );
    // Written again: nothing changes.
    let (again, _) = preset::upsert(&out, &[new_section()], b11434());
    assert_eq!(again, out);
}

#[test]
fn users_keys_of_a_replaced_section_are_carried() {
    let (out, _) = preset::upsert(FILE, &[new_section()], b11434());
    let secs = preset::parse(&out).unwrap();
    let sec = preset::effective(&secs, "glm-q8-aggressive").unwrap();
    let get = |k: &str| {
        sec.entries
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.as_str())
    };
    // placer's own options replaced …
    assert_eq!(get("model"), Some("/m/glm.gguf"));
    assert_eq!(get("n-gpu-layers"), Some("48"));
    // … the user's kept, in their spelling.
    assert_eq!(get("alias"), Some("glm-fast"));
    assert_eq!(get("load-on-startup"), Some("true"));
    assert_eq!(get("temp"), Some("0.6"));
    assert!(!preset::placer_decides("temp", "0.6", b11434()));
    assert!(preset::placer_decides("override-tensor", "x=CPU", b11434()));
    assert!(preset::placer_decides("LLAMA_ARG_CTX_SIZE", "8", b11434()));
}

#[test]
fn a_value_the_format_cannot_carry_is_refused() {
    for (argv, why) in [
        (s(&["--samplers", "top_k;top_p"]), "`#` or `;`"),
        (s(&["-c", "8", "--ctx-size", "9"]), "given twice"),
        (s(&["--jinja", "--no-such"]), "not an option"),
    ] {
        let e = preset::section_text("x", &[], &argv, b11434()).unwrap_err();
        assert!(format!("{e:#}").contains(why), "{e:#}");
    }
}

/// `placer solve … --write-preset F` twice (two models), the file then read with the option
/// table of llama-server b11434: every key is one of its options (or a preset-only key).
fn write_with_cli(dir: &Path) -> PathBuf {
    let f = dir.join("presets.ini");
    std::fs::write(&f, "; mine\n[*]\nctx-size = 4096\n").unwrap();
    for (model, ctx) in [("glm-q8", "131072"), ("qwen3-30b-a3b-q8", "32768")] {
        let out = Command::new(env!("CARGO_BIN_EXE_placer"))
            .args(["solve", model, "--ctx", ctx, "--host", "users-4090-5070ti"])
            .args(["--llama-build", "11434", "--no-oracle", "--write-preset"])
            .arg(&f)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("llama-server --models-preset"), "{err}");
    }
    f
}

#[test]
fn written_file_passes_llama_server_b11434s_option_table() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_with_cli(dir.path());
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(
        text.starts_with("; mine\n[*]\nctx-size = 4096\n\n"),
        "{text}"
    );
    let secs = preset::parse(&text).unwrap();
    let facts = b11434();
    let ours: Vec<_> = secs.iter().filter(|s| s.name.contains('-')).collect();
    assert_eq!(ours.len(), 4, "{text}");
    for sec in ours {
        for (k, _) in &sec.entries {
            assert!(
                preset::option_of_key(k, facts).is_some(),
                "[{}] {k}: not an option of llama-server b11434",
                sec.name
            );
        }
        let argv = preset::section_argv(sec, facts).unwrap();
        facts
            .validate_argv(&argv, placer::builds::Tool::Server)
            .unwrap_or_else(|e| panic!("[{}]: {e}", sec.name));
        assert!(argv.windows(2).any(|w| w == ["--fit", "off"]), "{argv:?}");
    }
}

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

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        c,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    c.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// (option, value) pairs of an argv, order left out (the router orders options by their first
/// name: common/preset.cpp: common_preset::to_args iterates a std::map<common_arg, …>).
fn pairs(argv: &[String], facts: &BuildFacts) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].clone();
        i += 1;
        let opt = facts
            .option_for(&flag, placer::builds::Tool::Server)
            .unwrap_or_else(|| panic!("{flag}"));
        let mut v = None;
        if opt.takes_value() && !opt.negated.contains(&flag) {
            v = argv.get(i).cloned();
            i += 1;
        }
        out.push((flag, v));
    }
    out.sort();
    out
}

/// The router of llama-server b11434 reads the written file (no model is loaded, no GPU needed)
/// and lists each profile with the argv it would start it with (`GET /models`, `status.args`).
#[test]
fn llama_server_router_reads_the_written_file() {
    let Some(server) = llama_server() else {
        println!("PLACER_LLAMA_BIN not set: skipping the llama-server preset test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let f = write_with_cli(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("router.log")).unwrap();
    let mut child = Command::new(&server)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--models-preset")
        .arg(&f)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut body = None;
    for _ in 0..100 {
        if let Some(b) = http_get(port, "/models") {
            body = Some(b);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("router.log")).unwrap_or_default();
    let body = body.unwrap_or_else(|| panic!("the router did not list the models:\n{log}"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let facts = b11434();
    let text = std::fs::read_to_string(&f).unwrap();
    let secs = preset::parse(&text).unwrap();
    let global = preset::effective(&secs, "*").unwrap();
    let mut seen = 0;
    for m in json["data"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let sec = preset::effective(&secs, id).unwrap();
        let args: Vec<String> = m["status"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        // What the router adds (server-models.cpp: server_model_meta::update_args) …
        let mut got = Vec::new();
        let mut i = 0;
        while i < args.len() {
            if ["--host", "--port", "--alias", "--log-colors"].contains(&args[i].as_str()) {
                i += 2;
                continue;
            }
            got.push(args[i].clone());
            i += 1;
        }
        // … and the global section under the model's own keys (cascade, then merge).
        let mut merged = global.clone();
        merged.entries.extend(sec.entries.iter().cloned());
        let want = preset::section_argv(&merged, facts).unwrap();
        assert_eq!(pairs(&got, facts), pairs(&want, facts), "[{id}]\n{log}");
        seen += 1;
    }
    assert_eq!(seen, 4, "{body}");
}
