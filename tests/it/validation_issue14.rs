//! Issue 14, the validation half: one test per finding (7, 8, 10, 12, 13), each failing before
//! the fix. What is validated where: docs/validation.md.

use placer::anatomy::from_gguf;
use placer::gguf::MetaValue;
use placer::host::Host;
use placer::launch::{parse_args_full, Tool};
use std::process::Command;

fn placer_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HOST: &str = r#"
name = "t"
[[gpus]]
model = "RTX 4090"
total_mib = 24576
usable_mib = 24000
bandwidth_gbs = 1008.0
pcie_gbs = 31.5
[ram]
total_mib = 65536
usable_mib = 61440
bandwidth_gbs = 51.2
"#;

fn host_with(from: &str, to: &str) -> anyhow::Result<Host> {
    assert!(HOST.contains(from), "{from}");
    Host::from_toml(&HOST.replacen(from, to, 1), "my-host.toml")
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

// ---- finding 7: host files ----

#[test]
fn finding_7_ram_bandwidth_zero_is_refused_with_the_fix() {
    assert!(host_with("", "").is_ok());
    let e = host_with("bandwidth_gbs = 51.2", "bandwidth_gbs = 0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("my-host.toml"), "{e}");
    assert!(e.contains("[ram] bandwidth_gbs"), "{e}");
    assert!(e.contains("placer host detect"), "{e}");
    // A missing key is the same error (what `host detect --no-measure-ram` now leaves).
    let e = host_with("bandwidth_gbs = 51.2", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("[ram] bandwidth_gbs"), "{e}");
}

#[test]
fn finding_7_gpu_bandwidth_zero_nan_inf_are_refused() {
    for bad in ["0.0", "nan", "inf", "-5.0", "1e300"] {
        let e = host_with("bandwidth_gbs = 1008.0", &format!("bandwidth_gbs = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[[gpus]] #1") && e.contains("bandwidth_gbs"),
            "{bad}: {e}"
        );
    }
    let e = host_with("pcie_gbs = 31.5", "pcie_gbs = nan")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pcie_gbs"), "{e}");
}

#[test]
fn finding_7_sizes_near_2_pow_63_and_usable_above_total_are_refused() {
    let huge = (1u64 << 62).to_string();
    let e = host_with("usable_mib = 24000", &format!("usable_mib = {huge}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 PiB") || e.contains("beyond"), "{e}");
    let e = host_with("total_mib = 65536", &format!("total_mib = {huge}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[ram] total_mib"), "{e}");
    let e = host_with("usable_mib = 24000", "usable_mib = 30000")
        .unwrap_err()
        .to_string();
    assert!(e.contains("usable_mib 30000 > total_mib 24576"), "{e}");
}

#[test]
fn finding_7_host_detect_never_writes_zero_bandwidth() {
    let mut h: Host = toml::from_str(HOST).unwrap();
    h.ram.bandwidth_gbs = 0.0;
    h.gpus[0].pcie_gbs = 0.0;
    let text = placer::cli::host::unmeasured_as_comments(&h.to_toml());
    assert!(!text.contains("= 0.0"), "{text}");
    assert!(text.contains("# bandwidth_gbs = ?"), "{text}");
    // The file reads back with a message saying what to fill in, not a 160 t/s CPU.
    let e = Host::from_toml(&text, "detected.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pcie_gbs") || e.contains("bandwidth_gbs"), "{e}");
}

#[test]
fn finding_7_shipped_hosts_are_valid() {
    for (name, text) in placer::host::BUILTIN_HOSTS {
        Host::from_toml(text, name).unwrap();
    }
}

// ---- finding 8: -c and the other integer flags, as llama.cpp's std::stoi reads them ----

#[test]
fn finding_8_ctx_above_int32_is_an_error_not_zero() {
    for v in [
        "4294967041", // padded to 256 cells, this wrapped to n_ctx 0
        "4294967296",
        "4294967040",
        "2147483648",
        "99999999999999999999",
    ] {
        let e = parse_args_full(Tool::Server, &args(&format!("-m m -c {v}")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("out of range") && e.contains("signed 32-bit"),
            "{v}: {e}"
        );
    }
    let ok = parse_args_full(Tool::Server, &args("-m m -c 2147483647")).unwrap();
    assert_eq!(ok.config.ctx, i32::MAX as u32);
    assert!(parse_args_full(Tool::Server, &args("-m m -c -1")).is_err());
}

#[test]
fn finding_8_integer_flags_follow_stoi() {
    for a in [
        "-ub 4294967296",
        "-b 4294967297",
        "-np 4294967297",
        "-ngl 99999999999",
        "-ncmoe 2147483648",
        "-mg 4294967296",
    ] {
        let e = parse_args_full(Tool::Server, &args(&format!("-m m {a}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{a}: {e}");
    }
    // std::stoi reads the leading number and ignores the rest: llama.cpp runs with 4, not 4096.
    let p = parse_args_full(Tool::Server, &args("-m m -c 4k")).unwrap();
    assert_eq!(p.config.ctx, 4);
    assert!(
        p.warnings.iter().any(|w| w.contains("as 4")),
        "{:?}",
        p.warnings
    );
    // No digits at all: llama.cpp's invalid_argument.
    assert!(parse_args_full(Tool::Server, &args("-m m -c k4")).is_err());
    // n_seq_max must be <= LLAMA_MAX_SEQ (256).
    assert!(parse_args_full(Tool::Cli, &args("-m m -np 256")).is_ok());
    let e = parse_args_full(Tool::Cli, &args("-m m -np 257"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("<= 256"), "{e}");
}

// ---- finding 10: GGUF hyperparameters ----

fn qwen3moe() -> placer::gguf::GgufModel {
    placer::catalog::load_model("qwen3-30b-a3b-q8", None).unwrap()
}

fn refused(m: &placer::gguf::GgufModel) -> String {
    format!("{:#}", from_gguf(m).unwrap_err())
}

#[test]
fn finding_10_zero_heads_embedding_experts_are_refused() {
    assert!(from_gguf(&qwen3moe()).is_ok());
    let cases: &[(&str, MetaValue, &str)] = &[
        (
            "qwen3moe.attention.head_count",
            MetaValue::U32(0),
            "head_count",
        ),
        (
            "qwen3moe.embedding_length",
            MetaValue::U32(0),
            "embedding_length",
        ),
        (
            "qwen3moe.expert_count",
            MetaValue::U32(0),
            "expert_used_count",
        ),
        (
            "qwen3moe.expert_used_count",
            MetaValue::U32(0),
            "expert_used_count is 0",
        ),
        (
            "qwen3moe.expert_used_count",
            MetaValue::U32(200),
            "exceeds expert_count",
        ),
        (
            "qwen3moe.expert_count",
            MetaValue::U32(5000),
            "LLAMA_MAX_EXPERTS",
        ),
        (
            "qwen3moe.context_length",
            MetaValue::U32(u32::MAX),
            "context_length",
        ),
    ];
    for (key, v, want) in cases {
        let mut m = qwen3moe();
        m.metadata.set(key, v.clone());
        let e = refused(&m);
        assert!(e.contains(want), "{key} = {v:?}: {e}");
    }
}

#[test]
fn finding_10_kv_lora_rank_near_2_pow_32_does_not_wrap() {
    let mut m = crate::anatomy_archs::deepseek2();
    assert!(from_gguf(&m).is_ok());
    m.metadata
        .set("deepseek2.attention.kv_lora_rank", MetaValue::U32(u32::MAX));
    let e = refused(&m);
    assert!(
        e.contains("kv_lora_rank") && e.contains("attn_kv_a_mqa"),
        "{e}"
    );
    let mla = placer::anatomy::Mla {
        kv_lora_rank: u32::MAX,
        rope_dim: 64,
    };
    assert_eq!(mla.k_width(), u32::MAX as u64 + 64);
}

#[test]
fn finding_10_truncated_download_is_header_only_size_unknown() {
    // A real GGUF header without its data and without placer.file_size (what a cut download
    // looks like): its declared tensor data must not be presented as the file's size.
    let gz = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gguf/gemma-3-270m-q4_k_m.header.gguf.gz"),
    )
    .unwrap();
    let (bytes, _) = placer::logs::decode_bytes(&gz).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemma-3-270m-Q4_K_M.gguf");
    std::fs::write(&path, &bytes).unwrap();
    let m = placer::gguf::open(&path).unwrap();
    assert!(m.metadata.get("placer.file_size").is_none());
    assert_eq!(m.incomplete_shards().len(), 1);
    let a = from_gguf(&m).unwrap();
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("header only, size unknown")),
        "{:?}",
        a.warnings
    );
    let r = placer::cli::inspect::report(&m).unwrap();
    let text = placer::cli::inspect::render(&r);
    assert!(text.contains("header only: size unknown"), "{text}");
    // A snapshot that records the real size is complete.
    assert!(qwen3moe().incomplete_shards().is_empty());
}

// ---- finding 12: one -np rule; binaries and UTF-16 logs ----

#[test]
fn finding_12_solve_parallel_0_is_refused_like_check() {
    let (code, _, err) = placer_cmd(&[
        "solve",
        "qwen3-30b-a3b-q8",
        "--ctx",
        "4096",
        "--parallel",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value for n_parallel"), "{err}");
    let (code, _, err) = placer_cmd(&["solve", "qwen3-30b-a3b-q8", "--ctx", "4294967296"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("out of range"), "{err}");
    let (code, _, err) = placer_cmd(&["solve", "qwen3-30b-a3b-q8", "--ctx", "3000000000"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn finding_12_the_placer_binary_is_not_a_calibration_log() {
    let e = placer::logs::parse_path(std::path::Path::new(env!("CARGO_BIN_EXE_placer")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a text log") && e.contains("ELF"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn finding_12_utf16_logs_are_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs");
    for name in ["load_oom.log", "server_jsonl.log", "bench.md"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let utf8 = placer::logs::parse_bytes(name, text.as_bytes()).unwrap();
        // PowerShell's `>`: UTF-16 LE with a BOM, CRLF line ends.
        let le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                text.replace('\n', "\r\n")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        let utf16 = placer::logs::parse_bytes(name, &le).unwrap();
        assert_eq!(utf16.buffers, utf8.buffers, "{name}");
        assert_eq!(utf16.n_ctx, utf8.n_ctx, "{name}");
        assert_eq!(utf16.oom, utf8.oom, "{name}");
    }
}

// ---- finding 13: error texts ----

#[test]
fn finding_13_flipped_key_length_prints_no_binary() {
    let mut b = std::fs::read(placer::catalog::snapshot_path(
        "qwen3-30b-a3b-q8",
        &placer::catalog::models_dir(),
    ))
    .unwrap();
    // The first key's length (after magic, version, n_tensors, n_kv): 28 KB of whatever follows.
    b[24..32].copy_from_slice(&28_000u64.to_le_bytes());
    let e = placer::gguf::read_header(&b[..]).unwrap_err().to_string();
    assert!(e.len() < 400, "{} bytes: {e:?}", e.len());
    assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
}

#[test]
fn finding_13_bad_magic_is_text_and_hex() {
    let mut b = b"GGUL".to_vec();
    b.extend_from_slice(&[3, 0, 0, 0]);
    let e = placer::gguf::read_header(&b[..]).unwrap_err().to_string();
    assert!(e.contains("\"GGUL\" (47 47 55 4c)"), "{e}");
    assert!(!e.contains("[71, 71, 85, 76]"), "{e}");
}

#[test]
fn finding_13_gguf_path_hint_only_without_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUL\x03\0\0\0").unwrap();
    let (code, _, err) = placer_cmd(&["check", "--", "-m", bad.to_str().unwrap(), "-c", "4096"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a GGUF file"), "{err}");
    assert!(!err.contains("give a .gguf path"), "{err}");
    let (code, _, err) = placer_cmd(&["check", "--", "-m", "no-such-model", "-c", "4096"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("give a .gguf path"), "{err}");
}

#[test]
fn finding_13_os_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("model.gguf");
    std::fs::create_dir(&d).unwrap();
    let e = format!(
        "{:#}",
        anyhow::Error::from(placer::gguf::open(&d).unwrap_err())
    );
    assert!(e.contains("is a directory"), "{e}");
    assert!(e.matches("os error").count() <= 1, "{e}");
    let e = format!(
        "{:#}",
        anyhow::Error::from(placer::gguf::open(&dir.path().join("missing.gguf")).unwrap_err())
    );
    assert_eq!(e.matches("os error").count(), 1, "{e}");
}

#[test]
fn finding_13_usable_memory_zero_names_the_host_file() {
    let e = host_with("usable_mib = 24000", "usable_mib = 0")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("my-host.toml") && e.contains("usable_mib = 0"),
        "{e}"
    );
    assert!(!e.contains("-ub"), "{e}");
}

/// Found by fuzz_argv (tests/fixtures/fuzz/argv/crash-ncmoe-int32-max.txt): `-ncmoe` near
/// i32::MAX built one `-ot` rule per layer up to 2^31 (an abort on a 103 GB allocation).
#[test]
fn fuzz_found_ncmoe_int32_max_is_capped_at_llama_max_layers() {
    let p = parse_args_full(Tool::Server, &args("-m m --n-cpu-moe 2147483647")).unwrap();
    assert_eq!(p.config.overrides.len(), 512);
    assert!(p.warnings.iter().any(|w| w.contains("LLAMA_MAX_LAYERS")));
}
