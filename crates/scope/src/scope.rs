use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of a project audience scope: `urn:zitadel:iam:org:project:id:{id}:aud`.
pub const PROJECT_AUDIENCE_PREFIX: &str = "urn:zitadel:iam:org:project:id:";
/// Suffix of a project audience scope.
pub const PROJECT_AUDIENCE_SUFFIX: &str = ":aud";
/// Prefix of a project role scope: `urn:zitadel:iam:org:project:role:{role}`.
pub const PROJECT_ROLE_PREFIX: &str = "urn:zitadel:iam:org:project:role:";
/// The scope that adds the organization owning the user (its id, name and primary
/// domain) to the token, introspection and userinfo, as ZITADEL does.
pub const RESOURCE_OWNER_SCOPE: &str = "urn:zitadel:iam:user:resourceowner";
/// The reserved project id that names the server's own API.
pub const ZITADEL_PROJECT: &str = "zitadel";

/// One scope token: a non-empty string of the characters RFC 6749 section 3.3
/// allows (`%x21 / %x23-5B / %x5D-7E`, that is printable ASCII except space,
/// `"` and `\`).
///
/// A `Scope` that exists is valid; build one with [`Scope::new`] or
/// [`str::parse`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

/// Why a string is not a scope or a scope list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// An empty scope token (also two spaces in a row, or a leading or
    /// trailing space in a list).
    #[error("empty scope token")]
    Empty,
    /// A character outside `%x21 / %x23-5B / %x5D-7E`.
    #[error("scope contains a character not allowed by RFC 6749 section 3.3 at byte {position}")]
    InvalidCharacter {
        /// Byte offset of the first offending character.
        position: usize,
    },
    /// The scope list is longer than [`crate::MAX_SCOPE_STRING_LEN`] bytes.
    #[error("scope is longer than {max} bytes")]
    TooLong {
        /// The limit that was exceeded.
        max: usize,
    },
    /// The list names more than [`crate::MAX_SCOPES`] distinct scopes.
    #[error("more than {max} scopes requested")]
    TooMany {
        /// The limit that was exceeded.
        max: usize,
    },
}

/// The meaning Tessera gives to a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind<'a> {
    /// A scope defined by OpenID Connect Core.
    Standard(StandardScope),
    /// `urn:zitadel:iam:org:project:id:{id}:aud`: add the project to the token's audience.
    ProjectAudience(ProjectRef<'a>),
    /// `urn:zitadel:iam:org:project:role:{role}`: ask for a role granted to the client.
    ProjectRole(&'a str),
    /// `urn:zitadel:iam:user:resourceowner`: name the organization that owns the user.
    ResourceOwner,
    /// Any other scope; its meaning is the deployment's.
    Custom(&'a str),
}

/// Scopes defined by OpenID Connect Core 1.0, section 5.4 and 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StandardScope {
    /// `openid`
    OpenId,
    /// `profile`
    Profile,
    /// `email`
    Email,
    /// `phone`
    Phone,
    /// `address`
    Address,
    /// `offline_access`
    OfflineAccess,
}

/// The project an audience scope names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectRef<'a> {
    /// The reserved id `zitadel`: the server's own API.
    Zitadel,
    /// Any other project id.
    Id(&'a str),
}

impl Scope {
    /// Checks `value` against the scope-token grammar.
    pub fn new(value: impl Into<String>) -> Result<Self, ScopeError> {
        let value = value.into();
        validate_token(&value)?;
        Ok(Self(value.into()))
    }

    /// Wraps a token that [`validate_token`] accepted.
    pub(crate) fn from_validated(value: &str) -> Self {
        Self(value.into())
    }

    /// The standard scope `openid`.
    pub fn openid() -> Self {
        Self::from(StandardScope::OpenId)
    }

    /// The audience scope of a project id.
    pub fn project_audience(project_id: &str) -> Result<Self, ScopeError> {
        Self::new(format!("{PROJECT_AUDIENCE_PREFIX}{project_id}{PROJECT_AUDIENCE_SUFFIX}"))
    }

    /// The role scope of a role key.
    pub fn project_role(role: &str) -> Result<Self, ScopeError> {
        Self::new(format!("{PROJECT_ROLE_PREFIX}{role}"))
    }

    /// The scope as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What this scope means to Tessera.
    pub fn kind(&self) -> ScopeKind<'_> {
        let s = self.as_str();
        if let Some(standard) = StandardScope::from_name(s) {
            return ScopeKind::Standard(standard);
        }
        if let Some(id) = s
            .strip_prefix(PROJECT_AUDIENCE_PREFIX)
            .and_then(|rest| rest.strip_suffix(PROJECT_AUDIENCE_SUFFIX))
            .filter(|id| !id.is_empty() && !id.contains(':'))
        {
            return ScopeKind::ProjectAudience(if id == ZITADEL_PROJECT {
                ProjectRef::Zitadel
            } else {
                ProjectRef::Id(id)
            });
        }
        if let Some(role) = s.strip_prefix(PROJECT_ROLE_PREFIX).filter(|r| !r.is_empty()) {
            return ScopeKind::ProjectRole(role);
        }
        if s == RESOURCE_OWNER_SCOPE {
            return ScopeKind::ResourceOwner;
        }
        ScopeKind::Custom(s)
    }
}

