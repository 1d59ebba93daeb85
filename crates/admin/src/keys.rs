//! Client keys: key pairs a service user or an API app signs assertions with (JWT
//! profile, RFC 7523), handed out as key files in the shape ZITADEL uses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_mint::{SigningKey, key_file_pem};
use tessera_store::{AppId, ClientId, ClientKey, KeyOwner, SigningAlgorithm, StoreError, UserId};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{Admin, AdminError};

/// The kinds of key pair [`Admin::add_client_key`] generates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA 2048, for RS256 (the default): the only kind ZITADEL's client libraries
    /// load. Its key file holds the private key as PKCS#1 (`RSA PRIVATE KEY`), as
    /// ZITADEL's do.
    #[default]
    Rsa,
    /// ECDSA P-256, for ES256 (PKCS#8 in the key file); signatures must be canonical
    /// (low s).
    Ec,
    /// Ed25519, for EdDSA (PKCS#8 in the key file).
    Ed25519,
}

impl KeyType {
    /// The algorithm assertions signed with such a key use.
    pub const fn algorithm(self) -> SigningAlgorithm {
        match self {
            KeyType::Rsa => SigningAlgorithm::Rs256,
            KeyType::Ec => SigningAlgorithm::Es256,
            KeyType::Ed25519 => SigningAlgorithm::EdDsa,
        }
    }
}

/// A key file: the one copy of a client key's private half, in the JSON shape of the
/// key files ZITADEL hands out, which ZITADEL's client libraries load.
///
/// Serialized, a service user's key file is
/// `{"type": "serviceaccount", "keyId", "key", "expirationDate", "userId"}` and an API
/// app's `{"type": "application", "keyId", "key", "expirationDate", "appId", "clientId"}`.
/// `Debug` does not print the private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyFile {
    /// Whose key it is: `serviceaccount` or `application`.
    #[serde(rename = "type")]
    pub kind: KeyFileKind,
    /// The key id, the `kid` of the assertions signed with it.
    #[serde(rename = "keyId")]
    pub key_id: String,
    /// The private key as PEM.
    #[serde(serialize_with = "expose", deserialize_with = "conceal")]
    pub key: Zeroizing<String>,
    /// When the key stops being accepted (RFC 3339); a key that never expires has
    /// ZITADEL's far-future date, 9999-12-31T23:59:59Z.
    #[serde(rename = "expirationDate", with = "time::serde::rfc3339")]
    pub expiration_date: OffsetDateTime,
    /// A service user's id (the `iss` and `sub` of its assertions).
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// An API app's app id.
    #[serde(rename = "appId", default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<AppId>,
    /// An API app's client ID (the `iss` and `sub` of its assertions).
    #[serde(rename = "clientId", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClientId>,
}

/// The `type` of a [`KeyFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyFileKind {
    /// A service user's key (`serviceaccount`).
    #[serde(rename = "serviceaccount")]
    ServiceAccount,
    /// An API app's key (`application`).
    #[serde(rename = "application")]
    Application,
}

impl KeyFile {
    /// The `expirationDate` of a key that never expires: 9999-12-31T23:59:59Z.
    pub const NEVER: OffsetDateTime = tessera_store::NEVER_EXPIRES;
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .field("expiration_date", &self.expiration_date)
            .field("user_id", &self.user_id)
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

fn expose<S: Serializer>(key: &Zeroizing<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(key)
}

fn conceal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(deserializer).map(Zeroizing::new)
}

/// Client keys.
impl Admin {
    /// Generates a key pair for `owner`, stores its public half, and returns the stored
    /// key with the key file holding the private half, shown only here.
    ///
    /// The key is accepted until `expires_at` (truncated to whole seconds), or for
    /// ever when `None`. [`AdminError::NotFound`] when the owner does not exist;
    /// [`AdminError::Invalid`] when `expires_at` is not in the future. Logs the audit
    /// event `client_key_added`.
    pub async fn add_client_key(
        &self,
        owner: &KeyOwner,
        key_type: KeyType,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ClientKey, KeyFile), AdminError> {
        let now = tessera_store::whole_seconds(self.now());
        let expires_at = expires_at.map(tessera_store::whole_seconds);
        if expires_at.is_some_and(|at| at <= now) {
            return Err(AdminError::Invalid {
                field: "expires_at",
                reason: "must be in the future".to_owned(),
            });
        }
        let (kind, user_id, app_id, client_id) = match owner {
            KeyOwner::ServiceUser(id) => {
                let user = self.service_user_by_id(id).await?;
                (KeyFileKind::ServiceAccount, Some(user.id), None, None)
            }
            KeyOwner::ApiApp(id) => {
                let app = self.api_app(id).await?;
                (KeyFileKind::Application, None, Some(app.app_id), Some(app.client_id))
            }
        };
        let algorithm = key_type.algorithm();
        let (pair, pkcs8) = SigningKey::generate(algorithm)?;
        // Encoded before anything is stored: a key that cannot be handed out is not kept.
        let pem = key_file_pem(algorithm, &pkcs8).ok_or(AdminError::KeyEncoding)?;
        let key = ClientKey {
            key_id: pair.kid().to_owned(),
            owner: owner.clone(),
            algorithm,
            public_jwk: pair.public_jwk().to_string(),
            created_at: now,
            expires_at,
        };
        self.store.add_client_key(&key).await.map_err(|e| match e {
            StoreError::NotFound(_) => owner_not_found(owner),
            other => other.into(),
        })?;
        tracing::info!(target: "tessera::audit", event = "client_key_added", key_id = %key.key_id, owner = %key.owner);
        let file = KeyFile {
            kind,
            key_id: key.key_id.clone(),
            key: pem,
            expiration_date: key.expires_at.unwrap_or(KeyFile::NEVER),
            user_id,
            app_id,
            client_id,
        };
        Ok((key, file))
    }

    /// The keys of `owner`, ordered by creation time, then key id; none for an owner
    /// that does not exist.
    pub async fn client_keys(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, AdminError> {
        Ok(self.store.client_keys_of(owner).await?)
    }

    /// Removes `owner`'s key `key_id`: assertions signed with it stop working at once.
    /// [`AdminError::NotFound`] when the owner has no such key.
    pub async fn remove_client_key(
        &self,
        owner: &KeyOwner,
        key_id: &str,
    ) -> Result<(), AdminError> {
        if self.store.remove_client_key(owner, key_id).await? {
            Ok(())
        } else {
            Err(AdminError::NotFound { what: "key", id: format!("{key_id} of {owner}") })
        }
    }
}

/// The [`AdminError::NotFound`] of a missing key owner.
fn owner_not_found(owner: &KeyOwner) -> AdminError {
    match owner {
        KeyOwner::ServiceUser(id) => {
            AdminError::NotFound { what: "service user", id: id.to_string() }
        }
        KeyOwner::ApiApp(id) => AdminError::NotFound { what: "API app", id: id.to_string() },
    }
}
