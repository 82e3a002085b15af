//! The users' models.conf format: read sections (for `check`), write profiles (for `solve
//! --write`) keeping every other byte. OWNER: solver helper (write), memory helper (read).
//!
//! Format (shared/reference/user-world.md): INI-like, `[section]` headers, `KEY=VALUE` lines,
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
                sec.entries.push((k.trim().to_string(), unquote(v.trim()).to_string()));
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
            if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
        )
    }

    /// Read `PATH:SECTION` (the last `:` separates, so Windows-like paths with `:` still work).
    pub fn load_spec(spec: &str) -> anyhow::Result<(std::path::PathBuf, Section)> {
        let (path, name) = spec.rsplit_once(':').ok_or_else(|| {
            anyhow::anyhow!("{spec:?}: expected models.conf:SECTION")
        })?;
        let path = Path::new(path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Ok((path.to_path_buf(), find(&text, name)?))
    }
}
