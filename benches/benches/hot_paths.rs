//! Criterion benchmarks of the steps of a client credentials request, and of a
//! whole request through the endpoint. See the crate documentation and
//! `benches/README.md`; run with `cargo bench -p tessera-benches`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_benches::{CLIENT_ID, Fixture, SCOPE, basic_header, opaque_grant};
use tessera_endpoint::ClientCredentials;
use tessera_endpoint::internals::parse_basic;
use tessera_mint::TokenMinter;
use tessera_scope::ScopeSet;
use tessera_store::{AccessTokenType, SigningAlgorithm};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a current-thread tokio runtime")
}

fn fixture(runtime: &Runtime) -> Fixture {
    runtime.block_on(Fixture::new()).expect("the benchmark fixture")
}

fn scope_parse(c: &mut Criterion) {
    c.bench_function("scope/parse", |b| {
        b.iter(|| ScopeSet::parse(black_box(SCOPE)));
    });
}

fn basic_parse(c: &mut Criterion) {
    // A generated secret has the shape of a real one: 43 base64url characters.
    let secret = tessera_store::ClientSecret::generate().expect("a secret");
    let header = basic_header(CLIENT_ID, secret.expose());
    c.bench_function("basic/parse", |b| {
        b.iter(|| parse_basic(black_box(header.as_bytes())));
    });
}

fn authenticate(c: &mut Criterion) {
    let runtime = runtime();
    let fx = fixture(&runtime);
    let issuer = fx.issuer();
    let good = ClientCredentials::basic(CLIENT_ID, fx.secret.expose());
    let wrong = ClientCredentials::basic(CLIENT_ID, "x".repeat(fx.secret.expose().len()));

    let mut group = c.benchmark_group("authenticate");
    group.bench_function("success", |b| {
        b.to_async(&runtime).iter(|| async {
            let user = issuer.authenticate(black_box(&good)).await;
            assert!(user.is_ok(), "the right secret authenticates");
            user
        });
    });
    group.bench_function("wrong_secret", |b| {
        b.to_async(&runtime).iter(|| async {
            let user = issuer.authenticate(black_box(&wrong)).await;
            assert!(user.is_err(), "a wrong secret fails");
            user
        });
    });
    group.finish();
}

fn mint(c: &mut Criterion) {
    let minter = TokenMinter::new("https://auth.example.com");
    let grant = opaque_grant().expect("a grant");
    c.bench_function("mint/opaque", |b| {
        b.iter(|| minter.mint(black_box(&grant)));
    });
}

fn mint_jwt(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("mint/jwt");
    for algorithm in SigningAlgorithm::ALL {
        let fx = runtime
            .block_on(Fixture::with_format(AccessTokenType::Jwt, algorithm))
            .expect("fixture");
        let minter = fx.issuer().minter().clone();
        let mut grant = opaque_grant().expect("a grant");
        grant.token_type = AccessTokenType::Jwt;
        group.bench_function(algorithm.as_str(), |b| {
            b.iter(|| minter.mint(black_box(&grant)));
        });
    }
    group.finish();
}

/// The formats of the whole-request benches: opaque, then a JWT per algorithm.
fn formats() -> Vec<(&'static str, AccessTokenType, SigningAlgorithm)> {
    let mut formats = vec![("opaque", AccessTokenType::Opaque, SigningAlgorithm::Es256)];
    formats.extend(SigningAlgorithm::ALL.map(|a| (a.as_str(), AccessTokenType::Jwt, a)));
    formats
}

fn token_request(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("endpoint/token_request");
    for (name, format, algorithm) in formats() {
        let fx = runtime.block_on(Fixture::with_format(format, algorithm)).expect("fixture");
        token_request_for(&mut group, &runtime, name, format, &fx);
    }
    group.finish();
}

fn introspect(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("endpoint/introspect");
    for (name, format, algorithm) in formats().into_iter().take(2) {
        let fx = runtime.block_on(Fixture::with_format(format, algorithm)).expect("fixture");
        let response = runtime.block_on(fx.endpoint.handle(fx.token_request().expect("request")));
        let body =
            runtime.block_on(http_body_util::BodyExt::collect(response.into_body())).expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body.to_bytes()).expect("JSON");
        let token = json["access_token"].as_str().expect("token").to_owned();
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let response =
                    fx.endpoint.handle(fx.introspection_request(&token).expect("request")).await;
                assert!(response.status().is_success());
                black_box(response)
            });
        });
    }
    group.finish();
}

fn token_request_for(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    name: &str,
    format: AccessTokenType,
    fx: &Fixture,
) {
    group.bench_function(name, |b| {
        // Each sample times `iters` requests, then empties the store untimed, so
        // the store stays small however long the benchmark runs.
        b.to_async(runtime).iter_custom(|iters| {
            let fx = &fx;
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let request = fx.token_request().expect("a request");
                    let response = fx.endpoint.handle(black_box(request)).await;
                    assert!(response.status().is_success(), "{response:?}");
                    black_box(response);
                }
                let elapsed = start.elapsed();
                let written = fx.purge_tokens().await.expect("purge");
                let expected = if format == AccessTokenType::Opaque { iters } else { 0 };
                assert_eq!(written, expected, "one record per opaque token, none per JWT");
                elapsed
            }
        });
    });
}

criterion_group!(
    benches,
    scope_parse,
    basic_parse,
    authenticate,
    mint,
    mint_jwt,
    token_request,
    introspect
);
criterion_main!(benches);
