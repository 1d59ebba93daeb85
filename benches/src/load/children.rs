//! Child processes that never outlive the harness.
//!
//! Every child is held in a process-wide registry. A [`Guarded`] child is killed
//! and reaped when its guard drops (also while a panic unwinds), and
//! [`install_interrupt_handler`] kills every registered child on SIGINT or SIGTERM
//! before the harness exits.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::listening_address;

/// The children alive, by process id.
static REGISTRY: Mutex<Option<HashMap<u32, Child>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<HashMap<u32, Child>>> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills and reaps every registered child. Safe to call at any time; children
/// already gone are skipped.
pub fn kill_all() {
    let children: Vec<Child> =
        registry().as_mut().map(|m| m.drain().map(|(_, c)| c).collect()).unwrap_or_default();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Spawns a thread that, on SIGINT or SIGTERM, kills every registered child and
/// exits the process with status 130.
pub fn install_interrupt_handler() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    // Register the handlers now, so a signal that arrives before the thread runs is
    // not lost.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    thread::Builder::new().name("signals".into()).spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        eprintln!("harness: interrupted; stopping the servers and the load generator");
        kill_all();
        std::process::exit(130);
    })?;
    Ok(())
}

/// The pipes of a spawned child (those that were set to [`Stdio::piped`]).
#[derive(Debug)]
pub struct Pipes {
    /// Standard input.
    pub stdin: Option<ChildStdin>,
    /// Standard output.
    pub stdout: Option<ChildStdout>,
    /// Standard error.
    pub stderr: Option<ChildStderr>,
}

/// A registered child process, killed and reaped on drop.
#[derive(Debug)]
pub struct Guarded {
    pid: u32,
}

impl Guarded {
    /// Spawns `command` and registers the child; returns the guard and its pipes.
    pub fn spawn(command: &mut Command) -> io::Result<(Self, Pipes)> {
        let mut child = command.spawn()?;
        let pid = child.id();
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        registry().get_or_insert_with(HashMap::new).insert(pid, child);
        Ok((Self { pid }, pipes))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the child has exited, `None` while it runs.
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        match registry().as_mut().and_then(|m| m.get_mut(&self.pid)) {
            Some(child) => child.try_wait(),
            None => Err(io::Error::other("the child was already reaped")),
        }
    }

    /// Waits for the child to exit, up to `timeout`; kills it when the time is up.
    /// Returns the exit status, or `None` if it had to be killed.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills and reaps the child now (a no-op once it is reaped).
    pub fn kill(&self) {
        let child = registry().as_mut().and_then(|m| m.remove(&self.pid));
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The start and the end of what a child wrote to standard error.
#[derive(Debug, Default)]
struct Transcript {
    head: Vec<u8>,
    tail: Vec<u8>,
    dropped: u64,
}

impl Transcript {
    const HEAD: usize = 8 * 1024;
    const TAIL: usize = 16 * 1024;

    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < Self::HEAD {
            let n = bytes.len().min(Self::HEAD - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 2 * Self::TAIL {
            let excess = self.tail.len() - Self::TAIL;
            self.dropped += excess as u64;
            self.tail.drain(..excess);
        }
    }

    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!("\n[... {} bytes left out ...]\n", self.dropped));
        }
        out.push_str(&String::from_utf8_lossy(&self.tail));
        out
    }
}

/// A server process that printed its listening address.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on (always a loopback address).
    pub addr: SocketAddr,
    guard: Guarded,
    transcript: Arc<Mutex<Transcript>>,
    // Held open: the floor server exits when its standard input closes.
    _stdin: Option<ChildStdin>,
}

impl Server {
    /// Spawns `command` with standard error piped, and waits up to `timeout` for a
    /// line holding [`super::LISTENING_PREFIX`] and a loopback address. Standard
    /// error is drained for the life of the process; its start and end are kept for
    /// [`Server::log`].
    pub fn start(command: &mut Command, timeout: Duration) -> Result<Self, String> {
        command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let (guard, pipes) = Guarded::spawn(command)
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let stderr = pipes.stderr.ok_or("standard error was not piped")?;
        let transcript = Arc::new(Mutex::new(Transcript::default()));
        let (ready, listening) = mpsc::channel();
        let sink = transcript.clone();
        thread::Builder::new()
            .name(format!("stderr-{}", guard.pid()))
            .spawn(move || drain(stderr, &sink, &ready))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            guard,
            transcript,
            _stdin: pipes.stdin,
        };
        let addr = match listening.recv_timeout(timeout) {
            Ok(addr) => addr,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no listening line within {} s; standard error:\n{}",
                    timeout.as_secs(),
                    server.log()
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.guard.wait_timeout(Duration::from_secs(2)).ok().flatten();
                let status = status.map_or_else(|| "still running".to_owned(), |s| s.to_string());
                return Err(format!(
                    "it closed standard error without a listening line ({status}); standard error:\n{}",
                    server.log()
                ));
            }
        };
        if !addr.ip().is_loopback() {
            return Err(format!("it listens on {addr}, which is not a loopback address"));
        }
        Ok(Self { addr, ..server })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        matches!(self.guard.try_wait(), Ok(None))
    }

    /// `Ok(())` while the process runs; otherwise how it ended, with the end of its
    /// standard error.
    pub fn check_running(&self) -> Result<(), String> {
        match self.guard.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let log = self.log();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(format!("the server exited ({status}); its last lines:\n{}", tail.join("\n")))
            }
            Err(e) => Err(format!("the server's state is unknown: {e}")),
        }
    }

    /// The start and the end of what it wrote to standard error so far.
    pub fn log(&self) -> String {
        self.transcript.lock().unwrap_or_else(PoisonError::into_inner).text()
    }
}

/// Reads `stderr` line by line until the listening line, then in large chunks
/// until the end, keeping the transcript.
fn drain(stderr: ChildStderr, transcript: &Mutex<Transcript>, ready: &mpsc::Sender<SocketAddr>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stderr);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        transcript.lock().unwrap_or_else(PoisonError::into_inner).push(line.as_bytes());
        if let Some(addr) = listening_address(&line) {
            let _ = ready.send(addr);
            break;
        }
    }
    // Past start-up a server may log a line per request: keep up cheaply.
    let mut chunk = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => transcript.lock().unwrap_or_else(PoisonError::into_inner).push(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_keeps_head_and_tail() {
        let mut t = Transcript::default();
        t.push(b"first line\n");
        for _ in 0..10_000 {
            t.push(b"a log line of some length, repeated many times\n");
        }
        t.push(b"last line\n");
        let text = t.text();
        assert!(text.starts_with("first line\n"));
        assert!(text.ends_with("last line\n"));
        assert!(text.contains("bytes left out"));
        assert!(text.len() < 3 * Transcript::TAIL + Transcript::HEAD);
    }

    #[test]
    fn a_server_that_exits_early_is_reported() {
        let err = Server::start(
            Command::new("sh").args(["-c", "echo starting >&2; echo broken >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect_err("no listening line");
        assert!(err.contains("broken"), "{err}");
    }

    #[test]
    fn a_listening_server_is_found_and_killed() {
        let server = Server::start(
            Command::new("sh")
                .args(["-c", "echo 'listening on http://127.0.0.1:9' >&2; exec sleep 30"]),
            Duration::from_secs(10),
        )
        .expect("a listening line");
        assert_eq!(server.addr, "127.0.0.1:9".parse().unwrap());
        assert!(server.is_running());
        let pid = server.pid();
        drop(server);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "killed and reaped");
    }
}
