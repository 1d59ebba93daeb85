//! Access token minting for Tessera.
//!
//! A [`TokenMinter`] turns a [`Grant`] (who, which scopes, which audience, until
//! when) into an [`AccessToken`], in the format the grant asks for:
//!
//! - **Opaque** tokens are 256 random bits, base64url. The minter hands back the
//!   [`TokenRecord`] to persist, keyed by the token's SHA-256 digest, so the store
//!   never holds a usable token.
//! - **JWT** access tokens follow RFC 9068 (`typ: at+jwt`) and are signed with the
//!   current key of a [`KeyRing`] (ES256, RS256 or EdDSA, parsed once). They need no
//!   record. A [`KeyManager`] keeps the ring in step with the store: keys are shared
//!   by every instance on one database, rotated on a schedule, published before they
//!   sign and kept published until every token they signed has expired. Private keys
//!   are sealed with a [`MasterKey`] (AES-256-GCM) before they reach the store.
//!
//! ```
//! use tessera_mint::{Grant, TokenMinter};
//! use tessera_store::{AccessTokenType, TokenDigest, UserId, Username};
//! use time::{Duration, OffsetDateTime};
//!
//! let minter = TokenMinter::new("https://auth.example.com");
//! let now = OffsetDateTime::now_utc();
//! let grant = Grant {
//!     token_type: AccessTokenType::Opaque,
//!     user_id: UserId::generate()?,
//!     client_id: Username::new("billing-job")?,
//!     scopes: "openid".parse()?,
//!     audience: vec!["billing-job".into()],
//!     roles: Default::default(),
//!     resource_owner: None,
//!     issued_at: now,
//!     expires_at: now + Duration::hours(12),
//! };
//! let minted = minter.mint(&grant)?;
//! let record = minted.record.expect("opaque tokens have a record");
//! assert_eq!(record.digest, TokenDigest::of(minted.token.expose()));
//! assert_eq!(format!("{:?}", minted.token), "AccessToken([redacted])");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod ecdsa;
mod jwt;
mod master;
mod ring;
mod signing;

use std::fmt;
use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use tessera_scope::ScopeSet;
use tessera_store::{
    AccessTokenType, Organization, RandomError, RoleClaims, StoreError, TOKEN_PREFIX_LEN,
    TokenDigest, TokenId, TokenRecord, UserId, Username, whole_seconds,
};

pub use jwt::{ACCESS_TOKEN_TYP, AccessTokenClaims, JwtHeaderType, VerifyError};
pub use master::MasterKey;
pub use ring::{JWKS_MAX_AGE_SECS, KeyManager, KeyRing, KeySet, RefreshReport, RotationPolicy};
pub use signing::{SigningKey, key_file_pem, pkcs8_pem};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Everything a token says: the outcome of a successful grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Opaque or JWT.
    pub token_type: AccessTokenType,
    /// The service user (`sub`).
    pub user_id: UserId,
    /// The client the token is issued to.
    pub client_id: Username,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The audience.
    pub audience: Vec<String>,
    /// The granted roles.
    pub roles: RoleClaims,
    /// The organization to name in a JWT's `urn:zitadel:iam:user:resourceowner:*`
    /// claims, when the resource owner scope was granted.
    pub resource_owner: Option<Organization>,
    /// Issue time, best given exactly: the token's times are whole seconds, and an
    /// opaque token leads with the milliseconds, so that records issued together
    /// sort together (see [`TokenDigest`]).
    pub issued_at: OffsetDateTime,
    /// Expiry; truncated to whole seconds in the token.
    pub expires_at: OffsetDateTime,
}

/// An access token in clear, as handed to the client. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// The token as sent on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest under which the token's record is stored.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// A freshly minted token.
#[derive(Debug)]
pub struct MintedToken {
    /// The token for the client.
    pub token: AccessToken,
    /// Its unique id.
    pub jti: TokenId,
    /// When it expires (whole seconds).
    pub expires_at: OffsetDateTime,
    /// The record to persist before the token is handed out; `None` for
    /// self-contained tokens that need no record.
    pub record: Option<TokenRecord>,
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The operating system's random number generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A JWT was asked for, but the minter has no signing key.
    #[error("JWT access tokens are not configured: no signing key")]
    NoSigningKey,
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random number generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A cryptographic operation failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// A stored private key does not parse.
    #[error("signing key {kid} is not a valid private key")]
    InvalidKey {
        /// The key id.
        kid: String,
    },
    /// A stored private key cannot be decrypted: the master key is not the one it
    /// was sealed with, or the stored bytes were altered.
    #[error(
        "signing key {kid} cannot be decrypted: the master key differs from the one it was sealed with, or the stored key was altered"
    )]
    Unseal {
        /// The key id.
        kid: String,
    },
    /// A master key that is not 32 bytes of base64.
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    /// The master key file cannot be used.
    #[error("master key file {}: {reason}", path.display())]
    MasterKeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("signing key storage failed")]
    Store(#[from] StoreError),
}

