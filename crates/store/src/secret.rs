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

/// The SHA-256 digest of a client secret: the only form in which a secret is stored.
///
/// Secrets are generated with 256 bits of entropy (or required to be long when an
/// operator provides one), so a fast hash is enough: nobody can search that space.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &ClientSecret) -> Self {
        Self::of_str(secret.expose())
    }

    fn of_str(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps a stored digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes, to store them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is the secret behind this digest, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let candidate = Self::of_str(presented);
        self.0.ct_eq(&candidate.0).into()
    }

    /// Spends the same work as [`Self::verify`] and fails; used when there is no
    /// digest to compare with, so that an unknown client takes as long as a wrong secret.
    pub fn verify_nothing(presented: &str) -> bool {
        let dummy = Self(DUMMY_DIGEST);
        let _ = dummy.verify(presented);
        false
    }
}

/// What a missing digest is compared with, so that the work stays the same.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

/// Whether `presented` is a client's `current` secret, or its `previous` secret and
/// `now` is before that one's expiry.
///
/// The work does not depend on the outcome, nor on which digests exist: the
/// presented secret is hashed once and compared, in constant time, with two digests
/// (a fixed dummy stands in for a missing one), and the results are combined without
/// returning early. With neither digest (an unknown client) it spends the same work
/// and fails.
///
/// ```
/// use tessera_store::{ClientSecret, PreviousSecret, SecretDigest, verify_secrets};
/// use time::{Duration, OffsetDateTime};
///
/// let (old, new) = (ClientSecret::generate()?, ClientSecret::generate()?);
/// let now = OffsetDateTime::now_utc();
/// let current = SecretDigest::of(&new);
/// let previous = PreviousSecret::new(SecretDigest::of(&old), now + Duration::minutes(5));
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
    let candidate = SecretDigest::of_str(presented);
    let dummy = SecretDigest(DUMMY_DIGEST);
    let current_known = Choice::from(u8::from(current.is_some()));
    let current_digest = current.unwrap_or(&dummy);
    // Expiry times are not secret; only the digest comparisons must not leak.
    let previous_live = Choice::from(u8::from(previous.is_some_and(|p| p.is_valid_at(now))));
    let previous_digest = previous.map_or(&dummy, |p| &p.digest);
    let current_ok = current_known & current_digest.0.ct_eq(&candidate.0);
    let previous_ok = previous_live & previous_digest.0.ct_eq(&candidate.0);
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
        let digest = SecretDigest::of(&a);
        assert!(digest.verify(a.expose()));
        assert!(!digest.verify(b.expose()));
        assert!(!digest.verify(""));
        assert_eq!(SecretDigest::from_bytes(*digest.as_bytes()), digest);
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
        let current = SecretDigest::of(&new);
        let previous = PreviousSecret::new(SecretDigest::of(&old), t(100));
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
        let debug = format!("{secret:?} {:?}", SecretDigest::of(&secret));
        assert!(!debug.contains(secret.expose()));
        assert_eq!(debug, "ClientSecret([redacted]) SecretDigest([redacted])");
        Ok(())
    }
}
