//! Mounting the endpoint anywhere: at the root or under the issuer URL's path (with
//! or without the prefix in the request, as axum's `nest_service` strips it), with
//! the discovery document naming the URLs where the endpoints answer; and where a
//! request's client address comes from, as throttling sees it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::Service as _;
use serde_json::Value;
use tessera_endpoint::{
    ClientAddr, ClientAddressSource, Issuer, Limit, ROUTES, ThrottleConfig, TokenEndpoint,
};
use tessera_mint::TokenMinter;
use tessera_store::prelude::*;
use tessera_store::{ClientSecret, Credentials, MemoryStore, SecretDigest, ServiceUser, Username};
use time::OffsetDateTime;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An endpoint with issuer `issuer` and a service user `svc` whose secret it returns.
async fn endpoint(
    issuer: &str,
) -> Result<(TokenEndpoint, ClientSecret), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    let secret = ClientSecret::generate()?;
    let mut user = ServiceUser::new(Username::new("svc")?, OffsetDateTime::now_utc())?;
    user.credentials = Credentials::new(SecretDigest::of(&secret)?);
    store.create_service_user(&user).await?;
    Ok((TokenEndpoint::new(Issuer::new(store, TokenMinter::new(issuer))), secret))
}

fn token_request(path: &str, secret: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "grant_type=client_credentials&client_id=svc&client_secret={secret}"
        ))))
        .unwrap_or_default()
}

async fn answer(
    service: &impl hyper::service::Service<
        Request<Full<Bytes>>,
        Response = http::Response<Full<Bytes>>,
        Error = std::convert::Infallible,
    >,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = service.call(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::new(Bytes::new())).unwrap_or_default()
}

#[tokio::test]
async fn at_the_root_every_route_answers_and_nothing_else() -> TestResult {
    let (endpoint, secret) = endpoint("https://auth.example.com").await?;
    for route in ROUTES {
        assert!(endpoint.handles(route), "{route}");
    }
    for other in ["/", "/api/hello", "/oauth/v2", "/oauth/v2/token/", "/auth/oauth/v2/token"] {
        assert!(!endpoint.handles(other), "{other}");
    }
    let (status, body) =
        answer(&endpoint, token_request("/oauth/v2/token", secret.expose())).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = answer(&endpoint, get("/api/hello")).await?;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("invalid_request")));
    Ok(())
}

#[tokio::test]
async fn under_the_issuer_path_requests_answer_with_or_without_the_prefix() -> TestResult {
    let (endpoint, secret) = endpoint("https://app.example.com/auth").await?;
    // As mounted at the root of the application's service: the full path.
    assert!(endpoint.handles("/auth/oauth/v2/token"));
    let (status, _) =
        answer(&endpoint, token_request("/auth/oauth/v2/token", secret.expose())).await?;
    assert_eq!(status, StatusCode::OK);
    // As axum's nest_service("/auth", …) passes it: the prefix stripped.
    let (status, _) = answer(&endpoint, token_request("/oauth/v2/token", secret.expose())).await?;
    assert_eq!(status, StatusCode::OK);
    // Discovery, at either path, names the URLs under the prefix.
    for path in ["/auth/.well-known/openid-configuration", "/.well-known/openid-configuration"] {
        let (status, doc) = answer(&endpoint, get(path)).await?;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(doc["issuer"], "https://app.example.com/auth");
        assert_eq!(doc["token_endpoint"], "https://app.example.com/auth/oauth/v2/token");
        assert_eq!(doc["jwks_uri"], "https://app.example.com/auth/oauth/v2/keys");
    }
    // Another prefix, or the application's own paths, are not the endpoint's.
    for other in ["/other/oauth/v2/token", "/auth", "/auth/api/hello", "/api/hello"] {
        assert!(!endpoint.handles(other), "{other}");
    }
    Ok(())
}

/// Ten failures per client and address; a thousand per client.
fn throttle() -> ThrottleConfig {
    let window = std::time::Duration::from_secs(60);
    ThrottleConfig {
        per_client_address: Limit { failures: 10, window },
        per_address: Limit { failures: 100, window },
        per_client: Limit { failures: 1000, window },
        ..ThrottleConfig::default()
    }
}

