//! SQLite storage backend of Tessera: [`SqliteStore`] keeps everything Tessera stores
//! in one database file, safe for a server and CLI commands using it at once. It is
//! a complete backend ([`Store`](tessera_store::Store)): the issuing core, signing
//! keys, the organization and every administration trait.
//!
//! ```no_run
//! use tessera_store::prelude::*;
//! use tessera_store::{ServiceUser, Username};
//! use tessera_store_sqlite::SqliteStore;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open("/var/lib/tessera/tessera.db").await?;
//! let user = ServiceUser::new(Username::new("billing-job")?, time::OffsetDateTime::now_utc())?;
//! store.create_service_user(&user).await?;
//! assert!(store.service_user_by_username(&user.username).await?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! The file holds:
//!
//! - service users (`service_users`) and the records of their opaque tokens
//!   (`tokens`, with the roles each token carries as JSON);
//! - the JWT ids of revoked self-contained tokens (`revoked_jtis`), until they expire;
//! - token signing keys, their private halves sealed with the master key
//!   (`signing_keys`);
//! - projects (`projects`, which always holds the reserved project `zitadel` of the
//!   server's own API), the roles defined in them (`project_roles`), their API apps
//!   (`api_apps`) and the roles granted to service users in them (`role_grants`);
//! - the public keys that service users and API apps sign client assertions with
//!   (`client_keys`), and the assertion ids already used (`used_assertions`), until
//!   they expire;
//! - the organization that owns everything (`organization`, one row).
//!
//! Only digests of client secrets and opaque tokens are stored, never the secrets.
//!
//! Each storage trait is implemented in a module of its own (`issuing`,
//! `signing_keys`, `organization`, `service_users`, `projects`, `client_keys`);
//! `rows` reads the columns of each table into the row types shared with the
//! PostgreSQL backend ([`tessera_store::sql::rows`]), and `group_commit` commits
//! token records in groups.
//!
//! # Durability
//!
//! The file runs in WAL (write-ahead log) mode with `synchronous=FULL`: every
//! commit syncs the log to disk before it returns. A call such as
//! [`insert_token`](tessera_store::IssuingStore::insert_token) therefore returns only
//! once its record would survive a crash or a power cut, so a token is never handed
//! out before its record is durable. Token records are committed in groups: every
//! record that arrives while the previous group is being synced joins the next
//! transaction, so one sync serves all the requests in flight, and each call still
//! returns only after its own group committed. Foreign keys are enforced (`foreign_keys=ON`).
//!
//! # Several processes, one file
//!
//! A running server and CLI commands (creating users, regenerating secrets) may use
//! the same file at once. WAL lets readers proceed while one writer commits; writers
//! from different processes take turns, each waiting up to 5 seconds
//! (`busy_timeout`) for the lock before failing with
//! [`StoreError::Unavailable`]. No row is
//! cached in the process: every lookup reads the database, so a secret regenerated
//! by another process stops working here as soon as that process's update returns
//! (or, when the update kept it for a grace period, as soon as that period ends).
//! Changes of more than one statement, such as deleting a user with its tokens,
//! grants and client keys, or applying a patch (read, change, write back), run in one
//! `BEGIN IMMEDIATE` transaction, which serializes them across processes. So do
//! checks that span tables: API app client IDs and usernames are one namespace, and
//! creating a user or an app checks the other table in the same transaction as the
//! insert, so two processes cannot claim one name as both. Likewise adding a client
//! key checks its owner (a user or an app: no foreign key can refer to either) in
//! the transaction of the insert, and deleting the owner deletes its keys in the
//! transaction of the delete. Deleting a project deletes its API apps (with their
//! keys), grants, roles and the administrator roles held on it in its transaction. A used assertion id is recorded with one
//! `INSERT ... ON CONFLICT DO NOTHING`, so of several processes recording the same
//! id exactly one is told it was first. The organization is stored with an
//! `INSERT ... ON CONFLICT DO NOTHING` and read back in one immediate transaction,
//! so of several processes storing theirs, all get the one stored first.
//!
//! rusqlite is synchronous. Writes run on Tokio's blocking thread pool
//! (`spawn_blocking`), one writer connection serializing them within a process.
//! Lookups run on the calling thread, on one of a few inline reader connections (one
//! per core): a read of cached pages takes microseconds, less than handing it to
//! another thread and back. An inline reader never waits for a lock; when all are
//! in use, or the read fails (a locked file answers `SQLITE_BUSY` at once), the lookup
//! runs again on the blocking pool and its reader connections, which wait up to the
//! busy timeout.
//!
//! Token records are keyed by [`TokenDigest`](tessera_store::TokenDigest), which
//! leads with the token's issue time, so the records of one group commit land on the
//! last pages of each index instead of one random page each: a commit writes a few
//! pages to the write-ahead log, whatever the size of the table. The log may grow to
//! 4 000 pages before it is copied into the database file, so a page that many
//! commits change is copied once. Token records have no index on `jti`: ids are random, no request looks a record
//! up by id, and such an index would cost each insert a write to a random page.
//!
//! # Migrations
//!
//! [`SqliteStore::open`] creates the file if it is missing and brings its schema up
//! to date. Applied versions are recorded in `schema_migrations(version, applied_at)`;
//! each missing migration runs in its own `BEGIN IMMEDIATE` transaction that first
//! checks whether it has been applied meanwhile, so several processes opening the
//! same fresh file at once are safe, and opening an up-to-date file changes nothing.
//! A file whose schema is newer than this build is refused with
//! [`StoreError::Corrupt`].
//!
//! # Errors
//!
//! A UNIQUE or PRIMARY KEY violation is [`StoreError::Conflict`]; a record that
//! refers to a missing one (a token or grant of a missing user, an app or grant of a
//! missing project, a client key of a missing user or app) is
//! [`StoreError::NotFound`]; a busy or locked
//! database, or a file that cannot be opened, is [`StoreError::Unavailable`]
//! (transient); a stored row that no longer parses, or a file that is not a SQLite
//! database, is [`StoreError::Corrupt`]; anything else is [`StoreError::Backend`].
//!
//! [`StoreError::Conflict`]: tessera_store::StoreError::Conflict
//! [`StoreError::NotFound`]: tessera_store::StoreError::NotFound
//! [`StoreError::Unavailable`]: tessera_store::StoreError::Unavailable
//! [`StoreError::Corrupt`]: tessera_store::StoreError::Corrupt
//! [`StoreError::Backend`]: tessera_store::StoreError::Backend
#![forbid(unsafe_code)]

