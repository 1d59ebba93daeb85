//! Crash safety on SQLite: the server is killed with SIGKILL in the middle of a load
//! of token requests, restarted on the same file, and every token it answered with
//! 200 before it died must still be active — seen by the server through introspection
//! and, after the server stopped, by digest directly in the file — and the file must
//! pass `PRAGMA integrity_check`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Credentials, Server, create_user, signal, temp_db};
use serde_json::Value;
use tessera_store::TokenDigest;
use tessera_store::prelude::*;
use tessera_store_sqlite::SqliteStore;

/// Concurrent clients, each on its own keep-alive connection pool.
const CLIENTS: usize = 8;
/// How long the load runs before the kill.
const LOAD: Duration = Duration::from_secs(2);
/// Kill and restart cycles.
const CYCLES: usize = 3;
const SERVE_ARGS: &[&str] = &["--no-throttle"];

/// What one load run saw.
#[derive(Default)]
struct Run {
    /// Every access token answered with 200.
    tokens: Vec<String>,
    /// Requests sent but not yet answered when the kill was sent.
    in_flight_at_kill: usize,
    /// Anything other than a 200 before the kill (there should be nothing).
    unexpected: Vec<String>,
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Runs `CLIENTS` clients requesting tokens for `LOAD`, then kills the server with
/// SIGKILL from another task while requests are in flight, and lets the clients run
/// into the dead socket.
async fn load_then_kill(server: &Server, creds: &Credentials) -> Run {
    let url = server.url("/oauth/v2/token");
    let pid = server.pid();
    let killed = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let run = Arc::new(Mutex::new(Run::default()));
    let deadline = Instant::now() + LOAD + Duration::from_secs(15);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (url, killed, in_flight, run) =
            (url.clone(), killed.clone(), in_flight.clone(), run.clone());
        let (id, secret) = (creds.client_id.clone(), creds.client_secret.clone());
        clients.push(tokio::spawn(async move {
            let client = http();
            while Instant::now() < deadline {
                in_flight.fetch_add(1, Ordering::SeqCst);
                let answer = async {
                    let response = client
                        .post(&url)
                        .basic_auth(&id, Some(&secret))
                        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    Ok::<_, oauth2::reqwest::Error>((status, response.bytes().await?))
                }
                .await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                match answer {
                    Ok((200, body)) => {
                        let token = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["access_token"].as_str().map(str::to_owned));
                        let mut run = run.lock().expect("lock");
                        match token {
                            Some(token) => run.tokens.push(token),
                            None => run.unexpected.push(format!(
                                "200 without a token: {}",
                                String::from_utf8_lossy(&body)
                            )),
                        }
                    }
                    // Once the kill is sent, failures are what it causes.
                    _ if killed.load(Ordering::SeqCst) => break,
                    Ok((status, body)) => run
                        .lock()
                        .expect("lock")
                        .unexpected
                        .push(format!("{status}: {}", String::from_utf8_lossy(&body))),
                    Err(e) => run.lock().expect("lock").unexpected.push(e.to_string()),
                }
            }
        }));
    }
    let killer = {
        let (killed, in_flight) = (killed.clone(), in_flight.clone());
        tokio::spawn(async move {
            tokio::time::sleep(LOAD).await;
            killed.store(true, Ordering::SeqCst);
            let in_flight = in_flight.load(Ordering::SeqCst);
            signal(pid, "KILL");
            in_flight
        })
    };
    let in_flight_at_kill = killer.await.expect("killer task");
    for client in clients {
        client.await.expect("client task");
    }
    let mut run = std::mem::take(&mut *run.lock().expect("lock"));
    run.in_flight_at_kill = in_flight_at_kill;
    run
}

