//! The OAuth 2.0 issuer of Tessera.
//!
//! Two layers:
//!
//! - [`Issuer`]: the grant logic as plain async functions, free of HTTP. It
//!   authenticates clients against a [`tessera_store::Store`], negotiates scopes,
//!   mints tokens with a [`tessera_mint::TokenMinter`] and records them.
//! - [`TokenEndpoint`]: a hyper 1.x (and tower) `Service` that parses requests,
//!   calls the issuer and renders responses. It owns no socket: mount it in an
//!   existing hyper or axum service, or let `tessera-server` run it.
//!
//! Every error reaches the wire through one function, [`OAuthError::into_response`].
#![forbid(unsafe_code)]

mod assertion;
mod auth;
mod context;
mod error;
pub mod form;
mod issuer;
mod service;
mod throttle;
mod tokens;

pub use assertion::{
    ASSERTION_ALGORITHMS, CLOCK_SKEW_SECS, JWT_BEARER_GRANT_TYPE, MAX_ASSERTION_LIFETIME_SECS,
};
pub use auth::{
    AuthMethod, CLIENT_ASSERTION_TYPE, ClientCredentials, MAX_AUTHORIZATION_LEN, PresentedSecret,
    parse_basic,
};
pub use error::{ErrorCode, OAuthError, REALM};
pub use issuer::{
    AssertionPolicy, ClientCredentialsRequest, Issuer, TokenResponse, default_organization,
    seconds_until,
};
pub use service::{
    AUTHORIZE_PATH, DEFAULT_MAX_BODY, HEALTH_PATH, INTROSPECT_PATH, KEYS_PATH, OAUTH_METADATA_PATH,
    OPENID_CONFIGURATION_PATH, REVOKE_PATH, ResponseBody, TOKEN_PATH, TokenEndpoint, USERINFO_PATH,
};
pub use throttle::{ClientAddr, Limit, Throttle, ThrottleConfig};
pub use tokens::{ActiveToken, Caller, Introspection, MAX_TOKEN_LEN, UserInfo};
