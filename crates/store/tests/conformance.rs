//! The in-memory backend passes the conformance suite.
#![cfg(feature = "testkit")]

tessera_store::conformance_suite!(async { tessera_store::MemoryStore::new() });
