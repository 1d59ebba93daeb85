//! Token signing keys ([`SigningKeyStore`]).
//!
//! The compare-and-insert reads the newest key and inserts in one `BEGIN IMMEDIATE`
//! transaction: write transactions are serialized across connections and
//! processes, so of several instances racing to rotate from the same newest key,
//! exactly one inserts.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tessera_store::sql::rows::SigningKeyRow;
use tessera_store::{SigningKeyRecord, SigningKeyStore, StoreError};

use crate::SqliteStore;
use crate::error::map;
use crate::rows::{SigningKeys, insert_sql, select_all};

const SIGNING_KEY: &str = SigningKeyRow::WHAT;

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            select_all::<SigningKeys>(conn, "FROM signing_keys ORDER BY activates_at, kid", [])
        })
        .await
    }

    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let key = key.clone();
        let expected = expected_latest.map(str::to_owned);
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, SIGNING_KEY))?;
            let latest: Option<String> = tx
                .prepare_cached(
                    "SELECT kid FROM signing_keys ORDER BY activates_at DESC, kid DESC LIMIT 1",
                )
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
                .map_err(|e| map(e, SIGNING_KEY))?;
            if latest != expected {
                return Ok(false);
            }
            let row = SigningKeyRow::of(&key);
            tx.prepare_cached(&insert_sql("signing_keys", SigningKeyRow::COLUMNS, 6))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        row.kid,
                        row.algorithm,
                        row.public_jwk,
                        row.sealed_private_key,
                        row.created_at,
                        row.activates_at,
                    ])
                })
                .map_err(|e| map(e, SIGNING_KEY))?;
            tx.commit().map_err(|e| map(e, SIGNING_KEY))?;
            Ok(true)
        })
        .await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let kid = kid.to_owned();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM signing_keys WHERE kid = ?1")
                .and_then(|mut stmt| stmt.execute([kid]))
                .map_err(|e| map(e, SIGNING_KEY))?;
            Ok(deleted > 0)
        })
        .await
    }
}
