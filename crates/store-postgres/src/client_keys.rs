//! Administration of client keys ([`ClientKeyAdmin`]).
//!
//! A key's owner is a service user or an API app, stored as one string
//! ([`KeyOwner::to_key`]: `user:{id}` or `app:{client_id}`), so no foreign key can
//! tie a key to its owner. Instead:
//!
//! - adding a key reads its owner's row `FOR KEY SHARE` in the transaction of the
//!   insert, so the owner cannot be deleted before the key is committed;
//! - deleting a user or an app first deletes its row, which waits for any such
//!   transaction to commit, and then, in a later statement of the same transaction
//!   (which sees that commit), deletes the owner's keys.
//!
//! Either the key is added first and deleted with its owner, or the owner is
//! deleted first and the key is refused with [`StoreError::NotFound`]: no key
//! outlives its owner.
//!
//! Looking a key up by id and recording used assertion ids belong to the issuing
//! core ([`issuing`](crate::issuing)).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tessera_store::sql::rows::ClientKeyRow;
use tessera_store::{ClientKey, ClientKeyAdmin, KeyOwner, StoreError};

use crate::error::map;
use crate::projects::{self, API_APP};
use crate::rows::{self, insert_sql};
use crate::{PostgresStore, USER, exec, query};

/// What a failure on `client_keys` is about.
const CLIENT_KEY: &str = ClientKeyRow::WHAT;

/// Checks that `owner` exists, locking its row `FOR KEY SHARE` until the
/// transaction ends; [`StoreError::NotFound`] names what is missing.
async fn lock_owner<C: GenericClient>(client: &C, owner: &KeyOwner) -> Result<(), StoreError> {
    match owner {
        KeyOwner::ServiceUser(id) => {
            if !projects::user_exists(client, id.as_str()).await? {
                return Err(StoreError::NotFound(USER));
            }
        }
        KeyOwner::ApiApp(client_id) => {
            if !projects::app_exists(client, client_id.as_str()).await? {
                return Err(StoreError::NotFound(API_APP));
            }
        }
    }
    Ok(())
}

/// Deletes every key of `owner`; called in the transaction that deletes the owner,
/// after the owner's row (see the module's documentation).
pub(crate) async fn delete_keys_of<C: GenericClient>(
    client: &C,
    owner: &str,
) -> Result<u64, StoreError> {
    exec(client, "DELETE FROM client_keys WHERE owner = $1", &[&owner])
        .await
        .map_err(|e| map(e, CLIENT_KEY))
}

#[async_trait]
impl ClientKeyAdmin for PostgresStore {
    async fn add_client_key(&self, key: &ClientKey) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, CLIENT_KEY))?;
        lock_owner(&tx, &key.owner).await?;
        let row = ClientKeyRow::of(key);
        exec(
            &tx,
            &insert_sql("client_keys", ClientKeyRow::COLUMNS, 6),
            &[
                &row.key_id,
                &row.owner,
                &row.algorithm,
                &row.public_jwk,
                &row.created_at,
                &row.expires_at,
            ],
        )
        .await
        .map_err(|e| map(e, CLIENT_KEY))?;
        tx.commit().await.map_err(|e| map(e, CLIENT_KEY))
    }

    async fn client_keys_of(&self, owner: &KeyOwner) -> Result<Vec<ClientKey>, StoreError> {
        // key_id has the "C" collation: ties in creation time are ordered by bytes.
        let sql = format!(
            "SELECT {} FROM client_keys WHERE owner = $1 ORDER BY created_at, key_id",
            ClientKeyRow::COLUMNS
        );
        let rows = query(&self.client().await?, &sql, &[&owner.to_key()])
            .await
            .map_err(|e| map(e, CLIENT_KEY))?;
        rows::all(&rows, rows::client_key)
    }

    async fn remove_client_key(&self, owner: &KeyOwner, key_id: &str) -> Result<bool, StoreError> {
        let deleted = exec(
            &self.client().await?,
            "DELETE FROM client_keys WHERE owner = $1 AND key_id = $2",
            &[&owner.to_key(), &key_id],
        )
        .await
        .map_err(|e| map(e, CLIENT_KEY))?;
        Ok(deleted > 0)
    }
}
