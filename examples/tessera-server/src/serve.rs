//! The accept loop: hyper connections, graceful shutdown, logging.

use std::convert::Infallible;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::HOST;
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tessera::endpoint::{METRICS_PATH, OAuthError, ResponseBody, TokenEndpoint};
use tessera::{
    AssertionsConfig, ClientAddressConfig, Config, Database, DatabaseKind, HttpConfig,
    METRICS_CONTENT_TYPE, MasterKey, Metrics, OrganizationConfig, SigningConfig, Tessera,
    ThrottleSettings,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::log_format::{PlainAudit, PlainFields, PlainFormat};

use crate::cli::{Compat, ServeArgs};
use crate::commands::{CliError, Result};
use crate::{bootstrap, log_writer};

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(database_url: &str, args: ServeArgs) -> Result<()> {
    let audit = init_logging("info");
    let kind = DatabaseKind::of(database_url)?;
    // Before connecting: a shared database needs the shared master key.
    let master = master_key(&kind)?;
    let database = Database::open(database_url).await?;
    if let Some(path) = &args.bootstrap {
        let applied = bootstrap::apply(&database.store, path).await?;
        tracing::info!(
            file = %path.display(),
            created = applied.created,
            updated = applied.updated,
            "bootstrap applied"
        );
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr().map_err(|e| CliError(e.to_string()))?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| CliError(format!("cannot listen on {addr} for metrics: {e}")))?,
        ),
        None => None,
    };
    let issuer_url = args.issuer.clone().unwrap_or_else(|| format!("http://{local}"));
    let config = config(&args, issuer_url.clone());
    // /metrics on the main listener unless it has a listener of its own.
    let mut builder = Tessera::builder(config.clone())
        .database(database)
        .serve_metrics(metrics_listener.is_none());
    if let Some(master) = master {
        tracing::info!("master key from TESSERA_MASTER_KEY");
        builder = builder.master_key(master);
    }
    if let Some(audit) = audit {
        builder = builder.audit_sink(Arc::new(audit));
    }
    let tessera = builder.build().await?;
    tokio::spawn(tessera.maintenance());
    if let Some(listener) = metrics_listener {
        let addr = listener.local_addr().map_err(|e| CliError(e.to_string()))?;
        tracing::info!("metrics served on http://{addr}{METRICS_PATH}");
        tokio::spawn(metrics_loop(
            listener,
            tessera.metrics().clone(),
            HttpLimits::from(&config.http),
        ));
    }
    tracing::info!(
        issuer = %issuer_url,
        signing_alg = %config.signing.algorithm,
        access_token_typ = %config.signing.jwt_type,
        require_assertion_jti = config.assertions.require_jti,
        "listening on http://{local}"
    );
    let limits = HttpLimits::from(&config.http);
    accept_loop(listener, tessera.service(), limits, Duration::from_secs(args.shutdown_grace))
        .await;
    Ok(())
}

/// `TESSERA_MASTER_KEY`, which a PostgreSQL database requires: every instance must
/// decrypt the same signing keys. Without it, a SQLite database keeps its key in a file
/// beside it and `memory:` in memory.
fn master_key(kind: &DatabaseKind) -> Result<Option<MasterKey>> {
    match std::env::var("TESSERA_MASTER_KEY") {
        Ok(value) => MasterKey::from_base64(&value)
            .map(Some)
            .map_err(|e| CliError(format!("TESSERA_MASTER_KEY: {e}"))),
        Err(_) if *kind == DatabaseKind::Postgres => Err(CliError(
            "TESSERA_MASTER_KEY is required with a PostgreSQL database: every instance must \
             decrypt the same signing keys (generate one with: openssl rand -base64 32)"
                .into(),
        )),
        Err(_) => Ok(None),
    }
}

