//! The server against hostile clients: throttled brute force, slow and oversized
//! requests, and a cap on connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, create_user, temp_db};
use serde_json::Value;

async fn token(
    server: &Server,
    id: &str,
    secret: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = oauth2::reqwest::Client::new()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", format!("203.0.113.7, {addr}"));
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = response.bytes().await.expect("body");
    (status, retry, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn brute_force_is_throttled_per_client_and_address() {
    let db = temp_db();
    let creds = create_user(&db.url, "target", &[]);
    let server = Server::start(&db.url, &["--client-address-header", "x-forwarded-for"]);
    let attacker = Some("198.51.100.1");
    for attempt in 0..10 {
        let (status, _, body) = token(&server, "target", "wrong-guess", attacker).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "attempt {attempt}"
        );
    }
    // Over the limit: refused whatever the credentials, with Retry-After and an OAuth body.
    for secret in ["wrong-guess", creds.client_secret.as_str()] {
        let (status, retry, body) = token(&server, "target", secret, attacker).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(retry.and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| (1..=60).contains(&r)));
    }
    // The legitimate client on its own address is not locked out.
    let (status, _, body) =
        token(&server, "target", &creds.client_secret, Some("192.0.2.44")).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.logs().contains("client_throttled"), "an audit event says so");
    assert!(server.logs().contains("198.51.100.1"), "with the address");
    assert!(!server.logs().contains(&creds.client_secret));
}

#[tokio::test]
async fn one_address_spraying_client_ids_is_throttled() {
    let server = Server::start("memory:", &["--auth-failures-per-address", "20"]);
    let mut refused = 0;
    for i in 0..30 {
        let (status, _, _) = token(&server, &format!("spray-{i}"), "guess", None).await;
        assert!(status == 401 || status == 429, "{status}");
        if status == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "everything past the address's 20 failures is refused");
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    stream
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn slow_headers_are_cut_off() {
    let server = Server::start("memory:", &["--header-read-timeout", "1"]);
    let mut stream = connect(&server);
    stream.write_all(b"POST /oauth/v2/token HTTP/1.1\r\nHost: x\r\n").expect("write");
    let started = Instant::now();
    let answer = read_all(&mut stream);
    assert!(started.elapsed() < Duration::from_secs(10), "the connection must be closed");
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server still serves.
    let mut stream = connect(&server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_slow_body_is_answered_408() {
    let server = Server::start("memory:", &["--request-timeout", "1"]);
    let mut stream = connect(&server);
    stream
        .write_all(b"POST /oauth/v2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type")
        .expect("write");
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("invalid_request"), "an OAuth error body: {answer}");
}

#[test]
fn oversized_headers_are_refused() {
    let server = Server::start("memory:", &[]);
    let mut stream = connect(&server);
    let big = "a".repeat(20_000);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let answer = read_all(&mut stream);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    let mut stream = connect(&server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 200"), "still serving");
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let server =
        Server::start("memory:", &["--max-connections", "2", "--header-read-timeout", "30"]);
    // Two connections hold both slots (they send half a request and wait).
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&server);
            s.write_all(b"GET /healthz HTTP/1.1\r\n").expect("write");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(&server);
    third.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "the third connection is not served while two are held");
    // Freeing a slot lets it through.
    drop(held.pop());
    third.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    assert!(read_all(&mut third).starts_with("HTTP/1.1 200"));
}

/// Sends a token request with `client_id` and a wrong secret in the body.
async fn wrong_secret_for(server: &Server, client_id: &str) -> u16 {
    let response = oauth2::reqwest::Client::new()
        .post(server.url("/oauth/v2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .expect("request");
    response.status().as_u16()
}

#[tokio::test]
async fn hostile_client_ids_cannot_forge_log_lines_in_either_format() {
    let hostile = [
        "x\nFORGED  INFO tessera::audit: event=\"token_issued\" client_id=admin",
        "x\r\nFORGED",
        "\u{1b}[31mred\u{1b}[0m",
        "quo\"te\\back",
        "x client_id=admin",
    ];
    for format in [None, Some("json")] {
        let env: Vec<(&str, &str)> =
            format.map(|f| ("TESSERA_LOG_FORMAT", f)).into_iter().collect();
        let server =
            Server::start_with("memory:", &["--auth-failures-per-client-address", "1"], None, &env);
        for id in hostile {
            // A failure (client_authentication_failed), then a refusal (client_throttled).
            assert_eq!(wrong_secret_for(&server, id).await, 401, "{id:?}");
            assert_eq!(wrong_secret_for(&server, id).await, 429, "{id:?}");
        }
        let logs = server.logs();
        assert!(logs.contains("client_throttled"), "{logs}");
        for line in logs.lines() {
            assert!(!line.starts_with("FORGED"), "{format:?}: a forged line: {line}");
            assert!(!line.contains('\u{1b}') && !line.contains('\r'), "{format:?}: {line:?}");
            if format.is_some() {
                let parsed: Result<Value, _> = serde_json::from_str(line);
                assert!(parsed.is_ok(), "not one JSON object: {line}");
            } else {
                // Every line is an event of its own: a timestamp, then a level.
                assert!(
                    line.get(..4).is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit())),
                    "{line}"
                );
                assert!(unquoted_fields(line, "client_id") <= 1, "a forged field: {line}");
            }
        }
    }
}

/// How many times `name=` starts a field of a plain log line, outside quoted values.
fn unquoted_fields(line: &str, name: &str) -> usize {
    let (mut quoted, mut escaped, mut count) = (false, false, 0);
    let key = format!(" {name}=");
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' if !quoted && line[i..].starts_with(&key) => count += 1,
            _ => {}
        }
    }
    count
}

