//! The configuration of a [`Tessera`](crate::Tessera): plain data, deserializable
//! from any serde format (JSON, TOML, environment-style maps).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tessera_endpoint::{ClientAddressSource, Limit, ThrottleConfig};
use tessera_mint::{JwtHeaderType, RotationPolicy};
use tessera_scope::{Scope, ScopePolicy};
use tessera_store::SigningAlgorithm;

use crate::Error;

/// Everything an embedding configures; every field has a default but `issuer`.
///
/// ```
/// let config: tessera::Config = serde_json::from_str(r#"{
///     "issuer": "https://app.example.com/auth",
///     "signing": {"algorithm": "RS256", "jwt_type": "JWT"},
///     "throttle": {"per_client_address": 5},
///     "client_address": {"header": "X-Forwarded-For", "trusted_hops": 1}
/// }"#)?;
/// assert_eq!(config.signing.rotation_secs, 21_600);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The issuer identifier: the URL clients reach the endpoints under (its path is
    /// where the endpoints are mounted, such as `https://app.example.com/auth`).
    pub issuer: String,
    /// Signing keys of JWT access tokens.
    #[serde(default)]
    pub signing: SigningConfig,
    /// Throttling of failed client authentication; `null` turns it off.
    #[serde(default = "some_default")]
    pub throttle: Option<ThrottleSettings>,
    /// Limits on requests.
    #[serde(default)]
    pub http: HttpConfig,
    /// Where a request's client address comes from.
    #[serde(default)]
    pub client_address: ClientAddressConfig,
    /// Client assertions (RFC 7523).
    #[serde(default)]
    pub assertions: AssertionsConfig,
    /// The organization created when the store has none.
    #[serde(default)]
    pub organization: OrganizationConfig,
    /// Which scopes clients may ask for.
    #[serde(default)]
    pub scopes: ScopesConfig,
    /// Whether the management API (ZITADEL's v2 services) is answered beside the
    /// OAuth endpoints (default `true`). Only administrators reach it.
    #[serde(default = "yes")]
    pub management_api: bool,
}

fn yes() -> bool {
    true
}

impl Config {
    /// The defaults, for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            signing: SigningConfig::default(),
            throttle: Some(ThrottleSettings::default()),
            http: HttpConfig::default(),
            client_address: ClientAddressConfig::default(),
            assertions: AssertionsConfig::default(),
            organization: OrganizationConfig::default(),
            scopes: ScopesConfig::default(),
            management_api: true,
        }
    }

    /// The scope policy: the standard and project scopes, and the custom ones listed.
    pub fn scope_policy(&self) -> Result<ScopePolicy, Error> {
        let mut policy = ScopePolicy::default();
        for custom in &self.scopes.custom {
            let scope = Scope::new(custom.clone())
                .map_err(|e| Error::Config(format!("scopes.custom {custom:?}: {e}")))?;
            policy = policy.allow_custom(scope);
        }
        Ok(policy)
    }

    /// The rotation policy of the signing keys.
    pub fn rotation_policy(&self) -> RotationPolicy {
        RotationPolicy {
            algorithm: self.signing.algorithm,
            period: secs(self.signing.rotation_secs),
            max_token_lifetime: secs(self.signing.jwt_max_lifetime_secs),
            ..RotationPolicy::default()
        }
    }

    /// The throttle's thresholds, or `None` when throttling is off.
    pub fn throttle_config(&self) -> Option<ThrottleConfig> {
        let settings = self.throttle.as_ref()?;
        let window = Duration::from_secs(settings.window_secs);
        Some(ThrottleConfig {
            per_client_address: Limit { failures: settings.per_client_address, window },
            per_address: Limit { failures: settings.per_address, window },
            per_client: Limit { failures: settings.per_client, window },
            ..ThrottleConfig::default()
        })
    }

    /// Where client addresses come from.
    pub fn client_address_source(&self) -> Result<ClientAddressSource, Error> {
        let Some(name) = &self.client_address.header else {
            return Ok(ClientAddressSource::default());
        };
        let header = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::Config(format!("client_address.header {name:?} is not a header name"))
        })?;
        Ok(ClientAddressSource::header(header).with_trusted_hops(self.client_address.trusted_hops))
    }

    /// Checks the values that have bounds.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            return bad("issuer must be an http:// or https:// URL");
        }
        if !(1200..=31_622_400).contains(&self.signing.rotation_secs) {
            return bad("signing.rotation_secs must be 1200 to 31622400");
        }
        if !(60..=31_622_400).contains(&self.signing.jwt_max_lifetime_secs) {
            return bad("signing.jwt_max_lifetime_secs must be 60 to 31622400");
        }
        if let Some(t) = &self.throttle
            && !(1..=86_400).contains(&t.window_secs)
        {
            return bad("throttle.window_secs must be 1 to 86400");
        }
        if self.http.max_body_bytes < 1024 {
            return bad("http.max_body_bytes must be at least 1024");
        }
        if !(1..=16).contains(&self.client_address.trusted_hops) {
            return bad("client_address.trusted_hops must be 1 to 16");
        }
        self.scope_policy()?;
        Ok(())
    }
}

