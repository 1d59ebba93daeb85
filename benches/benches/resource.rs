//! The API side: `tessera-resource` checking access tokens beside `jwt-authorizer`
//! 0.15 (and bare `jsonwebtoken::decode`, the floor of any JWT check), on the same
//! JWTs, in the same process and run. Ratios to `jwt-authorizer` are recorded in
//! `docs/resource-server.md`.
//!
//! - `resource/cached/{alg}`: a token seen before (the digest and a cache lookup);
//! - `resource/cached/opaque`: an introspected opaque token seen before;
//! - `resource/first_seen/{alg}`: a token seen for the first time (the cache TTL is
//!   zero, so every check is a miss: digest, lookups, header checks, key lookup,
//!   signature, claims, and the cache insert);
//! - `jwt_authorizer/{alg}`: `jwt_authorizer::Authorizer::check_auth`, which has no
//!   cache, with the same issuer, audience and key set;
//! - `jsonwebtoken/{alg}`: `jsonwebtoken::decode` (v11, aws-lc-rs) with a key parsed
//!   once and a prepared `Validation`.
//!
//! A small hyper server on loopback serves the discovery document, the key set and
//! an introspection endpoint. Run with `cargo bench -p tessera-benches --bench resource`.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tessera_mint::SigningKey;
use tessera_resource::{Authorizer, Credentials};
use tessera_store::SigningAlgorithm;
use tokio::runtime::Runtime;

const AUDIENCE: &str = "231542671830777876";
const OPAQUE: &str = "zs5yP0NPS-jGbR1LC4cbmbovGaGJWM9-1utMwFxSiFM";

/// A token of each algorithm, and the issuer serving their keys.
struct Fixture {
    issuer: String,
    tokens: Vec<(&'static str, String, Value)>,
    _server: Runtime,
}

fn fixture() -> Fixture {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the issuer");
    let listener =
        server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a loopback listener");
    let issuer = format!("http://{}", listener.local_addr().expect("address"));
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let mut tokens = Vec::new();
    let mut keys = Vec::new();
    for (name, alg) in [
        ("ES256", SigningAlgorithm::Es256),
        ("RS256", SigningAlgorithm::Rs256),
        ("EdDSA", SigningAlgorithm::EdDsa),
    ] {
        let (key, _) = SigningKey::generate(alg).expect("a key");
        let claims = json!({
            "iss": issuer, "sub": "177277230701233564", "aud": [AUDIENCE],
            "exp": now + 3600, "iat": now, "nbf": now, "jti": format!("jti-{name}"),
            "client_id": "billing-job",
            "scope": "openid profile urn:zitadel:iam:org:project:id:231542671830777876:aud",
            "urn:zitadel:iam:org:project:roles": {"reader": {"177277230701233111": "acme.example.com"}},
        });
        let header = json!({"alg": name, "typ": "at+jwt", "kid": key.kid()});
        let input = format!(
            "{}.{}",
            Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
            Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
        );
        let signature = key.sign(input.as_bytes()).expect("a signature");
        let token = format!("{input}.{}", Base64UrlUnpadded::encode_string(&signature));
        keys.push(key.public_jwk().clone());
        tokens.push((name, token, key.public_jwk().clone()));
    }
    let discovery = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "introspection_endpoint": format!("{issuer}/introspect"),
    })
    .to_string();
    let jwks = json!({ "keys": keys }).to_string();
    let active = json!({
        "active": true, "iss": issuer, "sub": "177277230701233564", "aud": [AUDIENCE],
        "exp": now + 3600, "client_id": "billing-job", "scope": "openid", "token_type": "Bearer",
    })
    .to_string();
    server.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (discovery, jwks, active) = (discovery.clone(), jwks.clone(), active.clone());
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let body = match request.uri().path() {
                    "/.well-known/openid-configuration" => discovery.clone(),
                    "/keys" => jwks.clone(),
                    _ => active.clone(),
                };
                async move { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Fixture { issuer, tokens, _server: server }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

fn authorizer(fx: &Fixture, cache_ttl: Duration) -> Authorizer {
    Authorizer::builder(&fx.issuer)
        .audience(AUDIENCE)
        .introspection(Credentials::client_secret("orders-api", "secret"))
        .cache_ttl(cache_ttl)
        .build()
        .expect("an authorizer")
}

fn resource(c: &mut Criterion) {
    let fx = fixture();
    let runtime = runtime();
    let cached = authorizer(&fx, Duration::from_secs(3600));
    let uncached = authorizer(&fx, Duration::ZERO);
    let jwt_authorizer: jwt_authorizer::Authorizer = runtime
        .block_on(
            jwt_authorizer::JwtAuthorizer::from_jwks_url(&format!("{}/keys", fx.issuer))
                .validation(
                    jwt_authorizer::Validation::new()
                        .iss(&[fx.issuer.as_str()])
                        .aud(&[AUDIENCE])
                        .nbf(true),
                )
                .build(),
        )
        .expect("jwt-authorizer");

    let mut group = c.benchmark_group("resource");
    for (name, token, _) in &fx.tokens {
        assert!(runtime.block_on(cached.verify(token)).is_ok(), "{name} verifies");
        group.bench_function(format!("cached/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { cached.verify(black_box(token)).await.expect("accepted") });
        });
        group.bench_function(format!("first_seen/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { uncached.verify(black_box(token)).await.expect("accepted") });
        });
    }
    assert!(runtime.block_on(cached.verify(OPAQUE)).is_ok(), "introspected");
    group.bench_function("cached/opaque", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.verify(black_box(OPAQUE)).await.expect("accepted") });
    });
    group.finish();

    let mut group = c.benchmark_group("jwt_authorizer");
    for (name, token, _) in &fx.tokens {
        assert!(runtime.block_on(jwt_authorizer.check_auth(token)).is_ok(), "{name} verifies");
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter(|| async {
                jwt_authorizer.check_auth(black_box(token)).await.expect("accepted")
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("jsonwebtoken");
    for (name, token, jwk) in &fx.tokens {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key");
        let alg = jsonwebtoken::decode_header(token).expect("a header").alg;
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[fx.issuer.as_str()]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        group.bench_function(*name, |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Value>(black_box(token), &key, &validation)
                    .expect("verifies")
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = resource
}
criterion_main!(benches);
