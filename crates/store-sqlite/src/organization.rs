//! The organization ([`OrganizationStore`], and its administration,
//! [`OrganizationAdmin`]): one row of `organization`, whose `singleton` key is
//! always 1. Both traits are here: they share the row and its reading, and the
//! administration has one method.
//!
//! The first store is an `INSERT ... ON CONFLICT DO NOTHING` followed by a read of
//! the row, in one `BEGIN IMMEDIATE` transaction: write transactions are serialized
//! across connections and processes, so of several that race to store their
//! candidate, the first stores it and every one reads it back.

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tessera_store::sql::rows::OrganizationRow;
use tessera_store::{
    DisplayName, Domain, Organization, OrganizationAdmin, OrganizationStore, StoreError,
};

use crate::SqliteStore;
use crate::error::map;
use crate::rows::{Organizations, select_one};

/// What a failure on `organization` is about.
const ORGANIZATION: &str = OrganizationRow::WHAT;

fn stored(conn: &Connection) -> Result<Option<Organization>, StoreError> {
    select_one::<Organizations>(conn, "FROM organization WHERE singleton = 1", [])
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn organization(&self) -> Result<Option<Organization>, StoreError> {
        self.read(stored).await
    }

    async fn init_organization(
        &self,
        candidate: &Organization,
    ) -> Result<Organization, StoreError> {
        let candidate = candidate.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, ORGANIZATION))?;
            let sql = format!(
                "INSERT INTO organization (singleton, {}) \
                 VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (singleton) DO NOTHING",
                OrganizationRow::COLUMNS
            );
            let row = OrganizationRow::of(&candidate);
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![row.id, row.name, row.primary_domain, row.created_at])
                })
                .map_err(|e| map(e, ORGANIZATION))?;
            let org = stored(&tx)?.ok_or_else(|| {
                StoreError::Corrupt("the organization is missing right after its insert".into())
            })?;
            tx.commit().map_err(|e| map(e, ORGANIZATION))?;
            Ok(org)
        })
        .await
    }
}

#[async_trait]
impl OrganizationAdmin for SqliteStore {
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError> {
        let name = name.clone();
        let primary_domain = primary_domain.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, ORGANIZATION))?;
            let changed = tx
                .prepare_cached(
                    "UPDATE organization SET name = ?1, primary_domain = ?2 WHERE singleton = 1",
                )
                .and_then(|mut stmt| stmt.execute([name.as_str(), primary_domain.as_str()]))
                .map_err(|e| map(e, ORGANIZATION))?;
            if changed == 0 {
                return Err(StoreError::NotFound(ORGANIZATION));
            }
            let org = stored(&tx)?.ok_or(StoreError::NotFound(ORGANIZATION))?;
            tx.commit().map_err(|e| map(e, ORGANIZATION))?;
            Ok(org)
        })
        .await
    }
}
