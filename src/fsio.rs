//! The one path for every file placer reads from the user or writes for the user
//! (docs/files.md says what it promises and which test proves each promise).
//!
//! Reading: [`read_text`] / [`read_bytes`] / [`read_maybe_gzip`] refuse what is not a regular
//! file (a FIFO, a device, a socket, a directory) before opening it, so nothing blocks, and stop
//! at a size limit per kind of input ([`Limit`]), compressed or not. [`walk_files`] lists the
//! files under folders, visiting each real directory and each file once.
//!
//! Writing: [`update`] (read-modify-write, e.g. models.conf), [`replace`] (whole contents, e.g. a
//! calibration) and [`write_stream`] (large outputs, e.g. a synthesized GGUF) all
//! - hold an advisory lock (a sidecar `.NAME.placer.lock` next to the target) for the whole
//!   read-modify-write, so concurrent placer runs never lose each other's changes;
//! - follow symlinks (the link's final target is written, the link stays) and write only regular
//!   files; a read-only file or another user's file is refused, not replaced;
//! - write a temporary `.NAME.placer-PID.tmp` in the target's directory, fsync it, rename it over
//!   the target and fsync the directory: a reader (or a crash) sees the old or the new file;
//! - keep the old file's mode (and owner, where placer may set it);
//! - remove the temporary file on error and on SIGINT / SIGTERM / SIGHUP, and remove (and say so)
//!   temporaries that a killed run left behind;
//! - do not touch a file whose contents would not change.

use anyhow::{anyhow, bail, Context};
use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The most placer reads of one kind of input, and what to call it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// "a host file", "a calibration", … (the error says "… is at most N").
    pub what: &'static str,
    pub max_bytes: u64,
}

/// hardware/*.toml: a few KiB.
pub const HOST: Limit = Limit {
    what: "a host file",
    max_bytes: MIB,
};
/// data/calibration.toml or the user's: a few KiB.
pub const CALIBRATION: Limit = Limit {
    what: "a calibration file",
    max_bytes: 16 * MIB,
};
/// The users' models.conf: a few KiB; a file with years of history stays far below this.
pub const MODELS_CONF: Limit = Limit {
    what: "a models.conf",
    max_bytes: 128 * MIB,
};
/// models/<id>.toml catalog entries and testbed manifests.
pub const SMALL_TOML: Limit = Limit {
    what: "a catalog entry or manifest",
    max_bytes: 16 * MIB,
};
/// A llama.cpp log (after gunzip): the largest in data/runs is a few MiB.
pub const LOG: Limit = Limit {
    what: "a log",
    max_bytes: 128 * MIB,
};
/// A report or CSV placer wrote before (read back only to skip an unchanged rewrite).
pub const OUTPUT: Limit = Limit {
    what: "an output file",
    max_bytes: 256 * MIB,
};

