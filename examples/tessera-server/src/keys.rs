//! Token signing keys for the server: the master key, and the key manager that
//! rotates keys through the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera_mint::{KeyManager, MasterKey, RotationPolicy};
use tessera_store::{SigningKeyStore, Store};
use time::OffsetDateTime;

use crate::commands::{CliError, Result};
use crate::database::chain;

/// How often each instance reloads keys and rotates when due.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Where the master key comes from.
#[derive(Debug)]
pub(crate) enum MasterKeySource {
    /// `TESSERA_MASTER_KEY`.
    Environment,
    /// A key file beside the SQLite database.
    File(PathBuf),
    /// A fresh key kept in memory (the `memory:` database keeps nothing either).
    Ephemeral,
}

/// The master key from `TESSERA_MASTER_KEY`, or else, for a SQLite database, from
/// the key file beside it (created on first use, mode 0600), or else a fresh one for
/// a `memory:` database. A shared (PostgreSQL) database requires `TESSERA_MASTER_KEY`:
/// every instance must decrypt the same keys.
pub(crate) fn master_key(
    sqlite_path: Option<&Path>,
    shared: bool,
) -> Result<(MasterKey, MasterKeySource)> {
    if let Ok(value) = std::env::var("TESSERA_MASTER_KEY") {
        let key = MasterKey::from_base64(&value)
            .map_err(|e| CliError(format!("TESSERA_MASTER_KEY: {e}")))?;
        return Ok((key, MasterKeySource::Environment));
    }
    if shared {
        require_master_key()?;
    }
    match sqlite_path {
        Some(db) => {
            let path = key_file_path(db);
            Ok((key_from_file(&path)?, MasterKeySource::File(path)))
        }
        None => {
            let key = MasterKey::generate().map_err(|e| CliError(chain(&e)))?;
            Ok((key, MasterKeySource::Ephemeral))
        }
    }
}

/// Fails unless `TESSERA_MASTER_KEY` is set, as a shared database requires.
pub(crate) fn require_master_key() -> Result<()> {
    if std::env::var_os("TESSERA_MASTER_KEY").is_some() {
        return Ok(());
    }
    Err(CliError(
        "TESSERA_MASTER_KEY is required with a PostgreSQL database: every instance must \
         decrypt the same signing keys (generate one with: openssl rand -base64 32)"
            .into(),
    ))
}

/// `tessera.db` → `tessera.db.master.key`, in the same directory.
pub(crate) fn key_file_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".master.key");
    db.with_file_name(name)
}

fn key_from_file(path: &Path) -> Result<MasterKey> {
    let read = |path: &Path| -> Result<MasterKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError(format!("master key file {}: {e}", path.display())))?;
        MasterKey::from_base64(&text)
            .map_err(|e| CliError(format!("master key file {}: {e}", path.display())))
    };
    if path.exists() {
        return read(path);
    }
    let key = MasterKey::generate().map_err(|e| CliError(chain(&e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(key.to_base64().as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(|e| CliError(format!("master key file {}: {e}", path.display())))?;
            tracing::warn!(
                file = %path.display(),
                "created a master key file for the signing keys; back it up with the database, \
                 or set TESSERA_MASTER_KEY"
            );
            Ok(key)
        }
        // Another process created it first: use theirs, once it is written.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut last = read(path);
            for _ in 0..50 {
                if last.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                last = read(path);
            }
            last
        }
        Err(e) => Err(CliError(format!("master key file {}: {e}", path.display()))),
    }
}

/// Creates the key manager and loads (or creates) the keys; fails with a clear
/// message when the stored keys cannot be decrypted.
pub(crate) async fn start(
    store: &Arc<dyn Store>,
    master: MasterKey,
    policy: RotationPolicy,
) -> Result<Arc<KeyManager>> {
    let key_store: Arc<dyn SigningKeyStore> = store.clone();
    let manager = Arc::new(KeyManager::new(key_store, master, policy));
    let report = manager
        .refresh(OffsetDateTime::now_utc())
        .await
        .map_err(|e| CliError(format!("signing keys: {}", chain(&e))))?;
    log_report(&report);
    Ok(manager)
}

/// Refreshes the keys every [`REFRESH_INTERVAL`] for the life of the process.
pub(crate) fn spawn_refresh(manager: Arc<KeyManager>) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(REFRESH_INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            match manager.refresh(OffsetDateTime::now_utc()).await {
                Ok(report) => log_report(&report),
                Err(e) => {
                    tracing::error!(error = %chain(&e), "signing key refresh failed; keeping the current keys")
                }
            }
        }
    });
}

fn log_report(report: &tessera_mint::RefreshReport) {
    for kid in &report.created {
        tracing::info!(target: "tessera::audit", event = "key_rotated", kid = %kid, "created a signing key");
    }
    for kid in &report.deleted {
        tracing::info!(target: "tessera::audit", event = "key_retired", kid = %kid, "dropped a retired signing key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path(Path::new("/var/lib/t/tessera.db")),
            Path::new("/var/lib/t/tessera.db.master.key")
        );
        assert_eq!(key_file_path(Path::new("tessera.db")), Path::new("tessera.db.master.key"));
    }

    #[test]
    fn key_file_is_created_once_with_owner_only_permissions()
    -> std::result::Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.master.key");
        let first = key_from_file(&path).map_err(|e| e.0)?;
        let second = key_from_file(&path).map_err(|e| e.0)?;
        assert_eq!(first.to_base64(), second.to_base64(), "reused, not replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage")?;
        assert!(key_from_file(&path).is_err_and(|e| e.0.contains("32 bytes")));
        Ok(())
    }
}
