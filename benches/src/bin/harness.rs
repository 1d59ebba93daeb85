//! The load harness: drives `tessera-server` and the floor server over loopback
//! sockets with `wrk`, configuration by configuration, and reports requests per
//! second, latency, server CPU time per request and memory, with Tessera's
//! throughput as a ratio to the floor's in the same mode, measured in the same run.
//!
//! ```text
//! cargo run --release -p tessera-benches --bin harness -- [--duration 10] [--connections 32] [--only PATTERN] [--out DIR]
//! ```
//!
//! Before measuring it runs `cargo build --release -p tessera-server -p
//! tessera-benches --bins` (skip with `--no-build`), and takes both servers from
//! the directory of its own executable. See `benches/README.md`.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use tessera_benches::load::children::{self, Guarded, Server};
use tessera_benches::load::report::{self, Row};
use tessera_benches::load::wrk::{self, Load, Outcome};
use tessera_benches::load::{
    API_CLIENT_ID, API_CLIENT_SECRET, CLIENT_ID, CLIENT_SECRET, LOAD_SCOPE, LOAD_TOKEN_BODY,
    PROJECT_ID, basic_authorization, http1, procfs,
};

/// The token endpoint's path.
const TOKEN_PATH: &str = "/oauth/v2/token";
/// The introspection endpoint's path.
const INTROSPECT_PATH: &str = "/oauth/v2/introspect";
/// The environment variable naming the PostgreSQL database of the PostgreSQL
/// configurations; they are skipped without it.
const POSTGRES_URL_VAR: &str = "TESSERA_BENCH_POSTGRES_URL";
/// The master key given to `tessera-server` on PostgreSQL when
/// `TESSERA_MASTER_KEY` is not set: fixed, so that later runs on the same database
/// open the signing keys earlier runs stored. It protects nothing but benchmark keys.
const BENCH_MASTER_KEY: &str = "dGVzc2VyYS1iZW5jaC1tYXN0ZXIta2V5LTAxMjM0NTY=";
/// How long wrk may overrun its duration before it is killed.
const WRK_GRACE: Duration = Duration::from_secs(30);

/// The harness's command line.
#[derive(Debug, Parser)]
#[command(about = "Drives tessera-server and the floor server with wrk and compares them")]
struct Args {
    /// Seconds of measured load per configuration.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before each measurement (not measured; 0 for none).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Keep-alive connections wrk holds open.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Rounds: every configuration is measured this many times, one round after
    /// the other; each round compares with its own floor, and the table shows the
    /// median round.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Only the configurations whose name contains one of these comma-separated
    /// patterns (e.g. `memory`, `opaque`, `sqlite/introspect`); the floor of
    /// their mode always runs with them.
    #[arg(long)]
    only: Option<String>,
    /// Where to write results.json, chart.svg and the servers' logs (default:
    /// `load/` in the target directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds a server may take to print its listening line.
    #[arg(long, default_value_t = 60)]
    startup_timeout: u64,
    /// Use the binaries as they are instead of running `cargo build` first.
    #[arg(long)]
    no_build: bool,
    /// The directory holding `tessera-server` and `floor` (default: the
    /// harness's own).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// `TESSERA_LOG` for tessera-server (default: unset, so `info`, which logs
    /// one audit line per token issued). The filter must keep `tessera_server`
    /// at `info`: the harness waits for its listening line.
    #[arg(long)]
    tessera_log: Option<String>,
    /// Print the configurations that would run, and exit.
    #[arg(long)]
    list: bool,
    /// Start the servers of a mode's configurations once and keep them running while
    /// its rounds measure them in turn, in reverse order every other round, instead
    /// of starting each configuration anew for each measurement. A mode's rounds then
    /// follow each other within seconds, so the machine's drifts in speed weigh less
    /// on the ratios.
    #[arg(long)]
    interleave: bool,
}

/// What the load asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Opaque,
    Es256,
    EdDsa,
    Rs256,
    Introspect,
    /// The management API's `GetUserByID`, with a bearer token of an administrator.
    GetUser,
    /// The plainest token request, `scope=openid`: an opaque token, no audience.
    OpenId,
}

impl Mode {
    const ALL: [Mode; 7] = [
        Mode::Opaque,
        Mode::OpenId,
        Mode::Es256,
        Mode::EdDsa,
        Mode::Rs256,
        Mode::Introspect,
        Mode::GetUser,
    ];

    /// Whether the floor server has this mode (a mode without one is compared with
    /// Tessera's `introspect` on the same store: `report::baseline_mode`).
    fn has_floor(self) -> bool {
        self != Mode::GetUser
    }