fn human(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.0} GB", n as f64 / 1e9)
    } else if n >= MIB {
        format!("{:.0} MiB", n as f64 / MIB as f64)
    } else if n >= KIB {
        format!("{:.0} KiB", n as f64 / KIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// What a file that is not a regular file is, in words ("a FIFO", "a character device", …).
fn kind_name(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// An error unless `path` (symlinks followed) is a regular file. Uses only `stat`, so it never
/// blocks on a FIFO.
pub fn check_regular(path: &Path, what: &str) -> anyhow::Result<Metadata> {
    let m = std::fs::metadata(path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    if !m.is_file() {
        bail!(
            "{} is {}, not a regular file; give the path of {what}",
            path.display(),
            kind_name(&m)
        );
    }
    Ok(m)
}

/// Open a regular file for reading without ever blocking: `stat` first, then open with
/// O_NONBLOCK (a FIFO swapped in between would not block) and check the opened file again.
fn open_regular(path: &Path, limit: Limit) -> anyhow::Result<File> {
    let m = check_regular(path, limit.what)?;
    too_big(path, m.len(), limit)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    let m = f
        .metadata()
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    if !m.is_file() {
        bail!(
            "{} is {}, not a regular file; give the path of {}",
            path.display(),
            kind_name(&m),
            limit.what
        );
    }
    too_big(path, m.len(), limit)?;
    Ok(f)
}

fn too_big(path: &Path, len: u64, limit: Limit) -> anyhow::Result<()> {
    if len > limit.max_bytes {
        bail!(
            "{} is {}; {} is at most {}: is this the right path?",
            path.display(),
            human(len),
            limit.what,
            human(limit.max_bytes)
        );
    }
    Ok(())
}

/// Read at most `limit.max_bytes` from `r`; an error when there is more.
fn read_capped(
    mut r: impl Read,
    path: &Path,
    limit: Limit,
    hint: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(hint.min(limit.max_bytes as usize) + 1);
    (&mut r)
        .take(limit.max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > limit.max_bytes {
        bail!(
            "{} holds more than {}; {} is at most that: is this the right path?",
            path.display(),
            human(limit.max_bytes),
            limit.what
        );
    }
    Ok(buf)
}

/// The first `n` bytes (fewer when the file is shorter) of a regular file of any size: enough to
/// tell what a file is (its magic) when it is too large to read.
pub fn read_head(path: &Path, what: &'static str, n: usize) -> anyhow::Result<Vec<u8>> {
    let any = Limit {
        what,
        max_bytes: u64::MAX,
    };
    let f = open_regular(path, any)?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(buf)
}

/// The bytes of a regular file of at most `limit.max_bytes`.
pub fn read_bytes(path: &Path, limit: Limit) -> anyhow::Result<Vec<u8>> {
    let f = open_regular(path, limit)?;
    let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
    read_capped(f, path, limit, len)
}

/// The UTF-8 text of a regular file of at most `limit.max_bytes`.
pub fn read_text(path: &Path, limit: Limit) -> anyhow::Result<String> {
    let bytes = read_bytes(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{} is not UTF-8 text ({e}); give the path of {}",
            path.display(),
            limit.what
        )
    })
}

/// [`read_text`], `None` when the file does not exist.
pub fn read_text_if_exists(path: &Path, limit: Limit) -> anyhow::Result<Option<String>> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_text(path, limit).map(Some),
    }
}

/// A file's bytes, gunzipped (streaming, all members) when it starts with the gzip magic; the
/// decompressed size is capped at `limit.max_bytes` as well. A gzip stream that ends early (a
/// log copied while still being written) yields what could be read, and `true`.
pub fn read_maybe_gzip(path: &Path, limit: Limit) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut f = open_regular(path, limit)?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    if got == 2 && magic == [0x1f, 0x8b] {
        gunzip_capped(head.chain(f), path, limit)
    } else {
        let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
        Ok((read_capped(head.chain(f), path, limit, len)?, false))
    }
}

/// Streaming gunzip of `raw` with the decompressed size capped (see [`read_maybe_gzip`]).
pub fn gunzip_capped(raw: impl Read, path: &Path, limit: Limit) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(raw));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return Ok((out, false)),
            Ok(n) => {
                if (out.len() + n) as u64 > limit.max_bytes {
                    bail!(
                        "{} expands past {} when gunzipped; {} is at most that (is it a log?)",
                        path.display(),
                        human(limit.max_bytes),
                        limit.what
                    );
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok((out, true)),
        }
    }
}

