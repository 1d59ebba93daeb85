//! `tessera-resource` against the real server over loopback: opaque tokens and JWTs
//! of each signing algorithm, introspection with a secret and with key files,
//! revocation, key rotation, a stopped issuer, requirements, bad headers, forged
//! tokens, bounded caches, a plain hyper service and ZITADEL-shaped tokens.
//!
//! The issuer is restarted on the port it had (the authorizer is built against its
//! URL, which every token names in `iss`), on the same database.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use base64ct::{Base64UrlUnpadded, Encoding};
use common::{BIN, Credentials, TempDb, cli, cli_json, create_user, temp_db};
use http_body_util::BodyExt;
use serde_json::Value;
use tessera_resource::{
    AuthError, Authorizer, AuthorizerBuilder, Principal, Rejection, Requirement, TokenKind,
};
use tower::ServiceExt;

const AUD: &str = "urn:zitadel:iam:org:project:id:orders:aud";
const READER: &str = "urn:zitadel:iam:org:project:role:reader";
const WRITER: &str = "urn:zitadel:iam:org:project:role:writer";

/// A `tessera-server serve` on a given port (0: any), killed on drop.
struct Issuer {
    child: Option<Child>,
    base: String,
}

impl Issuer {
    fn start(database: &str, port: u16, extra: &[&str]) -> Issuer {
        // A port just given up by a killed server can take a moment to be free.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Self::try_start(database, port, extra) {
                Ok(issuer) => return issuer,
                Err(logs) if Instant::now() > deadline => panic!("no server on {port}:\n{logs}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn try_start(database: &str, port: u16, extra: &[&str]) -> Result<Issuer, String> {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", database])
            .args(extra)
            .env("TESSERA_LOG", "info")
            .env_remove("TESSERA_LOG_FORMAT")
            .env_remove("TESSERA_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tessera-server");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let found = line.split("listening on ").nth(1).map(|rest| {
                    let end =
                        rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
                    rest[..end].to_owned()
                });
                let _ = tx.send(found.ok_or(line));
            }
        });
        let mut logs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(Ok(base)) => return Ok(Issuer { child: Some(child), base }),
                Ok(Err(line)) => logs.push(line),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(logs.join("\n"))
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kills the server and waits until it is gone.
    fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A database with project `orders`, its API app, the service users `opaque-job`
/// (opaque tokens, role `reader`) and `jwt-job` (JWTs, roles `reader` and
/// `writer`), and a server on it.
struct World {
    issuer: Issuer,
    app: Credentials,
    app_client_id: String,
    opaque: Credentials,
    jwt: Credentials,
    db: TempDb,
}

fn world(extra: &[&str]) -> World {
    let db = temp_db();
    cli_json(&db.url, &["project", "create", "--name", "Orders", "--id", "orders"]);
    let app =
        cli_json(&db.url, &["api-app", "create", "--project", "orders", "--name", "Orders API"]);
    let app = Credentials {
        client_id: app["client_id"].as_str().expect("client_id").to_owned(),
        client_secret: app["client_secret"].as_str().expect("secret").to_owned(),
        user_id: String::new(),
    };
    let opaque = create_user(&db.url, "opaque-job", &[]);
    let jwt = create_user(&db.url, "jwt-job", &["--access-token-type", "jwt"]);
    for (user, role) in [("opaque-job", "reader"), ("jwt-job", "reader"), ("jwt-job", "writer")] {
        cli_json(
            &db.url,
            &["grant", "add", "--username", user, "--project", "orders", "--role", role],
        );
    }
    let issuer = Issuer::start(&db.url, 0, extra);
    World { issuer, app_client_id: app.client_id.clone(), app, opaque, jwt, db }
}

impl World {
    /// An authorizer for the API `orders`, introspecting with the app's secret.
    fn authorizer(&self) -> AuthorizerBuilder {
        Authorizer::builder(&self.issuer.base).audience("orders").introspection(
            tessera_resource::Credentials::client_secret(
                &self.app.client_id,
                &self.app.client_secret,
            ),
        )
    }

    async fn token(&self, user: &Credentials, scope: &str) -> String {
        token(&self.issuer, user, scope).await
    }
}

fn build(builder: AuthorizerBuilder) -> Authorizer {
    builder.build().expect("an authorizer")
}

