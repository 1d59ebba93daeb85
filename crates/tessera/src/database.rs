//! Opening the store a database URL names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_store::{MemoryStore, Store};

use crate::Error;

/// A store opened from a database URL, and what kind of database it is (which
/// decides where the master key comes from by default).
#[derive(Clone)]
pub struct Database {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Its kind.
    pub kind: DatabaseKind,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The kinds of database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseKind {
    /// `memory:`: gone when the process ends.
    Memory,
    /// `sqlite://PATH`: a file of this process (and of CLI commands beside it).
    Sqlite(PathBuf),
    /// `postgres://...`: shared by several instances.
    Postgres,
}

impl DatabaseKind {
    /// The kind of database `url` names, without opening it.
    pub fn of(url: &str) -> Result<Self, Error> {
        if url == "memory:" || url == "memory://" {
            return Ok(DatabaseKind::Memory);
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(Error::Database(
                    "database URL sqlite:// needs a file path, as in sqlite://tessera.db".into(),
                ));
            }
            return Ok(DatabaseKind::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseKind::Postgres);
        }
        Err(Error::Database(format!(
            "unsupported database URL {:?}; use sqlite://PATH, postgres://... or memory:",
            redact_url(url)
        )))
    }

    /// Where the master key file of a SQLite database lives by default:
    /// `tessera.db` → `tessera.db.master.key`, in the same directory.
    pub fn master_key_file(&self) -> Option<PathBuf> {
        let DatabaseKind::Sqlite(db) = self else { return None };
        Some(master_key_file(db))
    }
}

fn master_key_file(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".master.key");
    db.with_file_name(name)
}

impl Database {
    /// Opens the store behind `url`: `sqlite://PATH` (or `sqlite:PATH`),
    /// `postgres://...` (or `postgresql://...`) or `memory:`. Migrations run on open.
    /// The password of a URL never appears in an error.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let kind = DatabaseKind::of(url)?;
        let store: Arc<dyn Store> = match &kind {
            DatabaseKind::Memory => Arc::new(MemoryStore::new()),
            #[cfg(feature = "sqlite")]
            DatabaseKind::Sqlite(path) => {
                Arc::new(tessera_store_sqlite::SqliteStore::open(path).await.map_err(|e| {
                    Error::Database(format!(
                        "cannot open SQLite database {}: {}",
                        path.display(),
                        chain(&e)
                    ))
                })?)
            }
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => Arc::new(
                tessera_store_postgres::PostgresStore::connect(url).await.map_err(|e| {
                    Error::Database(format!(
                        "cannot open PostgreSQL database {}: {}",
                        redact_url(url),
                        chain(&e)
                    ))
                })?,
            ),
            #[allow(unreachable_patterns)] // reached when a backend's feature is off
            _ => {
                return Err(Error::Database(format!(
                    "this build cannot open {:?}: enable the feature of its backend",
                    redact_url(url)
                )));
            }
        };
        Ok(Self { store, kind })
    }
}

pub use tessera_store::error_chain as chain;

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

    #[test]
    fn the_key_file_sits_beside_the_database() {
        let kind = DatabaseKind::Sqlite(PathBuf::from("/var/lib/t/tessera.db"));
        assert_eq!(kind.master_key_file(), Some(PathBuf::from("/var/lib/t/tessera.db.master.key")));
        let kind = DatabaseKind::Sqlite(PathBuf::from("tessera.db"));
        assert_eq!(kind.master_key_file(), Some(PathBuf::from("tessera.db.master.key")));
        assert_eq!(DatabaseKind::Memory.master_key_file(), None);
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_their_password() {
        let error = Database::open("mysql://u:pw@h/db").await.err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| !e.contains("pw") && e.contains("unsupported")));
        assert!(Database::open("sqlite://").await.is_err());
        assert_eq!(
            Database::open("memory:").await.map(|d| d.kind).ok(),
            Some(DatabaseKind::Memory)
        );
    }
}
