//! Child processes that can never hang placer: every run has a deadline, after which the child
//! is killed and the caller gets [`TimedOut`].

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child outlived its deadline and was killed.
#[derive(Debug, thiserror::Error)]
#[error("{program} did not finish within {} s and was stopped", .after.as_secs())]
pub struct TimedOut {
    /// The program that ran.
    pub program: String,
    /// The deadline it missed.
    pub after: Duration,
}

/// What a finished child printed.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (at most [`OUTPUT_LIMIT`] bytes kept).
    pub stdout: String,
    /// Standard error (at most [`OUTPUT_LIMIT`] bytes kept).
    pub stderr: String,
}

/// Bytes of a child's stdout / stderr kept in memory; the rest is read and dropped, so a chatty
/// child neither blocks on a full pipe nor fills placer's memory.
pub const OUTPUT_LIMIT: usize = 4 << 20;

/// Run `cmd` to completion with stdin closed, or kill it after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> anyhow::Result<Finished> {
    let program = cmd.get_program().to_string_lossy().to_string();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {program}: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = match wait_deadline(&mut child, timeout)? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TimedOut {
                program,
                after: timeout,
            }
            .into());
        }
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Wait for `child` until `timeout`; None when it is still running then.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut r) = r else {
            return String::new();
        };
        let mut kept = Vec::new();
        let mut buf = [0u8; 64 << 10];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_child_is_killed_at_its_deadline() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let t = Instant::now();
        let e = run(c, Duration::from_millis(300)).unwrap_err();
        assert!(e.downcast_ref::<TimedOut>().is_some(), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_is_collected() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run(c, Duration::from_secs(10)).unwrap();
        assert_eq!(f.stdout.trim(), "out");
        assert_eq!(f.stderr.trim(), "err");
        assert_eq!(f.status.code(), Some(3));
    }
}
