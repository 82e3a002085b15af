//! Models that are not on disk: a URL (`https://…/file.gguf`) or `hf:user/repo[:QUANT]` in
//! llama.cpp's `-hf` naming. Only the header is read (ranged GETs, src/remote/http.rs) and kept
//! in placer's header cache, so the second plan of the same model reads nothing from the
//! network; `--offline` reads only the caches. docs/remote.md.
//!
//! What a profile then says is llama.cpp's own form: `-hf user/repo:QUANT` (llama-server fetches
//! the same file by the same rules, src/remote/hf.rs), `-mu URL`, or the local path once
//! llama.cpp's cache holds the whole file.

pub mod cache;
pub mod hf;
pub mod http;

use crate::gguf::{self, GgufModel, Prefix, ReadOptions};
use anyhow::{bail, Context, Result};
use http::FetchStats;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seconds a server may stay silent before a request fails (`PLACER_HTTP_TIMEOUT`).
pub const DEFAULT_TIMEOUT_S: u64 = 30;
/// The first range asked for: most published headers are a few MB (docs/remote.md), so one or
/// two doublings read them.
pub const FIRST_RANGE: u64 = 1024 * 1024;
/// `common/common.cpp:common_get_model_endpoint`'s default.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co/";
/// The largest API answer read (`tree` listings of large repositories are a few hundred KB).
const MAX_API_BYTES: u64 = 64 * 1024 * 1024;

/// A model source that is not a path or a catalog id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `http://` or `https://` URL of a `.gguf` (any shard of a split model).
    Url(String),
    /// `hf:user/repo[:QUANT]`.
    Hf(hf::Repo),
}

impl Source {
    /// `None` when `word` is not a remote source; an error when it is one, badly formed.
    pub fn parse(word: &str) -> Option<Result<Source>> {
        if let Some(rest) = word.strip_prefix("hf:") {
            return Some(hf::Repo::parse(rest).map(Source::Hf));
        }
        let lower = word.get(..8).unwrap_or(word).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Some(Ok(Source::Url(word.to_string())));
        }
        None
    }

    /// How a launch names it (`LaunchConfig::model`): `hf:user/repo[:QUANT]` or the URL.
    pub fn launch_word(&self) -> String {
        match self {
            Source::Url(u) => u.clone(),
            Source::Hf(r) => format!("hf:{}", r.arg()),
        }
    }
}

/// One step of a fetch, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub url: &'a str,
    pub fetched: u64,
    pub file_size: Option<u64>,
}

/// Where and how remote headers are read.
#[derive(Debug, Clone)]
pub struct Options {
    /// Read only the caches (placer's and llama.cpp's); no request is made.
    pub offline: bool,
    /// How long a server may stay silent.
    pub timeout: Duration,
    /// Bytes asked for first.
    pub first_range: u64,
    /// placer's cache folder (headers/ under it); None: no cache.
    pub cache_dir: Option<PathBuf>,
    /// llama.cpp's model cache (`hf::llama_cache_dir`); None: not looked at.
    pub llama_cache: Option<PathBuf>,
    /// The Hub's base URL, ending in `/`.
    pub endpoint: String,
    /// `HF_TOKEN`, sent to the endpoint only (never to a plain URL's host).
    pub token: Option<String>,
    /// Called as bytes arrive.
    pub progress: Option<fn(&Progress)>,
}

impl Options {
    /// From the environment: `PLACER_OFFLINE`, `PLACER_HTTP_TIMEOUT`, `XDG_CACHE_HOME`,
    /// llama.cpp's `MODEL_ENDPOINT` / `HF_ENDPOINT`, `HF_TOKEN` and its cache variables.
    pub fn from_env() -> Options {
        use crate::env;
        let endpoint = std::env::var(env::MODEL_ENDPOINT)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                std::env::var(env::HF_ENDPOINT)
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .map(|mut e| {
                if !e.ends_with('/') {
                    e.push('/');
                }
                e
            })
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let timeout = std::env::var(env::HTTP_TIMEOUT)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(DEFAULT_TIMEOUT_S));
        Options {
            offline: env::flag(env::OFFLINE),
            timeout,
            first_range: FIRST_RANGE,
            cache_dir: env::cache_dir(),
            llama_cache: hf::llama_cache_dir(),
            endpoint,
            token: std::env::var(env::HF_TOKEN).ok().filter(|t| !t.is_empty()),
            progress: Some(print_progress),
        }
    }
}

