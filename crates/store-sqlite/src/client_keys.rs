//! Client keys and used assertion ids ([`ClientKeyStore`]).
//!
//! A key's owner is a service user or an API app, stored as one string
//! ([`KeyOwner::to_key`]: `user:{id}` or `app:{client_id}`), so no foreign key can
//! tie a key to its owner. Instead, adding a key checks the owner in the same
//! `BEGIN IMMEDIATE` transaction as the insert, and deleting a user or an app
//! deletes its keys in the transaction that deletes it; write transactions are
//! serialized across connections and processes, so no key outlives its owner.

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tessera_store::{ClientKey, ClientKeyStore, KeyOwner, StoreError};
use time::OffsetDateTime;

use crate::error::map;
use crate::projects::{self, API_APP};
use crate::rows::{CLIENT_KEY_COLUMNS, ClientKeyRow, select_all, select_one, unix};
use crate::{SqliteStore, USER};

/// What a failure on `client_keys` is about.
pub(crate) const CLIENT_KEY: &str = "client key";
/// What a failure on `used_assertions` is about.
pub(crate) const USED_ASSERTION: &str = "used assertion id";

/// Whether `owner` exists; [`StoreError::NotFound`] names what is missing.
fn check_owner(conn: &Connection, owner: &KeyOwner) -> Result<(), StoreError> {
    match owner {
        KeyOwner::ServiceUser(id) => {
            if !projects::user_exists(conn, id.as_str())? {
                return Err(StoreError::NotFound(USER));
            }
        }
        KeyOwner::ApiApp(client_id) => {
            if !projects::client_id_is_app(conn, client_id.as_str())? {
                return Err(StoreError::NotFound(API_APP));
            }
        }
    }
    Ok(())
}

/// Deletes every key of `owner`; called in the transaction that deletes the owner.
pub(crate) fn delete_keys_of(conn: &Connection, owner: &KeyOwner) -> Result<usize, StoreError> {
    conn.prepare_cached("DELETE FROM client_keys WHERE owner = ?1")
        .and_then(|mut stmt| stmt.execute([owner.to_key()]))
        .map_err(|e| map(e, CLIENT_KEY))
}

#[async_trait]
impl ClientKeyStore for SqliteStore {
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| {
            // The owner is checked and the key inserted in one immediate transaction:
            // no other connection (or process) can delete the owner in between.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, CLIENT_KEY))?;
            check_owner(&tx, &key.owner)?;
            let sql = format!(
                "INSERT INTO client_keys ({CLIENT_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            );
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        key.key_id,
                        key.owner.to_key(),
                        key.algorithm.as_str(),
                        key.public_jwk,
                        unix(key.created_at),
                        key.expires_at.map(unix),
                    ])
                })
                .map_err(|e| map(e, CLIENT_KEY))?;
            tx.commit().map_err(|e| map(e, CLIENT_KEY))
        })
        .await
    }

    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |conn| {
            select_one::<ClientKeyRow>(
                conn,
                "FROM client_keys WHERE key_id = ?1",
                [key_id.as_str()],
            )
        })
        .await
    }

    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError> {
        let owner = owner.to_key();
        self.read(move |conn| {
            // TEXT compares with the BINARY collation: key ids in byte order.
            select_all::<ClientKeyRow>(
                conn,
                "FROM client_keys WHERE owner = ?1 ORDER BY created_at, key_id",
                [owner.as_str()],
            )
        })
        .await
    }

    async fn remove_client_key(&self, owner: &KeyOwner, key_id: &str) -> Result<bool, StoreError> {
        let owner = owner.to_key();
        let key_id = key_id.to_owned();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM client_keys WHERE owner = ?1 AND key_id = ?2")
                .and_then(|mut stmt| stmt.execute([owner, key_id]))
                .map_err(|e| map(e, CLIENT_KEY))?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let issuer = issuer.to_owned();
        let jti = jti.to_owned();
        self.write(move |conn| {
            // One statement in autocommit mode: atomic across connections and
            // processes (writers are serialized), and durable when execute returns.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO used_assertions (issuer, jti, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (issuer, jti) DO NOTHING",
                )
                .and_then(|mut stmt| stmt.execute(params![issuer, jti, unix(expires_at)]))
                .map_err(|e| map(e, USED_ASSERTION))?;
            Ok(inserted > 0)
        })
        .await
    }
}
