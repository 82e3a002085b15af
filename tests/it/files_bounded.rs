//! Issue 14 finding 6: files were read whole without a bound (`--host /dev/zero` read 11 GB), a
//! FIFO as a model blocked forever, a `.gz` log expanding to 2 GB was decompressed into memory,
//! `--write` on a 50 MB models.conf used ten times its size. fsio's bounded reads refuse special
//! files before opening them, cap every kind of input, and gunzip as a stream with a cap.

use crate::files_support::{mkfifo, placer, run_bounded, solve_write};
use std::io::Write;
use std::time::Duration;

const FAST: Duration = Duration::from_secs(20);

#[test]
fn host_dev_zero_is_refused_fast() {
    let mut c = placer();
    c.args(["solve", "glm-q4", "--ctx", "8192", "--host", "/dev/zero"]);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr.contains("/dev/zero is a character device"),
        "{}",
        r.stderr
    );
    assert!(r.peak_kib < 512 * 1024, "peak {} KiB", r.peak_kib);
}

#[test]
fn calibration_dev_zero_is_refused_fast() {
    let mut c = placer();
    c.args([
        "solve",
        "glm-q4",
        "--ctx",
        "8192",
        "--calibration",
        "/dev/zero",
    ]);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr.contains("/dev/zero is a character device"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_dev_zero_section_is_refused_fast() {
    let mut c = placer();
    c.args(["check", "/dev/zero:glm-q4-aggressive"]);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("character device"), "{}", r.stderr);
}

#[test]
fn oversized_host_file_names_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("host.toml");
    let f = std::fs::File::create(&h).unwrap();
    f.set_len(3 << 30).unwrap(); // sparse: 3 GiB on paper, nothing on disk
    let mut c = placer();
    c.args(["solve", "glm-q4", "--ctx", "8192", "--host"])
        .arg(&h);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr
            .contains("is 3 GB; a host file is at most 1 MiB: is this the right path?"),
        "{}",
        r.stderr
    );
}

#[test]
fn fifo_as_model_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model.gguf");
    mkfifo(&m);
    let mut c = placer();
    c.arg("inspect").arg(&m);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    let mut c = placer();
    c.arg("solve").arg(&m).args(["--ctx", "8192"]);
    let r = run_bounded(c, FAST);
    assert_ne!(r.code, Some(0));
}

/// A gzip file of `members` copies of one 16 MiB-of-zeros member: 16 KiB each on disk.
fn gzip_bomb(path: &std::path::Path, members: usize) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        enc.write_all(&zeros).unwrap();
    }
    let member = enc.finish().unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..members {
        f.write_all(&member).unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn gzip_log_expanding_to_2_gib_is_refused_without_big_memory() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let bomb = logs.join("log.txt.gz");
    gzip_bomb(&bomb, 128); // 2 GiB expanded
    assert!(std::fs::metadata(&bomb).unwrap().len() < 8 << 20);
    let e = placer::fsio::read_maybe_gzip(&bomb, placer::fsio::LOG)
        .unwrap_err()
        .to_string();
    assert!(e.contains("expands past 128 MiB"), "{e}");
    let mut c = placer();
    c.arg("calibrate")
        .arg(&logs)
        .args(["--dry-run", "--report"]);
    let r = run_bounded(c, Duration::from_secs(60));
    assert!(
        r.stdout.contains("expands past"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(r.peak_kib < 400 * 1024, "peak {} KiB", r.peak_kib);
}

#[test]
fn write_on_a_50_mb_models_conf_stays_within_a_few_times_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 50_000_000 {
        s.push_str(&format!(
            "\n# note {i}\n[user-{i}]\nNAME=model {i}\nEXTRA_ARGS=--jinja\n"
        ));
        i += 1;
    }
    std::fs::write(&f, &s).unwrap();
    let r = run_bounded(solve_write("glm-q4", &f), Duration::from_secs(120));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    eprintln!("peak {} MiB for a 50 MB file", r.peak_kib / 1024);
    assert!(r.peak_kib < 300 * 1024, "peak {} KiB", r.peak_kib);
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.starts_with(&s));
}
