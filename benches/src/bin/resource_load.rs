//! The API side under load: one axum 0.8 HTTP/1.1 server with three routes that
//! answer the same small JSON body, driven over loopback with `wrk`, in the same
//! run:
//!
//! - `/open`: no protection, the baseline;
//! - `/tessera`: behind `tessera-resource`'s tower layer, requiring the API's
//!   audience;
//! - `/jwt-authorizer`: behind `jwt-authorizer` 0.15 (its `Authorize` step, the
//!   one its own layer runs), checking the issuer, the audience, `exp` and `nbf`.
//!
//! ```text
//! cargo build --release -p tessera-server -p tessera-benches --bins
//! /path/to/target/release/resource_load [--duration 5] [--warmup 1] [--connections 32] [--rounds 3] [--algs ES256,RS256,EdDSA] [--out DIR]
//! ```
//!
//! For each signing algorithm it starts `tessera-server` (from the directory of its
//! own executable, or `--bin-dir`) on `memory:` with a JWT service user and a
//! project, takes one access token for the project's audience, and starts the
//! resource server as a child process (this program, `serve`), whose two
//! authorizers find the keys through the issuer's discovery document and key set.
//! Before the load it checks that both protected routes accept the token and
//! refuse a missing token, a token with an altered signature and a token without
//! the audience. Then, round after round, each route in turn gets `--warmup`
//! seconds of load and `--duration` measured seconds of `wrk` with `--connections`
//! keep-alive connections, every request with the same token (a client reuses one
//! token for as long as it lives). The open route gets the same `Authorization`
//! header, so the requests differ only in their path.
//!
//! It prints a table per algorithm — requests per second, p99 latency and the
//! server's CPU time (user + system, from `/proc`) per response, each the median
//! over the rounds with the range, and the ratios to `/open` of the same round —
//! and with `--out DIR` writes `results.json` there.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, ExitCode};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use base64ct::Encoding as _;
use clap::{Parser, Subcommand};
use http::StatusCode;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use jwt_authorizer::layer::{AuthorizationLayer, AuthorizationService, Authorize};
use jwt_authorizer::{IntoLayer, JwtAuthorizer, RegisteredClaims};
use serde::Serialize;
use tessera_benches::load::children::{self, Server};
use tessera_benches::load::wrk::{self, Load, Outcome};
use tessera_benches::load::{
    CLIENT_ID, CLIENT_SECRET, LOAD_TOKEN_BODY, PROJECT_ID, basic_authorization, http1, procfs,
    report,
};
use tower_layer::Layer;
use tower_service::Service;

/// The token endpoint's path.
const TOKEN_PATH: &str = "/oauth/v2/token";
/// A token request without the project's audience scope.
const NO_AUDIENCE_TOKEN_BODY: &str = "grant_type=client_credentials&scope=openid";
/// The body every route answers with.
const BODY: &str = r#"{"status":"ok","items":[1,2,3]}"#;
/// How long wrk may overrun its duration before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(30);
/// The routes, in the order each round measures them; the first is the baseline.
const ROUTES: [&str; 3] = ["open", "tessera", "jwt-authorizer"];
/// The signing algorithms `--algs` may name, as `tessera-server --signing-alg`
/// spells them.
const ALGORITHMS: [&str; 3] = ["ES256", "RS256", "EdDSA"];

