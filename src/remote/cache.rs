//! placer's cache of remote headers: `<cache>/headers/<key>.gguf` holds the header's bytes (up
//! to the data section) and `<key>.json` the URL, the server's ETag, the file's size and what the
//! fetch cost; `<cache>/headers/hf-<key>.json` holds an `hf:` resolution (commit and files). The
//! key is a hash of the URL (of `repo:tag` for resolutions); the URL is stored and compared on
//! read, so two URLs never share an entry. Written through `fsio` (atomic, locked).

use super::hf::Plan;
use super::http::FetchStats;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The largest cached header read back (`http::MAX_HEADER_BYTES`).
const HEADER_LIMIT: crate::fsio::Limit = crate::fsio::Limit {
    what: "a cached GGUF header",
    max_bytes: super::http::MAX_HEADER_BYTES,
};
const META_LIMIT: crate::fsio::Limit = crate::fsio::Limit {
    what: "a header cache entry",
    max_bytes: 1024 * 1024,
};

/// FNV-1a 64: a stable file name for a URL (not a security boundary: the URL is checked).
fn key(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The headers folder under `cache`.
pub fn headers_dir(cache: &Path) -> PathBuf {
    cache.join("headers")
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the header cache {}; set {} to a folder you can write",
            dir.display(),
            crate::env::XDG_CACHE_HOME
        )
    })
}

/// A cached header: its bytes and the stats of the fetch that brought it.
pub fn load_header(cache: &Path, url: &str) -> Option<(Vec<u8>, FetchStats)> {
    let dir = headers_dir(cache);
    let k = key(url);
    let meta = crate::fsio::read_text(&dir.join(format!("{k}.json")), META_LIMIT).ok()?;
    let stats: FetchStats = serde_json::from_str(&meta).ok()?;
    if stats.url != url {
        return None;
    }
    let bytes = crate::fsio::read_bytes(&dir.join(format!("{k}.gguf")), HEADER_LIMIT).ok()?;
    (bytes.len() as u64 == stats.header_bytes).then_some((bytes, stats))
}

/// Store a header (bytes first, so an entry whose JSON reads always has its bytes).
pub fn store_header(cache: &Path, bytes: &[u8], stats: &FetchStats) -> Result<()> {
    let dir = headers_dir(cache);
    ensure_dir(&dir)?;
    let k = key(&stats.url);
    crate::fsio::replace(&dir.join(format!("{k}.gguf")), bytes)?;
    let json = serde_json::to_string_pretty(stats)?;
    crate::fsio::replace(&dir.join(format!("{k}.json")), json.as_bytes())?;
    Ok(())
}

/// A cached `hf:` resolution for `endpoint` + `repo:tag`.
pub fn load_plan(cache: &Path, endpoint: &str, arg: &str) -> Option<Plan> {
    let id = format!("{endpoint}\n{arg}");
    let path = headers_dir(cache).join(format!("hf-{}.json", key(&id)));
    let text = crate::fsio::read_text(&path, META_LIMIT).ok()?;
    let (stored, plan): (String, Plan) = serde_json::from_str(&text).ok()?;
    (stored == id).then_some(plan)
}

/// Store an `hf:` resolution.
pub fn store_plan(cache: &Path, endpoint: &str, arg: &str, plan: &Plan) -> Result<()> {
    let dir = headers_dir(cache);
    ensure_dir(&dir)?;
    let id = format!("{endpoint}\n{arg}");
    let json = serde_json::to_string_pretty(&(id.as_str(), plan))?;
    crate::fsio::replace(&dir.join(format!("hf-{}.json", key(&id))), json.as_bytes())?;
    Ok(())
}
