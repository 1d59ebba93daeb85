//! The accept loop: hyper connections, graceful shutdown, logging.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tessera_endpoint::{Issuer, TokenEndpoint};
use tessera_mint::{RotationPolicy, TokenMinter};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::commands::{CliError, Result};
use crate::{bootstrap, database, keys};

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(database_url: &str, args: ServeArgs) -> Result<()> {
    init_logging();
    if database::is_postgres(database_url) {
        // Fail before connecting: without the shared master key nothing can start.
        keys::require_master_key()?;
    }
    let store = database::open(database_url).await?;
    if let Some(path) = &args.bootstrap {
        let applied = bootstrap::apply(store.as_ref(), path).await?;
        tracing::info!(
            file = %path.display(),
            created = applied.created,
            updated = applied.updated,
            "bootstrap applied"
        );
    }
    let (master, source) = keys::master_key(
        database::sqlite_path(database_url).map(Path::new),
        database::is_postgres(database_url),
    )?;
    match &source {
        keys::MasterKeySource::Environment => tracing::info!("master key from TESSERA_MASTER_KEY"),
        keys::MasterKeySource::File(path) => {
            tracing::info!(file = %path.display(), "master key from file")
        }
        keys::MasterKeySource::Ephemeral => {
            tracing::info!("master key kept in memory (memory: database)")
        }
    }
    let policy = RotationPolicy {
        algorithm: args.signing_alg,
        period: time::Duration::seconds(args.key_rotation as i64),
        max_token_lifetime: time::Duration::seconds(args.jwt_max_lifetime as i64),
        ..RotationPolicy::default()
    };
    let key_manager = keys::start(&store, master, policy).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr().map_err(|e| CliError(e.to_string()))?;
    let issuer_url = args.issuer.clone().unwrap_or_else(|| format!("http://{local}"));
    let minter = TokenMinter::new(issuer_url.clone()).with_keys(key_manager.ring());
    let endpoint = TokenEndpoint::new(Issuer::new(store, minter));
    keys::spawn_refresh(key_manager);
    spawn_purge(endpoint.issuer().clone());
    tracing::info!(issuer = %issuer_url, signing_alg = %args.signing_alg, "listening on http://{local}");
    accept_loop(listener, endpoint, Duration::from_secs(args.shutdown_grace)).await;
    Ok(())
}

async fn accept_loop(listener: TcpListener, endpoint: TokenEndpoint, grace: Duration) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = builder.serve_connection(TokioIo::new(stream), endpoint.clone());
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// How often expired token records and revoked ids are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(300);

/// Deletes expired token records and revoked JWT ids every [`PURGE_INTERVAL`], so
/// the store does not grow without bound. Records are deleted only once expired.
fn spawn_purge(issuer: Issuer) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PURGE_INTERVAL);
        loop {
            interval.tick().await;
            match issuer.purge_expired().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged expired token records"),
                Err(e) => tracing::warn!(error = %e, "purging expired token records failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Logs to stderr; `TESSERA_LOG` (or `RUST_LOG`) filters, `TESSERA_LOG_FORMAT=json`
/// switches to one JSON object per line.
fn init_logging() {
    let filter = std::env::var("TESSERA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