#[test]
fn silent_connections_beyond_the_cap_are_closed_at_the_deadline() {
    let server =
        Server::start("memory:", &["--max-connections", "4", "--header-read-timeout", "2"]);
    let opened = Instant::now();
    // More silent sockets than the cap: some send nothing, some an HTTP/2 preface and
    // stall, some half an HTTP/1.1 request line.
    let silent: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = connect(&server);
            match i % 3 {
                0 => {}
                1 => s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect("write"),
                _ => s.write_all(b"GET /heal").expect("write"),
            }
            s
        })
        .collect();
    // A new client is answered within a second of the deadline (2 s from the accept
    // of the first slots' holders), although every slot was taken.
    let mut client = connect(&server);
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let answer = read_all(&mut client);
    let waited = opened.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(waited < Duration::from_secs(2 + 1 + 2), "answered after {waited:?}");
    // The silent ones were closed by the server.
    for mut s in silent.into_iter().take(4) {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("a silent connection stayed open: {e} ({total} bytes read)"),
            }
        }
    }
}

#[test]
fn keep_alive_connections_that_go_quiet_are_closed() {
    let server =
        Server::start("memory:", &["--max-connections", "1", "--header-read-timeout", "1"]);
    let mut first = connect(&server);
    first.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    first.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let n = first.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The one slot is held by an idle keep-alive connection; it is released after 1 s.
    let started = Instant::now();
    let mut second = connect(&server);
    second.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    assert!(read_all(&mut second).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    drop(first);
}

#[tokio::test]
async fn strangers_cannot_lock_a_client_out_of_the_address_it_works_from() {
    let db = temp_db();
    let creds = create_user(&db.url, "target", &[]);
    let server = Server::start(
        &db.url,
        &["--client-address-header", "x-forwarded-for", "--auth-failures-per-client", "20"],
    );
    let home = Some("198.51.100.1");
    assert_eq!(token(&server, "target", &creds.client_secret, home).await.0, 200);
    // Twenty wrong secrets from twenty addresses, one each: no per-address limit trips,
    // the per-client one does.
    for i in 0..20 {
        let stranger = format!("203.0.113.{}", 10 + i);
        assert_eq!(token(&server, "target", "wrong", Some(&stranger)).await.0, 401);
    }
    let (status, retry, _) =
        token(&server, "target", &creds.client_secret, Some("192.0.2.50")).await;
    assert_eq!(status, 429, "a new address meets the per-client limit");
    assert!(retry.is_some());
    // The client, from the address it authenticated from, still gets its tokens.
    assert_eq!(token(&server, "target", &creds.client_secret, home).await.0, 200);
}