fn http() -> oauth2::reqwest::Client {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn token(issuer: &Issuer, user: &Credentials, scope: &str) -> String {
    let response = http()
        .post(issuer.url("/oauth/v2/token"))
        .basic_auth(&user.client_id, Some(&user.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .expect("POST /oauth/v2/token");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON");
    body["access_token"].as_str().expect("access_token").to_owned()
}

/// The server's count of introspection requests answered 200.
async fn introspections_served(issuer: &Issuer) -> f64 {
    let text = http()
        .get(issuer.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(r#"tessera_http_requests_total{endpoint="introspect",status="200"} "#)
        })
        .map_or(0.0, |v| v.parse().expect("a number"))
}

/// Sends a request through `app`: status, `WWW-Authenticate`, JSON body (or Null).
async fn call(app: &Router, method: &str, path: &str, authorization: &[&str]) -> Reply {
    let mut request = http::Request::builder().method(method).uri(path);
    for value in authorization {
        request = request.header(http::header::AUTHORIZATION, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let header = |name| response.headers().get(name).map(|v| v.to_str().expect("ASCII").to_owned());
    let challenge = header(http::header::WWW_AUTHENTICATE);
    let retry_after = header(http::header::RETRY_AFTER);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, challenge, retry_after, body }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn kid_and_alg(jwt: &str) -> (String, String, String) {
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT");
    (header.kid.expect("kid"), format!("{:?}", header.alg), header.typ.expect("typ"))
}

#[tokio::test]
async fn opaque_tokens_and_jwts_of_each_algorithm_are_accepted_once_verified() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let w = world(&["--signing-alg", alg]);
        let authorizer = build(w.authorizer());
        let app = protect_axum::app(authorizer.clone(), "orders");
        let scope = format!("openid profile {AUD} {READER}");

        let jwt = w.token(&w.jwt, &scope).await;
        assert_eq!(kid_and_alg(&jwt).1, alg);
        assert_eq!(kid_and_alg(&jwt).2, "at+jwt");
        let opaque = w.token(&w.opaque, &scope).await;
        assert!(jsonwebtoken::decode_header(&opaque).is_err(), "an opaque token");

        for (token, user, kind) in [(&jwt, &w.jwt, "Jwt"), (&opaque, &w.opaque, "Opaque")] {
            let reply = call(&app, "GET", "/api/me", &[&bearer(token)]).await;
            assert_eq!(reply.status, 200, "{alg} {kind}: {reply:?}");
            assert_eq!(reply.body["subject"], user.user_id.as_str());
            assert_eq!(reply.body["client_id"], user.client_id.as_str());
            assert_eq!(reply.body["scopes"], serde_json::json!(["openid", "profile", AUD, READER]));
            assert_eq!(reply.body["audience"], serde_json::json!(["orders"]));
            assert_eq!(reply.body["roles"], serde_json::json!(["reader"]));
            assert_eq!(reply.body["token"], kind);
            let reply = call(&app, "GET", "/api/orders", &[&bearer(token)]).await;
            assert_eq!(reply.status, 200, "{alg} {kind}: {reply:?}");
        }
        // Each token was checked once: one signature check, one introspection; the
        // repeats came from the cache.
        let stats = authorizer.stats().await;
        assert_eq!(stats.signature_checks, 1, "{alg}: {stats:?}");
        assert_eq!(stats.introspections, 1, "{alg}: {stats:?}");
        assert_eq!(stats.key_set_fetches, 1, "{alg}: {stats:?}");
        assert_eq!(stats.cached_tokens, 2, "{alg}: {stats:?}");
        assert_eq!(introspections_served(&w.issuer).await, 1.0);

        let principal = authorizer.verify(&jwt).await.expect("cached");
        assert_eq!(principal.kind(), TokenKind::Jwt);
        assert!(principal.has_role_in("reader", "orders"));
        assert!(principal.expires_at().is_some_and(|exp| exp > 1_700_000_000));
    }
}

#[tokio::test]
async fn introspection_with_application_key_files_rsa_and_ec() {
    let w = world(&[]);
    for kind in ["rsa", "ec"] {
        let key_file = cli_json(
            &w.db.url,
            &["api-app", "key", "add", "--client-id", &w.app_client_id, "--type", kind],
        );
        assert_eq!(key_file["type"], "application", "{key_file}");
        // Several authorizers, each signing its own assertion: an EC signature comes
        // out in either form and must be sent in the low-s one.
        for _ in 0..if kind == "ec" { 6 } else { 1 } {
            let credentials =
                tessera_resource::Credentials::key_file(&key_file.to_string()).expect("key file");
            assert!(!format!("{credentials:?}").contains("PRIVATE"), "the key is not shown");
            let authorizer = build(
                Authorizer::builder(&w.issuer.base).audience("orders").introspection(credentials),
            );
            for _ in 0..3 {
                let opaque = w.token(&w.opaque, &format!("openid {AUD}")).await;
                let principal = authorizer.verify(&opaque).await.expect("introspected");
                assert_eq!(principal.subject(), w.opaque.user_id);
                assert_eq!(principal.username(), Some("opaque-job"));
            }
            assert_eq!(authorizer.stats().await.introspections, 3);
        }
    }
    let path = w.db.dir.path().join("key.json");
    let key_file = cli_json(&w.db.url, &["api-app", "key", "add", "--client-id", &w.app_client_id]);
    std::fs::write(&path, key_file.to_string()).expect("write the key file");
    let authorizer = build(
        Authorizer::builder(&w.issuer.base)
            .audience("orders")
            .introspection(tessera_resource::Credentials::key_file_path(&path).expect("file")),
    );
    let opaque = w.token(&w.opaque, AUD).await;
    assert!(authorizer.verify(&opaque).await.is_ok());
}

#[tokio::test]
async fn revocation_is_seen_within_the_cache_ttl_for_opaque_tokens_and_introspected_jwts() {
    let w = world(&[]);
    let ttl = Duration::from_secs(2);
    let opaque_authorizer = build(w.authorizer().cache_ttl(ttl));
    let introspecting = build(w.authorizer().cache_ttl(ttl).introspect_jwts(true));
    let local_only = build(w.authorizer().cache_ttl(ttl));
    let opaque = w.token(&w.opaque, AUD).await;
    let jwt = w.token(&w.jwt, AUD).await;
    assert!(opaque_authorizer.verify(&opaque).await.is_ok());
    assert!(introspecting.verify(&jwt).await.is_ok());
    assert!(local_only.verify(&jwt).await.is_ok());
    let revoked_at = Instant::now();

    for user in ["opaque-job", "jwt-job"] {
        let output = cli(&w.db.url, &["service-user", "revoke-tokens", "--username", user]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    // Within the TTL the cached decisions still hold.
    if revoked_at.elapsed() < Duration::from_millis(1500) {
        assert!(opaque_authorizer.verify(&opaque).await.is_ok());
        assert!(introspecting.verify(&jwt).await.is_ok());
    }
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        opaque_authorizer.verify(&opaque).await.err(),
        Some(AuthError::InvalidToken(Rejection::Inactive))
    );
    assert_eq!(
        introspecting.verify(&jwt).await.err(),
        Some(AuthError::InvalidToken(Rejection::Inactive))
    );
    // Without introspection a JWT is valid until its exp: the signature says nothing
    // of revocation.
    assert!(local_only.verify(&jwt).await.is_ok());
    // A refused token is remembered briefly: no second call to the issuer.
    let calls = opaque_authorizer.stats().await.introspections;
    assert!(opaque_authorizer.verify(&opaque).await.is_err());
    assert_eq!(opaque_authorizer.stats().await.introspections, calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_uncached_token_make_one_call() {
    let w = world(&[]);
    let authorizer = build(w.authorizer());
    let opaque = w.token(&w.opaque, AUD).await;
    let jwt = w.token(&w.jwt, AUD).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let authorizer = authorizer.clone();
        let token = if i % 2 == 0 { opaque.clone() } else { jwt.clone() };
        tasks.spawn(async move { authorizer.verify(&token).await.map(|p| p.subject().to_owned()) });
    }
    let mut subjects = Vec::new();
    while let Some(result) = tasks.join_next().await {
        subjects.push(result.expect("task").expect("accepted"));
    }
    assert_eq!(subjects.len(), 64);
    let stats = authorizer.stats().await;
    assert_eq!(stats.introspections, 1, "{stats:?}");
    assert_eq!(stats.signature_checks, 1, "{stats:?}");
    assert_eq!(stats.key_set_fetches, 1, "{stats:?}");
    assert_eq!(introspections_served(&w.issuer).await, 1.0);
}

#[tokio::test]
async fn key_rotation_is_seen_without_restarting_the_api() {
    let w = world(&["--signing-alg", "ES256"]);
    let authorizer = build(
        w.authorizer()
            .jwks_refetch_interval(Duration::from_millis(500))
            .jwks_refresh_interval(Duration::from_secs(2)),
    );
    let first = w.token(&w.jwt, AUD).await;
    let (old_kid, _, _) = kid_and_alg(&first);
    assert!(authorizer.verify(&first).await.is_ok());
    assert_eq!(authorizer.stats().await.key_set_fetches, 1);

    // A new signing algorithm makes the server publish a new key at once (it signs
    // ten minutes later); moving its activation to now makes it sign at the next
    // start. The API keeps running all along.
    let port = w.issuer.port();
    w.issuer.stop();
    let issuer = Issuer::start(&w.db.url, port, &["--signing-alg", "RS256"]);
    issuer.stop();
    let connection = rusqlite::Connection::open(&w.db.path).expect("open the database");
    let new_kid: String = connection
        .query_row(
            "SELECT kid FROM signing_keys WHERE algorithm = 'RS256' ORDER BY activates_at DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("the new key");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs()
            as i64;
    // Within one second of the first key's: move that one back an hour, so that
    // the new key is the newest active one.
    let changed = connection
        .execute(
            "UPDATE signing_keys SET activates_at = CASE WHEN kid = ?2 THEN ?1 - 1 ELSE ?1 - 3600 END",
            (now, &new_kid),
        )
        .expect("activate the new key");
    assert_eq!(changed, 2);
    drop(connection);
    let issuer = Issuer::start(&w.db.url, port, &["--signing-alg", "RS256"]);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let second = token(&issuer, &w.jwt, AUD).await;
    let (kid, alg, _) = kid_and_alg(&second);
    assert_eq!((kid.as_str(), alg.as_str()), (new_kid.as_str(), "RS256"));
    assert_ne!(kid, old_kid);
    let principal = authorizer.verify(&second).await.expect("a key it did not know");
    assert_eq!(principal.subject(), w.jwt.user_id);
    assert_eq!(authorizer.stats().await.key_set_fetches, 2, "refetched for the unknown kid");
    assert_eq!(authorizer.stats().await.keys, 2, "both keys published");
    assert!(authorizer.verify(&first).await.is_ok(), "the old key's token still verifies");

    // A token naming a key id nobody published: refused, and fetches are rate limited.
    let forged = forge(&second, |header, _| header["kid"] = "not-a-key".into());
    assert_eq!(
        authorizer.verify(&forged).await.err(),
        Some(AuthError::InvalidToken(Rejection::UnknownKey))
    );
    let fetches = authorizer.stats().await.key_set_fetches;
    let again = forge(&second, |header, _| header["kid"] = "another-unknown".into());
    assert!(authorizer.verify(&again).await.is_err());
    assert_eq!(authorizer.stats().await.key_set_fetches, fetches, "no fetch within the interval");

    // Past the refresh interval, a new token's check refreshes the set in the background.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = token(&issuer, &w.jwt, AUD).await;
    assert!(authorizer.verify(&third).await.is_ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    while authorizer.stats().await.key_set_fetches == fetches {
        assert!(Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stopped_issuer_leaves_cached_tokens_and_held_keys_serving_and_recovery_is_automatic() {
    let w = world(&[]);
    let retry = Duration::from_millis(300);
    let authorizer = build(w.authorizer().retry_interval(retry));
    let introspecting = build(w.authorizer().retry_interval(retry).introspect_jwts(true));
    let app = protect_axum::app(authorizer.clone(), "orders");
    let scope = format!("{AUD} {READER}");
    let (seen_opaque, new_opaque) =
        (w.token(&w.opaque, &scope).await, w.token(&w.opaque, &scope).await);
    let (seen_jwt, new_jwt) = (w.token(&w.jwt, &scope).await, w.token(&w.jwt, &scope).await);
    for token in [&seen_opaque, &seen_jwt] {
        assert_eq!(call(&app, "GET", "/api/orders", &[&bearer(token)]).await.status, 200);
    }
    assert!(introspecting.verify(&seen_jwt).await.is_ok());

    let port = w.issuer.port();
    let database = w.db.url.clone();
    w.issuer.stop();

    // Cached decisions keep serving; a new JWT verifies with the keys held; a new
    // opaque token (or a JWT that must be introspected) cannot be decided: 503.
    for token in [&seen_opaque, &seen_jwt, &new_jwt] {
        let reply = call(&app, "GET", "/api/orders", &[&bearer(token)]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let reply = call(&app, "GET", "/api/orders", &[&bearer(&new_opaque)]).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert_eq!(reply.challenge, None);
    assert!(introspecting.verify(&seen_jwt).await.is_ok());
    assert_eq!(introspecting.verify(&new_jwt).await.err(), Some(AuthError::Unavailable));
    // Within the retry interval no call is even tried.
    let calls = authorizer.stats().await.introspections;
    assert_eq!(authorizer.verify(&new_opaque).await.err(), Some(AuthError::Unavailable));
    assert_eq!(authorizer.stats().await.introspections, calls);

    let issuer = Issuer::start(&database, port, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = call(&app, "GET", "/api/orders", &[&bearer(&new_opaque)]).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(introspecting.verify(&new_jwt).await.is_ok());
    drop(issuer);
}

#[tokio::test]
async fn requirements_answer_rfc_6750_errors() {
    let w = world(&[]);
    let authorizer = build(w.authorizer());
    let app = protect_axum::app(authorizer.clone(), "orders");

    assert_eq!(call(&app, "GET", "/", &[]).await.status, 200, "public");
    let reply = call(&app, "GET", "/api/me", &[]).await;
    assert_eq!((reply.status, reply.challenge.as_deref()), (401, Some("Bearer")));
    let reply = call(&app, "GET", "/api/orders", &[]).await;
    assert_eq!((reply.status, reply.challenge.as_deref()), (401, Some("Bearer")));

    // Scope.
    let plain = w.token(&w.jwt, &format!("openid {AUD}")).await;
    let reply = call(&app, "GET", "/api/profile", &[&bearer(&plain)]).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="profile""#)
    );
    let with_profile = w.token(&w.jwt, &format!("openid profile {AUD}")).await;
    assert_eq!(call(&app, "GET", "/api/profile", &[&bearer(&with_profile)]).await.status, 200);

    // Roles: none asked for, reader held, writer held by jwt-job only.
    for (token, path, method, status) in [
        (&plain, "/api/orders", "GET", 403),
        (&w.token(&w.opaque, &format!("{AUD} {READER}")).await, "/api/orders", "GET", 200),
        (
            &w.token(&w.opaque, &format!("{AUD} {READER} {WRITER}")).await,
            "/api/orders",
            "POST",
            403,
        ),
        (&w.token(&w.jwt, &format!("{AUD} {WRITER}")).await, "/api/orders", "POST", 201),
    ] {
        let reply = call(&app, method, path, &[&bearer(token)]).await;
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
    }
    let reply = call(&app, "GET", "/api/orders", &[&bearer(&plain)]).await;
    assert_eq!(
        reply.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", scope="urn:zitadel:iam:org:project:role:reader""#
        )
    );

    // Audience: a token for another API is not a token for this one.
    for user in [&w.jwt, &w.opaque] {
        let elsewhere = w.token(user, "openid urn:zitadel:iam:org:project:id:zitadel:aud").await;
        let reply = call(&app, "GET", "/api/me", &[&bearer(&elsewhere)]).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(reply.challenge.as_deref(), Some(r#"Bearer error="invalid_token""#));
    }
    let both = w.token(&w.jwt, &format!("{AUD} urn:zitadel:iam:org:project:id:zitadel:aud")).await;
    let layered = Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .route_layer(authorizer.layer().require(Requirement::audience("zitadel")));
    assert_eq!(call(&layered, "GET", "/", &[&bearer(&both)]).await.status, 200);
    let reply = call(&layered, "GET", "/", &[&bearer(&plain)]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        authorizer
            .authorize_with(&headers(&bearer(&plain)), &[Requirement::audience("zitadel")])
            .await
            .err(),
        Some(AuthError::InvalidToken(Rejection::Audience))
    );

    // Expired (a lifetime of one second, no leeway).
    let brief = create_user(
        &w.db.url,
        "brief-job",
        &["--access-token-type", "jwt", "--token-lifetime", "1"],
    );
    let strict = build(w.authorizer().leeway(Duration::ZERO));
    let short = w.token(&brief, AUD).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        strict.verify(&short).await.err(),
        Some(AuthError::InvalidToken(Rejection::Expired))
    );
}

fn headers(authorization: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, authorization.parse().expect("a header value"));
    headers
}

#[tokio::test]
async fn bad_headers_and_forged_tokens_are_refused_without_calling_the_issuer() {
    let w = world(&[]);
    let authorizer = build(w.authorizer());
    let app = protect_axum::app(authorizer.clone(), "orders");
    let jwt = w.token(&w.jwt, AUD).await;
    let opaque = w.token(&w.opaque, AUD).await;
    assert_eq!(call(&app, "GET", "/api/me", &[&bearer(&jwt)]).await.status, 200);
    assert_eq!(call(&app, "GET", "/api/me", &[&format!("bearer {opaque}")]).await.status, 200);
    let calls = authorizer.stats().await.introspections;

    let reply = call(&app, "GET", "/api/me", &[&bearer(&jwt), &bearer(&opaque)]).await;
    assert_eq!(reply.status, 400, "two Authorization headers");
    assert_eq!(reply.challenge.as_deref(), Some(r#"Bearer error="invalid_request""#));
    let long = "a".repeat(10 * 1024);
    for value in ["Bearer ", "Bearer", &bearer(&long), "Bearer a,b", "Bearer \"quoted\""] {
        let reply = call(&app, "GET", "/api/me", &[value]).await;
        assert_eq!(reply.status, 401, "{value:.20}: {reply:?}");
        assert_eq!(reply.challenge.as_deref(), Some(r#"Bearer error="invalid_token""#));
    }
    let reply = call(&app, "GET", "/api/me", &["Basic b3JkZXJzOnNlY3JldA=="]).await;
    assert_eq!((reply.status, reply.challenge.as_deref()), (401, Some("Bearer")));
    assert_eq!(authorizer.stats().await.introspections, calls, "no call for any of these");

    // Forgeries of a real ES256 token: each refused, none introspected.
    let (_, alg, _) = kid_and_alg(&jwt);
    assert_eq!(alg, "ES256");
    let none = {
        let forged = forge(&jwt, |header, _| header["alg"] = "none".into());
        let (unsigned, _) = forged.rsplit_once('.').expect("three parts");
        format!("{unsigned}.")
    };
    let hmac = {
        let forged = forge(&jwt, |header, _| header["alg"] = "HS256".into());
        let (input, _) = forged.rsplit_once('.').expect("three parts");
        let jwks: Value = serde_json::from_str(
            &http()
                .get(w.issuer.url("/oauth/v2/keys"))
                .send()
                .await
                .expect("keys")
                .text()
                .await
                .expect("text"),
        )
        .expect("JSON");
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwks.to_string().as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", Base64UrlUnpadded::encode_string(tag.as_ref()))
    };
    let high_s = {
        let (input, signature) = jwt.rsplit_once('.').expect("three parts");
        let mut bytes = Base64UrlUnpadded::decode_vec(signature).expect("base64url");
        negate_s(&mut bytes);
        format!("{input}.{}", Base64UrlUnpadded::encode_string(&bytes))
    };
    let tampered = forge(&jwt, |_, claims| claims["scope"] = "openid profile".into());
    let retyped = forge(&jwt, |header, _| header["typ"] = "id_token+jwt".into());
    for (forged, why) in [
        (none, Rejection::Algorithm),
        (hmac, Rejection::Algorithm),
        (high_s, Rejection::Signature),
        (tampered, Rejection::Signature),
        (retyped, Rejection::Type),
    ] {
        assert_eq!(authorizer.verify(&forged).await.err(), Some(AuthError::InvalidToken(why)));
        let reply = call(&app, "GET", "/api/me", &[&bearer(&forged)]).await;
        assert_eq!(reply.status, 401, "{why:?}");
    }
    assert_eq!(authorizer.stats().await.introspections, calls);
    assert_eq!(call(&app, "GET", "/api/me", &[&bearer(&jwt)]).await.status, 200, "the original");

    // An opaque token the issuer does not know: inactive.
    assert_eq!(
        authorizer.verify("zs5yP0NPS-jGbR1LC4cbmbovGaGJWM9-1utMwFxSiFM").await.err(),
        Some(AuthError::InvalidToken(Rejection::Inactive))
    );
    // Without introspection credentials, opaque tokens are not accepted at all.
    let jwt_only = build(Authorizer::builder(&w.issuer.base).audience("orders"));
    assert_eq!(
        jwt_only.verify(&opaque).await.err(),
        Some(AuthError::InvalidToken(Rejection::OpaqueNotAccepted))
    );
    assert!(jwt_only.verify(&jwt).await.is_ok());
}

/// `token` with its header and claims changed by `change`, its signature kept.
fn forge(token: &str, change: impl FnOnce(&mut Value, &mut Value)) -> String {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        let part = parts.next().expect("a part");
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(part).expect("base64url"))
            .expect("JSON")
    };
    let (mut header, mut claims) = (decode(), decode());
    let signature = parts.next().expect("a signature");
    change(&mut header, &mut claims);
    let encode = |v: &Value| Base64UrlUnpadded::encode_string(v.to_string().as_bytes());
    format!("{}.{}.{signature}", encode(&header), encode(&claims))
}

/// `s` → `n − s` in an ES256 signature `r ‖ s`: the other signature of the message.
fn negate_s(signature: &mut [u8]) {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        let d = u16::from(N[i]).wrapping_sub(u16::from(signature[32 + i])).wrapping_sub(borrow);
        signature[32 + i] = (d & 0xff) as u8;
        borrow = (d >> 8) & 1;
    }
}

#[tokio::test]
async fn the_caches_stay_within_their_configured_sizes() {
    let w = world(&[]);
    let authorizer = build(w.authorizer().cache_capacity(3).refused_cache_capacity(2));
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(w.token(&w.opaque, AUD).await);
        tokens.push(w.token(&w.jwt, AUD).await);
    }
    for token in &tokens {
        assert!(authorizer.verify(token).await.is_ok());
    }
    for i in 0..8 {
        assert!(authorizer.verify(&format!("unknown-token-{i:02}")).await.is_err());
    }
    let stats = authorizer.stats().await;
    assert!(stats.cached_tokens <= 3, "{stats:?}");
    assert!(stats.cached_refusals <= 2, "{stats:?}");
    assert!(stats.keys <= 32);
    // Evicted entries are checked again, and still pass.
    for token in &tokens {
        assert!(authorizer.verify(token).await.is_ok());
    }
}

#[tokio::test]
async fn a_plain_hyper_service_behind_the_layer() {
    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    use tower::Layer;

    let w = world(&[]);
    let authorizer = build(w.authorizer());
    let hello = tower::service_fn(|request: http::Request<Incoming>| async move {
        let caller = request.extensions().get::<Principal>().map(|p| p.subject().to_owned());
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(caller.unwrap_or_default()))))
    });
    let service = authorizer.layer().require(Requirement::role("reader")).layer(hello);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let url = format!("http://{address}/");
    let with_role = w.token(&w.opaque, &format!("{AUD} {READER}")).await;
    let without = w.token(&w.opaque, AUD).await;
    let response = http().get(&url).bearer_auth(&with_role).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), w.opaque.user_id);
    let response = http().get(&url).bearer_auth(&without).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 403);
    let response = http().get(&url).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn zitadel_shaped_tokens_rs256_with_typ_jwt() {
    let w = world(&["--compat", "zitadel"]);
    let authorizer = build(w.authorizer());
    let jwt = w.token(&w.jwt, &format!("openid {AUD} {READER}")).await;
    let (_, alg, typ) = kid_and_alg(&jwt);
    assert_eq!((alg.as_str(), typ.as_str()), ("RS256", "JWT"));
    let principal = authorizer
        .authorize_with(&headers(&bearer(&jwt)), &[Requirement::role_in("reader", "orders")])
        .await
        .expect("accepted");
    assert_eq!(principal.client_id(), "jwt-job");
    let orgs = principal.roles().organizations("reader").expect("the role's organizations");
    assert_eq!(orgs.len(), 1);
    // The same API refusing RS256 refuses the token.
    let es256_only = build(w.authorizer().algorithms([tessera_resource::JwtAlgorithm::Es256]));
    assert_eq!(
        es256_only.verify(&jwt).await.err(),
        Some(AuthError::InvalidToken(Rejection::Algorithm))
    );
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let w = world(&[]);
    // The same server under another name for its address: the discovery document
    // names http://127.0.0.1:PORT, not http://localhost:PORT.
    let alias = w.issuer.base.replace("127.0.0.1", "localhost");
    let authorizer = build(Authorizer::builder(&alias).audience("orders"));
    let jwt = w.token(&w.jwt, AUD).await;
    assert_eq!(authorizer.verify(&jwt).await.err(), Some(AuthError::Unavailable));
    assert!(authorizer.warm_up().await.is_err());
    assert!(build(w.authorizer()).warm_up().await.is_ok());
    assert!(matches!(
        Authorizer::builder(&w.issuer.base).build(),
        Err(tessera_resource::BuildError::NoAudience)
    ));
}
