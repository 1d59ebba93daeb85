use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use rand_core::{OsRng, TryRngCore};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::credentials::PreviousSecret;

/// The operating system's random number generator failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// `N` bytes from the operating system's random number generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    OsRng.try_fill_bytes(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes)
}

/// Why a provided secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Shorter than [`ClientSecret::MIN_LEN`] characters.
    #[error("a client secret must be at least {min} characters long")]
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// Longer than [`ClientSecret::MAX_LEN`] bytes.
    #[error("a client secret must be at most {max} bytes long")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
}

/// A client secret in clear. It exists only between generation and the moment it
/// is shown to the operator; `Debug` prints `[redacted]` and the memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// The shortest secret accepted from an operator (for example in a bootstrap file).
    pub const MIN_LEN: usize = 32;
    /// The longest secret accepted.
    pub const MAX_LEN: usize = 1024;

    /// A new secret: 256 bits from the operating system's random number generator,
    /// base64url-encoded (43 characters).
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = Zeroizing::new(random_bytes::<32>()?);
        Ok(Self(Zeroizing::new(Base64UrlUnpadded::encode_string(&bytes[..]))))
    }

    /// A secret chosen by an operator: at least [`Self::MIN_LEN`] characters.
    pub fn provided(value: &str) -> Result<Self, SecretError> {
        if value.chars().count() < Self::MIN_LEN {
            return Err(SecretError::TooShort { min: Self::MIN_LEN });
        }
        if value.len() > Self::MAX_LEN {
            return Err(SecretError::TooLong { max: Self::MAX_LEN });
        }
        Ok(Self(Zeroizing::new(value.to_owned())))
    }

    /// The secret in clear, to show it once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// The salted digest of a client secret: the only form in which a secret is stored.
///
/// It holds a random 16-byte salt, drawn for each digest, and
/// `SHA-256(salt ‖ SHA-256(secret))`: 48 bytes, salt first ([`as_bytes`](Self::as_bytes)).
/// Two clients with the same secret (or one client given the same secret twice) store
/// different digests, so a leaked database shows neither that two secrets are equal nor
/// the digest of a known secret (such as one copied from an example).
///
/// Secrets are generated with 256 bits of entropy (or required to be long when an
/// operator provides one), so a fast hash is enough: nobody can search that space.
/// The inner SHA-256 is what earlier releases stored, unsalted; hashing it again
/// with a salt lets an upgrade salt a stored digest without knowing the secret
/// ([`from_unsalted`](Self::from_unsalted)).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; SecretDigest::LEN]);

impl SecretDigest {
    /// The length of a salt, in bytes.
    pub const SALT_LEN: usize = 16;
    /// The length of a stored digest, in bytes: the salt, then the 32 bytes of the hash.
    pub const LEN: usize = Self::SALT_LEN + 32;

    /// The digest of `secret`, with a fresh salt from the operating system's random
    /// number generator.
    pub fn of(secret: &ClientSecret) -> Result<Self, RandomError> {
        Ok(Self::with_salt(random_bytes()?, secret))
    }

    /// The digest of `secret` with the given salt. Use [`Self::of`], which draws a
    /// fresh one: a salt must not be reused.
    pub fn with_salt(salt: [u8; Self::SALT_LEN], secret: &ClientSecret) -> Self {
        Self::from_unsalted_with_salt(salt, &unsalted(secret.expose()))
    }

    /// Salts the unsalted digest of a secret (its SHA-256, the form earlier releases
    /// stored) with a fresh salt: the result verifies the same secret, which need not
    /// be known. What the schema migrations do to every stored digest.
    pub fn from_unsalted(unsalted: &[u8; 32]) -> Result<Self, RandomError> {
        Ok(Self::from_unsalted_with_salt(random_bytes()?, unsalted))
    }

    /// Like [`Self::from_unsalted`], with the given salt.
    pub fn from_unsalted_with_salt(salt: [u8; Self::SALT_LEN], unsalted: &[u8; 32]) -> Self {
        let mut bytes = [0u8; Self::LEN];
        bytes[..Self::SALT_LEN].copy_from_slice(&salt);
        bytes[Self::SALT_LEN..].copy_from_slice(&salted(&salt, unsalted));
        Self(bytes)
    }

