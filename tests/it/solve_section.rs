//! `placer solve models.conf:SECTION`: the user's section is the request, its own flags survive,
//! the profiles go where the users put them, and nothing else in the file changes.

use std::path::Path;
use std::process::Command;

const CONF: &str = "# production profiles\n\
[glm-flash]\n\
NAME=GLM-4.7 Flash Q8_0\n\
DESCRIPTION=Fast general model\n\
SPEED=~60 t/s\n\
MODEL=glm-q8\n\
CTX_SIZE=131072\n\
N_GPU_LAYERS=99\n\
FIT=on\n\
EXTRA_ARGS=--jinja -np 1 --temp 1.0 --top-p 0.95 --min-p 0.01 -b 2048 -ctk q8_0 -ctv q8_0\n\
\n\
[other]\n\
MODEL=x.gguf\n";

fn solve(conf: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .arg("solve")
        .arg(format!("{}:glm-flash", conf.display()))
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("[{name}]\n")).unwrap();
    let rest = &text[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn write_adds_profiles_carrying_the_users_keys_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let (code, out) = solve(&conf, &["--write"]);
    assert_eq!(code, Some(0), "{out}");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.starts_with(CONF),
        "every byte of the old file is kept:\n{text}"
    );
    for kind in ["aggressive", "moderate"] {
        let s = section(&text, &format!("glm-flash-{kind}"));
        assert!(
            s.contains(&format!("NAME=GLM-4.7 Flash Q8_0 ({kind})")),
            "{s}"
        );
        assert!(s.contains("DESCRIPTION=Fast general model"), "{s}");
        assert!(s.contains("MODEL=glm-q8\n"), "{s}");
        assert!(s.contains("CTX_SIZE=131072\n"), "{s}");
        assert!(s.contains("FIT=off\n"), "{s}");
        let extra = s.lines().find(|l| l.starts_with("EXTRA_ARGS=")).unwrap();
        assert!(
            extra.ends_with("--jinja --temp 1.0 --top-p 0.95 --min-p 0.01"),
            "the user's own flags are kept verbatim: {extra}"
        );
        assert!(
            extra.contains("-ctk q8_0 -ctv q8_0"),
            "the section's KV types are the request: {extra}"
        );
        assert_eq!(extra.matches("-np ").count(), 1, "{extra}");
    }
    assert!(out.contains("-ctk q8_0"), "{out}");
}

#[test]
fn in_place_rewrites_the_section_with_the_old_one_commented_out() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let (code, out) = solve(&conf, &["--in-place", "--profile", "moderate"]);
    assert_eq!(code, Some(0), "{out}");
    let text = std::fs::read_to_string(&conf).unwrap();
    let s = section(&text, "glm-flash");
    assert!(s.contains("NAME=GLM-4.7 Flash Q8_0\n"), "{s}");
    assert!(s.contains("FIT=off"), "{s}");
    assert!(
        text.contains("# FIT=on"),
        "the old version stays, commented out:\n{text}"
    );
    assert!(text.contains("[other]\nMODEL=x.gguf\n"), "{text}");
    assert!(!text.contains("[glm-flash-moderate]"), "{text}");
    assert_eq!(text.matches("\n[glm-flash]\n").count(), 1, "{text}");
}

#[test]
fn a_section_with_a_flag_llama_cpp_does_not_know_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, CONF.replace("--jinja", "--jinja --cache-typek q8_0")).unwrap();
    let (code, out) = solve(&conf, &["--write"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("did you mean --cache-type-k"), "{out}");
    assert!(!std::fs::read_to_string(&conf)
        .unwrap()
        .contains("aggressive"));
}

fn placer_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `solve --write models.conf:SECTION`: clap reads the section as `--write`'s file. Alone it is
/// the section to plan (written next to it); with another MODEL the error names the word; a
/// FILE:SECTION whose FILE is missing is not created as a file with a colon in its name.
#[test]
fn write_given_a_section_plans_that_section_or_names_the_word() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("models.conf");
    std::fs::write(&conf, CONF).unwrap();
    let spec = format!("{}:glm-flash", conf.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out) = placer_in(root, &["solve", "--write", &spec, "--no-oracle"]);
    assert_eq!(code, Some(0), "{out}");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("[glm-flash-aggressive]"), "{text}");
    assert!(text.contains("[glm-flash-moderate]"), "{text}");

    let (code, out) = placer_in(root, &["solve", "glm-q8", "--write", &spec]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains(&format!("--write {spec}")), "{out}");
    assert!(out.contains("takes a file, not a section"), "{out}");

    let missing = format!("{}:x", dir.path().join("nope.conf").display());
    let (code, out) = placer_in(root, &["solve", "glm-q8", "--write", &missing]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no file"), "{out}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(':')),
        "no file named after the section: {names:?}"
    );
}
