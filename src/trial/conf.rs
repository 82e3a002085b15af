//! The measured numbers into models.conf: `# placer trial …` comment lines directly above each
//! tried section's header (replacing `# NOT YET TESTED` and the lines of an earlier trial), the
//! chosen section marked. Every other byte of the file stays as it was (docs/users.md: the
//! comments carry the measured results; docs/models-conf.md).

use super::choose::Choice;
use super::TrialResult;
use std::path::Path;

/// Prefix of every line `trial --write` adds (and replaces on the next trial).
pub const MARK: &str = "# placer trial";

fn is_ours(line: &str) -> bool {
    let t = line.trim();
    t.starts_with(MARK) || t.eq_ignore_ascii_case("# NOT YET TESTED")
}

/// The comment lines for one result (without line endings).
pub fn comment_lines(r: &TrialResult, chosen: bool, date: &str, choice: &Choice) -> Vec<String> {
    let build = r
        .build
        .as_deref()
        .map(|b| format!("llama.cpp build {b}"))
        .unwrap_or_else(|| "llama.cpp".into());
    let mut v = Vec::new();
    if r.outcome.ok() {
        let mem: Vec<String> = r
            .memory
            .iter()
            .map(|d| match d.percent() {
                Some(p) => format!("{} {:.0} MiB ({p:.0}%)", d.name, d.mib),
                None => format!("{} {:.0} MiB", d.name, d.mib),
            })
            .collect();
        let f = |x: Option<f64>| x.map(|t| format!("{t:.1}")).unwrap_or_else(|| "–".into());
        let w = &r.workload;
        v.push(format!(
            "{MARK} {date} ({build}): decode {} t/s, prefill {} t/s ({} cached + {} new tokens, {} generated); long prompt {} tokens: prefill {} t/s, survived; memory {}",
            f(r.decode_tps()),
            f(r.prefill_tps()),
            w.prefix,
            w.chunk,
            w.gen,
            r.long_tokens,
            f(r.long_prefill_tps()),
            mem.join(", ")
        ));
    } else {
        let first = r
            .failure_lines
            .first()
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        v.push(format!(
            "{MARK} {date} ({build}): FAILED, {}{}",
            r.outcome.label(),
            first
        ));
    }
    if chosen {
        v.push(format!("{MARK}: CHOSEN, {}", choice.reason));
    }
    v
}

/// `text` with the comment lines of every result above its section's header.
pub fn annotate(text: &str, results: &[TrialResult], choice: &Choice, date: &str) -> String {
    let sections = crate::modelsconf::read::parse(text);
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let Some(s) = sections.iter().find(|s| s.name == r.name) else {
            continue;
        };
        let h = s.line_range.0;
        let eol = if lines[h].ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let new: Vec<String> = comment_lines(r, choice.winner == Some(i), date, choice)
            .into_iter()
            .map(|l| format!("{l}{eol}"))
            .collect();
        edits.push((h - s.comments.len(), h, new));
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.1));
    for (start, h, new) in edits {
        let kept: Vec<String> = lines[start..h]
            .iter()
            .filter(|l| !is_ours(l))
            .cloned()
            .collect();
        let mut block = kept;
        block.extend(new);
        lines.splice(start..h, block);
    }
    lines.concat()
}

/// Refuse before anything runs when the file cannot be rewritten.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(
        !meta.permissions().readonly(),
        "{} is read-only: --write cannot record the results (make it writable, or run without --write)",
        path.display()
    );
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".placer-trial-{}.probe", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        anyhow::anyhow!(
            "cannot write in {} (where {} is replaced atomically): {e}",
            dir.display(),
            path.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Read, annotate, write back.
pub fn write_results(
    path: &Path,
    results: &[TrialResult],
    choice: &Choice,
    date: &str,
) -> anyhow::Result<()> {
    write_results_with(path, results, choice, date, &[])
}

/// [`write_results`], first adding (or replacing) `new` sections: a winner that is no section
/// of the file (a `--fit` baseline, a search step) is written as one, so it runs as written.
/// One read-modify-write under the file's lock.
pub fn write_results_with(
    path: &Path,
    results: &[TrialResult],
    choice: &Choice,
    date: &str,
    new: &[crate::modelsconf::write::NewSection],
) -> anyhow::Result<()> {
    // Read-modify-write under the file's lock, atomically (src/fsio.rs, docs/files.md).
    crate::fsio::update(path, crate::fsio::MODELS_CONF, |old| {
        let text = old.ok_or_else(|| anyhow::anyhow!("{} disappeared", path.display()))?;
        let text = if new.is_empty() {
            text.to_string()
        } else {
            crate::modelsconf::write::upsert(text, new)
        };
        Ok(annotate(&text, results, choice, date))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{measure::Workload, Kind, Outcome};
    use super::*;

    #[test]
    fn annotate_replaces_not_yet_tested_and_keeps_other_bytes() {
        let text = "# notes\r\n[a]\r\nNAME=a\r\n\r\n# why b\n# NOT YET TESTED\n[b]\nNAME=b\n";
        let r = |n: &str, outcome| TrialResult {
            name: n.into(),
            kind: Kind::Other,
            outcome,
            failure_lines: vec!["error: boom".into()],
            measurements: vec![],
            memory: vec![],
            load_s: None,
            port: None,
            argv: vec![],
            predicted: None,
            workload: Workload {
                prefix: 0,
                chunk: 1,
                gen: 1,
            },
            long_tokens: 0,
            run_dir: None,
            build: Some("11434".into()),
            ports_skipped: vec![],
            prefix: super::super::measure::PrefixSource::None,
        };
        let results = vec![
            r(
                "b",
                Outcome::LoadFailed {
                    why: "x".into(),
                    oom: false,
                },
            ),
            r("a", Outcome::Ok),
        ];
        let choice = Choice {
            winner: Some(1),
            reason: "only one".into(),
            resolve: None,
        };
        let out = annotate(text, &results, &choice, "2027-01-01");
        assert!(!out.contains("NOT YET TESTED"));
        assert!(out.contains("# why b\n# placer trial 2027-01-01 (llama.cpp build 11434): FAILED, failed to load: error: boom\n[b]\n"));
        assert!(out.contains("# notes\r\n# placer trial 2027-01-01"));
        assert!(out.contains("CHOSEN, only one\r\n[a]\r\n"));
        let strip = |t: &str| -> String {
            t.split_inclusive('\n')
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect()
        };
        assert_eq!(strip(text), strip(&out));
        // A second trial replaces the first one's lines.
        let again = annotate(&out, &results, &choice, "2027-01-02");
        assert_eq!(again.matches(MARK).count(), out.matches(MARK).count());
        assert!(!again.contains("2027-01-01"));
    }
}
