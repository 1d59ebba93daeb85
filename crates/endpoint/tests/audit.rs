//! The audit sink: an application's own [`AuditSink`] receives every event a
//! request causes, typed, with the address the request came from, over a real socket
//! with the `oauth2` crate as the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use oauth2::basic::BasicClient;
use oauth2::reqwest;
use oauth2::{AuthType, ClientId, Scope, TokenResponse as _, TokenUrl};
use tessera_endpoint::{
    AuditEvent, AuditSink, AuthMethod, Issuer, Limit, MAX_LOGGED_ID_CHARS, REVOKE_PATH, TOKEN_PATH,
    ThrottleConfig, TokenEndpoint,
};
use tessera_mint::TokenMinter;
use tessera_store::prelude::*;
use tessera_store::{
    AccessTokenType, ClientSecret, Credentials, MemoryStore, SecretDigest, ServiceUser,
    TokenDigest, Username,
};
use time::OffsetDateTime;
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An event as the sink saw it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    name: &'static str,
    fields: Vec<(&'static str, String)>,
    client_address: Option<IpAddr>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Keeps every event it is handed.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Recorder {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AuditSink for Recorder {
    fn record(&self, event: &AuditEvent<'_>, client_address: Option<IpAddr>) {
        let fields = match *event {
            AuditEvent::ClientAuthenticated { client_id, method }
            | AuditEvent::ClientAuthenticationFailed { client_id, method } => {
                vec![("client_id", client_id.to_owned()), ("method", method.as_str().to_owned())]
            }
            AuditEvent::AssertionRejected { usage, reason } => {
                vec![("usage", usage.to_owned()), ("reason", reason.to_owned())]
            }
            AuditEvent::ClientThrottled { client_id, address, retry_after } => vec![
                ("client_id", client_id.to_owned()),
                ("address", format!("{address:?}")),
                ("retry_after", retry_after.to_string()),
            ],
            AuditEvent::TokenIssued { client_id, jti, token_type, scope, audience, expires_at } => {
                vec![
                    ("client_id", client_id.to_owned()),
                    ("jti", jti.to_owned()),
                    ("token_type", token_type.as_str().to_owned()),
                    ("scope", scope.to_string()),
                    ("audience", audience.join(" ")),
                    ("expires_at", expires_at.unix_timestamp().to_string()),
                ]
            }
            AuditEvent::TokenRevoked { jti, client_id, by } => vec![
                ("jti", jti.to_owned()),
                ("client_id", client_id.to_owned()),
                ("by", by.to_owned()),
            ],
            _ => Vec::new(),
        };
        let seen = Seen { name: event.name(), fields, client_address };
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
    }
}

/// An endpoint with a [`Recorder`], throttling after three failures per client and
/// address, served on 127.0.0.1 with each connection's peer as the client address.
async fn serve(
    store: Arc<MemoryStore>,
    recorder: Arc<Recorder>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let issuer =
        Issuer::new(store, TokenMinter::new(format!("http://{addr}"))).with_audit_sink(recorder);
    let window = std::time::Duration::from_secs(60);
    let endpoint = TokenEndpoint::new(issuer).with_throttle(Some(ThrottleConfig {
        per_client_address: Limit { failures: 3, window },
        ..ThrottleConfig::default()
    }));
    let accept = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = endpoint.for_peer(peer);
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, accept))
}

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()
}