/// The command line.
#[derive(Debug, Parser)]
#[command(
    about = "Compares tessera-resource with jwt-authorizer under wrk load, beside an open route"
)]
struct Args {
    /// The resource server itself (started by the benchmark as its child).
    #[command(subcommand)]
    command: Option<Internal>,
    /// Seconds of measured load per route and round.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of load before each measurement (not measured; 0 for none).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Keep-alive connections wrk holds open.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Rounds; each measures the three routes one after the other.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// The signing algorithms, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "ES256,RS256,EdDSA")]
    algs: Vec<String>,
    /// Where to write results.json (nothing is written without it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The directory holding `tessera-server` (default: this program's own).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds a server may take to print its listening line.
    #[arg(long, default_value_t = 60)]
    startup_timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Serve the three routes for tokens of ISSUER (used by the benchmark itself).
    #[command(hide = true)]
    Serve {
        /// The issuer, exactly as the tokens name it.
        #[arg(long)]
        issuer: String,
        /// The audience both authorizers require.
        #[arg(long)]
        audience: String,
    },
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let result = match args.command.take() {
        Some(Internal::Serve { issuer, audience }) => serve(&issuer, &audience).map(|()| true),
        None => run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("resource_load: error: {e}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// The resource server (the child).

/// Builds both authorizers against `issuer`, fetching discovery and keys, then
/// serves the routes on a loopback port of its own until standard input closes.
fn serve(issuer: &str, audience: &str) -> Result<(), String> {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let tessera = tessera_resource::Authorizer::builder(issuer)
            .audience(audience)
            .build()
            .map_err(|e| format!("tessera-resource: {e}"))?;
        tessera.warm_up().await.map_err(|e| format!("tessera-resource warm-up: {e}"))?;
        let jwt: jwt_authorizer::Authorizer<RegisteredClaims> = JwtAuthorizer::from_oidc(issuer)
            .validation(
                jwt_authorizer::Validation::new()
                    .iss(&[issuer])
                    .aud(&[audience])
                    .exp(true)
                    .nbf(true),
            )
            .build()
            .await
            .map_err(|e| format!("jwt-authorizer: {e}"))?;
        let app = Router::new()
            .route("/open", get(answer))
            .route("/tessera", get(answer).route_layer(tessera.layer()))
            .route("/jwt-authorizer", get(answer).route_layer(JwtLayer(jwt.into_layer())));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("listening on http://{local}");
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        axum::serve(listener, app).await.map_err(|e| format!("serve: {e}"))
    })
}

/// The handler of every route.
async fn answer() -> ([(http::HeaderName, &'static str); 1], &'static str) {
    ([(CONTENT_TYPE, "application/json")], BODY)
}

/// `jwt-authorizer`'s layer for axum 0.8.
///
/// Its own `AuthorizationService` needs the inner service's response to convert
/// from its `AuthError`, which only axum 0.7's response does. This service runs
/// the same authorization step — `Authorize::authorize` of its
/// `AuthorizationService`: the bearer token taken from the header, `check_auth`,
/// the `TokenData` inserted into the request's extensions — and answers a
/// refusal with 401 itself, as tessera-resource's layer does.
#[derive(Clone)]
struct JwtLayer(AuthorizationLayer<RegisteredClaims>);

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService(self.0.layer(inner))
    }
}

#[derive(Clone)]
struct JwtService<S>(AuthorizationService<S, RegisteredClaims>);

impl<S> Service<Request> for JwtService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service driven to readiness is taken, as jwt-authorizer's does.
        let clone = self.0.inner.clone();
        let mut inner = std::mem::replace(&mut self.0.inner, clone);
        let authorized = self.0.authorize(request);
        Box::pin(async move {
            match authorized.await {
                Ok(request) => inner.call(request).await,
                Err(_) => {
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    response.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                    Ok(response)
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------
// The benchmark (the parent).

/// One measured route in one round.
#[derive(Debug, Clone, Serialize)]
struct Measurement {
    alg: String,
    route: &'static str,
    round: u32,
    requests_per_sec: f64,
    /// The resource server's CPU time (user + system) per response, in µs.
    server_cpu_us_per_request: f64,
    /// wrk's CPU time per response, in µs.
    loadgen_cpu_us_per_request: f64,
    /// The busy share of the whole machine during the measurement, 0 to 1.
    machine_busy_share: Option<f64>,
    /// The share of the machine used by anything but the resource server, the
    /// issuer, wrk and this program, 0 to 1.
    other_cpu_share: Option<f64>,
    /// What wrk measured.
    load: Outcome,
}

/// The median and range of one figure over the rounds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median =
            if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Spread { median, min: sorted[0], max: sorted[n - 1] })
    }
}

/// One route of one algorithm over the rounds.
#[derive(Debug, Clone, Serialize)]
struct RouteSummary {
    alg: String,
    route: &'static str,
    rounds: usize,
    requests_per_sec: Option<Spread>,
    p50_us: Option<Spread>,
    p99_us: Option<Spread>,
    server_cpu_us_per_request: Option<Spread>,
    /// Requests per second over `/open`'s in the same round.
    ratio_to_open: Option<Spread>,
    /// Failed requests over all rounds.
    errors: u64,
}

/// A ratio of one algorithm over the rounds.
#[derive(Debug, Clone, Serialize)]
struct AlgRatio {
    alg: String,
    ratio: Option<Spread>,
}

/// results.json.
#[derive(Debug, Serialize)]
struct Results {
    started_unix: i64,
    date: String,
    cores: usize,
    wrk: String,
    load_average_before: Option<f64>,
    load_average_after: Option<f64>,
    duration_secs: u64,
    warmup_secs: u64,
    connections: u32,
    rounds: u32,
    tessera_server: PathBuf,
    summary: Vec<RouteSummary>,
    /// `tessera` over `jwt-authorizer` requests per second, per algorithm, each
    /// round's ratio summarized.
    tessera_over_jwt_authorizer: Vec<AlgRatio>,
    measurements: Vec<Measurement>,
}

fn run(args: &Args) -> Result<bool, String> {
    if args.duration == 0 || args.connections == 0 || args.rounds == 0 {
        return Err("--duration, --connections and --rounds must be at least 1".into());
    }
    for alg in &args.algs {
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(format!("unknown algorithm {alg:?}; one of {}", ALGORITHMS.join(", ")));
        }
    }
    let wrk_version = wrk::check_installed()?;
    children::install_interrupt_handler().map_err(|e| format!("cannot handle signals: {e}"))?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => me.parent().ok_or("this executable has no directory")?.to_path_buf(),
    };
    let tessera_server = bin_dir.join("tessera-server");
    if !tessera_server.is_file() {
        return Err(format!(
            "{} is missing; build it with `cargo build --release -p tessera-server -p tessera-benches --bins`",
            tessera_server.display()
        ));
    }
    let scratch = tempfile::Builder::new()
        .prefix("tessera-resource-load-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let started = time::OffsetDateTime::now_utc();
    let load_before = procfs::load_average();
    eprintln!(
        "resource_load: {} cores; load average {:.2}; {wrk_version}",
        procfs::cores(),
        load_before.unwrap_or(f64::NAN)
    );

    let mut measurements = Vec::new();
    for alg in &args.algs {
        eprintln!("resource_load: {alg}: starting tessera-server and the resource server");
        let mut these = measure_algorithm(args, alg, &me, &tessera_server, scratch.path())?;
        measurements.append(&mut these);
    }

    let summary = summarize(&args.algs, &measurements);
    let tessera_over_jwt: Vec<AlgRatio> = args
        .algs
        .iter()
        .map(|alg| AlgRatio {
            alg: alg.clone(),
            ratio: round_ratios(&measurements, alg, "tessera", "jwt-authorizer"),
        })
        .collect();
    let load_after = procfs::load_average();
    print_table(args, &summary, &tessera_over_jwt, started.date(), load_before, load_after);

    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let results = Results {
            started_unix: started.unix_timestamp(),
            date: started.date().to_string(),
            cores: procfs::cores(),
            wrk: wrk_version,
            load_average_before: load_before,
            load_average_after: load_after,
            duration_secs: args.duration,
            warmup_secs: args.warmup,
            connections: args.connections,
            rounds: args.rounds,
            tessera_server,
            summary: summary.clone(),
            tessera_over_jwt_authorizer: tessera_over_jwt,
            measurements,
        };
        let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        let path = out.join("results.json");
        std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(summary.iter().all(|s| s.errors == 0))
}

/// Every round of one algorithm: its issuer, its resource server, the checks, the
/// load.
fn measure_algorithm(
    args: &Args,
    alg: &str,
    me: &Path,
    tessera_server: &Path,
    scratch: &Path,
) -> Result<Vec<Measurement>, String> {
    let timeout = Duration::from_secs(args.startup_timeout);
    let bootstrap = scratch.join(format!("{alg}.bootstrap.json"));
    write(&bootstrap, &bootstrap_file().to_string())?;
    let mut command = Command::new(tessera_server);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--database", "memory:"])
        .arg("--bootstrap")
        .arg(&bootstrap)
        .args(["--signing-alg", alg])
        .current_dir(scratch);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("TESSERA_") || key_text == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    let issuer_server =
        Server::start(&mut command, timeout).map_err(|e| format!("tessera-server: {e}"))?;
    let discovery = http_get(issuer_server.addr, "/.well-known/openid-configuration", None)?;
    let discovery: serde_json::Value = serde_json::from_str(&discovery.1)
        .map_err(|_| format!("discovery answered {} {}", discovery.0, discovery.1))?;
    let issuer = discovery["issuer"].as_str().ok_or("discovery names no issuer")?.to_owned();
    let token = issue(issuer_server.addr, LOAD_TOKEN_BODY, alg)?;
    let no_audience = issue(issuer_server.addr, NO_AUDIENCE_TOKEN_BODY, alg)?;

    let mut command = Command::new(me);
    command.args(["serve", "--issuer", &issuer, "--audience", PROJECT_ID]);
    let resource =
        Server::start(&mut command, timeout).map_err(|e| format!("the resource server: {e}"))?;
    check_routes(resource.addr, &token, &no_audience)?;

    let bearer = format!("Bearer {token}");
    let mut scripts = Vec::new();
    for route in ROUTES {
        let load = Load {
            targets: vec![resource.addr],
            path: format!("/{route}"),
            authorization: bearer.clone(),
            body: String::new(),
            content_type: http1::JSON,
            connections: args.connections,
            duration: Duration::from_secs(args.duration),
        };
        let path = scratch.join(format!("{alg}-{route}.lua"));
        write(&path, &get_script(&load)?)?;
        scripts.push((route, load, path));
    }

    let mut measurements = Vec::new();
    let pids = [resource.pid(), issuer_server.pid(), std::process::id()];
    for round in 1..=args.rounds {
        for (route, load, script) in &scripts {
            if args.warmup > 0 {
                let warmup = Load { duration: Duration::from_secs(args.warmup), ..load.clone() };
                wrk::run(&warmup, script, WRK_GRACE)
                    .map_err(|e| format!("{alg} /{route} warm-up: {e}"))?;
            }
            resource.check_running()?;
            let cpu_before = procfs::cpu_time(resource.pid())?;
            let ours_before = cpu_of(&pids)?;
            let machine_before = procfs::machine_ticks();
            let outcome =
                wrk::run(load, script, WRK_GRACE).map_err(|e| format!("{alg} /{route}: {e}"))?;
            let machine_after = procfs::machine_ticks();
            let ours_after = cpu_of(&pids)?;
            let cpu_after = procfs::cpu_time(resource.pid())?;
            resource.check_running()?;
            issuer_server.check_running()?;
            let responses = outcome.requests.max(1) as f64;
            let server_cpu = cpu_after.saturating_sub(cpu_before);
            let (mut busy_share, mut other_share) = (None, None);
            if let (Some(before), Some(after)) = (machine_before, machine_after) {
                busy_share = procfs::busy_share(before, after);
                let ticks = procfs::clock_ticks() as f64;
                let busy = after.0.saturating_sub(before.0) as f64 / ticks;
                let total = after.1.saturating_sub(before.1) as f64 / ticks;
                let ours = ours_after.saturating_sub(ours_before).as_secs_f64()
                    + outcome.loadgen_cpu_us as f64 / 1e6;
                other_share = (total > 0.0).then(|| ((busy - ours) / total).max(0.0));
            }
            let m = Measurement {
                alg: alg.to_owned(),
                route,
                round,
                requests_per_sec: outcome.requests_per_sec(),
                server_cpu_us_per_request: server_cpu.as_secs_f64() * 1e6 / responses,
                loadgen_cpu_us_per_request: outcome.loadgen_cpu_us as f64 / responses,
                machine_busy_share: busy_share,
                other_cpu_share: other_share,
                load: outcome,
            };
            let errors = m.load.errors.total();
            eprintln!(
                "resource_load: {alg} round {round} /{route}: {} req/s, p99 {}, {:.1} µs CPU/req{}{}",
                report::thousands(m.requests_per_sec),
                report::latency(m.load.p99_us),
                m.server_cpu_us_per_request,
                other_share.map(|s| format!(", other load {:.0} %", s * 100.0)).unwrap_or_default(),
                if errors > 0 { format!(", {errors} FAILED requests") } else { String::new() },
            );
            measurements.push(m);
        }
    }
    drop(resource);
    drop(issuer_server);
    Ok(measurements)
}

/// CPU time of the processes, summed.
fn cpu_of(pids: &[u32]) -> Result<Duration, String> {
    pids.iter().map(|pid| procfs::cpu_time(*pid)).sum()
}

/// The bootstrap file: a service user whose access tokens are JWTs, and the
/// project whose audience the load's token carries.
fn bootstrap_file() -> serde_json::Value {
    serde_json::json!({
        "service_users": [{
            "username": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "display_name": "Resource load",
            "access_token_type": "jwt",
        }],
        "projects": [{ "id": PROJECT_ID, "name": "Resource load" }],
    })
}

/// A token request, checked: a JWT signed with `alg`.
fn issue(issuer: SocketAddr, body: &str, alg: &str) -> Result<String, String> {
    let client = basic_authorization(CLIENT_ID, CLIENT_SECRET);
    let response = http1::post_form(issuer, TOKEN_PATH, &client, body)?;
    let bad = || format!("the token request was answered {} {}", response.status, response.body);
    if response.status != 200 {
        return Err(bad());
    }
    let json: serde_json::Value = serde_json::from_str(&response.body).map_err(|_| bad())?;
    let token = json["access_token"].as_str().ok_or_else(bad)?;
    let header = token.split('.').next().unwrap_or_default();
    let header = base64ct::Base64UrlUnpadded::decode_vec(header).map_err(|_| bad())?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| bad())?;
    if token.split('.').count() != 3 || header["alg"] != alg {
        return Err(format!("expected a {alg} JWT: {}", response.body));
    }
    Ok(token.to_owned())
}

