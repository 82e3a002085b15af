//! llama-server's own preset file (router mode, `--models-preset FILE`): one INI section per
//! model, one `key = value` line per option. `placer solve … --write-preset FILE` writes the
//! chosen profiles there, as llama.cpp's own writer would spell them, keeping every other byte.
//!
//! The format, as llama.cpp b11434 reads it (docs/presets.md has the whole list):
//! - `common/preset.cpp: parse_ini_from_file` is a PEG grammar: every line is a header
//!   `[name]`, a `key = value` line (key `[a-zA-Z_][a-zA-Z0-9_.-]*` at the start of the line),
//!   a comment line (`#` or `;` after optional blanks) or a blank line; anything else and the
//!   whole file is refused. A value runs to the first `#` / `;` or the line's end, blanks around
//!   it dropped; there are no quotes and no continuation lines.
//! - `common/preset.cpp: get_map_key_opt`: a key is any option name without its leading dashes
//!   (`c`, `ctx-size`, negated names like `no-mmap`) or its environment variable
//!   (`LLAMA_ARG_CTX_SIZE`, `LLAMA_ARG_NO_…` for booleans); `common_preset::to_ini` writes the
//!   last name of the option (`ctx-size`), which is the spelling used here.
//! - `common/preset.cpp: common_preset::to_args`: a flag is written `true` / `false`; a false
//!   value turns into the option's negated name (or drops the flag); an option with two values
//!   throws; one value per option (a repeated key overwrites).
//!
//! Text only: the launch is rendered by `emit::argv_for`; this module knows neither the solver
//! nor the profiles.

use crate::builds::{ArgKind, BuildFacts, OptionSpec, Tool};

/// Options llama.cpp adds for presets only (`common/arg.cpp: common_params_add_preset_options`):
/// they are keys of the file, not arguments of the child server.
pub const PRESET_ONLY: [&str; 2] = ["load-on-startup", "stop-timeout"];

/// The key `common/preset.cpp: load_from_ini` skips ("reserved for future use").
pub const RESERVED_KEY: &str = "version";

/// `common_arg_utils::is_truthy` (common/arg.cpp).
fn is_truthy(v: &str) -> bool {
    ["on", "enabled", "true", "1"].contains(&v)
}

/// `common_arg_utils::is_falsey` (common/arg.cpp).
fn is_falsey(v: &str) -> bool {
    ["off", "disabled", "false", "0"].contains(&v)
}

/// The key llama.cpp's writer uses for an option: its last name without the leading dashes
/// (`common/preset.cpp: common_preset::to_ini`, `rm_leading_dashes(opt.args.back())`).
pub fn key_of(opt: &OptionSpec) -> String {
    opt.names
        .last()
        .map(|n| n.trim_start_matches('-').to_string())
        .unwrap_or_default()
}

/// Why a value cannot be carried by a preset line, or None (`parse_ini_from_file`'s `value`
/// rule: it stops at `#`, `;` and the line's end; blanks around it are dropped).
pub fn unrepresentable(v: &str) -> Option<&'static str> {
    if v.contains(['\n', '\r']) {
        Some("it holds a line break")
    } else if v.contains(['#', ';']) {
        Some("it holds `#` or `;`, where llama.cpp's preset parser starts a comment")
    } else if v != v.trim_matches([' ', '\t']) {
        Some("it starts or ends with a blank, which llama.cpp's preset parser drops")
    } else {
        None
    }
}

