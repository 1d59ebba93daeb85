//! Token signing keys ([`SigningKeyStore`]).
//!
//! The compare-and-insert runs under a transaction-scoped advisory lock of the
//! schema: racing instances take turns, and each reads the newest key only once the
//! one before it has committed, so of several instances racing to rotate from the
//! same newest key, exactly one inserts.

use async_trait::async_trait;
use tessera_store::sql::rows::{SigningKeyRow, corrupt};
use tessera_store::{SigningKeyRecord, SigningKeyStore, StoreError};

use crate::error::map;
use crate::rows::insert_sql;
use crate::{PostgresStore, SIGNING_KEY_LOCK, exec, lock, query, query_opt, rows};

const SIGNING_KEY: &str = SigningKeyRow::WHAT;

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM signing_keys ORDER BY activates_at, kid",
            SigningKeyRow::COLUMNS
        );
        let rows =
            query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, SIGNING_KEY))?;
        rows::all(&rows, rows::signing_key)
    }

    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, SIGNING_KEY))?;
        // Racing instances take turns here; each reads the newest key only once the
        // previous one has committed (read committed: every statement sees the
        // commits made before it started).
        lock(&tx, SIGNING_KEY_LOCK, SIGNING_KEY).await?;
        let latest: Option<String> = query_opt(
            &tx,
            "SELECT kid FROM signing_keys ORDER BY activates_at DESC, kid DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| map(e, SIGNING_KEY))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(|e| corrupt("signing key id", e))?;
        if latest.as_deref() != expected_latest {
            // Dropping the transaction rolls it back and releases the lock.
            return Ok(false);
        }
        let row = SigningKeyRow::of(key);
        exec(
            &tx,
            &insert_sql("signing_keys", SigningKeyRow::COLUMNS, 6),
            &[
                &row.kid,
                &row.algorithm,
                &row.public_jwk,
                &row.sealed_private_key,
                &row.created_at,
                &row.activates_at,
            ],
        )
        .await
        .map_err(|e| map(e, SIGNING_KEY))?;
        tx.commit().await.map_err(|e| map(e, SIGNING_KEY))?;
        Ok(true)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let deleted =
            exec(&self.client().await?, "DELETE FROM signing_keys WHERE kid = $1", &[&kid])
                .await
                .map_err(|e| map(e, SIGNING_KEY))?;
        Ok(deleted > 0)
    }
}
