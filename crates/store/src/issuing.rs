//! The issuing core: what issuing, introspecting and revoking tokens need.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::PersonalAccessToken;
use crate::client_keys::ClientKey;
use crate::error::StoreError;
use crate::ids::{ClientId, ProjectId, TokenId, UserId, Username};
use crate::projects::{ApiApp, Project, RoleGrant};
use crate::records::{ServiceUser, TokenDigest, TokenRecord};

/// The use of a backend's connection pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// The most connections the pool opens.
    pub max_size: u32,
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Open connections idle now.
    pub idle: u32,
    /// Operations waiting for a connection now.
    pub waiting: u32,
}

/// What issuing, introspecting and revoking tokens need from a backend: the
/// lookups of clients, the records of opaque tokens, the revoked JWT ids and the
/// upkeep.
///
/// A backend for issuing alone implements this trait (eight required methods) and
/// fills its records by its own means; [`SigningKeyStore`](crate::SigningKeyStore)
/// adds self-contained (JWT) tokens, [`OrganizationStore`](crate::OrganizationStore)
/// role claims, and the administration traits ([`ServiceUserAdmin`](crate::ServiceUserAdmin),
/// [`ProjectAdmin`](crate::ProjectAdmin), [`ClientKeyAdmin`](crate::ClientKeyAdmin),
/// [`OrganizationAdmin`](crate::OrganizationAdmin)) the changes. A type that
/// implements all of them is a [`Store`](crate::Store).
///
/// The methods come in groups:
///
/// | group | methods | without an override |
/// |---|---|---|
/// | clients | [`service_user_by_username`](Self::service_user_by_username), [`service_user_by_id`](Self::service_user_by_id) | required |
/// | API apps | [`api_app_by_client_id`](Self::api_app_by_client_id) | no API app exists |
/// | audience and roles | [`project_by_id`](Self::project_by_id), [`grants_of_user`](Self::grants_of_user) | only the reserved project exists; no grant |
/// | token records | [`insert_token`](Self::insert_token), [`token_by_digest`](Self::token_by_digest), [`revoke_token`](Self::revoke_token) | required |
/// | revoked JWT ids | [`revoke_jti`](Self::revoke_jti), [`is_jti_revoked`](Self::is_jti_revoked) | required |
/// | client assertions (RFC 7523) | [`client_key`](Self::client_key), [`use_assertion`](Self::use_assertion) | no client key exists; every assertion is refused |
/// | personal access tokens | [`personal_access_token_by_digest`](Self::personal_access_token_by_digest) | none exists |
/// | upkeep | [`purge_expired_tokens`](Self::purge_expired_tokens) required, [`ping`](Self::ping), [`pool_stats`](Self::pool_stats) | `ping` answers `Ok`; no pool to report |
///
/// Every default answers "nothing is stored", so a backend without a feature
/// refuses what the feature would allow, never the other way round. A backend that
/// stores the records of a group (through an administration trait or otherwise)
/// overrides every method of that group.
///
/// Contract, checked by the conformance suite (`testkit` feature; a backend that
/// implements this trait alone runs `issuing_conformance_suite!`, giving it a
/// `testkit::Seed` to store the users and other records the checks need):
///
/// - Every lookup reads what is stored when it is called, in every process sharing
///   the backend: once a change (through any instance) has returned, no lookup
///   started afterwards returns the state before it. In particular a regenerated
///   secret stops working at once, and a revoked token is inactive at once. A
///   backend may not serve lookups from a cache that another process can make stale.
/// - [`insert_token`](Self::insert_token) returns only once the record is durable
///   (for a persistent backend: committed), so a token is never handed out before
///   its record would survive a crash. A second record with the same digest fails
///   with [`StoreError::Conflict`] and changes nothing. A backend may refuse a record
///   of a user that does not exist with [`StoreError::NotFound`] (the SQL backends
///   do). Concurrent inserts lose nothing.
/// - [`revoke_token`](Self::revoke_token) is idempotent and keeps the first
///   revocation time.
/// - A revoked JWT id is reported revoked by [`is_jti_revoked`](Self::is_jti_revoked)
///   until it is purged after the expiry given; revoking it again keeps the later
///   expiry.
/// - [`use_assertion`](Self::use_assertion) is atomic across every instance: of any
///   number of concurrent calls with the same issuer and `jti`, exactly one returns
///   `true`, and later calls return `false` until the recorded expiry is purged.
/// - [`purge_expired_tokens`](Self::purge_expired_tokens) deletes exactly the token
///   records, revoked JWT ids and used assertion ids whose expiry is at or before
///   `now`.
/// - Stored times are whole seconds (a fraction is dropped).
///
/// The shortest backend, for one process, holds its users in a map filled when it
/// is built:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use tessera_store::prelude::*;
/// use tessera_store::{
///     ServiceUser, StoreError, TokenDigest, TokenId, TokenRecord, UserId, Username,
/// };
/// use time::OffsetDateTime;
///
/// #[derive(Default)]
/// struct Tokens {
///     records: HashMap<TokenDigest, TokenRecord>,
///     revoked_jtis: HashMap<TokenId, OffsetDateTime>,
/// }
///
/// struct FixedUsers {
///     users: Vec<ServiceUser>,
///     tokens: Mutex<Tokens>,
/// }
///
/// impl FixedUsers {
///     fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
///         self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
///     }
/// }
///
/// #[async_trait]
/// impl IssuingStore for FixedUsers {
///     async fn service_user_by_username(
///         &self,
///         username: &Username,
///     ) -> Result<Option<ServiceUser>, StoreError> {
///         Ok(self.users.iter().find(|u| &u.username == username).cloned())
///     }
///
///     async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
///         Ok(self.users.iter().find(|u| &u.id == id).cloned())
///     }
///
///     async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
///         let mut tokens = self.tokens();
///         if tokens.records.contains_key(&record.digest) {
///             return Err(StoreError::Conflict("token"));
///         }
///         let mut record = record.clone();
///         for t in [&mut record.issued_at, &mut record.expires_at] {
///             *t = tessera_store::whole_seconds(*t);
///         }
///         record.revoked_at = record.revoked_at.map(tessera_store::whole_seconds);
///         tokens.records.insert(record.digest, record);
///         Ok(())
///     }
///
///     async fn token_by_digest(
///         &self,
///         digest: &TokenDigest,
///     ) -> Result<Option<TokenRecord>, StoreError> {
///         Ok(self.tokens().records.get(digest).cloned())
///     }
///
///     async fn revoke_token(
///         &self,
///         digest: &TokenDigest,
///         now: OffsetDateTime,
///     ) -> Result<bool, StoreError> {
///         let mut tokens = self.tokens();
///         let Some(record) = tokens.records.get_mut(digest) else { return Ok(false) };
///         record.revoked_at.get_or_insert(tessera_store::whole_seconds(now));
///         Ok(true)
///     }
///
///     async fn revoke_jti(&self, jti: &TokenId, expires_at: OffsetDateTime) -> Result<(), StoreError> {
///         let expires_at = tessera_store::whole_seconds(expires_at);
///         let mut tokens = self.tokens();
///         let kept = tokens.revoked_jtis.entry(jti.clone()).or_insert(expires_at);
///         *kept = (*kept).max(expires_at);
///         Ok(())
///     }
///
///     async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
///         Ok(self.tokens().revoked_jtis.contains_key(jti))
///     }
///
///     async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
///         let mut tokens = self.tokens();
///         let before = tokens.records.len() + tokens.revoked_jtis.len();
///         tokens.records.retain(|_, r| r.expires_at > now);
///         tokens.revoked_jtis.retain(|_, expiry| *expiry > now);
///         Ok((before - tokens.records.len() - tokens.revoked_jtis.len()) as u64)
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let now = OffsetDateTime::now_utc();
/// let user = ServiceUser::new(Username::new("billing-job")?, now)?;
/// let store = FixedUsers { users: vec![user.clone()], tokens: Mutex::default() };
/// assert_eq!(store.service_user_by_id(&user.id).await?, Some(user));
/// // The defaults: nothing of the optional groups is stored.
/// assert_eq!(store.client_key("any").await?, None);
/// assert!(store.grants_of_user(&UserId::generate()?).await?.is_empty());
/// store.ping().await?;
/// # Ok(())
/// # })
/// # }
/// ```
#[async_trait]
pub trait IssuingStore: Send + Sync {
    /// The service user with this username (its client ID), enabled or not.
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError>;

