//! SQLite storage backend of Tessera: [`SqliteStore`] keeps everything Tessera stores
//! in one database file:
//!
//! - service users (`service_users`) and the records of their opaque tokens
//!   (`tokens`, with the roles each token carries as JSON);
//! - the JWT ids of revoked self-contained tokens (`revoked_jtis`), until they expire;
//! - token signing keys, their private halves sealed with the master key
//!   (`signing_keys`);
//! - projects (`projects`, which always holds the reserved project `zitadel` of the
//!   server's own API), their API apps (`api_apps`) and the roles granted to service
//!   users in them (`role_grants`);
//! - the public keys that service users and API apps sign client assertions with
//!   (`client_keys`), and the assertion ids already used (`used_assertions`), until
//!   they expire;
//! - the organization that owns everything (`organization`, one row).
//!
//! Only digests of client secrets and opaque tokens are stored, never the secrets.
//!
//! # Durability
//!
//! The file runs in WAL (write-ahead log) mode with `synchronous=FULL`: every
//! commit syncs the log to disk before it returns. A call such as
//! [`insert_token`](tessera_store::TokenStore::insert_token) therefore returns only
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
//! transaction of the delete. A used assertion id is recorded with one
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
//! Token records are keyed by [`TokenDigest`], which
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
//! ```no_run
//! use tessera_store::{ServiceUser, ServiceUserStore, Username};
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
//! [`StoreError::Conflict`]: tessera_store::StoreError::Conflict
//! [`StoreError::NotFound`]: tessera_store::StoreError::NotFound
//! [`StoreError::Unavailable`]: tessera_store::StoreError::Unavailable
//! [`StoreError::Corrupt`]: tessera_store::StoreError::Corrupt
//! [`StoreError::Backend`]: tessera_store::StoreError::Backend
#![forbid(unsafe_code)]

mod client_keys;
mod error;
mod organization;
mod projects;
mod rows;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tessera_store::{
    ServiceUser, ServiceUserPatch, ServiceUserStore, SigningKeyRecord, SigningKeyStore, Store,
    StoreError, TokenDigest, TokenId, TokenRecord, TokenStore, UserId, Username,
};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::error::{is_foreign_key_violation, map};
use crate::rows::{
    KEY_COLUMNS, KeyRow, TOKEN_COLUMNS, TokenRow, USER_COLUMNS, UserRow, audience_json,
    previous_secret_columns, roles_json, select_all, select_one, unix,
};

/// The schema version this build migrates a database to (the number of migrations).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

/// Number of reader connections per store.
const READERS: usize = 4;

const USER: &str = "service user";
const TOKEN: &str = "token";
const SIGNING_KEY: &str = "signing key";
const REVOKED_JTI: &str = "revoked token id";

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
    /// Token records waiting for the next group commit.
    pending: Mutex<Vec<PendingToken>>,
    /// Whether a blocking task is committing `pending`.
    flushing: AtomicBool,
}

/// A token record to insert, and where to say whether it was committed.
struct PendingToken {
    record: TokenRecord,
    audience: String,
    roles: String,
    done: oneshot::Sender<Result<(), StoreError>>,
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
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened or stays
    /// locked by another process for more than 5 seconds, and with
    /// [`StoreError::Corrupt`] when it is not a SQLite database or its schema is
    /// newer than this build.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let inner = blocking(move || {
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
                pending: Mutex::new(Vec::new()),
                flushing: AtomicBool::new(false),
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

    /// Commits pending token records in groups until none are left: every record
    /// that arrived while the previous group was being synced goes into the next
    /// transaction, so one fsync serves many requests. Runs on a blocking thread.
    fn flush_pending(&self) {
        // If this loop unwinds, let the next insert start a new one.
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reset = Reset(&self.flushing);
        loop {
            let batch =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            if batch.is_empty() {
                self.flushing.store(false, Ordering::Release);
                // A record queued between the take and the store would wait for
                // nobody: look once more, and carry on unless another flush took over.
                let queued =
                    !self.pending.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
                if !queued || self.flushing.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            let results = self.commit_tokens(&batch);
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.done.send(result);
            }
        }
    }

    /// Inserts `batch` in one transaction; each record's result is its own (a
    /// conflicting record fails alone), and none is Ok before the commit returned.
    fn commit_tokens(&self, batch: &[PendingToken]) -> Vec<Result<(), StoreError>> {
        let mut writer = self.writer();
        let conn = &mut writer.0;
        let all_failed = |e: &rusqlite::Error| -> Vec<Result<(), StoreError>> {
            batch.iter().map(|_| Err(shared_error(e))).collect()
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return all_failed(&e);
        }
        let results: Vec<_> = batch.iter().map(|p| insert_token_row(conn, p)).collect();
        match conn.execute_batch("COMMIT") {
            Ok(()) => results,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                all_failed(&e)
            }
        }
    }
}