/// Introspects every token as its own service user on `CLIENTS` connections; returns
/// the tokens that are not active (with what the server said).
async fn inactive_tokens(server: &Server, creds: &Credentials, tokens: &[String]) -> Vec<String> {
    let url = server.url("/oauth/v2/introspect");
    let chunk = tokens.len().div_ceil(CLIENTS).max(1);
    let mut tasks = Vec::new();
    for part in tokens.chunks(chunk) {
        let (url, part) = (url.clone(), part.to_vec());
        let (id, secret) = (creds.client_id.clone(), creds.client_secret.clone());
        tasks.push(tokio::spawn(async move {
            let client = http();
            let mut bad = Vec::new();
            for token in part {
                let response = client
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("token", token.as_str())])
                    .send()
                    .await
                    .expect("introspection request");
                let status = response.status().as_u16();
                let body: Value =
                    serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
                if status != 200 || body["active"] != true {
                    bad.push(format!("{token:.12}…: {status} {body}"));
                }
            }
            bad
        }));
    }
    let mut bad = Vec::new();
    for task in tasks {
        bad.extend(task.await.expect("introspection task"));
    }
    bad
}

/// `PRAGMA integrity_check` on the file, read-only.
fn integrity(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only");
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("integrity_check")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_answered_before_a_sigkill_survive_the_crash() {
    let started = Instant::now();
    let db = temp_db();
    let creds = create_user(&db.url, "load", &[]);
    let mut server = Server::start(&db.url, SERVE_ARGS);
    let master_key = db.dir.path().join("tessera.db.master.key");
    assert!(master_key.exists(), "the server created the master key file beside the database");
    let mut all: Vec<String> = Vec::new();
    for cycle in 1..=CYCLES {
        let run = load_then_kill(&server, &creds).await;
        let status = server.wait_exit();
        assert_eq!(status.signal(), Some(9), "cycle {cycle}: the server died of SIGKILL");
        assert!(run.unexpected.is_empty(), "cycle {cycle}: before the kill: {:?}", run.unexpected);
        assert!(!run.tokens.is_empty(), "cycle {cycle}: no token issued before the kill");
        eprintln!(
            "cycle {cycle}: {} tokens answered with 200 before the kill, \
             {} requests in flight at the kill",
            run.tokens.len(),
            run.in_flight_at_kill
        );
        // The server checks every token of this crash, and a sample of the earlier
        // crashes' (all of them are checked by digest once the server has stopped).
        let mut check: Vec<String> = all.iter().step_by(10).cloned().collect();
        check.extend(run.tokens.iter().cloned());
        all.extend(run.tokens);

        // The file as the crash left it (read-only, so it stays so for the restart).
        assert_eq!(integrity(&db.path), "ok", "cycle {cycle}: integrity right after the kill");

        // Restart on the same file; the master key file is reused.
        server = Server::start(&db.url, SERVE_ARGS);
        assert!(server.logs().contains("master key from file"), "{}", server.logs());
        let checking = Instant::now();
        let inactive = inactive_tokens(&server, &creds, &check).await;
        eprintln!("cycle {cycle}: {} tokens introspected in {:?}", check.len(), checking.elapsed());
        assert!(
            inactive.is_empty(),
            "cycle {cycle}: {} of {} tokens answered before a crash are not active after it: {:?}",
            inactive.len(),
            check.len(),
            &inactive[..inactive.len().min(10)]
        );
        assert_eq!(integrity(&db.path), "ok", "cycle {cycle}: integrity after the restart");
    }

    // After a clean stop: every record by digest, straight from the file.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let store = SqliteStore::open(&db.path).await.expect("open the store");
    let now = time::OffsetDateTime::now_utc();
    let mut missing = Vec::new();
    for token in &all {
        match store.token_by_digest(&TokenDigest::of(token)).await.expect("lookup") {
            Some(record) if record.is_active(now) && record.client_id.as_str() == "load" => {}
            other => missing.push(format!("{token:.12}…: {other:?}")),
        }
    }
    drop(store);
    assert!(missing.is_empty(), "{} of {} records missing: {missing:?}", missing.len(), all.len());
    assert_eq!(integrity(&db.path), "ok", "integrity after the last stop");
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "every token is distinct");
    eprintln!(
        "{} tokens over {CYCLES} crashes, all active; test took {:?}",
        all.len(),
        started.elapsed()
    );
}
