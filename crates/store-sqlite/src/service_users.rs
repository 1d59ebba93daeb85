//! Administration of service users ([`ServiceUserAdmin`]).
//!
//! Usernames and API app client IDs are one namespace: creating a user checks the
//! apps and inserts in one `BEGIN IMMEDIATE` transaction, so that no other
//! connection (or process) can create an app of that name in between. A patch is
//! read, applied and written back in one such transaction, so concurrent patches
//! (from any process) never lose one another. Deleting a user deletes its tokens,
//! grants, client keys, administrator roles and personal access tokens in the
//! transaction that deletes it.

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, TransactionBehavior, params, params_from_iter};
use tessera_store::sql::paging::{Dialect, Param, UserPageSql, json_array};
use tessera_store::sql::rows::{
    AdministratorRow, ClientKeyRow, GrantRow, PersonalAccessTokenRow, TokenRow, UserRow, corrupt,
};
use tessera_store::{
    ServiceUser, ServiceUserAdmin, ServiceUserPatch, StoreError, UserPage, UserPageQuery, Username,
};

use crate::error::map;
use crate::issuing::user_by_username;
use crate::projects::client_id_is_app;
use crate::rows::{Table, Users, insert_sql, select_all, user_values};
use crate::{SqliteStore, USER};

/// `INSERT INTO service_users ...`, made once.
static INSERT_USER: LazyLock<String> =
    LazyLock::new(|| insert_sql("service_users", UserRow::COLUMNS, 13));

/// The values of `params` as SQLite binds them: a list as the text of a JSON array,
/// which the statement reads with `json_each`.
fn values(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) => Value::Text(text.clone()),
            Param::Texts(texts) => Value::Text(json_array(texts)),
            Param::Int(n) => Value::Integer(*n),
        })
        .collect()
}

/// The page of users `sql` selects, and the count of all that match, read in one
/// transaction: both from the same state of the file.
fn users_page(conn: &Connection, sql: &UserPageSql) -> Result<UserPage, StoreError> {
    let err = |e| map(e, USER);
    let tx = conn.unchecked_transaction().map_err(err)?;
    // Built for each query (filters vary): not kept in the statement cache.
    let total: i64 = tx
        .prepare(&sql.count)
        .and_then(|mut stmt| {
            stmt.query_row(params_from_iter(values(&sql.count_params)), |row| row.get(0))
        })
        .map_err(err)?;
    let users = tx
        .prepare(&sql.page)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values(&sql.page_params)), |row| Ok(Users::read(row)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(err)?;
    let total = u64::try_from(total).map_err(|e| corrupt("count of users", e))?;
    Ok(UserPage { users, total })
}

#[async_trait]
impl ServiceUserAdmin for SqliteStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, USER))?;
            if client_id_is_app(&tx, user.username.as_str())? {
                return Err(StoreError::Conflict(USER));
            }
            let row = UserRow::of(&user);
            tx.prepare_cached(&INSERT_USER)
                .and_then(|mut stmt| stmt.execute(&user_values(&row)[..]))
                .map_err(|e| map(e, USER))?;
            tx.commit().map_err(|e| map(e, USER))
        })
        .await
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        self.read(|conn| select_all::<Users>(conn, "FROM service_users ORDER BY username", []))
            .await
    }

    async fn service_users_page(&self, query: &UserPageQuery) -> Result<UserPage, StoreError> {
        let sql = UserPageSql::new(query, Dialect::Sqlite);
        self.read(move |conn| users_page(conn, &sql)).await
    }

    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError> {
        let username = username.clone();
        let patch = patch.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, USER))?;
            let mut user =
                user_by_username(&tx, username.as_str())?.ok_or(StoreError::NotFound(USER))?;
            user.apply(&patch);
            let row = UserRow::of(&user);
            tx.prepare_cached(
                "UPDATE service_users SET display_name = ?2, access_token_type = ?3, \
                 token_lifetime_secs = ?4, secret_digest = ?5, enabled = ?6, updated_at = ?7, \
                 previous_secret_digest = ?8, previous_secret_expires_at = ?9, \
                 tokens_revoked_before = ?10, description = ?11 \
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    row.id,
                    row.display_name,
                    row.access_token_type,
                    row.token_lifetime_secs,
                    row.secret_digest,
                    row.enabled,
                    row.updated_at,
                    row.previous_secret_digest,
                    row.previous_secret_expires_at,
                    row.tokens_revoked_before,
                    row.description,
                ])
            })
            .map_err(|e| map(e, USER))?;
            tx.commit().map_err(|e| map(e, USER))?;
            Ok(user)
        })
        .await
    }

    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError> {
        let username = username.clone();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, USER))?;
            // ON DELETE CASCADE would remove the tokens, grants, administrator roles
            // and personal access tokens too; deleting them explicitly keeps the
            // contract independent of the foreign_keys pragma.
            // No foreign key refers to a user from `client_keys`: the owner column is
            // `KeyOwner::to_key`'s form, `user:{id}`.
            for (sql, what) in [
                (
                    "DELETE FROM tokens WHERE user_id IN \
                     (SELECT id FROM service_users WHERE username = ?1)",
                    TokenRow::WHAT,
                ),
                (
                    "DELETE FROM role_grants WHERE user_id IN \
                     (SELECT id FROM service_users WHERE username = ?1)",
                    GrantRow::WHAT,
                ),
                (
                    "DELETE FROM client_keys WHERE owner IN \
                     (SELECT 'user:' || id FROM service_users WHERE username = ?1)",
                    ClientKeyRow::WHAT,
                ),
                (
                    "DELETE FROM administrators WHERE user_id IN \
                     (SELECT id FROM service_users WHERE username = ?1)",
                    AdministratorRow::WHAT,
                ),
                (
                    "DELETE FROM personal_access_tokens WHERE user_id IN \
                     (SELECT id FROM service_users WHERE username = ?1)",
                    PersonalAccessTokenRow::WHAT,
                ),
            ] {
                tx.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([username.as_str()]))
                    .map_err(|e| map(e, what))?;
            }
            let deleted = tx
                .prepare_cached("DELETE FROM service_users WHERE username = ?1")
                .and_then(|mut stmt| stmt.execute([username.as_str()]))
                .map_err(|e| map(e, USER))?;
            if deleted == 0 {
                // Dropping the transaction rolls it back (nothing was deleted anyway).
                return Err(StoreError::NotFound(USER));
            }
            tx.commit().map_err(|e| map(e, USER))
        })
        .await
    }
}
