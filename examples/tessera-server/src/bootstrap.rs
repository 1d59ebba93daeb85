//! Declarative provisioning: a JSON file applied idempotently at start-up by
//! [`Admin::apply_bootstrap`].

use std::path::Path;
use std::sync::Arc;

use tessera_admin::{Admin, Applied, BootstrapDocument};
use tessera_store::prelude::*;

use crate::commands::{CliError, Result};

/// Reads `path` and applies it to `store`. Every entry is checked before anything
/// is written, so a bad file changes nothing.
pub(crate) async fn apply(store: &Arc<dyn Store>, path: &Path) -> Result<Applied> {
    let document = read(path)?;
    Ok(Admin::new(store.clone()).apply_bootstrap(&document).await?)
}

/// The bootstrap document in the file at `path`.
fn read(path: &Path) -> Result<BootstrapDocument> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("bootstrap file {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CliError(format!("bootstrap file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::MemoryStore;

    #[tokio::test]
    async fn bad_files_are_named_and_good_ones_applied() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let missing = apply(&store, &dir.path().join("missing.json")).await.err().ok_or("fail")?;
        assert!(missing.0.starts_with("bootstrap file "), "{}", missing.0);
        let path = dir.path().join("bootstrap.json");
        let secret = "0123456789abcdef0123456789abcdef";
        for (contents, expected) in [
            ("not json", "expected ident"),
            (r#"{"projects": [{"id": "p"}]}"#, "missing field `name`"),
            (
                r#"{"service_users": [{"username": "u", "colour": "red"}]}"#,
                "unknown field `colour`",
            ),
        ] {
            std::fs::write(&path, contents)?;
            let err = apply(&store, &path).await.err().ok_or("must fail")?;
            assert!(err.0.starts_with("bootstrap file "), "{}", err.0);
            assert!(err.0.contains(expected), "{:?} should mention {expected:?}", err.0);
        }
        let user = format!(r#"{{"username": "u", "client_secret": "{secret}"}}"#);
        std::fs::write(&path, format!(r#"{{"service_users": [{user}]}}"#))?;
        let applied = apply(&store, &path).await.map_err(|e| e.0)?;
        assert_eq!((applied.created, applied.updated), (1, 0));
        assert_eq!(store.list_service_users().await?.len(), 1);
        Ok(())
    }
}
