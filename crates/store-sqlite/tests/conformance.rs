//! The SQLite backend passes the conformance suite, each test on a fresh file in
//! its own temporary directory.

tessera_store::conformance_suite!(guarded: async {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = tessera_store_sqlite::SqliteStore::open(dir.path().join("tessera.db"))
        .await
        .expect("open a fresh store");
    (store, dir)
});
