use std::fmt;

use time::OffsetDateTime;

use crate::ids::{ClientId, UserId};
use crate::keys::SigningAlgorithm;

/// Who a client key belongs to: a service user or an API app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyOwner {
    /// A service user, by id.
    ServiceUser(UserId),
    /// An API app, by client ID.
    ApiApp(ClientId),
}

impl KeyOwner {
    /// `user:{id}` or `app:{client_id}`: the owner as one string, for storage.
    pub fn to_key(&self) -> String {
        match self {
            KeyOwner::ServiceUser(id) => format!("user:{id}"),
            KeyOwner::ApiApp(id) => format!("app:{id}"),
        }
    }

    /// Parses [`KeyOwner::to_key`]'s form.
    pub fn from_key(value: &str) -> Option<Self> {
        if let Some(id) = value.strip_prefix("user:") {
            return UserId::new(id).ok().map(KeyOwner::ServiceUser);
        }
        value.strip_prefix("app:").and_then(|id| ClientId::new(id).ok()).map(KeyOwner::ApiApp)
    }
}

impl fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

/// A public key a client signs assertions with (RFC 7523): only the public half is
/// stored; the private key was shown once when the pair was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClientKey {
    /// Key id, the `kid` of assertions signed with it; unique.
    pub key_id: String,
    /// The owner.
    pub owner: KeyOwner,
    /// The algorithm assertions must use with this key.
    pub algorithm: SigningAlgorithm,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// When the key was added (whole seconds).
    #[cfg_attr(feature = "serde", serde(with = "time::serde::rfc3339"))]
    pub created_at: OffsetDateTime,
    /// When the key stops being accepted, if ever (whole seconds).
    #[cfg_attr(feature = "serde", serde(default, with = "time::serde::rfc3339::option"))]
    pub expires_at: Option<OffsetDateTime>,
}

impl ClientKey {
    /// Whether the key may be used at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_through_their_key() -> Result<(), crate::IdError> {
        let user = KeyOwner::ServiceUser(UserId::new("123")?);
        let app = KeyOwner::ApiApp(ClientId::new("9@orders")?);
        for owner in [user, app] {
            assert_eq!(KeyOwner::from_key(&owner.to_key()), Some(owner));
        }
        assert_eq!(KeyOwner::from_key("nobody:1"), None);
        assert_eq!(KeyOwner::from_key("user:a b"), None);
        Ok(())
    }
}