    /// The service user with this id (the `sub` of its tokens), enabled or not.
    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError>;

    /// The API app with this client ID, enabled or not.
    ///
    /// Without an override: `None` (the backend stores no API app, so none can
    /// authenticate).
    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError> {
        let _ = client_id;
        Ok(None)
    }

    /// The project with this id. The reserved project `zitadel`
    /// ([`Project::reserved`]) exists in every store.
    ///
    /// Without an override: the reserved project, and no other.
    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        Ok(id.is_reserved().then(Project::reserved))
    }

    /// The roles granted to the service user `user_id`, ordered by project, then role
    /// (byte order), each once.
    ///
    /// Without an override: none (tokens carry no roles).
    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
        let _ = user_id;
        Ok(Vec::new())
    }

    /// Stores the record of a newly issued opaque token; returns once it is durable.
    /// A taken digest is [`StoreError::Conflict`].
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError>;

    /// The record of the token with this digest, whether active or not.
    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Marks the token revoked at `now` unless it was revoked already (the first
    /// time is kept); returns whether a record was found.
    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Records that the self-contained token `jti`, valid until `expires_at`, is
    /// revoked; revoking it again keeps the later expiry.
    async fn revoke_jti(&self, jti: &TokenId, expires_at: OffsetDateTime)
    -> Result<(), StoreError>;

    /// Whether the self-contained token `jti` was revoked (and not purged yet).
    async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError>;

    /// The client key with this key id (the `kid` of an assertion), valid or not.
    ///
    /// Without an override: `None` (the backend stores no client key, so every
    /// assertion is refused).
    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        let _ = key_id;
        Ok(None)
    }

    /// Records that `issuer` used assertion id `jti`, valid until `expires_at`;
    /// returns `false` if that pair was recorded already (a replay).
    ///
    /// Without an override: `false`, so every assertion is refused as a replay. A
    /// backend that overrides [`client_key`](Self::client_key) overrides this too.
    async fn use_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let _ = (issuer, jti, expires_at);
        Ok(false)
    }

    /// The personal access token with this digest, active or not.
    ///
    /// Without an override: `None` (the backend stores no personal access token).
    async fn personal_access_token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let _ = digest;
        Ok(None)
    }

    /// Deletes the token records, revoked JWT ids and used assertion ids that
    /// expired at or before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// How the backend's connection pool is used now, for metrics; `None` for a
    /// backend without one.
    ///
    /// Without an override: `None`.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    /// Checks that the backend is reachable (for health checks); an unreachable
    /// backend is [`StoreError::Unavailable`].
    ///
    /// Without an override: `Ok`.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
