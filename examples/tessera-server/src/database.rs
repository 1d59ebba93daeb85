//! Opening the store a database URL names.

use std::sync::Arc;

use tessera_store::{MemoryStore, Store};
use tessera_store_postgres::PostgresStore;
use tessera_store_sqlite::SqliteStore;

/// The file path of a `sqlite://PATH` (or `sqlite:PATH`) URL.
pub(crate) fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
}

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the store behind `url`: `sqlite://PATH` (or `sqlite:PATH`), `postgres://...`
/// (or `postgresql://...`), `memory:`.
/// Migrations run on open.
pub(crate) async fn open(url: &str) -> Result<Arc<dyn Store>, String> {
    if url == "memory:" || url == "memory://" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err(
                "database URL sqlite:// needs a file path, as in sqlite://tessera.db".into()
            );
        }
        let store = SqliteStore::open(path)
            .await
            .map_err(|e| format!("cannot open SQLite database {path}: {}", chain(&e)))?;
        return Ok(Arc::new(store));
    }
    if is_postgres(url) {
        let store = PostgresStore::connect(url).await.map_err(|e| {
            format!("cannot open PostgreSQL database {}: {}", redact_url(url), chain(&e))
        })?;
        return Ok(Arc::new(store));
    }
    Err(format!(
        "unsupported database URL {:?}; use sqlite://PATH, postgres://... or memory:",
        redact_url(url)
    ))
}

/// An error with its sources, on one line.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A URL with any password removed, fit for an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[redacted]@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("mysql://u:pw@host/db"), "mysql://[redacted]@host/db");
        assert_eq!(redact_url("foo:bar"), "foo:bar");
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused() {
        assert!(open("mysql://u:pw@h/db").await.err().is_some_and(|e| !e.contains("pw")));
        assert!(open("sqlite://").await.is_err());
        assert!(open("memory:").await.is_ok());
    }
}