/// A llama-server argv (without the program name) as preset `(key, value)` lines for the build
/// whose option table is `facts`. Refused, with the reason: an option that build's llama-server
/// does not know, one with two values, one given twice (a preset holds one value per option), a
/// value a preset line cannot carry.
pub fn entries(argv: &[String], facts: &BuildFacts) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let raw = &argv[i];
        i += 1;
        let Some(opt) = facts.option_for(raw, Tool::Server) else {
            anyhow::bail!(
                "{raw}: not an option of llama-server b{} (its preset file has no key for it)",
                facts.build
            );
        };
        let key = key_of(opt);
        let norm = if raw.starts_with("--") {
            raw.replace('_', "-")
        } else {
            raw.clone()
        };
        let value = match opt.kind {
            ArgKind::TwoValues => anyhow::bail!(
                "{raw} takes two values, which llama.cpp's presets do not carry \
                 (common/preset.cpp: common_preset::to_args throws on it)"
            ),
            ArgKind::Flag => "true".to_string(),
            ArgKind::Bool => {
                if opt.negated.contains(&norm) {
                    "false".to_string()
                } else {
                    "true".to_string()
                }
            }
            ArgKind::Int | ArgKind::String => {
                let v = argv
                    .get(i)
                    .ok_or_else(|| anyhow::anyhow!("{raw} needs a value"))?;
                i += 1;
                if let Some(why) = unrepresentable(v) {
                    anyhow::bail!("{raw} {v:?} cannot be written to a preset: {why}");
                }
                v.clone()
            }
        };
        if out.iter().any(|(k, _)| *k == key) {
            anyhow::bail!(
                "{raw} is given twice; a preset holds one value per option (a later key \
                 overwrites an earlier one: common/preset.cpp: parse_ini_from_file); give one \
                 comma-separated value where the option takes a list"
            );
        }
        out.push((key, value));
    }
    Ok(out)
}

/// One preset section: `comments` (each a line without its `#`, may be empty), the header, then
/// the argv's options as `key = value` lines in argv order. Each line ends in '\n'.
pub fn section_text(
    name: &str,
    comments: &[String],
    argv: &[String],
    facts: &BuildFacts,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && !name.contains([']', '\n', '\r']) && name.trim() == name,
        "[{name}] cannot be a preset section name"
    );
    let mut t = String::new();
    for c in comments {
        anyhow::ensure!(
            !c.contains(['\n', '\r']),
            "a comment line holds a line break"
        );
        t.push_str(if c.is_empty() { "#" } else { "# " });
        t.push_str(c);
        t.push('\n');
    }
    t.push_str(&format!("[{name}]\n"));
    for (k, v) in entries(argv, facts)? {
        t.push_str(&format!("{k} = {v}\n"));
    }
    Ok(t)
}

/// One section as llama.cpp's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `default` for keys above the first header (`COMMON_PRESET_DEFAULT_NAME`), `*` for the
    /// global section.
    pub name: String,
    /// `(key, value)` in file order.
    pub entries: Vec<(String, String)>,
    /// 1-based line of the header (0 for the keys above the first header).
    pub line: usize,
}

