//! PostgreSQL storage backend of Tessera: [`PostgresStore`] keeps everything Tessera
//! stores in one PostgreSQL database (one schema of it), shared by any number of
//! server instances. It is a complete backend ([`Store`](tessera_store::Store)):
//! the issuing core, signing keys, the organization and every administration trait.
//!
//! ```no_run
//! use tessera_store::prelude::*;
//! use tessera_store::{ServiceUser, Username};
//! use tessera_store_postgres::{PoolOptions, PostgresStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://tessera@db.internal/tessera").await?;
//! let user = ServiceUser::new(Username::new("billing-job")?, time::OffsetDateTime::now_utc())?;
//! store.create_service_user(&user).await?;
//! assert!(store.service_user_by_username(&user.username).await?.is_some());
//!
//! // A smaller pool on a schema of its own.
//! let options = PoolOptions::default().with_max_size(4).with_schema("tessera_staging");
//! let staging = PostgresStore::connect_with("postgres://tessera@db.internal/tessera", options)
//!     .await?;
//! assert_eq!(staging.schema(), Some("tessera_staging"));
//! # Ok(())
//! # }
//! ```
//!
//! The schema holds:
//!
//! - service users (`service_users`) and the records of their opaque tokens
//!   (`tokens`, with the audience and the roles each token carries as JSON text);
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
//! Only digests of client secrets and opaque tokens are stored (`BYTEA`), never the
//! secrets; timestamps are unix seconds (`BIGINT`).
//!
//! Each storage trait is implemented in a module of its own (`issuing`,
//! `signing_keys`, `organization`, `service_users`, `projects`, `client_keys`);
//! `rows` reads the columns of each table into the row types shared with the SQLite
//! backend ([`tessera_store::sql::rows`]), `batch` and `lookup` batch concurrent
//! calls, and `group_commit` commits token records in groups.
//!
//! # Durability
//!
//! Every write commits before it returns, and with PostgreSQL's default
//! `synchronous_commit=on` a commit returns only once the server flushed it to its
//! write-ahead log on disk. A call such as
//! [`insert_token`](tessera_store::IssuingStore::insert_token) therefore returns only
//! once its record would survive a crash of the database server, so a token is
//! never handed out before its record is durable. Token records are committed in
//! groups: one task per store writes them, every record that arrives while the
//! previous group is being written joins the next one, and a group is one statement
//! (`INSERT INTO tokens ... SELECT * FROM unnest($1, ..., $10) ON CONFLICT (digest)
//! DO NOTHING RETURNING digest`, at most 512 records), so one round trip and one
//! commit serve all the requests in flight, and each call still returns only after
//! the statement holding its record committed. Each record's result is its own: a
//! record whose digest is stored already is a [`StoreError::Conflict`]; when the
//! statement fails as a whole for what it writes (a record of a user deleted
//! meanwhile), the group is written again one record at a time, so that only that
//! record fails, with [`StoreError::NotFound`]; when the connection fails, every
//! record of the group gets its error. A record whose caller stopped waiting may
//! still be committed.
//!
//! Token records have no index on `jti`: ids are 128 random bits, no request looks
//! a record up by id, and such an index would cost each insert a write to a random
//! index page (and a full-page image of it in the write-ahead log after each
//! checkpoint).
//!
//! # Driver
//!
//! The store talks to PostgreSQL with [`tokio_postgres`] through a
//! [`deadpool_postgres`] connection pool (16 connections by default, see
//! [`PoolOptions`]). Both are small, fully asynchronous (no blocking thread pool,
//! unlike the SQLite backend) and need no database at compile time, unlike
//! query-checking libraries. Every statement is prepared once per connection and
//! kept in the connection's statement cache (`prepare_cached`), so reading a token
//! costs one round trip after the first use, and the calls that token requests and
//! token introspection make are batched: each lookup of the client, the token or
//! its user costs one round trip per batch of lookups (see
//! [Several instances, one database](#several-instances-one-database)), storing a
//! token one round trip per group (see [Durability](#durability)). TLS
//! is not built in: connect over a Unix socket, the loopback or a trusted network
//! (`sslmode=disable` or the default `prefer`).
//!
//! # Several instances, one database
//!
//! No row is cached in the process: every lookup reads the database, so a change
//! made through one instance (a regenerated secret, a revoked token, a deleted user)
//! is seen by every other instance as soon as the call that made it returns: each
//! write commits before it returns (see [Durability](#durability)).
//!
//! The lookups that every token request and every token introspection makes are
//! batched:
//!
//! - [`service_user_by_username`](tessera_store::IssuingStore::service_user_by_username) (the
//!   client authentication of a token request), `service_users WHERE username`;
//! - [`api_app_by_client_id`](tessera_store::IssuingStore::api_app_by_client_id)
//!   (the API app calling introspection), `api_apps WHERE client_id`;
//! - [`token_by_digest`](tessera_store::IssuingStore::token_by_digest) (the token introspected),
//!   `tokens WHERE digest`;
//! - [`service_user_by_id`](tessera_store::IssuingStore::service_user_by_id) (the token's user,
//!   still enabled or not), `service_users WHERE id`.
//!
//! They still never answer with data older than the call. One task per store and
//! per kind of lookup runs them, every lookup that arrives while a batch of its
//! kind is running joins the next one, and a batch is one statement (for example
//! `SELECT ... FROM tokens WHERE digest = ANY($1::bytea[])`, with each key once, at
//! most 512 lookups; a batch of one runs the single-row query, `digest = $1`). A
//! lookup only ever joins a batch whose statement has not been sent yet, never one
//! already in flight, so the statement that answers it starts after the call
//! started; it runs in a transaction of its own, whose snapshot is taken when the
//! statement starts, so it sees every commit made before: a secret regenerated, a
//! token revoked or a user disabled (committed) before the lookup was called,
//! through any instance, is always seen. Each lookup's result is its own: a row
//! that no longer parses is [`StoreError::Corrupt`] for the lookups of that key
//! only; when the connection or the statement fails, every lookup of the batch gets
//! its error.
//!
//! Changes of more than one statement run in one transaction:
//!
//! - updating a user or an API app reads the row `FOR UPDATE`, applies the patch and
//!   writes it back, so concurrent patches never lose one another;
//! - usernames and API app client IDs are one namespace: creating a user or an app
//!   takes a transaction-scoped advisory lock
//!   (`pg_advisory_xact_lock(NAMESPACE, hashtext(current_schema()))`) before it
//!   checks the other table and inserts, so two instances cannot claim one name as
//!   both;
//! - inserting a signing key is a compare-and-insert under another advisory lock of
//!   the same kind: of several instances racing to rotate from the same newest key,
//!   exactly one succeeds;
//! - deleting a user deletes its tokens and grants with it (`ON DELETE CASCADE`);
//! - deleting a project locks its row `FOR UPDATE` first, which every addition that
//!   refers to a project (an API app, a grant, a role, a project owner) reads
//!   `FOR KEY SHARE`: the delete waits for those under way and deletes what they
//!   added in later statements, and later ones find no project;
//! - a client key's owner is a user or an app, which no foreign key can refer to:
//!   adding a key reads the owner's row `FOR KEY SHARE` before the insert, and
//!   deleting a user or an app deletes its row first (waiting for such an insert to
//!   commit) and its keys in a later statement of the same transaction, so no key
//!   outlives its owner;
//! - a used assertion id is recorded with one `INSERT ... ON CONFLICT DO NOTHING`:
//!   of several instances recording the same id at once, exactly one is told it was
//!   first;
//! - the organization is stored with an `INSERT ... ON CONFLICT DO NOTHING` and read
//!   back by the next statement of the transaction: of several instances storing
//!   theirs at once, all get the one stored first.
//!
//! The advisory locks are keyed by the schema, so stores on different schemas of
//! one database do not wait for each other.
//!
//! # Migrations
//!
//! [`PostgresStore::connect`] brings the schema up to date before it returns. On a
//! connection of its own it takes the session-level advisory lock
//! `pg_advisory_lock(0x7465737365726101)`, so when several instances start at once
//! they migrate one after the other and the later ones find nothing left to do.
//! Applied versions are recorded in `schema_migrations(version, applied_at)`; each
//! missing migration runs in its own transaction (PostgreSQL's DDL is
//! transactional). A configured schema that does not exist yet is created. A
//! database whose schema is newer than this build is refused with
//! [`StoreError::Corrupt`]. The lock wait is bounded (60 seconds, then
//! [`StoreError::Unavailable`]), and closing the connection releases the lock
//! whatever happened.
//!
//! # Errors and recovery
//!
//! A unique violation (SQLSTATE 23505) is [`StoreError::Conflict`]; a record that
//! refers to a missing one (a token or grant of a missing user, an app or grant of
//! a missing project, a client key of a missing user or app) is
//! [`StoreError::NotFound`]. A database that cannot be
//! reached, a connection that broke or was closed by the server (shutdown,
//! restart, failover, too many connections), no free connection within the wait
//! timeout, or a transaction that lost a serialization race is
//! [`StoreError::Unavailable`]: the request may succeed later, and the endpoint
//! answers 503. The pool drops a connection whose socket closed instead of handing
//! it out again and opens new ones on demand, so the store recovers by itself when
//! the database comes back. A stored row that no longer parses is
//! [`StoreError::Corrupt`]; anything else is [`StoreError::Backend`].
#![forbid(unsafe_code)]