    /// Wraps a stored digest: the salt followed by the hash ([`Self::as_bytes`]).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes, to store them: the salt followed by the hash.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The salt.
    pub fn salt(&self) -> &[u8; Self::SALT_LEN] {
        self.0.first_chunk().unwrap_or(&[0; Self::SALT_LEN])
    }

    /// The hash, `SHA-256(salt ‖ SHA-256(secret))`.
    fn hash(&self) -> &[u8; 32] {
        self.0.last_chunk().unwrap_or(&[0; 32])
    }

    /// Whether the unsalted digest `unsalted` (the SHA-256 of a presented secret)
    /// matches, compared in constant time.
    fn matches_unsalted(&self, unsalted: &[u8; 32]) -> Choice {
        self.hash().ct_eq(&salted(self.salt(), unsalted))
    }

    /// Whether `presented` is the secret behind this digest, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        self.matches_unsalted(&unsalted(presented)).into()
    }

    /// Spends the same work as [`Self::verify`] and fails; used when there is no
    /// digest to compare with, so that an unknown client takes as long as a wrong secret.
    pub fn verify_nothing(presented: &str) -> bool {
        let _ = DUMMY_DIGEST.verify(presented);
        false
    }
}

/// `SHA-256(secret)`: what earlier releases stored, and the inner hash of a
/// [`SecretDigest`].
fn unsalted(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// `SHA-256(salt ‖ unsalted)`.
fn salted(salt: &[u8; SecretDigest::SALT_LEN], unsalted: &[u8; 32]) -> [u8; 32] {
    Sha256::new().chain_update(salt).chain_update(unsalted).finalize().into()
}

/// What a missing digest is compared with, so that the work stays the same.
const DUMMY_DIGEST: SecretDigest = SecretDigest([0x5a; SecretDigest::LEN]);

/// Whether `presented` is a client's `current` secret, or its `previous` secret and
/// `now` is before that one's expiry.
///
/// The work does not depend on the outcome, nor on which digests exist: the
/// presented secret is hashed once, that hash is hashed again with the salt of each
/// of two digests (a fixed dummy stands in for a missing one) and compared with it
/// in constant time, and the results are combined without returning early. With
/// neither digest (an unknown client) it spends the same work and fails.
///
/// ```
/// use tessera_store::{ClientSecret, PreviousSecret, SecretDigest, verify_secrets};
/// use time::{Duration, OffsetDateTime};
///
/// let (old, new) = (ClientSecret::generate()?, ClientSecret::generate()?);
/// let now = OffsetDateTime::now_utc();
/// let current = SecretDigest::of(&new)?;
/// let previous = PreviousSecret::new(SecretDigest::of(&old)?, now + Duration::minutes(5));
/// assert!(verify_secrets(Some(&current), Some(&previous), old.expose(), now));
/// assert!(verify_secrets(Some(&current), Some(&previous), new.expose(), now));
/// let later = now + Duration::minutes(6);
/// assert!(!verify_secrets(Some(&current), Some(&previous), old.expose(), later));
/// assert!(!verify_secrets(None, None, new.expose(), now));
/// # Ok::<(), tessera_store::RandomError>(())
/// ```
pub fn verify_secrets(
    current: Option<&SecretDigest>,
    previous: Option<&PreviousSecret>,
    presented: &str,
    now: OffsetDateTime,
) -> bool {
    let candidate = unsalted(presented);
    let current_known = Choice::from(u8::from(current.is_some()));
    let current_digest = current.unwrap_or(&DUMMY_DIGEST);
    // Expiry times are not secret; only the digest comparisons must not leak.
    let previous_live = Choice::from(u8::from(previous.is_some_and(|p| p.is_valid_at(now))));
    let previous_digest = previous.map_or(&DUMMY_DIGEST, |p| &p.digest);
    let current_ok = current_known & current_digest.matches_unsalted(&candidate);
    let previous_ok = previous_live & previous_digest.matches_unsalted(&candidate);
    (current_ok | previous_ok).into()
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_distinct_and_verifiable() -> Result<(), RandomError> {
        let a = ClientSecret::generate()?;
        let b = ClientSecret::generate()?;
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        let digest = SecretDigest::of(&a)?;
        assert!(digest.verify(a.expose()));
        assert!(!digest.verify(b.expose()));
        assert!(!digest.verify(""));
        assert_eq!(SecretDigest::from_bytes(*digest.as_bytes()), digest);
        Ok(())
    }

    #[test]
    fn each_digest_has_a_salt_of_its_own() -> Result<(), Box<dyn std::error::Error>> {
        let secret = ClientSecret::provided(&"s".repeat(32))?;
        let (a, b) = (SecretDigest::of(&secret)?, SecretDigest::of(&secret)?);
        assert_ne!(a, b, "one secret, two digests");
        assert_ne!(a.salt(), b.salt());
        assert!(a.verify(secret.expose()) && b.verify(secret.expose()));
        // The stored form: the salt, then SHA-256(salt ‖ SHA-256(secret)).
        let inner: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        let outer: [u8; 32] =
            Sha256::new().chain_update(a.salt()).chain_update(inner).finalize().into();
        assert_eq!(a.as_bytes()[..16], a.salt()[..]);
        assert_eq!(a.as_bytes()[16..], outer[..]);
        assert!(!a.as_bytes().windows(32).any(|w| w == inner), "the unsalted digest is not stored");
        assert_eq!(SecretDigest::with_salt(*a.salt(), &secret), a);
        Ok(())
    }

    #[test]
    fn an_unsalted_digest_is_salted_without_the_secret() -> Result<(), Box<dyn std::error::Error>> {
        let secret = ClientSecret::provided(&"s".repeat(32))?;
        let other = ClientSecret::provided(&"t".repeat(32))?;
        let unsalted: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        let (a, b) =
            (SecretDigest::from_unsalted(&unsalted)?, SecretDigest::from_unsalted(&unsalted)?);
        assert_ne!(a, b, "a salt of its own each time");
        for digest in [a, b] {
            assert!(digest.verify(secret.expose()));
            assert!(!digest.verify(other.expose()));
            assert_eq!(SecretDigest::with_salt(*digest.salt(), &secret), digest);
            assert_eq!(SecretDigest::from_unsalted_with_salt(*digest.salt(), &unsalted), digest);
        }
        Ok(())
    }

    #[test]
    fn nothing_to_compare_with_always_fails() {
        assert!(!SecretDigest::verify_nothing(""));
        assert!(!SecretDigest::verify_nothing("anything"));
    }

    #[test]
    fn verify_secrets_accepts_current_and_live_previous() -> Result<(), RandomError> {
        let (old, new, other) =
            (ClientSecret::generate()?, ClientSecret::generate()?, ClientSecret::generate()?);
        let t = |secs| OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|e| panic!("{e}"));
        let current = SecretDigest::of(&new)?;
        let previous = PreviousSecret::new(SecretDigest::of(&old)?, t(100));
        let check = |secret: &ClientSecret, prev: Option<&PreviousSecret>, now| {
            verify_secrets(Some(&current), prev, secret.expose(), now)
        };
        assert!(check(&new, Some(&previous), t(50)));
        assert!(check(&new, Some(&previous), t(500)), "the current secret does not expire");
        assert!(check(&new, None, t(50)));
        assert!(check(&old, Some(&previous), t(99)));
        assert!(!check(&old, Some(&previous), t(100)), "the previous one stops at its expiry");
        assert!(!check(&old, None, t(50)));
        assert!(!check(&other, Some(&previous), t(50)));
        assert!(verify_secrets(None, Some(&previous), old.expose(), t(50)), "previous alone");
        assert!(!verify_secrets(None, None, "", t(50)));
        // The dummy never matches, even for a presented secret hashing to nothing known.
        assert!(!verify_secrets(None, None, new.expose(), t(50)));
        Ok(())
    }

    #[test]
    fn provided_secrets_must_be_long() {
        assert_eq!(ClientSecret::provided("short"), Err(SecretError::TooShort { min: 32 }));
        assert!(ClientSecret::provided(&"x".repeat(32)).is_ok());
        assert!(ClientSecret::provided(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() -> Result<(), RandomError> {
        let secret = ClientSecret::generate()?;
        let debug = format!("{secret:?} {:?}", SecretDigest::of(&secret)?);
        assert!(!debug.contains(secret.expose()));
        assert_eq!(debug, "ClientSecret([redacted]) SecretDigest([redacted])");
        Ok(())
    }
}