/// One error reported to every record of a failed group: transient when the
/// database was busy or locked, a backend failure otherwise.
fn shared_error(e: &rusqlite::Error) -> StoreError {
    let source = Box::new(std::io::Error::other(e.to_string()));
    if crate::error::is_busy(e) {
        StoreError::Unavailable(source)
    } else {
        StoreError::Backend(source)
    }
}

fn insert_token_row(conn: &Connection, pending: &PendingToken) -> Result<(), StoreError> {
    let record = &pending.record;
    let sql = format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.execute(params![
                &record.digest.as_bytes()[..],
                record.jti.as_str(),
                record.user_id.as_str(),
                record.client_id.as_str(),
                record.scopes.to_string(),
                pending.audience,
                unix(record.issued_at),
                unix(record.expires_at),
                record.revoked_at.map(unix),
                pending.roles,
            ])
        })
        .map(drop)
        .map_err(|e| {
            if is_foreign_key_violation(&e) { StoreError::NotFound(USER) } else { map(e, TOKEN) }
        })
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

/// Runs `f` on Tokio's blocking thread pool; a panic in `f` becomes a backend error.
/// One inline reader per core (at most 8): as many as threads that may read at once.
fn inline_reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Backend(Box::new(e)))?
}

fn user_by_username(conn: &Connection, username: &str) -> Result<Option<ServiceUser>, StoreError> {
    select_one::<UserRow>(conn, "FROM service_users WHERE username = ?1", [username])
}

fn secret_bytes(user: &ServiceUser) -> Option<&[u8]> {
    user.secret.as_ref().map(|d| &d.as_bytes()[..])
}

