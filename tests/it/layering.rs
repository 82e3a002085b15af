//! Arrows point down: a module of src/ may use only the modules on earlier lines of the stage
//! list in docs/design.md ("Stages and what each may use"). Modules on one line are peers that do
//! not use each other. The check reads every `crate::NAME` path in the code (comments stripped),
//! including grouped `use crate::{a, b::c}` imports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stage list: line number (level) per module, from the fenced block after the heading.
fn layers(design: &str) -> BTreeMap<String, usize> {
    let start = design
        .find("## Stages and what each may use")
        .expect("docs/design.md has the stage list heading");
    let block = &design[start..];
    let open = block.find("```").expect("a fenced block") + 3;
    let body = &block[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let body = &body[..body.find("```").expect("the block is closed")];
    let mut out = BTreeMap::new();
    for (level, line) in body.lines().enumerate() {
        for m in line.split_whitespace() {
            assert!(
                out.insert(m.to_string(), level).is_none(),
                "{m} listed twice"
            );
        }
    }
    out
}

/// Top-level module of a file under src/ (`src/solver/ilp.rs` → `solver`); None for the roots.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module named after `crate::` in `code`.
fn uses(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the names at depth 0 of the group.
            let mut depth = 0;
            let mut word = String::new();
            let mut at_start = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !word.is_empty() {
                            out.push(std::mem::take(&mut word));
                        }
                        at_start = true;
                    }
                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                        word.push(c)
                    }
                    _ => {
                        if !word.is_empty() {
                            out.push(std::mem::take(&mut word));
                            at_start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                out.push(word);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

/// "src/a.rs: a uses b (stage N ≥ M)" for every import that does not point to an earlier stage.
fn violations(files: &[(PathBuf, String)], layers: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, text) in files {
        let Some(me) = module_of(rel) else { continue };
        let Some(&mine) = layers.get(&me) else {
            out.push(format!(
                "src/{}: module {me} is not in docs/design.md's stage list",
                rel.display()
            ));
            continue;
        };
        for used in uses(&strip_comments(text)) {
            if used == me {
                continue;
            }
            match layers.get(&used) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => out.push(format!(
                    "src/{}: {me} (stage {mine}) uses {used} (stage {theirs}); \
                     a stage may use only earlier stages",
                    rel.display()
                )),
                None => out.push(format!(
                    "src/{}: {me} uses {used}, which is not in the stage list",
                    rel.display()
                )),
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p.strip_prefix(&root).unwrap().to_path_buf(), text));
            }
        }
    }
    out.sort();
    out
}

fn design() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design.md")).unwrap()
}

#[test]
fn every_import_points_to_an_earlier_stage() {
    let v = violations(&sources(), &layers(&design()));
    assert!(
        v.is_empty(),
        "upward or sideways imports:\n{}",
        v.join("\n")
    );
}

#[test]
fn an_upward_import_is_caught() {
    let layers = layers(&design());
    let mut files = sources();
    let clean = violations(&files, &layers).len();
    // The memory model reaching up into the solver, plainly and inside a grouped import.
    files.push((
        PathBuf::from("memory/upward.rs"),
        "use crate::solver::SolveRequest;\n".into(),
    ));
    files.push((
        PathBuf::from("emit/grouped.rs"),
        "use crate::{launch::LaunchConfig, profile::Profile};\n// crate::cli in a comment\n".into(),
    ));
    let v = violations(&files, &layers);
    assert_eq!(v.len(), clean + 2, "{v:#?}");
    assert!(v
        .iter()
        .any(|l| l.contains("memory (stage") && l.contains("uses solver")));
    assert!(v.iter().any(|l| l.contains("uses profile")));
    assert!(!v.iter().any(|l| l.contains("uses cli")));
}

#[test]
fn grouped_imports_are_read() {
    assert_eq!(
        uses("use crate::{a::{b, c}, d, e::f};"),
        vec!["a".to_string(), "d".into(), "e".into()]
    );
}
