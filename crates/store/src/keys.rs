use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ids::IdError;

/// The asymmetric algorithms Tessera signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256 (the default).
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
    /// Ed25519 (EdDSA).
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, in a stable order.
    pub const ALL: [SigningAlgorithm; 3] =
        [SigningAlgorithm::Es256, SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa];

    /// The JWA name (`alg` header value).
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = IdError;

    /// Accepts the JWA names, case-insensitively (`ES256`, `RS256`, `EdDSA`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s)).ok_or(
            IdError::Character { what: "signing algorithm", allowed: "ES256, RS256 or EdDSA" },
        )
    }
}

/// A token signing key as stored: the public key in clear, the private key
/// encrypted with the deployment's master key.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SigningKeyRecord {
    /// Key id (`kid`), unique.
    pub kid: String,
    /// The algorithm the key signs with.
    pub algorithm: SigningAlgorithm,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// The private key (PKCS#8), sealed with the master key; opaque to the store.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_forms::base64url"))]
    pub sealed_private_key: Vec<u8>,
    /// When the key was created (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When the key starts signing (whole seconds); it is published from creation.
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub activates_at: OffsetDateTime,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// Storage of token signing keys, shared by every server instance on one backend.
/// Only self-contained (JWT) access tokens need it: a backend that issues opaque
/// tokens alone implements [`IssuingStore`](crate::IssuingStore) without it.
///
/// Contract, checked by the conformance suite:
///
/// - [`signing_keys`](Self::signing_keys) returns every key ordered by
///   `activates_at`, then `kid`.
/// - [`insert_signing_key`](Self::insert_signing_key) is a compare-and-insert: it
///   stores the key only if the newest stored key (last in that order) has the id
///   `expected_latest` (`None`: the store holds no key), atomically. Of several
///   instances racing to rotate from the same newest key, exactly one succeeds; the
///   others get `false` and reload. A duplicate `kid` is [`StoreError::Conflict`].
/// - [`delete_signing_key`](Self::delete_signing_key) is idempotent: it returns
///   whether the key existed.
/// - Stored times are whole seconds.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every stored key, oldest activation first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Stores `key` if the newest stored key is `expected_latest`; returns whether it did.
    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Deletes the key `kid`; returns whether it existed.
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlgorithm>(), Ok(alg));
        }
        assert_eq!("eddsa".parse::<SigningAlgorithm>(), Ok(SigningAlgorithm::EdDsa));
        assert!("HS256".parse::<SigningAlgorithm>().is_err());
        assert!("none".parse::<SigningAlgorithm>().is_err());
    }
}
