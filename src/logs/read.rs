//! Reading files: gzip or plain, any encoding, one file or many (in parallel), then dispatching
//! to the text/JSONL reader or the llama-bench reader.

use super::{bench, text, LogError, LogRun};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Result of reading one file: the run, or why it was skipped.
#[derive(Debug)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub result: Result<LogRun, LogError>,
}

/// Bytes of a file, gunzipped when it starts with the gzip magic. A gzip stream that ends early
/// (a log copied while still being written) yields what could be read, and `true`.
pub fn decode_bytes(raw: &[u8]) -> (Vec<u8>, bool) {
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        let mut dec = flate2::read::MultiGzDecoder::new(raw);
        let mut buf = [0u8; 64 * 1024];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => return (out, false),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return (out, true),
            }
        }
    }
    (raw.to_vec(), false)
}

/// Parse the bytes of one file (plain or gzip; invalid UTF-8 replaced, never fatal).
pub fn parse_bytes(source: &str, raw: &[u8]) -> Result<LogRun, LogError> {
    let (bytes, cut_short) = decode_bytes(raw);
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
    let raw = std::fs::read(path).map_err(|e| LogError::Io(source.clone(), e))?;
    parse_bytes(&source, &raw)
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
