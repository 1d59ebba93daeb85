//! Administration of client keys ([`ClientKeyAdmin`]).
//!
//! A key's owner is a service user or an API app, stored as one string
//! ([`KeyOwner::to_key`]: `user:{id}` or `app:{client_id}`), so no foreign key can
//! tie a key to its owner. Instead, adding a key checks the owner in the same
//! `BEGIN IMMEDIATE` transaction as the insert, and deleting a user or an app
//! deletes its keys in the transaction that deletes it; write transactions are
//! serialized across connections and processes, so no key outlives its owner.
//!
//! Looking a key up by id and recording used assertion ids belong to the issuing
//! core ([`issuing`](crate::issuing)).

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tessera_store::sql::rows::ClientKeyRow;
use tessera_store::{ClientKey, ClientKeyAdmin, KeyOwner, StoreError};

use crate::error::map;
use crate::projects::{self, API_APP};
use crate::rows::{ClientKeys, insert_sql, select_all};
use crate::{SqliteStore, USER};

/// What a failure on `client_keys` is about.
const CLIENT_KEY: &str = ClientKeyRow::WHAT;

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
impl ClientKeyAdmin for SqliteStore {
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| {
            // The owner is checked and the key inserted in one immediate transaction:
            // no other connection (or process) can delete the owner in between.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, CLIENT_KEY))?;
            check_owner(&tx, &key.owner)?;
            let row = ClientKeyRow::of(&key);
            tx.prepare_cached(&insert_sql("client_keys", ClientKeyRow::COLUMNS, 6))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        row.key_id,
                        row.owner,
                        row.algorithm,
                        row.public_jwk,
                        row.created_at,
                        row.expires_at,
                    ])
                })
                .map_err(|e| map(e, CLIENT_KEY))?;
            tx.commit().map_err(|e| map(e, CLIENT_KEY))
        })
        .await
    }

    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError> {
        let owner = owner.to_key();
        self.read(move |conn| {
            // TEXT compares with the BINARY collation: key ids in byte order.
            select_all::<ClientKeys>(
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
}