/// Checks what both protected routes accept and refuse, and that the open route
/// answers.
fn check_routes(addr: SocketAddr, token: &str, no_audience: &str) -> Result<(), String> {
    let bearer = |t: &str| format!("Bearer {t}");
    // The token with its signature's first character changed.
    let dot = token.rfind('.').ok_or("the token has no signature")?;
    let mut altered = token.to_owned();
    let replacement = if token.as_bytes()[dot + 1] == b'A' { "B" } else { "A" };
    altered.replace_range(dot + 1..dot + 2, replacement);
    let open = http_get(addr, "/open", None)?;
    if open.0 != 200 || open.1 != BODY {
        return Err(format!("/open answered {} {}", open.0, open.1));
    }
    for route in ["/tessera", "/jwt-authorizer"] {
        let cases: [(&str, Option<String>, u16); 4] = [
            ("the token", Some(bearer(token)), 200),
            ("no token", None, 401),
            ("an altered signature", Some(bearer(&altered)), 401),
            ("a token without the audience", Some(bearer(no_audience)), 401),
        ];
        for (what, authorization, expected) in cases {
            let (status, body) = http_get(addr, route, authorization.as_deref())?;
            if status != expected || (expected == 200 && body != BODY) {
                return Err(format!(
                    "{route} with {what} answered {status} (not {expected}) {body}"
                ));
            }
        }
    }
    Ok(())
}

