//! The API side of Tessera: accept a request only with a valid access token from a
//! configured issuer, and hand the handler who the caller is.
//!
//! An [`Authorizer`] checks `Authorization: Bearer …` against one issuer (Tessera,
//! or ZITADEL): JWTs locally, with the keys its discovery document names; opaque
//! tokens by introspection (RFC 7662) as an API app. It works as a tower layer
//! ([`Authorizer::layer`], for hyper, tonic and axum), as an axum extractor
//! ([`Principal`], feature `axum`), or called directly ([`Authorizer::authorize`]).
//! A token seen before costs a SHA-256 digest and a lookup in a bounded cache.
//!
//! ```no_run
//! use tessera_resource::{Authorizer, Credentials, Principal, Requirement};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let authorizer = Authorizer::builder("https://auth.example.com")
//!     .audience("231542671830777876") // the API's project id
//!     .introspection(Credentials::client_secret("orders-api", "its-secret"))
//!     .build()?;
//!
//! // axum: the layer refuses with 401/403/503; the handler gets the principal.
//! let app: axum::Router = axum::Router::new()
//!     .route("/orders", axum::routing::get(|axum::Extension(caller): axum::Extension<Principal>| async move {
//!         format!("orders of {}", caller.subject())
//!     }))
//!     .route_layer(authorizer.layer().require(Requirement::scope("orders:read")));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Failures answer as RFC 6750 asks: 401 `invalid_token`, 403
//! `insufficient_scope` naming the scope, 401 with a bare `Bearer` challenge
//! without a token, and 503 when the issuer cannot be reached and nothing held can
//! decide. See `docs/resource-server.md` for configuration, caching and outages.
#![forbid(unsafe_code)]

mod bearer;
mod builder;
mod cache;
mod error;
mod introspection;
mod issuer;
mod jwt;
mod keys;
mod layer;
mod principal;
mod requirement;

#[cfg(feature = "axum")]
mod extract;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

pub use builder::{AuthorizerBuilder, BuildError};
pub use error::{AuthError, Rejection};
pub use introspection::Credentials;
pub use jwt::JwtAlgorithm;
pub use layer::{AuthLayer, AuthService, ResponseFuture};
pub use principal::{Principal, ROLES_CLAIM, Roles, TokenKind};
pub use requirement::Requirement;

use cache::{Accepted, Caches};
use introspection::Introspector;
use issuer::Issuer;
use jwt::Verifier;
use keys::{KeyError, KeyPolicy, KeyStore};
use principal::Claims;

/// Checks access tokens of one issuer. Cloning it is cheap, and clones share the
/// caches and the key set.
#[derive(Clone)]
pub struct Authorizer(Arc<Inner>);

impl Authorizer {
    /// The configuration of an authorizer for tokens of `issuer` (the issuer URL
    /// exactly as tokens name it in `iss`, such as `https://auth.example.com`).
    pub fn builder(issuer: impl Into<String>) -> AuthorizerBuilder {
        AuthorizerBuilder::new(issuer.into())
    }

    /// Checks the request's bearer token: the principal it stands for, or the
    /// error to answer with.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = bearer::token(headers)?;
        self.verify(token).await
    }

    /// Checks the request's bearer token, then each requirement.
    pub async fn authorize_with(
        &self,
        headers: &HeaderMap,
        requirements: &[Requirement],
    ) -> Result<Principal, AuthError> {
        let principal = self.authorize(headers).await?;
        requirement::check_all(requirements, &principal)?;
        Ok(principal)
    }

    /// Checks an access token: from the cache when it was seen before and has not
    /// expired there, otherwise verified (a JWT) or introspected (an opaque token).
    /// Concurrent checks of one uncached token share one verification or call.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let inner = &self.0;
        if token.len() > inner.max_token_bytes {
            tracing::debug!(reason = %Rejection::TooLong, "access token refused");
            return Err(Rejection::TooLong.into());
        }
        let digest = cache::digest(token);
        if let Some(accepted) = inner.caches.accepted.get(&digest).await {
            return Ok(accepted.principal);
        }
        if let Some(rejection) = inner.caches.refused.get(&digest).await {
            return Err(rejection.into());
        }
        let decided = inner
            .caches
            .accepted
            .try_get_with(digest, async {
                match inner.decide(token).await {
                    Ok(accepted) => Ok(accepted),
                    Err(Failure::Refused(rejection)) => {
                        tracing::debug!(reason = %rejection, "access token refused");
                        inner.caches.refused.insert(digest, rejection).await;
                        Err(Failure::Refused(rejection))
                    }
                    Err(Failure::Unavailable) => Err(Failure::Unavailable),
                }
            })
            .await;
        match decided {
            Ok(accepted) => Ok(accepted.principal),
            Err(failure) => Err(match *failure {
                Failure::Refused(rejection) => AuthError::InvalidToken(rejection),
                Failure::Unavailable => AuthError::Unavailable,
            }),
        }
    }

    /// A tower layer that lets a request through only with a valid token, and puts
    /// its [`Principal`] into the request's extensions. Add requirements with
    /// [`AuthLayer::require`].
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// Fetches discovery and the key set now, rather than on the first request
    /// that needs them. An error says the issuer cannot be reached yet; requests
    /// retry by themselves.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        self.0.issuer.endpoints().await.map_err(|_| AuthError::Unavailable)?;
        if self.0.keys.warm_up().await { Ok(()) } else { Err(AuthError::Unavailable) }
    }

    /// Counters and cache sizes, for monitoring and tests.
    pub async fn stats(&self) -> Stats {
        let inner = &self.0;
        let (cached_tokens, cached_refusals) = inner.caches.sizes().await;
        Stats {
            cached_tokens,
            cached_refusals,
            keys: inner.keys.len(),
            key_set_fetches: inner.keys.fetches.load(Ordering::Relaxed),
            introspections: inner
                .introspector
                .as_ref()
                .map_or(0, |i| i.calls.load(Ordering::Relaxed)),
            signature_checks: inner.signature_checks.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("issuer", &self.0.issuer.issuer)
            .field("audiences", &self.0.audiences)
            .finish_non_exhaustive()
    }
}

