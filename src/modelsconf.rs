//! The users' models.conf format: read sections (for `check`), write profiles (for `solve
//! --write`) keeping every other byte.
//!
//! Format (docs/users.md, docs/models-conf.md): INI-like, `[section]` headers (a `; note` or
//! `# note` may follow the `]`), `KEY=VALUE` lines, `#` comment lines (a commented-out section
//! `#[name]` is not a section). A UTF-8 byte-order mark and CRLF line endings are accepted and
//! kept.

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
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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

    /// The section name of a header line (`[name]`, `[name] ; note`, `[name] # note`), given the
    /// trimmed line.
    pub fn header(t: &str) -> Option<&str> {
        let rest = t.strip_prefix('[')?;
        let close = rest.find(']')?;
        let inner = rest[..close].trim();
        let after = rest[close + 1..].trim_start();
        let tail_ok = after.is_empty() || after.starts_with(';') || after.starts_with('#');
        (!inner.is_empty() && tail_ok).then_some(inner)
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
        let text = crate::fsio::read_text(path, crate::fsio::MODELS_CONF)?;
        Ok((path.to_path_buf(), find(&text, name)?))
    }
}

/// WRITE side: add or replace `[<id>-aggressive]` / `[<id>-moderate]` sections
/// (docs/models-conf.md).
///
/// Every byte outside the replaced sections stays as it was (a byte-order mark and the file's
/// line endings included). A replaced section is kept above the new one as a commented-out
/// history entry (the users' rule: comment out a working section before replacing it); only the
/// last [`HISTORY_KEPT`] entries are kept, and an entry is never commented out a second time.
/// Duplicate sections of a replaced name are all dealt with: the first is replaced, the others
/// are commented out in place, and the caller is told. The file goes through `fsio::update`
/// (lock, temporary file, fsync, rename).
pub mod write {
    use std::path::Path;

    /// Replaced versions of one section kept as history above it.
    pub const HISTORY_KEPT: usize = 3;

