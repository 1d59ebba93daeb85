//! The example hyper application on a real socket: a token through the `oauth2`
//! crate, the application's own protected route, and per-address throttling from
//! the connection's peer.

use std::net::SocketAddr;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, TokenResponse as _, TokenUrl};
use tessera_example_embed::{serve, tessera};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn start() -> Result<(SocketAddr, String), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tessera, secret) = tessera(&format!("http://{addr}")).await?;
    tokio::spawn(serve(listener, tessera));
    Ok((addr, secret.expose().to_owned()))
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn token(addr: SocketAddr, secret: &str) -> Result<String, Box<dyn std::error::Error>> {
    let client = BasicClient::new(ClientId::new("reporting-job".into()))
        .set_client_secret(ClientSecret::new(secret.into()))
        .set_token_uri(TokenUrl::new(format!("http://{addr}/oauth/v2/token"))?);
    let response = client.exchange_client_credentials().request_async(&http()).await?;
    Ok(response.access_token().secret().clone())
}

#[tokio::test]
async fn the_application_route_takes_tessera_tokens() -> TestResult {
    let (addr, secret) = start().await?;
    let token = token(addr, &secret).await?;
    let response =
        http().get(format!("http://{addr}/api/hello")).bearer_auth(&token).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await?, "hello, reporting-job\n");
    let response = http().get(format!("http://{addr}/api/hello")).send().await?;
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().get("www-authenticate").is_some());
    let response = http().get(format!("http://{addr}/elsewhere")).send().await?;
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.text().await?, "not found\n", "the application's 404");
    Ok(())
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_peer() -> TestResult {
    let (addr, secret) = start().await?;
    for _ in 0..10 {
        assert!(token(addr, "wrong-secret").await.is_err());
    }
    let response = http()
        .post(format!("http://{addr}/oauth/v2/token"))
        .basic_auth("reporting-job", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429, "the right secret from a throttled address");
    Ok(())
}