#[async_trait]
impl ServiceUserStore for SqliteStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |conn| {
            // Usernames and API app client IDs are one namespace: check the apps and
            // insert in one immediate transaction, so that no other connection (or
            // process) can create an app of this name in between.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, USER))?;
            if projects::client_id_is_app(&tx, user.username.as_str())? {
                return Err(StoreError::Conflict(USER));
            }
            let sql = format!(
                "INSERT INTO service_users ({USER_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            );
            let (previous_digest, previous_expiry) =
                previous_secret_columns(user.previous_secret.as_ref());
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        user.id.as_str(),
                        user.username.as_str(),
                        user.display_name.as_str(),
                        user.access_token_type.as_str(),
                        user.token_lifetime.as_secs(),
                        secret_bytes(&user),
                        user.enabled,
                        unix(user.created_at),
                        unix(user.updated_at),
                        previous_digest,
                        previous_expiry,
                    ])
                })
                .map_err(|e| map(e, USER))?;
            tx.commit().map_err(|e| map(e, USER))
        })
        .await
    }

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
            select_one::<UserRow>(conn, "FROM service_users WHERE id = ?1", [id.as_str()])
        })
        .await
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        self.read(|conn| select_all::<UserRow>(conn, "FROM service_users ORDER BY username", []))
            .await
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
            let (previous_digest, previous_expiry) =
                previous_secret_columns(user.previous_secret.as_ref());
            tx.prepare_cached(
                "UPDATE service_users SET display_name = ?2, access_token_type = ?3, \
                 token_lifetime_secs = ?4, secret_digest = ?5, enabled = ?6, updated_at = ?7, \
                 previous_secret_digest = ?8, previous_secret_expires_at = ?9 \
                 WHERE id = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    user.id.as_str(),
                    user.display_name.as_str(),
                    user.access_token_type.as_str(),
                    user.token_lifetime.as_secs(),
                    secret_bytes(&user),
                    user.enabled,
                    unix(user.updated_at),
                    previous_digest,
                    previous_expiry,
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
            // ON DELETE CASCADE would remove the tokens and grants too; deleting them
            // explicitly keeps the contract independent of the foreign_keys pragma.
            tx.prepare_cached(
                "DELETE FROM tokens WHERE user_id IN \
                 (SELECT id FROM service_users WHERE username = ?1)",
            )
            .and_then(|mut stmt| stmt.execute([username.as_str()]))
            .map_err(|e| map(e, TOKEN))?;
            tx.prepare_cached(
                "DELETE FROM role_grants WHERE user_id IN \
                 (SELECT id FROM service_users WHERE username = ?1)",
            )
            .and_then(|mut stmt| stmt.execute([username.as_str()]))
            .map_err(|e| map(e, projects::GRANT))?;
            // No foreign key refers to a user from `client_keys`: the owner column is
            // `KeyOwner::to_key`'s form, `user:{id}`.
            tx.prepare_cached(
                "DELETE FROM client_keys WHERE owner IN \
                 (SELECT 'user:' || id FROM service_users WHERE username = ?1)",
            )
            .and_then(|mut stmt| stmt.execute([username.as_str()]))
            .map_err(|e| map(e, client_keys::CLIENT_KEY))?;
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

#[async_trait]
impl TokenStore for SqliteStore {
    /// Group commit: the record joins the records waiting for the writer, and the
    /// call returns once the transaction holding it has committed (with
    /// `synchronous=FULL`, synced to disk), so a token is never answered before its
    /// record is durable, while one fsync serves every request in flight.
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        let pending = PendingToken {
            audience: audience_json(&record.audience)?,
            roles: roles_json(&record.roles)?,
            record: record.clone(),
            done,
        };
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).push(pending);
        if !self.inner.flushing.swap(true, Ordering::AcqRel) {
            let inner = Arc::clone(&self.inner);
            tokio::task::spawn_blocking(move || inner.flush_pending());
        }
        committed.await.map_err(|_| {
            StoreError::Backend(Box::new(std::io::Error::other("the token write was abandoned")))
        })?
    }

    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let digest = *digest;
        self.read(move |conn| {
            select_one::<TokenRow>(conn, "FROM tokens WHERE digest = ?1", [&digest.as_bytes()[..]])
        })
        .await
    }

    /// Scans the table: no request looks a record up by id, and an index on ids
    /// would cost every insert a write to a random page.
    async fn token_by_jti(&self, jti: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let jti = jti.clone();
        self.read(move |conn| {
            select_one::<TokenRow>(conn, "FROM tokens WHERE jti = ?1", [jti.as_str()])
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
                .map_err(|e| map(e, TOKEN))?;
            Ok(changed > 0)
        })
        .await
    }

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.write(move |conn| {
            // One transaction: one commit (and sync) for the three tables.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, TOKEN))?;
            let tokens = tx
                .prepare_cached("DELETE FROM tokens WHERE expires_at <= ?1")
                .and_then(|mut stmt| stmt.execute([unix(now)]))
                .map_err(|e| map(e, TOKEN))?;
            let jtis = tx
                .prepare_cached("DELETE FROM revoked_jtis WHERE expires_at <= ?1")
                .and_then(|mut stmt| stmt.execute([unix(now)]))
                .map_err(|e| map(e, REVOKED_JTI))?;
            let assertions = tx
                .prepare_cached("DELETE FROM used_assertions WHERE expires_at <= ?1")
                .and_then(|mut stmt| stmt.execute([unix(now)]))
                .map_err(|e| map(e, client_keys::USED_ASSERTION))?;
            tx.commit().map_err(|e| map(e, TOKEN))?;
            Ok((tokens + jtis + assertions) as u64)
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
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            select_all::<KeyRow>(conn, "FROM signing_keys ORDER BY activates_at, kid", [])
        })
        .await
    }

    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let key = key.clone();
        let expected = expected_latest.map(str::to_owned);
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map(e, SIGNING_KEY))?;
            let latest: Option<String> = tx
                .prepare_cached(
                    "SELECT kid FROM signing_keys ORDER BY activates_at DESC, kid DESC LIMIT 1",
                )
                .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)).optional())
                .map_err(|e| map(e, SIGNING_KEY))?;
            if latest != expected {
                return Ok(false);
            }
            let sql =
                format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
            tx.prepare_cached(&sql)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        key.kid,
                        key.algorithm.as_str(),
                        key.public_jwk,
                        key.sealed_private_key,
                        unix(key.created_at),
                        unix(key.activates_at),
                    ])
                })
                .map_err(|e| map(e, SIGNING_KEY))?;
            tx.commit().map_err(|e| map(e, SIGNING_KEY))?;
            Ok(true)
        })
        .await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let kid = kid.to_owned();
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM signing_keys WHERE kid = ?1")
                .and_then(|mut stmt| stmt.execute([kid]))
                .map_err(|e| map(e, SIGNING_KEY))?;
            Ok(deleted > 0)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
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

#[cfg(test)]
mod tests {
    use tessera_store::{
        ClientId, DisplayName, Domain, Organization, OrganizationStore, ProjectStore,
    };

    use super::*;

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
        assert_eq!(app.secret.map(|d| *d.as_bytes()), Some([0xab; 32]));
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
