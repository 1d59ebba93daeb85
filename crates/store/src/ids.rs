use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

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
pub struct Username(Arc<str>);

impl Username {
    /// The longest username.
    pub const MAX_LEN: usize = 128;

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        check_client_name("username", value).map(|()| Self(value.into()))
    }
}

string_newtype!(Username);

/// The rules shared by usernames and API app client IDs: 1 to 128 characters from
/// `A-Z a-z 0-9 . _ @ + -`.
fn check_client_name(what: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() || value.len() > Username::MAX_LEN {
        return Err(IdError::Length { what, max: Username::MAX_LEN });
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b)) {
        return Err(IdError::Character { what, allowed: "A-Z a-z 0-9 . _ @ + -" });
    }
    Ok(())
}

/// A random decimal number of 18 digits, the form of generated ids.
fn eighteen_digits() -> Result<String, RandomError> {
    let n = u64::from_le_bytes(random_bytes::<8>()?) % 900_000_000_000_000_000;
    Ok(format!("{}", 100_000_000_000_000_000 + n))
}

/// The OAuth client ID of an API app: the same rules as a [`Username`], and the same
/// namespace (no API app may share its client ID with a service user).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        check_client_name("client ID", value).map(|()| Self(value.into()))
    }

    /// A new client ID for an API app of `project`: `{18 digits}@{project}`.
    pub fn generate(project: &ProjectId) -> Result<Self, RandomError> {
        Ok(Self(format!("{}@{}", eighteen_digits()?, project.as_str()).into()))
    }
}

string_newtype!(ClientId);

/// The id of a project: 1 to 64 characters from `A-Z a-z 0-9 - _`. Generated ids are
/// 18 digits; `zitadel` is reserved for the server's own API.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(Arc<str>);

impl ProjectId {
    /// The reserved id of the server's own API.
    pub const RESERVED: &'static str = "zitadel";

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "project id";
        if value.is_empty() || value.len() > 64 {
            return Err(IdError::Length { what: WHAT, max: 64 });
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(IdError::Character { what: WHAT, allowed: "A-Z a-z 0-9 - _" });
        }
        Ok(Self(value.into()))
    }

    /// A new random id: 18 decimal digits.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(eighteen_digits()?.into()))
    }

    /// The id of the server's own API.
    pub fn reserved() -> Self {
        Self(Self::RESERVED.into())
    }

    /// Whether this is the server's own API.
    pub fn is_reserved(&self) -> bool {
        &*self.0 == Self::RESERVED
    }
}

string_newtype!(ProjectId);

/// A project id is its text: maps keyed by id can be searched with a `&str`.
impl std::borrow::Borrow<str> for ProjectId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The key of a role within a project: 1 to 64 characters from `A-Z a-z 0-9 . _ - :`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleKey(Arc<str>);

impl RoleKey {
    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "role";
        if value.is_empty() || value.len() > 64 {
            return Err(IdError::Length { what: WHAT, max: 64 });
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)) {
            return Err(IdError::Character { what: WHAT, allowed: "A-Z a-z 0-9 . _ - :" });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(RoleKey);

/// The stable identifier of a service user (the `sub` of its tokens): 18 decimal digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// A new random id.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(eighteen_digits()?.into()))
    }

    /// Checks `value` (1 to 64 characters from `A-Z a-z 0-9 - _`) and wraps it.
    /// Generated ids are 18 digits, but a backend may hold ids made elsewhere.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "user id";
        if value.is_empty() || value.len() > 64 {
            return Err(IdError::Length { what: WHAT, max: 64 });
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(IdError::Character { what: WHAT, allowed: "A-Z a-z 0-9 - _" });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(UserId);

/// The id of an API app, distinct from its client ID (as ZITADEL's `appId` is): 1 to
/// 64 characters from `A-Z a-z 0-9 - _`; generated ids are 18 decimal digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(Arc<str>);

impl AppId {
    /// A new random id: 18 decimal digits.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(eighteen_digits()?.into()))
    }

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        Self::checked(value, "app id").map(Self)
    }

    fn checked(value: &str, what: &'static str) -> Result<Arc<str>, IdError> {
        if value.is_empty() || value.len() > 64 {
            return Err(IdError::Length { what, max: 64 });
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(IdError::Character { what, allowed: "A-Z a-z 0-9 - _" });
        }
        Ok(value.into())
    }
}

string_newtype!(AppId);

/// The id of a personal access token: 1 to 64 characters from `A-Z a-z 0-9 - _`;
/// generated ids are 18 decimal digits, as ZITADEL's.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatId(Arc<str>);

impl PatId {
    /// A new random id: 18 decimal digits.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(eighteen_digits()?.into()))
    }

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        AppId::checked(value, "personal access token id").map(Self)
    }
}

string_newtype!(PatId);

/// The id of the organization that owns every resource of a server (ZITADEL's
/// resource owner): 1 to 64 characters from `A-Z a-z 0-9 - _`; generated ids are 18
/// decimal digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(Arc<str>);

impl OrgId {
    /// A new random id: 18 decimal digits.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(eighteen_digits()?.into()))
    }

    /// Checks `value` and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        AppId::checked(value, "organization id").map(Self)
    }
}

string_newtype!(OrgId);

/// A domain name, such as an organization's primary domain: 1 to 253 characters,
/// dot-separated labels of `a-z 0-9 -` (upper case is folded), none empty or longer
/// than 63 characters, none starting or ending with `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(Arc<str>);

impl Domain {
    /// `localhost`.
    pub(crate) fn localhost() -> Self {
        Self("localhost".into())
    }

    /// Checks `value`, folds it to lower case and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "domain";
        if value.is_empty() || value.len() > 253 {
            return Err(IdError::Length { what: WHAT, max: 253 });
        }
        let value = value.to_ascii_lowercase();
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !value.split('.').all(label_ok) {
            return Err(IdError::Character {
                what: WHAT,
                allowed: "dot-separated labels of a-z 0-9 - (1 to 63 characters each)",
            });
        }
        Ok(Self(value.into()))
    }
}

string_newtype!(Domain);

/// The unique id of an issued token (its JWT `jti`): 128 random bits, base64url.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(Arc<str>);

impl TokenId {
    /// A new random id.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self::from_random(&random_bytes::<16>()?))
    }

    /// The id made of 128 random bits the caller drew (base64url, 22 characters):
    /// for minters that draw the token and its id in one call to their generator.
    pub fn from_random(bytes: &[u8; 16]) -> Self {
        Self(Base64UrlUnpadded::encode_string(bytes).into())
    }

    /// Checks `value` (1 to 128 characters from `A-Z a-z 0-9 - _ .`) and wraps it.
    pub fn new(value: &str) -> Result<Self, IdError> {
        const WHAT: &str = "token id";
        if value.is_empty() || value.len() > 128 {
            return Err(IdError::Length { what: WHAT, max: 128 });
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(IdError::Character { what: WHAT, allowed: "A-Z a-z 0-9 - _ ." });
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
