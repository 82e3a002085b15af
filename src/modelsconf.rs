//! The users' models.conf format: read sections (for `check`), write profiles (for `solve
//! --write`) keeping every other byte.
//!
//! Format (docs/users.md): INI-like, `[section]` headers, `KEY=VALUE` lines,
//! `#` comment lines (a commented-out section `#[name]` is not a section).
//!
//! NOTE to the solver helper: the READ side lives in `pub mod read` below (memory helper).
//! Please put the write side in its own `pub mod write` (or functions below the read module)
//! and reuse `read::parse` / `read::Section::line_range` to find what to replace.

pub mod read {
    use std::path::Path;

    /// One `[name]` section with its keys in file order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Section {
        pub name: String,
        /// `KEY=VALUE` pairs in file order (keys as written; lookups are case-sensitive like
        /// the users' bash `start.sh`).
        pub entries: Vec<(String, String)>,
        /// 0-based line range `[start, end)`: from the header line to the line before the next
        /// header (comments directly above the next header belong to that next section).
        pub line_range: (usize, usize),
        /// `#` comment lines directly above the header (the users' reasoning notes).
        pub comments: Vec<String>,
    }

    impl Section {
        /// The last value of `key` (a later line overrides an earlier one, as in a sourced file).
        pub fn get(&self, key: &str) -> Option<&str> {
            self.entries
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Parse every section. Lines outside sections and malformed lines are ignored (the users'
    /// file also holds free-form notes); a value may be wrapped in matching quotes.
    pub fn parse(text: &str) -> Vec<Section> {
        let lines: Vec<&str> = text.lines().collect();
        let mut sections: Vec<Section> = Vec::new();
        let mut pending_comments: Vec<String> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if let Some(name) = header(t) {
                if let Some(last) = sections.last_mut() {
                    last.line_range.1 = i - pending_comments.len();
                }
                sections.push(Section {
                    name: name.to_string(),
                    entries: Vec::new(),
                    line_range: (i, lines.len()),
                    comments: std::mem::take(&mut pending_comments),
                });
                continue;
            }
            if t.starts_with('#') {
                pending_comments.push(t.to_string());
                continue;
            }
            if t.is_empty() {
                pending_comments.clear();
                continue;
            }
            pending_comments.clear();
            if let (Some(sec), Some((k, v))) = (sections.last_mut(), t.split_once('=')) {
                sec.entries
                    .push((k.trim().to_string(), unquote(v.trim()).to_string()));
            }
        }
        sections
    }

    fn header(t: &str) -> Option<&str> {
        let inner = t.strip_prefix('[')?.strip_suffix(']')?.trim();
        (!inner.is_empty()).then_some(inner)
    }

    fn unquote(v: &str) -> &str {
        for q in ['"', '\''] {
            if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
                return &v[1..v.len() - 1];
            }
        }
        v
    }

    /// The section called `name`, or an error listing the sections that exist.
    pub fn find(text: &str, name: &str) -> anyhow::Result<Section> {
        let sections = parse(text);
        if let Some(s) = sections.iter().find(|s| s.name == name) {
            return Ok(s.clone());
        }
        let names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no section [{name}] in models.conf; sections there: {}",
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        )
    }

    /// Read `PATH:SECTION` (the last `:` separates, so Windows-like paths with `:` still work).
    pub fn load_spec(spec: &str) -> anyhow::Result<(std::path::PathBuf, Section)> {
        let (path, name) = spec
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("{spec:?}: expected models.conf:SECTION"))?;
        let path = Path::new(path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok((path.to_path_buf(), find(&text, name)?))
    }
}

/// WRITE side (solver helper): add or replace `[<id>-aggressive]` / `[<id>-moderate]` sections.
/// Every byte outside the replaced sections stays as it was; a replaced section is kept above the
/// new one as `#` comments (the users' rule: comment out a working section before replacing it);
/// the file is written atomically (temporary file in the same directory, then rename).
pub mod write {
    use std::path::Path;

