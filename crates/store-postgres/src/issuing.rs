//! The issuing core ([`IssuingStore`]): lookups of clients, projects, grants,
//! client keys and personal access tokens, token records, revoked JWT ids, used
//! assertion ids and the upkeep.
//!
//! The lookups that every token request and introspection makes are batched (see
//! [Several instances, one database](crate#several-instances-one-database)), and
//! token records are committed in groups ([`group_commit`](crate::group_commit)).

use async_trait::async_trait;
use tessera_store::sql::rows::{
    ClientKeyRow, GrantRow, PersonalAccessTokenRow, ProjectRow, TokenRow, unix,
};
use tessera_store::{
    ApiApp, ClientId, ClientKey, IssuingStore, PersonalAccessToken, PoolStats, Project, ProjectId,
    RoleGrant, ServiceUser, StoreError, TokenDigest, TokenId, TokenRecord, UserId, Username,
};
use time::OffsetDateTime;

use crate::error::map;
use crate::{PostgresStore, REVOKED_JTI, USED_ASSERTION, exec, query, query_bool, query_opt, rows};

const TOKEN: &str = TokenRow::WHAT;

#[async_trait]
impl IssuingStore for PostgresStore {
    /// Batched: the lookup joins the lookups waiting for the store's next batch,
    /// never one whose statement was sent already, so the row it returns was read
    /// after the call started (see
    /// [Several instances, one database](crate#several-instances-one-database)).
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError> {
        // An unknown username costs what a known one does (`no_user_found`).
        let found = self.users_by_name.call(username.clone()).await?;
        Ok(found.or_else(tessera_store::sql::rows::no_user_found))
    }

    /// Batched, like [`service_user_by_username`](Self::service_user_by_username).
    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
        self.users_by_id.call(id.clone()).await
    }

    /// Batched, like [`service_user_by_username`](Self::service_user_by_username):
    /// the app returned was read after the call started, so a secret replaced
    /// before it is seen.
    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError> {
        self.apps_by_client_id.call(client_id.clone()).await
    }

    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let sql = format!("SELECT {} FROM projects WHERE id = $1", ProjectRow::COLUMNS);
        query_opt(&self.client().await?, &sql, &[&id.as_str()])
            .await
            .map_err(|e| map(e, ProjectRow::WHAT))?
            .map(|row| rows::project(&row))
            .transpose()
    }

    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
        let sql = format!(
            "SELECT {} FROM role_grants WHERE user_id = $1 ORDER BY project_id, role",
            GrantRow::COLUMNS
        );
        let rows = query(&self.client().await?, &sql, &[&user_id.as_str()])
            .await
            .map_err(|e| map(e, GrantRow::WHAT))?;
        rows::all(&rows, rows::grant)
    }

    /// Group commit: the record joins the records waiting for the store's flusher
    /// task, and the call returns once the statement holding it has committed (with
    /// `synchronous_commit=on`, flushed to disk), so a token is never answered
    /// before its record is durable, while one round trip and one commit serve
    /// every request in flight. If the caller stops waiting, the record may still
    /// be committed.
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        // The row is made here, by the caller's task, so that the one flusher task
        // only binds and sends.
        self.tokens.call(TokenRow::of(record)?.into_owned()).await
    }

    /// Batched, like
    /// [`service_user_by_username`](IssuingStore::service_user_by_username): the
    /// record returned was read after the call started, so a revocation committed
    /// before it is seen.
    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens_by_digest.call(*digest).await
    }

    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let digest: &[u8] = digest.as_bytes();
        let changed = exec(
            &self.client().await?,
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE digest = $1",
            &[&digest, &unix(now)],
        )
        .await
        .map_err(|e| map(e, TOKEN))?;
        Ok(changed > 0)
    }

    async fn revoke_jti(
        &self,
        jti: &TokenId,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        exec(
            &self.client().await?,
            "INSERT INTO revoked_jtis (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO UPDATE SET \
             expires_at = GREATEST(revoked_jtis.expires_at, EXCLUDED.expires_at)",
            &[&jti.as_str(), &unix(expires_at)],
        )
        .await
        .map_err(|e| map(e, REVOKED_JTI))?;
        Ok(())
    }

    async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
        query_bool(
            &self.client().await?,
            "SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = $1)",
            &[&jti.as_str()],
            REVOKED_JTI,
        )
        .await
    }

    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        let sql = format!("SELECT {} FROM client_keys WHERE key_id = $1", ClientKeyRow::COLUMNS);
        query_opt(&self.client().await?, &sql, &[&key_id])
            .await
            .map_err(|e| map(e, ClientKeyRow::WHAT))?
            .map(|row| rows::client_key(&row))
            .transpose()
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement outside a transaction: of concurrent inserts of one pair, on
        // any number of instances, one inserts and the others wait for its commit
        // and then insert nothing.
        let inserted = exec(
            &self.client().await?,
            "INSERT INTO used_assertions (issuer, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (issuer, jti) DO NOTHING",
            &[&issuer, &jti, &unix(expires_at)],
        )
        .await
        .map_err(|e| map(e, USED_ASSERTION))?;
        Ok(inserted > 0)
    }

    async fn personal_access_token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM personal_access_tokens WHERE digest = $1",
            PersonalAccessTokenRow::COLUMNS
        );
        let digest: &[u8] = digest.as_bytes();
        query_opt(&self.client().await?, &sql, &[&digest])
            .await
            .map_err(|e| map(e, PersonalAccessTokenRow::WHAT))?
            .map(|row| rows::personal_access_token(&row))
            .transpose()
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = unix(now);
        let mut client = self.client().await?;
        // One transaction: one commit for the three tables.
        let tx = client.transaction().await.map_err(|e| map(e, TOKEN))?;
        let mut purged = 0;
        for (table, what) in
            [("tokens", TOKEN), ("revoked_jtis", REVOKED_JTI), ("used_assertions", USED_ASSERTION)]
        {
            let sql = format!("DELETE FROM {table} WHERE expires_at <= $1");
            purged += exec(&tx, &sql, &[&now]).await.map_err(|e| map(e, what))?;
        }
        tx.commit().await.map_err(|e| map(e, TOKEN))?;
        Ok(purged)
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        let status = self.pool.status();
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Some(PoolStats {
            max_size: clamp(status.max_size),
            size: clamp(status.size),
            idle: clamp(status.available),
            waiting: clamp(status.waiting),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached("SELECT 1").await.map_err(|e| map(e, "database"))?;
        client.query_one(&statement, &[]).await.map_err(|e| map(e, "database"))?;
        Ok(())
    }
}
