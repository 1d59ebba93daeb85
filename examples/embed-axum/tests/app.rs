//! The example application on a real socket: tokens from its nested Tessera through
//! the `oauth2` crate, its protected route, its own routes untouched by Tessera, and
//! per-address throttling from axum's connection info.

use std::net::SocketAddr;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse as _, TokenUrl};
use serde_json::Value;
use tessera_example_embed_axum::{REPORTS_SCOPE, app, serve, tessera};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The application on 127.0.0.1, and the service user's secret.
async fn start() -> Result<(SocketAddr, String), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tessera, secret) = tessera(&format!("http://{addr}")).await?;
    tokio::spawn(tessera.maintenance());
    tokio::spawn(serve(listener, app(tessera)));
    Ok((addr, secret.expose().to_owned()))
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn token(
    addr: SocketAddr,
    secret: &str,
    scope: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let client = BasicClient::new(ClientId::new("reporting-job".into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_token_uri(TokenUrl::new(format!("http://{addr}/auth/oauth/v2/token"))?);
    let response = client
        .exchange_client_credentials()
        .add_scope(Scope::new(scope.into()))
        .request_async(&http())
        .await?;
    Ok(response.access_token().secret().clone())
}

async fn get(
    url: &str,
    bearer: Option<&str>,
) -> Result<(u16, Option<String>, Value), Box<dyn std::error::Error>> {
    let mut request = http().get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.bytes().await?;
    Ok((status, challenge, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn the_protected_route_takes_tessera_tokens_with_its_scope() -> TestResult {
    let (addr, secret) = start().await?;
    let reports = token(addr, &secret, REPORTS_SCOPE).await?;
    let (status, _, body) = get(&format!("http://{addr}/api/reports"), Some(&reports)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], "reporting-job");

    // No token, a bogus one: 401 with a Bearer challenge.
    for bearer in [None, Some("not-a-token")] {
        let (status, challenge, body) = get(&format!("http://{addr}/api/reports"), bearer).await?;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{bearer:?}");
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer ")));
    }
    // A token without the scope: 403 insufficient_scope.
    let openid = token(addr, &secret, "openid").await?;
    let (status, _, body) = get(&format!("http://{addr}/api/reports"), Some(&openid)).await?;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")));

    // The public route, and an unknown path of the application, are the application's.
    let response = http().get(format!("http://{addr}/")).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await?.starts_with("public"));
    let response = http().get(format!("http://{addr}/nowhere")).send().await?;
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.text().await?.is_empty(), "axum's 404, not Tessera's JSON");
    Ok(())
}

#[tokio::test]
async fn discovery_names_the_nested_urls() -> TestResult {
    let (addr, _) = start().await?;
    let (status, _, doc) =
        get(&format!("http://{addr}/auth/.well-known/openid-configuration"), None).await?;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], format!("http://{addr}/auth"));
    assert_eq!(doc["token_endpoint"], format!("http://{addr}/auth/oauth/v2/token"));
    let (status, _, keys) = get(doc["jwks_uri"].as_str().unwrap_or_default(), None).await?;
    assert_eq!(status, 200);
    assert!(keys["keys"].as_array().is_some_and(|k| !k.is_empty()));
    Ok(())
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_client_address() -> TestResult {
    let (addr, secret) = start().await?;
    for _ in 0..10 {
        assert!(token(addr, "wrong-secret", "openid").await.is_err());
    }
    // The eleventh attempt from this address is refused, right secret or not.
    let response = http()
        .post(format!("http://{addr}/auth/oauth/v2/token"))
        .basic_auth("reporting-job", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    Ok(())
}
