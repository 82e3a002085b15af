//! Remote models (src/remote, docs/remote.md) against a loopback HTTP server started here: range
//! support, redirects, a server that ignores Range, one that closes early, a 404, a silent one;
//! the Hub's API for `hf:`; the header cache and `--offline`; the CLI end to end. The anatomy read
//! remotely must equal the local read byte for byte (as JSON).

use placer::gguf::{self, GgufModel, Prefix, ReadOptions};
use placer::remote::{self, Options, Source};
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Connections one test server accepts at most (every scenario needs a handful).
const MAX_CONNECTIONS: usize = 200;
/// The most a server sends on one connection (a client that does not stop is cut off here).
const MAX_SENT: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// 206 with Content-Range for every Range request.
    Ranges,
    /// 200 with the whole body, Range ignored.
    IgnoreRange,
    /// 206 headers announcing the whole range, then at most this many body bytes, then close.
    CloseEarly(u64),
    /// Read the request, answer nothing (until the client gives up or the server stops).
    Silent,
}

#[derive(Clone)]
enum Body {
    Bytes(Arc<Vec<u8>>),
    /// `head` then zeros up to `size` bytes: a file as large as a published model.
    Virtual {
        head: Arc<Vec<u8>>,
        size: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Virtual { size, .. } => *size,
        }
    }
    fn byte_range(&self, a: u64, b: u64) -> Vec<u8> {
        let head = match self {
            Body::Bytes(x) | Body::Virtual { head: x, .. } => x,
        };
        (a..b)
            .map(|i| head.get(i as usize).copied().unwrap_or(0))
            .collect()
    }
}

#[derive(Default)]
struct Routes {
    files: HashMap<String, Body>,
    json: HashMap<String, String>,
    redirects: HashMap<String, String>,
}

#[derive(Debug, Clone)]
struct Logged {
    path: String,
    auth: Option<String>,
}

struct Server {
    base: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Logged>>>,
    sent: Arc<AtomicU64>,
    accept: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Server {
    fn start(mode: Mode, routes: Routes) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let routes = Arc::new(routes);
        let (st, lg, se, b) = (stop.clone(), log.clone(), sent.clone(), base.clone());
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            let started = Instant::now();
            while !st.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
                match listener.accept() {
                    Ok((s, _)) if conns.len() < MAX_CONNECTIONS => {
                        let (st, lg, se, r, b) = (
                            st.clone(),
                            lg.clone(),
                            se.clone(),
                            routes.clone(),
                            b.clone(),
                        );
                        conns.push(std::thread::spawn(move || {
                            serve(s, mode, &r, &lg, &se, &st, &b)
                        }));
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            conns
        });
        Server {
            base,
            stop,
            log,
            sent,
            accept: Some(accept),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            for c in a.join().unwrap_or_default() {
                let _ = c.join();
            }
        }
    }
}

