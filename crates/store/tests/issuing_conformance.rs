//! Backends for issuing alone pass the issuing conformance suite
//! (`issuing_conformance_suite!`): they implement `IssuingStore` and no
//! administration trait, and the suite fills them through a `Seed`.
//!
//! - `fixed_users`: the shortest backend, over maps, with the eight required
//!   methods alone. Its users are provisioned from outside (the seed writes them
//!   into the map it reads); it keeps no API apps, projects, grants or client keys,
//!   so the suite checks the defaults: nothing of those is found, and no assertion
//!   id is accepted twice.
//! - `over_memory`: a wrapper that exposes only `IssuingStore` over a memory store,
//!   every optional method overridden; the records are provisioned through the
//!   memory store's administration traits (`StoreSeed`), as another service would
//!   write the tables an issuing backend reads.
#![cfg(feature = "testkit")]

mod fixed_users {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use async_trait::async_trait;
    use tessera_store::testkit::Seed;
    use tessera_store::{
        IssuingStore, ServiceUser, StoreError, TokenDigest, TokenId, TokenRecord, UserId, Username,
        whole_seconds,
    };
    use time::OffsetDateTime;

    #[derive(Default)]
    struct Data {
        users: HashMap<UserId, ServiceUser>,
        tokens: HashMap<TokenDigest, TokenRecord>,
        revoked_jtis: HashMap<TokenId, OffsetDateTime>,
    }

    /// The backend under test: it reads users and keeps token records.
    struct FixedUsers(Arc<Mutex<Data>>);

    /// Provisions users where `FixedUsers` reads them.
    struct Provisioning(Arc<Mutex<Data>>);

    fn lock(data: &Mutex<Data>) -> MutexGuard<'_, Data> {
        data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[async_trait]
    impl IssuingStore for FixedUsers {
        async fn service_user_by_username(
            &self,
            username: &Username,
        ) -> Result<Option<ServiceUser>, StoreError> {
            Ok(lock(&self.0).users.values().find(|u| &u.username == username).cloned())
        }

        async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
            Ok(lock(&self.0).users.get(id).cloned())
        }

        async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
            let mut data = lock(&self.0);
            if data.tokens.contains_key(&record.digest) {
                return Err(StoreError::Conflict("token"));
            }
            let mut record = record.clone();
            record.issued_at = whole_seconds(record.issued_at);
            record.expires_at = whole_seconds(record.expires_at);
            record.revoked_at = record.revoked_at.map(whole_seconds);
            data.tokens.insert(record.digest, record);
            Ok(())
        }

        async fn token_by_digest(
            &self,
            digest: &TokenDigest,
        ) -> Result<Option<TokenRecord>, StoreError> {
            Ok(lock(&self.0).tokens.get(digest).cloned())
        }

        async fn revoke_token(
            &self,
            digest: &TokenDigest,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let mut data = lock(&self.0);
            let Some(record) = data.tokens.get_mut(digest) else { return Ok(false) };
            record.revoked_at.get_or_insert(whole_seconds(now));
            Ok(true)
        }

        async fn revoke_jti(
            &self,
            jti: &TokenId,
            expires_at: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let expires_at = whole_seconds(expires_at);
            let mut data = lock(&self.0);
            let kept = data.revoked_jtis.entry(jti.clone()).or_insert(expires_at);
            *kept = (*kept).max(expires_at);
            Ok(())
        }

        async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
            Ok(lock(&self.0).revoked_jtis.contains_key(jti))
        }

        async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
            let mut data = lock(&self.0);
            let before = data.tokens.len() + data.revoked_jtis.len();
            data.tokens.retain(|_, r| r.expires_at > now);
            data.revoked_jtis.retain(|_, expiry| *expiry > now);
            let after = data.tokens.len() + data.revoked_jtis.len();
            Ok(u64::try_from(before - after).unwrap_or(u64::MAX))
        }
    }

    #[async_trait]
    impl Seed for Provisioning {
        async fn seed_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
            lock(&self.0).users.insert(user.id.clone(), user.clone());
            Ok(())
        }
    }

    tessera_store::issuing_conformance_suite!(async {
        let data = Arc::new(Mutex::new(Data::default()));
        (FixedUsers(data.clone()), Provisioning(data))
    });
}

mod over_memory {
    use std::sync::Arc;

    use async_trait::async_trait;
    use tessera_store::testkit::{SharedStore, StoreSeed};
    use tessera_store::{
        ApiApp, ClientId, ClientKey, IssuingStore, MemoryStore, Project, ProjectId, RoleGrant,
        ServiceUser, StoreError, TokenDigest, TokenId, TokenRecord, UserId, Username,
    };
    use time::OffsetDateTime;

    /// Only the issuing core of a memory store: no administration trait.
    struct IssuingOnly(Arc<MemoryStore>);

    #[async_trait]
    impl IssuingStore for IssuingOnly {
        async fn service_user_by_username(
            &self,
            username: &Username,
        ) -> Result<Option<ServiceUser>, StoreError> {
            self.0.service_user_by_username(username).await
        }

        async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
            self.0.service_user_by_id(id).await
        }

        async fn api_app_by_client_id(
            &self,
            client_id: &ClientId,
        ) -> Result<Option<ApiApp>, StoreError> {
            self.0.api_app_by_client_id(client_id).await
        }

        async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
            self.0.project_by_id(id).await
        }

        async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
            self.0.grants_of_user(user_id).await
        }

        async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
            self.0.insert_token(record).await
        }

        async fn token_by_digest(
            &self,
            digest: &TokenDigest,
        ) -> Result<Option<TokenRecord>, StoreError> {
            self.0.token_by_digest(digest).await
        }

        async fn revoke_token(
            &self,
            digest: &TokenDigest,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.0.revoke_token(digest, now).await
        }

        async fn revoke_jti(
            &self,
            jti: &TokenId,
            expires_at: OffsetDateTime,
        ) -> Result<(), StoreError> {
            self.0.revoke_jti(jti, expires_at).await
        }

        async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
            self.0.is_jti_revoked(jti).await
        }

        async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
            self.0.client_key(key_id).await
        }

        async fn use_assertion(
            &self,
            issuer: &str,
            jti: &str,
            expires_at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.0.use_assertion(issuer, jti, expires_at).await
        }

        async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
            self.0.purge_expired_tokens(now).await
        }

        async fn ping(&self) -> Result<(), StoreError> {
            self.0.ping().await
        }
    }

    tessera_store::issuing_conformance_suite!(async {
        let data = Arc::new(MemoryStore::new());
        let provisioning: SharedStore = data.clone();
        (IssuingOnly(data), StoreSeed(provisioning))
    });
}
