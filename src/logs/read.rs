//! Reading files: gzip or plain, any encoding, one file or many (in parallel), then dispatching
//! to the text/JSONL reader or the llama-bench reader.

use super::{bench, text, LogError, LogRun};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Result of reading one file: the run, or why it was skipped.
#[derive(Debug)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub result: Result<LogRun, LogError>,
}

/// Bytes of a file, gunzipped (streaming, decompressed size capped at `fsio::LOG`) when it
/// starts with the gzip magic. A gzip stream that ends early (a log copied while still being
/// written) yields what could be read, and `true`.
pub fn decode_bytes(raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        return crate::fsio::gunzip_capped(raw, Path::new("(gzip data)"), crate::fsio::LOG)
            .map_err(|e| format!("{e:#}"));
    }
    Ok((raw.to_vec(), false))
}

/// Parse the bytes of one file (plain or gzip; invalid UTF-8 replaced, never fatal).
pub fn parse_bytes(source: &str, raw: &[u8]) -> Result<LogRun, LogError> {
    let (bytes, cut_short) = decode_bytes(raw)
        .map_err(|e| LogError::Io(source.to_string(), std::io::Error::other(e)))?;
    parse_decoded(source, bytes, cut_short)
}

fn parse_decoded(source: &str, bytes: Vec<u8>, cut_short: bool) -> Result<LogRun, LogError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LogError::Empty(source.to_string()));
    }
    let content = super::decode::decode_text(&bytes)
        .map_err(|why| LogError::NotText(source.to_string(), why))?;
    let mut run = if let Some(run) = bench::parse_structured(source, &content) {
        run
    } else {
        text::parse(source, &content).ok_or_else(|| LogError::NotALlamaLog(source.to_string()))?
    };
    if cut_short {
        run.truncated = true;
        run.warnings
            .push("gzip stream ends early: the file was cut short".into());
    }
    Ok(run)
}

pub fn parse_path(path: &Path) -> Result<LogRun, LogError> {
    let source = path.display().to_string();
    // Bounded, never blocking (a FIFO is refused), gunzipped as a stream: src/fsio.rs.
    let (bytes, cut_short) = crate::fsio::read_maybe_gzip(path, crate::fsio::LOG).map_err(|e| {
        // A file too large to read is still named for what it is (an executable, a model).
        if let Ok(head) = crate::fsio::read_head(path, crate::fsio::LOG.what, 16) {
            if let Err(why @ super::decode::NotText::Executable(_)) =
                super::decode::decode_text(&head)
            {
                return LogError::NotText(source.clone(), why);
            }
        }
        LogError::Io(source.clone(), std::io::Error::other(format!("{e:#}")))
    })?;
    parse_decoded(&source, bytes, cut_short)
}

/// Parse many files in parallel (rayon); the order of the input is kept. `on_done` is called
/// once per file (from worker threads) so that a caller can drive a progress bar.
pub fn parse_paths<F>(paths: &[PathBuf], on_done: F) -> Vec<ParsedFile>
where
    F: Fn(&Path) + Sync,
{
    paths
        .par_iter()
        .map(|p| {
            let result = parse_path(p);
            on_done(p);
            ParsedFile {
                path: p.clone(),
                result,
            }
        })
        .collect()
}