/// `\r`-updated line on a terminal ("3.1 MB of a 61.0 GB file"); nothing otherwise (the summary
/// line after each file is printed either way).
fn print_progress(p: &Progress) {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(2) } != 1 {
        return;
    }
    let name = p.url.rsplit('/').next().unwrap_or(p.url);
    eprint!("\r{name}: {}   ", of_size(p.fetched, p.file_size));
}

/// "3.1 MB of a 61.0 GB file".
pub fn of_size(fetched: u64, size: Option<u64>) -> String {
    match size {
        Some(s) => format!("{} of a {} file", human(fetched), human(s)),
        None => format!("{} of a file of unknown size", human(fetched)),
    }
}

/// Decimal units, as download sizes are shown (61.0 GB, 3.1 MB, 56.7 kB).
pub fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.1} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} bytes")
    }
}

/// A remote model's header and how a launch should name it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Every shard's header, as `gguf::open` reads a local file.
    pub model: GgufModel,
    /// What `-m` / `-hf` / `-mu` should say: `hf:user/repo:QUANT`, the URL, or the local path
    /// when llama.cpp's cache holds the whole model.
    pub launch_model: String,
    /// The first shard in llama.cpp's cache, when it is there (then nothing was fetched).
    pub local: Option<PathBuf>,
    /// Per shard: what it cost (nothing when cached).
    pub shards: Vec<FetchStats>,
    /// The model's file name without `.gguf` and the split suffix (`GLM-4.7-Flash-Q4_K_M`).
    pub file_stem: String,
}

impl Remote {
    /// Body bytes read from the network, all shards.
    pub fn fetched(&self) -> u64 {
        self.shards.iter().map(|s| s.fetched).sum()
    }
}

/// Read the header(s) of a remote model.
pub fn open(source: &Source, opts: &Options, read: ReadOptions) -> Result<Remote> {
    match source {
        Source::Url(url) => {
            let (model, shards) = open_urls(url, None, opts, read)?;
            Ok(Remote {
                model,
                launch_model: url.clone(),
                local: None,
                shards,
                file_stem: stem(url),
            })
        }
        Source::Hf(repo) => open_hf(repo, opts, read),
    }
}

fn open_hf(repo: &hf::Repo, opts: &Options, read: ReadOptions) -> Result<Remote> {
    let plan = plan(repo, opts)?;
    // llama.cpp's cache holds every shard: read it there, and the profile names the file.
    if let Some(cache) = &opts.llama_cache {
        let paths: Vec<PathBuf> = plan
            .files
            .iter()
            .map(|f| hf::cached_path(cache, &plan.repo, &plan.commit, &f.path))
            .collect();
        if !paths.is_empty() && paths.iter().all(|p| p.is_file()) {
            let model = gguf::open_with(&paths[0], read)
                .with_context(|| format!("reading {} (llama.cpp's cache)", paths[0].display()))?;
            if model.has_tensor_data() {
                return Ok(Remote {
                    model,
                    launch_model: paths[0].to_string_lossy().into_owned(),
                    local: Some(paths[0].clone()),
                    shards: Vec::new(),
                    file_stem: stem(&plan.files[0].path),
                });
            }
        }
    }
    let first = plan.files.first().context("the resolution lists no file")?;
    let url = plan.url(&opts.endpoint, &first.path);
    let (model, shards) = open_urls(&url, opts.token.as_deref(), opts, read)
        .with_context(|| format!("hf:{}: {}", repo.arg(), first.path))?;
    Ok(Remote {
        model,
        launch_model: format!("hf:{}", repo.arg()),
        local: None,
        shards,
        file_stem: stem(&first.path),
    })
}

/// The file name of a path or URL without `.gguf` and the split suffix.
fn stem(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match hf::split_info(name) {
        Some((prefix, ..)) => prefix,
        None => name.to_string(),
    }
}

