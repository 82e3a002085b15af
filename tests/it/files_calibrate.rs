//! Issue 14 finding 3: `calibrate --out` wrote in place (a failed write left cut TOML) and a run
//! that found no usable log still overwrote the file, resetting n_runs to 0.

use crate::files_support::{placer, run_bounded, temps};
use std::time::Duration;

#[test]
fn no_usable_log_leaves_the_calibration_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("notes.txt"), "not a llama.cpp log\n").unwrap();
    let out = dir.path().join("calibration.toml");
    let shipped = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/calibration.toml"
    ))
    .unwrap();
    std::fs::write(&out, &shipped).unwrap();
    let mut c = placer();
    c.arg("calibrate").arg(&logs).arg("--out").arg(&out);
    let r = run_bounded(c, Duration::from_secs(60));
    assert_ne!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no usable llama.cpp log"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing written"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        shipped,
        "the calibration changed"
    );
    assert!(temps(dir.path()).is_empty());
}

#[test]
fn a_failed_write_leaves_the_old_file_whole() {
    // The write path calibrate now uses: a writer that fails half-way (disk full) must leave the
    // old contents, not a cut file.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("calibration.toml");
    std::fs::write(&f, "n_runs = 112\n").unwrap();
    let r = placer::fsio::write_stream(&f, |w| {
        use std::io::Write;
        w.write_all(b"n_runs = 0\n[cut")?;
        Err(std::io::Error::other("No space left on device"))
    });
    assert!(r.is_err());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "n_runs = 112\n");
    assert!(temps(dir.path()).is_empty());
}