async fn token_status(
    client: &reqwest::Client,
    addr: SocketAddr,
    client_id: &str,
    secret: &str,
) -> Result<u16, reqwest::Error> {
    let response = client
        .post(format!("http://{addr}{TOKEN_PATH}"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn an_applications_sink_receives_every_event_of_a_request() -> TestResult {
    let store = Arc::new(MemoryStore::new());
    let secret = ClientSecret::generate()?;
    let mut user = ServiceUser::new(Username::new("svc")?, OffsetDateTime::now_utc())?;
    user.credentials = Credentials::new(SecretDigest::of(&secret)?);
    store.create_service_user(&user).await?;
    let recorder = Arc::new(Recorder::default());
    let (addr, accept) = serve(store.clone(), recorder.clone()).await?;
    let loopback = Some(IpAddr::from([127, 0, 0, 1]));
    let client = http_client()?;

    // A token, with the `oauth2` crate.
    let oauth = BasicClient::new(ClientId::new("svc".to_owned()))
        .set_client_secret(oauth2::ClientSecret::new(secret.expose().to_owned()))
        .set_token_uri(TokenUrl::new(format!("http://{addr}{TOKEN_PATH}"))?)
        .set_auth_type(AuthType::BasicAuth);
    let before = OffsetDateTime::now_utc();
    let response = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("openid".to_owned()))
        .request_async(&client)
        .await?;
    let record = store
        .token_by_digest(&TokenDigest::of(response.access_token().secret()))
        .await?
        .ok_or("no record for the issued token")?;
    let seen = recorder.take();
    let names: Vec<&str> = seen.iter().map(|s| s.name).collect();
    assert_eq!(names, ["client_authenticated", "token_issued"], "{seen:?}");
    assert_eq!(seen[0].field("client_id"), Some("svc"));
    assert_eq!(seen[0].field("method"), Some(AuthMethod::ClientSecretBasic.as_str()));
    let issued = &seen[1];
    assert_eq!(issued.client_address, loopback);
    assert_eq!(issued.field("client_id"), Some("svc"));
    assert_eq!(issued.field("jti"), Some(record.jti.as_str()));
    assert_eq!(issued.field("token_type"), Some(AccessTokenType::Opaque.as_str()));
    assert_eq!(issued.field("scope"), Some("openid"));
    assert_eq!(issued.field("audience"), Some("svc"));
    let expires_at: i64 = issued.field("expires_at").ok_or("no expires_at")?.parse()?;
    assert_eq!(expires_at, record.expires_at.unix_timestamp());
    assert!(expires_at > before.unix_timestamp());

    // Revoked by its own client: the same jti.
    let revoked = client
        .post(format!("http://{addr}{REVOKE_PATH}"))
        .basic_auth("svc", Some(secret.expose()))
        .form(&[("token", response.access_token().secret().as_str())])
        .send()
        .await?;
    assert_eq!(revoked.status().as_u16(), 200);
    let seen = recorder.take();
    let revocation = seen.iter().find(|s| s.name == "token_revoked").ok_or("no token_revoked")?;
    assert_eq!(revocation.field("jti"), Some(record.jti.as_str()));
    assert_eq!((revocation.field("client_id"), revocation.field("by")), (Some("svc"), Some("svc")));
    assert_eq!(revocation.client_address, loopback);

    // A presented client ID arrives as sent, cut to its first 64 characters.
    let long_id = format!("x\u{1b}[31m{}", "é".repeat(100));
    assert_eq!(token_status(&client, addr, &long_id, "wrong").await?, 401);
    let seen = recorder.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].name, "client_authentication_failed");
    let expected: String = long_id.chars().take(MAX_LOGGED_ID_CHARS).collect();
    assert_eq!(seen[0].field("client_id"), Some(expected.as_str()));
    assert_eq!(seen[0].client_address, loopback);

    // Three failures for one client and address, then the fourth is throttled.
    for _ in 0..2 {
        assert_eq!(token_status(&client, addr, &long_id, "wrong").await?, 401);
    }
    assert_eq!(token_status(&client, addr, &long_id, secret.expose()).await?, 429);
    let seen = recorder.take();
    let names: Vec<&str> = seen.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        ["client_authentication_failed", "client_authentication_failed", "client_throttled"]
    );
    let throttled = &seen[2];
    assert_eq!(throttled.field("client_id"), Some(expected.as_str()));
    assert_eq!(throttled.field("address"), Some(format!("{loopback:?}").as_str()));
    let retry_after: u64 = throttled.field("retry_after").ok_or("no retry_after")?.parse()?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // A jwt-bearer grant with an assertion that is not a JWT.
    let refused = client
        .post(format!("http://{addr}{TOKEN_PATH}"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "not-a-jwt"),
        ])
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 400);
    let seen = recorder.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].name, seen[0].field("usage")), ("assertion_rejected", Some("Grant")));
    assert!(!seen[0].field("reason").unwrap_or_default().is_empty());
    accept.abort();
    Ok(())
}

#[test]
fn every_event_has_its_documented_name_and_level() -> TestResult {
    let scope = tessera_scope::ScopeSet::parse("openid")?;
    let audience = ["svc".to_owned()];
    let method = AuthMethod::ClientSecretBasic;
    let (info, debug, warn) = (tracing::Level::INFO, tracing::Level::DEBUG, tracing::Level::WARN);
    let events = [
        (AuditEvent::ClientAuthenticated { client_id: "c", method }, "client_authenticated", debug),
        (
            AuditEvent::ClientAuthenticationFailed { client_id: "c", method },
            "client_authentication_failed",
            info,
        ),
        (AuditEvent::AssertionRejected { usage: "Grant", reason: "r" }, "assertion_rejected", info),
        (
            AuditEvent::ClientThrottled { client_id: "c", address: None, retry_after: 1 },
            "client_throttled",
            warn,
        ),
        (
            AuditEvent::TokenIssued {
                client_id: "c",
                jti: "j",
                token_type: AccessTokenType::Jwt,
                scope: &scope,
                audience: &audience,
                expires_at: OffsetDateTime::UNIX_EPOCH,
            },
            "token_issued",
            info,
        ),
        (AuditEvent::TokenRevoked { jti: "j", client_id: "c", by: "b" }, "token_revoked", info),
    ];
    let docs = include_str!("../../../docs/audit.md");
    for (event, name, level) in events {
        assert_eq!((event.name(), event.level()), (name, level));
        let row = format!("| `{name}` | {} |", level.as_str().to_ascii_lowercase());
        assert!(docs.contains(&row), "docs/audit.md has no row {row}");
    }
    Ok(())
}
