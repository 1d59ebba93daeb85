//! Connection settings and schema migrations.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tessera_store::{AppId, SecretDigest, StoreError};

use crate::error::{is_busy, map};

use self::Step::{FillAppIds, SaltSecrets, Sql};

/// How long a connection waits for another one (in this or another process) to
/// release a lock before it gives up with `SQLITE_BUSY`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pages the write-ahead log may hold before the writer copies it into the
/// database file (SQLite's default is 1000, 4 MiB of 4 KiB pages).
const WAL_CHECKPOINT_PAGES: i64 = 4_000;

/// A step of a migration.
pub(crate) enum Step {
    /// Statements, run with `execute_batch`.
    Sql(&'static str),
    /// Gives every API app without an app id a generated one ([`AppId::generate`]:
    /// 18 digits from the operating system's random number generator, which SQL
    /// cannot draw from).
    FillAppIds,
    /// Salts every stored secret digest ([`salt_secrets`]): the salt is drawn per
    /// digest from the operating system's random number generator, which SQL cannot
    /// draw from.
    SaltSecrets,
}

/// A migration: its steps, run in order in one transaction.
pub(crate) type Migration = &'static [Step];

/// The migrations, in order; migration `i` (0-based) has version `i + 1`.
///
/// Each is applied once, in its own `BEGIN IMMEDIATE` transaction together with
/// its row in `schema_migrations`. Never edit or reorder an entry that has been
/// released: add a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: service users and token records.
    &[Sql("CREATE TABLE service_users (
        id TEXT PRIMARY KEY NOT NULL,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        access_token_type TEXT NOT NULL,
        token_lifetime_secs INTEGER NOT NULL,
        secret_digest BLOB,
        enabled INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        digest BLOB PRIMARY KEY NOT NULL,
        jti TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE INDEX tokens_expires_at ON tokens(expires_at);
    CREATE INDEX tokens_user_id ON tokens(user_id);")],
    // 2: token signing keys (private keys sealed with the master key).
    &[Sql("CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        sealed_private_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        activates_at INTEGER NOT NULL
    );
    CREATE INDEX signing_keys_activates_at ON signing_keys(activates_at, kid);")],
    // 3: projects (with the reserved project of the server's own API), their API
    // apps, role grants of service users, revoked JWT ids, and the roles of tokens.
    &[Sql("CREATE TABLE projects (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO projects (id, name, created_at) VALUES ('zitadel', 'Tessera API', 0);
    CREATE TABLE api_apps (
        client_id TEXT PRIMARY KEY NOT NULL,
        project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL,
        secret_digest BLOB,
        enabled INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX api_apps_project_id ON api_apps(project_id);
    CREATE TABLE role_grants (
        user_id TEXT NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        project_id TEXT NOT NULL REFERENCES projects(id),
        role TEXT NOT NULL,
        PRIMARY KEY (user_id, project_id, role)
    );
    CREATE INDEX role_grants_project_id ON role_grants(project_id);
    CREATE TABLE revoked_jtis (
        jti TEXT PRIMARY KEY NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX revoked_jtis_expires_at ON revoked_jtis(expires_at);
    ALTER TABLE tokens ADD COLUMN roles TEXT NOT NULL DEFAULT '{}';")],
    // 4: client keys (public keys that service users and API apps sign assertions
    // with; `owner` is `user:{id}` or `app:{client_id}`, so no foreign key) and the
    // assertion ids already used, until they expire.
    &[Sql("CREATE TABLE client_keys (
        key_id TEXT PRIMARY KEY NOT NULL,
        owner TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX client_keys_owner ON client_keys(owner);
    CREATE TABLE used_assertions (
        issuer TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (issuer, jti)
    );
    CREATE INDEX used_assertions_expires_at ON used_assertions(expires_at);")],
    // 5: the previous secret of a service user or an API app, accepted until its
    // expiry after a rotation with a grace period (both NULL, or both set).
    &[Sql("ALTER TABLE service_users ADD COLUMN previous_secret_digest BLOB;
    ALTER TABLE service_users ADD COLUMN previous_secret_expires_at INTEGER;
    ALTER TABLE api_apps ADD COLUMN previous_secret_digest BLOB;
    ALTER TABLE api_apps ADD COLUMN previous_secret_expires_at INTEGER;")],
    // 6: token records without the unique index on `jti`. Ids are 128 random bits,
    // and no request looks a record up by id; the index cost every insert a write
    // to a random page of its B-tree. A lookup by id now scans the table.
    &[Sql("CREATE TABLE tokens_v6 (
        digest BLOB PRIMARY KEY NOT NULL,
        jti TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        client_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        audience TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER,
        roles TEXT NOT NULL DEFAULT '{}'
    );
    INSERT INTO tokens_v6 (digest, jti, user_id, client_id, scopes, audience, issued_at,
        expires_at, revoked_at, roles)
    SELECT digest, jti, user_id, client_id, scopes, audience, issued_at, expires_at,
        revoked_at, roles FROM tokens;
    DROP TABLE tokens;
    ALTER TABLE tokens_v6 RENAME TO tokens;
    CREATE INDEX tokens_expires_at ON tokens(expires_at);
    CREATE INDEX tokens_user_id ON tokens(user_id);")],
    // 7: the organization that owns everything (one row: `singleton` is always 1),
    // and the app id of each API app, distinct from its client ID and unique among
    // API apps. Existing apps get a generated app id; then the table is rebuilt with
    // the column NOT NULL (SQLite cannot add the constraint to a column).
    &[
        Sql("CREATE TABLE organization (
            singleton INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
            id TEXT NOT NULL,
            name TEXT NOT NULL,
            primary_domain TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        ALTER TABLE api_apps ADD COLUMN app_id TEXT;"),
        FillAppIds,
        Sql("CREATE TABLE api_apps_v7 (
            client_id TEXT PRIMARY KEY NOT NULL,
            project_id TEXT NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            secret_digest BLOB,
            enabled INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            previous_secret_digest BLOB,
            previous_secret_expires_at INTEGER,
            app_id TEXT NOT NULL
        );
        INSERT INTO api_apps_v7 (client_id, project_id, name, secret_digest, enabled,
            created_at, updated_at, previous_secret_digest, previous_secret_expires_at, app_id)
        SELECT client_id, project_id, name, secret_digest, enabled, created_at, updated_at,
            previous_secret_digest, previous_secret_expires_at, app_id FROM api_apps;
        DROP TABLE api_apps;
        ALTER TABLE api_apps_v7 RENAME TO api_apps;
        CREATE INDEX api_apps_project_id ON api_apps(project_id);
        CREATE UNIQUE INDEX api_apps_app_id ON api_apps(app_id);"),
    ],
    // 8: the revocation cut-off of a service user (unix seconds): its tokens issued
    // before it are revoked. NULL, no cut-off, for every existing user.
    &[Sql("ALTER TABLE service_users ADD COLUMN tokens_revoked_before INTEGER;")],
    // 9: salted secret digests. Every stored secret digest (the current and the
    // previous secret of service users and API apps), the unsalted SHA-256 of the
    // secret (32 bytes), becomes a salt of its own followed by SHA-256(salt ‖ that
    // digest) (48 bytes, `SecretDigest`), so every secret keeps working.
    &[SaltSecrets],
    // 10: administrators (the roles service users hold: a project role on one
    // project, or with the project id '' on every project, which no project id can
    // be; other roles always have '') and personal access tokens (opaque bearer
    // tokens of a service user, stored as their digest only). `project_id` has no
    // foreign key ('' could not have one): deleting a project deletes the roles
    // held on it explicitly.
    &[Sql("CREATE TABLE administrators (
        user_id TEXT NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        project_id TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, role, project_id)
    );
    CREATE TABLE personal_access_tokens (
        id TEXT PRIMARY KEY NOT NULL,
        user_id TEXT NOT NULL REFERENCES service_users(id) ON DELETE CASCADE,
        digest BLOB NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX personal_access_tokens_user_id ON personal_access_tokens(user_id);")],
    // 11: the roles defined in projects (the group NULL for none). Projects can be
    // deleted from now on: deleting one deletes its roles, API apps (and their
    // client keys), grants and the administrator roles held on it in the same
    // transaction, so no foreign key needs to cascade.
    &[Sql("CREATE TABLE project_roles (
        project_id TEXT NOT NULL REFERENCES projects(id),
        key TEXT NOT NULL,
        display_name TEXT NOT NULL,
        group_name TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (project_id, key)
    );")],
    // 12: the description of a service user, '' (none) for every existing user.
    &[Sql("ALTER TABLE service_users ADD COLUMN description TEXT NOT NULL DEFAULT '';")],
    // 13: pages of service users ordered by creation time read the index in order
    // (ties broken by id), instead of sorting every user for each page.
    &[Sql("CREATE INDEX service_users_created_at ON service_users(created_at, id);")],
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER
)";

fn flags(create: bool) -> OpenFlags {
    // No SQLITE_OPEN_URI: a path is a path, even one that starts with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create { flags | OpenFlags::SQLITE_OPEN_CREATE } else { flags }
}

/// Opens the writer connection: creates the file if missing, switches it to WAL,
/// sets the per-connection pragmas and runs the migrations.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn =
        Connection::open_with_flags(path, flags(true)).map_err(|e| map(e, "database"))?;
    common_pragmas(&conn)?;
    set_wal(&conn)?;
    // FULL: in WAL mode the WAL is synced at every commit, so a write is durable
    // (survives a power cut, not only a process crash) when the call returns.
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| map(e, "database"))?;
    // Token records are keyed by issue time first, so a group of them fills the
    // last pages of each index, and SQLite's default page cache (2 MiB) holds what
    // the writer touches. Copy the log into the file less often than by default,
    // so that a page changed by many commits is copied once.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
        .map_err(|e| map(e, "database"))?;
    refuse_read_only(&conn)?;
    migrate(&mut conn)?;
    probe_write(&conn)?;
    Ok(conn)
}

/// Refuses a file SQLite could open only for reading (it falls back to that
/// silently when the file is not writable): every write would fail later.
fn refuse_read_only(conn: &Connection) -> Result<(), StoreError> {
    match conn.is_readonly(rusqlite::MAIN_DB) {
        Ok(false) => Ok(()),
        Ok(true) => Err(StoreError::Unavailable(Box::new(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the file can be opened for reading only (check its owner, mode and \
             attributes, and that its file system is mounted writable)",
        )))),
        Err(e) => Err(map(e, "database")),
    }
}

/// Commits one real write, so that a database whose log (`-wal`) or index
/// (`-shm`) cannot be written is refused when it is opened rather than at the
/// first request. It rewrites the latest migration row with its own values.
fn probe_write(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE schema_migrations SET applied_at = applied_at
         WHERE version = (SELECT MAX(version) FROM schema_migrations)",
        [],
    )
    .map(drop)
    .map_err(|e| map(e, "database"))
}

/// Opens a reader connection on a file the writer has already set up.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags(false)).map_err(|e| map(e, "database"))?;
    common_pragmas(&conn)?;
    conn.pragma_update(None, "query_only", true).map_err(|e| map(e, "database"))?;
    Ok(conn)
}

/// Opens a reader for lookups on the calling thread: one that fails at once with
/// `SQLITE_BUSY` instead of waiting for a lock.
pub(crate) fn open_inline_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_reader(path)?;
    conn.busy_timeout(std::time::Duration::ZERO).map_err(|e| map(e, "database"))?;
    Ok(conn)
}

fn common_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| map(e, "database"))?;
    conn.pragma_update(None, "foreign_keys", true).map_err(|e| map(e, "database"))?;
    Ok(())
}

/// Switches the file to WAL (a persistent setting). Changing the journal mode
/// needs an exclusive lock, and SQLite does not always call the busy handler for
/// it, so retry while another process holds a lock, up to [`BUSY_TIMEOUT`].
fn set_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Backend(
                    format!("SQLite refused WAL mode (journal mode is {mode:?})").into(),
                ));
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(map(e, "database")),
        }
    }
}

/// The highest applied migration version, 0 on a fresh database.
fn current_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                        WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
}

/// Applies the missing migrations. Safe when several processes open the same
/// fresh file at once: each migration runs in a `BEGIN IMMEDIATE` transaction
/// that first checks whether another process has applied it meanwhile.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_with(conn, MIGRATIONS)
}

/// Like [`migrate`], knowing only `migrations` (the first ones of [`MIGRATIONS`],
/// as an older release would).
pub(crate) fn migrate_with(
    conn: &mut Connection,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
    let err = |e| map(e, "schema migration");
    let current = current_version(conn).map_err(err)?;
    if current > known {
        return Err(StoreError::Corrupt(format!(
            "the database schema is at version {current}, newer than this build knows \
             ({known}); upgrade Tessera"
        )));
    }
    if current == known {
        return Ok(());
    }
    for (version, steps) in (1..).zip(migrations) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
        tx.execute_batch(CREATE_MIGRATIONS_TABLE).map_err(err)?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )
            .map_err(err)?;
        if !applied {
            for step in *steps {
                apply(&tx, step)?;
            }
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                [version, time::OffsetDateTime::now_utc().unix_timestamp()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
    }
    Ok(())
}

/// Runs one step of a migration, inside the migration's transaction.
fn apply(conn: &Connection, step: &Step) -> Result<(), StoreError> {
    match step {
        Sql(sql) => conn.execute_batch(sql).map_err(|e| map(e, "schema migration")),
        FillAppIds => fill_app_ids(conn),
        SaltSecrets => salt_secrets(conn),
    }
}

/// The tables and key columns holding secret digests, and the digest columns.
pub(crate) const SECRET_COLUMNS: [(&str, &str, &str); 4] = [
    ("service_users", "id", "secret_digest"),
    ("service_users", "id", "previous_secret_digest"),
    ("api_apps", "client_id", "secret_digest"),
    ("api_apps", "client_id", "previous_secret_digest"),
];

/// Replaces every unsalted secret digest (32 bytes: the SHA-256 of the secret) with
/// a [`SecretDigest`] of it with a fresh salt ([`SecretDigest::from_unsalted`]), one
/// salt per digest. A value of another length was unreadable before and is left as
/// it is (reading it stays [`StoreError::Corrupt`]).
fn salt_secrets(conn: &Connection) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    for (table, key, column) in SECRET_COLUMNS {
        let rows: Vec<(String, Vec<u8>)> = conn
            .prepare(&format!(
                "SELECT {key}, {column} FROM {table} WHERE length({column}) = 32 \
                 AND typeof({column}) = 'blob'"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect()
            })
            .map_err(err)?;
        let mut update = conn
            .prepare(&format!("UPDATE {table} SET {column} = ?2 WHERE {key} = ?1"))
            .map_err(err)?;
        for (id, unsalted) in rows {
            let Ok(unsalted) = <[u8; 32]>::try_from(unsalted.as_slice()) else { continue };
            let salted = SecretDigest::from_unsalted(&unsalted)
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            update.execute(rusqlite::params![id, &salted.as_bytes()[..]]).map_err(err)?;
        }
    }
    Ok(())
}