#[tokio::test]
async fn for_peer_gives_throttling_the_connections_address() -> TestResult {
    let (endpoint, secret) = endpoint("https://auth.example.com").await?;
    let endpoint = endpoint.with_throttle(Some(throttle()));
    let attacker = endpoint.for_peer(SocketAddr::from(([192, 0, 2, 1], 40000)));
    let legitimate = endpoint.for_peer(SocketAddr::from(([192, 0, 2, 2], 40000)));
    for _ in 0..10 {
        let (status, _) = answer(&attacker, token_request("/oauth/v2/token", "wrong")).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is over its limit, even with the right secret…
    let (status, body) =
        answer(&attacker, token_request("/oauth/v2/token", secret.expose())).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // …while the same client from its own address is not locked out.
    let (status, _) =
        answer(&legitimate, token_request("/oauth/v2/token", secret.expose())).await?;
    assert_eq!(status, StatusCode::OK);
    // An address the server already put into the request is kept.
    let mut request = token_request("/oauth/v2/token", secret.expose());
    request.extensions_mut().insert(ClientAddr([192, 0, 2, 3].into()));
    let (status, _) = answer(&attacker, request).await?;
    assert_eq!(status, StatusCode::OK, "the request's own ClientAddr counts");
    Ok(())
}

#[tokio::test]
async fn handle_from_counts_the_given_peer_unless_the_request_names_its_own() -> TestResult {
    let (endpoint, secret) = endpoint("https://auth.example.com").await?;
    let endpoint = endpoint.with_throttle(Some(throttle()));
    let attacker: std::net::IpAddr = [192, 0, 2, 9].into();
    let legitimate: std::net::IpAddr = [192, 0, 2, 10].into();
    for _ in 0..10 {
        let response =
            endpoint.handle_from(token_request("/oauth/v2/token", "wrong"), attacker).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let right = || token_request("/oauth/v2/token", secret.expose());
    assert_eq!(
        endpoint.handle_from(right(), attacker).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(endpoint.handle_from(right(), legitimate).await.status(), StatusCode::OK);
    // A ClientAddr the request carries wins over the connection's peer.
    let mut request = right();
    request.extensions_mut().insert(ClientAddr(attacker));
    assert_eq!(
        endpoint.handle_from(request, legitimate).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut request = right();
    request.extensions_mut().insert(ClientAddr(legitimate));
    assert_eq!(endpoint.handle_from(request, attacker).await.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn behind_a_proxy_the_trusted_entry_counts_not_the_clients() -> TestResult {
    let (endpoint, secret) = endpoint("https://auth.example.com").await?;
    let header = HeaderName::from_static("x-forwarded-for");
    let endpoint = endpoint
        .with_throttle(Some(throttle()))
        .with_client_address(ClientAddressSource::header(header));
    let proxy = endpoint.for_peer(SocketAddr::from(([10, 0, 0, 1], 40000)));
    let from = |forged: &str, appended: &str, secret: &str| -> Result<_, http::Error> {
        let mut request = token_request("/oauth/v2/token", secret);
        let headers = request.headers_mut();
        headers.append("x-forwarded-for", http::HeaderValue::from_str(forged)?);
        headers.append("x-forwarded-for", http::HeaderValue::from_str(appended)?);
        Ok(request)
    };
    // The attacker varies the line it writes; the proxy's line names it every time.
    for i in 0..10 {
        let request = from(&format!("203.0.113.{i}"), "198.51.100.7", "wrong")?;
        assert_eq!(answer(&proxy, request).await?.0, StatusCode::UNAUTHORIZED);
    }
    let request = from("203.0.113.99", "198.51.100.7", secret.expose())?;
    assert_eq!(answer(&proxy, request).await?.0, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not affected.
    let request = from("198.51.100.7", "198.51.100.8", secret.expose())?;
    assert_eq!(answer(&proxy, request).await?.0, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn readiness_needs_a_signing_key_and_a_writable_store() -> TestResult {
    // Without signing keys: not ready, and the answer says which check failed.
    let (endpoint, _) = endpoint("https://auth.example.com").await?;
    let response = endpoint.call(get("/readyz")).await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = answer(&endpoint, get("/readyz")).await?;
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["signing_key"], "failed");
    assert_eq!(body["checks"]["store_read"], "ok");
    assert_eq!(body["checks"]["store_write"], "ok");
    // With a key ring: ready. Liveness never needed a key.
    let store = Arc::new(MemoryStore::new());
    let keys = tessera_mint::KeyManager::new(
        store.clone(),
        tessera_mint::MasterKey::generate()?,
        tessera_mint::RotationPolicy::default(),
    );
    keys.refresh(OffsetDateTime::now_utc()).await?;
    let minter = TokenMinter::new("https://auth.example.com").with_keys(keys.ring());
    let ready = TokenEndpoint::new(Issuer::new(store, minter));
    let (status, body) = answer(&ready, get("/readyz")).await?;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ready")), "{body}");
    let (status, _) = answer(&endpoint, get("/healthz")).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}
