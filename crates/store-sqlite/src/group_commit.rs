//! Group commit of token records: one sync to disk for every record in flight.
//!
//! Each [`insert_token`](tessera_store::IssuingStore::insert_token) queues its row
//! and waits; one blocking thread at a time takes every row queued and inserts them
//! in one transaction, whose commit (with `synchronous=FULL`) syncs once for all of
//! them, then takes the rows that arrived meanwhile. Measured with the load harness
//! (`benches`, the SQLite rows of `docs/benchmarks.md`): one fsync per request
//! caps a server at the disk's syncs per second.
//!
//! The queue and the handover of the runner's role are
//! [`tessera_store::sql::GroupQueue`], shared with the PostgreSQL backend; the
//! runner is SQLite's own: the connection is synchronous, so it runs on the
//! blocking pool and drains batch after batch without returning to the runtime,
//! and a batch has no size limit (a transaction of any size is one sync).

use std::sync::{Arc, LazyLock};

use rusqlite::Connection;
use tessera_store::sql::rows::TokenRow;
use tessera_store::{StoreError, TokenRecord};
use tokio::sync::oneshot;

use crate::error::{is_foreign_key_violation, is_transient, map};
use crate::rows::{insert_sql, token_values};
use crate::{Inner, SqliteStore};

/// A token row to insert, and where to say whether it was committed.
pub(crate) struct PendingToken {
    row: TokenRow<'static>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl SqliteStore {
    /// Queues `record` for the next group commit and waits until the transaction
    /// holding it has committed (or failed).
    pub(crate) async fn commit_token(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        // The row is made here, on the caller's thread, so that the one writer
        // thread only binds and inserts.
        let row = TokenRow::of(record)?.into_owned();
        if self.inner.pending.push(PendingToken { row, done }) {
            let inner = Arc::clone(&self.inner);
            tokio::task::spawn_blocking(move || inner.flush_pending());
        }
        committed.await.map_err(|_| {
            StoreError::Backend(Box::new(std::io::Error::other("the token write was abandoned")))
        })?
    }
}

impl Inner {
    /// Commits pending token rows in groups until none are left: every row that
    /// arrived while the previous group was being synced goes into the next
    /// transaction. Runs on a blocking thread, holding the queue's runner role.
    pub(crate) fn flush_pending(&self) {
        // If this loop unwinds, let the next insert start a new runner.
        struct AbandonOnUnwind<'a>(&'a Inner, bool);
        impl Drop for AbandonOnUnwind<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.pending.abandon();
                }
            }
        }
        let mut guard = AbandonOnUnwind(self, true);
        while let Some(batch) = self.pending.next_batch(usize::MAX) {
            let results = self.commit_tokens(&batch);
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.done.send(result);
            }
        }
        // `next_batch` gave the role up.
        guard.1 = false;
    }

    /// Inserts `batch` in one transaction; each row's result is its own (a
    /// conflicting row fails alone: SQLite keeps the transaction going after a
    /// failed statement), and none is Ok before the commit returned.
    fn commit_tokens(&self, batch: &[PendingToken]) -> Vec<Result<(), StoreError>> {
        let mut writer = self.writer();
        let conn = &mut writer.0;
        let all_failed = |e: &rusqlite::Error| -> Vec<Result<(), StoreError>> {
            batch.iter().map(|_| Err(shared_error(e))).collect()
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            return all_failed(&e);
        }
        let results: Vec<_> = batch.iter().map(|p| insert_token_row(conn, &p.row)).collect();
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
/// database was busy or locked or the machine failed (full disk, I/O error, a
/// file made read-only), a backend failure otherwise, as [`map`] classifies it.
fn shared_error(e: &rusqlite::Error) -> StoreError {
    let source = Box::new(std::io::Error::other(e.to_string()));
    if is_transient(e) { StoreError::Unavailable(source) } else { StoreError::Backend(source) }
}

/// `INSERT INTO tokens ...`, made once.
static INSERT_TOKEN: LazyLock<String> =
    LazyLock::new(|| insert_sql("tokens", TokenRow::COLUMNS, 10));

fn insert_token_row(conn: &Connection, row: &TokenRow<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(&INSERT_TOKEN)
        .and_then(|mut stmt| stmt.execute(&token_values(row)[..]))
        .map(drop)
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound(crate::USER)
            } else {
                map(e, TokenRow::WHAT)
            }
        })
}
