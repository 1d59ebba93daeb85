//! A hyper application that embeds Tessera: its own accept loop and routes, with the
//! OAuth endpoints answering at the root paths Tessera names.
//!
//! Run with: `cargo run -p tessera-example-embed`
//!
//! `/api/hello` is the application's own route and needs a token with `openid`;
//! the paths of [`tessera::ROUTES`] go to Tessera's service, every other path gets the
//! application's own 404. Each connection's service is
//! [`TokenEndpoint::for_peer`](tessera::endpoint::TokenEndpoint::for_peer), so Tessera
//! throttles failed client authentication per client address.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tessera::admin::NewServiceUser;
use tessera::store::{ClientSecret, Username};
use tessera::{Config, Tessera};
use tokio::net::TcpListener;

/// Tessera for an application at `base` (such as `http://127.0.0.1:8080`), on an
/// in-memory store, with the service user `reporting-job`; returns its secret.
pub async fn tessera(base: &str) -> Result<(Tessera, ClientSecret), Box<dyn std::error::Error>> {
    let tessera = Tessera::builder(Config::new(base))
        .database(tessera::Database::open("memory:").await?)
        .build()
        .await?;
    let new_user = NewServiceUser::new(Username::new("reporting-job")?);
    let (_, secret) = tessera.admin().create_service_user(new_user).await?;
    Ok((tessera, secret))
}

/// The application's accept loop: one hyper connection per client, routed by [`route`].
pub async fn serve(listener: TcpListener, tessera: Tessera) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let tessera = tessera.clone();
        let app = service_fn(move |request: Request<Incoming>| {
            let tessera = tessera.clone();
            async move { Ok::<_, Infallible>(route(&tessera, peer, request).await) }
        });
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), app)
                .await;
        });
    }
}

/// Routes one request: Tessera's paths to Tessera (with the peer's address), the
/// application's own otherwise.
pub async fn route(
    tessera: &Tessera,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let service = tessera.service();
    if service.handles(request.uri().path()) {
        return match service.for_peer(peer).call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
    }
    match request.uri().path() {
        "/api/hello" => match tessera.authorize(request.headers(), Some("openid")).await {
            Ok(token) => text(StatusCode::OK, format!("hello, {}\n", token.user.username)),
            Err(error) => error.into_response(),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
