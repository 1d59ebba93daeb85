//! JWT assertions signed with a client's key (RFC 7523): the jwt-bearer grant
//! (§2.1) and `private_key_jwt` client authentication (§2.2).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde::{Deserialize, Deserializer};
use tessera_mint::ecdsa;
use tessera_store::{ClientKey, KeyOwner, SigningAlgorithm};
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::error::{ErrorCode, OAuthError};
use crate::paths::{INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH};

use super::tokens::{Caller, MAX_TOKEN_LEN};
use super::{Issuer, store_error};

/// The `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The longest an assertion may be valid: `exp` at most this far ahead, in seconds.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// The clock difference tolerated for `iat` and `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// The algorithms accepted for assertions: asymmetric only.
pub const ASSERTION_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// What an assertion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssertionUse {
    /// The jwt-bearer grant: a bad assertion is `invalid_grant`.
    Grant,
    /// Client authentication: a bad assertion is `invalid_client`.
    ClientAuth,
}

/// Why an assertion was refused. Only the short description reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the assertion is malformed")]
    Malformed,
    #[error("the assertion's algorithm is not accepted")]
    Algorithm,
    #[error("the assertion's key is unknown, removed or expired")]
    Key,
    #[error("the assertion's signature does not verify")]
    Signature,
    #[error("the assertion's ECDSA signature is not canonical (high s)")]
    HighS,
    #[error("the assertion has no jti")]
    NoJti,
    #[error("the assertion's issuer or subject does not match its key")]
    Subject,
    #[error("the assertion's audience does not name this server")]
    Audience,
    #[error("the assertion has expired or is not yet valid")]
    Time,
    #[error("the assertion is valid for too long")]
    TooLong,
    #[error("the assertion was used before")]
    Replay,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    aud: Vec<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl Issuer {
    /// Verifies a client assertion and returns the client it names. Checks, in order:
    /// an accepted asymmetric algorithm, the registered key named by `kid` (present,
    /// not expired, of that algorithm), the signature (for ES256, canonical: low `s`),
    /// `iss` and `sub` naming the key's owner (user id or client ID), `aud` naming
    /// this server, `exp` (required, at most an hour ahead), `iat` and `nbf` (with a
    /// minute of skew), and finally replay: an assertion with a `jti` is single use
    /// (the pair of its owner and `jti` is recorded in the store until `exp`, so a
    /// replay fails on every instance); one without a `jti` is accepted until its
    /// `exp`, as ZITADEL accepts it, unless the [`AssertionPolicy`] requires a `jti`.
    ///
    /// [`AssertionPolicy`]: crate::AssertionPolicy
    pub(crate) async fn verify_assertion(
        &self,
        assertion: &str,
        expected_client: Option<&str>,
        usage: AssertionUse,
    ) -> Result<Caller, OAuthError> {
        match self.check_assertion(assertion, expected_client, usage).await {
            Ok(caller) => Ok(caller),
            Err(Ok(refusal)) => {
                let reason = refusal.to_string();
                self.audit(&AuditEvent::AssertionRejected {
                    usage: match usage {
                        AssertionUse::Grant => "Grant",
                        AssertionUse::ClientAuth => "ClientAuth",
                    },
                    reason: &reason,
                });
                Err(match usage {
                    AssertionUse::Grant => OAuthError::new(ErrorCode::InvalidGrant, reason),
                    AssertionUse::ClientAuth => OAuthError::invalid_client(),
                })
            }
            Err(Err(error)) => Err(error),
        }
    }

    /// `Err(Ok(refusal))` for a bad assertion, `Err(Err(error))` for a server failure.
    async fn check_assertion(
        &self,
        assertion: &str,
        expected_client: Option<&str>,
        usage: AssertionUse,
    ) -> Result<Caller, Result<Refusal, OAuthError>> {
        if assertion.is_empty() || assertion.len() > MAX_TOKEN_LEN {
            return Err(Ok(Refusal::Malformed));
        }
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| Ok(Refusal::Malformed))?;
        let algorithm = match header.alg {
            Algorithm::RS256 => SigningAlgorithm::Rs256,
            Algorithm::ES256 => SigningAlgorithm::Es256,
            Algorithm::EdDSA => SigningAlgorithm::EdDsa,
            _ => return Err(Ok(Refusal::Algorithm)),
        };
        let kid = header.kid.as_deref().ok_or(Ok(Refusal::Key))?;
        let now = self.clock().now();
        let key = self.store().client_key(kid).await.map_err(|e| Err(store_error(e)))?;
        let key = key.filter(|k| k.is_valid_at(now)).ok_or(Ok(Refusal::Key))?;
        if key.algorithm != algorithm {
            return Err(Ok(Refusal::Algorithm));
        }
        let claims = decode(assertion, &key, header.alg)?;
        if header.alg == Algorithm::ES256 && !ecdsa::jws_has_low_s(assertion) {
            return Err(Ok(Refusal::HighS));
        }

        let caller = self.owner(&key).await.map_err(Err)?.ok_or(Ok(Refusal::Key))?;
        let names_owner = |name: &Option<String>| {
            name.as_deref().is_some_and(|n| match &caller {
                Caller::ServiceUser(user) => n == user.id.as_str() || n == user.username.as_str(),
                Caller::ApiApp(app) => n == app.client_id.as_str(),
            })
        };
        let client_matches = expected_client.is_none_or(|c| names_owner(&Some(c.to_owned())));
        if !names_owner(&claims.iss) || !names_owner(&claims.sub) || !client_matches {
            return Err(Ok(Refusal::Subject));
        }
        if usage == AssertionUse::Grant && !matches!(caller, Caller::ServiceUser(_)) {
            return Err(Ok(Refusal::Subject));
        }
        if !claims.aud.iter().any(|a| self.is_own_audience(a)) {
            return Err(Ok(Refusal::Audience));
        }
        let now_secs = now.unix_timestamp();
        let exp = claims.exp.ok_or(Ok(Refusal::Time))?;
        if exp <= now_secs {
            return Err(Ok(Refusal::Time));
        }
        if exp > now_secs + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
            return Err(Ok(Refusal::TooLong));
        }
        let too_early = |t: Option<i64>| t.is_some_and(|t| t > now_secs + CLOCK_SKEW_SECS);
        if too_early(claims.iat) || too_early(claims.nbf) {
            return Err(Ok(Refusal::Time));
        }
        let jti = claims.jti.as_deref().filter(|jti| !jti.is_empty());
        let Some(jti) = jti else {
            if self.assertion_policy().require_jti {
                return Err(Ok(Refusal::NoJti));
            }
            return Ok(caller);
        };
        let expires_at = OffsetDateTime::from_unix_timestamp(exp).map_err(|_| Ok(Refusal::Time))?;
        let first = self
            .store()
            .use_assertion(&key.owner.to_key(), &format!("jti:{jti}"), expires_at)
            .await
            .map_err(|e| Err(store_error(e)))?;
        if !first {
            return Err(Ok(Refusal::Replay));
        }
        Ok(caller)
    }

    /// The enabled client that owns `key`, if it still exists.
    async fn owner(&self, key: &ClientKey) -> Result<Option<Caller>, OAuthError> {
        Ok(match &key.owner {
            KeyOwner::ServiceUser(id) => self
                .store()
                .service_user_by_id(id)
                .await
                .map_err(store_error)?
                .filter(|u| u.enabled)
                .map(Caller::ServiceUser),
            KeyOwner::ApiApp(id) => self
                .store()
                .api_app_by_client_id(id)
                .await
                .map_err(store_error)?
                .filter(|a| a.enabled)
                .map(Caller::ApiApp),
        })
    }

    /// Whether `audience` names this server: its issuer, or the URL of an endpoint
    /// that takes assertions.
    fn is_own_audience(&self, audience: &str) -> bool {
        let issuer = self.minter().issuer().trim_end_matches('/');
        let audience = audience.trim_end_matches('/');
        audience == issuer
            || [TOKEN_PATH, INTROSPECT_PATH, REVOKE_PATH]
                .iter()
                .any(|path| audience.strip_prefix(issuer) == Some(path))
    }
}

/// Verifies the signature with the registered public key and reads the claims; the
/// time claims are checked by the caller against the injected clock.
fn decode(
    assertion: &str,
    key: &ClientKey,
    alg: Algorithm,
) -> Result<Claims, Result<Refusal, OAuthError>> {
    let jwk: Jwk = serde_json::from_str(&key.public_jwk).map_err(|_| Ok(Refusal::Key))?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| Ok(Refusal::Key))?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(assertion, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Ok(Refusal::Signature),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Ok(Refusal::Algorithm),
            _ => Ok(Refusal::Malformed),
        })
}