fn serve(
    s: TcpStream,
    mode: Mode,
    routes: &Routes,
    log: &Mutex<Vec<Logged>>,
    sent: &AtomicU64,
    stop: &AtomicBool,
    base: &str,
) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = path.trim_start_matches('/').to_string();
    let (mut range, mut auth) = (None, None);
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "range" => range = Some(v.trim().to_string()),
            "authorization" => auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    log.lock().unwrap().push(Logged {
        path: path.clone(),
        auth,
    });
    let mut w = s;
    if mode == Mode::Silent {
        let t = Instant::now();
        while !stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    if let Some(to) = routes.redirects.get(&path) {
        let _ = write!(
            w,
            "HTTP/1.1 302 Found\r\nLocation: {base}{to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if let Some(j) = routes.json.get(&path) {
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{j}",
            j.len()
        );
        return;
    }
    let Some(body) = routes.files.get(&path) else {
        let _ = write!(
            w,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
        );
        return;
    };
    let size = body.len();
    let etag = format!("\"len-{size}\"");
    let span = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (a, b, status) = match (mode, span) {
        (Mode::IgnoreRange, _) | (_, None) => (0, size, "200 OK".to_string()),
        (_, Some((a, _))) if a >= size => {
            let _ = write!(w, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        (_, Some((a, b))) => (a, (b + 1).min(size), "206 Partial Content".to_string()),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\nConnection: close\r\n",
        b - a
    );
    if status.starts_with("206") {
        head.push_str(&format!("Content-Range: bytes {a}-{}/{size}\r\n", b - 1));
    }
    head.push_str("\r\n");
    if w.write_all(head.as_bytes()).is_err() {
        return;
    }
    let end = match mode {
        Mode::CloseEarly(n) => b.min(a + n),
        _ => b,
    };
    let mut at = a;
    let mut total = 0u64;
    while at < end && total < MAX_SENT && !stop.load(Ordering::SeqCst) {
        let k = (end - at).min(64 * 1024);
        let chunk = body.byte_range(at, at + k);
        if w.write_all(&chunk).is_err() {
            break;
        }
        at += k;
        total += k;
        sent.fetch_add(k, Ordering::SeqCst);
    }
}

/// Options pointing at nothing but what the test gives: no caches, no token, no progress.
fn opts(endpoint: &str) -> Options {
    Options {
        offline: false,
        timeout: Duration::from_secs(10),
        first_range: 4096,
        cache_dir: None,
        llama_cache: None,
        endpoint: endpoint.to_string(),
        token: None,
        progress: None,
    }
}

fn read_file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn anatomy_json(m: &GgufModel) -> String {
    serde_json::to_string(&placer::anatomy::from_gguf(m).unwrap()).unwrap()
}

fn local(p: &Path) -> GgufModel {
    gguf::open_with(p, ReadOptions::SUMMARY).unwrap()
}

fn remote_url(url: &str, o: &Options) -> anyhow::Result<remote::Remote> {
    remote::open(&Source::Url(url.into()), o, ReadOptions::SUMMARY)
}

fn headers() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("models/headers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    v.sort();
    v
}

/// The real published header of gemma-3-270m (262k-token tokenizer, 6.5 MB), unpacked.
fn gemma_header(dir: &Path) -> PathBuf {
    let gz = Path::new(ROOT).join("tests/fixtures/gguf/gemma-3-270m-q4_k_m.header.gguf.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let p = dir.join("gemma-3-270m-Q4_K_M.gguf");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn serve_files(mode: Mode, files: &[(String, Vec<u8>)]) -> Server {
    let mut routes = Routes::default();
    for (name, bytes) in files {
        routes
            .files
            .insert(name.clone(), Body::Bytes(Arc::new(bytes.clone())));
    }
    Server::start(mode, routes)
}

#[test]
fn remote_anatomy_equals_local_for_every_header_snapshot_and_a_real_header() {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = headers();
    paths.push(gemma_header(tmp.path()));
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                read_file(p),
            )
        })
        .collect();
    let srv = serve_files(Mode::Ranges, &files);
    for (p, (name, bytes)) in paths.iter().zip(&files) {
        let want = local(p);
        let got = remote_url(&srv.url(name), &opts(&srv.base)).unwrap();
        assert_eq!(anatomy_json(&got.model), anatomy_json(&want), "{name}");
        assert_eq!(got.model.metadata, want.metadata, "{name}");
        assert_eq!(got.model.tensors, want.tensors, "{name}");
        let s = &got.shards[0];
        assert_eq!(s.file_size, Some(bytes.len() as u64));
        assert_eq!(s.header_bytes, want.shards[0].data_offset);
        // Growing ranges: never more than twice the header (plus the first range).
        assert!(s.fetched <= 2 * s.header_bytes + 4096, "{name}: {s:?}");
        assert_eq!(
            s.etag.as_deref(),
            Some(format!("\"len-{}\"", bytes.len()).as_str())
        );
    }
}

