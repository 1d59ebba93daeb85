//! `serve --bootstrap FILE`: clients provisioned from a file, on `memory:` and SQLite.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Server, cli_json, temp_db};

const SECRET: &str = "bootstrap-secret-0123456789abcdefghij";

fn write_file(dir: &std::path::Path, contents: &str) -> String {
    let path = dir.join("bootstrap.json");
    std::fs::write(&path, contents).expect("write bootstrap file");
    path.display().to_string()
}

async fn token_status(server: &Server, id: &str, secret: &str) -> (u16, serde_json::Value) {
    let response = oauth2::reqwest::Client::new()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

#[tokio::test]
async fn a_memory_server_gets_its_clients_from_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_file(
        dir.path(),
        &format!(
            r#"{{"service_users": [{{"username": "billing-job", "client_secret": "{SECRET}", "token_lifetime_secs": 300}}]}}"#
        ),
    );
    let server = Server::start("memory:", &["--bootstrap", &file]);
    let (status, body) = token_status(&server, "billing-job", SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s == 299 || s == 300), "{body}");
    let (status, body) = token_status(&server, "billing-job", "wrong-secret").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(!server.logs().contains(SECRET), "the bootstrap secret leaked into the logs");
}

#[tokio::test]
async fn applying_the_file_again_updates_existing_users_on_sqlite() {
    let db = temp_db();
    let file = write_file(
        db.dir.path(),
        &format!(r#"{{"service_users": [{{"username": "infra", "client_secret": "{SECRET}"}}]}}"#),
    );
    drop(Server::start(&db.url, &["--bootstrap", &file]));
    let first = cli_json(&db.url, &["service-user", "show", "--username", "infra"]);

    let changed = format!("{SECRET}-rotated");
    let file = write_file(
        db.dir.path(),
        &format!(
            r#"{{"service_users": [{{"username": "infra", "client_secret": "{changed}", "access_token_type": "opaque", "display_name": "Infrastructure"}}]}}"#
        ),
    );
    let server = Server::start(&db.url, &["--bootstrap", &file]);
    let second = cli_json(&db.url, &["service-user", "show", "--username", "infra"]);
    assert_eq!(first["user_id"], second["user_id"], "the same user is updated, not recreated");
    assert_eq!(second["display_name"], "Infrastructure");
    assert_eq!(token_status(&server, "infra", &changed).await.0, 200);
    assert_eq!(token_status(&server, "infra", SECRET).await.0, 401, "the old secret stops working");
}

#[test]
fn a_bad_file_stops_the_server_with_an_error_naming_the_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            format!(
                r#"{{"service_users": [{{"username": "ok", "client_secret": "{SECRET}"}}, {{"username": "weak", "client_secret": "short"}}]}}"#
            ),
            "service_users[1] (weak)",
        ),
        (
            format!(
                r#"{{"service_users": [{{"username": "ok", "client_secret": "{SECRET}", "scopes": []}}]}}"#
            ),
            "unknown field `scopes`",
        ),
        ("{".to_owned(), "bootstrap file"),
    ];
    for (contents, expected) in cases {
        let file = write_file(dir.path(), &contents);
        let output = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                "memory:",
                "--bootstrap",
                &file,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "server must refuse {contents}");
        assert!(stderr.contains(expected), "{stderr:?} should mention {expected:?}");
        assert!(!stderr.contains("listening on"), "no request may be answered");
    }
}

#[tokio::test]
async fn the_documented_file_provisions_projects_api_apps_and_grants() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api_secret = "orders-api-secret-0123456789abcdefghij";
    let file = write_file(
        dir.path(),
        &format!(
            r#"{{
              "service_users": [{{"username": "billing-job", "client_secret": "{SECRET}",
                                  "display_name": "Billing job", "access_token_type": "jwt", "token_lifetime_secs": 3600}}],
              "projects": [{{"id": "orders", "name": "Orders"}}],
              "api_apps": [{{"project": "orders", "client_id": "orders-api", "client_secret": "{api_secret}"}}],
              "grants": [{{"username": "billing-job", "project": "orders", "role": "reader"}}]
            }}"#
        ),
    );
    let server = Server::start(
        "memory:",
        &["--bootstrap", &file, "--organization-domain", "orders.example.com"],
    );
    let client = oauth2::reqwest::Client::new();
    let response = client
        .post(server.url("/oauth/v2/token"))
        .basic_auth("billing-job", Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "openid urn:zitadel:iam:org:project:id:orders:aud urn:zitadel:iam:org:project:role:reader"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT, as the file says");
    let response = client
        .post(server.url("/oauth/v2/introspect"))
        .basic_auth("orders-api", Some(api_secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection");
    let answer: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    assert_eq!(answer["active"], true);
    // role → organization id (18 digits, generated) → its primary domain.
    let roles = answer["urn:zitadel:iam:org:project:roles"]["reader"]
        .as_object()
        .expect("the reader role")
        .clone();
    assert_eq!(roles.len(), 1, "{answer}");
    let (org_id, domain) = roles.iter().next().expect("one organization");
    assert!(org_id.len() == 18 && org_id.bytes().all(|b| b.is_ascii_digit()), "{org_id}");
    assert_eq!(domain, "orders.example.com");
}
