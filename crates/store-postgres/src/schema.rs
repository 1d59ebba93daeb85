//! Connection settings and schema migrations.

use std::time::Duration;

use tessera_store::sql::rows::corrupt;
use tessera_store::{AppId, SecretDigest, StoreError};
use tokio_postgres::{Client, NoTls, Transaction};

use crate::error::map;

use self::Step::{FillAppIds, SaltSecrets, Sql};

/// The key of the session-level advisory lock held around a migration run
/// (`pg_advisory_lock(bigint)`): the bytes of `"tessera"` followed by 1. It is
/// database-wide, so migrations of different schemas take turns too; they are rare
/// and short.
pub(crate) const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6101;

/// How long a migration run waits for a lock (the migration lock held by another
/// instance, or a table lock held by a running server) before it gives up with
/// [`StoreError::Unavailable`].
const MIGRATION_LOCK_TIMEOUT: &str = "60s";

/// A step of a migration.
pub(crate) enum Step {
    /// Statements, run with `batch_execute`.
    Sql(&'static str),
    /// Gives every API app without an app id a generated one ([`AppId::generate`]:
    /// 18 digits from the operating system's random number generator, as the apps
    /// created since get).
    FillAppIds,
    /// Salts every stored secret digest ([`salt_secrets`]): the salt is drawn per
    /// digest from the operating system's random number generator.
    SaltSecrets,
}

/// A migration: its steps, run in order in one transaction.
pub(crate) type Migration = &'static [Step];

/// The migrations, in order; migration `i` (0-based) has version `i + 1`.
///
/// Each is applied once, in its own transaction together with its row in
/// `schema_migrations` (PostgreSQL's DDL is transactional, so a failed migration
/// leaves nothing behind). Never edit or reorder an entry that has been released:
/// add a new one.
///
/// Identifier and ordering columns use the `"C"` collation, so that `ORDER BY`
/// sorts by bytes, as the other backends and the records' `Ord` do, whatever the
/// database's default collation is.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: everything of the first release: service users and their opaque tokens,
    // revoked JWT ids, signing keys, projects (with the reserved project of the
    // server's own API), their API apps and the roles granted to service users.
    &[Sql(r#"CREATE TABLE service_users (
        id TEXT COLLATE "C" PRIMARY KEY,
        username TEXT COLLATE "C" NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        access_token_type TEXT NOT NULL,
        token_lifetime_secs BIGINT NOT NULL,
        secret_digest BYTEA,
        enabled BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE tokens (
        digest BYTEA PRIMARY KEY,
        jti TEXT COLLATE "C" NOT NULL UNIQUE,
        user_id TEXT COLLATE "C" NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT,
        roles TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX tokens_expires_at ON tokens(expires_at);
    CREATE INDEX tokens_user_id ON tokens(user_id);
    CREATE TABLE revoked_jtis (
        jti TEXT COLLATE "C" PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX revoked_jtis_expires_at ON revoked_jtis(expires_at);
    CREATE TABLE signing_keys (
        kid TEXT COLLATE "C" PRIMARY KEY,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        sealed_private_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        activates_at BIGINT NOT NULL
    );
    CREATE INDEX signing_keys_activates_at ON signing_keys(activates_at, kid);
    CREATE TABLE projects (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    INSERT INTO projects (id, name, created_at) VALUES ('zitadel', 'Tessera API', 0);
    CREATE TABLE api_apps (
        client_id TEXT COLLATE "C" PRIMARY KEY,
        project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        secret_digest BYTEA,
        enabled BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX api_apps_project_id ON api_apps(project_id);
    CREATE TABLE role_grants (
        user_id TEXT COLLATE "C" NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
        role TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, project_id, role)
    );
    CREATE INDEX role_grants_project_id ON role_grants(project_id);"#)],
    // 2: client keys (public keys that service users and API apps sign assertions
    // with; `owner` is `user:{id}` or `app:{client_id}`, so no foreign key) and the
    // assertion ids already used, until they expire.
    &[Sql(r#"CREATE TABLE client_keys (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT COLLATE "C" NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX client_keys_owner ON client_keys(owner);
    CREATE TABLE used_assertions (
        issuer TEXT COLLATE "C" NOT NULL,
        jti TEXT COLLATE "C" NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (issuer, jti)
    );
    CREATE INDEX used_assertions_expires_at ON used_assertions(expires_at);"#)],
    // 3: the previous secret of a service user or an API app, accepted until its
    // expiry after a rotation with a grace period (both NULL, or both set).
    &[Sql(r#"ALTER TABLE service_users
        ADD COLUMN previous_secret_digest BYTEA,
        ADD COLUMN previous_secret_expires_at BIGINT;
    ALTER TABLE api_apps
        ADD COLUMN previous_secret_digest BYTEA,
        ADD COLUMN previous_secret_expires_at BIGINT;"#)],
    // 4: token records without the unique constraint (and index) on `jti`. Ids are
    // 128 random bits, and no request looks a record up by id; the index cost every
    // insert a write to a random page of its B-tree (and, after each checkpoint, a
    // full-page image of it in the write-ahead log). A lookup by id now scans the
    // table. `tokens_jti_key` is the name PostgreSQL gave the constraint of
    // migration 1.
    &[Sql("ALTER TABLE tokens DROP CONSTRAINT IF EXISTS tokens_jti_key;")],
    // 5: the organization that owns everything (one row: `singleton` is always 1),
    // and the app id of each API app, distinct from its client ID and unique among
    // API apps. Existing apps get a generated app id before the column becomes NOT
    // NULL. (`ADD COLUMN` locks the table until the migration commits, so no app is
    // created in between.)
    &[
        Sql(r#"CREATE TABLE organization (
            singleton SMALLINT PRIMARY KEY CHECK (singleton = 1),
            id TEXT COLLATE "C" NOT NULL,
            name TEXT NOT NULL,
            primary_domain TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        ALTER TABLE api_apps ADD COLUMN app_id TEXT COLLATE "C";"#),
        FillAppIds,
        Sql("ALTER TABLE api_apps
            ALTER COLUMN app_id SET NOT NULL,
            ADD CONSTRAINT api_apps_app_id_key UNIQUE (app_id);"),
    ],
    // 6: the revocation cut-off of a service user (unix seconds): its tokens issued
    // before it are revoked. NULL, no cut-off, for every existing user (adding a
    // nullable column without a default rewrites no row).
    &[Sql("ALTER TABLE service_users ADD COLUMN tokens_revoked_before BIGINT;")],
    // 7: salted secret digests. Every stored secret digest (the current and the
    // previous secret of service users and API apps), the unsalted SHA-256 of the
    // secret (32 bytes), becomes a salt of its own followed by SHA-256(salt ‖ that
    // digest) (48 bytes, `SecretDigest`), so every secret keeps working. The tables
    // are locked first, so that no row is written in between by an older instance.
    &[Sql("LOCK TABLE service_users, api_apps IN SHARE ROW EXCLUSIVE MODE;"), SaltSecrets],
    // 8: administrators (the roles service users hold: a project role on one
    // project, or with the project id '' on every project, which no project id can
    // be; other roles always have '') and personal access tokens (opaque bearer
    // tokens of a service user, stored as their digest only). Both go with their
    // user (ON DELETE CASCADE). `project_id` has no foreign key ('' could not
    // have one): deleting a project deletes the roles held on it explicitly.
    &[Sql(r#"CREATE TABLE administrators (
        user_id TEXT COLLATE "C" NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        role TEXT COLLATE "C" NOT NULL,
        project_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL,
        PRIMARY KEY (user_id, role, project_id)
    );
    CREATE TABLE personal_access_tokens (
        id TEXT COLLATE "C" PRIMARY KEY,
        user_id TEXT COLLATE "C" NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        digest BYTEA NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX personal_access_tokens_user_id ON personal_access_tokens(user_id);"#)],
    // 9: the roles defined in projects (the group NULL for none). Projects can be
    // deleted from now on: deleting one deletes its roles, API apps (and their
    // client keys), grants and the administrator roles held on it in the same
    // transaction, so no foreign key needs to cascade.
    &[Sql(r#"CREATE TABLE project_roles (
        project_id TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
        key TEXT COLLATE "C" NOT NULL,
        display_name TEXT NOT NULL,
        group_name TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (project_id, key)
    );"#)],
    // 10: the description of a service user, '' (none) for every existing user
    // (a constant default rewrites no row).
    &[Sql("ALTER TABLE service_users ADD COLUMN description TEXT NOT NULL DEFAULT '';")],
    // 11: pages of service users ordered by creation time read the index in order
    // (ties broken by id, in the "C" collation of the column), instead of sorting
    // every user for each page.
    &[Sql("CREATE INDEX service_users_created_at ON service_users(created_at, id);")],
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    applied_at BIGINT NOT NULL
)";

/// Whether `name` may be used as the store's schema: a lowercase unquoted
/// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes, not starting with `pg_`), so
/// that it needs no quoting in `search_path` or in SQL.
pub(crate) fn check_schema_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Backend(
            format!(
                "invalid schema name {name:?}: use 1 to 63 characters from a-z, 0-9 and _, \
                 not starting with a digit or pg_"
            )
            .into(),
        ))
    }
}

/// Opens one connection of its own (not from the pool) and brings the schema up to
/// date on it; closing the connection afterwards releases the migration lock even
/// if the run failed half-way.
pub(crate) async fn migrate(
    config: &tokio_postgres::Config,
    schema: Option<&str>,
) -> Result<(), StoreError> {
    migrate_with(config, schema, MIGRATIONS).await
}

/// Like [`migrate`], knowing only `migrations` (the first ones of [`MIGRATIONS`],
/// as an older release would).
pub(crate) async fn migrate_with(
    config: &tokio_postgres::Config,
    schema: Option<&str>,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| map(e, "database"))?;
    let connection = tokio::spawn(connection);
    let result = migrate_locked(client, schema, migrations).await;
    // The client is gone: the connection task sends Terminate and ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    result
}

/// Takes the migration lock on `client`, migrates, and releases the lock.
async fn migrate_locked(
    mut client: Client,
    schema: Option<&str>,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    client
        .batch_execute(&format!("SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
        .await
        .map_err(err)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(err)?;
    let result = apply_missing(&mut client, schema, migrations).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result?;
    unlocked.map_err(err)?;
    Ok(())
}

/// The highest applied migration version, 0 on a fresh schema.
async fn current_version(client: &Client) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .await?
        .try_get(0)
}

/// Creates the schema if it is missing, then applies the missing migrations, each
/// in its own transaction. Runs under the migration lock, so no other instance
/// migrates at the same time and each migration is applied once.
async fn apply_missing(
    client: &mut Client,
    schema: Option<&str>,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    if let Some(schema) = schema {
        // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on
        // the database even when the schema exists.
        let exists: bool = client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&schema])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(err)?;
        if !exists {
            // `check_schema_name` allowed only [a-z0-9_]: nothing to escape.
            client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.map_err(err)?;
        }
    }
    client.batch_execute(CREATE_MIGRATIONS_TABLE).await.map_err(err)?;
    let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let current = current_version(client).await.map_err(err)?;
    if current > known {
        return Err(StoreError::Corrupt(format!(
            "the database schema is at version {current}, newer than this build knows \
             ({known}); upgrade Tessera"
        )));
    }
    for (version, steps) in (1_i64..).zip(migrations).skip(usize::try_from(current).unwrap_or(0)) {
        let tx = client.transaction().await.map_err(err)?;
        for step in *steps {
            match step {
                Sql(sql) => tx.batch_execute(sql).await.map_err(err)?,
                FillAppIds => fill_app_ids(&tx).await?,
                SaltSecrets => salt_secrets(&tx).await?,
            }
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
    }
    Ok(())
}

/// Gives every API app whose `app_id` is NULL a generated app id.
///
/// Two generated ids are alike once in 9 × 10^17 pairs; should it happen,
/// the unique constraint that follows fails the migration, which is rolled back and
/// drawn again at the next connect.
async fn fill_app_ids(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    let rows =
        tx.query("SELECT client_id FROM api_apps WHERE app_id IS NULL", &[]).await.map_err(err)?;
    for row in rows {
        let client_id: &str = row.try_get(0).map_err(|e| corrupt("API app client ID", e))?;
        let app_id = AppId::generate().map_err(|e| StoreError::Backend(Box::new(e)))?;
        tx.execute(
            "UPDATE api_apps SET app_id = $2 WHERE client_id = $1",
            &[&client_id, &app_id.as_str()],
        )
        .await
        .map_err(err)?;
    }
    Ok(())
}

/// The tables and key columns holding secret digests, and the digest columns.
const SECRET_COLUMNS: [(&str, &str, &str); 4] = [
    ("service_users", "id", "secret_digest"),
    ("service_users", "id", "previous_secret_digest"),
    ("api_apps", "client_id", "secret_digest"),
    ("api_apps", "client_id", "previous_secret_digest"),
];

/// Replaces every unsalted secret digest (32 bytes: the SHA-256 of the secret) with
/// a [`SecretDigest`] of it with a fresh salt ([`SecretDigest::from_unsalted`]), one
/// salt per digest. A value of another length was unreadable before and is left as
/// it is (reading it stays [`StoreError::Corrupt`]).
async fn salt_secrets(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    for (table, key, column) in SECRET_COLUMNS {
        let rows = tx
            .query(
                &format!("SELECT {key}, {column} FROM {table} WHERE octet_length({column}) = 32"),
                &[],
            )
            .await
            .map_err(err)?;
        let update = tx
            .prepare(&format!("UPDATE {table} SET {column} = $2 WHERE {key} = $1"))
            .await
            .map_err(err)?;
        for row in rows {
            let id: &str = row.try_get(0).map_err(|e| corrupt(table, e))?;
            let unsalted: &[u8] = row.try_get(1).map_err(|e| corrupt(column, e))?;
            let Ok(unsalted) = <[u8; 32]>::try_from(unsalted) else { continue };
            let salted = SecretDigest::from_unsalted(&unsalted)
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            tx.execute(&update, &[&id, &&salted.as_bytes()[..]]).await.map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for good in ["public", "tessera", "_x", "tessera_test_0123abcd", &"a".repeat(63)] {
            assert!(check_schema_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Tessera", "1abc", "a-b", "a b", "a\"b", "pg_temp", &"a".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    /// A schema that a release of version 7 left, holding a user, gains empty
    /// tables of administrators and personal access tokens, which then hold the
    /// user's roles and tokens and delete them with it.
    #[cfg(feature = "testkit")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrading_from_version_7_adds_empty_access_tables()
    -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::prelude::*;
        use tessera_store::{
            AdminRole, Administrator, PatId, PersonalAccessToken, TokenDigest, Username,
        };

        use crate::testkit::{TestSchema, url_or_skip};

        let Some(url) = url_or_skip("upgrading_from_version_7_adds_empty_access_tables") else {
            return Ok(());
        };
        let schema = TestSchema::create_at_version(&url, 7).await?;
        let client = schema.client().await?;
        client
            .batch_execute(&format!(
                "INSERT INTO service_users (id, username, display_name, access_token_type, \
                 token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
                 previous_secret_digest, previous_secret_expires_at, tokens_revoked_before) \
                 VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, \
                 decode('{}', 'hex'), true, 10, 20, NULL, NULL, NULL);",
                "ab".repeat(48)
            ))
            .await?;

        let store = schema.store().await?;
        let versions: i64 =
            client.query_one("SELECT count(*) FROM schema_migrations", &[]).await?.try_get(0)?;
        assert_eq!(versions, i64::try_from(crate::SCHEMA_VERSION)?);
        let old = store.service_user_by_username(&Username::new("old")?).await?.ok_or("kept")?;
        assert_eq!((old.display_name.as_str(), old.updated_at.unix_timestamp()), ("Old", 20));
        for table in ["administrators", "personal_access_tokens"] {
            let rows: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .try_get(0)?;
            assert_eq!(rows, 0, "{table} starts empty");
        }
        let definitions: Vec<String> = client
            .query(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 \
                 AND tablename IN ('administrators', 'personal_access_tokens') ORDER BY indexdef",
                &[&schema.name()],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let name = schema.name();
        for (unique, table, columns) in [
            (true, "administrators", "user_id, role, project_id"),
            (true, "personal_access_tokens", "id"),
            (true, "personal_access_tokens", "digest"),
            (false, "personal_access_tokens", "user_id"),
        ] {
            let kind = if unique { "CREATE UNIQUE INDEX" } else { "CREATE INDEX" };
            let suffix = format!(" ON {name}.{table} USING btree ({columns})");
            assert!(
                definitions.iter().any(|d| d.starts_with(kind) && d.ends_with(&suffix)),
                "no {kind} on {table} ({columns}) in {definitions:#?}"
            );
        }

        let admin = Administrator::new(
            old.id.clone(),
            AdminRole::IamOwner,
            None,
            time::OffsetDateTime::from_unix_timestamp(30)?,
        );
        assert!(store.add_administrator(&admin).await?);
        let token = PersonalAccessToken {
            id: PatId::new("7")?,
            user_id: old.id.clone(),
            digest: TokenDigest::from_bytes([0xcd; 32]),
            created_at: time::OffsetDateTime::from_unix_timestamp(50)?,
            expires_at: None,
        };
        store.add_personal_access_token(&token).await?;
        let project: String =
            client.query_one("SELECT project_id FROM administrators", &[]).await?.try_get(0)?;
        assert_eq!(project, "", "no project is ''");
        assert_eq!(store.administrators().await?, [admin]);
        assert_eq!(store.personal_access_token_by_digest(&token.digest).await?, Some(token));
        store.delete_service_user(&old.username).await?;
        let left: i64 = client
            .query_one(
                "SELECT (SELECT count(*) FROM administrators) \
                 + (SELECT count(*) FROM personal_access_tokens)",
                &[],
            )
            .await?
            .try_get(0)?;
        assert_eq!(left, 0, "deleting the user deletes its roles and tokens");
        Ok(())
    }

    /// A schema that a release of version 8 left, holding a project with an app, a
    /// grant and a project owner, gains an empty table of project roles, and the
    /// project can be deleted with everything it holds.
    #[cfg(feature = "testkit")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrading_from_version_8_adds_project_roles() -> Result<(), Box<dyn std::error::Error>>
    {
        use tessera_store::prelude::*;
        use tessera_store::{ClientId, DisplayName, ProjectId, ProjectRole, RoleKey, Username};

        use crate::testkit::{TestSchema, url_or_skip};

        let Some(url) = url_or_skip("upgrading_from_version_8_adds_project_roles") else {
            return Ok(());
        };
        let schema = TestSchema::create_at_version(&url, 8).await?;
        let client = schema.client().await?;
        client
            .batch_execute(
                "INSERT INTO projects (id, name, created_at) VALUES ('orders', 'Orders', 5); \
                 INSERT INTO service_users (id, username, display_name, access_token_type, \
                 token_lifetime_secs, secret_digest, enabled, created_at, updated_at) \
                 VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, NULL, true, 10, 20); \
                 INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
                 created_at, updated_at, app_id) \
                 VALUES ('orders-api', 'orders', 'Orders API', NULL, true, 0, 0, '7'); \
                 INSERT INTO role_grants VALUES ('100000000000000001', 'orders', 'reader'); \
                 INSERT INTO administrators VALUES ('100000000000000001', 'PROJECT_OWNER', \
                 'orders', 30);",
            )
            .await?;

        let store = schema.store().await?;
        let orders = ProjectId::new("orders")?;
        assert!(store.project_roles(&orders).await?.is_empty(), "no roles after the upgrade");
        let role = ProjectRole::new(
            orders.clone(),
            RoleKey::new("reader")?,
            DisplayName::new("Reader")?,
            None,
            time::OffsetDateTime::from_unix_timestamp(40)?,
        );
        store.add_project_role(&role).await?;
        assert_eq!(store.project_roles(&orders).await?, [role]);
        store.delete_project(&orders).await?;
        let left: i64 = client
            .query_one(
                "SELECT (SELECT count(*) FROM projects WHERE id = 'orders') \
                 + (SELECT count(*) FROM api_apps) + (SELECT count(*) FROM role_grants) \
                 + (SELECT count(*) FROM administrators) + (SELECT count(*) FROM project_roles)",
                &[],
            )
            .await?
            .try_get(0)?;
        assert_eq!(left, 0, "the project goes with everything it holds");
        assert!(store.api_app_by_client_id(&ClientId::new("orders-api")?).await?.is_none());
        assert!(store.service_user_by_username(&Username::new("old")?).await?.is_some());
        Ok(())
    }

    /// A schema that a release of version 9 left, holding a user, gives it an empty
    /// description, which a patch then sets.
    #[cfg(feature = "testkit")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upgrading_from_version_9_gives_users_an_empty_description()
    -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::prelude::*;
        use tessera_store::{ServiceUserPatch, Username};

        use crate::testkit::{TestSchema, url_or_skip};

        let test = "upgrading_from_version_9_gives_users_an_empty_description";
        let Some(url) = url_or_skip(test) else {
            return Ok(());
        };
        let schema = TestSchema::create_at_version(&url, 9).await?;
        let client = schema.client().await?;
        client
            .batch_execute(
                "INSERT INTO service_users (id, username, display_name, access_token_type, \
                 token_lifetime_secs, secret_digest, enabled, created_at, updated_at) \
                 VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, NULL, true, 10, 20);",
            )
            .await?;
        let store = schema.store().await?;
        let name = Username::new("old")?;
        let old = store.service_user_by_username(&name).await?.ok_or("kept")?;
        assert_eq!((old.description.as_str(), old.display_name.as_str()), ("", "Old"));
        let mut patch = ServiceUserPatch::at(time::OffsetDateTime::from_unix_timestamp(30)?);
        patch.description = Some("Exports invoices".to_owned());
        store.update_service_user(&name, &patch).await?;
        let stored: String = client
            .query_one("SELECT description FROM service_users WHERE username = 'old'", &[])
            .await?
            .try_get(0)?;
        assert_eq!(stored, "Exports invoices");
        Ok(())
    }

    #[test]
    fn the_reserved_project_is_created_with_the_schema() {
        assert!(matches!(
            MIGRATIONS[0],
            [Sql(sql)] if sql.contains("VALUES ('zitadel', 'Tessera API', 0)")
        ));
    }
}