    /// A section to write: its name and its full text (comment lines, header, keys), each line
    /// ending in '\n'.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NewSection {
        pub name: String,
        pub text: String,
    }

    /// Lines of `text` with their original endings (so unchanged lines are byte-identical).
    fn lines_with_endings(text: &str) -> Vec<&str> {
        text.split_inclusive('\n').collect()
    }

    /// `text` with every section of `new` added (at the end) or replaced (in place).
    pub fn upsert(text: &str, new: &[NewSection]) -> String {
        let mut out = text.to_string();
        for s in new {
            out = upsert_one(&out, s);
        }
        out
    }

    fn upsert_one(text: &str, new: &NewSection) -> String {
        let sections = super::read::parse(text);
        let lines = lines_with_endings(text);
        let Some(old) = sections.iter().find(|s| s.name == new.name) else {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&new.text);
            return out;
        };
        // The old block: the comment lines directly above its header + the section's lines.
        let start = old.line_range.0 - old.comments.len();
        let mut end = old.line_range.1.min(lines.len());
        // Blank lines at the end of the range stay after the new section.
        while end > old.line_range.0 + 1 && lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        let mut out = String::with_capacity(text.len() + new.text.len() * 2);
        for l in &lines[..start] {
            out.push_str(l);
        }
        out.push_str(&format!(
            "# previous [{}], replaced by `placer solve --write`:\n",
            new.name
        ));
        for l in &lines[start..end] {
            let body = l.trim_end_matches(['\n', '\r']);
            if body.trim_start().starts_with('#') {
                out.push_str(&format!("#{body}\n"));
            } else {
                out.push_str(&format!("# {body}\n"));
            }
        }
        out.push_str(&new.text);
        for l in &lines[end..] {
            out.push_str(l);
        }
        out
    }

    /// Write `text` to `path` atomically: a temporary file next to it, flushed, then renamed over
    /// it (keeping the old file's permissions).
    pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("models.conf");
        let tmp = dir.join(format!(".{name}.placer-{}.tmp", std::process::id()));
        let res = (|| -> anyhow::Result<()> {
            let mut f = std::fs::File::create(&tmp).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create {}: {e} (is the directory writable?)",
                    tmp.display()
                )
            })?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            if let Ok(meta) = std::fs::metadata(path) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, path)
                .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", path.display()))?;
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Read `path` (missing = empty), upsert, write atomically. Returns the new text.
    pub fn upsert_file(path: &Path, new: &[NewSection]) -> anyhow::Result<String> {
        let old = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let text = upsert(&old, new);
        write_atomic(path, &text)?;
        Ok(text)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const CONF: &str = "# my notes\r\n[glm-flash-q4]\nNAME=GLM\nCTX_SIZE=131072\n\n# about the next one\n[glm-q8-aggressive]\nNAME=old\nEXTRA_ARGS=-ot exps=CPU\n\n[other]\nNAME=x";

        #[test]
        fn replace_keeps_other_bytes_and_comments_old_section() {
            let new = NewSection {
                name: "glm-q8-aggressive".into(),
                text: "# why\n[glm-q8-aggressive]\nNAME=new\n".into(),
            };
            let out = upsert(CONF, std::slice::from_ref(&new));
            assert!(out.starts_with("# my notes\r\n[glm-flash-q4]\nNAME=GLM\nCTX_SIZE=131072\n\n"));
            assert!(out.contains("## about the next one\n# [glm-q8-aggressive]\n# NAME=old\n# EXTRA_ARGS=-ot exps=CPU\n# why\n[glm-q8-aggressive]\nNAME=new\n\n[other]\nNAME=x"));
            assert!(out.ends_with("[other]\nNAME=x"));
            let secs = crate::modelsconf::read::parse(&out);
            assert_eq!(
                secs.iter()
                    .filter(|s| s.name == "glm-q8-aggressive")
                    .count(),
                1
            );
            assert_eq!(
                crate::modelsconf::read::find(&out, "glm-q8-aggressive")
                    .unwrap()
                    .get("NAME"),
                Some("new")
            );
        }

        #[test]
        fn add_appends_after_a_blank_line() {
            let new = NewSection {
                name: "a-moderate".into(),
                text: "[a-moderate]\nNAME=n\n".into(),
            };
            let out = upsert(CONF, std::slice::from_ref(&new));
            assert_eq!(out, format!("{CONF}\n\n[a-moderate]\nNAME=n\n"));
            assert_eq!(
                upsert("", std::slice::from_ref(&new)),
                "[a-moderate]\nNAME=n\n"
            );
        }

        #[test]
        fn atomic_write_replaces_file() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("models.conf");
            std::fs::write(&p, CONF).unwrap();
            let new = NewSection {
                name: "other".into(),
                text: "[other]\nNAME=y\n".into(),
            };
            let text = upsert_file(&p, &[new]).unwrap();
            assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "no temporary file left"
            );
        }
    }
}
