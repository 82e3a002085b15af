//! Issue 14 finding 4: a killed writer left `.F.placer-PID.tmp` files that were never cleaned up.
//! Now: killed at any point, the file is the original or the new one, never a third state; a
//! SIGTERM removes the temporary file; a later write removes what a SIGKILL left, and says so.

use crate::files_support::{run_bounded, sections, solve_write, temps, Rng};
use std::time::Duration;

/// A models.conf of about `mib` MiB (many users' sections), so that the write takes a while.
fn big_conf(mib: usize) -> String {
    let mut s = String::from("# big file\n");
    let mut i = 0;
    while s.len() < mib << 20 {
        s.push_str(&format!(
            "\n# note {i}\n[user-{i}]\nNAME=model {i}\nEXTRA_ARGS=--jinja -ot blk\\.{i}\\.ffn_.*_exps=CPU\n"
        ));
        i += 1;
    }
    s
}

#[test]
fn killed_at_random_points_leaves_old_or_new_never_a_third_state() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    let original = big_conf(8);
    let mut rng = Rng::new("kill test");
    let (mut old_seen, mut new_seen, mut temp_left) = (0, 0, 0);
    for i in 0..24 {
        std::fs::write(&f, &original).unwrap();
        let mut child = solve_write("glm-q4", &f).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(900)));
        let term = i % 2 == 1;
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(
                child.id() as i32,
                if term { libc::SIGTERM } else { libc::SIGKILL },
            );
        }
        let _ = child.wait();
        let text = std::fs::read_to_string(&f).unwrap();
        if text == original {
            old_seen += 1;
        } else {
            assert!(text.starts_with(&original), "iteration {i}: a third state");
            let tail = &text[original.len()..];
            assert_eq!(
                sections(tail),
                ["glm-q4-aggressive", "glm-q4-moderate"],
                "iteration {i}: a third state"
            );
            new_seen += 1;
        }
        let left = temps(dir.path());
        if term {
            assert!(left.is_empty(), "SIGTERM left {left:?}");
        } else if !left.is_empty() {
            temp_left += 1;
            // The next write removes it and says so.
            std::fs::write(&f, &original).unwrap();
            let r = run_bounded(solve_write("glm-q4", &f), Duration::from_secs(120));
            assert_eq!(r.code, Some(0), "{}", r.stderr);
            assert!(
                r.stderr.contains("was killed while writing"),
                "{}",
                r.stderr
            );
            assert!(temps(dir.path()).is_empty());
        }
    }
    eprintln!("old {old_seen}, new {new_seen}, killed mid-write with a temp left {temp_left}");
    let r = run_bounded(solve_write("glm-q4", &f), Duration::from_secs(120));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        temps(dir.path()).is_empty(),
        "temporary files after a clean exit"
    );
}

#[test]
fn stale_temp_of_a_dead_process_is_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    std::fs::write(&f, "[mine]\nNAME=x\n").unwrap();
    // A PID that is certainly dead: a child that has exited and been reaped.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    let stale = dir.path().join(format!(".models.conf.placer-{pid}.tmp"));
    std::fs::write(&stale, vec![b'#'; 1 << 20]).unwrap();
    let w = placer::fsio::update(&f, placer::fsio::MODELS_CONF, |old| {
        Ok(format!("{}[b]\nNAME=y\n", old.unwrap()))
    })
    .unwrap();
    assert_eq!(w.stale_removed, vec![stale.clone()]);
    assert!(!stale.exists());
}