/// The bytes fetched per model when the file is as large as the published one (header, then
/// zeros up to `placer.file_size`): the table in docs/remote.md comes from this test's output
/// (`cargo test --test it remote::bytes_fetched -- --nocapture`).
#[test]
fn bytes_fetched_are_bounded_by_the_header_never_the_tensor_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = headers();
    paths.push(gemma_header(tmp.path()));
    // Headers with the whole tokenizer, as the published files have (`placer synth ID
    // --header-only`), for two catalog models.
    for id in ["glm-q8", "gpt-oss-20b"] {
        let models = Path::new(ROOT).join("models");
        let entry = placer::catalog::entry(id, &models).unwrap();
        let m = entry.synthesize(None, &models).unwrap();
        let p = tmp.path().join(format!("{id}.full-tokenizer.gguf"));
        let o = gguf::WriteOptions {
            data: gguf::TensorData::None,
            ..gguf::WriteOptions::default()
        };
        gguf::write_gguf(&p, &m.metadata, &m.tensors, &o).unwrap();
        paths.push(p);
    }
    let mut routes = Routes::default();
    let mut sizes = Vec::new();
    for p in &paths {
        let bytes = read_file(p);
        let m = local(p);
        // The real file's size where the snapshot records it; the real header's own data
        // section otherwise (gemma-3-270m Q4_K_M: its tensors' bytes after the header).
        let size = m
            .metadata
            .get_u64(gguf::FILE_SIZE_KEY)
            .unwrap_or(m.shards[0].data_offset + m.tensor_bytes());
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        routes.files.insert(
            name.clone(),
            Body::Virtual {
                head: Arc::new(bytes),
                size,
            },
        );
        sizes.push((name, size, m));
    }
    let srv = Server::start(Mode::Ranges, routes);
    println!("| file | header | fetched | requests | file size |\n|---|---|---|---|---|");
    for (name, size, want) in &sizes {
        let mut o = opts(&srv.base);
        o.first_range = remote::FIRST_RANGE;
        let got = remote_url(&srv.url(name), &o).unwrap();
        let s = &got.shards[0];
        println!(
            "| {name} | {} | {} | {} | {} |",
            remote::human(s.header_bytes),
            remote::human(s.fetched),
            s.requests,
            remote::human(*size)
        );
        assert_eq!(got.model.tensors, want.tensors);
        assert!(s.fetched < *size, "{name}: fetched the whole file");
        assert!(
            s.fetched <= (2 * s.header_bytes).max(remote::FIRST_RANGE),
            "{name}: {s:?}"
        );
    }
}

fn split_files() -> Vec<(String, Vec<u8>, PathBuf)> {
    (1..=3)
        .map(|k| {
            let name = format!("gemma-3-270m-split-{k:05}-of-00003.gguf");
            let p = Path::new(ROOT).join("tests/fixtures/gguf").join(&name);
            (name, read_file(&p), p)
        })
        .collect()
}

#[test]
fn a_split_model_is_found_and_read_shard_by_shard() {
    let split = split_files();
    let files: Vec<(String, Vec<u8>)> = split
        .iter()
        .map(|(n, b, _)| (format!("repo/{n}"), b.clone()))
        .collect();
    let srv = serve_files(Mode::Ranges, &files);
    let want = local(&split[0].2);
    // Any shard's URL names the model, as any shard's path does.
    for k in [1, 3] {
        let got = remote_url(&srv.url(&files[k - 1].0), &opts(&srv.base)).unwrap();
        assert_eq!(anatomy_json(&got.model), anatomy_json(&want));
        assert_eq!(got.model.tensors, want.tensors);
        assert_eq!(got.shards.len(), 3);
    }
    // A missing shard is an error that names it.
    let srv = serve_files(Mode::Ranges, &files[..2]);
    let e = remote_url(&srv.url(&files[0].0), &opts(&srv.base)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("00003-of-00003") && msg.contains("404"),
        "{msg}"
    );
}

