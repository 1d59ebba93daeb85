//! The issuing core ([`IssuingStore`]): lookups of clients, projects, grants,
//! client keys and personal access tokens, token records, revoked JWT ids, used
//! assertion ids and the upkeep.
//!
//! Lookups run on the calling thread when they can (see the crate's documentation);
//! writes run on the writer connection. Token records are committed in groups
//! ([`group_commit`](crate::group_commit)).

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};
use tessera_store::sql::rows::{TokenRow, unix};
use tessera_store::{
    ApiApp, ClientId, ClientKey, IssuingStore, PersonalAccessToken, Project, ProjectId, RoleGrant,
    ServiceUser, StoreError, TokenDigest, TokenId, TokenRecord, UserId, Username,
};
use time::OffsetDateTime;

use crate::error::map;
use crate::rows::{
    Apps, ClientKeys, Grants, PersonalAccessTokens, Projects, Tokens, Users, select_all, select_one,
};
use crate::{REVOKED_JTI, SqliteStore, USED_ASSERTION};

/// The user with the username `username`.
pub(crate) fn user_by_username(
    conn: &Connection,
    username: &str,
) -> Result<Option<ServiceUser>, StoreError> {
    let found = select_one::<Users>(conn, "FROM service_users WHERE username = ?1", [username])?;
    // An unknown username costs what a known one does (`no_user_found`).
    Ok(found.or_else(tessera_store::sql::rows::no_user_found))
}

/// The API app with the client ID `client_id`.
pub(crate) fn app_by_client_id(
    conn: &Connection,
    client_id: &str,
) -> Result<Option<ApiApp>, StoreError> {
    select_one::<Apps>(conn, "FROM api_apps WHERE client_id = ?1", [client_id])
}

#[async_trait]
impl IssuingStore for SqliteStore {
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError> {
        let username = username.clone();
        self.read(move |conn| user_by_username(conn, username.as_str())).await
    }

    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            select_one::<Users>(conn, "FROM service_users WHERE id = ?1", [id.as_str()])
        })
        .await
    }

    async fn api_app_by_client_id(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ApiApp>, StoreError> {
        let client_id = client_id.clone();
        self.read(move |conn| app_by_client_id(conn, client_id.as_str())).await
    }

    async fn project_by_id(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            select_one::<Projects>(conn, "FROM projects WHERE id = ?1", [id.as_str()])
        })
        .await
    }

    async fn grants_of_user(&self, user_id: &UserId) -> Result<Vec<RoleGrant>, StoreError> {
        let user_id = user_id.clone();
        self.read(move |conn| {
            select_all::<Grants>(
                conn,
                "FROM role_grants WHERE user_id = ?1 ORDER BY project_id, role",
                [user_id.as_str()],
            )
        })
        .await
    }

    /// Group commit: the record joins the records waiting for the writer, and the
    /// call returns once the transaction holding it has committed (with
    /// `synchronous=FULL`, synced to disk), so a token is never answered before its
    /// record is durable, while one fsync serves every request in flight.
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.commit_token(record).await
    }

    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let digest = *digest;
        self.read(move |conn| {
            select_one::<Tokens>(conn, "FROM tokens WHERE digest = ?1", [&digest.as_bytes()[..]])
        })
        .await
    }

    async fn revoke_token(
        &self,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let digest = *digest;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE digest = ?1",
                )
                .and_then(|mut stmt| stmt.execute(params![&digest.as_bytes()[..], unix(now)]))
                .map_err(|e| map(e, TokenRow::WHAT))?;
            Ok(changed > 0)
        })
        .await
    }

    async fn revoke_jti(
        &self,
        jti: &TokenId,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let jti = jti.clone();
        self.write(move |conn| {
            // One statement in autocommit mode: durable when execute returns.
            conn.prepare_cached(
                "INSERT INTO revoked_jtis (jti, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (jti) DO UPDATE SET \
                 expires_at = max(expires_at, excluded.expires_at)",
            )
            .and_then(|mut stmt| stmt.execute(params![jti.as_str(), unix(expires_at)]))
            .map_err(|e| map(e, REVOKED_JTI))?;
            Ok(())
        })
        .await
    }

    async fn is_jti_revoked(&self, jti: &TokenId) -> Result<bool, StoreError> {
        let jti = jti.clone();
        self.read(move |conn| {
            conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ?1)")
                .and_then(|mut stmt| stmt.query_row([jti.as_str()], |row| row.get(0)))
                .map_err(|e| map(e, REVOKED_JTI))
        })
        .await
    }

    async fn client_key(&self, key_id: &str) -> Result<Option<ClientKey>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |conn| {
            select_one::<ClientKeys>(conn, "FROM client_keys WHERE key_id = ?1", [key_id.as_str()])
        })
        .await
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let issuer = issuer.to_owned();
        let jti = jti.to_owned();
        self.write(move |conn| {
            // One statement in autocommit mode: atomic across connections and
            // processes (writers are serialized), and durable when execute returns.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO used_assertions (issuer, jti, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (issuer, jti) DO NOTHING",
                )
                .and_then(|mut stmt| stmt.execute(params![issuer, jti, unix(expires_at)]))
                .map_err(|e| map(e, USED_ASSERTION))?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn personal_access_token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<PersonalAccessToken>, StoreError> {
        let digest = *digest;
        self.read(move |conn| {
            select_one::<PersonalAccessTokens>(
                conn,
                "FROM personal_access_tokens WHERE digest = ?1",
                [&digest.as_bytes()[..]],
            )
        })
        .await
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.write(move |conn| {
            // One transaction: one commit (and sync) for the three tables.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, TokenRow::WHAT))?;
            let mut purged = 0;
            for (table, what) in [
                ("tokens", TokenRow::WHAT),
                ("revoked_jtis", REVOKED_JTI),
                ("used_assertions", USED_ASSERTION),
            ] {
                purged += tx
                    .prepare_cached(&format!("DELETE FROM {table} WHERE expires_at <= ?1"))
                    .and_then(|mut stmt| stmt.execute([unix(now)]))
                    .map_err(|e| map(e, what))?;
            }
            tx.commit().map_err(|e| map(e, TokenRow::WHAT))?;
            Ok(purged as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT 1")
                .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
                .map_err(|e| map(e, "database"))?;
            Ok(())
        })
        .await
    }
}