/// The library's configuration from the command line.
fn config(args: &ServeArgs, issuer: String) -> Config {
    let zitadel = args.compat == Some(Compat::Zitadel);
    let compat = if zitadel { SigningConfig::zitadel() } else { SigningConfig::default() };
    Config {
        signing: SigningConfig {
            algorithm: args.signing_alg.unwrap_or(compat.algorithm),
            rotation_secs: args.key_rotation,
            jwt_max_lifetime_secs: args.jwt_max_lifetime,
            jwt_type: args.access_token_typ.unwrap_or(compat.jwt_type),
        },
        throttle: (!args.no_throttle).then_some(ThrottleSettings {
            per_client_address: args.auth_failures_per_client_address,
            per_address: args.auth_failures_per_address,
            per_client: args.auth_failures_per_client,
            window_secs: args.auth_failure_window,
        }),
        http: HttpConfig {
            max_body_bytes: args.max_body_bytes as usize,
            max_header_bytes: args.max_header_bytes as usize,
            header_read_timeout_secs: args.header_read_timeout,
            request_timeout_secs: args.request_timeout,
            max_connections: args.max_connections as usize,
        },
        client_address: ClientAddressConfig {
            header: args.client_address_header.clone(),
            trusted_hops: args.trusted_proxy_hops as usize,
        },
        assertions: AssertionsConfig { require_jti: args.require_assertion_jti },
        organization: OrganizationConfig {
            name: args.organization_name.clone(),
            domain: args.organization_domain.clone(),
        },
        ..Config::new(issuer)
    }
}

/// What the server allows a connection and a request.
#[derive(Debug, Clone)]
struct HttpLimits {
    max_connections: usize,
    header_read_timeout: Duration,
    request_timeout: Duration,
    max_header_bytes: usize,
}

impl From<&HttpConfig> for HttpLimits {
    fn from(http: &HttpConfig) -> Self {
        Self {
            max_connections: http.max_connections,
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            request_timeout: Duration::from_secs(http.request_timeout_secs),
            max_header_bytes: http.max_header_bytes,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    endpoint: TokenEndpoint,
    limits: HttpLimits,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No timer of hyper's for HTTP/1: each connection's watchdog (`Activity`) closes
    // it once it has answered nothing for the header-read timeout, which bounds a
    // request head that arrives too slowly, as hyper's per-request timer would, without
    // a timer armed per request.
    builder.http1().header_read_timeout(None).max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown_signal());
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
        let activity = Arc::new(Activity::new());
        let service = {
            let (endpoint, limits, activity) = (endpoint.clone(), limits.clone(), activity.clone());
            service_fn(move |request| {
                let busy = Busy::start(activity.clone());
                serve_request(endpoint.clone(), limits.clone(), busy, peer.ip(), request)
            })
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        let mut served = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        // The watchdog is a task of its own, woken only by its timer and by the end of
        // the connection, rather than polled each time the connection is.
        let idle = limits.header_read_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = &mut served => {}
                () = activity.idle_for(idle) => {
                    served.abort();
                    tracing::debug!(%peer, "closed a connection that sent no request in time");
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// Serves `GET /metrics` (and nothing else) on a listener of its own: HTTP/1.1,
/// a connection at a time per task, ended with the process.
async fn metrics_loop(listener: TcpListener, metrics: Metrics, limits: HttpLimits) {
    let connections = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let answer = metrics_answer(&metrics, &request);
            async move { Ok::<_, Infallible>(answer) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes)
            .serve_connection(TokioIo::new(stream), service);
        let deadline = limits.request_timeout;
        tokio::spawn(async move {
            // A scraper asks and leaves; nothing holds a slot past the request timeout.
            let _ = tokio::time::timeout(deadline, connection).await;
            drop(permit);
        });
    }
}

/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 16;

fn metrics_answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<ResponseBody> {
    if request.uri().path() != METRICS_PATH {
        return OAuthError::not_found().into_response();
    }
    if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
        return OAuthError::method_not_allowed("GET, HEAD").into_response();
    }
    let mut text = String::with_capacity(8 * 1024);
    if metrics.encode(&mut text).is_err() {
        return OAuthError::server_error().into_response();
    }
    let mut response = Response::new(ResponseBody::from(text));
    let headers = response.headers_mut();
    headers
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(METRICS_CONTENT_TYPE));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// When a connection last finished a request, and how many it is answering. A
/// connection that answers none for the header-read timeout — from its accept, or
/// from its last answer — is closed: a client that connects and says nothing (or only
/// an HTTP/2 preface, or only pings, or a request head too slowly) cannot hold a
/// connection slot.
struct Activity {
    /// When it last finished a request, in milliseconds since `epoch` (0: none yet).
    since: std::sync::atomic::AtomicU64,
    busy: std::sync::atomic::AtomicUsize,
    epoch: tokio::time::Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            since: std::sync::atomic::AtomicU64::new(0),
            busy: std::sync::atomic::AtomicUsize::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.since.store(millis, std::sync::atomic::Ordering::Release);
    }

    fn last(&self) -> tokio::time::Instant {
        let millis = self.since.load(std::sync::atomic::Ordering::Acquire);
        self.epoch + Duration::from_millis(millis)
    }

    /// Completes once the connection has answered nothing for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            tokio::time::sleep_until(self.last() + idle).await;
            if self.busy.load(std::sync::atomic::Ordering::Acquire) > 0 {
                // Answering: the request timeout bounds that; look again later.
                tokio::time::sleep(idle).await;
                continue;
            }
            if self.last().elapsed() >= idle {
                return;
            }
        }
    }
}

