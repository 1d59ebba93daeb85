//! Administrators and personal access tokens ([`AccessAdmin`]).
//!
//! Granting a role reads its user's row (and the project's, for a project role)
//! `FOR KEY SHARE` in the transaction of the insert, and so does adding a personal
//! access token: the user cannot be deleted before the insert commits, and the
//! error names what is missing (the foreign key would refuse a missing user too,
//! but without saying so). Deleting a user deletes its roles and tokens with it
//! (`ON DELETE CASCADE`); a delete that comes first makes the check find no user,
//! one that comes later waits for the insert to commit and then deletes its row.
//!
//! A role held on no project is stored with the project id `''`
//! ([`AdministratorRow::NO_PROJECT`]), so that the primary key
//! `(user_id, role, project_id)` makes each role unique and the order
//! `user_id, role, project_id` (`"C"` collation: bytes) lists it before the roles
//! on a project. Granting a role held already is an
//! `INSERT ... ON CONFLICT DO NOTHING`: of concurrent grants of one role, on any
//! number of instances, exactly one inserts it.
//!
//! Looking a token up by digest belongs to the issuing core
//! ([`issuing`](crate::issuing)).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tessera_store::sql::rows::{AdministratorRow, PersonalAccessTokenRow, ProjectRow};
use tessera_store::{
    AccessAdmin, AdminRole, Administrator, PatId, PersonalAccessToken, ProjectId, StoreError,
    UserId,
};

use crate::error::{is_foreign_key_violation, map};
use crate::projects::user_exists;
use crate::rows::{self, insert_sql};
use crate::{PostgresStore, USER, exec, query, query_opt};

/// What a failure on `administrators` is about.
const ADMINISTRATOR: &str = AdministratorRow::WHAT;
/// What a failure on `personal_access_tokens` is about.
const PAT: &str = PersonalAccessTokenRow::WHAT;
const PROJECT: &str = ProjectRow::WHAT;

/// Whether a project has the id `id`, locking its row `FOR KEY SHARE`.
async fn project_exists<C: GenericClient>(client: &C, id: &str) -> Result<bool, StoreError> {
    Ok(query_opt(client, "SELECT 1 FROM projects WHERE id = $1 FOR KEY SHARE", &[&id])
        .await
        .map_err(|e| map(e, PROJECT))?
        .is_some())
}

#[async_trait]
impl AccessAdmin for PostgresStore {
    async fn add_administrator(&self, admin: &Administrator) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, ADMINISTRATOR))?;
        if !user_exists(&tx, admin.user_id.as_str()).await? {
            return Err(StoreError::NotFound(USER));
        }
        if let Some(project) = &admin.project_id
            && !project_exists(&tx, project.as_str()).await?
        {
            return Err(StoreError::NotFound(PROJECT));
        }
        let sql = format!(
            "INSERT INTO administrators ({}) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, role, project_id) DO NOTHING",
            AdministratorRow::COLUMNS
        );
        let row = AdministratorRow::of(admin);
        let inserted =
            exec(&tx, &sql, &[&row.user_id, &row.role, &row.project_id, &row.created_at])
                .await
                .map_err(|e| map(e, ADMINISTRATOR))?;
        tx.commit().await.map_err(|e| map(e, ADMINISTRATOR))?;
        Ok(inserted > 0)
    }

    async fn remove_administrator(
        &self,
        user_id: &UserId,
        role: AdminRole,
        project_id: Option<&ProjectId>,
    ) -> Result<bool, StoreError> {
        let deleted = exec(
            &self.client().await?,
            "DELETE FROM administrators WHERE user_id = $1 AND role = $2 AND project_id = $3",
            &[&user_id.as_str(), &role.as_str(), &AdministratorRow::project_column(project_id)],
        )
        .await
        .map_err(|e| map(e, ADMINISTRATOR))?;
        Ok(deleted > 0)
    }

    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError> {
        let sql = format!(
            "SELECT {} FROM administrators ORDER BY user_id, role, project_id",
            AdministratorRow::COLUMNS
        );
        let rows =
            query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, ADMINISTRATOR))?;
        rows::all(&rows, rows::administrator)
    }

    async fn administrator_roles_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<Administrator>, StoreError> {
        let sql = format!(
            "SELECT {} FROM administrators WHERE user_id = $1 ORDER BY role, project_id",
            AdministratorRow::COLUMNS
        );
        let rows = query(&self.client().await?, &sql, &[&user_id.as_str()])
            .await
            .map_err(|e| map(e, ADMINISTRATOR))?;
        rows::all(&rows, rows::administrator)
    }

    async fn add_personal_access_token(
        &self,
        token: &PersonalAccessToken,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, PAT))?;
        if !user_exists(&tx, token.user_id.as_str()).await? {
            return Err(StoreError::NotFound(USER));
        }
        let row = PersonalAccessTokenRow::of(token);
        exec(
            &tx,
            &insert_sql("personal_access_tokens", PersonalAccessTokenRow::COLUMNS, 5),
            &[&row.id, &row.user_id, &row.digest, &row.created_at, &row.expires_at],
        )
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) { StoreError::NotFound(USER) } else { map(e, PAT) }
        })?;
        tx.commit().await.map_err(|e| map(e, PAT))
    }

    async fn personal_access_tokens_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PersonalAccessToken>, StoreError> {
        // id has the "C" collation: ties in creation time are ordered by bytes.
        let sql = format!(
            "SELECT {} FROM personal_access_tokens WHERE user_id = $1 ORDER BY created_at, id",
            PersonalAccessTokenRow::COLUMNS
        );
        let rows = query(&self.client().await?, &sql, &[&user_id.as_str()])
            .await
            .map_err(|e| map(e, PAT))?;
        rows::all(&rows, rows::personal_access_token)
    }

    async fn remove_personal_access_token(
        &self,
        user_id: &UserId,
        id: &PatId,
    ) -> Result<bool, StoreError> {
        let deleted = exec(
            &self.client().await?,
            "DELETE FROM personal_access_tokens WHERE user_id = $1 AND id = $2",
            &[&user_id.as_str(), &id.as_str()],
        )
        .await
        .map_err(|e| map(e, PAT))?;
        Ok(deleted > 0)
    }
}
