//! Configuring an [`Authorizer`].

use std::sync::Arc;
use std::time::Duration;

use crate::Authorizer;
use crate::introspection::Credentials;
use crate::jwt::JwtAlgorithm;

/// Why an [`Authorizer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer is not an `http://` or `https://` URL.
    #[error("the issuer {0:?} is not an http:// or https:// URL")]
    Issuer(String),
    /// No audience was configured, and no `danger_accept_any_audience` either.
    #[error(
        "no audience: name the API's own audience (its project id), or call \
         danger_accept_any_audience to accept tokens meant for any API of the issuer"
    )]
    NoAudience,
    /// An empty algorithm allow-list.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithm,
    /// JWT introspection was asked for without introspection credentials.
    #[error("introspecting JWTs needs introspection credentials")]
    NoCredentials,
    /// A key file that cannot be used.
    #[error("key file: {0}")]
    KeyFile(String),
    /// The HTTP client could not be built, or an `https://` issuer without the
    /// `rustls` feature and without a client of the application's.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// The configuration of an [`Authorizer`]; start with [`Authorizer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthorizerBuilder {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) any_audience: bool,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) introspect_jwts: bool,
    pub(crate) algorithms: Vec<JwtAlgorithm>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_bytes: usize,
    pub(crate) cache_capacity: u64,
    pub(crate) cache_ttl: Duration,
    pub(crate) refused_capacity: u64,
    pub(crate) refused_ttl: Duration,
    pub(crate) jwks_refresh_interval: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) jwks_max_age: Duration,
    pub(crate) max_keys: usize,
    pub(crate) retry_interval: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) http_client: Option<reqwest::Client>,
}

impl AuthorizerBuilder {
    pub(crate) fn new(issuer: String) -> Self {
        AuthorizerBuilder {
            issuer,
            audiences: Vec::new(),
            any_audience: false,
            credentials: None,
            introspect_jwts: false,
            algorithms: JwtAlgorithm::ALL.to_vec(),
            leeway: Duration::from_secs(60),
            max_token_bytes: 8 * 1024,
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(60),
            refused_capacity: 10_000,
            refused_ttl: Duration::from_secs(5),
            jwks_refresh_interval: Duration::from_secs(300),
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(24 * 3600),
            max_keys: 32,
            retry_interval: Duration::from_secs(1),
            http_timeout: Duration::from_secs(5),
            http_client: None,
        }
    }

    /// Accepts tokens whose `aud` holds `audience` (for Tessera and ZITADEL: the
    /// API's project id). Call again to accept any of several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens whatever their audience: any token of the issuer, including
    /// those meant for other APIs. Opaque tokens are still checked by the issuer
    /// against the API app's project.
    pub fn danger_accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Introspects opaque tokens at the issuer with `credentials`. Without it,
    /// only JWTs are accepted.
    pub fn introspection(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Also introspects JWTs after their local verification, so that a revoked
    /// JWT is refused (within the cache TTL). Needs
    /// [`introspection`](Self::introspection). Off by default.
    pub fn introspect_jwts(mut self, on: bool) -> Self {
        self.introspect_jwts = on;
        self
    }

    /// The JWT signature algorithms accepted (default: ES256, RS256 and EdDSA).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = JwtAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew allowed for `exp` and `nbf` (default: 60 seconds).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token accepted, in bytes (default: 8 KiB); a longer one is
    /// refused without a call to the issuer.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The most accepted tokens cached (default: 10 000).
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// The longest an accepted token is cached (default: 60 seconds); never past
    /// its `exp`. For opaque tokens, and JWTs with
    /// [`introspect_jwts`](Self::introspect_jwts), this bounds how long a revoked
    /// token is still accepted.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The most refused tokens cached (default: 10 000).
    pub fn refused_cache_capacity(mut self, entries: u64) -> Self {
        self.refused_capacity = entries;
        self
    }

    /// How long a refused token is cached (default: 5 seconds).
    pub fn refused_cache_ttl(mut self, ttl: Duration) -> Self {
        self.refused_ttl = ttl;
        self
    }

    /// How old the key set may grow before it is refreshed in the background
    /// (default: 300 seconds, the issuer's `max-age`).
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// The shortest time between two fetches of the key set for tokens naming an
    /// unknown key id (default: 10 seconds).
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long a key set keeps serving without a successful refresh, while the
    /// issuer cannot be reached (default: 24 hours).
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.jwks_max_age = age;
        self
    }

    /// After a failed call to the issuer, how long requests that need it answer
    /// 503 at once before the next attempt (default: 1 second).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Connect and whole-request timeout of calls to the issuer (default: 5
    /// seconds). Not used with [`http_client`](Self::http_client).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The HTTP client to reach the issuer with (for a proxy, extra root
    /// certificates, …). It should not follow redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The authorizer. Nothing is fetched yet: discovery and the key set are
    /// fetched on first need (or by [`Authorizer::warm_up`]), so an API starts
    /// while its issuer is down.
    pub fn build(self) -> Result<Authorizer, BuildError> {
        let https = self.issuer.starts_with("https://");
        if !(https || self.issuer.starts_with("http://")) || self.issuer.contains(['?', '#']) {
            return Err(BuildError::Issuer(self.issuer));
        }
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::NoAudience);
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithm);
        }
        if self.introspect_jwts && self.credentials.is_none() {
            return Err(BuildError::NoCredentials);
        }
        let http = match self.http_client.clone() {
            Some(client) => client,
            None => http_client(self.http_timeout, https)?,
        };
        Ok(Authorizer(Arc::new(crate::Inner::new(self, http))))
    }
}

/// The default client: no redirects, the timeouts, and with the `rustls` feature
/// TLS on aws-lc-rs with the operating system's root certificates.
fn http_client(timeout: Duration, https: bool) -> Result<reqwest::Client, BuildError> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout);
    #[cfg(feature = "rustls")]
    let builder = {
        let mut roots = rustls::RootCertStore::empty();
        if https {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(BuildError::Http("no root certificates found on this system".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BuildError::Http(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder.use_preconfigured_tls(tls)
    };
    #[cfg(not(feature = "rustls"))]
    if https {
        return Err(BuildError::Http(
            "an https:// issuer needs the rustls feature, or a client given to http_client".into(),
        ));
    }
    builder.build().map_err(|e| BuildError::Http(e.to_string()))
}