#[test]
fn redirects_are_followed() {
    let p = &headers()[0];
    let mut routes = Routes::default();
    routes
        .files
        .insert("cdn/blob".into(), Body::Bytes(Arc::new(read_file(p))));
    routes.redirects.insert("m.gguf".into(), "hop.gguf".into());
    routes
        .redirects
        .insert("hop.gguf".into(), "cdn/blob".into());
    let srv = Server::start(Mode::Ranges, routes);
    let got = remote_url(&srv.url("m.gguf"), &opts(&srv.base)).unwrap();
    assert_eq!(anatomy_json(&got.model), anatomy_json(&local(p)));
}

#[test]
fn a_server_that_ignores_range_is_read_only_as_far_as_the_header() {
    let p = &headers()[0];
    let bytes = read_file(p);
    let mut routes = Routes::default();
    // 4 GB announced: placer must drop the connection after the header.
    let size = 4_000_000_000;
    routes.files.insert(
        "big.gguf".into(),
        Body::Virtual {
            head: Arc::new(bytes),
            size,
        },
    );
    let srv = Server::start(Mode::IgnoreRange, routes);
    let t = Instant::now();
    let got = remote_url(&srv.url("big.gguf"), &opts(&srv.base)).unwrap();
    assert_eq!(got.model.tensors, local(p).tensors);
    let s = &got.shards[0];
    assert_eq!(s.file_size, Some(size));
    assert!(s.fetched <= 2 * s.header_bytes + 4096, "{s:?}");
    drop(srv.requests());
    let sent = srv.sent.clone();
    drop(srv); // joins the connection thread: it ends once placer has closed its side
    assert!(
        sent.load(Ordering::SeqCst) < 64 * 1024 * 1024,
        "server sent {} bytes",
        sent.load(Ordering::SeqCst)
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_server_that_closes_early_is_asked_again_from_where_it_stopped() {
    let p = &headers()[0];
    let bytes = read_file(p);
    let srv = serve_files(Mode::CloseEarly(5000), &[("m.gguf".into(), bytes.clone())]);
    let got = remote_url(&srv.url("m.gguf"), &opts(&srv.base)).unwrap();
    assert_eq!(anatomy_json(&got.model), anatomy_json(&local(p)));
    assert!(got.shards[0].requests > 2);
    // One that sends nothing at all is given up on, with a message.
    let srv = serve_files(Mode::CloseEarly(0), &[("m.gguf".into(), bytes)]);
    let e = remote_url(&srv.url("m.gguf"), &opts(&srv.base)).unwrap_err();
    assert!(format!("{e:#}").contains("sent no more bytes"), "{e:#}");
}

#[test]
fn a_404_says_what_to_check() {
    let srv = serve_files(Mode::Ranges, &[]);
    let e = remote_url(&srv.url("nothing.gguf"), &opts(&srv.base)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("HTTP 404") && msg.contains("check the"),
        "{msg}"
    );
}

#[test]
fn a_silent_server_times_out() {
    let srv = serve_files(Mode::Silent, &[]);
    let mut o = opts(&srv.base);
    o.timeout = Duration::from_millis(700);
    let t = Instant::now();
    let e = remote_url(&srv.url("m.gguf"), &o).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10));
    let msg = format!("{e:#}");
    assert!(msg.contains("PLACER_HTTP_TIMEOUT"), "{msg}");
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A Hub on loopback: refs, tree and resolve for `user/repo`, with a Q8_0 file, a Q4_K_M split
/// model in a folder, an mmproj that must never be chosen, and the resolve URLs redirected to a
/// storage path like the Hub's.
fn hub(mode: Mode) -> (Server, PathBuf, Vec<PathBuf>) {
    hub_with(mode, false)
}

/// [`hub`]; with `full_size` the Q8_0 file is as large as the published one (its header, then
/// zeros up to `placer.file_size`).
fn hub_with(mode: Mode, full_size: bool) -> (Server, PathBuf, Vec<PathBuf>) {
    let q8 = Path::new(ROOT).join("models/headers/glm-q8.gguf");
    let split = split_files();
    let mut routes = Routes::default();
    let mut tree = vec![
        serde_json::json!({"type": "file", "path": "README.md", "size": 10}),
        serde_json::json!({"type": "file", "path": "mmproj-Q8_0.gguf", "size": 10}),
        serde_json::json!({"type": "directory", "path": "Q4_K_M"}),
    ];
    let mut add = |routes: &mut Routes, path: String, body: Body| {
        tree.push(serde_json::json!({"type": "file", "path": path, "size": 1,
            "lfs": {"oid": "ab".repeat(32), "size": body.len()}}));
        let blob = format!("blobs/{}", path.replace('/', "_"));
        routes
            .redirects
            .insert(format!("user/repo/resolve/{COMMIT}/{path}"), blob.clone());
        routes.files.insert(blob, body);
    };
    for (k, (_, b, _)) in split.iter().enumerate().rev() {
        add(
            &mut routes,
            format!("Q4_K_M/Model-Q4_K_M-{:05}-of-00003.gguf", k + 1),
            Body::Bytes(Arc::new(b.clone())),
        );
    }
    let head = Arc::new(read_file(&q8));
    let q8_body = if full_size {
        let size = local(&q8).metadata.get_u64(gguf::FILE_SIZE_KEY).unwrap();
        Body::Virtual { head, size }
    } else {
        Body::Bytes(head)
    };
    add(&mut routes, "Model-Q8_0.gguf".into(), q8_body);
    routes.json.insert(
        "api/models/user/repo/refs".into(),
        serde_json::json!({"branches": [
            {"name": "dev", "targetCommit": "f".repeat(40)},
            {"name": "main", "targetCommit": COMMIT}]})
        .to_string(),
    );
    routes.json.insert(
        format!("api/models/user/repo/tree/{COMMIT}?recursive=true"),
        serde_json::Value::Array(tree).to_string(),
    );
    (
        Server::start(mode, routes),
        q8,
        split.into_iter().map(|(_, _, p)| p).collect(),
    )
}

fn open_hf(arg: &str, o: &Options) -> anyhow::Result<remote::Remote> {
    let src = Source::parse(arg).unwrap().unwrap();
    remote::open(&src, o, ReadOptions::SUMMARY)
}

#[test]
fn hf_picks_the_file_llama_cpp_picks_and_sends_the_token() {
    let (srv, q8, split) = hub(Mode::Ranges);
    let mut o = opts(&srv.base);
    o.token = Some("hf_test".into());
    // No tag: Q4_K_M first (common/download.cpp:find_best_model), the split model's first shard.
    let got = open_hf("hf:user/repo", &o).unwrap();
    assert_eq!(anatomy_json(&got.model), anatomy_json(&local(&split[0])));
    assert_eq!(got.launch_model, "hf:user/repo");
    assert_eq!(got.shards.len(), 3);
    // A tag, any case.
    let got = open_hf("hf:user/repo:q8_0", &o).unwrap();
    assert_eq!(anatomy_json(&got.model), anatomy_json(&local(&q8)));
    assert_eq!(got.launch_model, "hf:user/repo:q8_0");
    assert_eq!(got.file_stem, "Model-Q8_0");
    // A tag that no file has: the message lists the files.
    let e = open_hf("hf:user/repo:Q5_K_M", &o).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("Q5_K_M") && msg.contains("Model-Q8_0.gguf"),
        "{msg}"
    );
    let reqs = srv.requests();
    assert!(reqs
        .iter()
        .filter(|r| r.path.starts_with("api/"))
        .all(|r| r.auth.as_deref() == Some("Bearer hf_test")));
    // A plain URL never gets the token.
    let srv2 = serve_files(Mode::Ranges, &[("m.gguf".into(), read_file(&q8))]);
    remote_url(&srv2.url("m.gguf"), &o).unwrap();
    assert!(srv2.requests().iter().all(|r| r.auth.is_none()));
}

