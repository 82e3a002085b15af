//! The header of a GGUF file on an HTTP server, read by ranged GETs of growing size until the
//! tensor table is complete: never the tensor data.
//!
//! Each round asks for the bytes after those at hand (`Range: bytes=have-(want-1)`), parses the
//! prefix with the one GGUF parser (`gguf::parse_prefix`), and, when the header runs on, asks for
//! at least twice as much. A server that ignores `Range` and answers `200` with the whole body is
//! read only as far as the header needs, then the connection is dropped. A server that closes
//! early is asked again from where it stopped; redirects are followed (ureq, at most
//! [`MAX_REDIRECTS`]).

use super::{human, Options, Progress};
use crate::gguf::{self, GgufModel, Prefix, ReadOptions};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::time::Duration;

/// Redirects followed per request (the Hub answers a file request with one redirect to its
/// storage).
pub const MAX_REDIRECTS: u32 = 10;
/// The largest header placer reads remotely. Published headers are a few MB (the tokenizer lists
/// dominate: docs/remote.md); this bound keeps a server that sends no GGUF from streaming
/// gigabytes into memory.
pub const MAX_HEADER_BYTES: u64 = 512 * 1024 * 1024;
/// Rounds that bring no new byte before placer gives up on a server.
const MAX_STALLS: u32 = 3;
/// Bytes copied from a response per read (progress is shown between reads).
const CHUNK: usize = 256 * 1024;

/// What reading one remote header cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchStats {
    /// The file's URL as given (before redirects).
    pub url: String,
    /// The file's size (`Content-Range`, else `Content-Length`), when the server said.
    pub file_size: Option<u64>,
    /// Body bytes read from the network.
    pub fetched: u64,
    /// Bytes of the header (up to the data section).
    pub header_bytes: u64,
    /// HTTP requests made (redirects not counted).
    pub requests: u32,
    /// The server's `ETag`, when it sent one.
    pub etag: Option<String>,
    /// True when the header came from placer's header cache (nothing fetched).
    #[serde(default)]
    pub from_cache: bool,
}

