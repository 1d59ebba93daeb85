//! Helpers shared by the compatibility tests: find (or build) the real
//! `tessera-server` binary, run it as a server on a loopback socket with a temporary
//! SQLite database, and run its CLI commands with `--json`.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(unreachable_pub)] // shared by several test crates through `mod common`

pub mod python;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The directory of the running test executable (`<target>/<profile>/deps`).
fn exe_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent().expect("the test executable has a directory").to_path_buf()
}

/// The cargo target directory the test executable was built into
/// (`<target>/<profile>/deps/<test>`): `CARGO_TARGET_DIR` when that is set.
pub fn target_dir() -> PathBuf {
    exe_dir()
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in <target>/<profile>/deps")
        .to_path_buf()
}

/// The `tessera-server` binary of the profile these tests were built with. This
/// crate cannot use `CARGO_BIN_EXE_tessera-server` (another package's binary): it
/// looks beside the test executable's directory and, when the binary is missing,
/// builds it with `$CARGO build -p tessera-server`.
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = exe_dir().parent().expect("<target>/<profile>").to_path_buf();
        let bin = profile_dir.join(format!("tessera-server{}", std::env::consts::EXE_SUFFIX));
        if bin.is_file() {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(&cargo);
        command.args(["build", "-p", "tessera-server"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            command.arg("--release");
        }
        let status = command.status().unwrap_or_else(|e| {
            panic!(
                "{} was missing and `{cargo:?} build -p tessera-server` failed to start: {e}",
                bin.display()
            )
        });
        assert!(
            status.success(),
            "{} was missing and `{cargo:?} build -p tessera-server` failed: {status}",
            bin.display()
        );
        assert!(
            bin.is_file(),
            "`{cargo:?} build -p tessera-server` succeeded but {} is still missing \
             (is CARGO_TARGET_DIR the same for the build and for these tests?)",
            bin.display()
        );
        bin
    })
}

