//! Batched lookups of one row by a unique key: [`Reader`] is the [`Worker`] that
//! answers a batch of [`Lookup`]s with one statement (see
//! [Several instances, one database](crate#several-instances-one-database)).
//!
//! A kind of lookup says which table and columns it reads, which column is its key
//! and how a row reads into its record; [`Reader`] does the rest: a single lookup
//! runs the single-row query (`key = $1`), several run one statement that asks for
//! each distinct key once (`key = ANY($1)`), and each row found is matched back to
//! the lookups of its key.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::marker::PhantomData;

use deadpool_postgres::Pool;
use tessera_store::sql::rows::{ApiAppRow, TokenRow, UserRow, corrupt};
use tessera_store::{
    ApiApp, ClientId, ServiceUser, StoreError, TokenDigest, TokenRecord, UserId, Username,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::batch::Worker;
use crate::error::{copy, map, map_pool};
use crate::rows;
use crate::{all_failed, query, query_opt};

/// The type of a key column, as the lookups pass and read it: `str` for `TEXT`,
/// `[u8]` for `BYTEA`.
///
/// Every key column is compared bytewise (`TEXT` columns are `COLLATE "C"`), so a
/// row that matched a key holds exactly that key's bytes.
pub(crate) trait KeyColumn: Eq + Hash + Ord + Sync {
    /// The column's SQL type, for the array parameter (`ANY($1::text[])`).
    const SQL_TYPE: &'static str;

    /// Reads column `idx` of `row`.
    fn read(row: &Row, idx: usize) -> Result<&Self, tokio_postgres::Error>;

    /// `key` as the parameter of the single-row query.
    fn param<'a>(key: &'a &'a Self) -> &'a (dyn ToSql + Sync);

    /// `keys` as the array parameter of the batch query.
    fn array<'a>(keys: &'a &'a [&'a Self]) -> &'a (dyn ToSql + Sync);
}

impl KeyColumn for str {
    const SQL_TYPE: &'static str = "text";

    fn read(row: &Row, idx: usize) -> Result<&str, tokio_postgres::Error> {
        row.try_get(idx)
    }

    fn param<'a>(key: &'a &'a str) -> &'a (dyn ToSql + Sync) {
        key
    }

    fn array<'a>(keys: &'a &'a [&'a str]) -> &'a (dyn ToSql + Sync) {
        keys
    }
}

impl KeyColumn for [u8] {
    const SQL_TYPE: &'static str = "bytea";

    fn read(row: &Row, idx: usize) -> Result<&[u8], tokio_postgres::Error> {
        row.try_get(idx)
    }

    fn param<'a>(key: &'a &'a [u8]) -> &'a (dyn ToSql + Sync) {
        key
    }

    fn array<'a>(keys: &'a &'a [&'a [u8]]) -> &'a (dyn ToSql + Sync) {
        keys
    }
}

/// A kind of batched lookup: one row of `TABLE`, found by the unique column `KEY`.
pub(crate) trait Lookup: Send + Sync + 'static {
    /// What a caller looks up by.
    type Key: Send + Sync + 'static;
    /// The key as the column holds it.
    type Column: KeyColumn + ?Sized;
    /// What a row reads into.
    type Record: Clone + Send + 'static;

    /// What a failure is about.
    const WHAT: &'static str;
    /// The error message of a lookup whose batch ended without a result for it.
    const ABANDONED: &'static str;
    /// The table.
    const TABLE: &'static str;
    /// The columns selected, in the order [`read`](Self::read) reads them.
    const COLUMNS: &'static str;
    /// The key column, unique in the table.
    const KEY: &'static str;
    /// Where [`KEY`](Self::KEY) is in [`COLUMNS`](Self::COLUMNS).
    const KEY_INDEX: usize;

    /// The column value of `key`.
    fn column(key: &Self::Key) -> &Self::Column;

    /// Reads a row of the columns listed in [`COLUMNS`](Self::COLUMNS).
    fn read(row: &Row) -> Result<Self::Record, StoreError>;
}

/// Looks up batches of [`Lookup`]s of one kind, each with one statement.
pub(crate) struct Reader<L> {
    pool: Pool,
    /// The single-row query: `... WHERE key = $1`.
    one: String,
    /// The batch query: `... WHERE key = ANY($1::type[])`.
    any: String,
    kind: PhantomData<fn() -> L>,
}

impl<L: Lookup> Reader<L> {
    pub(crate) fn new(pool: Pool) -> Self {
        let select = format!("SELECT {} FROM {} WHERE {}", L::COLUMNS, L::TABLE, L::KEY);
        Self {
            pool,
            one: format!("{select} = $1"),
            any: format!("{select} = ANY($1::{}[])", <L::Column as KeyColumn>::SQL_TYPE),
            kind: PhantomData,
        }
    }
}

impl<L: Lookup> Worker for Reader<L> {
    type Input = L::Key;
    type Output = Option<L::Record>;
    const ABANDONED: &'static str = L::ABANDONED;