mod access;
mod batch;
mod client_keys;
mod error;
mod group_commit;
mod issuing;
mod lookup;
mod organization;
mod projects;
mod rows;
mod schema;
mod service_users;
mod signing_keys;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tessera_store::StoreError;
use tessera_store::sql::rows::{UserRow, corrupt};
use tokio_postgres::NoTls;
use tokio_postgres::Row;

use crate::batch::Batcher;
use crate::error::{copy, map, map_pool};
use crate::group_commit::TokenWriter;
use crate::lookup::{AppByClientId, Reader, TokenByDigest, UserById, UserByUsername};
use crate::rows::Param;

/// The schema version this build migrates a database to (the number of migrations).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

/// What a failure on `service_users` is about.
const USER: &str = UserRow::WHAT;
/// What a failure on `revoked_jtis` is about.
const REVOKED_JTI: &str = "revoked token id";
/// What a failure on `used_assertions` is about.
const USED_ASSERTION: &str = "used assertion id";

/// The class of the advisory lock around creating a service user or an API app
/// (one namespace of client IDs): `"tes"` followed by 1.
const NAMESPACE_LOCK: i32 = 0x7465_7301;
/// The class of the advisory lock around the compare-and-insert of signing keys.
const SIGNING_KEY_LOCK: i32 = 0x7465_7302;

