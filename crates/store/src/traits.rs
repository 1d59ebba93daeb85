use async_trait::async_trait;
use time::OffsetDateTime;

use crate::client_keys::ClientKeyStore;
use crate::error::StoreError;
use crate::ids::{TokenId, UserId, Username};
use crate::keys::SigningKeyStore;
use crate::organization::OrganizationStore;
use crate::projects::ProjectStore;
use crate::records::{ServiceUser, ServiceUserPatch, TokenDigest, TokenRecord};

/// Storage of service users.
///
/// Contract, checked by the conformance suite (`testkit` feature):
///
/// - Usernames are unique: creating a second user with the same username fails with
///   [`StoreError::Conflict`] and leaves the first unchanged.
/// - Every change is atomic and visible to every reader (in every process sharing the
///   backend) once the method returns. In particular, once
///   [`update_service_user`](Self::update_service_user) with a new secret returns, no
///   later lookup returns the old digest: a regenerated secret stops working at once.
///   With [`keep_previous_until`](crate::ServiceUserPatch::keep_previous_until) the
///   old digest is returned as the user's
///   [`previous_secret`](crate::ServiceUser::previous_secret) instead, with that
///   expiry (whole seconds), replacing any older previous secret.
/// - Changing or deleting a user that does not exist fails with [`StoreError::NotFound`].
/// - Deleting a user also deletes its token records, role grants and client keys.
/// - A username may not be an API app's client ID ([`StoreError::Conflict`]).
#[async_trait]
pub trait ServiceUserStore: Send + Sync {
    /// Stores a new user.
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError>;

    /// The user with this username (client ID).
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError>;

    /// The user with this id.
    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError>;

    /// Every user, ordered by username.
    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError>;

    /// Applies `patch` atomically and returns the user as stored afterwards.
    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError>;

    /// Deletes the user and its token records.
    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError>;
}

/// Storage of issued opaque access tokens, keyed by their digest.
///
/// Contract, checked by the conformance suite:
///
/// - [`insert_token`](Self::insert_token) returns only once the record is durable
///   (for a persistent backend: committed), so a token is never handed out before
///   its record would survive a crash. A second record with the same digest
///   fails with [`StoreError::Conflict`].
/// - Concurrent inserts lose nothing.
/// - [`revoke_token`](Self::revoke_token) is idempotent and keeps the first revocation time.
/// - [`purge_expired_tokens`](Self::purge_expired_tokens) deletes only records whose
///   expiry is at or before `now`, and likewise revoked JWT ids.
/// - A revoked JWT id ([`revoke_jti`](Self::revoke_jti)) is reported revoked by
///   [`is_jti_revoked`](Self::is_jti_revoked) on every instance once the call returns,
///   until it is purged after the token's expiry. Revoking twice keeps the later expiry.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores the record of a newly issued token.
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError>;

    /// The record of the token with this digest, whether active or not.
    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// The record of the token with this id (`jti`), whether active or not.
    async fn token_by_jti(&self, jti: &TokenId) -> Result<Option<TokenRecord>, StoreError>;

    /// Marks the token revoked at `now`; returns whether a record was found.
    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes the records of tokens, and the revoked JWT ids, that expired at or
    /// before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Records that the self-contained token `jti`, valid until `expires_at`, is revoked.
    async fn revoke_jti(&self, jti: &TokenId, expires_at: OffsetDateTime)
    -> Result<(), StoreError>;

    /// Whether the self-contained token `jti` was revoked.
    async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError>;
}

/// Everything Tessera stores: the traits a complete backend implements.
#[async_trait]
pub trait Store:
    ServiceUserStore + TokenStore + ProjectStore + SigningKeyStore + ClientKeyStore + OrganizationStore
{
    /// Checks that the backend is reachable (for health checks).
    async fn ping(&self) -> Result<(), StoreError>;
}
