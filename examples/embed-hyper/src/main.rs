//! Embedding Tessera's token endpoint in an existing hyper service.
//!
//! Run with: `cargo run -p tessera-example-embed`
//!
//! The application below owns its accept loop and routes: `/api/hello` is its
//! own, and every path under `/oauth/` goes to Tessera's [`TokenEndpoint`]. The
//! service user is created in code on an in-memory store; a real application
//! would open `tessera_store_sqlite::SqliteStore` instead.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // an example that tells its user what to run

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tessera_endpoint::{Issuer, TokenEndpoint};
use tessera_mint::TokenMinter;
use tessera_store::{
    ClientSecret, MemoryStore, SecretDigest, ServiceUser, ServiceUserStore, Username,
};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    // 1. A store with one service user and a freshly generated secret.
    let store = Arc::new(MemoryStore::new());
    let secret = ClientSecret::generate()?;
    let mut user =
        ServiceUser::new(Username::new("reporting-job")?, time::OffsetDateTime::now_utc())?;
    user.secret = Some(SecretDigest::of(&secret));
    store.create_service_user(&user).await?;

    // 2. Tessera's endpoint, built from the store and a minter.
    let tessera =
        TokenEndpoint::new(Issuer::new(store, TokenMinter::new(format!("http://{addr}"))));

    println!("listening on http://{addr}");
    println!(
        "try: curl -s -u 'reporting-job:{}' -d grant_type=client_credentials http://{addr}/oauth/v2/token",
        secret.expose()
    );

    // 3. The application's own accept loop and router.
    loop {
        let (stream, _) = listener.accept().await?;
        let tessera = tessera.clone();
        let app = service_fn(move |request: Request<Incoming>| {
            let tessera = tessera.clone();
            async move { Ok::<_, Infallible>(route(&tessera, request).await) }
        });
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), app)
                .await;
        });
    }
}

async fn route(tessera: &TokenEndpoint, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path().starts_with("/oauth/") {
        return tessera.handle(request).await;
    }
    let (status, body) = match request.uri().path() {
        "/api/hello" => (StatusCode::OK, "hello from the application\n"),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
