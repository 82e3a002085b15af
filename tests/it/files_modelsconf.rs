//! Issue 14 finding 11: a UTF-8 BOM hid the first section (a second active copy was appended);
//! with duplicate sections only the first was replaced; `[name] ; note` was not a header; a CRLF
//! file came back with mixed line endings; each repeated `--write` nested the history one `#`
//! deeper (five runs: 4 KB → 25 KB). docs/models-conf.md describes the rules tested here.

use placer::modelsconf::read;
use placer::modelsconf::write::{upsert, upsert_with_notes, NewSection, HISTORY_KEPT};

fn sec(name: &str, v: u32) -> NewSection {
    NewSection {
        name: name.into(),
        text: format!(
            "# placer solve — profile {v:02}\n# why {v:02}\n[{name}]\nNAME=v{v:02}\nEXTRA_ARGS=-ub {v:02}\n"
        ),
    }
}

fn active(text: &str, name: &str) -> usize {
    read::parse(text).iter().filter(|s| s.name == name).count()
}

#[test]
fn bom_is_kept_and_does_not_hide_the_first_section() {
    let conf = "\u{feff}[a-aggressive]\nNAME=old\n\n[b]\nNAME=b\n";
    assert_eq!(
        read::find(conf, "a-aggressive").unwrap().get("NAME"),
        Some("old")
    );
    let out = upsert(conf, &[sec("a-aggressive", 1)]);
    assert!(out.starts_with('\u{feff}'));
    assert_eq!(out.matches('\u{feff}').count(), 1);
    assert_eq!(active(&out, "a-aggressive"), 1, "{out}");
    assert_eq!(
        read::find(&out, "a-aggressive").unwrap().get("NAME"),
        Some("v01")
    );
    assert!(out.ends_with("\n[b]\nNAME=b\n"));
}

#[test]
fn crlf_file_stays_crlf() {
    let conf = "# notes\r\n\r\n[a-aggressive]\r\nNAME=old\r\n\r\n[b]\r\nNAME=b\r\n";
    let out = upsert(conf, &[sec("a-aggressive", 1), sec("a-moderate", 2)]);
    assert_eq!(
        out.matches('\n').count(),
        out.matches("\r\n").count(),
        "{out:?}"
    );
    assert!(out.starts_with("# notes\r\n\r\n"));
    assert!(out.contains("\r\n[b]\r\nNAME=b\r\n"));
    assert_eq!(
        read::find(&out, "a-moderate").unwrap().get("NAME"),
        Some("v02")
    );
}

#[test]
fn duplicate_sections_are_all_dealt_with_and_reported() {
    let conf = "[a-aggressive]\nNAME=one\n\n[x]\nNAME=x\n\n[a-aggressive]\nNAME=two\n";
    let (out, notes) = upsert_with_notes(conf, &[sec("a-aggressive", 1)]);
    assert_eq!(active(&out, "a-aggressive"), 1, "{out}");
    assert_eq!(
        read::find(&out, "a-aggressive").unwrap().get("NAME"),
        Some("v01")
    );
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("had 2 sections [a-aggressive]"),
        "{notes:?}"
    );
    assert!(out.contains("# NAME=two"), "{out}");
    assert_eq!(read::find(&out, "x").unwrap().get("NAME"), Some("x"));
}

#[test]
fn comment_after_header_is_recognized() {
    for conf in [
        "[a-aggressive] ; tried 2026-02-01\nNAME=old\n",
        "[a-aggressive]   # NOT YET TESTED\nNAME=old\n",
    ] {
        assert_eq!(
            read::find(conf, "a-aggressive").unwrap().get("NAME"),
            Some("old")
        );
        let out = upsert(conf, &[sec("a-aggressive", 1)]);
        assert_eq!(active(&out, "a-aggressive"), 1, "{out}");
    }
    assert!(read::parse("[a] junk\nNAME=x\n").is_empty());
}

#[test]
fn history_keeps_the_last_n_and_never_nests() {
    let mut conf = "# my file\n[mine]\nNAME=m\n\n[a-aggressive]\nNAME=hand-made\n".to_string();
    let mut sizes = Vec::new();
    for v in 1..=12 {
        conf = upsert(&conf, &[sec("a-aggressive", v)]);
        sizes.push(conf.len());
        assert_eq!(active(&conf, "a-aggressive"), 1);
        assert!(
            conf.matches("# previous [a-aggressive]").count() <= HISTORY_KEPT,
            "{conf}"
        );
        assert!(!conf.lines().any(|l| l.starts_with("# # #")), "{conf}");
    }
    assert_eq!(
        conf.matches("# previous [a-aggressive]").count(),
        HISTORY_KEPT
    );
    // The last three replaced versions, newest nearest the section.
    let v = |n: u32| conf.find(&format!("# NAME=v{n:02}\n")).unwrap();
    assert!(v(9) < v(10) && v(10) < v(11));
    assert!(!conf.contains("# NAME=v08\n"));
    // Size stops growing once the history is full.
    assert_eq!(sizes[11], sizes[5], "{sizes:?}");
    assert!(conf.starts_with("# my file\n[mine]\nNAME=m\n\n"));
}

#[test]
fn same_section_again_changes_nothing() {
    let conf = upsert("[mine]\nNAME=m\n", &[sec("a-aggressive", 1)]);
    assert_eq!(upsert(&conf, &[sec("a-aggressive", 1)]), conf);
}

#[test]
fn legacy_nested_history_is_folded_into_one_entry() {
    let legacy = "# previous [a-aggressive], replaced by `placer solve --write`:\n## previous [a-aggressive], replaced by `placer solve --write`:\n## x\n# [a-aggressive]\n# NAME=old\n# placer solve — profile 0\n[a-aggressive]\nNAME=v0\n";
    let out = upsert(legacy, &[sec("a-aggressive", 1)]);
    assert_eq!(active(&out, "a-aggressive"), 1);
    let mut c = out;
    for v in 2..=5 {
        c = upsert(&c, &[sec("a-aggressive", v)]);
    }
    assert!(!c.contains("## previous"), "{c}");
}
