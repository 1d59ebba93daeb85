//! The SQLite backend passes the conformance suite, each test on a fresh file.

use async_trait::async_trait;
use tempfile::TempDir;
use tessera_store::{
    ServiceUser, ServiceUserPatch, ServiceUserStore, Store, StoreError, TokenDigest, TokenRecord,
    TokenStore, UserId, Username,
};
use tessera_store_sqlite::SqliteStore;
use time::OffsetDateTime;

/// A store on a file in its own temporary directory, which lives as long as the store.
struct FreshStore {
    store: SqliteStore,
    _dir: TempDir,
}

impl FreshStore {
    async fn open() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("tessera.db"))
            .await
            .expect("open a fresh store");
        Self { store, _dir: dir }
    }
}

#[async_trait]
impl ServiceUserStore for FreshStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        self.store.create_service_user(user).await
    }

    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError> {
        self.store.service_user_by_username(username).await
    }

    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
        self.store.service_user_by_id(id).await
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        self.store.list_service_users().await
    }

    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError> {
        self.store.update_service_user(username, patch).await
    }

    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError> {
        self.store.delete_service_user(username).await
    }
}

#[async_trait]
impl TokenStore for FreshStore {
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.store.insert_token(record).await
    }

    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.store.token_by_digest(digest).await
    }

    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.store.revoke_token(digest, now).await
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.store.purge_expired_tokens(now).await
    }
}

#[async_trait]
impl Store for FreshStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

tessera_store::conformance_suite!(FreshStore::open());