#[test]
fn a_second_plan_is_offline_from_the_header_cache() {
    let (srv, q8, _) = hub(Mode::Ranges);
    let cache = tempfile::tempdir().unwrap();
    let mut o = opts(&srv.base);
    o.cache_dir = Some(cache.path().to_path_buf());
    // Offline before anything is cached: a message, no request.
    o.offline = true;
    let e = open_hf("hf:user/repo:Q8_0", &o).unwrap_err();
    assert!(format!("{e:#}").contains("--offline"), "{e:#}");
    assert!(srv.requests().is_empty());
    o.offline = false;
    let first = open_hf("hf:user/repo:Q8_0", &o).unwrap();
    assert!(first.fetched() > 0);
    let n = srv.requests().len();
    for offline in [true, false] {
        o.offline = offline;
        let again = open_hf("hf:user/repo:Q8_0", &o).unwrap();
        assert_eq!(again.model, first.model);
        assert_eq!(again.fetched(), 0);
        assert!(again.shards.iter().all(|s| s.from_cache));
    }
    assert_eq!(srv.requests().len(), n, "the second plan made requests");
    assert_eq!(anatomy_json(&first.model), anatomy_json(&local(&q8)));
    // A URL is cached the same way.
    let srv2 = serve_files(Mode::Ranges, &[("m.gguf".into(), read_file(&q8))]);
    o.offline = false;
    remote_url(&srv2.url("m.gguf"), &o).unwrap();
    o.offline = true;
    let n = srv2.requests().len();
    let again = remote_url(&srv2.url("m.gguf"), &o).unwrap();
    assert_eq!(again.fetched(), 0);
    assert_eq!(srv2.requests().len(), n);
}

