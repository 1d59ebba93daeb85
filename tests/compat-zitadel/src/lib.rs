//! Compatibility tests of `tessera-server` with ZITADEL's own client libraries.
//!
//! This library is empty: the tests live in `tests/`. They start the real
//! `tessera-server` binary on loopback sockets and drive it with the Rust `zitadel`
//! crate (pinned to 5.7.7) and the Python `zitadel-client` package (pinned to 4.1.9,
//! installed into a virtual environment under the cargo target directory on first
//! run), exactly as a ZITADEL user would.
