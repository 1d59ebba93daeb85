//! Helpers for tests against a real PostgreSQL server (feature `testkit`).
//!
//! Tests read the server's URL from [`URL_VAR`] (`TESSERA_TEST_POSTGRES_URL`) and
//! skip themselves, with a line on standard error, when it is unset. Each test runs
//! on a schema of its own ([`TestSchema`]), so tests can run in parallel on one
//! database; the schema is dropped when the guard is.
//!
//! ```no_run
//! use tessera_store::prelude::*;
//! use tessera_store_postgres::testkit::{TestSchema, url_or_skip};
//!
//! # async fn a_test() -> Result<(), Box<dyn std::error::Error>> {
//! let Some(url) = url_or_skip("a_test") else { return Ok(()) };
//! let schema = TestSchema::create(&url).await?;
//! let store = schema.store().await?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use tessera_store::{StoreError, random_bytes};
use tokio_postgres::NoTls;

use crate::error::map;
use crate::{PoolOptions, PostgresStore};

/// The environment variable holding the URL of the test server, such as
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// The URL of the test server, or `None` after printing that `test` is skipped
/// because [`URL_VAR`] is unset or empty.
pub fn url_or_skip(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Written to the process's stderr directly, not with `eprintln!`, which the
            // test harness captures: a skip must show in every test run's output.
            let line = format!(
                "skipped {test}: {URL_VAR} is not set; set it to a PostgreSQL URL such as \
                 postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL tests\n"
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            None
        }
    }
}

/// A uniquely named schema `tessera_test_<16 hex digits>` on the test server,
/// dropped (with everything in it) when the guard is dropped.
///
/// A panicking test still drops its guard while unwinding; only a test process that
/// is killed leaks its schemas.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// Creates a fresh, empty schema.
    pub async fn create(url: &str) -> Result<Self, StoreError> {
        let schema = Self::reserve(url)?;
        let client = connect(url).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA \"{}\"", schema.name))
            .await
            .map_err(|e| map(e, "test schema"))?;
        Ok(schema)
    }

    /// Creates a fresh schema holding only the first `version` migrations, as a
    /// release that knew no more of them left it, for testing upgrades: the first
    /// store that connects to it applies the others. Fails with
    /// [`StoreError::Backend`] when this build has fewer than `version`
    /// migrations.
    pub async fn create_at_version(url: &str, version: usize) -> Result<Self, StoreError> {
        let migrations = crate::schema::MIGRATIONS.get(..version).ok_or_else(|| {
            StoreError::Backend(
                format!("no schema version {version}: this build knows {}", crate::SCHEMA_VERSION)
                    .into(),
            )
        })?;
        let schema = Self::reserve(url)?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(Box::new(e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        crate::set_search_path(&mut config, &schema.name);
        crate::schema::migrate_with(&config, Some(&schema.name), migrations).await?;
        Ok(schema)
    }

    /// Picks a fresh schema name without creating the schema (the first store that
    /// connects to it does); the schema is dropped all the same if it exists then.
    pub fn reserve(url: &str) -> Result<Self, StoreError> {
        let bytes = random_bytes::<8>().map_err(|e| StoreError::Backend(Box::new(e)))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { url: url.to_owned(), name: format!("tessera_test_{hex}") })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Options for a store on this schema, with a small pool (8 connections), so
    /// that many tests at once stay within the server's connection limit.
    pub fn options(&self) -> PoolOptions {
        PoolOptions::default().with_schema(self.name.clone()).with_max_size(8)
    }

    /// A store on this schema, connected with [`options`](Self::options).
    pub async fn store(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(&self.url, self.options()).await
    }

    /// A plain client (not pooled) whose `search_path` is this schema, for looking
    /// at or tampering with the stored rows.
    pub async fn client(&self) -> Result<tokio_postgres::Client, StoreError> {
        let client = connect(&self.url).await?;
        client
            .batch_execute(&format!("SET search_path = \"{}\"", self.name))
            .await
            .map_err(|e| map(e, "test schema"))?;
        Ok(client)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop may run inside a Tokio runtime, where blocking on a future is not
        // allowed: drop the schema from a thread with a runtime of its own, and
        // wait for it so the test process does not exit first.
        let url = self.url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = connect(&url).await.map_err(|e| format!("{e:?}"))?;
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    ))
                    .await
                    .map_err(|e| format!("{e:?}"))
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: the cleanup panicked", self.name),
        }
    }
}

/// A plain connection to `url`, its connection task spawned on the current runtime.
async fn connect(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError::Backend(Box::new(e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| map(e, "database"))?;
    tokio::spawn(connection);
    Ok(client)
}
