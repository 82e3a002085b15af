//! Mangled copies of real logs, generated here: cut at many points, gzip cut short, lines of two
//! logs interleaved, latin-1 bytes, CRLF, foreign prefixes and colours. The reader must never
//! panic, must flag what is cut short, and must read the same values through harmless changes.

use placer::logs::{decode_bytes, parse_bytes, LogRun};
use proptest::prelude::*;
use std::io::Write;
use std::path::PathBuf;

fn reference(name: &str) -> Option<Vec<u8>> {
    let dirs = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reference-runs/2026-11-23-qwen3moe-h200x2"),
    ];
    let dir = dirs.into_iter().find(|p| p.is_dir())?;
    let raw = std::fs::read(dir.join(name)).ok()?;
    Some(decode_bytes(&raw).ok()?.0)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/logs")
            .join(name),
    )
    .unwrap()
}

/// The values that matter for calibration; `source` and warnings may differ.
fn essence(r: &LogRun) -> String {
    let mut r = r.clone();
    r.source.clear();
    r.warnings.clear();
    r.model_path = None;
    serde_json::to_string(&r).unwrap()
}

/// Deterministic pseudo-random cut points (no RNG crate needed).
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[test]
fn truncated_at_random_points() {
    let Some(full) = reference("t3_cmoe.log.gz") else {
        return;
    };
    let perf = find(&full, b"common_perf_print").expect("perf lines in t3");
    let mut seed = 7;
    for _ in 0..40 {
        let cut = (lcg(&mut seed) as usize) % full.len();
        let r = parse_bytes("cut", &full[..cut]);
        let Ok(r) = r else { continue }; // a cut inside the first line may leave nothing llama.cpp printed
        if cut < perf {
            assert!(r.truncated, "cut at {cut} of {} not flagged", full.len());
            assert_eq!(r.gen_tps, None);
        }
    }
}

#[test]
fn truncated_during_fit_trials_has_no_real_load() {
    let Some(full) = reference("t2_fit.log.gz") else {
        return;
    };
    let end_fit = find(&full, b"fitting params to free memory took").unwrap();
    let r = parse_bytes("cut", &full[..end_fit / 2]).unwrap();
    assert!(r.truncated);
    assert!(
        r.buffers.model.is_empty(),
        "trial loads (0.00 MiB) must not be taken for the run"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("no model load")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn gzip_cut_short() {
    let Some(full) = reference("t3_cmoe.log.gz") else {
        return;
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&full).unwrap();
    let gz = enc.finish().unwrap();
    let r = parse_bytes("cut.gz", &gz[..gz.len() / 2]).unwrap();
    assert!(r.truncated);
    assert!(r.warnings.iter().any(|w| w.contains("gzip")));
}

#[test]
fn crlf_and_prefixes_read_the_same() {
    let Some(full) = reference("t3_cmoe.log.gz") else {
        return;
    };
    let base = parse_bytes("t3", &full).unwrap();
    let text = String::from_utf8_lossy(&full).to_string();
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(
        essence(&parse_bytes("crlf", crlf.as_bytes()).unwrap()),
        essence(&base)
    );
    let prefixed: String = text
        .lines()
        .map(|l| format!("[2026-11-23 10:00:01] \x1b[32m{l}\x1b[0m\n"))
        .collect();
    assert_eq!(
        essence(&parse_bytes("prefixed", prefixed.as_bytes()).unwrap()),
        essence(&base)
    );
}

#[test]
fn latin1_bytes_do_not_break_reading() {
    let Some(full) = reference("t3_cmoe.log.gz") else {
        return;
    };
    let base = parse_bytes("t3", &full).unwrap();
    // A model path in latin-1 (é = 0xE9) and stray high bytes in generated text.
    let mut mangled = Vec::new();
    for line in full.split(|&b| b == b'\n') {
        let l: Vec<u8> = if let Some(i) = find(line, b"/tmp/q3moe.gguf") {
            [
                &line[..i],
                b"/tmp/q3mo\xe9.gguf".as_slice(),
                &line[i + 15..],
            ]
            .concat()
        } else {
            line.to_vec()
        };
        mangled.extend_from_slice(&l);
        mangled.extend_from_slice(b"\xfc\xff\n");
    }
    let r = parse_bytes("latin1", &mangled).unwrap();
    assert_eq!(r.buffers, base.buffers);
    assert_eq!(r.breakdown, base.breakdown);
    assert_eq!(r.gen_tps, base.gen_tps);
    assert!(r.model_path.unwrap().starts_with("/tmp/q3mo"));
}

#[test]
fn interleaved_lines_of_two_logs() {
    let Some(a) = reference("t3_cmoe.log.gz") else {
        return;
    };
    let b = fixture("load_oom.log");
    let (la, lb): (Vec<&[u8]>, Vec<&[u8]>) = (
        a.split(|&x| x == b'\n').collect(),
        b.split(|&x| x == b'\n').collect(),
    );
    let mut mixed = Vec::new();
    let step = la.len() / lb.len().max(1);
    let mut j = 0;
    for (i, l) in la.iter().enumerate() {
        mixed.extend_from_slice(l);
        mixed.push(b'\n');
        if step > 0 && i % step == 0 && j < lb.len() {
            mixed.extend_from_slice(lb[j]);
            mixed.push(b'\n');
            j += 1;
        }
    }
    let r = parse_bytes("mixed", &mixed).expect("still a llama.cpp log");
    // The OOM of the other log is seen; the values of the longer log survive where not overwritten.
    assert!(r.oom.iter().any(|o| o.device.as_deref() == Some("CUDA1")));
    assert_eq!(r.gen_tps, Some(36.22));
}

#[test]
fn not_logs_are_errors_not_panics() {
    assert!(parse_bytes("empty", b"").is_err());
    assert!(parse_bytes("blank", b"\n\n  \n").is_err());
    assert!(parse_bytes("csv", b"a,b,c\n1,2,3\n").is_err());
    assert!(parse_bytes("json", br#"{"hello": "world"}"#).is_err());
    assert!(parse_bytes("png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").is_err());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_bytes("random", &bytes);
    }

    #[test]
    fn never_panics_on_shuffled_log_lines(
        picks in proptest::collection::vec((0usize..64, any::<u8>(), 0usize..200), 0..120)
    ) {
        // Lines from every fixture, reordered, cut and salted with a random byte.
        let mut pool: Vec<Vec<u8>> = Vec::new();
        for name in ["old_build_compute_oom.log", "server_bracket_kv_oom.log", "load_oom.log",
                     "runtime_oom.log", "server_jsonl.log", "pipeline_retry.log", "bench.md", "bench.csv"] {
            pool.extend(fixture(name).split(|&b| b == b'\n').map(|l| l.to_vec()));
        }
        let mut out = Vec::new();
        for (i, salt, cut) in picks {
            let l = &pool[i % pool.len()];
            let cut = cut.min(l.len());
            out.extend_from_slice(&l[..cut]);
            out.push(salt);
            out.extend_from_slice(&l[cut..]);
            out.push(b'\n');
        }
        let _ = parse_bytes("shuffled", &out);
    }
}