/// Checks one scope token; shared by [`Scope::new`] and the list parser.
pub(crate) fn validate_token(value: &str) -> Result<(), ScopeError> {
    if value.is_empty() {
        return Err(ScopeError::Empty);
    }
    match value.bytes().position(|b| !is_scope_char(b)) {
        Some(position) => Err(ScopeError::InvalidCharacter { position }),
        None => Ok(()),
    }
}

/// `%x21 / %x23-5B / %x5D-7E`
const fn is_scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

impl StandardScope {
    /// Every standard scope, in a stable order.
    pub const ALL: [StandardScope; 6] = [
        StandardScope::OpenId,
        StandardScope::Profile,
        StandardScope::Email,
        StandardScope::Phone,
        StandardScope::Address,
        StandardScope::OfflineAccess,
    ];

    /// The wire name of the scope.
    pub const fn name(self) -> &'static str {
        match self {
            StandardScope::OpenId => "openid",
            StandardScope::Profile => "profile",
            StandardScope::Email => "email",
            StandardScope::Phone => "phone",
            StandardScope::Address => "address",
            StandardScope::OfflineAccess => "offline_access",
        }
    }

    /// The standard scope with this wire name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl From<StandardScope> for Scope {
    fn from(value: StandardScope) -> Self {
        Scope(value.name().into())
    }
}

impl fmt::Display for StandardScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ProjectRef<'_> {
    /// The project id (`zitadel` for the server's own API).
    pub fn id(&self) -> &str {
        match self {
            ProjectRef::Zitadel => ZITADEL_PROJECT,
            ProjectRef::Id(id) => id,
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Scope::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_accepts_the_allowed_characters_only() {
        assert!(Scope::new("a!#[]~").is_ok());
        assert_eq!(Scope::new(""), Err(ScopeError::Empty));
        assert_eq!(Scope::new("a b"), Err(ScopeError::InvalidCharacter { position: 1 }));
        assert_eq!(Scope::new("a\"b"), Err(ScopeError::InvalidCharacter { position: 1 }));
        assert_eq!(Scope::new("ab\\"), Err(ScopeError::InvalidCharacter { position: 2 }));
        assert_eq!(Scope::new("\u{7f}"), Err(ScopeError::InvalidCharacter { position: 0 }));
        assert_eq!(Scope::new("é"), Err(ScopeError::InvalidCharacter { position: 0 }));
    }

    #[test]
    fn kinds() {
        let kind = |s: &str| Scope::new(s).map(|s| format!("{:?}", s.kind()));
        assert_eq!(kind("openid").as_deref(), Ok("Standard(OpenId)"));
        assert_eq!(kind("offline_access").as_deref(), Ok("Standard(OfflineAccess)"));
        assert_eq!(
            kind("urn:zitadel:iam:org:project:id:zitadel:aud").as_deref(),
            Ok("ProjectAudience(Zitadel)")
        );
        assert_eq!(
            kind("urn:zitadel:iam:org:project:id:12345:aud").as_deref(),
            Ok("ProjectAudience(Id(\"12345\"))")
        );
        assert_eq!(
            kind("urn:zitadel:iam:org:project:role:reader").as_deref(),
            Ok("ProjectRole(\"reader\")")
        );
        assert_eq!(kind("urn:zitadel:iam:user:resourceowner").as_deref(), Ok("ResourceOwner"));
        assert_eq!(
            kind("urn:zitadel:iam:user:resourceowner:id").as_deref(),
            Ok("Custom(\"urn:zitadel:iam:user:resourceowner:id\")")
        );
        // Malformed URNs are ordinary custom scopes, not audience scopes.
        for custom in [
            "urn:zitadel:iam:org:project:id::aud",
            "urn:zitadel:iam:org:project:id:a:b:aud",
            "urn:zitadel:iam:org:project:id:123",
            "urn:zitadel:iam:org:project:role:",
            "OpenID",
        ] {
            assert_eq!(kind(custom), Ok(format!("Custom({custom:?})")));
        }
    }

    #[test]
    fn constructors_round_trip_through_kind() -> Result<(), ScopeError> {
        let aud = Scope::project_audience("orders")?;
        assert_eq!(aud.kind(), ScopeKind::ProjectAudience(ProjectRef::Id("orders")));
        assert_eq!(ProjectRef::Id("orders").id(), "orders");
        assert_eq!(ProjectRef::Zitadel.id(), "zitadel");
        let role = Scope::project_role("admin")?;
        assert_eq!(role.kind(), ScopeKind::ProjectRole("admin"));
        assert!(Scope::project_audience("has space").is_err());
        Ok(())
    }

    #[test]
    fn serde_is_a_plain_string() -> Result<(), serde_json::Error> {
        let scope: Scope = serde_json::from_str("\"profile\"")?;
        assert_eq!(scope.kind(), ScopeKind::Standard(StandardScope::Profile));
        assert_eq!(serde_json::to_string(&scope)?, "\"profile\"");
        assert!(serde_json::from_str::<Scope>("\"a b\"").is_err());
        Ok(())
    }
}