    /// The name, also the floor's `--mode`.
    fn name(self) -> &'static str {
        match self {
            Mode::Opaque => "opaque",
            Mode::Es256 => "jwt-es256",
            Mode::EdDsa => "jwt-eddsa",
            Mode::Rs256 => "jwt-rs256",
            Mode::Introspect => "introspect",
            Mode::GetUser => "get-user",
            Mode::OpenId => "opaque-openid",
        }
    }

    /// The floor's `--mode`: the floor answers `scope=openid` as it answers the
    /// audience scope (it echoes the scope), so both opaque loads share its mode.
    fn floor_mode(self) -> &'static str {
        match self {
            Mode::OpenId => Mode::Opaque.name(),
            other => other.name(),
        }
    }

    /// The form body of the mode's token request.
    fn token_body(self) -> &'static str {
        match self {
            Mode::OpenId => OPENID_TOKEN_BODY,
            _ => LOAD_TOKEN_BODY,
        }
    }

    /// The scope the mode's token request is granted.
    fn granted_scope(self) -> &'static str {
        match self {
            Mode::OpenId => "openid",
            _ => LOAD_SCOPE,
        }
    }

    /// `tessera-server --signing-alg`.
    fn signing_alg(self) -> &'static str {
        match self {
            Mode::EdDsa => "EdDSA",
            Mode::Rs256 => "RS256",
            _ => "ES256",
        }
    }

    /// The service user's access token type.
    fn token_type(self) -> &'static str {
        match self {
            Mode::Es256 | Mode::EdDsa | Mode::Rs256 => "jwt",
            Mode::Opaque | Mode::OpenId | Mode::Introspect | Mode::GetUser => "opaque",
        }
    }
}

/// A database of `tessera-server`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Database {
    Memory,
    Sqlite,
    Postgres(String),
}