/// Gives every API app whose `app_id` is NULL a generated app id.
///
/// Two generated ids are alike once in 9 × 10^17 pairs; should it happen,
/// the unique index that follows fails the migration, which is rolled back and
/// drawn again at the next open.
fn fill_app_ids(conn: &Connection) -> Result<(), StoreError> {
    let err = |e| map(e, "schema migration");
    let client_ids: Vec<String> = conn
        .prepare("SELECT client_id FROM api_apps WHERE app_id IS NULL")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .map_err(err)?;
    for client_id in client_ids {
        let app_id = AppId::generate().map_err(|e| StoreError::Backend(Box::new(e)))?;
        conn.execute(
            "UPDATE api_apps SET app_id = ?2 WHERE client_id = ?1",
            [client_id.as_str(), app_id.as_str()],
        )
        .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database as migration `version` left it.
    fn at_version(version: usize) -> Result<Connection, Box<dyn std::error::Error>> {
        let mut conn = Connection::open_in_memory()?;
        migrate_with(&mut conn, &MIGRATIONS[..version])?;
        Ok(conn)
    }

    #[test]
    fn upgrading_from_version_5_keeps_tokens_and_drops_the_jti_index()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = at_version(5)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at) \
             VALUES ('100000000000000001', 'old', 'old', 'opaque', 60, x'00', 1, 0, 0);
             INSERT INTO tokens VALUES (x'01', 'jti-1', '100000000000000001', 'old', 'openid', \
             '[\"old\"]', 0, 60, 30, '{\"p\":{\"r\":\"d\"}}');",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let row: (Vec<u8>, String, String, i64, Option<i64>, String) = conn.query_row(
            "SELECT digest, jti, audience, expires_at, revoked_at, roles FROM tokens",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?;
        assert_eq!(
            row,
            (
                vec![1],
                "jti-1".into(),
                r#"["old"]"#.into(),
                60,
                Some(30),
                r#"{"p":{"r":"d"}}"#.into()
            )
        );
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_list('tokens') ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(
            indexes,
            ["sqlite_autoindex_tokens_1", "tokens_expires_at", "tokens_user_id"],
            "the digest key and the two indexes, no index on jti"
        );
        // The foreign key still holds: deleting the user deletes its tokens.
        conn.execute("DELETE FROM service_users", [])?;
        let left: i64 = conn.query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))?;
        assert_eq!(left, 0);
        Ok(())
    }

    #[test]
    fn migrations_apply_once_in_memory() -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        migrate(&mut conn)?;
        let rows: i64 =
            conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))?;
        assert_eq!(rows, i64::try_from(MIGRATIONS.len())?);
        assert_eq!(current_version(&conn)?, rows);
        Ok(())
    }

    #[test]
    fn upgrading_keeps_tokens_and_adds_the_reserved_project()
    -> Result<(), Box<dyn std::error::Error>> {
        // A database as version 2 left it, holding a user and a token.
        let mut conn = at_version(2)?;
        conn.execute_batch(
            "INSERT INTO service_users VALUES ('100000000000000001', 'old', 'old', 'opaque', \
             60, NULL, 1, 0, 0);
             INSERT INTO tokens VALUES (x'00', 'jti', '100000000000000001', 'old', 'openid', \
             '[]', 0, 60, NULL);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let roles: String = conn.query_row("SELECT roles FROM tokens", [], |r| r.get(0))?;
        assert_eq!(roles, "{}", "tokens issued before roles existed carry none");
        let reserved: (String, String, i64) =
            conn.query_row("SELECT id, name, created_at FROM projects", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        assert_eq!(reserved, ("zitadel".to_owned(), "Tessera API".to_owned(), 0));
        Ok(())
    }

    #[test]
    fn upgrading_from_version_3_adds_the_client_key_tables()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = at_version(3)?;
        conn.execute_batch(
            "INSERT INTO service_users VALUES ('100000000000000001', 'old', 'old', 'opaque', \
             60, NULL, 1, 0, 0);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let users: i64 = conn.query_row("SELECT count(*) FROM service_users", [], |r| r.get(0))?;
        assert_eq!(users, 1, "the upgrade keeps the data");
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name IN ('client_keys', 'used_assertions') AND sql IS NOT NULL \
                 ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(indexes, ["client_keys_owner", "used_assertions_expires_at"]);
        Ok(())
    }

    #[test]
    fn upgrading_from_version_4_adds_no_previous_secrets() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut conn = at_version(4)?;
        conn.execute_batch(
            "INSERT INTO service_users VALUES ('100000000000000001', 'old', 'old', 'opaque', \
             60, x'00', 1, 0, 0);
             INSERT INTO api_apps VALUES ('old-api', 'zitadel', 'Old API', x'00', 1, 0, 0);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        for table in ["service_users", "api_apps"] {
            let previous: (Option<Vec<u8>>, Option<i64>, Vec<u8>) = conn.query_row(
                &format!(
                    "SELECT previous_secret_digest, previous_secret_expires_at, secret_digest \
                     FROM {table}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            assert_eq!(previous, (None, None, vec![0]), "{table}: the current secret stays");
        }
        Ok(())
    }

    #[test]
    fn upgrading_from_version_6_gives_api_apps_app_ids() -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = at_version(6)?;
        conn.execute_batch(
            "INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
             created_at, updated_at, previous_secret_digest, previous_secret_expires_at) \
             VALUES ('old-api', 'zitadel', 'Old API', x'00', 1, 0, 0, x'01', 60), \
             ('other-api', 'zitadel', 'Other API', NULL, 0, 5, 6, NULL, NULL);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let rows: Vec<(String, String)> = conn
            .prepare("SELECT client_id, app_id FROM api_apps ORDER BY client_id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 2, "the upgrade keeps the apps");
        let previous: (Vec<u8>, i64) = conn.query_row(
            "SELECT previous_secret_digest, previous_secret_expires_at FROM api_apps \
             WHERE client_id = 'old-api'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!(previous, (vec![1], 60), "and their columns");
        for (client_id, app_id) in &rows {
            assert_eq!(app_id.len(), 18, "{client_id}: {app_id}");
            assert!(app_id.bytes().all(|b| b.is_ascii_digit()), "{client_id}: {app_id}");
        }
        assert_ne!(rows[0].1, rows[1].1, "each app has an app id of its own");
        // The column is NOT NULL and unique.
        let not_null: bool = conn.query_row(
            "SELECT \"notnull\" FROM pragma_table_info('api_apps') WHERE name = 'app_id'",
            [],
            |r| r.get(0),
        )?;
        assert!(not_null);
        let taken = conn.execute(
            "INSERT INTO api_apps (client_id, project_id, name, enabled, created_at, \
             updated_at, app_id) VALUES ('new-api', 'zitadel', 'New', 1, 0, 0, ?1)",
            [&rows[0].1],
        );
        assert!(taken.is_err(), "a taken app id is refused");
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name = 'api_apps' AND sql IS NOT NULL ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(indexes, ["api_apps_app_id", "api_apps_project_id"]);
        let organizations: i64 =
            conn.query_row("SELECT count(*) FROM organization", [], |r| r.get(0))?;
        assert_eq!(organizations, 0, "no organization until one is stored");
        Ok(())
    }

    #[test]
    fn upgrading_from_version_7_gives_users_no_revocation_cut_off()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = at_version(7)?;
        conn.execute_batch(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at) \
             VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, NULL, 1, 10, 20, \
             NULL, NULL), \
             ('100000000000000002', 'older', 'Older', 'opaque', 600, zeroblob(32), 0, 30, \
             40, zeroblob(32), 50);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let cut_offs: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT username, tokens_revoked_before FROM service_users ORDER BY username")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        assert_eq!(
            cut_offs,
            [("old".to_owned(), None), ("older".to_owned(), None)],
            "existing users have no cut-off"
        );
        let nullable: bool = conn.query_row(
            "SELECT \"notnull\" = 0 AND dflt_value IS NULL FROM pragma_table_info('service_users') \
             WHERE name = 'tokens_revoked_before'",
            [],
            |r| r.get(0),
        )?;
        assert!(nullable, "a nullable column without a default");
        // They read back as records without one, their other columns kept.
        let read = |name: &str| -> Result<tessera_store::ServiceUser, Box<dyn std::error::Error>> {
            crate::rows::select_one::<crate::rows::Users>(
                &conn,
                "FROM service_users WHERE username = ?1",
                [name],
            )?
            .ok_or_else(|| format!("the user {name} is kept").into())
        };
        let old = read("old")?;
        assert_eq!(old.tokens_revoked_before, None);
        assert_eq!(
            (
                old.display_name.as_str(),
                old.token_lifetime.as_secs(),
                old.updated_at.unix_timestamp()
            ),
            ("Old", 60, 20)
        );
        let older = read("older")?;
        assert_eq!(older.tokens_revoked_before, None);
        assert_eq!(older.credentials.previous.map(|p| p.expires_at.unix_timestamp()), Some(50));
        // A cut-off set afterwards is read back from its unix seconds.
        conn.execute(
            "UPDATE service_users SET tokens_revoked_before = 1700000000 WHERE username = 'old'",
            [],
        )?;
        let cut_off = read("old")?.tokens_revoked_before.map(|t| t.unix_timestamp());
        assert_eq!(cut_off, Some(1_700_000_000));
        Ok(())
    }

    #[test]
    fn upgrading_from_version_8_salts_every_secret_digest() -> Result<(), Box<dyn std::error::Error>>
    {
        use sha2::{Digest, Sha256};
        use tessera_store::{ApiApp, ServiceUser};
        const SECRET: &str = "the-readme-example-secret-of-32-chars";
        const PREVIOUS: &str = "a-previous-secret-still-in-its-grace";
        const APP_SECRET: &str = "the-api-app-secret-of-at-least-32-ch";
        let unsalted = |secret: &str| -> [u8; 32] { Sha256::digest(secret.as_bytes()).into() };
        let mut conn = at_version(8)?;
        conn.execute(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at, tokens_revoked_before) \
             VALUES ('100000000000000001', 'first', 'First', 'jwt', 60, ?1, 1, 10, 20, ?2, \
             2000000000, NULL), \
             ('100000000000000002', 'second', 'Second', 'opaque', 60, ?1, 1, 10, 20, NULL, \
             NULL, 30), \
             ('100000000000000003', 'none', 'None', 'opaque', 60, NULL, 1, 10, 20, NULL, \
             NULL, NULL)",
            [&unsalted(SECRET)[..], &unsalted(PREVIOUS)[..]],
        )?;
        conn.execute(
            "INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
             created_at, updated_at, previous_secret_digest, previous_secret_expires_at, \
             app_id) VALUES ('orders-api', 'zitadel', 'Orders API', ?1, 1, 0, 0, ?2, \
             2000000000, '200000000000000001')",
            [&unsalted(APP_SECRET)[..], &unsalted(SECRET)[..]],
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);

        let user = |name: &str| -> Result<ServiceUser, Box<dyn std::error::Error>> {
            crate::rows::select_one::<crate::rows::Users>(
                &conn,
                "FROM service_users WHERE username = ?1",
                [name],
            )?
            .ok_or_else(|| format!("the user {name} is kept").into())
        };
        let app: ApiApp = crate::rows::select_one::<crate::rows::Apps>(
            &conn,
            "FROM api_apps WHERE client_id = ?1",
            ["orders-api"],
        )?
        .ok_or("the app is kept")?;
        let now = time::OffsetDateTime::from_unix_timestamp(1_900_000_000)?;
        let later = time::OffsetDateTime::from_unix_timestamp(2_000_000_000)?;
        let (first, second) = (user("first")?, user("second")?);
        // The same secrets authenticate after the upgrade.
        assert!(first.credentials.matches(SECRET, now));
        assert!(first.credentials.matches(PREVIOUS, now), "the previous secret too");
        assert!(!first.credentials.matches(PREVIOUS, later), "until its expiry");
        assert!(second.credentials.matches(SECRET, now));
        assert!(app.credentials.matches(APP_SECRET, now));
        assert!(app.credentials.matches(SECRET, now), "the app's previous secret");
        for wrong in ["", "wrong", APP_SECRET] {
            assert!(
                !first.credentials.matches(wrong, now) && !second.credentials.matches(wrong, now)
            );
        }
        assert_eq!(user("none")?.credentials, tessera_store::Credentials::NONE, "none stays none");
        assert_eq!(second.tokens_revoked_before.map(|t| t.unix_timestamp()), Some(30));

        // The stored bytes are salted: 48 bytes, not the unsalted digest, and the
        // same secret is stored differently for each user (and each column).
        let stored: Vec<Vec<u8>> = [
            "SELECT secret_digest FROM service_users WHERE username = 'first'",
            "SELECT secret_digest FROM service_users WHERE username = 'second'",
            "SELECT previous_secret_digest FROM api_apps",
            "SELECT previous_secret_digest FROM service_users WHERE username = 'first'",
            "SELECT secret_digest FROM api_apps",
        ]
        .iter()
        .map(|sql| conn.query_row(sql, [], |r| r.get(0)))
        .collect::<Result<_, _>>()?;
        for (i, bytes) in stored.iter().enumerate() {
            assert_eq!(bytes.len(), tessera_store::SecretDigest::LEN, "{i}");
            for secret in [SECRET, PREVIOUS, APP_SECRET] {
                let old = unsalted(secret);
                assert!(!bytes.windows(32).any(|w| w == old), "{i}: the unsalted digest is gone");
            }
        }
        assert_ne!(stored[0], stored[1], "two users with one secret store different digests");
        assert_ne!(stored[0], stored[2], "and so does an app");
        assert_ne!(stored[0][..16], stored[1][..16], "each with a salt of its own");
        let salt = first.credentials.secret.ok_or("a secret")?;
        assert_eq!(
            salt,
            tessera_store::SecretDigest::from_unsalted_with_salt(*salt.salt(), &unsalted(SECRET)),
            "SHA-256(salt ‖ the old digest)"
        );
        Ok(())
    }

    #[test]
    fn upgrading_from_version_9_adds_empty_access_tables() -> Result<(), Box<dyn std::error::Error>>
    {
        use tessera_store::{AdminRole, PatId, PersonalAccessToken, TokenDigest};
        let mut conn = at_version(9)?;
        conn.execute_batch(&format!(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at, tokens_revoked_before) \
             VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, x'{}', 1, 10, 20, NULL, \
             NULL, NULL);
             INSERT INTO projects (id, name, created_at) VALUES ('orders', 'Orders', 0);",
            "ab".repeat(48)
        ))?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let old = crate::rows::select_one::<crate::rows::Users>(
            &conn,
            "FROM service_users WHERE username = ?1",
            ["old"],
        )?
        .ok_or("the user is kept")?;
        assert_eq!((old.display_name.as_str(), old.updated_at.unix_timestamp()), ("Old", 20));
        for table in ["administrators", "personal_access_tokens"] {
            let rows: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            assert_eq!(rows, 0, "{table} starts empty");
        }
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'index' \
                 AND tbl_name IN ('administrators', 'personal_access_tokens') \
                 AND sql IS NOT NULL ORDER BY name",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(indexes, ["personal_access_tokens_user_id"]);
        let default: String = conn.query_row(
            "SELECT dflt_value FROM pragma_table_info('administrators') WHERE name = 'project_id'",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(default, "''", "no project is ''");

        // The old user can hold roles and tokens now; they read back into records.
        conn.execute_batch(&format!(
            "INSERT INTO administrators (user_id, role, created_at) \
             VALUES ('100000000000000001', 'ORG_OWNER', 30);
             INSERT INTO administrators VALUES ('100000000000000001', 'PROJECT_OWNER', \
             'orders', 40);
             INSERT INTO personal_access_tokens VALUES ('7', '100000000000000001', x'{}', 50, \
             NULL);",
            "cd".repeat(32)
        ))?;
        let roles = crate::rows::select_all::<crate::rows::Administrators>(
            &conn,
            "FROM administrators ORDER BY user_id, role, project_id",
            [],
        )?;
        let roles: Vec<_> = roles.into_iter().map(|a| (a.role, a.project_id)).collect();
        let orders = tessera_store::ProjectId::new("orders")?;
        assert_eq!(roles, [(AdminRole::OrgOwner, None), (AdminRole::ProjectOwner, Some(orders))]);
        let token = crate::rows::select_one::<crate::rows::PersonalAccessTokens>(
            &conn,
            "FROM personal_access_tokens WHERE digest = ?1",
            [&[0xcd; 32][..]],
        )?;
        assert_eq!(
            token,
            Some(PersonalAccessToken {
                id: PatId::new("7")?,
                user_id: old.id.clone(),
                digest: TokenDigest::from_bytes([0xcd; 32]),
                created_at: time::OffsetDateTime::from_unix_timestamp(50)?,
                expires_at: None,
            })
        );
        // The digest is unique.
        let taken = conn.execute(
            "INSERT INTO personal_access_tokens VALUES ('8', '100000000000000001', ?1, 60, NULL)",
            [&[0xcd; 32][..]],
        );
        assert!(taken.is_err(), "a taken digest is refused");
        Ok(())
    }

    #[test]
    fn upgrading_from_version_10_adds_empty_project_roles() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut conn = at_version(10)?;
        conn.execute_batch(
            "INSERT INTO projects (id, name, created_at) VALUES ('orders', 'Orders', 5);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let rows: i64 = conn.query_row("SELECT count(*) FROM project_roles", [], |r| r.get(0))?;
        assert_eq!(rows, 0, "project_roles starts empty");
        let key: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_info('sqlite_autoindex_project_roles_1')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        assert_eq!(key, ["project_id", "key"], "one key per project");
        conn.execute_batch(
            "INSERT INTO project_roles VALUES ('orders', 'reader', 'Reader', NULL, 10, 20);
             INSERT INTO project_roles VALUES ('orders', 'writer', 'Writer', 'Editors', 10, 20);",
        )?;
        let roles = crate::rows::select_all::<crate::rows::ProjectRoles>(
            &conn,
            "FROM project_roles WHERE project_id = ?1 ORDER BY key",
            ["orders"],
        )?;
        let read: Vec<(&str, Option<&str>, i64)> = roles
            .iter()
            .map(|r| {
                (
                    r.key.as_str(),
                    r.group.as_ref().map(|g| g.as_str()),
                    r.updated_at.unix_timestamp(),
                )
            })
            .collect();
        assert_eq!(read, [("reader", None, 20), ("writer", Some("Editors"), 20)]);
        let taken = conn
            .execute("INSERT INTO project_roles VALUES ('orders', 'reader', 'R', NULL, 0, 0)", []);
        assert!(taken.is_err(), "a taken key is refused");
        Ok(())
    }

    #[test]
    fn upgrading_from_version_11_gives_users_an_empty_description()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = at_version(11)?;
        conn.execute_batch(
            "INSERT INTO service_users (id, username, display_name, access_token_type, \
             token_lifetime_secs, secret_digest, enabled, created_at, updated_at, \
             previous_secret_digest, previous_secret_expires_at, tokens_revoked_before) \
             VALUES ('100000000000000001', 'old', 'Old', 'jwt', 60, NULL, 1, 10, 20, NULL, \
             NULL, 30);",
        )?;
        migrate(&mut conn)?;
        assert_eq!(current_version(&conn)?, i64::try_from(MIGRATIONS.len())?);
        let column: (bool, String) = conn.query_row(
            "SELECT \"notnull\", dflt_value FROM pragma_table_info('service_users') \
             WHERE name = 'description'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!(column, (true, "''".to_owned()), "NOT NULL DEFAULT ''");
        let old = crate::rows::select_one::<crate::rows::Users>(
            &conn,
            "FROM service_users WHERE username = ?1",
            ["old"],
        )?
        .ok_or("the user is kept")?;
        assert_eq!(old.description, "", "an existing user has no description");
        assert_eq!(old.tokens_revoked_before.map(|t| t.unix_timestamp()), Some(30));
        Ok(())
    }

    #[test]
    fn pages_of_users_read_an_index_in_order() -> Result<(), Box<dyn std::error::Error>> {
        use tessera_store::sql::paging::{Dialect, UserPageSql};
        use tessera_store::{UserOrder, UserPageQuery};
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        for (order, index) in [
            (UserOrder::CreatedAt, "service_users_created_at"),
            (UserOrder::Username, "sqlite_autoindex_service_users_2"),
        ] {
            for descending in [false, true] {
                let query = UserPageQuery { order, descending, ..UserPageQuery::first(100) };
                let sql = UserPageSql::new(&query, Dialect::Sqlite);
                let plan: Vec<String> = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.page))?
                    .query_map(rusqlite::params![100, 0], |r| r.get(3))?
                    .collect::<Result<_, _>>()?;
                let plan = plan.join("; ");
                assert!(plan.contains(index), "{order:?}: {plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{order:?}: no sort: {plan}");
            }
        }
        Ok(())
    }

    #[test]
    fn a_newer_schema_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)", [])?;
        assert!(matches!(migrate(&mut conn), Err(StoreError::Corrupt(_))));
        Ok(())
    }
}
