//! Real storage faults on a real SQLite file: a database, log (`-wal`) or index
//! (`-shm`) file that cannot be written is refused at start with a message naming
//! the database; a log made unwritable while serving answers 503 with
//! `Retry-After`, logs the cause, fails readiness and counts the error, and the
//! server recovers by itself once the fault is gone.
//!
//! The faults are made with the immutable attribute (`chattr +i`), which stops
//! every process, root included, from writing a file. Setting it needs
//! `CAP_LINUX_IMMUTABLE` (root has it) and a file system that supports it (ext4,
//! xfs, btrfs): these tests fail with an explanation where that is not so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, cli, create_user, temp_db};

/// A file with the immutable attribute, cleared on drop (also when a test fails,
/// so that the temporary directory can be removed).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        chattr("+i", path);
        Immutable(path.to_path_buf())
    }

    fn clear(self) {
        // Drop does it.
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, path: &Path) {
    let output = Command::new("chattr").arg(flag).arg(path).output().unwrap_or_else(|e| {
        panic!("these tests make files immutable with chattr, which cannot be run: {e}")
    });
    assert!(
        output.status.success(),
        "chattr {flag} {} failed ({}): these tests need CAP_LINUX_IMMUTABLE (run them as \
         root, as CI does) on a file system with the immutable attribute (ext4, xfs, btrfs)",
        path.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `serve` to its exit, which must be a refusal; returns its stderr.
fn refused_start(database: &str) -> String {
    let output = Command::new(common::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .env_remove("TESSERA_MASTER_KEY")
        .output()
        .expect("run tessera-server");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "the server started on an unwritable database: {stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    stderr
}

#[test]
fn a_database_that_cannot_be_written_is_refused_at_start_naming_it() {
    let db = temp_db();
    create_user(&db.url, "faulty", &[]);
    // Start once so that the signing key and the organization exist.
    drop(Server::start(&db.url, &[]));
    let shown = db.path.display().to_string();

    let guard = Immutable::set(&db.path);
    let stderr = refused_start(&db.url);
    assert!(stderr.contains(&shown), "{stderr}");
    assert!(stderr.contains("reading only"), "{stderr}");
    // Management commands refuse it the same way, with one line and a failing status.
    let listed = cli(&db.url, &["service-user", "list"]);
    assert!(!listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stderr).contains(&shown));
    guard.clear();

    // A log or index file left behind that cannot be written: refused too, where
    // it would otherwise fail at the first request (or, for the index, kill the
    // process with SIGBUS when it writes the shared memory mapped from it).
    for suffix in ["-wal", "-shm"] {
        let path = sibling(&db.path, suffix);
        std::fs::write(&path, b"").expect("create the file");
        let guard = Immutable::set(&path);
        let stderr = refused_start(&db.url);
        assert!(stderr.contains(&shown), "{suffix}: {stderr}");
        assert!(stderr.contains("readonly database"), "{suffix}: {stderr}");
        guard.clear();
        std::fs::remove_file(&path).expect("remove the file");
    }

    // Once the fault is gone, the same database starts and serves.
    let server = Server::start(&db.url, &[]);
    let status = blocking_status(&server.url("/readyz"));
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_made_unwritable_while_serving_answers_503_and_the_server_recovers() {
    let db = temp_db();
    let credentials = create_user(&db.url, "steady", &[]);
    common::cli_json(&db.url, &["admin", "add", "--username", "steady", "--role", "IAM_OWNER"]);
    let server = Server::start(&db.url, &["--no-throttle"]);
    let http = oauth2::reqwest::Client::new();
    let token = || {
        http.post(server.url("/oauth/v2/token"))
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let issued = token().await.expect("token request");
    assert_eq!(issued.status(), 200);
    let access_token =
        json(issued).await["access_token"].as_str().expect("access_token").to_owned();

    let admin_token = json(
        http.post(server.url("/oauth/v2/token"))
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "openid urn:zitadel:iam:org:project:id:zitadel:aud"),
            ])
            .send()
            .await
            .expect("token request"),
    )
    .await["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();

    let wal = sibling(&db.path, "-wal");
    assert!(wal.exists(), "the server keeps its log open");
    let guard = Immutable::set(&wal);

    let refused = token().await.expect("token request");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body = json(refused).await;
    assert_eq!(body["error"], "temporarily_unavailable");

    // The management API answers Connect's `unavailable`, and writes nothing.
    let create = http
        .post(server.url("/zitadel.user.v2.UserService/CreateUser"))
        .bearer_auth(&admin_token)
        .header("content-type", "application/json")
        .body(r#"{"username": "during-fault", "machine": {"name": "x"}}"#)
        .send()
        .await
        .expect("management call");
    assert_eq!(create.status(), 503);
    assert_eq!(json(create).await["code"], "unavailable");

    let ready = http.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503);
    let checks = json(ready).await;
    assert_eq!(checks["checks"]["store_write"], "failed");
    assert_eq!(checks["checks"]["store_read"], "ok");
    // Liveness stays green: the process is fine, restarting it would not help.
    let live = http.get(server.url("/healthz")).send().await.expect("healthz");
    assert_eq!(live.status(), 200);
    // Reads go on: a token issued before the fault still introspects at userinfo.
    let userinfo = http
        .get(server.url("/oidc/v1/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status(), 200);

    let logs = server.logs();
    let line = logs
        .lines()
        .find(|line| line.contains("storage unavailable"))
        .unwrap_or_else(|| panic!("no storage log line in:\n{logs}"));
    assert!(line.contains("disk I/O error"), "the cause is logged: {line}");
    let metrics = http.get(server.url("/metrics")).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    let unavailable = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"tessera_storage_errors_total{kind="unavailable"} "#))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the storage error counter");
    assert!(unavailable >= 2.0, "the token request and the readiness probe: {unavailable}");
    assert!(logs.contains("management: storage unavailable"), "{logs}");

    guard.clear();
    // Recovery needs no restart: the next write succeeds.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = token().await.expect("token request").status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} after the fault was removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = http.get(server.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let users = common::cli_json(&db.url, &["service-user", "list"]);
    assert!(!users.to_string().contains("during-fault"), "the refused call wrote nothing");
}

async fn json(response: oauth2::reqwest::Response) -> serde_json::Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn blocking_status(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async { oauth2::reqwest::get(url).await.expect("GET").status().as_u16() })
}
