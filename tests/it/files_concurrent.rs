//! Issue 14 finding 1: two `solve --write F` at once both said "wrote" and one run's sections
//! were gone (nothing serialized read-modify-write). fsio::update now holds a lock around it.

use crate::files_support::{run_bounded, sections, solve_write, temps};
use std::time::Duration;

#[test]
fn two_simultaneous_writes_lose_nothing_50_runs() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    let user = "# my own notes\n[mine]\nNAME=keep me\nEXTRA_ARGS=--jinja\n";
    for run in 0..50 {
        std::fs::write(&f, user).unwrap();
        let fa = f.clone();
        let ta = std::thread::spawn(move || {
            run_bounded(solve_write("glm-q8", &fa), Duration::from_secs(120))
        });
        let rb = run_bounded(solve_write("glm-q4", &f), Duration::from_secs(120));
        let ra = ta.join().unwrap();
        assert_eq!(ra.code, Some(0), "run {run}: {}", ra.stderr);
        assert_eq!(rb.code, Some(0), "run {run}: {}", rb.stderr);
        let text = std::fs::read_to_string(&f).unwrap();
        let mut got = sections(&text);
        got.sort();
        assert_eq!(
            got,
            [
                "glm-q4-aggressive",
                "glm-q4-moderate",
                "glm-q8-aggressive",
                "glm-q8-moderate",
                "mine"
            ],
            "run {run}: a section was lost:\n{text}"
        );
        assert!(
            text.starts_with(user),
            "run {run}: the user's section changed"
        );
        assert!(temps(dir.path()).is_empty());
    }
}