/// The regular files under `roots` (files given directly, folders searched recursively), in a
/// stable order. Each real directory is entered once and each file listed once (by device and
/// inode), so symlink loops end and a log reachable by two paths counts once. FIFOs, devices and
/// sockets are skipped; unreadable folders are skipped.
pub fn walk_files(roots: &[PathBuf]) -> Vec<PathBuf> {
    use std::collections::HashSet;
    let mut seen_dirs: HashSet<(u64, u64)> = HashSet::new();
    let mut seen_files: HashSet<(u64, u64)> = HashSet::new();
    let mut out = Vec::new();
    // Explicit stack (depth-first, entries sorted) instead of recursion: no depth limit to hit.
    for root in roots {
        let mut stack = vec![root.clone()];
        while let Some(p) = stack.pop() {
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            let id = (m.dev(), m.ino());
            if m.is_dir() {
                if !seen_dirs.insert(id) {
                    continue;
                }
                let Ok(rd) = std::fs::read_dir(&p) else {
                    continue;
                };
                let mut children: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                children.sort();
                stack.extend(children.into_iter().rev());
            } else if m.is_file() && seen_files.insert(id) {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writing

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file written: the target after following symlinks.
    pub target: PathBuf,
    /// False when the contents were already what they would be (nothing was rewritten).
    pub changed: bool,
    /// Temporary files of killed runs that were removed before writing.
    pub stale_removed: Vec<PathBuf>,
}

/// The final target of `path`: symlinks followed (relative links resolved against the link's
/// folder), the last one possibly dangling (then its target is created).
pub fn resolve_target(path: &Path) -> anyhow::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)
                    .map_err(|e| anyhow!("cannot read the link {}: {e}", p.display()))?;
                p = if to.is_absolute() {
                    to
                } else {
                    p.parent().unwrap_or(Path::new("")).join(to)
                };
            }
            _ => return Ok(p),
        }
    }
    bail!(
        "{}: too many levels of symbolic links (a loop?); give the real file's path",
        path.display()
    )
}

fn dir_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn file_name(p: &Path) -> anyhow::Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| anyhow!("{}: not a file name", p.display()))
}

/// The temporary file of process `pid` for target `name`.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.placer-{pid}.tmp")
}

fn lock_name(name: &str) -> String {
    format!(".{name}.placer.lock")
}

/// Checks on an existing target before writing: a regular file, writable, ours to replace.
fn check_writable_target(target: &Path, asked: &Path, m: &Metadata) -> anyhow::Result<()> {
    let shown = if target == asked {
        target.display().to_string()
    } else {
        format!("{} (the target of {})", target.display(), asked.display())
    };
    if !m.is_file() {
        bail!(
            "{shown} is {}; placer writes only regular files: give the path of a file (e.g. \
             models.conf), or write to a file and copy it where it must go",
            kind_name(m)
        );
    }
    let mode = m.permissions().mode();
    if mode & 0o222 == 0 {
        bail!(
            "{shown} is read-only (mode {:04o}); placer leaves read-only files untouched: make it \
             writable (chmod u+w) or give another path",
            mode & 0o7777
        );
    }
    let c = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        bail!(
            "{shown}: no permission to write it ({}); give a path you may write",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a plain syscall without arguments.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && m.uid() != euid {
        bail!(
            "{shown} belongs to another user (uid {}); replacing it would make it yours: \
             write to a file of your own, or run as its owner",
            m.uid()
        );
    }
    Ok(())
}

/// The advisory lock on `target` (a sidecar lock file, since the rename replaces the target's
/// inode); held until dropped.
fn lock(target: &Path, name: &str) -> anyhow::Result<File> {
    let path = dir_of(target).join(lock_name(name));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(|e| {
            anyhow!(
                "cannot create the lock file {}: {e} (is the folder writable?)",
                path.display()
            )
        })?;
    f.lock()
        .map_err(|e| anyhow!("cannot lock {}: {e}", path.display()))?;
    Ok(f)
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Remove `.NAME.placer-PID.tmp` files in `dir` whose process is gone (killed mid-write).
fn remove_stale_temps(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.placer-");
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().to_string();
        let Some(pid) = fname
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(e.path()).is_ok() {
            eprintln!(
                "removed {}, left by a placer run (pid {pid}) that was killed while writing",
                e.path().display()
            );
            removed.push(e.path());
        }
    }
    removed
}

/// Everything a write needs, prepared under the lock.
struct Prepared {
    target: PathBuf,
    name: String,
    old: Option<Metadata>,
    stale_removed: Vec<PathBuf>,
    _lock: File,
}

fn prepare(path: &Path) -> anyhow::Result<Prepared> {
    let target = resolve_target(path)?;
    let name = file_name(&target)?;
    // Refuse a FIFO or a device before anything opens it (opening a FIFO blocks).
    let pre = match std::fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot write {}: {e}", target.display()),
    };
    if let Some(m) = &pre {
        check_writable_target(&target, path, m)?;
    }
    let dir = dir_of(&target);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: the folder {} does not exist",
            target.display(),
            dir.display()
        );
    }
    let lock = lock(&target, &name)?;
    // Metadata again under the lock: another writer may have replaced the file meanwhile.
    let old = match std::fs::metadata(&target) {
        Ok(m) => {
            check_writable_target(&target, path, &m)?;
            Some(m)
        }
        Err(_) => None,
    };
    let stale_removed = remove_stale_temps(dir, &name);
    Ok(Prepared {
        target,
        name,
        old,
        stale_removed,
        _lock: lock,
    })
}