/// A request being answered on a connection; its end counts as activity.
struct Busy(Arc<Activity>);

impl Busy {
    /// While it lasts the watchdog leaves the connection open, so only its end
    /// needs the time.
    fn start(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Answers one request: notes the client's address for throttling and the logs, and
/// bounds the time the request may take. The connection counts as busy until the
/// answer is ready (`_busy` is dropped then).
///
/// One future from the service's call to the answer: each layer of futures around the
/// endpoint's would be moved, and would move the answer, once more per request.
async fn serve_request(
    endpoint: TokenEndpoint,
    limits: Arc<HttpLimits>,
    _busy: Busy,
    peer: IpAddr,
    request: Request<Incoming>,
) -> std::result::Result<Response<ResponseBody>, Infallible> {
    if request.version() == Version::HTTP_11 && request.headers().get_all(HOST).iter().count() != 1
    {
        // RFC 9112 §3.2: exactly one Host header in an HTTP/1.1 request.
        return Ok(OAuthError::invalid_request(
            "an HTTP/1.1 request needs exactly one Host header",
        )
        .into_response());
    }
    let answer = pin!(endpoint.handle_from(request, peer));
    Ok(match within(limits.request_timeout, answer).await {
        Some(response) => response,
        None => OAuthError::invalid_request("the request took too long")
            .with_status(StatusCode::REQUEST_TIMEOUT)
            .into_response(),
    })
}

/// The output of `future`, or `None` if it has not finished `limit` after it first
/// had to wait.
///
/// Neither timer nor clock is used when the first poll finishes the future: a request
/// answered from memory usually finishes there. A first poll takes microseconds of
/// work, so the limit counts from the request's start for any practical purpose. The
/// future is pinned by the caller, so it is not moved here.
async fn within<F: Future>(limit: Duration, mut future: Pin<&mut F>) -> Option<F::Output> {
    if let Poll::Ready(output) =
        std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
    {
        return Some(output);
    }
    tokio::time::timeout(limit, future).await.ok()
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
/// `TESSERA_LOG_FORMAT=json` switches to one JSON object per line. Returns the audit
/// sink that writes `token_issued` lines directly when the lines are in the plain
/// format ([`PlainAudit`]).
pub(crate) fn init_logging(default: &str) -> Option<PlainAudit> {
    let filter = std::env::var("TESSERA_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let buffered = log_writer::BufferedStderr::get();
    let writer = match buffered.clone() {
        Some(buffered) => BoxMakeWriter::new(buffered),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let terminal = std::io::stderr().is_terminal();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(terminal).with_writer(writer);
    if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        let _ = builder.json().try_init();
        None
    } else if terminal {
        let _ = builder.try_init();
        None
    } else {
        let installed = builder.event_format(PlainFormat).fmt_fields(PlainFields).try_init();
        buffered.filter(|_| installed.is_ok()).map(PlainAudit::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
    }

    #[test]
    fn within_answers_what_finishes_first_time_or_later_and_gives_up_at_the_limit() {
        runtime().block_on(async {
            assert_eq!(within(Duration::from_secs(5), pin!(async { 1 })).await, Some(1));
            let later = async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                2
            };
            assert_eq!(within(Duration::from_secs(5), pin!(later)).await, Some(2));
            let never = std::future::pending::<u8>();
            assert_eq!(within(Duration::from_millis(20), pin!(never)).await, None);
        });
    }
}