/// `GET path` on a connection closed after the response: status and body.
fn http_get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> Result<(u16, String), String> {
    let failed = |e: std::io::Error| format!("GET {path} on {addr}: {e}");
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    let authorization =
        authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(failed)?;
    let text = String::from_utf8_lossy(&raw);
    let malformed = || format!("GET {path} on {addr}: malformed response {text:?}");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(malformed)?;
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Err(format!("GET {path} on {addr}: a chunked response"));
    }
    Ok((status, body.to_owned()))
}

/// The wrk script of `load` as a `GET` without a body: the harness's script, whose
/// request is a `POST`, with the method changed and the body and content type
/// left out.
fn get_script(load: &Load) -> Result<String, String> {
    let generated = wrk::script(load);
    let mut method = false;
    let mut lines = Vec::new();
    for line in generated.lines() {
        if line.starts_with("wrk.method =") {
            lines.push("wrk.method = \"GET\"");
            method = true;
        } else if !line.starts_with("wrk.body =")
            && !line.starts_with("wrk.headers[\"Content-Type\"]")
        {
            lines.push(line);
        }
    }
    if !method {
        return Err("the generated wrk script sets no method".into());
    }
    Ok(lines.join("\n") + "\n")
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `numerator` over `denominator` requests per second, round by round.
fn round_ratios(
    measurements: &[Measurement],
    alg: &str,
    numerator: &str,
    denominator: &str,
) -> Option<Spread> {
    let rps = |route: &str, round: u32| {
        measurements
            .iter()
            .find(|m| m.alg == alg && m.route == route && m.round == round)
            .map(|m| m.requests_per_sec)
    };
    let rounds = measurements.iter().map(|m| m.round).max().unwrap_or(0);
    let ratios: Vec<f64> = (1..=rounds)
        .filter_map(|round| Some(rps(numerator, round)? / rps(denominator, round)?))
        .collect();
    Spread::of(&ratios)
}

fn summarize(algs: &[String], measurements: &[Measurement]) -> Vec<RouteSummary> {
    let mut summary = Vec::new();
    for alg in algs {
        for route in ROUTES {
            let these: Vec<&Measurement> =
                measurements.iter().filter(|m| &m.alg == alg && m.route == route).collect();
            let spread = |f: &dyn Fn(&Measurement) -> f64| {
                Spread::of(&these.iter().map(|m| f(m)).collect::<Vec<_>>())
            };
            summary.push(RouteSummary {
                alg: alg.clone(),
                route,
                rounds: these.len(),
                requests_per_sec: spread(&|m| m.requests_per_sec),
                p50_us: spread(&|m| m.load.p50_us as f64),
                p99_us: spread(&|m| m.load.p99_us as f64),
                server_cpu_us_per_request: spread(&|m| m.server_cpu_us_per_request),
                ratio_to_open: (route != ROUTES[0])
                    .then(|| round_ratios(measurements, alg, route, ROUTES[0]))
                    .flatten(),
                errors: these.iter().map(|m| m.load.errors.total()).sum(),
            });
        }
    }
    summary
}

fn print_table(
    args: &Args,
    summary: &[RouteSummary],
    tessera_over_jwt: &[AlgRatio],
    date: time::Date,
    load_before: Option<f64>,
    load_after: Option<f64>,
) {
    println!(
        "wrk, {} keep-alive connections, {} s after {} s of warm-up per route and round, {} rounds; {} cores; {date}",
        args.connections,
        args.duration,
        args.warmup,
        args.rounds,
        procfs::cores()
    );
    println!("median (range over the rounds)");
    println!(
        "{:<6} {:<15} {:>26} {:>24} {:>18} {:>18}",
        "alg", "route", "req/s", "p99", "CPU µs/req", "ratio to /open"
    );
    let range = |s: Option<Spread>, f: &dyn Fn(f64) -> String| match s {
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
        None => "-".to_owned(),
    };
    let thousands = |v: f64| report::thousands(v);
    let latency = |v: f64| report::latency(v.round() as u64);
    let one = |v: f64| format!("{v:.1}");
    let two = |v: f64| format!("{v:.2}");
    for s in summary {
        println!(
            "{:<6} {:<15} {:>26} {:>24} {:>18} {:>18}{}",
            s.alg,
            s.route,
            range(s.requests_per_sec, &thousands),
            range(s.p99_us, &latency),
            range(s.server_cpu_us_per_request, &one),
            if s.route == ROUTES[0] { "1".to_owned() } else { range(s.ratio_to_open, &two) },
            if s.errors > 0 { format!("  {} failed requests", s.errors) } else { String::new() },
        );
    }
    for AlgRatio { alg, ratio } in tessera_over_jwt {
        println!("{alg}: tessera ÷ jwt-authorizer req/s: {}", range(*ratio, &two));
    }
    println!(
        "ratios are per round, against the same round's /open; CPU = resource server user+system time per response; \
         load average {:.2} before, {:.2} after",
        load_before.unwrap_or(f64::NAN),
        load_after.unwrap_or(f64::NAN)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[1.0, 4.0]).unwrap().median, 2.5);
        assert!(Spread::of(&[]).is_none());
    }

    #[test]
    fn the_script_is_a_get() {
        let load = Load {
            targets: vec!["127.0.0.1:1000".parse().unwrap()],
            path: "/tessera".into(),
            authorization: "Bearer a.b.c".into(),
            body: String::new(),
            content_type: http1::JSON,
            connections: 32,
            duration: Duration::from_secs(1),
        };
        let script = get_script(&load).unwrap();
        assert!(script.contains("wrk.method = \"GET\""), "{script}");
        assert!(!script.contains("POST") && !script.contains("wrk.body"), "{script}");
        assert!(script.contains(r#"wrk.headers["Authorization"] = "Bearer a.b.c""#), "{script}");
        assert!(script.contains("function done"), "{script}");
    }
}
