//! One llama-server under placer's control: started on a free loopback port in its own process
//! group, its log at full verbosity in a file, ready when `GET /health` answers 200, stopped with
//! SIGINT and then SIGKILL. Every live server is in a registry that a SIGINT/SIGTERM handler and
//! `Drop` empty, so no server outlives placer.
//!
//! llama-server binds its HTTP socket before it loads the model and answers `/health` with 503
//! while loading, 200 once ready (`tools/server/server.cpp: main` starts `ctx_http` before
//! `ctx_server.load_model`; `tools/server/server-http.cpp: server_http_context::init` answers the
//! loading state in its middleware). A port taken by another program makes it log
//! "couldn't bind HTTP server socket" and exit (`server-http.cpp: server_http_context::start`).

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a stopped server gets to exit after SIGINT before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Verbosity that keeps every line the log readers use (buffer sizes, layer assignment, the
/// exit breakdown): the testbed's `-lv 4` (testbed/MANIFEST.md).
pub const LOG_VERBOSITY: &str = "4";

/// Tries with another port when the chosen one was taken between the check and the bind.
const PORT_TRIES: usize = 5;

/// Why a server did not become ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LoadFailure {
    /// The process exited before it was ready (status text).
    Exited(String),
    /// Not ready within the load deadline (it was stopped).
    Timeout(u64),
    /// The process could not be started at all.
    Spawn(String),
    /// Every port tried was taken.
    PortTaken(Vec<u16>),
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadFailure::Exited(s) => write!(f, "llama-server exited before it was ready ({s})"),
            LoadFailure::Timeout(s) => {
                write!(f, "llama-server was not ready within {s} s (stopped)")
            }
            LoadFailure::Spawn(s) => write!(f, "cannot start llama-server: {s}"),
            LoadFailure::PortTaken(p) => write!(
                f,
                "llama-server could not bind a loopback port (tried {p:?}): give another --port-base"
            ),
        }
    }
}

/// Process groups of the servers now running; the signal handler kills these.
fn registry() -> &'static Mutex<BTreeSet<i32>> {
    static R: OnceLock<Mutex<BTreeSet<i32>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(BTreeSet::new()))
}

/// Kill every registered server's process group (SIGKILL). Used by the signal handler.
pub fn kill_all() {
    let groups: Vec<i32> = match registry().lock() {
        Ok(g) => g.iter().copied().collect(),
        Err(p) => p.into_inner().iter().copied().collect(),
    };
    for g in groups {
        signal_group(g, libc::SIGINT);
    }
    std::thread::sleep(Duration::from_millis(500));
    for g in groups_left() {
        signal_group(g, libc::SIGKILL);
    }
}

fn groups_left() -> Vec<i32> {
    match registry().lock() {
        Ok(g) => g.iter().copied().collect(),
        Err(p) => p.into_inner().iter().copied().collect(),
    }
}

/// Install (once per process) a SIGINT/SIGTERM handler that stops every registered server and
/// exits with 130. A process that already has a handler (a test harness) keeps it; `Drop` still
/// stops the servers there.
pub fn install_signal_handler() {
    static ONCE: OnceLock<bool> = OnceLock::new();
    ONCE.get_or_init(|| {
        ctrlc::set_handler(|| {
            kill_all();
            eprintln!("\ninterrupted: every llama-server placer started was stopped");
            std::process::exit(130);
        })
        .is_ok()
    });
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// How to start one server.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The llama-server binary.
    pub binary: PathBuf,
    /// The profile's argv (no program name, no --host/--port/--log-file).
    pub argv: Vec<String>,
    /// Where its log goes (`--log-file`); the console output goes next to it with `.console`.
    pub log_path: PathBuf,
    /// First port to try.
    pub port_base: u16,
    /// Load deadline.
    pub load_timeout: Duration,
    /// `--slot-save-path`: where the slot's cache may be saved and restored (the trial's cached
    /// prefix, shared by its candidates; `tools/server/server-context.cpp: handle_slots_save`).
    pub slot_dir: Option<PathBuf>,
}

/// A running, ready llama-server. Dropping it stops it.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    pgid: i32,
    pub port: u16,
    pub log_path: PathBuf,
    pub console_path: PathBuf,
    /// The full argv it was started with (program first).
    pub argv: Vec<String>,
    /// Seconds from start to ready.
    pub load_s: f64,
}

/// A server that did not become ready, with what its log said.
#[derive(Debug, Clone)]
pub struct Failed {
    pub why: LoadFailure,
    /// The full argv it was started with.
    pub argv: Vec<String>,
    pub exit: Option<String>,
}