/// The most token records written by one statement of a group commit; more
/// waiting records go into the next one.
const MAX_GROUP: usize = 512;

/// The most lookups of one kind (service users by username or id, tokens by digest,
/// API apps by client ID) answered by one statement (so at most as many keys); more
/// waiting lookups go into the next one.
const MAX_LOOKUPS: usize = 512;

/// How a [`PostgresStore`] connects: the pool's size and timeouts, and the schema.
///
/// ```
/// use std::time::Duration;
/// use tessera_store_postgres::PoolOptions;
///
/// let options = PoolOptions::default()
///     .with_max_size(8)
///     .with_schema("tessera")
///     .with_wait_timeout(Duration::from_secs(2));
/// assert_eq!(options.max_size, 8);
/// assert_eq!(options.schema.as_deref(), Some("tessera"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// The most connections the pool opens (16 by default, at least 1).
    pub max_size: usize,
    /// The schema holding Tessera's tables, instead of the connection's default
    /// `search_path` (usually `public`); created by the first connect if missing.
    /// A lowercase identifier: 1 to 63 characters from `a-z 0-9 _`, not starting
    /// with a digit or `pg_`. It is set as the `search_path` of every connection.
    pub schema: Option<String>,
    /// How long opening a connection may take (5 seconds by default), unless the
    /// URL sets `connect_timeout` itself.
    pub connect_timeout: Duration,
    /// How long an operation waits for a free connection of a full pool before it
    /// fails with [`StoreError::Unavailable`] (5 seconds by default).
    pub wait_timeout: Duration,
    /// Check every connection with a round trip before handing it out of the pool
    /// (`false` by default). Without it a connection is dropped once its socket has
    /// closed, which covers a restarted or failed-over server; with it, also one
    /// whose peer vanished without closing it, at the cost of a round trip per
    /// operation.
    pub verify_connections: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            schema: None,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            verify_connections: false,
        }
    }
}

impl PoolOptions {
    /// Sets [`max_size`](Self::max_size).
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Sets [`schema`](Self::schema).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`wait_timeout`](Self::wait_timeout).
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Sets [`verify_connections`](Self::verify_connections).
    pub fn with_verify_connections(mut self, verify: bool) -> Self {
        self.verify_connections = verify;
        self
    }
}