/// Mints access tokens.
#[derive(Debug, Clone)]
pub struct TokenMinter {
    issuer: String,
    keys: Option<Arc<KeyRing>>,
    jwt_type: JwtHeaderType,
}

impl TokenMinter {
    /// A minter for tokens issued by `issuer` (the `iss` of JWT tokens), without
    /// signing keys: it mints opaque tokens only until [`with_keys`](Self::with_keys).
    ///
    /// The first minter of a process also sets up the random generator (a one-time
    /// cost of tens of milliseconds, gathering entropy), so that the first token
    /// request does not pay for it.
    pub fn new(issuer: impl Into<String>) -> Self {
        static RANDOM_READY: std::sync::Once = std::sync::Once::new();
        // A generator that fails here fails again, and is reported, when minting.
        RANDOM_READY.call_once(|| drop(token_random::<16>()));
        Self { issuer: issuer.into(), keys: None, jwt_type: JwtHeaderType::default() }
    }

    /// Signs JWT access tokens with the current key of `ring`.
    pub fn with_keys(mut self, ring: Arc<KeyRing>) -> Self {
        self.keys = Some(ring);
        self
    }

    /// Writes `jwt_type` in the `typ` header of JWT access tokens: `at+jwt` (RFC 9068,
    /// the default) or `JWT`, for validators written for ZITADEL's tokens.
    pub fn with_jwt_type(mut self, jwt_type: JwtHeaderType) -> Self {
        self.jwt_type = jwt_type;
        self
    }

    /// The `typ` header of JWT access tokens.
    pub fn jwt_type(&self) -> JwtHeaderType {
        self.jwt_type
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing keys, if the minter has any.
    pub fn keys(&self) -> Option<&Arc<KeyRing>> {
        self.keys.as_ref()
    }

    /// Mints a token for `grant`, in the format the grant asks for.
    pub fn mint(&self, grant: &Grant) -> Result<MintedToken, MintError> {
        match grant.token_type {
            AccessTokenType::Opaque => mint_opaque(grant),
            AccessTokenType::Jwt => self.mint_jwt(grant),
        }
    }

    /// A JWT expires with the grant, but no later than the ring's longest token
    /// lifetime, so that its key is still published when it expires.
    fn mint_jwt(&self, grant: &Grant) -> Result<MintedToken, MintError> {
        let ring = self.keys.as_ref().ok_or(MintError::NoSigningKey)?;
        let issued_at = whole_seconds(grant.issued_at);
        let set = ring.key_set();
        let key = set.signing_key(issued_at).ok_or(MintError::NoSigningKey)?;
        let expires_at = whole_seconds(grant.expires_at).min(issued_at + ring.max_token_lifetime());
        let jti = new_jti()?;
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: grant.user_id.to_string(),
            aud: grant.audience.clone(),
            exp: expires_at.unix_timestamp(),
            iat: issued_at.unix_timestamp(),
            nbf: issued_at.unix_timestamp(),
            jti: jti.to_string(),
            client_id: grant.client_id.to_string(),
            scope: grant.scopes.to_string(),
            roles: grant.roles.clone(),
            resource_owner_id: grant.resource_owner.as_ref().map(|o| o.id.to_string()),
            resource_owner_name: grant.resource_owner.as_ref().map(|o| o.name.to_string()),
            resource_owner_primary_domain: grant
                .resource_owner
                .as_ref()
                .map(|o| o.primary_domain.to_string()),
        };
        let token = jwt::encode(key, self.jwt_type, &claims)?;
        Ok(MintedToken { token: AccessToken(Zeroizing::new(token)), jti, expires_at, record: None })
    }
}

/// `N` random bytes for a token or its id, from AWS-LC's generator: a DRBG seeded
/// and periodically reseeded from the operating system, with a state per thread
/// and fork detection. One call per token replaces a system call per value.
fn token_random<const N: usize>() -> Result<Zeroizing<[u8; N]>, RandomError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(&mut bytes[..]).map_err(|_| RandomError)?;
    Ok(bytes)
}

/// A new token id: 128 random bits.
fn new_jti() -> Result<TokenId, RandomError> {
    Ok(TokenId::from_random(&*token_random::<16>()?))
}