/// A running `tessera-server serve`, killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The base URL, `http://127.0.0.1:PORT`; also the issuer.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on `database` with extra `serve` arguments and waits until it listens.
    pub fn start(database: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(server_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .args(extra)
            .env("TESSERA_LOG", "debug")
            .env_remove("TESSERA_LOG_FORMAT")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_ISSUER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tessera-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not start; logs:\n{}",
                    logs.lock().expect("log lock").join("\n")
                );
            }
        };
        Server { child: Some(child), base, logs }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the server logged until now (after a short pause, since the server
    /// writes its lines a few milliseconds after the request that caused them).
    pub fn logs(&self) -> String {
        std::thread::sleep(Duration::from_millis(100));
        self.logs.lock().expect("log lock").join("\n")
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

/// Runs a CLI command against `database`.
pub fn cli(database: &str, args: &[&str]) -> Output {
    Command::new(server_bin())
        .args(args)
        .args(["--database", database])
        .env_remove("TESSERA_MASTER_KEY")
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
        "{args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

/// The string field `name` of a JSON object; panics naming the object otherwise.
pub fn field(value: &serde_json::Value, name: &str) -> String {
    value[name].as_str().unwrap_or_else(|| panic!("no string {name} in {value}")).to_owned()
}

/// A temporary directory with a SQLite database URL inside it.
pub struct TempDb {
    /// The directory; deleted on drop.
    pub dir: tempfile::TempDir,
    /// `sqlite://<dir>/tessera.db`.
    pub url: String,
}

/// A fresh SQLite database in a temporary directory.
pub fn temp_db() -> TempDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
    TempDb { dir, url }
}

/// A service user created with `service-user create`.
pub struct ServiceUser {
    /// Its id (the `sub` of its tokens, `userId` of its key files).
    pub user_id: String,
    /// Its username, also its client ID.
    pub username: String,
    /// Its client secret.
    pub client_secret: String,
}

/// Creates a service user `username` with extra `service-user create` arguments.
pub fn create_user(database: &str, username: &str, extra: &[&str]) -> ServiceUser {
    let mut args = vec!["service-user", "create", "--username", username];
    args.extend_from_slice(extra);
    let out = cli_json(database, &args);
    assert_eq!(field(&out, "username"), username, "{out}");
    ServiceUser {
        user_id: field(&out, "user_id"),
        username: field(&out, "client_id"),
        client_secret: field(&out, "client_secret"),
    }
}

/// Adds an RSA key to a service user; returns the key file JSON exactly as printed.
pub fn user_key(database: &str, username: &str) -> serde_json::Value {
    cli_json(database, &["service-user", "key", "add", "--username", username])
}

/// Creates a project named `name`; returns its id.
pub fn create_project(database: &str, name: &str) -> String {
    field(&cli_json(database, &["project", "create", "--name", name]), "project_id")
}

/// An API app created with `api-app create`.
pub struct ApiApp {
    /// Its project.
    pub project_id: String,
    /// Its client ID.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
}

/// Creates an API app of `project`.
pub fn create_api_app(database: &str, project: &str, name: &str) -> ApiApp {
    let out = cli_json(database, &["api-app", "create", "--project", project, "--name", name]);
    ApiApp {
        project_id: field(&out, "project_id"),
        client_id: field(&out, "client_id"),
        client_secret: field(&out, "client_secret"),
    }
}

/// Adds an RSA key to an API app; returns the key file JSON exactly as printed.
pub fn app_key(database: &str, client_id: &str) -> serde_json::Value {
    cli_json(database, &["api-app", "key", "add", "--client-id", client_id])
}

/// Grants `role` of `project` to the service user `username`.
pub fn grant(database: &str, username: &str, project: &str, role: &str) {
    let output = cli(
        database,
        &["grant", "add", "--username", username, "--project", project, "--role", role],
    );
    assert!(
        output.status.success(),
        "grant add failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Checks the fields every ZITADEL key file has (`type`, `keyId`, `key`,
/// `expirationDate`): the key is a PKCS#1 RSA private key in PEM, as ZITADEL hands
/// out and as the `zitadel` crate's RS256 signing expects, and the expiration date is
/// an RFC 3339 time in the future.
pub fn assert_key_file_basics(file: &serde_json::Value, kind: &str) {
    assert_eq!(file["type"], kind, "key file type: {file}");
    assert!(!field(file, "keyId").is_empty(), "empty keyId: {file}");
    let key = field(file, "key");
    assert!(
        key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
        "the key is not a PKCS#1 RSA private key in PEM: {}",
        key.lines().next().unwrap_or_default()
    );
    assert!(key.trim_end().ends_with("-----END RSA PRIVATE KEY-----"), "key PEM not closed");
    let expiration = field(file, "expirationDate");
    let expires =
        time::OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("expirationDate {expiration:?} is not RFC 3339: {e}"));
    assert!(
        expires > time::OffsetDateTime::now_utc(),
        "expirationDate {expiration} is not in the future"
    );
}

/// The current unix second.
pub fn unix_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Sleeps until just after the next second boundary, so that what follows has most
/// of a second before the unix second changes.
pub async fn start_of_next_second() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let rest = Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(rest + Duration::from_millis(20)).await;
}

/// Decodes the JSON header of a JWT without verifying anything.
pub fn jwt_header(token: &str) -> serde_json::Value {
    jwt_part(token, 0)
}

/// Decodes the JSON claims of a JWT without verifying anything.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    jwt_part(token, 1)
}

fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    use base64ct::Encoding as _;
    let part = token.split('.').nth(index).unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(part)
        .unwrap_or_else(|e| panic!("JWT part {index} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {index} is not JSON: {e}"))
}

/// Runs `attempt` until all of it happens within one unix second: it starts just
/// after a second boundary and is run again when it crossed the next one. Clients
/// that sign assertions with a whole-second `iat` and no `jti` (as ZITADEL's do)
/// then send byte-identical assertions on every call of one attempt.
pub async fn within_one_second<T>(mut attempt: impl AsyncFnMut() -> T) -> T {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        start_of_next_second().await;
        let before = unix_second();
        let result = attempt().await;
        let after = unix_second();
        if before == after {
            return result;
        }
        eprintln!("the calls crossed a second boundary ({before} -> {after}); trying again");
    }
    panic!("could not make the calls within one unix second in {ATTEMPTS} attempts");
}
