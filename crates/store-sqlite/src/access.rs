//! Administrators and personal access tokens ([`AccessAdmin`]).
//!
//! Granting a role checks its user (and the project of a project role) in the same
//! `BEGIN IMMEDIATE` transaction as the insert, and so does adding a personal
//! access token: write transactions are serialized across connections and
//! processes, so no other one can delete the user in between, and the error names
//! what is missing (a foreign key would refuse a missing user too, but without
//! saying so, and only with the `foreign_keys` pragma on). Deleting a user deletes
//! its roles and tokens in the transaction that deletes it
//! ([`service_users`](crate::service_users)).
//!
//! A role held on no project is stored with the project id `''`
//! ([`AdministratorRow::NO_PROJECT`]), so that the primary key
//! `(user_id, role, project_id)` makes each role unique and the order
//! `user_id, role, project_id` lists it before the roles on a project.
//!
//! Looking a token up by digest belongs to the issuing core
//! ([`issuing`](crate::issuing)).

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tessera_store::sql::rows::{AdministratorRow, PersonalAccessTokenRow, ProjectRow};
use tessera_store::{
    AccessAdmin, AdminRole, Administrator, PatId, PersonalAccessToken, ProjectId, StoreError,
    UserId,
};

use crate::error::{is_foreign_key_violation, map};
use crate::projects::user_exists;
use crate::rows::{Administrators, PersonalAccessTokens, insert_sql, select_all};
use crate::{SqliteStore, USER};

/// What a failure on `administrators` is about.
const ADMINISTRATOR: &str = AdministratorRow::WHAT;
/// What a failure on `personal_access_tokens` is about.
const PAT: &str = PersonalAccessTokenRow::WHAT;
const PROJECT: &str = ProjectRow::WHAT;

/// Whether a project has the id `id`.
fn project_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?1)")
        .and_then(|mut stmt| stmt.query_row([id], |row| row.get(0)))
        .map_err(|e| map(e, PROJECT))
}

#[async_trait]
impl AccessAdmin for SqliteStore {
    async fn add_administrator(&self, admin: &Administrator) -> Result<bool, StoreError> {
        let admin = admin.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, ADMINISTRATOR))?;
            if !user_exists(&tx, admin.user_id.as_str())? {
                return Err(StoreError::NotFound(USER));
            }
            if let Some(project) = &admin.project_id
                && !project_exists(&tx, project.as_str())?
            {
                return Err(StoreError::NotFound(PROJECT));
            }
            let row = AdministratorRow::of(&admin);
            let sql = format!(
                "INSERT INTO administrators ({}) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_id, role, project_id) DO NOTHING",
                AdministratorRow::COLUMNS
            );
            let inserted = tx
                .prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![row.user_id, row.role, row.project_id, row.created_at])
                })
                .map_err(|e| map(e, ADMINISTRATOR))?;
            tx.commit().map_err(|e| map(e, ADMINISTRATOR))?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn remove_administrator(
        &self,
        user_id: &UserId,
        role: AdminRole,
        project_id: Option<&ProjectId>,
    ) -> Result<bool, StoreError> {
        let user_id = user_id.clone();
        let project = AdministratorRow::project_column(project_id).to_owned();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM administrators \
                     WHERE user_id = ?1 AND role = ?2 AND project_id = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.execute([user_id.as_str(), role.as_str(), project.as_str()])
                })
                .map_err(|e| map(e, ADMINISTRATOR))?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn administrators(&self) -> Result<Vec<Administrator>, StoreError> {
        // TEXT compares with the BINARY collation: byte order, '' (no project) first.
        self.read(|conn| {
            select_all::<Administrators>(
                conn,
                "FROM administrators ORDER BY user_id, role, project_id",
                [],
            )
        })
        .await
    }

    async fn administrator_roles_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<Administrator>, StoreError> {
        let user_id = user_id.clone();
        self.read(move |conn| {
            select_all::<Administrators>(
                conn,
                "FROM administrators WHERE user_id = ?1 ORDER BY role, project_id",
                [user_id.as_str()],
            )
        })
        .await
    }

    async fn add_personal_access_token(
        &self,
        token: &PersonalAccessToken,
    ) -> Result<(), StoreError> {
        let token = token.clone();
        self.write(move |conn| {
            // The user is checked and the token inserted in one immediate transaction:
            // no other connection (or process) can delete the user in between.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, PAT))?;
            if !user_exists(&tx, token.user_id.as_str())? {
                return Err(StoreError::NotFound(USER));
            }
            let row = PersonalAccessTokenRow::of(&token);
            tx.prepare_cached(&insert_sql(
                "personal_access_tokens",
                PersonalAccessTokenRow::COLUMNS,
                5,
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    row.id,
                    row.user_id,
                    row.digest,
                    row.created_at,
                    row.expires_at,
                ])
            })
            .map_err(|e| {
                if is_foreign_key_violation(&e) { StoreError::NotFound(USER) } else { map(e, PAT) }
            })?;
            tx.commit().map_err(|e| map(e, PAT))
        })
        .await
    }

    async fn personal_access_tokens_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PersonalAccessToken>, StoreError> {
        let user_id = user_id.clone();
        self.read(move |conn| {
            // TEXT compares with the BINARY collation: ids in byte order.
            select_all::<PersonalAccessTokens>(
                conn,
                "FROM personal_access_tokens WHERE user_id = ?1 ORDER BY created_at, id",
                [user_id.as_str()],
            )
        })
        .await
    }

    async fn remove_personal_access_token(
        &self,
        user_id: &UserId,
        id: &PatId,
    ) -> Result<bool, StoreError> {
        let user_id = user_id.clone();
        let id = id.clone();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM personal_access_tokens WHERE user_id = ?1 AND id = ?2")
                .and_then(|mut stmt| stmt.execute([user_id.as_str(), id.as_str()]))
                .map_err(|e| map(e, PAT))?;
            Ok(deleted > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use tessera_store::prelude::*;
    use tessera_store::testkit::{sample_personal_access_token, sample_user, t0};

    use super::*;

    /// Deleting a user deletes its roles and tokens itself: with the foreign keys
    /// off (a connection that never turned them on), none is left behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_user_deletes_its_access_without_foreign_keys()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("t.db")).await?;
        store
            .write(|conn| {
                conn.pragma_update(None, "foreign_keys", false).map_err(|e| map(e, "test"))
            })
            .await?;
        let (user, _) = sample_user("doomed");
        store.create_service_user(&user).await?;
        let admin = Administrator::new(user.id.clone(), AdminRole::OrgOwner, None, t0());
        assert!(store.add_administrator(&admin).await?);
        let token = sample_personal_access_token(&user, "1", "doomed-token", 0);
        store.add_personal_access_token(&token).await?;
        store.delete_service_user(&user.username).await?;
        let left: i64 = store
            .read(|conn| {
                conn.query_row(
                    "SELECT (SELECT count(*) FROM administrators) \
                     + (SELECT count(*) FROM personal_access_tokens)",
                    [],
                    |row| row.get(0),
                )
                .map_err(|e| map(e, "test"))
            })
            .await?;
        assert_eq!(left, 0, "no role or token outlives its user");
        assert_eq!(store.personal_access_token_by_digest(&token.digest).await?, None);
        Ok(())
    }
}