mod access;
mod client_keys;
mod error;
mod group_commit;
mod issuing;
mod organization;
mod projects;
mod rows;
mod schema;
mod service_users;
mod signing_keys;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use rusqlite::Connection;
use tessera_store::StoreError;
use tessera_store::sql::GroupQueue;
use tessera_store::sql::rows::UserRow;

use crate::group_commit::PendingToken;

/// The schema version this build migrates a database to (the number of migrations).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

/// Number of reader connections per store.
const READERS: usize = 4;

/// What a failure on `service_users` is about.
const USER: &str = UserRow::WHAT;
/// What a failure on `revoked_jtis` is about.
const REVOKED_JTI: &str = "revoked token id";
/// What a failure on `used_assertions` is about.
const USED_ASSERTION: &str = "used assertion id";

/// A storage backend on a SQLite database file, shared safely with other processes.
///
/// Cloning is cheap: clones share the same connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Box<[Mutex<Connection>]>,
    next_reader: AtomicUsize,
    /// Readers used on the calling thread; they never wait for a lock.
    inline_readers: Box<[Mutex<Connection>]>,
    /// Token rows waiting for the next group commit ([`group_commit`]).
    pending: GroupQueue<PendingToken>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file if it is missing, switches it
    /// to WAL mode and applies any missing schema migrations.
    ///
    /// Opening commits one write (it rewrites the latest migration row), so that a
    /// database this process cannot write is refused here, not at the first request.
    ///
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened, can be
    /// opened for reading only, its `-wal` or `-shm` file cannot be written, or it stays
    /// locked by another process for more than 5 seconds, and with
    /// [`StoreError::Corrupt`] when it is not a SQLite database or its schema is
    /// newer than this build.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let inner = blocking(move || {
            create_private(&path)?;
            let writer = schema::open_writer(&path)?;
            let readers = (0..READERS)
                .map(|_| schema::open_reader(&path).map(Mutex::new))
                .collect::<Result<Box<[_]>, _>>()?;
            let inline_readers = (0..inline_reader_count())
                .map(|_| schema::open_inline_reader(&path).map(Mutex::new))
                .collect::<Result<Box<[_]>, _>>()?;
            Ok(Inner {
                path,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                inline_readers,
                pending: GroupQueue::new(),
            })
        })
        .await?;
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a reader connection: on the calling thread when an inline reader
    /// is free and the read does not have to wait for a lock, else on the blocking
    /// thread pool, where it may wait up to the busy timeout.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if let Some(conn) = self.inner.inline_reader()
            && let Ok(found) = f(&conn)
        {
            return Ok(found);
        }
        // All inline readers busy, or the read failed: the file was locked (a read
        // that does not wait answers `SQLITE_BUSY`, or `SQLITE_PROTOCOL` when it
        // keeps losing the race for a lock), or the failure is real, in which case
        // the retry reports it. Reads have no effects, so a retry is safe.
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&inner.reader())).await
    }

    /// Runs `f` on the writer connection, on the blocking thread pool.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&mut inner.writer().0)).await
    }
}

