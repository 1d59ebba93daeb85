//! The organization ([`OrganizationStore`], and its administration,
//! [`OrganizationAdmin`]): one row of `organization`, whose `singleton` key is
//! always 1. Both traits are here: they share the row and its reading, and the
//! administration has one method.
//!
//! The first store is an `INSERT ... ON CONFLICT DO NOTHING` followed by a read of
//! the row, in one transaction. Of several instances that race to store their
//! candidate, the insert of each waits for the one in progress to commit and then
//! does nothing, and the read, a statement of its own (read committed), sees the
//! row committed first: every one gets the same organization.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tessera_store::sql::rows::OrganizationRow;
use tessera_store::{
    DisplayName, Domain, Organization, OrganizationAdmin, OrganizationStore, StoreError,
};

use crate::error::map;
use crate::{PostgresStore, exec, query_opt, rows};

/// What a failure on `organization` is about.
const ORGANIZATION: &str = OrganizationRow::WHAT;

async fn stored<C: GenericClient>(client: &C) -> Result<Option<Organization>, StoreError> {
    let sql = format!("SELECT {} FROM organization WHERE singleton = 1", OrganizationRow::COLUMNS);
    query_opt(client, &sql, &[])
        .await
        .map_err(|e| map(e, ORGANIZATION))?
        .map(|row| rows::organization(&row))
        .transpose()
}

#[async_trait]
impl OrganizationStore for PostgresStore {
    async fn organization(&self) -> Result<Option<Organization>, StoreError> {
        stored(&self.client().await?).await
    }

    async fn init_organization(
        &self,
        candidate: &Organization,
    ) -> Result<Organization, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, ORGANIZATION))?;
        let sql = format!(
            "INSERT INTO organization (singleton, {}) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (singleton) DO NOTHING",
            OrganizationRow::COLUMNS
        );
        let row = OrganizationRow::of(candidate);
        exec(&tx, &sql, &[&row.id, &row.name, &row.primary_domain, &row.created_at])
            .await
            .map_err(|e| map(e, ORGANIZATION))?;
        let org = stored(&tx).await?.ok_or_else(|| {
            StoreError::Corrupt("the organization is missing right after its insert".into())
        })?;
        tx.commit().await.map_err(|e| map(e, ORGANIZATION))?;
        Ok(org)
    }
}

#[async_trait]
impl OrganizationAdmin for PostgresStore {
    async fn update_organization(
        &self,
        name: &DisplayName,
        primary_domain: &Domain,
    ) -> Result<Organization, StoreError> {
        // One statement: atomic, and it returns the row as it stored it.
        let sql = format!(
            "UPDATE organization SET name = $1, primary_domain = $2 WHERE singleton = 1 \
             RETURNING {}",
            OrganizationRow::COLUMNS
        );
        query_opt(&self.client().await?, &sql, &[&name.as_str(), &primary_domain.as_str()])
            .await
            .map_err(|e| map(e, ORGANIZATION))?
            .map(|row| rows::organization(&row))
            .transpose()?
            .ok_or(StoreError::NotFound(ORGANIZATION))
    }
}
