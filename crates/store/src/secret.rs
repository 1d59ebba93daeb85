use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use rand_core::{OsRng, TryRngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

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
        let dummy = Self([0x5a; 32]);
        let _ = dummy.verify(presented);
        false
    }
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
