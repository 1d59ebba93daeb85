//! PostgreSQL storage backend of Tessera: [`PostgresStore`] keeps everything Tessera
//! stores in one PostgreSQL database (one schema of it), shared by any number of
//! server instances:
//!
//! - service users (`service_users`) and the records of their opaque tokens
//!   (`tokens`, with the audience and the roles each token carries as JSON text);
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
//! Only digests of client secrets and opaque tokens are stored (`BYTEA`), never the
//! secrets; timestamps are unix seconds (`BIGINT`).
//!
//! # Durability
//!
//! Every write commits before it returns, and with PostgreSQL's default
//! `synchronous_commit=on` a commit returns only once the server flushed it to its
//! write-ahead log on disk. A call such as
//! [`insert_token`](tessera_store::TokenStore::insert_token) therefore returns only
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
//! - [`service_user_by_username`](ServiceUserStore::service_user_by_username) (the
//!   client authentication of a token request), `service_users WHERE username`;
//! - [`api_app_by_client_id`](tessera_store::ProjectStore::api_app_by_client_id)
//!   (the API app calling introspection), `api_apps WHERE client_id`;
//! - [`token_by_digest`](TokenStore::token_by_digest) (the token introspected),
//!   `tokens WHERE digest`;
//! - [`service_user_by_id`](ServiceUserStore::service_user_by_id) (the token's user,
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
//!
//! ```no_run
//! use tessera_store::{ServiceUser, ServiceUserStore, Username};
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
#![forbid(unsafe_code)]

mod batch;
mod client_keys;
mod error;
mod lookup;
mod organization;
mod projects;
mod rows;
mod schema;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tessera_store::{
    ServiceUser, ServiceUserPatch, ServiceUserStore, SigningKeyRecord, SigningKeyStore, Store,
    StoreError, TokenDigest, TokenId, TokenRecord, TokenStore, UserId, Username,
};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::batch::{Batcher, Worker};
use crate::error::{copy, corrupt, is_foreign_key_violation, is_refused_statement, map, map_pool};
use crate::lookup::{AppByClientId, Reader, TokenByDigest, UserById, UserByUsername};
use crate::rows::{
    KEY_COLUMNS, TOKEN_COLUMNS, USER_COLUMNS, audience_json, previous_secret_columns, roles_json,
    unix,
};

/// The schema version this build migrates a database to (the number of migrations).
pub const SCHEMA_VERSION: usize = schema::MIGRATIONS.len();

const USER: &str = "service user";
const TOKEN: &str = "token";
const SIGNING_KEY: &str = "signing key";
const REVOKED_JTI: &str = "revoked token id";

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

/// A token record to insert, with its JSON columns.
struct PendingToken {
    record: TokenRecord,
    audience: String,
    roles: String,
}

/// Writes groups of token records (see [Durability](crate#durability)).
struct TokenWriter {
    pool: Pool,
}

impl Worker for TokenWriter {
    type Input = PendingToken;
    type Output = ();
    const ABANDONED: &'static str = "the token write was abandoned";

    async fn run(&self, group: &[PendingToken]) -> Vec<Result<(), StoreError>> {
        commit_tokens(&self.pool, group).await
    }
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

/// Inserts `group` on one connection; each record's result is its own (a
/// conflicting record or one of a missing user fails alone), and none is Ok before
/// the statement that wrote it committed.
///
/// The group is one statement; a record whose digest was stored already is not
/// inserted by it, and is a conflict. A record that repeats the digest of an
/// earlier one of the group is left out of the statement and written on its own
/// afterwards (most likely a conflict too), so that each digest the statement
/// returns belongs to one record. When the statement fails as a whole for what it
/// writes (a foreign key violation: a user deleted meanwhile), the records are
/// written one by one, each with its own result; when the pool or the connection
/// fails, every record gets that error.
async fn commit_tokens(pool: &Pool, group: &[PendingToken]) -> Vec<Result<(), StoreError>> {
    let all_failed = |e| all_failed(e, group.len());
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => return all_failed(map_pool(e)),
    };
    if let [single] = group {
        return vec![insert_token_row(&client, single).await];
    }
    let mut digests = HashSet::with_capacity(group.len());
    let first: Vec<bool> = group.iter().map(|p| digests.insert(p.record.digest)).collect();
    let firsts: Vec<&PendingToken> =
        group.iter().zip(&first).filter(|(_, first)| **first).map(|(p, _)| p).collect();
    let inserted = match insert_token_rows(&client, &firsts).await {
        Ok(inserted) => Some(inserted),
        Err(e) if is_refused_statement(&e) => None,
        Err(e) => return all_failed(map(e, TOKEN)),
    };
    let mut results = Vec::with_capacity(group.len());
    for (pending, first) in group.iter().zip(first) {
        let result = match &inserted {
            Some(inserted) if first => {
                if inserted.contains(&pending.record.digest.as_bytes()[..]) {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(TOKEN))
                }
            }
            _ => insert_token_row(&client, pending).await,
        };
        results.push(result);
    }
    results
}