    /// A section to write: its name and its full text (comment lines, header, keys), each line
    /// ending in '\n' (written with the file's own line ending).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NewSection {
        pub name: String,
        pub text: String,
    }

    /// `text` with every section of `new` added (at the end) or replaced (in place).
    pub fn upsert(text: &str, new: &[NewSection]) -> String {
        upsert_with_notes(text, new).0
    }

    /// [`upsert`], with notes for the user (duplicate sections found and commented out).
    pub fn upsert_with_notes(text: &str, new: &[NewSection]) -> (String, Vec<String>) {
        let (bom, body) = match text.strip_prefix('\u{feff}') {
            Some(b) => ("\u{feff}", b),
            None => ("", text),
        };
        let eol = line_ending(body);
        let mut notes = Vec::new();
        // Borrowed until the first change: a large file is not copied more than needed.
        let mut out = std::borrow::Cow::Borrowed(body);
        for s in new {
            out = std::borrow::Cow::Owned(upsert_one(&out, s, eol, &mut notes));
        }
        if bom.is_empty() {
            (out.into_owned(), notes)
        } else {
            (format!("{bom}{out}"), notes)
        }
    }

    /// The file's line ending: CRLF when most of its lines end so, else LF.
    fn line_ending(text: &str) -> &'static str {
        let lf = text.bytes().filter(|&b| b == b'\n').count();
        let crlf = text.matches("\r\n").count();
        if crlf * 2 > lf {
            "\r\n"
        } else {
            "\n"
        }
    }

    fn body(l: &str) -> &str {
        l.trim_end_matches(['\n', '\r'])
    }

    /// One section in the file: `[start, header)` are the comment lines directly above its header,
    /// `[header, end)` the header and its lines, trailing blank lines excluded.
    struct Block<'a> {
        name: &'a str,
        start: usize,
        header: usize,
        end: usize,
    }

    fn blocks<'a>(lines: &[&'a str]) -> Vec<Block<'a>> {
        let mut out: Vec<Block<'a>> = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let Some(name) = super::read::header(body(l).trim()) else {
                continue;
            };
            let mut start = i;
            let floor = out.last().map(|b| b.header + 1).unwrap_or(0);
            while start > floor && body(lines[start - 1]).trim_start().starts_with('#') {
                start -= 1;
            }
            if let Some(prev) = out.last_mut() {
                prev.end = start;
            }
            out.push(Block {
                name,
                start,
                header: i,
                end: lines.len(),
            });
        }
        for b in &mut out {
            while b.end > b.header + 1 && body(lines[b.end - 1]).trim().is_empty() {
                b.end -= 1;
            }
        }
        out
    }

    /// `# previous [NAME] (K lines), replaced by `placer solve --write`:`
    fn marker(name: &str, k: usize) -> String {
        format!("# previous [{name}] ({k} lines), replaced by `placer solve --write`:")
    }

    /// K of a history marker for `name`, or None.
    fn marker_lines(line: &str, name: &str) -> Option<usize> {
        let rest = line.strip_prefix(&format!("# previous [{name}] ("))?;
        let (k, tail) = rest.split_once(" lines), replaced by `placer solve --write`:")?;
        tail.trim().is_empty().then_some(())?;
        k.parse().ok()
    }

    /// The history marker of placer before it kept a bounded history (no line count; the entry
    /// ran on to placer's own comment on the section).
    fn legacy_marker(line: &str, name: &str) -> bool {
        line.trim_end() == format!("# previous [{name}], replaced by `placer solve --write`:")
    }

    /// Split the comment lines above a header into history entries (each a list of lines,
    /// marker included) and the section's own comments.
    fn split_history<'a>(comments: &[&'a str], name: &str) -> (Vec<Vec<&'a str>>, Vec<&'a str>) {
        let mut hist: Vec<Vec<&'a str>> = Vec::new();
        let mut own = Vec::new();
        let mut i = 0;
        while i < comments.len() {
            let l = body(comments[i]);
            if let Some(k) = marker_lines(l, name).filter(|k| i + k < comments.len()) {
                hist.push(comments[i..=i + k].to_vec());
                i += k + 1;
            } else if legacy_marker(l, name) {
                let mut j = i + 1;
                while j < comments.len() {
                    let b = body(comments[j]);
                    if marker_lines(b, name).is_some()
                        || legacy_marker(b, name)
                        || b.starts_with("# placer solve — ")
                    {
                        break;
                    }
                    j += 1;
                }
                hist.push(comments[i..j].to_vec());
                i = j;
            } else {
                own.push(comments[i]);
                i += 1;
            }
        }
        (hist, own)
    }

    fn push_line(out: &mut String, body: &str, eol: &str) {
        out.push_str(body);
        out.push_str(eol);
    }

    /// A line commented out: `# ` in front (a blank line becomes `#`).
    fn commented(l: &str) -> String {
        let b = body(l);
        if b.trim().is_empty() {
            "#".to_string()
        } else {
            format!("# {b}")
        }
    }

    fn upsert_one(text: &str, new: &NewSection, eol: &str, notes: &mut Vec<String>) -> String {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let all = blocks(&lines);
        let same: Vec<&Block> = all.iter().filter(|b| b.name == new.name).collect();
        let new_text = if eol == "\n" {
            new.text.clone()
        } else {
            new.text.replace("\r\n", "\n").replace('\n', eol)
        };
        if same.is_empty() {
            let mut out = String::with_capacity(text.len() + new_text.len() + 4);
            out.push_str(text);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            if !out.is_empty() && !out.ends_with(&format!("{eol}{eol}")) && !out.ends_with("\n\n") {
                out.push_str(eol);
            }
            out.push_str(&new_text);
            return out;
        }
        if same.len() > 1 {
            let at: Vec<String> = same.iter().map(|b| (b.header + 1).to_string()).collect();
            notes.push(format!(
                "models.conf had {} sections [{}] (lines {}): the first is replaced, the others \
                 are commented out",
                same.len(),
                new.name,
                at.join(", ")
            ));
        }
        let mut out = String::with_capacity(text.len() + 2 * new_text.len());
        let mut pos = 0;
        for (n, b) in same.iter().enumerate() {
            for l in &lines[pos..b.start] {
                out.push_str(l);
            }
            if n == 0 {
                let (mut hist, own) = split_history(&lines[b.start..b.header], &new.name);
                let current: String = own
                    .iter()
                    .chain(&lines[b.header..b.end])
                    .map(|l| format!("{}{eol}", body(l)))
                    .collect();
                if same.len() == 1 && current == new_text {
                    // The same section again: no history entry for an unchanged section.
                    return text.to_string();
                }
                let mut entry: Vec<String> = own.iter().map(|l| commented(l)).collect();
                entry.extend(lines[b.header..b.end].iter().map(|l| commented(l)));
                let mut owned: Vec<Vec<String>> = hist
                    .drain(..)
                    .map(|h| h.iter().map(|l| body(l).to_string()).collect())
                    .collect();
                let mut e = vec![marker(&new.name, entry.len())];
                e.extend(entry);
                owned.push(e);
                let skip = owned.len().saturating_sub(HISTORY_KEPT);
                for h in &owned[skip..] {
                    for l in h {
                        push_line(&mut out, l, eol);
                    }
                }
                out.push_str(&new_text);
            } else {
                push_line(
                    &mut out,
                    &format!(
                        "# duplicate [{}] commented out by `placer solve --write` (the first \
                         [{}] in this file is the one in use):",
                        new.name, new.name
                    ),
                    eol,
                );
                for l in &lines[b.start..b.end] {
                    let bl = body(l);
                    if bl.trim_start().starts_with('#') {
                        out.push_str(l);
                    } else {
                        push_line(&mut out, &commented(l), eol);
                    }
                }
            }
            pos = b.end;
        }
        for l in &lines[pos..] {
            out.push_str(l);
        }
        out
    }

    /// Read `path` (missing = empty), upsert, write it through `fsio::update` (lock, temporary
    /// file, fsync, rename; an unchanged file is left alone). Returns notes for the user
    /// (duplicate sections).
    pub fn upsert_file(path: &Path, new: &[NewSection]) -> anyhow::Result<Vec<String>> {
        let mut notes = Vec::new();
        crate::fsio::update(path, crate::fsio::MODELS_CONF, |old| {
            let (text, n) = upsert_with_notes(old.unwrap_or(""), new);
            notes = n;
            Ok(text)
        })?;
        Ok(notes)
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
            assert!(out.contains("# previous [glm-q8-aggressive] (4 lines), replaced by `placer solve --write`:\n# # about the next one\n# [glm-q8-aggressive]\n# NAME=old\n# EXTRA_ARGS=-ot exps=CPU\n# why\n[glm-q8-aggressive]\nNAME=new\n\n[other]\nNAME=x"), "{out}");
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
            upsert_file(&p, &[new]).unwrap();
            assert!(std::fs::read_to_string(&p)
                .unwrap()
                .contains("[other]\nNAME=y\n"));
            let tmp = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count();
            assert_eq!(tmp, 0, "no temporary file left");
        }
    }
}
