//! The in-memory backend passes the conformance suite; its two-handle checks run on
//! two handles of one store (its data lives in the process).
#![cfg(feature = "testkit")]

use std::sync::Arc;

use tessera_store::MemoryStore;
use tessera_store::testkit::SharedStore;

tessera_store::conformance_suite!(async { MemoryStore::new() });

tessera_store::conformance_suite_shared!(async {
    let store: SharedStore = Arc::new(MemoryStore::new());
    (store.clone(), store)
});