/// Inserts records of distinct digests with one statement (committed when it
/// returns) and returns the digests of those inserted: the others were stored
/// already.
async fn insert_token_rows(
    client: &Object,
    group: &[&PendingToken],
) -> Result<HashSet<Vec<u8>>, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) \
         ON CONFLICT (digest) DO NOTHING RETURNING digest"
    );
    let column = |f: fn(&PendingToken) -> &str| group.iter().map(|p| f(p)).collect::<Vec<_>>();
    let digests: Vec<&[u8]> = group.iter().map(|p| &p.record.digest.as_bytes()[..]).collect();
    let scopes: Vec<String> = group.iter().map(|p| p.record.scopes.to_string()).collect();
    let issued: Vec<i64> = group.iter().map(|p| unix(p.record.issued_at)).collect();
    let expires: Vec<i64> = group.iter().map(|p| unix(p.record.expires_at)).collect();
    let revoked: Vec<Option<i64>> = group.iter().map(|p| p.record.revoked_at.map(unix)).collect();
    let rows = query(
        client,
        &sql,
        &[
            &digests,
            &column(|p| p.record.jti.as_str()),
            &column(|p| p.record.user_id.as_str()),
            &column(|p| p.record.client_id.as_str()),
            &scopes,
            &column(|p| &p.audience),
            &issued,
            &expires,
            &revoked,
            &column(|p| &p.roles),
        ],
    )
    .await?;
    rows.iter().map(|row| row.try_get::<_, Vec<u8>>(0)).collect()
}

/// Inserts one token record with a statement of its own, committed when it returns.
async fn insert_token_row<C: GenericClient>(
    client: &C,
    pending: &PendingToken,
) -> Result<(), StoreError> {
    let record = &pending.record;
    let digest: &[u8] = record.digest.as_bytes();
    let sql = format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    exec(
        client,
        &sql,
        &[
            &digest,
            &record.jti.as_str(),
            &record.user_id.as_str(),
            &record.client_id.as_str(),
            &record.scopes.to_string(),
            &pending.audience,
            &unix(record.issued_at),
            &unix(record.expires_at),
            &record.revoked_at.map(unix),
            &pending.roles,
        ],
    )
    .await
    .map(drop)
    .map_err(|e| {
        if is_foreign_key_violation(&e) { StoreError::NotFound(USER) } else { map(e, TOKEN) }
    })
}

/// `e` as the result of each of `n` operations that one failure ended (a copy of
/// it for all but the first).
pub(crate) fn all_failed<T>(e: StoreError, n: usize) -> Vec<Result<T, StoreError>> {
    let copies: Vec<_> = (1..n).map(|_| Err(copy(&e))).collect();
    std::iter::once(Err(e)).chain(copies).collect()
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

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

async fn user_where<C: GenericClient>(
    client: &C,
    condition: &str,
    value: &str,
) -> Result<Option<ServiceUser>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM service_users WHERE {condition}");
    query_opt(client, &sql, &[&value])
        .await
        .map_err(|e| map(e, USER))?
        .map(|row| rows::user(&row))
        .transpose()
}

fn secret_bytes(user: &ServiceUser) -> Option<&[u8]> {
    user.secret.as_ref().map(|d| &d.as_bytes()[..])
}