fn secs(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn some_default<T: Default>() -> Option<T> {
    Some(T::default())
}

/// Signing keys of JWT access tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// The algorithm of new keys: `ES256` (default), `RS256` or `EdDSA`.
    #[serde(deserialize_with = "parsed")]
    pub algorithm: SigningAlgorithm,
    /// Seconds each key signs before the next takes over (default 21 600, 6 hours).
    pub rotation_secs: u64,
    /// The longest lifetime of a JWT access token in seconds (default 86 400).
    pub jwt_max_lifetime_secs: u64,
    /// The `typ` header of JWT access tokens: `at+jwt` (default) or `JWT`.
    #[serde(deserialize_with = "parsed")]
    pub jwt_type: JwtHeaderType,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::Es256,
            rotation_secs: 21_600,
            jwt_max_lifetime_secs: 86_400,
            jwt_type: JwtHeaderType::AtJwt,
        }
    }
}

impl SigningConfig {
    /// As ZITADEL signs access tokens: RS256 with `typ: JWT`.
    pub fn zitadel() -> Self {
        Self { algorithm: SigningAlgorithm::Rs256, jwt_type: JwtHeaderType::Jwt, ..Self::default() }
    }
}

/// Failed client authentications allowed per window.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Per client ID and address (default 10).
    pub per_client_address: u32,
    /// Per address, across client IDs (default 100).
    pub per_address: u32,
    /// Per client ID, across addresses (default 1000).
    pub per_client: u32,
    /// The window in seconds (default 60).
    pub window_secs: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self { per_client_address: 10, per_address: 100, per_client: 1000, window_secs: 60 }
    }
}

/// Limits on requests. The body limit is the endpoint's; the others are for the
/// accept loop that serves the endpoint (the reference server's, or the host's).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body in bytes (default 65 536); larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest request head in bytes (default 16 384).
    pub max_header_bytes: usize,
    /// Seconds a client may take to send its request head (default 10).
    pub header_read_timeout_secs: u64,
    /// Seconds a whole request may take (default 30).
    pub request_timeout_secs: u64,
    /// Connections served at once (default 1024).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: tessera_endpoint::DEFAULT_MAX_BODY,
            max_header_bytes: 16_384,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1024,
        }
    }
}

/// Where a request's client address comes from: the connection's peer, or the
/// header trusted proxies append to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAddressConfig {
    /// The header (such as `X-Forwarded-For`); none to use the peer.
    pub header: Option<String>,
    /// How many trusted proxies append to it (default 1).
    pub trusted_hops: usize,
}

impl Default for ClientAddressConfig {
    fn default() -> Self {
        Self { header: None, trusted_hops: 1 }
    }
}

/// Client assertions (RFC 7523).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssertionsConfig {
    /// Refuse assertions without a `jti` (default: accepted until their `exp`).
    pub require_jti: bool,
}

/// The organization created when the store has none (later ignored: the stored one
/// stays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationConfig {
    /// Its name (default `Tessera`).
    pub name: Option<String>,
    /// Its primary domain (default: the issuer's host).
    pub domain: Option<String>,
}

/// Which scopes clients may ask for, besides the standard ones (`openid`, `profile`,
/// `email`, `phone`, `address`) and the project audience and role scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScopesConfig {
    /// Custom scopes of the application's own, such as `reports:read`.
    pub custom: Vec<String>,
}

/// Deserializes a value through its `FromStr`.
fn parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_config_is_the_issuer() -> Result<(), serde_json::Error> {
        let config: Config = serde_json::from_str(r#"{"issuer": "https://auth.example.com"}"#)?;
        assert_eq!(config, Config::new("https://auth.example.com"));
        assert!(config.validate().is_ok());
        assert!(config.throttle_config().is_some());
        Ok(())
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        for bad in [
            r#"{"issuer": "https://a", "isuer": "x"}"#,
            r#"{"issuer": "https://a", "signing": {"algorithm": "HS256"}}"#,
            r#"{"issuer": "https://a", "signing": {"jwt_type": "id+jwt"}}"#,
            r#"{"issuer": "https://a", "throttle": {"per_client": -1}}"#,
        ] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
        for (bad, what) in [
            (r#"{"issuer": "auth.example.com"}"#, "issuer"),
            (r#"{"issuer": "https://a", "signing": {"rotation_secs": 5}}"#, "rotation_secs"),
            (r#"{"issuer": "https://a", "client_address": {"trusted_hops": 0}}"#, "trusted_hops"),
            (r#"{"issuer": "https://a", "http": {"max_body_bytes": 10}}"#, "max_body_bytes"),
        ] {
            let config: Config = serde_json::from_str(bad).unwrap_or_else(|e| panic!("{bad}: {e}"));
            let error = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(what), "{bad}: {error}");
        }
    }

    #[test]
    fn throttling_can_be_turned_off() -> Result<(), serde_json::Error> {
        let config: Config = serde_json::from_str(r#"{"issuer": "https://a", "throttle": null}"#)?;
        assert!(config.throttle_config().is_none());
        Ok(())
    }
}