/// Parse a preset file as `common/preset.cpp: parse_ini_from_file` does: every line a header,
/// a `key = value`, a comment or a blank, else the file is refused (the error names the line).
/// Sections come in file order; a repeated header starts over (the later one wins in llama.cpp,
/// see [`effective`]).
pub fn parse(text: &str) -> anyhow::Result<Vec<Section>> {
    let mut out: Vec<Section> = Vec::new();
    let mut lines = Vec::new();
    // newline ::= "\r\n" / "\n" / "\r"
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        lines.push(&rest[..end]);
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix("\r\n") {
            rest = r;
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    let blank = |c: char| c == ' ' || c == '\t';
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim_start_matches(blank);
        if t.is_empty() || t.starts_with(['#', ';']) {
            continue;
        }
        if let Some(h) = line.strip_prefix('[') {
            // header-line ::= "[" ws [^]]+ ws "]" eol  (the name keeps trailing blanks)
            let h = h.trim_start_matches(blank);
            let close = h.find(']');
            let ok = close.is_some_and(|c| c > 0) && {
                let after = h[close.unwrap() + 1..].trim_start_matches(blank);
                after.is_empty() || after.starts_with(['#', ';'])
            };
            anyhow::ensure!(ok, "line {}: not a valid preset header: {line:?}", n + 1);
            out.push(Section {
                name: h[..close.unwrap()].to_string(),
                entries: Vec::new(),
                line: n + 1,
            });
            continue;
        }
        // kv-line ::= ident ws "=" ws value eol
        let klen = line
            .char_indices()
            .take_while(|&(i, c)| {
                if i == 0 {
                    c.is_ascii_alphabetic() || c == '_'
                } else {
                    c.is_ascii_alphanumeric() || "_.-".contains(c)
                }
            })
            .count();
        let key = &line[..klen];
        let after = line[klen..].trim_start_matches(blank);
        let (true, Some(v)) = (klen > 0, after.strip_prefix('=')) else {
            anyhow::bail!(
                "line {}: llama.cpp's preset parser (common/preset.cpp: parse_ini_from_file) \
                 refuses it: {line:?}",
                n + 1
            );
        };
        let v = v.trim_start_matches(blank);
        let v = &v[..v.find(['#', ';']).unwrap_or(v.len())];
        let v = v.trim_end_matches(blank);
        if out.is_empty() {
            out.push(Section {
                name: "default".into(),
                entries: Vec::new(),
                line: 0,
            });
        }
        out.last_mut()
            .unwrap()
            .entries
            .push((key.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The section llama.cpp uses for `name`: the last header of that name (each header starts
/// the section over: `parsed[current_section] = {}`).
pub fn effective<'a>(sections: &'a [Section], name: &str) -> Option<&'a Section> {
    sections.iter().rev().find(|s| s.name == name)
}

/// The option a preset key stands for in `facts`' llama-server (`get_map_key_opt`: any name
/// without leading dashes, negated names included, or the environment variable, `LLAMA_ARG_NO_…`
/// for booleans), and whether the key is a negated name.
pub fn option_of_key<'a>(key: &str, facts: &'a BuildFacts) -> Option<(&'a OptionSpec, bool)> {
    let ex = facts.tools.get(Tool::Server.key())?;
    let mut found = None;
    // std::map assignment in option order: the last option registering the key wins.
    for o in &facts.options {
        if !o.applies_to(ex) {
            continue;
        }
        if o.names.iter().any(|n| n.trim_start_matches('-') == key) {
            found = Some((o, false));
        }
        if o.negated.iter().any(|n| n.trim_start_matches('-') == key) {
            found = Some((o, true));
        }
        if let Some(env) = &o.env {
            let neg = env.replacen("LLAMA_ARG_", "LLAMA_ARG_NO_", 1);
            if env == key {
                found = Some((o, false));
            } else if o.kind == ArgKind::Bool && !o.negated.is_empty() && neg == key {
                // LLAMA_ARG_NO_X maps to the option itself (not a negated name): its value is
                // stored as written (common/preset.cpp: parse_bool_arg only checks args_neg).
                found = Some((o, false));
            }
        }
    }
    found
}

/// A section's keys as the child llama-server's argv, as `common_preset::to_args` builds it:
/// each option's last name, a flag's false value as its negated name (or nothing), preset-only
/// keys and `version` left out. Options come in the order of their first key in the file (llama.cpp
/// orders them by first name; no placer option depends on the order). A key the build does not
/// know is an error, as in `load_from_ini`; where two keys name one option, the key that sorts
/// last wins (`parsed` is a `std::map` keyed by key).
pub fn section_argv(section: &Section, facts: &BuildFacts) -> anyhow::Result<Vec<String>> {
    // Later lines of the same key overwrite earlier ones.
    let mut by_key: std::collections::BTreeMap<&str, &str> = Default::default();
    let mut first_line: Vec<&str> = Vec::new();
    for (k, v) in &section.entries {
        if by_key.insert(k, v).is_none() {
            first_line.push(k);
        }
    }
    // Option (by its last name) → (value as stored, position of its first key).
    let mut opts: Vec<(&OptionSpec, String, usize)> = Vec::new();
    for (&k, &v) in &by_key {
        if k == RESERVED_KEY || PRESET_ONLY.contains(&k) {
            continue;
        }
        let (opt, negated) = option_of_key(k, facts).ok_or_else(|| {
            anyhow::anyhow!(
                "option '{k}' not recognized in preset '{}' (llama-server b{})",
                section.name,
                facts.build
            )
        })?;
        let stored = if negated && !opt.negated.is_empty() {
            // common/preset.cpp: parse_bool_arg
            if is_truthy(v) { "false" } else { "true" }.to_string()
        } else {
            v.to_string()
        };
        let pos = first_line.iter().position(|x| *x == k).unwrap();
        match opts.iter_mut().find(|(o, _, _)| std::ptr::eq(*o, opt)) {
            Some(e) => {
                e.1 = stored;
                e.2 = e.2.min(pos);
            }
            None => opts.push((opt, stored, pos)),
        }
    }
    opts.sort_by_key(|e| e.2);
    let mut argv = Vec::new();
    for (opt, value, _) in opts {
        let name = opt.names.last().cloned().unwrap_or_default();
        match opt.kind {
            ArgKind::TwoValues => anyhow::bail!(
                "{name}: two values, not supported in presets (common_preset::to_args)"
            ),
            ArgKind::Flag | ArgKind::Bool => {
                if is_falsey(&value) {
                    if let Some(neg) = opt.negated.last() {
                        argv.push(neg.clone());
                    }
                } else {
                    argv.push(name);
                }
            }
            ArgKind::Int | ArgKind::String => {
                argv.push(name);
                argv.push(value);
            }
        }
    }
    Ok(argv)
}

/// An argv with every option in the spelling `common_preset::to_args` gives it (its last name;
/// a negated boolean its last negated name), values unchanged: what a section written from
/// `argv` reads back as.
pub fn long_form(argv: &[String], facts: &BuildFacts) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let raw = &argv[i];
        i += 1;
        let opt = facts
            .option_for(raw, Tool::Server)
            .ok_or_else(|| anyhow::anyhow!("{raw}: not an option of llama-server"))?;
        let norm = if raw.starts_with("--") {
            raw.replace('_', "-")
        } else {
            raw.clone()
        };
        if opt.negated.contains(&norm) {
            out.push(opt.negated.last().unwrap().clone());
            continue;
        }
        out.push(opt.names.last().cloned().unwrap_or_default());
        if opt.takes_value() {
            if let Some(v) = argv.get(i) {
                out.push(v.clone());
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Whether placer decides the option of `key` (the launch parser reads it into the launch
/// rather than keeping it verbatim): such a key of an old section is replaced, any other
/// (`jinja`, sampler settings, `alias`, preset-only keys, keys this build does not know) is the
/// user's and carried over.
pub fn placer_decides(key: &str, value: &str, facts: &BuildFacts) -> bool {
    if key == RESERVED_KEY || PRESET_ONLY.contains(&key) {
        return false;
    }
    let one = Section {
        name: String::new(),
        entries: vec![(key.to_string(), value.to_string())],
        line: 0,
    };
    let Ok(argv) = section_argv(&one, facts) else {
        return false;
    };
    match crate::launch::parse_args(crate::launch::Tool::Server, &argv) {
        Ok(cfg) => cfg.passthrough.is_empty(),
        // Read by the launch parser, and refused by it: one of placer's own options.
        Err(_) => true,
    }
}

/// The user's keys of `old` that `new_text` (a section [`section_text`] wrote) does not already
/// set: `key = value` lines in file order, the last value of a repeated key.
fn carried(old: &Section, new_text: &str, facts: &BuildFacts) -> String {
    let new_opts: Vec<*const OptionSpec> = parse(new_text)
        .ok()
        .and_then(|v| v.into_iter().last())
        .map(|s| {
            s.entries
                .iter()
                .filter_map(|(k, _)| option_of_key(k, facts).map(|(o, _)| o as *const _))
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, (k, _)) in old.entries.iter().enumerate() {
        if seen.contains(&k.as_str()) {
            continue;
        }
        seen.push(k);
        let v = &old.entries[i..]
            .iter()
            .rev()
            .find(|(k2, _)| k2 == k)
            .unwrap()
            .1;
        if placer_decides(k, v, facts) {
            continue;
        }
        if option_of_key(k, facts).is_some_and(|(o, _)| new_opts.contains(&(o as *const _))) {
            continue;
        }
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// `text` with each new section added at the end or replaced where it is, by the same rules as
/// models.conf (`modelsconf::write::upsert_with_notes`: the old version kept as a commented-out
/// history entry above the new one, the last three kept, duplicates commented out, every other
/// byte unchanged, the file's line endings kept). Comment lines are comments to llama.cpp too,
/// so the history does not change what it reads. The user's keys of a replaced section
/// ([`placer_decides`] false) are carried into the new one. Returns notes for the user,
/// including one when llama.cpp would refuse the resulting file.
pub fn upsert(
    text: &str,
    new: &[crate::modelsconf::write::NewSection],
    facts: &BuildFacts,
) -> (String, Vec<String>) {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let old = parse(body).unwrap_or_default();
    let new: Vec<crate::modelsconf::write::NewSection> = new
        .iter()
        .map(|n| {
            let mut n = n.clone();
            if let Some(o) = effective(&old, &n.name) {
                let keep = carried(o, &n.text, facts);
                n.text.push_str(&keep);
            }
            n
        })
        .collect();
    let (out, notes) = crate::modelsconf::write::upsert_with_notes(text, &new);
    let mut notes: Vec<String> = notes
        .into_iter()
        .map(|n| n.replacen("models.conf had", "the preset file had", 1))
        .collect();
    let body = out.strip_prefix('\u{feff}').unwrap_or(&out);
    if body.len() != out.len() {
        notes.push(
            "the preset file starts with a byte-order mark, which llama.cpp's preset parser \
             refuses (common/preset.cpp: parse_ini_from_file); kept as it was"
                .into(),
        );
    } else if let Err(e) = parse(body) {
        notes.push(format!("llama-server will refuse this preset file: {e}"));
    }
    (out, notes)
}

/// Read `path` (missing = empty), [`upsert`], write it through `fsio::update` (lock, temporary
/// file, fsync, rename; an unchanged file is left alone).
pub fn upsert_file(
    path: &std::path::Path,
    new: &[crate::modelsconf::write::NewSection],
    facts: &BuildFacts,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    crate::fsio::update(path, crate::fsio::MODELS_CONF, |old| {
        let (text, n) = upsert(old.unwrap_or(""), new, facts);
        notes = n;
        Ok(text)
    })?;
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> &'static BuildFacts {
        crate::builds::for_build(11434).unwrap().facts
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn keys_are_llama_cpp_long_names() {
        let argv = s(&[
            "-m",
            "/m/a.gguf",
            "-c",
            "4096",
            "-ngl",
            "40",
            "-ot",
            "blk\\.(1|2)\\.ffn=CPU",
            "-nkvo",
            "--jinja",
            "-kvu",
            "--fit",
            "off",
        ]);
        let t = section_text("a", &["why".into()], &argv, facts()).unwrap();
        assert_eq!(
            t,
            "# why\n[a]\nmodel = /m/a.gguf\nctx-size = 4096\nn-gpu-layers = 40\n\
             override-tensor = blk\\.(1|2)\\.ffn=CPU\nkv-offload = false\njinja = true\n\
             kv-unified = true\nfit = off\n"
        );
        let secs = parse(&t).unwrap();
        let back = section_argv(&secs[0], facts()).unwrap();
        assert_eq!(back, long_form(&argv, facts()).unwrap());
        assert!(back.contains(&"--no-kv-offload".to_string()));
    }

    #[test]
    fn refuses_what_a_preset_cannot_carry() {
        let f = facts();
        assert!(entries(&s(&["--samplers", "top_k;top_p"]), f).is_err());
        assert!(entries(&s(&["-c", "1", "--ctx-size", "2"]), f).is_err());
        assert!(entries(&s(&["--no-such-flag"]), f).is_err());
        assert!(entries(&s(&["--alias", " x"]), f).is_err());
    }

    #[test]
    fn parser_follows_llama_cpp() {
        let t =
            "top = 1\n[*]\nc = 8\n; c\n[a] ; note\nctx-size = 4 # four\nno-kv-offload = true\r\n\
                 LLAMA_ARG_N_GPU_LAYERS = 9\n[a]\nc = 5\n";
        let secs = parse(t).unwrap();
        assert_eq!(secs[0].name, "default");
        assert_eq!(secs[1].name, "*");
        assert_eq!(secs[2].entries[0], ("ctx-size".into(), "4".into()));
        assert_eq!(
            effective(&secs, "a").unwrap().entries,
            vec![("c".into(), "5".into())]
        );
        let argv = section_argv(&secs[2], facts()).unwrap();
        assert_eq!(
            argv,
            s(&["--ctx-size", "4", "--no-kv-offload", "--n-gpu-layers", "9"])
        );
        assert!(parse("  c = 1\n").is_err());
        assert!(parse("[a] x\n").is_err());
        assert!(parse("[]\n").is_err());
        // Two keys of one option: the key that sorts last wins (std::map order).
        let secs = parse("[a]\nctx-size = 1\nc = 2\n").unwrap();
        assert_eq!(
            section_argv(&secs[0], facts()).unwrap(),
            s(&["--ctx-size", "1"])
        );
    }
}
