//! The PostgreSQL backend passes the conformance suites: each check of one store on
//! a fresh schema of its own (dropped afterwards), and each check of several
//! instances with two stores (two pools, as two server instances would have) on one
//! fresh schema. The tests run in parallel on one database.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`); without it every test prints that it
//! was skipped and passes.
//!
//! The suites evaluate the factory expression once at the start of each test
//! (`let (store, guard) = $make.await`). The factory is a block that returns from
//! the test early, before the check runs, when no server is configured; otherwise
//! it yields the future of the fresh stores and the guard of their schema.

use tessera_store_postgres::PostgresStore;
use tessera_store_postgres::testkit::{TestSchema, url_or_skip};

/// The name of the running test: libtest names each test's thread after it.
fn test_name() -> String {
    std::thread::current().name().unwrap_or("conformance test").to_owned()
}

async fn fresh(url: String) -> (PostgresStore, TestSchema) {
    let schema = TestSchema::create(&url).await.expect("create a fresh schema");
    let store = schema.store().await.expect("connect a store to the fresh schema");
    (store, schema)
}

async fn fresh_pair(url: String) -> (PostgresStore, PostgresStore, TestSchema) {
    let schema = TestSchema::create(&url).await.expect("create a fresh schema");
    let a = schema.store().await.expect("connect a store to the fresh schema");
    let b = schema.store().await.expect("connect a second store to the schema");
    (a, b, schema)
}

tessera_store::conformance_suite!(guarded: {
    let Some(url) = url_or_skip(&test_name()) else {
        return;
    };
    fresh(url)
});

tessera_store::conformance_suite_shared!(guarded: {
    let Some(url) = url_or_skip(&test_name()) else {
        return;
    };
    fresh_pair(url)
});