/// Write the temporary file with `fill`, give it the old file's mode and owner, fsync, rename it
/// over the target, fsync the folder. The temporary file is removed on any error and on signals.
fn commit(
    p: &Prepared,
    fill: &mut dyn FnMut(&mut File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = dir_of(&p.target);
    let tmp = dir.join(temp_name(&p.name, std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let guard = cleanup::register(&tmp);
    let res = (|| -> anyhow::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)
            .map_err(|e| {
                anyhow!(
                    "cannot create {}: {e} (is the folder writable?)",
                    tmp.display()
                )
            })?;
        fill(&mut f).map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
        f.flush()?;
        if let Some(m) = &p.old {
            f.set_permissions(std::fs::Permissions::from_mode(
                m.permissions().mode() & 0o7777,
            ))
            .with_context(|| format!("setting the mode of {}", tmp.display()))?;
            let (uid, gid) = (m.uid(), m.gid());
            let fm = f.metadata()?;
            if fm.uid() != uid || fm.gid() != gid {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| {
                    anyhow!(
                        "cannot give the new {} the old file's owner {uid}:{gid} ({e}); the file \
                         was left as it was",
                        p.target.display()
                    )
                })?;
            }
        }
        f.sync_all()
            .map_err(|e| anyhow!("cannot write {}: {e}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, &p.target)
            .map_err(|e| anyhow!("cannot replace {}: {e}", p.target.display()))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drop(guard);
    res
}

/// Read-modify-write `path` under its lock: `f` gets the current text (None when the file does
/// not exist) and returns the new text. Nothing is written when the text does not change.
pub fn update<F>(path: &Path, limit: Limit, f: F) -> anyhow::Result<Written>
where
    F: FnOnce(Option<&str>) -> anyhow::Result<String>,
{
    let p = prepare(path)?;
    let old = match &p.old {
        Some(_) => Some(read_text(&p.target, limit)?),
        None => None,
    };
    let new = f(old.as_deref())?;
    if old.as_deref() == Some(new.as_str()) {
        return Ok(Written {
            target: p.target.clone(),
            changed: false,
            stale_removed: p.stale_removed,
        });
    }
    drop(old);
    commit(&p, &mut |w| w.write_all(new.as_bytes()))?;
    Ok(Written {
        target: p.target.clone(),
        changed: true,
        stale_removed: p.stale_removed,
    })
}

/// Replace the contents of `path` with `bytes` (same guarantees as [`update`]; an unchanged
/// file is not rewritten).
pub fn replace(path: &Path, bytes: &[u8]) -> anyhow::Result<Written> {
    let p = prepare(path)?;
    if let Some(m) = &p.old {
        if m.len() == bytes.len() as u64
            && read_bytes(&p.target, OUTPUT).is_ok_and(|old| old == bytes)
        {
            return Ok(Written {
                target: p.target.clone(),
                changed: false,
                stale_removed: p.stale_removed,
            });
        }
    }
    commit(&p, &mut |w| w.write_all(bytes))?;
    Ok(Written {
        target: p.target.clone(),
        changed: true,
        stale_removed: p.stale_removed,
    })
}

/// Write `path` from a stream (large outputs): `fill` writes the whole contents into the
/// temporary file; the target is replaced only when `fill` succeeds.
pub fn write_stream<F>(path: &Path, mut fill: F) -> anyhow::Result<Written>
where
    F: FnMut(&mut File) -> std::io::Result<()>,
{
    let p = prepare(path)?;
    commit(&p, &mut fill)?;
    Ok(Written {
        target: p.target.clone(),
        changed: true,
        stale_removed: p.stale_removed,
    })
}

/// Temporary files to remove when a signal ends the process: a fixed table of C strings that a
/// signal handler may read without locking or allocating.
mod cleanup {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};
    use std::sync::Once;

    const SLOTS: usize = 64;
    static TEMPS: [AtomicPtr<libc::c_char>; SLOTS] =
        [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
    static INSTALL: Once = Once::new();

    pub struct Guard(Option<usize>);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(i) = self.0 {
                let p = TEMPS[i].swap(std::ptr::null_mut(), Ordering::SeqCst);
                // Leaked on purpose: a signal handler running on another thread may still be
                // reading it (a few bytes per write).
                let _ = p;
            }
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        for slot in &TEMPS {
            let p = slot.load(Ordering::SeqCst);
            if !p.is_null() {
                // SAFETY: p is a leaked, NUL-terminated C string; unlink is async-signal-safe.
                unsafe {
                    libc::unlink(p);
                }
            }
        }
        // SA_RESETHAND restored the default action: re-raise so the process ends as it would
        // have (the signal is delivered when the handler returns).
        // SAFETY: raise is async-signal-safe.
        unsafe {
            libc::raise(sig);
        }
    }

    fn install() {
        INSTALL.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: plain sigaction with a handler that only calls unlink and raise. A
                // signal the process ignores (e.g. SIGHUP under nohup) stays ignored.
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                        || old.sa_sigaction == libc::SIG_IGN
                    {
                        continue;
                    }
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = on_signal as *const () as usize;
                    sa.sa_flags = libc::SA_RESETHAND;
                    libc::sigemptyset(&mut sa.sa_mask);
                    libc::sigaction(sig, &sa, std::ptr::null_mut());
                }
            }
        });
    }

    /// Remove `path` if a signal ends the process before the guard is dropped.
    pub fn register(path: &Path) -> Guard {
        install();
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return Guard(None);
        };
        let raw = c.into_raw();
        for (i, slot) in TEMPS.iter().enumerate() {
            if slot
                .compare_exchange(
                    std::ptr::null_mut(),
                    raw,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_ok()
            {
                return Guard(Some(i));
            }
        }
        // SAFETY: raw came from into_raw above and was not shared.
        drop(unsafe { CString::from_raw(raw) });
        Guard(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_creates_then_skips_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.conf");
        let w = update(&p, MODELS_CONF, |old| {
            assert!(old.is_none());
            Ok("a\n".into())
        })
        .unwrap();
        assert!(w.changed);
        let ino = std::fs::metadata(&p).unwrap().ino();
        let w = update(&p, MODELS_CONF, |old| Ok(old.unwrap().to_string())).unwrap();
        assert!(!w.changed);
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino, "not rewritten");
    }

    #[test]
    fn failing_closure_leaves_file_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.conf");
        std::fs::write(&p, "x").unwrap();
        assert!(update(&p, MODELS_CONF, |_| bail!("no")).is_err());
        assert!(write_stream(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x");
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn limits_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.toml");
        std::fs::write(&p, vec![b'x'; 2 * MIB as usize]).unwrap();
        let e = read_text(&p, HOST).unwrap_err().to_string();
        assert!(e.contains("a host file is at most 1 MiB"), "{e}");
        let e = read_text(Path::new("/dev/zero"), HOST)
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
        let e = read_text(d.path(), HOST).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }
}
