//! Group commit of token records (see [Durability](crate#durability)): one
//! statement, one round trip and one commit for every record in flight.
//!
//! [`TokenWriter`] is the [`Worker`] of the store's token [`Batcher`](crate::batch::Batcher):
//! each [`insert_token`](tessera_store::IssuingStore::insert_token) queues its row,
//! and each batch is written with one `INSERT ... SELECT * FROM unnest(...)`.
//! Measured with the load harness (`benches`, the PostgreSQL rows of
//! `docs/benchmarks.md`): a statement and a commit per token cost a round trip and
//! a WAL flush each.

use std::collections::HashSet;
use std::sync::LazyLock;

use deadpool_postgres::{GenericClient, Object, Pool};
use tessera_store::StoreError;
use tessera_store::sql::rows::TokenRow;

use crate::batch::Worker;
use crate::error::{is_foreign_key_violation, is_refused_statement, map, map_pool};
use crate::rows::{insert_sql, token_values};
use crate::{USER, all_failed, exec, query};

const TOKEN: &str = TokenRow::WHAT;

/// Writes groups of token rows (see [Durability](crate#durability)).
pub(crate) struct TokenWriter {
    pub(crate) pool: Pool,
}

impl Worker for TokenWriter {
    type Input = TokenRow<'static>;
    type Output = ();
    const ABANDONED: &'static str = "the token write was abandoned";

    async fn run(&self, group: &[TokenRow<'static>]) -> Vec<Result<(), StoreError>> {
        commit_tokens(&self.pool, group).await
    }
}

/// Inserts `group` on one connection; each row's result is its own (a
/// conflicting row or one of a missing user fails alone), and none is Ok before
/// the statement that wrote it committed.
///
/// The group is one statement; a row whose digest was stored already is not
/// inserted by it, and is a conflict. A row that repeats the digest of an
/// earlier one of the group is left out of the statement and written on its own
/// afterwards (most likely a conflict too), so that each digest the statement
/// returns belongs to one row. When the statement fails as a whole for what it
/// writes (a foreign key violation: a user deleted meanwhile), the rows are
/// written one by one, each with its own result; when the pool or the connection
/// fails, every row gets that error.
async fn commit_tokens(pool: &Pool, group: &[TokenRow<'static>]) -> Vec<Result<(), StoreError>> {
    let all_failed = |e| all_failed(e, group.len());
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => return all_failed(map_pool(e)),
    };
    if let [single] = group {
        return vec![insert_token_row(&client, single).await];
    }
    let mut digests = HashSet::with_capacity(group.len());
    let first: Vec<bool> = group.iter().map(|row| digests.insert(&row.digest[..])).collect();
    let firsts: Vec<&TokenRow<'static>> =
        group.iter().zip(&first).filter(|(_, first)| **first).map(|(row, _)| row).collect();
    let inserted = match insert_token_rows(&client, &firsts).await {
        Ok(inserted) => Some(inserted),
        Err(e) if is_refused_statement(&e) => None,
        Err(e) => return all_failed(map(e, TOKEN)),
    };
    let mut results = Vec::with_capacity(group.len());
    for (row, first) in group.iter().zip(first) {
        let result = match &inserted {
            Some(inserted) if first => {
                if inserted.contains(&row.digest[..]) {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(TOKEN))
                }
            }
            _ => insert_token_row(&client, row).await,
        };
        results.push(result);
    }
    results
}

/// `INSERT INTO tokens ... SELECT * FROM unnest(...) ... RETURNING digest`, made once.
static INSERT_TOKENS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tokens ({}) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) \
         ON CONFLICT (digest) DO NOTHING RETURNING digest",
        TokenRow::COLUMNS
    )
});

/// `INSERT INTO tokens ... VALUES ($1, ..., $10)`, made once.
static INSERT_TOKEN: LazyLock<String> =
    LazyLock::new(|| insert_sql("tokens", TokenRow::COLUMNS, 10));

/// Inserts rows of distinct digests with one statement (committed when it
/// returns) and returns the digests of those inserted: the others were stored
/// already.
async fn insert_token_rows(
    client: &Object,
    group: &[&TokenRow<'static>],
) -> Result<HashSet<Vec<u8>>, tokio_postgres::Error> {
    let text = |f: for<'r> fn(&'r TokenRow<'static>) -> &'r str| {
        group.iter().map(|r| f(r)).collect::<Vec<_>>()
    };
    let int = |f: fn(&TokenRow<'static>) -> i64| group.iter().map(|r| f(r)).collect::<Vec<_>>();
    let digests: Vec<&[u8]> = group.iter().map(|r| &r.digest[..]).collect();
    let revoked: Vec<Option<i64>> = group.iter().map(|r| r.revoked_at).collect();
    let rows = query(
        client,
        &INSERT_TOKENS,
        &[
            &digests,
            &text(|r| &r.jti),
            &text(|r| &r.user_id),
            &text(|r| &r.client_id),
            &text(|r| &r.scopes),
            &text(|r| &r.audience),
            &int(|r| r.issued_at),
            &int(|r| r.expires_at),
            &revoked,
            &text(|r| &r.roles),
        ],
    )
    .await?;
    rows.iter().map(|row| row.try_get::<_, Vec<u8>>(0)).collect()
}

/// Inserts one token row with a statement of its own, committed when it returns.
async fn insert_token_row<C: GenericClient>(
    client: &C,
    row: &TokenRow<'_>,
) -> Result<(), StoreError> {
    exec(client, &INSERT_TOKEN, &token_values(row)).await.map(drop).map_err(|e| {
        if is_foreign_key_violation(&e) { StoreError::NotFound(USER) } else { map(e, TOKEN) }
    })
}
