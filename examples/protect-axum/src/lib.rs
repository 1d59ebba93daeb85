//! An axum 0.8 API whose routes are protected by `tessera-resource`: it accepts
//! access tokens of a Tessera (or ZITADEL) issuer, opaque or JWT, and hands each
//! handler the caller.
//!
//! Run with: `cargo run -p protect-axum` (see `src/main.rs` for its settings)
//!
//! - `GET /` is public.
//! - `GET /api/me` needs any valid token for the API's project (the `Principal`
//!   extractor checks it) and answers who the caller is.
//! - `GET /api/profile` needs the scope `profile`: 403 `insufficient_scope`
//!   without it.
//! - `GET /api/orders` needs the role `reader`, and `POST /api/orders` the role
//!   `writer` in the API's project (the layer checks them).
//!
//! Without a token the protected routes answer 401 with `WWW-Authenticate: Bearer`;
//! with an invalid one 401 `invalid_token`; while the issuer cannot be reached and
//! nothing cached decides, 503.
#![forbid(unsafe_code)]

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_resource::{Authorizer, Principal, Requirement};

/// The scope `GET /api/profile` requires.
pub const PROFILE_SCOPE: &str = "profile";
/// The role `GET /api/orders` requires.
pub const READER_ROLE: &str = "reader";
/// The role `POST /api/orders` requires, in the API's project.
pub const WRITER_ROLE: &str = "writer";

/// The API's router for tokens checked by `authorizer`; `project` is the API's
/// project id (its audience).
pub fn app(authorizer: Authorizer, project: &str) -> Router {
    let orders = Router::new()
        .route("/api/orders", get(list_orders))
        .route_layer(authorizer.layer().require(Requirement::role(READER_ROLE)))
        .merge(
            Router::new().route("/api/orders", axum::routing::post(create_order)).route_layer(
                authorizer.layer().require(Requirement::role_in(WRITER_ROLE, project)),
            ),
        );
    let profile = Router::new()
        .route("/api/profile", get(profile))
        .route_layer(authorizer.layer().require(Requirement::scope(PROFILE_SCOPE)));
    Router::new()
        .route("/", get(|| async { "public: no token needed\n" }))
        .route("/api/me", get(me))
        .merge(orders)
        .merge(profile)
        .with_state(authorizer)
}

/// Any valid token: the extractor checks it with the state's authorizer.
async fn me(caller: Principal) -> axum::Json<Value> {
    axum::Json(describe(&caller))
}

async fn profile(Extension(caller): Extension<Principal>) -> axum::Json<Value> {
    axum::Json(json!({"subject": caller.subject(), "profile": "granted"}))
}

async fn list_orders(Extension(caller): Extension<Principal>) -> axum::Json<Value> {
    axum::Json(json!({"client_id": caller.client_id(), "orders": ["A-1001", "A-1002"]}))
}

async fn create_order(
    Extension(caller): Extension<Principal>,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    (
        axum::http::StatusCode::CREATED,
        axum::Json(json!({"created_by": caller.subject(), "order": "A-1003"})),
    )
}

/// What the API knows of a caller.
pub fn describe(caller: &Principal) -> Value {
    json!({
        "subject": caller.subject(),
        "client_id": caller.client_id(),
        "scopes": caller.scopes().collect::<Vec<_>>(),
        "audience": caller.audience(),
        "roles": caller.roles().names().collect::<Vec<_>>(),
        "token": format!("{:?}", caller.kind()),
    })
}