impl Database {
    fn name(&self) -> &'static str {
        match self {
            Database::Memory => "memory",
            Database::Sqlite => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

/// One measured configuration.
#[derive(Debug, Clone)]
struct Config {
    mode: Mode,
    /// `None` for the floor.
    database: Option<Database>,
    instances: u32,
    /// Whether `tessera-server` writes its audit lines: the configuration without
    /// them shows what the audit trail costs, in the same run.
    audit: bool,
}

/// The log filter of a configuration without the audit lines, added to the
/// harness's own (`--tessera-log`, default `info`).
const NO_AUDIT_FILTER: &str = "tessera::audit=warn";

impl Config {
    fn name(&self) -> String {
        match &self.database {
            None => format!("floor/{}", self.mode.name()),
            Some(db) if self.instances > 1 => {
                format!("{}/{}-x{}", db.name(), self.mode.name(), self.instances)
            }
            Some(db) if !self.audit => format!("{}/{}-no-audit", db.name(), self.mode.name()),
            Some(db) => format!("{}/{}", db.name(), self.mode.name()),
        }
    }
}

/// Every configuration, in the order they run: per mode, the floor first.
fn all_configs(postgres: Option<&str>) -> Vec<Config> {
    let mut configs = Vec::new();
    for mode in Mode::ALL {
        if mode.has_floor() {
            configs.push(Config { mode, database: None, instances: 1, audit: true });
        }
        configs.push(Config { mode, database: Some(Database::Memory), instances: 1, audit: true });
        if mode == Mode::Opaque {
            let database = Some(Database::Memory);
            configs.push(Config { mode, database, instances: 1, audit: false });
        }
        if matches!(mode, Mode::Opaque | Mode::OpenId | Mode::Introspect | Mode::GetUser) {
            configs.push(Config {
                mode,
                database: Some(Database::Sqlite),
                instances: 1,
                audit: true,
            });
            if let Some(url) = postgres {
                let db = Database::Postgres(url.to_owned());
                configs.push(Config {
                    mode,
                    database: Some(db.clone()),
                    instances: 1,
                    audit: true,
                });
                if mode == Mode::Opaque {
                    configs.push(Config { mode, database: Some(db), instances: 2, audit: true });
                }
            }
        }
    }
    configs
}

/// The configurations `only` selects, with the floor of each selected mode.
fn select(configs: Vec<Config>, only: Option<&str>) -> Vec<Config> {
    let Some(only) = only else { return configs };
    let patterns: Vec<&str> = only.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    let named = |c: &Config| patterns.iter().any(|p| c.name().contains(p));
    // A mode without a floor brings its baseline on the same store along.
    let baselines: Vec<(Mode, Option<Database>)> = configs
        .iter()
        .filter(|c| named(c) && !c.mode.has_floor())
        .map(|c| (Mode::Introspect, c.database.clone()))
        .collect();
    let chosen = |c: &Config| {
        named(c) || (c.instances == 1 && baselines.contains(&(c.mode, c.database.clone())))
    };
    let modes: Vec<Mode> = configs.iter().filter(|c| chosen(c)).map(|c| c.mode).collect();
    configs
        .into_iter()
        .filter(|c| chosen(c) || (c.database.is_none() && modes.contains(&c.mode)))
        .collect()
}

/// What every configuration shares.
struct Context {
    args: Args,
    bin_dir: PathBuf,
    out: PathBuf,
    scratch: tempfile::TempDir,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("harness: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs every selected configuration; `Ok(false)` when one of them failed.
fn run(args: Args) -> Result<bool, String> {
    if args.duration == 0 || args.connections == 0 || args.rounds == 0 {
        return Err("--duration, --connections and --rounds must be at least 1".into());
    }
    let postgres = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty());
    let configs = select(all_configs(postgres.as_deref()), args.only.as_deref());
    if args.list {
        for config in &configs {
            println!("{}", config.name());
        }
        if postgres.is_none() {
            eprintln!("(the PostgreSQL configurations run only with {POSTGRES_URL_VAR} set)");
        }
        return Ok(true);
    }
    if configs.is_empty() {
        return Err(format!(
            "no configuration matches --only {:?}; see --list",
            args.only.unwrap_or_default()
        ));
    }
    children::install_interrupt_handler().map_err(|e| format!("cannot handle signals: {e}"))?;
    let wrk_version = wrk::check_installed()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the harness's executable: {e}"))?
            .parent()
            .ok_or("the harness's executable has no directory")?
            .to_path_buf(),
    };
    if !args.no_build {
        build()?;
    }
    for bin in ["tessera-server", "floor"] {
        if !bin_dir.join(bin).is_file() {
            return Err(format!(
                "{} is missing; build it with `cargo build --release -p tessera-server -p tessera-benches`",
                bin_dir.join(bin).display()
            ));
        }
    }
    let out = match &args.out {
        Some(out) => out.clone(),
        None => bin_dir.parent().unwrap_or(&bin_dir).join("load"),
    };
    std::fs::create_dir_all(out.join("logs"))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("tessera-load-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;

    let started = time::OffsetDateTime::now_utc();
    let machine_before = machine_state();
    eprintln!(
        "harness: {} cores; load average {:.2}; {:.0} % of the CPU busy in the second before the run; {wrk_version}",
        procfs::cores(),
        machine_before.load_average.unwrap_or(f64::NAN),
        machine_before.busy_share.unwrap_or(f64::NAN) * 100.0,
    );
    if machine_before.busy_share.is_some_and(|b| b > 0.2) {
        eprintln!("harness: warning: the machine is busy; the figures will be low and noisy");
    }
    if postgres.is_none() {
        eprintln!("harness: PostgreSQL configurations skipped ({POSTGRES_URL_VAR} is not set)");
    }
    let context = Context { args, bin_dir, out, scratch };
    let rounds = if context.args.interleave {
        interleaved(&configs, &context)
    } else {
        one_at_a_time(&configs, &context)
    };
    let mut rows = Vec::new();
    for mut these in rounds {
        report::compute_ratios(&mut these);
        rows.extend(these);
    }
    let summary = report::summarize(&rows);
    let machine_after = machine_state();

    let settings = Settings {
        duration_secs: context.args.duration,
        warmup_secs: context.args.warmup,
        connections: context.args.connections,
        rounds: context.args.rounds,
        interleaved: context.args.interleave,
        tessera_log: context.args.tessera_log.clone(),
    };
    let date = started.date();
    let rounds = match (settings.rounds, settings.interleaved) {
        (1, _) => String::new(),
        (n, false) => format!(", median of {n} rounds"),
        (n, true) => format!(", median of {n} interleaved rounds"),
    };
    let subtitle = format!(
        "wrk, {} keep-alive connections, {} s after {} s warm-up per configuration{rounds}; {} cores; {date}",
        settings.connections,
        settings.duration_secs,
        settings.warmup_secs,
        procfs::cores()
    );
    let results = Results {
        started_unix: started.unix_timestamp(),
        settings,
        wrk: wrk_version,
        machine: Machine { cores: procfs::cores(), before: machine_before, after: machine_after },
        tessera_server: context.bin_dir.join("tessera-server"),
        summary: summary.clone(),
        rows,
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    write(&context.out.join("results.json"), &json)?;
    write(&context.out.join("chart.svg"), &report::svg(&summary, &subtitle))?;

    println!("{}", report::table(&summary));
    println!(
        "ratio = tessera req/s ÷ floor req/s in the same mode, this run. CPU = server user+system time per response. \
         RSS summed over instances."
    );
    println!(
        "machine: load average {:.2} before, {:.2} after the run",
        results.machine.before.load_average.unwrap_or(f64::NAN),
        results.machine.after.load_average.unwrap_or(f64::NAN)
    );
    println!(
        "wrote {} and {}",
        context.out.join("results.json").display(),
        context.out.join("chart.svg").display()
    );
    Ok(results.rows.iter().all(|r| r.error.is_none()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `cargo build --release -p tessera-server -p tessera-benches --bins`, in the
/// workspace this harness was built from.
fn build() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml");
    eprintln!("harness: cargo build --release -p tessera-server -p tessera-benches --bins");
    let (guard, _) = Guarded::spawn(
        Command::new(&cargo)
            .args(["build", "--release", "-p", "tessera-server", "-p", "tessera-benches", "--bins"])
            .arg("--manifest-path")
            .arg(&manifest)
            .stdin(Stdio::null()),
    )
    .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    // A build from scratch takes minutes; an hour means something is stuck.
    match guard.wait_timeout(Duration::from_secs(3600)) {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("cargo build failed ({status})")),
        Ok(None) => Err("cargo build did not finish within an hour".into()),
        Err(e) => Err(format!("waiting for cargo build: {e}")),
    }
}

/// The run's settings, as recorded in results.json.
#[derive(Debug, Serialize)]
struct Settings {
    duration_secs: u64,
    warmup_secs: u64,
    connections: u32,
    rounds: u32,
    /// Whether each mode's rounds measured servers kept running (`--interleave`).
    interleaved: bool,
    tessera_log: Option<String>,
}

/// How busy the machine was.
#[derive(Debug, Clone, Copy, Serialize)]
struct MachineState {
    /// 1-minute load average.
    load_average: Option<f64>,
    /// Busy share of all cores over one second.
    busy_share: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    before: MachineState,
    after: MachineState,
}

/// results.json.
#[derive(Debug, Serialize)]
struct Results {
    started_unix: i64,
    settings: Settings,
    wrk: String,
    machine: Machine,
    tessera_server: PathBuf,
    /// One row per configuration (the median round when there are several).
    summary: Vec<Row>,
    /// Every measured row, round by round.
    rows: Vec<Row>,
}

/// Counts and reports the measurements as they are made.
struct Progress {
    done: usize,
    total: usize,
}

impl Progress {
    fn start(&mut self, config: &Config) -> String {
        self.done += 1;
        let step = format!("[{}/{}] {}", self.done, self.total, config.name());
        eprintln!("harness: {step} ...");
        step
    }

    fn finish(step: &str, row: &Row) {
        match (&row.requests_per_sec, &row.load) {
            (Some(rps), Some(load)) => eprintln!(
                "harness: {step}: {} req/s, p50 {}, p99 {}{}",
                report::thousands(*rps),
                report::latency(load.p50_us),
                report::latency(load.p99_us),
                row.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
            ),
            _ => eprintln!(
                "harness: {step} failed: {}",
                row.error.as_deref().unwrap_or("no figures")
            ),
        }
    }
}

/// Every configuration measured once per round, its servers started for the
/// measurement and stopped after it. The rows of each round.
fn one_at_a_time(configs: &[Config], context: &Context) -> Vec<Vec<Row>> {
    let mut progress = Progress { done: 0, total: configs.len() * context.args.rounds as usize };
    (1..=context.args.rounds)
        .map(|round| {
            configs
                .iter()
                .map(|config| {
                    let step = progress.start(config);
                    let mut row = measure(config, context);
                    row.round = Some(round);
                    Progress::finish(&step, &row);
                    row
                })
                .collect()
        })
        .collect()
}

/// What measures a configuration whose servers are started, checked and warmed up:
/// the load, its script, and the servers' memory before it.
struct Started {
    load: Load,
    script: PathBuf,
    idle: procfs::Memory,
}

/// The configurations mode by mode: each mode's servers are started once, then
/// its rounds measure its configurations in turn (in reverse order every other
/// round, so that a drift of the machine's speed favours none), then the servers
/// stop. The rows of each round.
fn interleaved(configs: &[Config], context: &Context) -> Vec<Vec<Row>> {
    let rounds = context.args.rounds as usize;
    let mut progress = Progress { done: 0, total: configs.len() * rounds };
    let mut by_round: Vec<Vec<Row>> = vec![Vec::new(); rounds];
    for group in configs.chunk_by(|a, b| a.mode == b.mode) {
        let mut started: Vec<(Vec<Server>, Result<Started, String>)> = Vec::new();
        for config in group {
            eprintln!("harness: starting {} ...", config.name());
            let mut servers = Vec::new();
            let ready = start(config, context, &mut servers);
            started.push((servers, ready));
        }
        for (round, rows) in by_round.iter_mut().enumerate() {
            let mut these: Vec<(usize, Row)> = Vec::new();
            for i in round_order(group.len(), round) {
                let config = &group[i];
                let step = progress.start(config);
                let mut row = new_row(config);
                row.round = Some(round as u32 + 1);
                match &started[i].1 {
                    Ok(ready) => {
                        if let Err(e) = measure_started(ready, &started[i].0, &mut row) {
                            row.error = Some(e);
                        }
                    }
                    Err(e) => row.error = Some(e.clone()),
                }
                Progress::finish(&step, &row);
                these.push((i, row));
            }
            // In the configurations' order, whichever order they ran in.
            these.sort_by_key(|(i, _)| *i);
            rows.extend(these.into_iter().map(|(_, row)| row));
        }
        for (config, (servers, _)) in group.iter().zip(started) {
            keep_logs(config, servers, context);
        }
    }
    by_round
}

/// The order in which round `round` (from 0) measures `len` configurations: theirs,
/// reversed every other round, so that over two rounds each configuration runs as
/// early as late.
fn round_order(len: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// A row for `config`, without figures yet.
fn new_row(config: &Config) -> Row {
    let server = if config.database.is_some() { "tessera" } else { "floor" };
    Row::new(
        &config.name(),
        server,
        config.mode.name(),
        config.database.as_ref().map(Database::name),
        config.instances,
    )
}

/// Writes what the servers of `config` said to the logs directory, then stops them.
fn keep_logs(config: &Config, servers: Vec<Server>, context: &Context) {
    let name = config.name();
    let mut log = String::new();
    for (i, server) in servers.iter().enumerate() {
        log.push_str(&format!("==== {name} instance {} (pid {}) ====\n", i + 1, server.pid()));
        log.push_str(&server.log());
        log.push('\n');
    }
    drop(servers);
    let _ = write(&context.out.join("logs").join(format!("{}.log", name.replace('/', "_"))), &log);
}

/// Load average now, and the busy share of the machine over the next second.
fn machine_state() -> MachineState {
    let before = procfs::machine_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let after = procfs::machine_ticks();
    let busy_share = before.zip(after).and_then(|(b, a)| procfs::busy_share(b, a));
    MachineState { load_average: procfs::load_average(), busy_share }
}

/// Measures one configuration; a failure is recorded in the row.
fn measure(config: &Config, context: &Context) -> Row {
    let mut row = new_row(config);
    let mut servers = Vec::new();
    let measured = start(config, context, &mut servers)
        .and_then(|started| measure_started(&started, &servers, &mut row));
    if let Err(e) = measured {
        row.error = Some(e);
    }
    keep_logs(config, servers, context);
    row
}

/// Starts the servers of `config` (into `servers`, so that they are stopped and
/// their logs kept whatever happens), provisions them, and warms them up.
fn start(config: &Config, context: &Context, servers: &mut Vec<Server>) -> Result<Started, String> {
    let timeout = Duration::from_secs(context.args.startup_timeout);
    for instance in 0..config.instances {
        let mut command = match &config.database {
            None => floor_command(config.mode, &context.bin_dir),
            Some(db) => tessera_command(config, db, context)?,
        };
        let server = Server::start(&mut command, timeout)
            .map_err(|e| format!("instance {} did not start: {e}", instance + 1))?;
        servers.push(server);
    }
    let (path, authorization, body, content_type) = if config.mode == Mode::GetUser {
        let (authorization, body) = provision_get_user(servers)?;
        (GET_USER_PATH, authorization, body, http1::JSON)
    } else {
        let (path, authorization, body) = provision(config.mode, servers)?;
        (path, authorization, body, http1::FORM)
    };
    check_running(servers)?;
    let idle = total_memory(servers)?;
    let mut load = Load {
        targets: servers.iter().map(|s| s.addr).collect(),
        path: path.into(),
        authorization,
        body,
        content_type,
        connections: context.args.connections,
        duration: Duration::from_secs(context.args.warmup),
    };
    let script = context.scratch.path().join(format!("{}.lua", config.name().replace('/', "_")));
    write(&script, &wrk::script(&load))?;
    if context.args.warmup > 0 {
        wrk::run(&load, &script, WRK_GRACE).map_err(|e| format!("warm-up: {e}"))?;
        check_running(servers)?;
    }
    load.duration = Duration::from_secs(context.args.duration);
    Ok(Started { load, script, idle })
}

/// One measured load of started `servers`, its figures recorded in `row`.
fn measure_started(started: &Started, servers: &[Server], row: &mut Row) -> Result<(), String> {
    let Started { load, script, idle } = started;
    let harness = std::process::id();
    let cpu_before = total_cpu(servers)?;
    let harness_before = procfs::cpu_time(harness)?;
    let machine_before = procfs::machine_ticks();
    let outcome = wrk::run(load, script, WRK_GRACE)?;
    let machine_after = procfs::machine_ticks();
    let harness_after = procfs::cpu_time(harness)?;
    check_running(servers)?;
    let cpu = total_cpu(servers)?.saturating_sub(cpu_before);
    let memory = total_memory(servers)?;
    if let (Some(before), Some(after)) = (machine_before, machine_after) {
        row.machine_busy_share = procfs::busy_share(before, after);
        // Busy time of the whole machine, less what the run itself used.
        let ticks = procfs::clock_ticks() as f64;
        let busy = after.0.saturating_sub(before.0) as f64 / ticks;
        let total = after.1.saturating_sub(before.1) as f64 / ticks;
        let ours = cpu.as_secs_f64()
            + outcome.loadgen_cpu_us as f64 / 1e6
            + harness_after.saturating_sub(harness_before).as_secs_f64();
        row.other_cpu_share = (total > 0.0).then(|| ((busy - ours) / total).max(0.0));
    }
    record(row, outcome, cpu, *idle, memory);
    Ok(())
}
/// `Ok(())` while every instance runs.
fn check_running(servers: &[Server]) -> Result<(), String> {
    for (i, server) in servers.iter().enumerate() {
        server.check_running().map_err(|e| format!("instance {}: {e}", i + 1))?;
    }
    Ok(())
}

/// Fills a row from a measured run.
fn record(
    row: &mut Row,
    outcome: Outcome,
    cpu: Duration,
    idle: procfs::Memory,
    end: procfs::Memory,
) {
    let responses = outcome.requests.max(1) as f64;
    row.requests_per_sec = Some(outcome.requests_per_sec());
    row.cpu_us_per_request = Some(cpu.as_secs_f64() * 1e6 / responses);
    row.loadgen_cpu_us_per_request = Some(outcome.loadgen_cpu_us as f64 / responses);
    row.idle_rss_kib = Some(idle.rss_kib);
    row.peak_rss_kib = Some(end.peak_kib);
    let errors = outcome.errors;
    if errors.total() > 0 {
        row.error = Some(format!(
            "{} failed requests (connect {}, read {}, write {}, status ≥ 400 {}, timeout {})",
            errors.total(),
            errors.connect,
            errors.read,
            errors.write,
            errors.status,
            errors.timeout
        ));
    }
    row.load = Some(outcome);
}

fn total_cpu(servers: &[Server]) -> Result<Duration, String> {
    servers.iter().map(|s| procfs::cpu_time(s.pid())).sum()
}

fn total_memory(servers: &[Server]) -> Result<procfs::Memory, String> {
    servers.iter().try_fold(procfs::Memory::default(), |sum, s| Ok(sum + procfs::memory(s.pid())?))
}

fn floor_command(mode: Mode, bin_dir: &Path) -> Command {
    let mut command = Command::new(bin_dir.join("floor"));
    command.args(["--listen", "127.0.0.1:0", "--mode", mode.floor_mode(), "--watch-stdin"]);
    command
}

fn tessera_command(config: &Config, db: &Database, context: &Context) -> Result<Command, String> {
    let scratch = context.scratch.path();
    let slug = config.name().replace('/', "_");
    let bootstrap = scratch.join(format!("{slug}.bootstrap.json"));
    write(&bootstrap, &bootstrap_file(config.mode).to_string())?;
    let url = match db {
        Database::Memory => "memory:".to_owned(),
        Database::Sqlite => format!("sqlite://{}", scratch.join(format!("{slug}.db")).display()),
        Database::Postgres(url) => url.clone(),
    };
    let mut command = Command::new(context.bin_dir.join("tessera-server"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--database", &url])
        .arg("--bootstrap")
        .arg(&bootstrap)
        .args(["--signing-alg", config.mode.signing_alg()])
        .current_dir(scratch);
    // Only what the harness sets reaches the server.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("TESSERA_") || key_text == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    if let Some(filter) = log_filter(context.args.tessera_log.as_deref(), config.audit) {
        command.env("TESSERA_LOG", filter);
    }
    if matches!(db, Database::Postgres(_)) {
        let key =
            std::env::var("TESSERA_MASTER_KEY").unwrap_or_else(|_| BENCH_MASTER_KEY.to_owned());
        command.env("TESSERA_MASTER_KEY", key);
    }
    Ok(command)
}

/// `TESSERA_LOG` of a server: the harness's filter (none: the server's default,
/// `info`), with the audit lines filtered out for a configuration without them.
fn log_filter(filter: Option<&str>, audit: bool) -> Option<String> {
    match (filter, audit) {
        (filter, true) => filter.map(str::to_owned),
        (Some(filter), false) => Some(format!("{filter},{NO_AUDIT_FILTER}")),
        (None, false) => Some(format!("info,{NO_AUDIT_FILTER}")),
    }
}

/// The bootstrap file: the load's service user with the mode's token type, the
/// project, and its API app.
///
/// For the management API, the service user is an administrator (`IAM_OWNER_VIEWER`:
/// it reads), and [`OTHER_USERS`] more users fill the store around it.
fn bootstrap_file(mode: Mode) -> serde_json::Value {
    let mut users = vec![serde_json::json!({
        "username": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "display_name": "Load harness",
        "access_token_type": mode.token_type(),
    })];
    let mut administrators = Vec::new();
    if mode == Mode::GetUser {
        administrators.push(serde_json::json!({"username": CLIENT_ID, "role": "IAM_OWNER_VIEWER"}));
        users.extend((0..OTHER_USERS).map(|i| {
            serde_json::json!({
                "username": format!("bench-user-{i:05}"),
                "client_secret": CLIENT_SECRET,
            })
        }));
    }
    serde_json::json!({
        "service_users": users,
        "projects": [{ "id": PROJECT_ID, "name": "Load harness" }],
        "api_apps": [{ "project": PROJECT_ID, "client_id": API_CLIENT_ID, "client_secret": API_CLIENT_SECRET }],
        "administrators": administrators,
    })
}

/// The users besides the load's own in the store of the management API's load.
const OTHER_USERS: usize = 1000;

/// The plainest token request: `scope=openid`.
const OPENID_TOKEN_BODY: &str = "grant_type=client_credentials&scope=openid";

/// The management API's `GetUserByID`.
const GET_USER_PATH: &str = "/zitadel.user.v2.UserService/GetUserByID";

/// The management API's `ListUsers`, with which the load finds its user's id.
const LIST_USERS_PATH: &str = "/zitadel.user.v2.UserService/ListUsers";

/// The token request of an administrator: the server's own API in the audience.
const API_TOKEN_BODY: &str = "grant_type=client_credentials&scope=openid+urn%3Azitadel%3Aiam%3Aorg%3Aproject%3Aid%3Azitadel%3Aaud";

/// Checks the management API's load on every server: an administrator's token, then
/// the id of the load's user, then `GetUserByID` of it. Returns the bearer
/// `Authorization` value and the JSON body of the load.
fn provision_get_user(servers: &[Server]) -> Result<(String, String), String> {
    let first = servers.first().ok_or("no server")?;
    let client = basic_authorization(CLIENT_ID, CLIENT_SECRET);
    let response = http1::post_form(first.addr, TOKEN_PATH, &client, API_TOKEN_BODY)?;
    let bad = |what: &str, r: &http1::Response| format!("{what} answered {} {}", r.status, r.body);
    let json: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|_| bad("the token request", &response))?;
    let token = json["access_token"].as_str().ok_or_else(|| bad("the token request", &response))?;
    let bearer = format!("Bearer {token}");
    let query = serde_json::json!({"queries": [{"userNameQuery": {"userName": CLIENT_ID}}]});
    let listed =
        http1::post(first.addr, LIST_USERS_PATH, http1::JSON, &bearer, &query.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&listed.body).map_err(|_| bad("ListUsers", &listed))?;
    let user_id = json["result"][0]["userId"].as_str().ok_or_else(|| bad("ListUsers", &listed))?;
    if json["details"]["totalResult"] != "1" {
        return Err(bad("ListUsers", &listed));
    }
    let body = serde_json::json!({ "userId": user_id }).to_string();
    for server in servers {
        let got = http1::post(server.addr, GET_USER_PATH, http1::JSON, &bearer, &body)?;
        let json: serde_json::Value =
            serde_json::from_str(&got.body).map_err(|_| bad("GetUserByID", &got))?;
        if got.status != 200 || json["user"]["username"] != CLIENT_ID {
            return Err(bad("GetUserByID", &got));
        }
    }
    Ok((bearer, body))
}

/// Checks that every server answers the load's request correctly, and returns the
/// request: path, `Authorization` value and body. For introspection, a token is
/// issued first (by the first server).
fn provision(mode: Mode, servers: &[Server]) -> Result<(&'static str, String, String), String> {
    let client = basic_authorization(CLIENT_ID, CLIENT_SECRET);
    let mut token = String::new();
    for server in servers {
        token = issue(mode, server, &client)?;
    }
    if mode != Mode::Introspect {
        return Ok((TOKEN_PATH, client, mode.token_body().to_owned()));
    }
    let api = basic_authorization(API_CLIENT_ID, API_CLIENT_SECRET);
    let body = format!("token={token}");
    for server in servers {
        let response = http1::post_form(server.addr, INTROSPECT_PATH, &api, &body)?;
        let json: serde_json::Value = serde_json::from_str(&response.body).map_err(|_| {
            format!("introspection answered {} {:?}", response.status, response.body)
        })?;
        if response.status != 200 || json["active"] != true {
            return Err(format!("introspection answered {} {}", response.status, response.body));
        }
    }
    Ok((INTROSPECT_PATH, api, body))
}

/// One token request, checked: status, token shape, granted scope.
fn issue(mode: Mode, server: &Server, authorization: &str) -> Result<String, String> {
    let response = http1::post_form(server.addr, TOKEN_PATH, authorization, mode.token_body())?;
    let bad = || format!("the token request was answered {} {}", response.status, response.body);
    if response.status != 200 {
        return Err(bad());
    }
    let json: serde_json::Value = serde_json::from_str(&response.body).map_err(|_| bad())?;
    let token = json["access_token"].as_str().ok_or_else(bad)?;
    let parts = token.split('.').count();
    if (mode.token_type() == "jwt") != (parts == 3) || json["scope"] != mode.granted_scope() {
        return Err(format!("unexpected token response for {}: {}", mode.name(), response.body));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(configs: &[Config]) -> Vec<String> {
        configs.iter().map(Config::name).collect()
    }

    #[test]
    fn configurations() {
        let all = names(&all_configs(None));
        assert_eq!(
            all,
            [
                "floor/opaque",
                "memory/opaque",
                "memory/opaque-no-audit",
                "sqlite/opaque",
                "floor/opaque-openid",
                "memory/opaque-openid",
                "sqlite/opaque-openid",
                "floor/jwt-es256",
                "memory/jwt-es256",
                "floor/jwt-eddsa",
                "memory/jwt-eddsa",
                "floor/jwt-rs256",
                "memory/jwt-rs256",
                "floor/introspect",
                "memory/introspect",
                "sqlite/introspect",
                "memory/get-user",
                "sqlite/get-user",
            ]
        );
        let with_pg = names(&all_configs(Some("postgres://localhost/bench")));
        assert!(with_pg.contains(&"postgres/opaque-x2".to_owned()));
        assert!(with_pg.contains(&"postgres/introspect".to_owned()));
        assert!(with_pg.contains(&"postgres/get-user".to_owned()));
        assert!(with_pg.contains(&"postgres/opaque-openid".to_owned()));
        assert_eq!(with_pg.len(), all.len() + 5);
    }

    #[test]
    fn interleaved_rounds_alternate_their_order_and_group_by_mode() {
        assert_eq!(round_order(3, 0), [0, 1, 2]);
        assert_eq!(round_order(3, 1), [2, 1, 0]);
        assert_eq!(round_order(3, 2), [0, 1, 2]);
        assert_eq!(round_order(0, 1), Vec::<usize>::new());
        // Each mode's configurations are neighbours, its floor first, so a mode's
        // servers are one group.
        let configs = all_configs(Some("postgres://bench"));
        let groups: Vec<&[Config]> = configs.chunk_by(|a, b| a.mode == b.mode).collect();
        assert_eq!(groups.len(), Mode::ALL.len());
        for group in groups {
            let mode = group[0].mode;
            assert!(group.iter().all(|c| c.mode == mode));
            assert_eq!(group[0].database.is_none(), mode.has_floor(), "{}", group[0].name());
        }
    }

    #[test]
    fn only_the_no_audit_configuration_filters_the_audit_lines_out() {
        assert_eq!(log_filter(None, true), None);
        assert_eq!(log_filter(Some("debug"), true).as_deref(), Some("debug"));
        assert_eq!(log_filter(None, false).as_deref(), Some("info,tessera::audit=warn"));
        assert_eq!(log_filter(Some("debug"), false).as_deref(), Some("debug,tessera::audit=warn"));
        let chosen = names(&select(all_configs(None), Some("memory/opaque")));
        assert_eq!(
            chosen,
            [
                "floor/opaque",
                "memory/opaque",
                "memory/opaque-no-audit",
                "floor/opaque-openid",
                "memory/opaque-openid"
            ]
        );
    }

    #[test]
    fn selection_brings_the_floor_along() {
        let chosen = names(&select(all_configs(None), Some("sqlite/intro")));
        assert_eq!(chosen, ["floor/introspect", "sqlite/introspect"]);
        let chosen = names(&select(all_configs(None), Some("rs256, eddsa")));
        assert_eq!(
            chosen,
            ["floor/jwt-eddsa", "memory/jwt-eddsa", "floor/jwt-rs256", "memory/jwt-rs256"]
        );
        assert!(select(all_configs(None), Some("nothing")).is_empty());
        // The management API's load brings its baseline along: introspection on the
        // same store, with its floor.
        let chosen = names(&select(all_configs(None), Some("sqlite/get-user")));
        assert_eq!(chosen, ["floor/introspect", "sqlite/introspect", "sqlite/get-user"]);
    }

    #[test]
    fn bootstrap_matches_the_mode() {
        let file = bootstrap_file(Mode::Es256);
        assert_eq!(file["service_users"][0]["access_token_type"], "jwt");
        assert_eq!(
            bootstrap_file(Mode::Introspect)["service_users"][0]["access_token_type"],
            "opaque"
        );
        assert_eq!(file["api_apps"][0]["project"], PROJECT_ID);
        assert_eq!(file["administrators"], serde_json::json!([]));
        let managed = bootstrap_file(Mode::GetUser);
        assert_eq!(managed["administrators"][0]["username"], CLIENT_ID);
        assert_eq!(managed["service_users"].as_array().map(Vec::len), Some(OTHER_USERS + 1));
    }
}