/// A storage backend on a PostgreSQL database, shared safely with other instances.
///
/// Cloning is cheap: clones share the same pool of connections.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: Option<Arc<str>>,
    /// Group commit of token records.
    tokens: Arc<Batcher<TokenWriter>>,
    /// Batched lookups of service users by username.
    users_by_name: Arc<Batcher<Reader<UserByUsername>>>,
    /// Batched lookups of service users by id.
    users_by_id: Arc<Batcher<Reader<UserById>>>,
    /// Batched lookups of token records by digest.
    tokens_by_digest: Arc<Batcher<Reader<TokenByDigest>>>,
    /// Batched lookups of API apps by client ID.
    apps_by_client_id: Arc<Batcher<Reader<AppByClientId>>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is not kept: it may hold a password.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("max_size", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value`
    /// connection string) with the default [`PoolOptions`], and applies any missing
    /// schema migrations.
    ///
    /// Fails with [`StoreError::Unavailable`] when the database cannot be reached,
    /// with [`StoreError::Corrupt`] when its schema is newer than this build, and
    /// with [`StoreError::Backend`] when the URL is invalid or the server refuses
    /// the login.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PoolOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with the pool and schema set by `options`.
    pub async fn connect_with(url: &str, options: PoolOptions) -> Result<Self, StoreError> {
        if options.max_size == 0 {
            return Err(StoreError::Backend("the pool needs at least one connection".into()));
        }
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(Box::new(e)))?;
        let connect_timeout = match config.get_connect_timeout() {
            Some(from_url) => *from_url,
            None => {
                config.connect_timeout(options.connect_timeout);
                options.connect_timeout
            }
        };
        if config.get_application_name().is_none() {
            config.application_name("tessera");
        }
        if let Some(schema) = &options.schema {
            schema::check_schema_name(schema)?;
            set_search_path(&mut config, schema);
        }

        schema::migrate(&config, options.schema.as_deref()).await?;

        let recycling_method = if options.verify_connections {
            RecyclingMethod::Verified
        } else {
            RecyclingMethod::Fast
        };
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method });
        let pool = Pool::builder(manager)
            .max_size(options.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self {
            tokens: Arc::new(Batcher::new(TokenWriter { pool: pool.clone() }, MAX_GROUP)),
            users_by_name: Arc::new(Batcher::new(Reader::new(pool.clone()), MAX_LOOKUPS)),
            users_by_id: Arc::new(Batcher::new(Reader::new(pool.clone()), MAX_LOOKUPS)),
            tokens_by_digest: Arc::new(Batcher::new(Reader::new(pool.clone()), MAX_LOOKUPS)),
            apps_by_client_id: Arc::new(Batcher::new(Reader::new(pool.clone()), MAX_LOOKUPS)),
            pool,
            schema: options.schema.map(Arc::from),
        })
    }

    /// The schema the store keeps its tables in, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(map_pool)
    }
}

/// Makes `schema` (a name [`schema::check_schema_name`] accepted) the `search_path`
/// of every connection made with `config`, after any options the URL set.
pub(crate) fn set_search_path(config: &mut tokio_postgres::Config, schema: &str) {
    let search_path = format!("-c search_path={schema}");
    let joined = match config.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {search_path}"),
        _ => search_path,
    };
    config.options(joined);
}

/// `e` as the result of each of `n` operations that one failure ended (a copy of
/// it for all but the first).
pub(crate) fn all_failed<T>(e: StoreError, n: usize) -> Vec<Result<T, StoreError>> {
    let copies: Vec<_> = (1..n).map(|_| Err(copy(&e))).collect();
    std::iter::once(Err(e)).chain(copies).collect()
}

type Params<'a> = &'a [Param<'a>];

/// Runs a statement, prepared once per connection.
pub(crate) async fn exec<C: GenericClient>(
    client: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, params).await
}

/// Runs a query, prepared once per connection; returns every row.
pub(crate) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

/// Runs a query, prepared once per connection, that returns at most one row.
pub(crate) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query_opt(&statement, params).await
}

/// Runs a query, prepared once per connection, that returns one boolean.
pub(crate) async fn query_bool<C: GenericClient>(
    client: &C,
    sql: &str,
    params: Params<'_>,
    what: &'static str,
) -> Result<bool, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(|e| map(e, what))?;
    let row = client.query_one(&statement, params).await.map_err(|e| map(e, what))?;
    row.try_get(0).map_err(|e| corrupt(what, e))
}

/// Takes the transaction-scoped advisory lock `class` of the current schema; it is
/// released when the transaction commits or rolls back.
pub(crate) async fn lock<C: GenericClient>(
    tx: &C,
    class: i32,
    what: &'static str,
) -> Result<(), StoreError> {
    exec(
        tx,
        "SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '')))",
        &[&class],
    )
    .await
    .map_err(|e| map(e, what))?;
    Ok(())
}