fn mint_opaque(grant: &Grant) -> Result<MintedToken, MintError> {
    // The token's random part (256 bits) and its id (128 bits) from one draw; the
    // token leads with its issue time in milliseconds (see `TokenDigest`).
    let mut bytes = token_random::<{ TOKEN_PREFIX_LEN + 48 }>()?;
    let millis = u64::try_from(grant.issued_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    bytes[..TOKEN_PREFIX_LEN].copy_from_slice(&TokenDigest::prefix_at(millis));
    let (token, id) = bytes.split_at(TOKEN_PREFIX_LEN + 32);
    let token = AccessToken(Zeroizing::new(Base64UrlUnpadded::encode_string(token)));
    let jti = TokenId::from_random(id.try_into().map_err(|_| RandomError)?);
    let expires_at = whole_seconds(grant.expires_at);
    let record = TokenRecord {
        digest: token.digest(),
        jti: jti.clone(),
        user_id: grant.user_id.clone(),
        client_id: grant.client_id.clone(),
        scopes: grant.scopes.clone(),
        audience: grant.audience.clone(),
        roles: grant.roles.clone(),
        issued_at: whole_seconds(grant.issued_at),
        expires_at,
        revoked_at: None,
    };
    Ok(MintedToken { token, jti, expires_at, record: Some(record) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::OPAQUE_TOKEN_LEN;
    use time::Duration;

    fn grant(token_type: AccessTokenType) -> Grant {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_400_000_000)
            .unwrap_or_else(|e| panic!("{e}"));
        Grant {
            token_type,
            user_id: UserId::generate().unwrap_or_else(|e| panic!("{e}")),
            client_id: Username::new("svc").unwrap_or_else(|e| panic!("{e}")),
            scopes: ScopeSet::parse("openid profile").unwrap_or_else(|e| panic!("{e}")),
            audience: vec!["svc".into()],
            roles: RoleClaims::default(),
            resource_owner: None,
            issued_at: at,
            expires_at: at + Duration::hours(12),
        }
    }

    #[test]
    fn opaque_tokens_are_random_256_bit_base64url() -> Result<(), MintError> {
        let minter = TokenMinter::new("http://issuer");
        let a = minter.mint(&grant(AccessTokenType::Opaque))?;
        let b = minter.mint(&grant(AccessTokenType::Opaque))?;
        assert_ne!(a.token, b.token);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.token.expose().len(), OPAQUE_TOKEN_LEN);
        let raw = Base64UrlUnpadded::decode_vec(a.token.expose()).unwrap_or_default();
        assert_eq!(raw.len(), TOKEN_PREFIX_LEN + 32);
        // The issue time in milliseconds, then the random part.
        let millis =
            (grant(AccessTokenType::Opaque).issued_at.unix_timestamp_nanos() / 1_000_000) as u64;
        assert_eq!(raw[..TOKEN_PREFIX_LEN], millis.to_be_bytes()[2..]);
        let raw_b = Base64UrlUnpadded::decode_vec(b.token.expose()).unwrap_or_default();
        assert_ne!(raw[TOKEN_PREFIX_LEN..], raw_b[TOKEN_PREFIX_LEN..]);
        assert_eq!(a.record.as_ref().map(|r| r.digest), Some(TokenDigest::of(a.token.expose())));
        Ok(())
    }

    #[test]
    fn opaque_record_matches_grant_in_whole_seconds() -> Result<(), MintError> {
        let g = grant(AccessTokenType::Opaque);
        let minted = TokenMinter::new("http://issuer").mint(&g)?;
        let record = minted.record.clone();
        let record = record.unwrap_or_else(|| panic!("opaque token without record"));
        assert_eq!(record.digest, TokenDigest::of(minted.token.expose()));
        assert_eq!(record.jti, minted.jti);
        assert_eq!(record.scopes, g.scopes);
        assert_eq!(record.issued_at.unix_timestamp(), 1_700_000_000);
        assert_eq!(record.issued_at.nanosecond(), 0);
        assert_eq!(record.expires_at.unix_timestamp(), 1_700_000_000 + 43_200);
        assert_eq!(minted.expires_at, record.expires_at);
        assert!(!format!("{minted:?}").contains(minted.token.expose()));
        Ok(())
    }

    #[test]
    fn jwt_without_key_is_an_error() {
        let err = TokenMinter::new("http://issuer").mint(&grant(AccessTokenType::Jwt));
        assert!(matches!(err, Err(MintError::NoSigningKey)));
    }
}
