//! The OAuth 2.0 issuer of Tessera: grant logic free of HTTP, and the hyper (and
//! tower) `Service` that puts it on the wire.
//!
//! - [`Issuer`]: the grant logic as plain async functions. It authenticates clients
//!   against a [`tessera_store::Store`], negotiates scopes, mints tokens with a
//!   [`tessera_mint::TokenMinter`] and records them; it validates tokens for
//!   introspection, revocation, userinfo and an application's own routes.
//! - [`TokenEndpoint`]: the `Service` that reads requests, calls the issuer and
//!   renders answers. It owns no socket: mount it in an existing hyper or axum
//!   service (at any path), or let `tessera-server` run it.
//! - [`Metrics`]: Prometheus counters and latency histograms of the endpoint, which
//!   [`TokenEndpoint::with_metrics`] counts into and may answer `GET /metrics` with.
//! - [`AuditEvent`] and [`AuditSink`]: the security events of a request as typed
//!   values, handed to the issuer's sink ([`Issuer::with_audit_sink`]); the default,
//!   [`TracingAudit`], logs them through `tracing` under `tessera::audit`.
//!
//! ```
//! use std::sync::Arc;
//! use tessera_endpoint::{Issuer, TokenEndpoint, bearer_token};
//! use tessera_mint::TokenMinter;
//! use tessera_store::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let issuer = Issuer::new(Arc::new(MemoryStore::new()), TokenMinter::new("https://auth.example.com"));
//! let endpoint = TokenEndpoint::new(issuer.clone());
//! assert!(endpoint.handles("/oauth/v2/token"));
//!
//! // In the application's own route: is the caller's bearer token active?
//! let mut headers = http::HeaderMap::new();
//! headers.insert("authorization", "Bearer not-a-token".parse()?);
//! let active = issuer.validate_token(bearer_token(&headers)?).await?;
//! assert!(active.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every error reaches the wire through one function, [`OAuthError::into_response`].
#![forbid(unsafe_code)]

mod audit;
mod context;
mod error;
mod http;
mod issuer;
mod memo;
mod paths;

pub use audit::{AuditEvent, AuditSink, LogAddress, MAX_LOGGED_ID_CHARS, TracingAudit};
pub use error::{ErrorCode, OAuthError, REALM};
pub use http::address::{ClientAddr, ClientAddressSource};
pub use http::metrics::{METRICS_CONTENT_TYPE, METRICS_PATH, Metrics};
pub use http::request::{CLIENT_ASSERTION_TYPE, MAX_AUTHORIZATION_LEN, bearer_token};
pub use http::rpc::{MAX_RPC_BODY, RpcBody, RpcRequest, RpcService};
pub use http::throttle::{KNOWN_ADDRESS_TTL, Limit, ThrottleConfig};
pub use http::{DEFAULT_MAX_BODY, PeerEndpoint, ResponseBody, TokenEndpoint};
pub use issuer::{
    ASSERTION_ALGORITHMS, ActiveToken, AssertionPolicy, AuthMethod, CLOCK_SKEW_SECS, Caller,
    ClientCredentials, ClientCredentialsRequest, Introspection, Issuer, JWT_BEARER_GRANT_TYPE,
    MAX_ASSERTION_LIFETIME_SECS, MAX_TOKEN_LEN, PAT_NEVER_EXPIRES, PAT_SCOPE, PresentedSecret,
    TokenResponse, UserInfo,
};
pub use paths::{
    AUTHORIZE_PATH, HEALTH_PATH, INTROSPECT_PATH, KEYS_PATH, OAUTH_METADATA_PATH,
    OPENID_CONFIGURATION_PATH, READY_PATH, REVOKE_PATH, ROUTES, TOKEN_PATH, USERINFO_PATH,
};

/// Parts that exist for the fuzz targets and benchmarks, which exercise them one by
/// one (feature `internals`); not a stable interface.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::http::form::{Form, FormError, MAX_PARAMS, decode};
    pub use crate::http::request::parse_basic;
    pub use crate::http::throttle::Throttle;
    pub use crate::issuer::seconds_until;
}
