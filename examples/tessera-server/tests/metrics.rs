//! Prometheus metrics of the real server on a real socket: on the main listener by
//! default, on `--metrics-listen` only when given.

mod common;

use std::time::{Duration, Instant};

use common::{Server, create_user, temp_db};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn token(server: &Server, id: &str, secret: &str) -> u16 {
    oauth2::reqwest::Client::new()
        .post(server.url("/oauth/v2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

/// `GET url`: the status, the content type and the body.
async fn get(url: &str) -> (u16, String, String) {
    let response = oauth2::reqwest::Client::new().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// The value of the sample `series` (name and labels, exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

#[tokio::test]
async fn metrics_on_the_main_listener_count_issued_failed_and_throttled_requests() {
    let db = temp_db();
    let creds = create_user(&db.url, "billing-job", &[]);
    let server = Server::start(&db.url, &["--auth-failures-per-client-address", "1"]);

    assert_eq!(token(&server, &creds.client_id, &creds.client_secret).await, 200);
    assert_eq!(token(&server, &creds.client_id, "wrong-secret").await, 401);
    assert_eq!(token(&server, &creds.client_id, "wrong-secret").await, 429, "throttled");

    let (status, content_type, text) = get(&server.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, OPENMETRICS);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let value = |series: &str| sample(&text, series);
    assert_eq!(value(r#"tessera_http_requests_total{endpoint="token",status="200"}"#), Some(1.0));
    assert_eq!(value(r#"tessera_http_requests_total{endpoint="token",status="401"}"#), Some(1.0));
    assert_eq!(value(r#"tessera_http_requests_total{endpoint="token",status="429"}"#), Some(1.0));
    assert_eq!(
        value(r#"tessera_http_request_duration_seconds_count{endpoint="token"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"tessera_http_request_duration_seconds_bucket{le="+Inf",endpoint="token"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(r#"tessera_tokens_issued_total{token_type="opaque",algorithm="none"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"tessera_client_auth_failures_total{method="client_secret_basic"}"#),
        Some(1.0)
    );
    assert_eq!(value("tessera_throttled_requests_total"), Some(1.0));
    assert_eq!(value(r#"tessera_storage_errors_total{kind="unavailable"}"#), Some(0.0));
    assert_eq!(value(r#"tessera_storage_errors_total{kind="other"}"#), Some(0.0));
    assert!(!text.contains("tessera_store_pool"), "SQLite has no pool to report");
    // The key created at the first start has just begun signing.
    assert_eq!(value(r#"tessera_signing_key_rotations_total{event="retired"}"#), Some(0.0));
    let age = value("tessera_signing_key_age_seconds").expect("key age");
    assert!((0.0..120.0).contains(&age), "{age}");

    // The scrape itself is counted by the next one.
    let (_, _, text) = get(&server.url("/metrics")).await;
    assert_eq!(
        sample(&text, r#"tessera_http_requests_total{endpoint="metrics",status="200"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn jwt_tokens_are_counted_by_algorithm() {
    let db = temp_db();
    let creds = create_user(&db.url, "jwt-job", &["--access-token-type", "jwt"]);
    let server = Server::start(&db.url, &["--signing-alg", "EdDSA"]);
    assert_eq!(token(&server, &creds.client_id, &creds.client_secret).await, 200);
    let (_, _, text) = get(&server.url("/metrics")).await;
    assert_eq!(
        sample(&text, r#"tessera_tokens_issued_total{token_type="jwt",algorithm="EdDSA"}"#),
        Some(1.0),
        "{text}"
    );
}

/// The address the server logged for its metrics listener.
fn metrics_address(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.logs();
        if let Some(rest) = logs.split("metrics served on ").nth(1) {
            let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
            return rest[..end].to_owned();
        }
        assert!(Instant::now() < deadline, "no metrics address logged:\n{logs}");
    }
}

#[tokio::test]
async fn a_metrics_listener_serves_metrics_and_the_main_one_does_not() {
    let db = temp_db();
    let creds = create_user(&db.url, "billing-job", &[]);
    let server = Server::start(&db.url, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics_url = metrics_address(&server);
    assert!(metrics_url.ends_with("/metrics"), "{metrics_url}");
    assert_ne!(metrics_url, server.url("/metrics"));

    assert_eq!(token(&server, &creds.client_id, &creds.client_secret).await, 200);
    let (status, _, body) = get(&server.url("/metrics")).await;
    assert_eq!(status, 404, "{body}");

    let (status, content_type, text) = get(&metrics_url).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, OPENMETRICS);
    assert_eq!(
        sample(&text, r#"tessera_http_requests_total{endpoint="token",status="200"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"tessera_http_requests_total{endpoint="unknown",status="404"}"#),
        Some(1.0),
        "the refused /metrics on the main listener: {text}"
    );
    // Only /metrics on the metrics listener.
    let other = metrics_url.replace("/metrics", "/oauth/v2/token");
    assert_eq!(get(&other).await.0, 404);
}

#[tokio::test]
async fn the_metrics_listen_flag_has_an_environment_variable() {
    let server =
        Server::start_with("memory:", &[], None, &[("TESSERA_METRICS_LISTEN", "127.0.0.1:0")]);
    let metrics_url = metrics_address(&server);
    assert_eq!(get(&metrics_url).await.0, 200);
    assert_eq!(get(&server.url("/metrics")).await.0, 404);
}