impl Inner {
    /// The first free reader, starting from a rotating position; if all are busy,
    /// waits for the one at that position.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let count = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            match self.readers[(start + i) % count].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free inline reader, if there is one; never waits.
    fn inline_reader(&self) -> Option<MutexGuard<'_, Connection>> {
        self.inline_readers.iter().find_map(|reader| match reader.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    /// The writer connection, locked for one operation.
    fn writer(&self) -> WriterGuard<'_> {
        WriterGuard(self.writer.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The locked writer connection. On release, also while unwinding from a panic,
/// it rolls back a transaction left open, so that the database's write lock is
/// never held past the operation (other processes would wait for it). rusqlite's
/// `Transaction` already rolls back on drop; this is a second line of defence.
struct WriterGuard<'a>(MutexGuard<'a, Connection>);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// One inline reader per core (at most 8): as many as threads that may read at once.
fn inline_reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// Runs `f` on Tokio's blocking thread pool; a panic in `f` becomes a backend error.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Backend(Box::new(e)))?
}

/// Creates the database file, when it does not exist yet, readable and writable by
/// its owner only (0600 on Unix, whatever the umask): it holds secret digests and
/// sealed signing keys. SQLite gives the `-wal` and `-shm` files it creates beside it
/// the database file's permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use tessera_store::prelude::*;
    use tessera_store::{ClientId, DisplayName, Domain, Organization};
    use time::OffsetDateTime;

    use super::*;
    use crate::error::map;