/// The commit and files `-hf` would load: placer's cached resolution, else (offline) llama.cpp's
/// cache, else the Hub's API.
fn plan(repo: &hf::Repo, opts: &Options) -> Result<hf::Plan> {
    let arg = repo.arg();
    if let Some(c) = &opts.cache_dir {
        if let Some(p) = cache::load_plan(c, &opts.endpoint, &arg) {
            return Ok(p);
        }
    }
    if opts.offline {
        if let Some(p) = plan_from_llama_cache(repo, opts) {
            return Ok(p);
        }
        bail!(
            "hf:{arg}: not in placer's header cache nor in llama.cpp's cache, and --offline \
             reads nothing from the network; run once without --offline"
        );
    }
    let agent = http::agent(opts);
    let token = opts.token.as_deref();
    let refs_url = format!("{}api/models/{}/refs", opts.endpoint, repo.repo);
    let refs = api_json(&agent, &refs_url, token, opts)?;
    let commit = hf::commit_from_refs(&refs)
        .with_context(|| format!("{refs_url}: no branch with a valid commit"))?;
    let tree_url = format!(
        "{}api/models/{}/tree/{commit}?recursive=true",
        opts.endpoint, repo.repo
    );
    let files = hf::files_from_tree(&api_json(&agent, &tree_url, token, opts)?)?;
    let primary = hf::best_model(&files, &repo.tag).with_context(|| {
        format!(
            "hf:{arg}: no GGUF model file {} in the repository (it has: {})",
            if repo.tag.is_empty() {
                "at all".to_string()
            } else {
                format!("matching the quant tag {}", repo.tag)
            },
            hf::gguf_names(&files)
        )
    })?;
    let plan = hf::Plan {
        repo: repo.repo.clone(),
        tag: repo.tag.clone(),
        commit,
        files: hf::split_files(&files, primary),
    };
    if let Some(c) = &opts.cache_dir {
        if let Err(e) = cache::store_plan(c, &opts.endpoint, &arg, &plan) {
            eprintln!("warning: {e:#} (the next plan asks the Hub again)");
        }
    }
    Ok(plan)
}

fn plan_from_llama_cache(repo: &hf::Repo, opts: &Options) -> Option<hf::Plan> {
    let cache = opts.llama_cache.as_ref()?;
    let commit = hf::cached_commit(cache, &repo.repo)?;
    let files = hf::cached_files(cache, &repo.repo, &commit);
    let primary = hf::best_model(&files, &repo.tag)?;
    Some(hf::Plan {
        repo: repo.repo.clone(),
        tag: repo.tag.clone(),
        commit,
        files: hf::split_files(&files, primary),
    })
}

fn api_json(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    opts: &Options,
) -> Result<serde_json::Value> {
    let resp = http::get(agent, url, token, None, opts.timeout)?;
    let body = http::body_capped(resp, MAX_API_BYTES, url)?;
    serde_json::from_slice(&body).with_context(|| format!("{url}: the answer is not JSON"))
}

/// Every shard's header, given the URL of any shard (split names as for files:
/// `gguf::open_split`).
fn open_urls(
    url: &str,
    token: Option<&str>,
    opts: &Options,
    read: ReadOptions,
) -> Result<(GgufModel, Vec<FetchStats>)> {
    let agent = http::agent(opts);
    let mut stats = Vec::new();
    let model = gguf::open_split(Path::new(url), |p: &Path, _idx| -> Result<GgufModel> {
        let u = p.to_str().context("a URL that is not UTF-8")?;
        let (model, s) = header(&agent, u, token, opts, read)?;
        if opts.progress.is_some() {
            let name = u.rsplit('/').next().unwrap_or(u);
            let how = if s.from_cache {
                "placer's header cache".to_string()
            } else {
                format!(
                    "{} request{}",
                    s.requests,
                    if s.requests == 1 { "" } else { "s" }
                )
            };
            eprintln!(
                "\rheader of {name}: {} ({how})",
                of_size(s.header_bytes.max(s.fetched), s.file_size)
            );
        }
        stats.push(s);
        Ok(model)
    })?;
    Ok((model, stats))
}

/// One shard's header: from the cache, else fetched (and cached).
fn header(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    opts: &Options,
    read: ReadOptions,
) -> Result<(GgufModel, FetchStats)> {
    if let Some(c) = &opts.cache_dir {
        if let Some((bytes, mut s)) = cache::load_header(c, url) {
            let size = s.file_size.unwrap_or(u64::MAX).max(bytes.len() as u64);
            if let Ok(Prefix::Complete(mut m)) = gguf::parse_prefix(&bytes, size, read) {
                m.shards[0].path = None;
                m.shards[0].file_size = s.file_size;
                s.from_cache = true;
                s.fetched = 0;
                s.requests = 0;
                return Ok((m, s));
            }
        }
    }
    if opts.offline {
        bail!(
            "{url}: not in placer's header cache, and --offline reads nothing from the network; \
             run once without --offline"
        );
    }
    let (model, bytes, s) = http::fetch_header(agent, url, token, opts, read)?;
    if let Some(c) = &opts.cache_dir {
        if let Err(e) = cache::store_header(c, &bytes, &s) {
            eprintln!("warning: {e:#} (the next plan fetches the header again)");
        }
    }
    Ok((model, s))
}
