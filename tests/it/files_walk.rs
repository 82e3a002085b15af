//! Issue 14 finding 5: a log folder with two self-symlinks made the walk exponential; with one, a
//! log was counted 41 times. fsio::walk_files enters each real folder once and lists each file
//! once.

use std::path::PathBuf;
use std::time::Instant;

fn a_real_log() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/runs");
    placer::fsio::walk_files(&[root])
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "log.txt.gz"))
        .expect("a log in data/runs")
}

#[test]
fn self_symlink_loops_end_fast_and_count_each_log_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::copy(a_real_log(), logs.join("log.txt.gz")).unwrap();
    std::os::unix::fs::symlink(".", logs.join("again")).unwrap();
    std::os::unix::fs::symlink("..", logs.join("up")).unwrap();
    std::os::unix::fs::symlink("log.txt.gz", logs.join("same-log.gz")).unwrap();
    let t = Instant::now();
    let found = placer::calibrate::records::discover(&[logs.clone(), dir.path().to_path_buf()]);
    assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
    assert_eq!(found.len(), 1, "{found:?}");
    let (runs, _) = placer::calibrate::records::load_runs(&[logs], |_| {});
    assert_eq!(runs.len(), 1);
}