    #[tokio::test]
    async fn a_panic_is_a_backend_error() {
        let result: Result<(), _> = blocking(|| panic!("boom")).await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_recovers_from_a_panic_inside_a_transaction()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("t.db")).await?;
        let result: Result<(), _> = store
            .write(|conn| {
                conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| map(e, "test"))?;
                panic!("panic with the write lock held")
            })
            .await;
        assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
        // The transaction was rolled back and the write lock released: another
        // connection (process) can write, and so can this store.
        let other = SqliteStore::open(dir.path().join("t.db")).await?;
        assert_eq!(other.purge_expired_tokens(OffsetDateTime::now_utc()).await?, 0);
        assert_eq!(store.purge_expired_tokens(OffsetDateTime::now_utc()).await?, 0);
        Ok(())
    }

    /// A database file that a release of schema version 8 (unsalted secret digests)
    /// left opens with every secret salted, and the same secrets authenticate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_schema_version_8_opens_with_salted_secrets()
    -> Result<(), Box<dyn std::error::Error>> {
        use sha2::{Digest, Sha256};
        use tessera_store::Username;
        const SECRET: &str = "one-secret-shared-by-two-service-users";
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path)?;
            schema::migrate_with(&mut conn, &schema::MIGRATIONS[..8])?;
            let unsalted: [u8; 32] = Sha256::digest(SECRET.as_bytes()).into();
            conn.execute(
                "INSERT INTO service_users (id, username, display_name, access_token_type, \
                 token_lifetime_secs, secret_digest, enabled, created_at, updated_at) \
                 VALUES ('100000000000000001', 'a', 'A', 'opaque', 60, ?1, 1, 0, 0), \
                 ('100000000000000002', 'b', 'B', 'opaque', 60, ?1, 1, 0, 0)",
                [&unsalted[..]],
            )?;
        }
        let store = SqliteStore::open(&path).await?;
        let now = OffsetDateTime::now_utc();
        let mut digests = Vec::new();
        for name in ["a", "b"] {
            let user =
                store.service_user_by_username(&Username::new(name)?).await?.ok_or("a user")?;
            assert!(user.credentials.matches(SECRET, now), "{name}: the secret still works");
            assert!(!user.credentials.matches("another secret", now));
            digests.push(user.credentials.secret.ok_or("a secret")?);
        }
        assert_ne!(digests[0], digests[1], "one secret, two stored digests");
        drop(store);
        // Opening again changes nothing: the migration ran once.
        let store = SqliteStore::open(&path).await?;
        let again = store.service_user_by_username(&Username::new("a")?).await?.ok_or("a user")?;
        assert_eq!(again.credentials.secret, Some(digests[0]));
        Ok(())
    }

    /// A database file that a release of schema version 6 (before app ids and the
    /// organization) left, holding an API app, opens with the app given an app id
    /// and the organization table ready.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_schema_version_6_opens_with_app_ids_and_an_organization()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path)?;
            schema::migrate_with(&mut conn, &schema::MIGRATIONS[..6])?;
            conn.execute_batch(&format!(
                "INSERT INTO projects (id, name, created_at) VALUES ('orders', 'Orders', 0);
                 INSERT INTO api_apps (client_id, project_id, name, secret_digest, enabled, \
                 created_at, updated_at, previous_secret_digest, previous_secret_expires_at) \
                 VALUES ('orders-api', 'orders', 'Orders API', x'{}', 1, 10, 20, NULL, NULL);",
                "ab".repeat(32)
            ))?;
        }
        let store = SqliteStore::open(&path).await?;
        let client_id = ClientId::new("orders-api")?;
        let app = store.api_app_by_client_id(&client_id).await?.ok_or("the app is gone")?;
        assert_eq!(app.app_id.as_str().len(), 18, "{:?}", app.app_id);
        assert!(app.app_id.as_str().bytes().all(|b| b.is_ascii_digit()), "{:?}", app.app_id);
        assert_eq!((app.name.as_str(), app.enabled), ("Orders API", true));
        // The unsalted digest of version 6, salted by migration 9.
        let stored = app.credentials.secret.ok_or("a secret")?;
        assert_eq!(
            stored,
            tessera_store::SecretDigest::from_unsalted_with_salt(*stored.salt(), &[0xab; 32])
        );
        assert_eq!(app.created_at.unix_timestamp(), 10);
        assert_eq!(store.list_api_apps().await?, vec![app.clone()]);

        // Another app may not take the app id.
        let clash = tessera_store::ApiApp { client_id: ClientId::new("clash-api")?, ..app.clone() };
        let result = store.create_api_app(&clash).await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");

        // The organization can be stored, and is kept with the app id.
        assert_eq!(store.organization().await?, None);
        let org = Organization::generate(
            DisplayName::new("Acme")?,
            Domain::new("acme.example")?,
            OffsetDateTime::from_unix_timestamp(1_700_000_000)?,
        )?;
        assert_eq!(store.init_organization(&org).await?, org);
        drop(store);
        let reopened = SqliteStore::open(&path).await?;
        assert_eq!(reopened.organization().await?, Some(org));
        assert_eq!(reopened.api_app_by_client_id(&client_id).await?, Some(app));
        Ok(())
    }
}