#[test]
fn llama_cpp_cache_holding_the_file_gives_its_local_path() {
    let (srv, _, _) = hub(Mode::Ranges);
    let lc = tempfile::tempdir().unwrap();
    let repo = lc.path().join("models--user--repo");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    let full = crate::gguf_support::small_model().file(4096);
    std::fs::write(snap.join("Model-Q8_0.gguf"), &full).unwrap();
    let mut o = opts(&srv.base);
    o.llama_cache = Some(lc.path().to_path_buf());
    let got = open_hf("hf:user/repo:Q8_0", &o).unwrap();
    assert_eq!(
        got.local.as_deref(),
        Some(snap.join("Model-Q8_0.gguf").as_path())
    );
    assert_eq!(
        got.launch_model,
        snap.join("Model-Q8_0.gguf").display().to_string()
    );
    assert!(srv.requests().iter().all(|r| !r.path.contains("blobs/")));
    // Offline with no placer cache: llama.cpp's cache alone resolves it (get_cached_files).
    o.offline = true;
    let got = open_hf("hf:user/repo:Q8_0", &o).unwrap();
    assert!(got.local.is_some());
}

fn placer_cmd(args: &[&str], env: &[(&str, &Path)], endpoint: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_placer"))
        .args(args)
        .current_dir(ROOT)
        .env("MODEL_ENDPOINT", endpoint)
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_TOKEN")
        .env_remove("PLACER_OFFLINE")
        .env_remove("PLACER_LLAMA")
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `placer solve hf:…` end to end: the endpoint variable pointed at the loopback Hub, the
/// profiles written with `-hf` (no MODEL=), then read back offline by check and solve.
#[test]
fn cli_solves_hf_and_writes_profiles_llama_server_loads_by_the_same_name() {
    let (srv, _, _) = hub_with(Mode::Ranges, true);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("xdg");
    let lc = tmp.path().join("llama-cache");
    let env = [
        ("XDG_CACHE_HOME", cache.as_path()),
        ("LLAMA_CACHE", lc.as_path()),
        ("HOME", tmp.path()),
    ];
    let conf = tmp.path().join("models.conf");
    let conf_s = conf.to_str().unwrap();
    let (ok, out, err) = placer_cmd(
        &[
            "solve",
            "hf:user/repo:Q8_0",
            "--ctx",
            "8192",
            "--write",
            conf_s,
        ],
        &env,
        &srv.base,
    );
    assert!(ok, "{out}{err}");
    assert!(err.contains("header of Model-Q8_0.gguf"), "{err}");
    assert!(err.contains("of a 31.8 GB file"), "{err}");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("[Model-Q8_0-aggressive]"), "{text}");
    assert!(!text.contains("MODEL="), "{text}");
    assert!(text.contains("EXTRA_ARGS=-hf user/repo:Q8_0 "), "{text}");
    let n = srv.requests().len();
    // Read back offline: the section's -hf is the model, the header comes from the cache.
    let spec = format!("{conf_s}:Model-Q8_0-aggressive");
    let (ok, out, err) = placer_cmd(&["check", "--offline", &spec], &env, &srv.base);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = placer_cmd(&["solve", &spec, "--offline"], &env, &srv.base);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = placer_cmd(
        &["inspect", "hf:user/repo:Q8_0", "--offline"],
        &env,
        &srv.base,
    );
    assert!(ok && out.contains("deepseek2"), "{out}{err}");
    assert_eq!(srv.requests().len(), n, "offline commands made requests");
    // A malformed source is bad input (exit 2) with the form to use.
    let (ok, _, err) = placer_cmd(&["inspect", "hf:nouser"], &env, &srv.base);
    assert!(!ok && err.contains("hf:<user>/<model>[:quant]"), "{err}");
}

