//! The PostgreSQL backend passes the conformance suite, each test on a fresh schema
//! of its own (dropped afterwards), so the tests run in parallel on one database.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`); without it every test prints that it
//! was skipped and passes.
//!
//! The suite evaluates the factory expression once at the start of each test's body
//! (`let (store, guard) = $make.await`). The factory is a block that returns from
//! the test early, before the suite runs, when no server is configured; otherwise it
//! yields the future of a fresh store and the guard of its schema.

use tessera_store_postgres::PostgresStore;
use tessera_store_postgres::testkit::{TestSchema, url_or_skip};

async fn fresh(url: String) -> (PostgresStore, TestSchema) {
    let schema = TestSchema::create(&url).await.expect("create a fresh schema");
    let store = schema.store().await.expect("connect a store to the fresh schema");
    (store, schema)
}

tessera_store::conformance_suite!(guarded: {
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("conformance test").to_owned();
    let Some(url) = url_or_skip(&test) else {
        return;
    };
    fresh(url)
});
