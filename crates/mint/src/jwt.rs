//! RFC 9068 JWT access tokens: claims, compact encoding, and verification.

use base64ct::{Base64UrlUnpadded, Encoding};
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tessera_store::RoleClaims;
use time::OffsetDateTime;

use crate::KeyError;
use crate::signing::SigningKey;

/// The media type of JWT access tokens, in the `typ` header (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The `typ` header of JWT access tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtHeaderType {
    /// `at+jwt`, the media type of RFC 9068 §2.1: the default.
    #[default]
    AtJwt,
    /// `JWT`, as ZITADEL writes it, for validators that expect ZITADEL's tokens.
    Jwt,
}

impl JwtHeaderType {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtHeaderType::AtJwt => ACCESS_TOKEN_TYP,
            JwtHeaderType::Jwt => "JWT",
        }
    }

    /// The type a header value names, if it is one of these.
    pub fn from_header(typ: &str) -> Option<Self> {
        match typ {
            ACCESS_TOKEN_TYP => Some(JwtHeaderType::AtJwt),
            "JWT" => Some(JwtHeaderType::Jwt),
            _ => None,
        }
    }
}

impl std::str::FromStr for JwtHeaderType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_header(s).ok_or_else(|| format!("{s:?} is not at+jwt or JWT"))
    }
}

impl std::fmt::Display for JwtHeaderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a Tessera JWT access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The service user's id.
    pub sub: String,
    /// Audience: project ids, or the client ID when the token names no project.
    pub aud: Vec<String>,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issue time (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds); equal to `iat`.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Granted roles: role → organization id → organization primary domain (absent
    /// when none).
    #[serde(
        rename = "urn:zitadel:iam:org:project:roles",
        default,
        skip_serializing_if = "RoleClaims::is_empty"
    )]
    pub roles: RoleClaims,
    /// The id of the organization owning the user (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_id: Option<String>,
    /// The organization's name (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_name: Option<String>,
    /// The organization's primary domain (with the resource owner scope).
    #[serde(
        rename = "urn:zitadel:iam:user:resourceowner:primary_domain",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_owner_primary_domain: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Encodes and signs `claims` as a compact JWS with the `typ` header `typ`.
pub(crate) fn encode(
    key: &SigningKey,
    typ: JwtHeaderType,
    claims: &AccessTokenClaims,
) -> Result<String, KeyError> {
    let header = Header { alg: key.algorithm().as_str(), typ: typ.as_str(), kid: key.kid() };
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Crypto("header encoding"))?;
    let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Crypto("claims encoding"))?;
    let mut token = String::with_capacity(header.len() * 2 + claims.len() * 2 + 360);
    token.push_str(&Base64UrlUnpadded::encode_string(&header));
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(&claims));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&Base64UrlUnpadded::encode_string(&signature));
    Ok(token)
}

/// Why a JWT access token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWT, or its header or claims do not parse.
    #[error("malformed token")]
    Malformed,
    /// The `typ` header is neither `at+jwt` nor `JWT`.
    #[error("not an access token (typ)")]
    WrongType,
    /// No published key has this `kid`, or the algorithm does not match the key.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Issued by another issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Expired, or not yet valid.
    #[error("expired or not yet valid")]
    Expired,
}

/// A published key in the form verification needs.
pub(crate) struct Verifier {
    pub(crate) decoding: DecodingKey,
    pub(crate) validation: Validation,
}

impl Verifier {
    pub(crate) fn new(key: &SigningKey) -> Result<Self, KeyError> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone())
            .map_err(|_| KeyError::InvalidKey { kid: key.kid().to_owned() })?;
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|_| KeyError::InvalidKey { kid: key.kid().to_owned() })?;
        let algorithm = match key.algorithm().as_str() {
            "RS256" => jsonwebtoken::Algorithm::RS256,
            "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
            _ => jsonwebtoken::Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        // Time and issuer are checked by the caller against its own clock and issuer.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Self { decoding, validation })
    }
}

/// Checks the time claims of verified `claims` at `now`.
pub(crate) fn check_time(
    claims: &AccessTokenClaims,
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let now = now.unix_timestamp();
    if now >= claims.exp || now < claims.nbf {
        return Err(VerifyError::Expired);
    }
    Ok(())
}
