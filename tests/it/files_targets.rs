//! Issue 14 finding 2: `--write` on a symlink replaced the link with a regular file, on a device
//! node replaced the device, and dropped the file's mode; a read-only file was silently replaced.
//! fsio follows links, writes only regular files, keeps the mode, refuses read-only files.

use crate::files_support::{mkfifo, run_bounded, sections, solve_write, temps};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn symlink_is_kept_and_its_target_updated() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.conf");
    std::fs::write(&real, "[mine]\nNAME=x\n").unwrap();
    let link = dir.path().join("models.conf");
    std::os::unix::fs::symlink("real.conf", &link).unwrap();
    let r = run_bounded(solve_write("glm-q4", &link), LIMIT);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lm = std::fs::symlink_metadata(&link).unwrap();
    assert!(lm.file_type().is_symlink(), "the link was replaced");
    let text = std::fs::read_to_string(&real).unwrap();
    assert_eq!(
        sections(&text),
        ["mine", "glm-q4-aggressive", "glm-q4-moderate"]
    );
    assert!(temps(dir.path()).is_empty());
}

#[test]
fn device_behind_a_link_is_refused_and_the_link_kept() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("models.conf");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let r = run_bounded(solve_write("glm-q4", &link), LIMIT);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("character device"), "{}", r.stderr);
    assert!(
        r.stderr.contains("placer writes only regular files"),
        "{}",
        r.stderr
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn fifo_as_write_target_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("models.conf");
    mkfifo(&fifo);
    let r = run_bounded(solve_write("glm-q4", &fifo), Duration::from_secs(20));
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
    assert!(r.secs < 10.0, "took {:.1} s", r.secs);
}

#[test]
fn directory_as_write_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_bounded(solve_write("glm-q4", dir.path()), LIMIT);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("a directory"), "{}", r.stderr);
}

#[test]
fn mode_0600_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    std::fs::write(&f, "[mine]\nNAME=x\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::metadata(&f).unwrap();
    let r = run_bounded(solve_write("glm-q4", &f), LIMIT);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let after = std::fs::metadata(&f).unwrap();
    assert_eq!(after.permissions().mode() & 0o7777, 0o600);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
}

#[test]
fn read_only_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    std::fs::write(&f, "[mine]\nNAME=x\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    let ino = std::fs::metadata(&f).unwrap().ino();
    let r = run_bounded(solve_write("glm-q4", &f), LIMIT);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("read-only (mode 0444)"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "[mine]\nNAME=x\n");
    assert_eq!(std::fs::metadata(&f).unwrap().ino(), ino);
}

#[test]
fn same_sections_again_do_not_rewrite_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("models.conf");
    let r = run_bounded(solve_write("glm-q4", &f), LIMIT);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let ino = std::fs::metadata(&f).unwrap().ino();
    let r = run_bounded(solve_write("glm-q4", &f), LIMIT);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(std::fs::metadata(&f).unwrap().ino(), ino, "rewritten");
    assert!(!std::fs::read_to_string(&f).unwrap().contains("# previous"));
}