/// A free loopback port at or after `from` (bound and released at once).
pub fn free_port(from: u16) -> Option<u16> {
    (from..=u16::MAX).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

/// Start the server and wait until it is ready, it exits, or the deadline passes.
/// `tick` is called while waiting (for a spinner).
pub fn start(l: &Launch, mut tick: impl FnMut()) -> Result<Server, Failed> {
    install_signal_handler();
    let console_path = console_path(&l.log_path);
    let mut tried = Vec::new();
    let mut next = l.port_base;
    for _ in 0..PORT_TRIES {
        let Some(port) = free_port(next) else { break };
        tried.push(port);
        next = port.saturating_add(1);
        let mut argv = vec![l.binary.display().to_string()];
        argv.extend(l.argv.iter().cloned());
        if let Some(d) = &l.slot_dir {
            argv.extend(["--slot-save-path".to_string(), d.display().to_string()]);
        }
        argv.extend(
            [
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-file",
                &l.log_path.display().to_string(),
                "-lv",
                LOG_VERBOSITY,
            ]
            .map(String::from),
        );
        let _ = std::fs::remove_file(&l.log_path);
        let console = std::fs::File::create(&console_path).map_err(|e| Failed {
            why: LoadFailure::Spawn(format!("{}: {e}", console_path.display())),
            argv: argv.clone(),
            exit: None,
        })?;
        let console2 = console.try_clone().map_err(|e| Failed {
            why: LoadFailure::Spawn(e.to_string()),
            argv: argv.clone(),
            exit: None,
        })?;
        let mut cmd = Command::new(&l.binary);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            .process_group(0);
        let t0 = Instant::now();
        // Registered under the lock so that a signal between spawn and insert cannot miss it.
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Err(Failed {
                    why: LoadFailure::Spawn(format!("{}: {e}", l.binary.display())),
                    argv,
                    exit: None,
                })
            }
        };
        let pgid = child.id() as i32;
        reg.insert(pgid);
        drop(reg);
        let mut server = Server {
            child: Some(child),
            pgid,
            port,
            log_path: l.log_path.clone(),
            console_path: console_path.clone(),
            argv: argv.clone(),
            load_s: 0.0,
        };
        match server.wait_ready(l.load_timeout, t0, &mut tick) {
            Ok(()) => {
                server.load_s = t0.elapsed().as_secs_f64();
                return Ok(server);
            }
            Err(why) => {
                let exit = server.stop().map(status_text);
                if matches!(why, LoadFailure::Exited(_)) && bind_failed(&server) {
                    continue; // the port was taken after all: another one
                }
                return Err(Failed { why, argv, exit });
            }
        }
    }
    Err(Failed {
        why: LoadFailure::PortTaken(tried),
        argv: Vec::new(),
        exit: None,
    })
}

/// `LOG` → `.LOG.console` in the same folder (a dot file: `placer calibrate` skips it).
pub fn console_path(log: &Path) -> PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "log.txt".into());
    log.with_file_name(format!(".{name}.console"))
}

/// How long `/health` must answer 200 while our process lives, when its log never says where it
/// listens, before the server counts as ready.
const READY_WITHOUT_LOG: Duration = Duration::from_secs(3);

fn bind_failed(s: &Server) -> bool {
    let text = s.log_text();
    text.contains("couldn't bind HTTP server socket") || text.contains("Address already in use")
}

fn status_text(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

impl Server {
    fn wait_ready(
        &mut self,
        timeout: Duration,
        t0: Instant,
        tick: &mut impl FnMut(),
    ) -> Result<(), LoadFailure> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .build();
        let url = format!("http://127.0.0.1:{}/health", self.port);
        // A 200 on our port may come from another server that took the port between placer's
        // check and our bind (ours then exits with "couldn't bind"): ready is our own log saying
        // it listens there (`tools/server/server.cpp: main`, "listening on http://HOST:PORT",
        // printed when the model is loaded; older builds print "server is listening on …"), or,
        // for a build that does not print it, a 200 that lasts while our process stays alive.
        let listening = format!("listening on http://127.0.0.1:{}", self.port);
        let mut first_ok: Option<Instant> = None;
        loop {
            tick();
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(LoadFailure::Exited(status_text(st)));
                }
            }
            if let Ok(r) = agent.get(&url).call() {
                if r.status() == 200 {
                    let text = self.log_text();
                    if text.contains(&listening) {
                        return Ok(());
                    }
                    let since = *first_ok.get_or_insert_with(Instant::now);
                    if !bind_failed(self) && since.elapsed() >= READY_WITHOUT_LOG {
                        return Ok(());
                    }
                }
            }
            if t0.elapsed() >= timeout {
                return Err(LoadFailure::Timeout(timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id (also its process group).
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    /// The log file and the console output, as text (what exists of them).
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        for p in [&self.log_path, &self.console_path] {
            if let Ok(mut f) = std::fs::File::open(p) {
                let mut b = Vec::new();
                let _ = f.read_to_end(&mut b);
                s.push_str(&String::from_utf8_lossy(&b));
            }
        }
        s
    }

    /// Stop: SIGINT to the process group (llama-server prints its memory breakdown and exits),
    /// SIGKILL after [`STOP_GRACE`]. Returns the exit status; idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let status = match child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                signal_group(self.pgid, libc::SIGINT);
                match crate::process::wait_deadline(&mut child, STOP_GRACE) {
                    Ok(Some(s)) => Some(s),
                    _ => {
                        signal_group(self.pgid, libc::SIGKILL);
                        child.wait().ok()
                    }
                }
            }
        };
        if let Ok(mut r) = registry().lock() {
            r.remove(&self.pgid);
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
