//! The client credentials flow end to end: the real binary on a real socket, the
//! `oauth2` crate as the client, SQLite files as the database.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, create_user, regenerate_secret, temp_db};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use tessera_store::prelude::*;
use tessera_store::{TokenDigest, Username};
use tessera_store_sqlite::SqliteStore;

type Client = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(server: &Server, id: &str, secret: &str, auth: AuthType) -> Client {
    BasicClient::new(ClientId::new(id.to_owned()))
        .set_client_secret(ClientSecret::new(secret.to_owned()))
        .set_token_uri(TokenUrl::new(server.url("/oauth/v2/token")).expect("token URL"))
        .set_auth_type(auth)
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

async fn token(
    client: &Client,
    scopes: &[&str],
) -> Result<oauth2::basic::BasicTokenResponse, BasicErrorResponseType> {
    let mut request = client.exchange_client_credentials();
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    request.request_async(&http()).await.map_err(|e| match e {
        RequestTokenError::ServerResponse(response) => response.error().clone(),
        other => panic!("transport failure, not an OAuth error: {other:?}"),
    })
}

#[tokio::test]
async fn oauth2_client_gets_a_token_with_basic_auth_and_with_body_auth() {
    let db = temp_db();
    let creds = create_user(&db.url, "billing-job", &["--display-name", "Billing job"]);
    let server = Server::start(&db.url, &[]);

    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let response = token(
            &client(&server, &creds.client_id, &creds.client_secret, auth.clone()),
            &["openid", "profile"],
        )
        .await
        .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert_eq!(*response.token_type(), oauth2::basic::BasicTokenType::Bearer);
        let expires_in = response.expires_in().expect("expires_in").as_secs();
        assert!((43_199..=43_200).contains(&expires_in), "expires_in {expires_in}");
        let scopes: Vec<&str> =
            response.scopes().expect("scope").iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["openid", "profile"]);
        assert_eq!(response.access_token().secret().len(), 51);
    }

    // The logs name the client but never the secret or a token.
    let logs = server.logs();
    assert!(logs.contains("billing-job"), "audit events name the client");
    assert!(!logs.contains(&creds.client_secret), "a secret leaked into the logs");
    // Each token_issued line names the address the request came from.
    let issued: Vec<&str> = logs.lines().filter(|l| l.contains("event=\"token_issued\"")).collect();
    assert!(!issued.is_empty(), "no token_issued line in {logs}");
    for line in issued {
        assert!(line.contains(" client_address=127.0.0.1"), "{line}");
    }
}

#[tokio::test]
async fn issued_tokens_are_recorded_by_digest_only() {
    let db = temp_db();
    let creds = create_user(&db.url, "recorder", &[]);
    let server = Server::start(&db.url, &[]);
    let response =
        token(&client(&server, "recorder", &creds.client_secret, AuthType::BasicAuth), &[])
            .await
            .expect("token");
    let access_token = response.access_token().secret().clone();
    let scopes: Vec<&str> = response.scopes().expect("scope").iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["openid"], "no scope requested: the default is granted and reported");
    assert!(!server.logs().contains(&access_token), "a token leaked into the logs");
    drop(server);

    let store = SqliteStore::open(&db.path).await.expect("open database");
    let record = store
        .token_by_digest(&TokenDigest::of(&access_token))
        .await
        .expect("lookup")
        .expect("the token's record is stored");
    assert_eq!(record.client_id.as_str(), "recorder");
    assert_eq!(record.user_id.as_str(), creds.user_id);
    let mut raw = std::fs::read(&db.path).expect("read database");
    raw.extend(std::fs::read(db.path.with_extension("db-wal")).unwrap_or_default());
    let haystack = String::from_utf8_lossy(&raw);
    assert!(!haystack.contains(&access_token), "the token is stored in clear");
    assert!(!haystack.contains(&creds.client_secret), "the secret is stored in clear");
}

#[tokio::test]
async fn secret_regenerated_by_the_cli_works_at_once_on_a_running_server() {
    let db = temp_db();
    let old = create_user(&db.url, "rotating", &[]);
    let server = Server::start(&db.url, &[]);
    token(&client(&server, "rotating", &old.client_secret, AuthType::BasicAuth), &[])
        .await
        .expect("old secret works before regeneration");

    let new = regenerate_secret(&db.url, "rotating");
    assert_ne!(new.client_secret, old.client_secret);
    assert_eq!(new.user_id, old.user_id);

    let err = token(&client(&server, "rotating", &old.client_secret, AuthType::BasicAuth), &[])
        .await
        .expect_err("old secret must fail at once");
    assert_eq!(err, BasicErrorResponseType::InvalidClient);
    token(&client(&server, "rotating", &new.client_secret, AuthType::RequestBody), &[])
        .await
        .expect("new secret works");
}

#[tokio::test]
async fn users_and_token_records_survive_a_restart() {
    let db = temp_db();
    let creds = create_user(
        &db.url,
        "survivor",
        &["--access-token-type", "opaque", "--token-lifetime", "600"],
    );
    let server = Server::start(&db.url, &[]);
    let first = token(&client(&server, "survivor", &creds.client_secret, AuthType::BasicAuth), &[])
        .await
        .expect("token");
    assert!(server.terminate().success(), "clean exit on SIGTERM");

    let server = Server::start(&db.url, &[]);
    let second =
        token(&client(&server, "survivor", &creds.client_secret, AuthType::BasicAuth), &[])
            .await
            .expect("the user and its secret survive the restart");
    assert!(second.expires_in().expect("expires_in").as_secs() <= 600);
    drop(server);

    let store = SqliteStore::open(&db.path).await.expect("open");
    for issued in [&first, &second] {
        let digest = TokenDigest::of(issued.access_token().secret());
        assert!(store.token_by_digest(&digest).await.expect("lookup").is_some(), "record lost");
    }
    let user = store
        .service_user_by_username(&Username::new("survivor").expect("name"))
        .await
        .expect("lookup")
        .expect("user survives");
    assert_eq!(user.token_lifetime.as_secs(), 600);
}

