//! An axum 0.8 application that embeds Tessera: its own public and protected routes,
//! and the OAuth endpoints nested under `/auth`.
//!
//! Run with: `cargo run -p tessera-example-embed-axum`
//!
//! - `GET /` is public.
//! - `GET /api/reports` accepts only Tessera access tokens with the scope
//!   `reports:read`: 401 without an active token, 403 without the scope.
//! - `/auth/...` is Tessera (`/auth/oauth/v2/token`, `/auth/.well-known/openid-configuration`, …),
//!   mounted with `nest_service`, with `http://ADDR/auth` as the issuer.
//!
//! The server serves with `into_make_service_with_connect_info::<SocketAddr>()`, so
//! Tessera throttles failed client authentication per client address.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tessera::admin::NewServiceUser;
use tessera::store::{ClientSecret, Username};
use tessera::{Config, Tessera};

/// The scope `/api/reports` requires.
pub const REPORTS_SCOPE: &str = "reports:read";

/// Tessera for an application at `base` (such as `http://127.0.0.1:8080`), on an
/// in-memory store, with the service user `reporting-job`; returns its secret. A real
/// application opens its database with `tessera::Database::open`.
pub async fn tessera(base: &str) -> Result<(Tessera, ClientSecret), Box<dyn std::error::Error>> {
    let mut config = Config::new(format!("{base}/auth"));
    config.scopes.custom.push(REPORTS_SCOPE.to_owned());
    let tessera = Tessera::builder(config)
        .database(tessera::Database::open("memory:").await?)
        .build()
        .await?;
    let new_user = NewServiceUser::new(Username::new("reporting-job")?);
    let (_, secret) = tessera.admin().create_service_user(new_user).await?;
    Ok((tessera, secret))
}

/// The application's router: its routes, and Tessera under `/auth`.
pub fn app(tessera: Tessera) -> Router {
    Router::new()
        .route("/", get(|| async { "public: no token needed\n" }))
        .route("/api/reports", get(reports))
        .nest_service("/auth", tessera.service())
        .with_state(tessera)
}

/// Serves `app` on `listener` with the peers' addresses, which Tessera throttles by.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

async fn reports(State(tessera): State<Tessera>, headers: HeaderMap) -> Response {
    match tessera.authorize(&headers, Some(REPORTS_SCOPE)).await {
        Ok(token) => axum::Json(json!({
            "client_id": token.user.username.as_str(),
            "scope": token.scopes.to_string(),
            "reports": ["2026-11", "2026-12"],
        }))
        .into_response(),
        Err(error) => error.into_response().into_response(),
    }
}