fn glm_bytes() -> Vec<u8> {
    read_file(&Path::new(ROOT).join("models/headers/glm-q8.gguf"))
}

/// Parse the way the fetcher does: from a prefix, asking for more until complete.
fn parse_growing(bytes: &[u8], first: usize) -> (GgufModel, usize) {
    let mut have = first.min(bytes.len());
    // Each round asks for strictly more bytes, so this ends.
    for _ in 0..=bytes.len() {
        match gguf::parse_prefix(&bytes[..have], bytes.len() as u64, ReadOptions::SUMMARY).unwrap()
        {
            Prefix::Complete(m) => return (m, have),
            Prefix::NeedMore(n) => {
                assert!(n as usize > have && n as usize <= bytes.len());
                // As the fetcher grows its ranges (src/remote/http.rs).
                have = (n as usize).max(2 * have).min(bytes.len());
            }
        }
    }
    panic!("no progress");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any prefix of the header either parses to the whole-file parse or asks for more than it
    /// has; growing from any first size ends at the same parse.
    #[test]
    fn any_prefix_split_gives_the_same_parse(cut in 0usize..60_000, first in 1usize..60_000) {
        let bytes = glm_bytes();
        let whole = gguf::parse_prefix(&bytes, bytes.len() as u64, ReadOptions::SUMMARY).unwrap();
        let Prefix::Complete(mut whole) = whole else { panic!("whole file incomplete") };
        let cut = cut.min(bytes.len());
        match gguf::parse_prefix(&bytes[..cut], bytes.len() as u64, ReadOptions::SUMMARY).unwrap() {
            Prefix::Complete(m) => prop_assert_eq!(&m, &whole),
            Prefix::NeedMore(n) => prop_assert!(n as usize > cut),
        }
        let (m, _) = parse_growing(&bytes, first);
        prop_assert_eq!(&m, &whole);
        // And the same as the file read from disk (but for the path).
        let mut disk = local(&Path::new(ROOT).join("models/headers/glm-q8.gguf"));
        disk.shards[0].path = None;
        whole.shards[0].path = None;
        prop_assert_eq!(disk, whole);
    }
}