#[async_trait]
impl ServiceUserStore for PostgresStore {
    async fn create_service_user(&self, user: &ServiceUser) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, USER))?;
        // Usernames and API app client IDs are one namespace: check the apps and
        // insert under the namespace lock, so that no other instance can create an
        // app of this name in between.
        lock(&tx, NAMESPACE_LOCK, USER).await?;
        if projects::client_id_is_app(&tx, user.username.as_str()).await? {
            return Err(StoreError::Conflict(USER));
        }
        let sql = format!(
            "INSERT INTO service_users ({USER_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let (previous_digest, previous_expiry) =
            previous_secret_columns(user.previous_secret.as_ref());
        exec(
            &tx,
            &sql,
            &[
                &user.id.as_str(),
                &user.username.as_str(),
                &user.display_name.as_str(),
                &user.access_token_type.as_str(),
                &i64::from(user.token_lifetime.as_secs()),
                &secret_bytes(user),
                &user.enabled,
                &unix(user.created_at),
                &unix(user.updated_at),
                &previous_digest,
                &previous_expiry,
            ],
        )
        .await
        .map_err(|e| map(e, USER))?;
        tx.commit().await.map_err(|e| map(e, USER))
    }

    /// Batched: the lookup joins the lookups waiting for the store's next batch,
    /// never one whose statement was sent already, so the row it returns was read
    /// after the call started (see
    /// [Several instances, one database](crate#several-instances-one-database)).
    async fn service_user_by_username(
        &self,
        username: &Username,
    ) -> Result<Option<ServiceUser>, StoreError> {
        self.users_by_name.call(username.clone()).await
    }

    /// Batched, like [`service_user_by_username`](Self::service_user_by_username).
    async fn service_user_by_id(&self, id: &UserId) -> Result<Option<ServiceUser>, StoreError> {
        self.users_by_id.call(id.clone()).await
    }

    async fn list_service_users(&self) -> Result<Vec<ServiceUser>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM service_users ORDER BY username");
        let rows = query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, USER))?;
        rows::all(&rows, rows::user)
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
        let (previous_digest, previous_expiry) =
            previous_secret_columns(user.previous_secret.as_ref());
        exec(
            &tx,
            "UPDATE service_users SET display_name = $2, access_token_type = $3, \
             token_lifetime_secs = $4, secret_digest = $5, enabled = $6, updated_at = $7, \
             previous_secret_digest = $8, previous_secret_expires_at = $9 \
             WHERE id = $1",
            &[
                &user.id.as_str(),
                &user.display_name.as_str(),
                &user.access_token_type.as_str(),
                &i64::from(user.token_lifetime.as_secs()),
                &secret_bytes(&user),
                &user.enabled,
                &unix(user.updated_at),
                &previous_digest,
                &previous_expiry,
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
        // The user first: its tokens and grants go with it (ON DELETE CASCADE), and
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

#[async_trait]
impl TokenStore for PostgresStore {
    /// Group commit: the record joins the records waiting for the store's flusher
    /// task, and the call returns once the statement holding it has committed (with
    /// `synchronous_commit=on`, flushed to disk), so a token is never answered
    /// before its record is durable, while one round trip and one commit serve
    /// every request in flight. If the caller stops waiting, the record may still
    /// be committed.
    async fn insert_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let pending = PendingToken {
            audience: audience_json(&record.audience)?,
            roles: roles_json(&record.roles)?,
            record: record.clone(),
        };
        self.tokens.call(pending).await
    }

    /// Batched, like
    /// [`service_user_by_username`](ServiceUserStore::service_user_by_username): the
    /// record returned was read after the call started, so a revocation committed
    /// before it is seen.
    async fn token_by_digest(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens_by_digest.call(*digest).await
    }

    /// Scans the table: no request looks a record up by id, and an index on ids
    /// would cost every insert a write to a random index page.
    async fn token_by_jti(&self, jti: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = $1");
        query_opt(&self.client().await?, &sql, &[&jti.as_str()])
            .await
            .map_err(|e| map(e, TOKEN))?
            .map(|row| rows::token(&row))
            .transpose()
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

    async fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = unix(now);
        let mut client = self.client().await?;
        // One transaction: one commit for the three tables.
        let tx = client.transaction().await.map_err(|e| map(e, TOKEN))?;
        let tokens = exec(&tx, "DELETE FROM tokens WHERE expires_at <= $1", &[&now])
            .await
            .map_err(|e| map(e, TOKEN))?;
        let jtis = exec(&tx, "DELETE FROM revoked_jtis WHERE expires_at <= $1", &[&now])
            .await
            .map_err(|e| map(e, REVOKED_JTI))?;
        let assertions = exec(&tx, "DELETE FROM used_assertions WHERE expires_at <= $1", &[&now])
            .await
            .map_err(|e| map(e, client_keys::USED_ASSERTION))?;
        tx.commit().await.map_err(|e| map(e, TOKEN))?;
        Ok(tokens + jtis + assertions)
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
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY activates_at, kid");
        let rows =
            query(&self.client().await?, &sql, &[]).await.map_err(|e| map(e, SIGNING_KEY))?;
        rows::all(&rows, rows::signing_key)
    }

    async fn insert_signing_key(
        &self,
        key: &SigningKeyRecord,
        expected_latest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| map(e, SIGNING_KEY))?;
        // Racing instances take turns here; each reads the newest key only once the
        // previous one has committed (read committed: every statement sees the
        // commits made before it started).
        lock(&tx, SIGNING_KEY_LOCK, SIGNING_KEY).await?;
        let latest: Option<String> = query_opt(
            &tx,
            "SELECT kid FROM signing_keys ORDER BY activates_at DESC, kid DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| map(e, SIGNING_KEY))?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(|e| corrupt("signing key id", e))?;
        if latest.as_deref() != expected_latest {
            // Dropping the transaction rolls it back and releases the lock.
            return Ok(false);
        }
        let sql =
            format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
        exec(
            &tx,
            &sql,
            &[
                &key.kid,
                &key.algorithm.as_str(),
                &key.public_jwk,
                &key.sealed_private_key,
                &unix(key.created_at),
                &unix(key.activates_at),
            ],
        )
        .await
        .map_err(|e| map(e, SIGNING_KEY))?;
        tx.commit().await.map_err(|e| map(e, SIGNING_KEY))?;
        Ok(true)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let deleted =
            exec(&self.client().await?, "DELETE FROM signing_keys WHERE kid = $1", &[&kid])
                .await
                .map_err(|e| map(e, SIGNING_KEY))?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached("SELECT 1").await.map_err(|e| map(e, "database"))?;
        client.query_one(&statement, &[]).await.map_err(|e| map(e, "database"))?;
        Ok(())
    }
}