/// What an [`Authorizer`] holds and has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Accepted tokens in the cache.
    pub cached_tokens: u64,
    /// Refused tokens in the cache.
    pub cached_refusals: u64,
    /// Keys in the key set held.
    pub keys: usize,
    /// Fetches of the key set attempted.
    pub key_set_fetches: u64,
    /// Introspection calls made.
    pub introspections: u64,
    /// JWT signatures verified.
    pub signature_checks: u64,
}

/// Why no decision could be cached.
#[derive(Debug)]
enum Failure {
    Refused(Rejection),
    Unavailable,
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Failure::Refused(rejection)
    }
}

pub(crate) struct Inner {
    issuer: Arc<Issuer>,
    keys: Arc<KeyStore>,
    verifier: Verifier,
    introspector: Option<Introspector>,
    introspect_jwts: bool,
    audiences: Vec<String>,
    leeway_secs: i64,
    cache_ttl: Duration,
    max_token_bytes: usize,
    caches: Caches,
    signature_checks: AtomicU64,
}

impl Inner {
    fn new(config: AuthorizerBuilder, http: reqwest::Client) -> Self {
        let issuer = Arc::new(Issuer::new(config.issuer.clone(), http, config.retry_interval));
        let policy = KeyPolicy {
            refresh_interval: config.jwks_refresh_interval,
            refetch_interval: config.jwks_refetch_interval,
            max_age: config.jwks_max_age,
            max_keys: config.max_keys,
        };
        let leeway_secs = i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX);
        Inner {
            keys: Arc::new(KeyStore::new(issuer.clone(), policy)),
            verifier: Verifier::new(
                &config.issuer,
                &config.audiences,
                &config.algorithms,
                leeway_secs,
            ),
            issuer,
            introspector: config.credentials.map(Introspector::new),
            introspect_jwts: config.introspect_jwts,
            audiences: config.audiences,
            leeway_secs,
            cache_ttl: config.cache_ttl,
            max_token_bytes: config.max_token_bytes,
            caches: Caches::new(config.cache_capacity, config.refused_capacity, config.refused_ttl),
            signature_checks: AtomicU64::new(0),
        }
    }

    /// The decision about an uncached token.
    async fn decide(&self, token: &str) -> Result<Accepted, Failure> {
        if !bearer::is_b64token(token) {
            return Err(Rejection::Malformed.into());
        }
        let principal = match jwt::header(token)? {
            Some(header) => self.verify_jwt(token, header).await?,
            None => self.introspect_opaque(token).await?,
        };
        let ttl = match principal.expires_at() {
            Some(exp) => {
                let left = u64::try_from(exp.saturating_sub(unix_now())).unwrap_or(0);
                self.cache_ttl.min(Duration::from_secs(left))
            }
            None => self.cache_ttl,
        };
        Ok(Accepted::new(principal, Instant::now() + ttl))
    }

    async fn verify_jwt(&self, token: &str, header: jwt::Header) -> Result<Principal, Failure> {
        let alg = self.verifier.check_header(&header)?;
        let kid = header.kid.as_deref().ok_or(Rejection::UnknownKey)?;
        let key = self.keys.key(kid).await.map_err(|e| match e {
            KeyError::Unknown => Failure::Refused(Rejection::UnknownKey),
            KeyError::Unavailable => Failure::Unavailable,
        })?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let claims = self.verifier.verify(token, alg, &key, unix_now())?;
        let principal = Principal::from_claims(claims, TokenKind::Jwt)?;
        if self.introspect_jwts {
            let answer = self.introspect(token).await?;
            if answer.active != Some(true) {
                return Err(Rejection::Inactive.into());
            }
        }
        Ok(principal)
    }

    async fn introspect_opaque(&self, token: &str) -> Result<Principal, Failure> {
        if self.introspector.is_none() {
            return Err(Rejection::OpaqueNotAccepted.into());
        }
        let claims = self.introspect(token).await?;
        self.check_introspected(&claims)?;
        Ok(Principal::from_claims(claims, TokenKind::Opaque)?)
    }

    async fn introspect(&self, token: &str) -> Result<Claims, Failure> {
        let introspector = self.introspector.as_ref().ok_or(Rejection::OpaqueNotAccepted)?;
        introspector.introspect(&self.issuer, token).await.map_err(|_| Failure::Unavailable)
    }

    /// What local verification checks of a JWT, for an introspection answer: it
    /// is active, of this issuer, within its time claims, and for this API.
    fn check_introspected(&self, claims: &Claims) -> Result<(), Rejection> {
        if claims.active != Some(true) {
            return Err(Rejection::Inactive);
        }
        if claims.iss.as_deref().is_some_and(|iss| iss != self.issuer.issuer) {
            return Err(Rejection::Issuer);
        }
        let now = unix_now();
        if claims.exp.is_some_and(|exp| exp.saturating_add(self.leeway_secs) <= now) {
            return Err(Rejection::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf.saturating_sub(self.leeway_secs) > now) {
            return Err(Rejection::NotYetValid);
        }
        if !self.audiences.is_empty() && !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(Rejection::Audience);
        }
        Ok(())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
