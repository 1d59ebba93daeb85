use std::fmt;
use std::str::FromStr;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::{RandomError, random_bytes};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty, or longer than the limit.
    #[error("{what} must be 1 to {max} characters long")]
    Length {
        /// Which identifier.
        what: &'static str,
        /// The longest allowed.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{what} may only contain {allowed}")]
    Character {
        /// Which identifier.
        what: &'static str,
        /// The allowed characters, in words.
        allowed: &'static str,
    },
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The name of a service user, which is also its OAuth client ID.
///
/// 1 to 128 characters from `A-Z a-z 0-9 . _ @ + -`. The set leaves out `:`,
/// so that clients which do not form-encode HTTP Basic credentials still work.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(Box<str>);

impl Username {
    /// The longest username.
    pub const MAX_LEN: usize = 128;

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "username";
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(IdError::Length {
                what: WHAT,
                max: Self::MAX_LEN,
            });
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
        {
            return Err(IdError::Character {
                what: WHAT,
                allowed: "A-Z a-z 0-9 . _ @ + -",
            });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(Username);

/// The stable identifier of a service user (the `sub` of its tokens): 18 decimal digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Box<str>);

impl UserId {
    /// A new random id.
    pub fn generate() -> Result<Self, RandomError> {
        let n = u64::from_le_bytes(random_bytes::<8>()?) % 900_000_000_000_000_000;
        Ok(Self(format!("{}", 100_000_000_000_000_000 + n).into()))
    }

    /// Checks `value` (1 to 64 characters from `A-Z a-z 0-9 - _`) and wraps it.
    /// Generated ids are 18 digits, but a backend may hold ids made elsewhere.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "user id";
        if value.is_empty() || value.len() > 64 {
            return Err(IdError::Length {
                what: WHAT,
                max: 64,
            });
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IdError::Character {
                what: WHAT,
                allowed: "A-Z a-z 0-9 - _",
            });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(UserId);

/// The unique id of an issued token (its JWT `jti`): 128 random bits, base64url.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(Box<str>);

impl TokenId {
    /// A new random id.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(
            Base64UrlUnpadded::encode_string(&random_bytes::<16>()?).into(),
        ))
    }

    /// Checks `value` (1 to 128 characters from `A-Z a-z 0-9 - _ .`) and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "token id";
        if value.is_empty() || value.len() > 128 {
            return Err(IdError::Length {
                what: WHAT,
                max: 128,
            });
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(IdError::Character {
                what: WHAT,
                allowed: "A-Z a-z 0-9 - _ .",
            });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(TokenId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::new("billing-job").is_ok());
        assert!(Username::new("a.b_c@d+e-F9").is_ok());
        assert!(Username::new("").is_err());
        assert!(Username::new(&"a".repeat(129)).is_err());
        assert!(Username::new("a:b").is_err());
        assert!(Username::new("a b").is_err());
        assert!(Username::new("é").is_err());
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() -> Result<(), Box<dyn std::error::Error>> {
        let a = UserId::generate()?;
        let b = UserId::generate()?;
        assert_eq!(a.as_str().len(), 18);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
        assert_eq!(UserId::new(a.as_str())?, a);
        let t = TokenId::generate()?;
        assert_eq!(t.as_str().len(), 22);
        assert_eq!(TokenId::new(t.as_str())?, t);
        assert!(TokenId::new("a/b").is_err());
        Ok(())
    }
}