/// The guide's request, as curl sends it, answered as the guide shows.
#[test]
fn the_guides_request_gets_the_guides_answer() {
    let db = temp_db();
    let creds = create_user(&db.url, "guide", &[]);
    let server = Server::start(&db.url, &[]);
    let body = "grant_type=client_credentials&scope=openid%20profile";
    let (head, json) = raw_request(
        &server,
        &format!(
            "POST /oauth/v2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: Basic {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            basic(&creds.client_id, &creds.client_secret),
            body.len()
        ),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/json"), "{head}");
    assert!(lower.contains("cache-control: no-store"), "{head}");
    assert!(lower.contains("pragma: no-cache"), "{head}");
    assert_eq!(json["token_type"], "Bearer");
    assert!(json["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(json["expires_in"].as_u64().is_some_and(|s| s == 43_199 || s == 43_200));
    assert_eq!(json["scope"], "openid profile");
}

/// SIGTERM while a request is half sent: the request is still answered, then the
/// server exits cleanly.
#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let db = temp_db();
    let creds = create_user(&db.url, "inflight", &[]);
    let server = Server::start(&db.url, &[]);
    let body = "grant_type=client_credentials";
    let head = format!(
        "POST /oauth/v2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
        basic(&creds.client_id, &creds.client_secret),
        body.len()
    );
    let mut stream =
        TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(&body.as_bytes()[..10]).expect("send part of the body");
    std::thread::sleep(Duration::from_millis(200));
    common::signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body.as_bytes()[10..]).expect("send the rest");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200 OK"), "in-flight request not answered: {response}");
    assert!(response.contains("access_token"));
    assert!(server.wait_exit().success(), "clean exit");
}

fn basic(id: &str, secret: &str) -> String {
    <base64ct::Base64 as base64ct::Encoding>::encode_string(format!("{id}:{secret}").as_bytes())
}

fn raw_request(server: &Server, request: &str) -> (String, serde_json::Value) {
    let mut stream =
        TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_owned(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn liveness_and_readiness_probes() {
    let db = common::temp_db();
    let server = common::Server::start(&db.url, &[]);
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = oauth2::reqwest::get(server.url(path)).await.expect("GET");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
        assert_eq!(body["status"], status, "{path}: {body}");
    }
    let response = oauth2::reqwest::get(server.url("/readyz")).await.expect("GET");
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    assert_eq!(
        body["checks"],
        serde_json::json!({"store_read": "ok", "store_write": "ok", "signing_key": "ok"})
    );
}

/// The `token_issued` line in each log format, and under a filter that drops it: the
/// plain format's line is written straight into the log buffer, the JSON one through
/// `tracing`, and the filter decides for both.
#[tokio::test]
async fn the_token_issued_line_in_each_format_and_under_a_filter() {
    let db = temp_db();
    let creds = create_user(&db.url, "audited", &[]);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "plain"),
        (&[("TESSERA_LOG", "info")], "plain"),
        (&[("TESSERA_LOG_FORMAT", "json")], "json"),
        (&[("TESSERA_LOG", "info,tessera::audit=warn")], "none"),
    ];
    for (env, expected) in cases {
        let server = Server::start_with(&db.url, &[], None, env);
        let response =
            token(&client(&server, "audited", &creds.client_secret, AuthType::BasicAuth), &[])
                .await
                .unwrap_or_else(|e| panic!("{env:?}: {e:?}"));
        let store = SqliteStore::open(&db.path).await.expect("open");
        let record = store
            .token_by_digest(&TokenDigest::of(response.access_token().secret()))
            .await
            .expect("lookup")
            .expect("a record for the token");
        let logs = server.logs();
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains("token_issued")).collect();
        match expected {
            "plain" => {
                assert_eq!(lines.len(), 1, "{env:?}: {logs}");
                let (_, rest) = lines[0].split_once("Z  INFO ").expect("timestamp and level");
                assert_eq!(
                    rest,
                    format!(
                        "tessera::audit: event=\"token_issued\" client_id=audited jti={} \
                         token_type=opaque scope=openid audience=audited expires_at={} \
                         client_address=127.0.0.1",
                        record.jti,
                        record.expires_at.unix_timestamp()
                    ),
                    "{env:?}"
                );
            }
            "json" => {
                assert_eq!(lines.len(), 1, "{logs}");
                let line: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
                let fields = &line["fields"];
                assert_eq!(line["target"], "tessera::audit", "{line}");
                assert_eq!(fields["event"], "token_issued", "{line}");
                assert_eq!(fields["client_id"], "audited", "{line}");
                assert_eq!(fields["jti"], record.jti.as_str(), "{line}");
                assert_eq!(fields["expires_at"], record.expires_at.unix_timestamp(), "{line}");
                assert_eq!(fields["client_address"], "127.0.0.1", "{line}");
            }
            _ => assert!(lines.is_empty(), "{env:?}: the filter drops the line: {logs}"),
        }
    }
}