    /// Looks up `keys` (never empty; some may repeat) on one connection with one
    /// statement; one result for each, in their order.
    ///
    /// A single key is looked up with the single-row query. Otherwise the statement
    /// asks for each distinct key once and each row is read on its own: a row that
    /// does not parse is [`StoreError::Corrupt`] for the lookups of its key only,
    /// and the others get their rows (or `None`). When the pool or the statement
    /// fails, every lookup gets that error.
    async fn run(&self, keys: &[L::Key]) -> Vec<Result<Option<L::Record>, StoreError>> {
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return all_failed(map_pool(e), keys.len()),
        };
        if let [single] = keys {
            let key = L::column(single);
            let row = query_opt(&client, &self.one, &[L::Column::param(&key)]).await;
            return vec![
                row.map_err(|e| map(e, L::WHAT))
                    .and_then(|row| row.as_ref().map(L::read).transpose()),
            ];
        }
        let mut distinct: Vec<&L::Column> = keys.iter().map(L::column).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let distinct: &[&L::Column] = &distinct;
        let rows = match query(&client, &self.any, &[L::Column::array(&distinct)]).await {
            Ok(rows) => rows,
            Err(e) => return all_failed(map(e, L::WHAT), keys.len()),
        };
        // Keys are unique, and a row matched one of `distinct` exactly, so its key
        // column tells whose it is. A row whose key cannot even be read could be
        // anyone's: the lookups that found no row of their own get its error rather
        // than `None`.
        let mut found: HashMap<&L::Column, Result<L::Record, StoreError>> =
            HashMap::with_capacity(rows.len());
        let mut unattributed = None;
        for row in &rows {
            match L::Column::read(row, L::KEY_INDEX) {
                Ok(key) => match found.entry(key) {
                    Entry::Vacant(entry) => {
                        entry.insert(L::read(row));
                    }
                    Entry::Occupied(mut entry) => {
                        *entry.get_mut() = Err(corrupt(L::WHAT, "two rows of one key"));
                    }
                },
                Err(e) => unattributed = Some(corrupt(L::KEY, e)),
            }
        }
        keys.iter()
            .map(|key| match (found.get(L::column(key)), &unattributed) {
                (Some(Ok(record)), _) => Ok(Some(record.clone())),
                (Some(Err(e)), _) | (None, Some(e)) => Err(copy(e)),
                (None, None) => Ok(None),
            })
            .collect()
    }
}

/// Service users by username (the client authentication of token requests).
pub(crate) struct UserByUsername;

impl Lookup for UserByUsername {
    type Key = Username;
    type Column = str;
    type Record = ServiceUser;
    const WHAT: &'static str = UserRow::WHAT;
    const ABANDONED: &'static str = "the service user lookup was abandoned";
    const TABLE: &'static str = "service_users";
    const COLUMNS: &'static str = UserRow::COLUMNS;
    const KEY: &'static str = "username";
    const KEY_INDEX: usize = 1;

    fn column(key: &Username) -> &str {
        key.as_str()
    }

    fn read(row: &Row) -> Result<ServiceUser, StoreError> {
        rows::user(row)
    }
}

/// Service users by id (the owner of an introspected token).
pub(crate) struct UserById;

impl Lookup for UserById {
    type Key = UserId;
    type Column = str;
    type Record = ServiceUser;
    const WHAT: &'static str = UserRow::WHAT;
    const ABANDONED: &'static str = "the service user lookup was abandoned";
    const TABLE: &'static str = "service_users";
    const COLUMNS: &'static str = UserRow::COLUMNS;
    const KEY: &'static str = "id";
    const KEY_INDEX: usize = 0;

    fn column(key: &UserId) -> &str {
        key.as_str()
    }

    fn read(row: &Row) -> Result<ServiceUser, StoreError> {
        rows::user(row)
    }
}

/// Token records by digest (token introspection).
pub(crate) struct TokenByDigest;

impl Lookup for TokenByDigest {
    type Key = TokenDigest;
    type Column = [u8];
    type Record = TokenRecord;
    const WHAT: &'static str = TokenRow::WHAT;
    const ABANDONED: &'static str = "the token lookup was abandoned";
    const TABLE: &'static str = "tokens";
    const COLUMNS: &'static str = TokenRow::COLUMNS;
    const KEY: &'static str = "digest";
    const KEY_INDEX: usize = 0;

    fn column(key: &TokenDigest) -> &[u8] {
        key.as_bytes()
    }

    fn read(row: &Row) -> Result<TokenRecord, StoreError> {
        rows::token(row)
    }
}

/// API apps by client ID (the caller of token introspection).
pub(crate) struct AppByClientId;

impl Lookup for AppByClientId {
    type Key = ClientId;
    type Column = str;
    type Record = ApiApp;
    const WHAT: &'static str = ApiAppRow::WHAT;
    const ABANDONED: &'static str = "the API app lookup was abandoned";
    const TABLE: &'static str = "api_apps";
    const COLUMNS: &'static str = ApiAppRow::COLUMNS;
    const KEY: &'static str = "client_id";
    const KEY_INDEX: usize = 0;

    fn column(key: &ClientId) -> &str {
        key.as_str()
    }

    fn read(row: &Row) -> Result<ApiApp, StoreError> {
        rows::app(row)
    }
}