/// The agent every request uses: timeouts from [`Options`], redirects followed, the
/// `Authorization` header kept only on redirects to the same host.
pub fn agent(opts: &Options) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(opts.timeout)
        .timeout_read(opts.timeout)
        .timeout_write(opts.timeout)
        .redirects(MAX_REDIRECTS)
        .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
        .user_agent(concat!("placer/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// GET `url` with the token (when given) and extra headers; HTTP errors become messages that say
/// what to do.
pub fn get(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    range: Option<(u64, u64)>,
    timeout: Duration,
) -> Result<ureq::Response> {
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some((a, b)) = range {
        req = req.set("Range", &format!("bytes={a}-{b}"));
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => {
            let hint = match code {
                401 | 403 => {
                    "; the file may be gated or private: set HF_TOKEN to a token that may read it"
                }
                404 => "; check the repository, the quant tag or the URL",
                416 => "; the server says the file is shorter than the bytes asked for",
                429 | 500..=599 => "; the server is busy or failing: try again later",
                _ => "",
            };
            bail!(
                "GET {url}: HTTP {code} {}{hint}",
                r.status_text().chars().take(80).collect::<String>()
            )
        }
        Err(ureq::Error::Transport(t)) => {
            let timed_out = t.kind() == ureq::ErrorKind::Io
                && format!("{t}").to_ascii_lowercase().contains("timed out");
            if timed_out {
                bail!(
                    "GET {url}: no answer within {} s; try again, or give the server more time \
                     with {}=SECONDS",
                    timeout.as_secs_f64(),
                    crate::env::HTTP_TIMEOUT
                )
            }
            Err(anyhow!("GET {url}: {t}"))
        }
    }
}

/// `Content-Range: bytes a-b/total` → (a, b, total); total `*` is None.
fn content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

/// The whole body of a small response (API JSON), at most `max` bytes.
pub fn body_capped(resp: ureq::Response, max: u64, url: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.into_reader()
        .take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading the answer of {url}"))?;
    if out.len() as u64 > max {
        bail!("the answer of {url} is larger than {} bytes", max);
    }
    Ok(out)
}

/// Read the GGUF header of the file at `url`: the parsed shard, the header's bytes (exactly up
/// to the data section, for the cache) and what it cost.
pub fn fetch_header(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    opts: &Options,
    read: ReadOptions,
) -> Result<(GgufModel, Vec<u8>, FetchStats)> {
    let mut buf: Vec<u8> = Vec::new();
    let mut stats = FetchStats {
        url: url.to_string(),
        file_size: None,
        fetched: 0,
        header_bytes: 0,
        requests: 0,
        etag: None,
        from_cache: false,
    };
    let mut want = opts.first_range.max(64);
    // A 200 answer (the server ignored Range): the body, read on as the header needs.
    let mut stream: Option<Box<dyn Read + Send>> = None;
    let mut stalls = 0;
    loop {
        let before = buf.len() as u64;
        if stream.is_none() {
            stream = request(agent, url, token, opts, &mut buf, want, &mut stats)?;
        }
        if let Some(s) = stream.as_mut() {
            let ended = read_into(s, &mut buf, want, &mut stats, opts)?;
            if ended {
                stream = None;
                // The body ended: that is the file's end, unless the server announced more.
                match stats.file_size {
                    Some(n) if (buf.len() as u64) < n => {}
                    _ => stats.file_size = Some(buf.len() as u64),
                }
            }
        }
        if buf.len() as u64 == before {
            stalls += 1;
            if stalls >= MAX_STALLS {
                bail!(
                    "{url}: the server sent no more bytes after {} ({} tries); try again later",
                    human(before),
                    MAX_STALLS
                );
            }
        } else {
            stalls = 0;
        }
        let size = stats.file_size.unwrap_or(u64::MAX);
        let parsed = gguf::parse_prefix(&buf, size.max(buf.len() as u64), read)
            .with_context(|| format!("reading the GGUF header of {url}"))?;
        match parsed {
            Prefix::Complete(mut model) => {
                let header = model.shards[0].data_offset.min(buf.len() as u64);
                buf.truncate(header as usize);
                stats.header_bytes = header;
                model.shards[0].path = None;
                model.shards[0].file_size = stats.file_size;
                return Ok((model, buf, stats));
            }
            Prefix::NeedMore(n) => {
                if before >= MAX_HEADER_BYTES || n > MAX_HEADER_BYTES {
                    bail!(
                        "{url}: the GGUF header goes on past {} (placer reads at most {} of a \
                         remote header); download the file and give its path",
                        human(n),
                        human(MAX_HEADER_BYTES)
                    );
                }
                let have = buf.len() as u64;
                want = n
                    .max(have.saturating_mul(2))
                    .min(size)
                    .min(MAX_HEADER_BYTES);
            }
        }
    }
}

/// One ranged GET for the bytes `buf.len()..want`. A 206 answer's body is appended here; a 200
/// answer (Range ignored) is returned as a stream positioned at `buf.len()`.
fn request(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    opts: &Options,
    buf: &mut Vec<u8>,
    want: u64,
    stats: &mut FetchStats,
) -> Result<Option<Box<dyn Read + Send>>> {
    let have = buf.len() as u64;
    stats.requests += 1;
    let resp = get(agent, url, token, Some((have, want - 1)), opts.timeout)?;
    if stats.etag.is_none() {
        stats.etag = resp.header("ETag").map(str::to_string);
    }
    match resp.status() {
        206 => {
            let (a, b, total) = resp
                .header("Content-Range")
                .and_then(content_range)
                .ok_or_else(|| anyhow!("{url}: a 206 answer without a valid Content-Range"))?;
            if a != have || b < a {
                bail!("{url}: asked for bytes from {have}, the server sent {a}-{b}");
            }
            if let Some(t) = total {
                stats.file_size = Some(t);
            }
            let mut body: Box<dyn Read + Send> = Box::new(resp.into_reader().take(b - a + 1));
            read_into(&mut body, buf, want.min(b + 1), stats, opts)?;
            Ok(None)
        }
        200 => {
            stats.file_size = resp.header("Content-Length").and_then(|v| v.parse().ok());
            let mut body: Box<dyn Read + Send> = Box::new(resp.into_reader());
            // The body starts at byte 0: pass over what is already at hand.
            let mut skipped = 0u64;
            let mut scratch = vec![0u8; CHUNK];
            while skipped < have {
                let k = (have - skipped).min(CHUNK as u64) as usize;
                let n = body
                    .read(&mut scratch[..k])
                    .with_context(|| format!("reading {url}"))?;
                if n == 0 {
                    bail!("{url}: the body ended after {skipped} bytes, before byte {have}");
                }
                skipped += n as u64;
                stats.fetched += n as u64;
            }
            Ok(Some(body))
        }
        s => bail!("GET {url}: unexpected HTTP {s} to a range request"),
    }
}

/// Append bytes from `r` until `buf` holds `want`; true when the body ended first (or broke off).
fn read_into(
    r: &mut Box<dyn Read + Send>,
    buf: &mut Vec<u8>,
    want: u64,
    stats: &mut FetchStats,
    opts: &Options,
) -> Result<bool> {
    let mut chunk = vec![0u8; CHUNK];
    while (buf.len() as u64) < want {
        let k = (want - buf.len() as u64).min(CHUNK as u64) as usize;
        let n = match r.read(&mut chunk[..k]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => bail!(
                "{}: the server stopped sending for {} s; try again, or give it more time with \
                 {}=SECONDS",
                stats.url,
                opts.timeout.as_secs_f64(),
                crate::env::HTTP_TIMEOUT
            ),
            // The connection broke off: keep what arrived, the next round asks again.
            Err(_) => return Ok(true),
        };
        if n == 0 {
            return Ok(true);
        }
        buf.extend_from_slice(&chunk[..n]);
        stats.fetched += n as u64;
        if let Some(p) = &opts.progress {
            p(&Progress {
                url: &stats.url,
                fetched: stats.fetched,
                file_size: stats.file_size,
            });
        }
    }
    Ok(false)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_forms() {
        assert_eq!(
            super::content_range("bytes 0-99/1000"),
            Some((0, 99, Some(1000)))
        );
        assert_eq!(super::content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(super::content_range("items 0-1/2"), None);
    }
}
