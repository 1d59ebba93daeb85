//! Runs each test against the in-memory store and a real SQLite file, on a manual clock.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of this module

use std::error::Error;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tessera_admin::Admin;
use tessera_store::prelude::*;
use tessera_store::{ManualClock, MemoryStore};
use tessera_store_sqlite::SqliteStore;
use time::OffsetDateTime;

pub type TestResult = Result<(), Box<dyn Error>>;

/// What a test gets: the administration, its clock and the store beneath (to check
/// the stored state directly).
pub struct World {
    pub admin: Admin,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub backend: &'static str,
}

/// The time every test starts at: 2023-11-14T22:13:20Z.
pub fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs `test` on a fresh in-memory store, then on a fresh SQLite file.
pub async fn on_each_backend<F, Fut>(test: F) -> TestResult
where
    F: Fn(World) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("admin.db")).await?);
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for (backend, store) in [("memory", memory), ("sqlite", sqlite)] {
        let clock = Arc::new(ManualClock::new(start()));
        let admin = Admin::new(store.clone()).with_clock(clock.clone());
        test(World { admin, clock, store, backend })
            .await
            .map_err(|e| format!("on the {backend} store: {e}"))?;
    }
    Ok(())
}

/// The log lines of this test binary, captured from `tracing` as the plain text
/// formatter writes them. One subscriber serves every test thread (a per-thread one
/// misses events when tests run in parallel), so a test picks its lines by the names
/// it used.
pub fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Fails only when a global subscriber is set already, which nothing else does.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

/// Captured log lines; see [`logs`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
