//! The SQLite backend passes the conformance suites: each check of one store on a
//! fresh file in its own temporary directory, and each check of several instances
//! with two stores (as two processes would open it) on one fresh file.

use tessera_store_sqlite::SqliteStore;

tessera_store::conformance_suite!(guarded: async {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("tessera.db")).await.expect("open a fresh store");
    (store, dir)
});

tessera_store::conformance_suite_shared!(guarded: async {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("tessera.db");
    let a = SqliteStore::open(&path).await.expect("open a fresh store");
    let b = SqliteStore::open(&path).await.expect("open the same file again");
    (a, b, dir)
});
