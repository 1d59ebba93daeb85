//! The accept loop: hyper connections, graceful shutdown, logging.

use std::convert::Infallible;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::{HeaderName, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tessera_endpoint::{
    AssertionPolicy, ClientAddr, Issuer, Limit, OAuthError, ResponseBody, ThrottleConfig,
    TokenEndpoint,
};
use tessera_mint::{JwtHeaderType, RotationPolicy, TokenMinter};
use tessera_store::SigningAlgorithm;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::log_format::{PlainFields, PlainFormat};

use crate::cli::{Compat, ServeArgs};
use crate::commands::{CliError, Result};
use crate::{bootstrap, database, keys, log_writer, organization};

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(database_url: &str, args: ServeArgs) -> Result<()> {
    init_logging("info");
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
    let zitadel = args.compat == Some(Compat::Zitadel);
    let signing_alg = args.signing_alg.unwrap_or(if zitadel {
        SigningAlgorithm::Rs256
    } else {
        SigningAlgorithm::Es256
    });
    let jwt_type = args.access_token_typ.unwrap_or(if zitadel {
        JwtHeaderType::Jwt
    } else {
        JwtHeaderType::AtJwt
    });
    let policy = RotationPolicy {
        algorithm: signing_alg,
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
    let organization = organization::init(
        store.as_ref(),
        &issuer_url,
        args.organization_name.as_deref(),
        args.organization_domain.as_deref(),
    )
    .await?;
    let minter =
        TokenMinter::new(issuer_url.clone()).with_keys(key_manager.ring()).with_jwt_type(jwt_type);
    let issuer = Issuer::new(store, minter)
        .with_organization(organization)
        .with_assertion_policy(AssertionPolicy { require_jti: args.require_assertion_jti });
    let endpoint = TokenEndpoint::new(issuer)
        .with_max_body(args.max_body_bytes as usize)
        .with_throttle(throttle_config(&args));
    keys::spawn_refresh(key_manager);
    spawn_purge(endpoint.issuer().clone());
    tracing::info!(
        issuer = %issuer_url,
        signing_alg = %signing_alg,
        access_token_typ = %jwt_type,
        require_assertion_jti = args.require_assertion_jti,
        "listening on http://{local}"
    );
    let limits = HttpLimits::from_args(&args)?;
    accept_loop(listener, endpoint, limits, Duration::from_secs(args.shutdown_grace)).await;
    Ok(())
}

fn throttle_config(args: &ServeArgs) -> Option<ThrottleConfig> {
    if args.no_throttle {
        return None;
    }
    let window = Duration::from_secs(args.auth_failure_window);
    Some(ThrottleConfig {
        per_client_address: Limit { failures: args.auth_failures_per_client_address, window },
        per_address: Limit { failures: args.auth_failures_per_address, window },
        per_client: Limit { failures: args.auth_failures_per_client, window },
        ..ThrottleConfig::default()
    })
}

/// What the server allows a connection and a request.
#[derive(Debug, Clone)]
struct HttpLimits {
    max_connections: usize,
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_header_bytes: usize,
    client_address_header: Option<HeaderName>,
}

impl HttpLimits {
    fn from_args(args: &ServeArgs) -> Result<Self> {
        let client_address_header = args
            .client_address_header
            .as_deref()
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    CliError(format!("--client-address-header {name:?} is not a header name"))
                })
            })
            .transpose()?;
        Ok(Self {
            max_connections: args.max_connections as usize,
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            request_timeout: Duration::from_secs(args.request_timeout),
            max_header_bytes: args.max_header_bytes as usize,
            client_address_header,
        })
    }
}

/// The client's address: the last entry of the configured header when a trusted
/// proxy set it and it parses, else the peer's address.
fn client_address<B>(request: &Request<B>, peer: IpAddr, header: Option<&HeaderName>) -> IpAddr {
    header
        .and_then(|name| request.headers().get(name))
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

async fn accept_loop(
    listener: TcpListener,
    endpoint: TokenEndpoint,
    limits: HttpLimits,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        // Wait for a free connection slot first, so that past the cap connections
        // queue in the kernel's backlog instead of being served.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let (endpoint, limits) = (endpoint.clone(), limits.clone());
            service_fn(move |request| {
                serve_request(endpoint.clone(), limits.clone(), peer.ip(), request)
            })
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// Answers one request: notes the client's address for throttling and the logs, and
/// bounds the time the request may take.
async fn serve_request(
    endpoint: TokenEndpoint,
    limits: Arc<HttpLimits>,
    peer: IpAddr,
    mut request: Request<Incoming>,
) -> std::result::Result<Response<ResponseBody>, Infallible> {
    if request.version() == Version::HTTP_11 && request.headers().get_all(HOST).iter().count() != 1
    {
        // RFC 9112 §3.2: exactly one Host header in an HTTP/1.1 request.
        return Ok(OAuthError::invalid_request(
            "an HTTP/1.1 request needs exactly one Host header",
        )
        .into_response());
    }
    let addr = client_address(&request, peer, limits.client_address_header.as_ref());
    request.extensions_mut().insert(ClientAddr(addr));
    let answer = tokio::time::timeout(limits.request_timeout, endpoint.handle(request)).await;
    Ok(answer.unwrap_or_else(|_| {
        OAuthError::invalid_request("the request took too long")
            .with_status(StatusCode::REQUEST_TIMEOUT)
            .into_response()
    }))
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

/// Logs to stderr, written by a thread of its own ([`log_writer`]) so that requests
/// do not wait for it; `TESSERA_LOG` (or `RUST_LOG`) filters (default: `default`),
/// `TESSERA_LOG_FORMAT=json` switches to one JSON object per line.
pub(crate) fn init_logging(default: &str) {
    let filter = std::env::var("TESSERA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let writer = match log_writer::BufferedStderr::get() {
        Some(buffered) => BoxMakeWriter::new(buffered),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let terminal = std::io::stderr().is_terminal();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(terminal).with_writer(writer);
    let _ = if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else if terminal {
        builder.try_init()
    } else {
        builder.event_format(PlainFormat).fmt_fields(PlainFields).try_init()
    };
}
