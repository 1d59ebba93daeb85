//! Administration of service users ([`ServiceUserAdmin`]).
//!
//! Usernames and API app client IDs are one namespace: creating a user takes the
//! namespace advisory lock before it checks the apps and inserts, so that no other
//! instance can create an app of that name in between. A patch reads the row
//! `FOR UPDATE`, applies it and writes it back, so concurrent patches (from any
//! instance) never lose one another. Deleting a user deletes its tokens, grants,
//! administrator roles and personal access tokens with it (`ON DELETE CASCADE`,
//! which PostgreSQL always enforces) and its client keys in the same transaction.

use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tessera_store::sql::paging::{Dialect, Param, UserPageSql};
use tessera_store::sql::rows::{UserRow, corrupt};
use tessera_store::{
    ServiceUser, ServiceUserAdmin, ServiceUserPatch, StoreError, UserPage, UserPageQuery, Username,
};
use tokio_postgres::IsolationLevel;

use crate::error::map;
use crate::rows::{insert_sql, user_values};
use crate::{
    NAMESPACE_LOCK, PostgresStore, USER, client_keys, exec, lock, projects, query, query_opt, rows,
};

/// `INSERT INTO service_users ...`, made once.
static INSERT_USER: LazyLock<String> =
    LazyLock::new(|| insert_sql("service_users", UserRow::COLUMNS, 13));

/// The user `WHERE <condition>`, `condition` naming `$1`.
async fn user_where<C: GenericClient>(
    client: &C,
    condition: &str,
    value: &str,
) -> Result<Option<ServiceUser>, StoreError> {
    let sql = format!("SELECT {} FROM service_users WHERE {condition}", UserRow::COLUMNS);
    query_opt(client, &sql, &[&value])
        .await
        .map_err(|e| map(e, USER))?
        .map(|row| rows::user(&row))
        .transpose()
}

/// `params` as the driver binds them.
fn values(params: &[Param]) -> Vec<crate::rows::Param<'_>> {
    params
        .iter()
        .map(|param| -> crate::rows::Param<'_> {
            match param {
                Param::Text(text) => text,
                Param::Texts(texts) => texts,
                Param::Int(n) => n,
            }
        })
        .collect()
}

#[async_trait]
impl ServiceUserAdmin for PostgresStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, USER))?;
        lock(&tx, NAMESPACE_LOCK, USER).await?;
        if projects::client_id_is_app(&tx, user.username.as_str()).await? {
            return Err(StoreError::Conflict(USER));
        }
        let row = UserRow::of(user);
        exec(&tx, &INSERT_USER, &user_values(&row)).await.map_err(|e| map(e, USER))?;
        tx.commit().await.map_err(|e| map(e, USER))
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        let sql = format!("SELECT {} FROM service_users ORDER BY username", UserRow::COLUMNS);
        let rows = query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, USER))?;
        rows::all(&rows, rows::user)
    }

    async fn service_users_page(&self, query: &UserPageQuery) -> Result<UserPage, StoreError> {
        let sql = UserPageSql::new(query, Dialect::Postgres);
        let mut client = self.client().await?;
        // One snapshot for the count and the page: a repeatable-read transaction.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| map(e, USER))?;
        // The statements vary with the filter: prepared unnamed, not cached.
        let total: i64 = tx
            .query_one(sql.count.as_str(), &values(&sql.count_params))
            .await
            .map_err(|e| map(e, USER))?
            .try_get(0)
            .map_err(|e| corrupt("count of users", e))?;
        let rows = tx
            .query(sql.page.as_str(), &values(&sql.page_params))
            .await
            .map_err(|e| map(e, USER))?;
        tx.commit().await.map_err(|e| map(e, USER))?;
        let total = u64::try_from(total).map_err(|e| corrupt("count of users", e))?;
        Ok(UserPage { users: rows::all(&rows, rows::user)?, total })
    }

    async fn update_service_user(
        &self,
        username: &Username,
        patch: &ServiceUserPatch,
    ) -> Result<ServiceUser, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, USER))?;
        // FOR UPDATE: a concurrent update of the same user waits for this one to
        // commit, then reads (and patches) its result.
        let mut user = user_where(&tx, "username = $1 FOR UPDATE", username.as_str())
            .await?
            .ok_or(StoreError::NotFound(USER))?;
        user.apply(patch);
        let row = UserRow::of(&user);
        exec(
            &tx,
            "UPDATE service_users SET display_name = $2, access_token_type = $3, \
             token_lifetime_secs = $4, secret_digest = $5, enabled = $6, updated_at = $7, \
             previous_secret_digest = $8, previous_secret_expires_at = $9, \
             tokens_revoked_before = $10, description = $11 \
             WHERE id = $1",
            &[
                &row.id,
                &row.display_name,
                &row.access_token_type,
                &row.token_lifetime_secs,
                &row.secret_digest,
                &row.enabled,
                &row.updated_at,
                &row.previous_secret_digest,
                &row.previous_secret_expires_at,
                &row.tokens_revoked_before,
                &row.description,
            ],
        )
        .await
        .map_err(|e| map(e, USER))?;
        tx.commit().await.map_err(|e| map(e, USER))?;
        Ok(user)
    }

    async fn delete_service_user(&self, username: &Username) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, USER))?;
        // The user first: its tokens, grants, administrator roles and personal
        // access tokens go with it (ON DELETE CASCADE), and
        // this waits for a client key being added for it to commit (it holds the
        // row FOR KEY SHARE), so that the next statement deletes that key too. The
        // owner of a user's keys is `KeyOwner::to_key`'s form, `user:{id}`.
        let owner: Option<String> = query_opt(
            &tx,
            "DELETE FROM service_users WHERE username = $1 RETURNING 'user:' || id",
            &[&username.as_str()],
        )
        .await
        .map_err(|e| map(e, USER))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(|e| corrupt("user id", e))?;
        let Some(owner) = owner else {
            // Dropping the transaction rolls it back (nothing was deleted anyway).
            return Err(StoreError::NotFound(USER));
        };
        client_keys::delete_keys_of(&tx, &owner).await?;
        tx.commit().await.map_err(|e| map(e, USER))
    }
}
