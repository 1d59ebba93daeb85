//! Helpers shared by the server's integration tests: run the real binary, as a
//! server on a real socket and as CLI commands.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(unreachable_pub)] // shared by several test crates through `mod common`

pub mod assertions;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera-server");

/// A running `tessera-server serve`, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on `database` with extra `serve` arguments and waits until it listens.
    pub fn start(database: &str, extra: &[&str]) -> Server {
        Self::start_in(database, extra, None)
    }

    /// As [`Server::start`], in working directory `dir`.
    pub fn start_in(database: &str, extra: &[&str], dir: Option<&Path>) -> Server {
        Self::start_with(database, extra, dir, &[])
    }

    /// As [`Server::start`], in working directory `dir`, with environment variables `env`.
    pub fn start_with(
        database: &str,
        extra: &[&str],
        dir: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("TESSERA_LOG", "debug")
            .env_remove("TESSERA_LOG_FORMAT")
            .env_remove("TESSERA_MASTER_KEY")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("start tessera-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let end =
                        rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
                    let _ = tx.send(rest[..end].to_owned());
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; logs:\n{}",
                    logs.lock().expect("log lock").join("\n")
                );
            }
        };
        Server { child: Some(child), base, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the server logged until now. The server writes its log lines a
    /// few milliseconds after the request that caused them, and a thread here reads
    /// them from the pipe: give both time before reading.
    pub fn logs(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.logs.lock().expect("log lock").join("\n")
    }

    /// Waits for the server to exit by itself (after a signal already sent).
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a CLI command against `database`.
pub fn cli(database: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--database", database])
        .stdin(Stdio::null())
        .output()
        .expect("run tessera-server")
}

/// Runs a CLI command with `--json` and parses its output; panics on failure.
pub fn cli_json(database: &str, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = cli(database, &all);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// Client credentials printed by `service-user create` or `secret`.
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub user_id: String,
}

pub fn create_user(database: &str, username: &str, extra: &[&str]) -> Credentials {
    let mut args = vec!["service-user", "create", "--username", username];
    args.extend_from_slice(extra);
    credentials(&cli_json(database, &args))
}

pub fn regenerate_secret(database: &str, username: &str) -> Credentials {
    credentials(&cli_json(database, &["service-user", "secret", "--username", username]))
}

fn credentials(value: &serde_json::Value) -> Credentials {
    let field = |name: &str| {
        value[name].as_str().unwrap_or_else(|| panic!("no {name} in {value}")).to_owned()
    };
    Credentials {
        client_id: field("client_id"),
        client_secret: field("client_secret"),
        user_id: field("user_id"),
    }
}

/// A temporary directory with a SQLite database URL inside it.
pub struct TempDb {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub path: PathBuf,
}

pub fn temp_db() -> TempDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tessera.db");
    let url = format!("sqlite://{}", path.display());
    TempDb { dir, url, path }
}
