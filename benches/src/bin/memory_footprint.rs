//! The memory footprint of live opaque tokens in a [`MemoryStore`]: inserts
//! `--tokens` records minted as the issuer mints them (for one service user, or
//! `--grants` of them in turn; a 12-hour lifetime) and prints the resident set size before and after, the bytes
//! each token costs, the insert rate and the lookup rate.
//!
//! ```text
//! cargo run --release -p tessera-benches --bin memory_footprint -- --tokens 1000000
//! ```
//!
//! Records are minted in small batches outside the timed inserts, so that neither
//! minting nor a list of a million records weighs on the figures. Linux only (the
//! resident set size is read from `/proc/self/status`).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration as StdDuration, Instant};

use clap::Parser;
use tessera_benches::BoxError;
use tessera_mint::{Grant, TokenMinter};
use tessera_scope::ScopeSet;
use tessera_store::prelude::*;
use tessera_store::{AccessTokenType, MemoryStore, TokenDigest, TokenRecord, UserId, Username};
use time::{Duration, OffsetDateTime};

/// Records minted per batch before they are inserted.
const BATCH: usize = 4096;

/// Digests kept (one every this many tokens, at most [`MAX_SAMPLES`]) for the
/// lookup measurement.
const MAX_SAMPLES: usize = 1 << 16;

#[derive(Debug, Parser)]
#[command(about = "Resident memory and insert rate of live opaque tokens in a MemoryStore")]
struct Args {
    /// How many tokens to insert.
    #[arg(long, default_value_t = 1_000_000)]
    tokens: usize,
    /// How many grants (service users) the tokens are spread over, in turn.
    #[arg(long, default_value_t = 1)]
    grants: usize,
}

/// The resident set size of this process in bytes (`VmRSS`).
fn rss_bytes() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or("no VmRSS line in /proc/self/status")?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rate(count: usize, elapsed: StdDuration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn grant(i: usize) -> Result<Grant, BoxError> {
    let client_id = Username::new(&format!("bench-client-{i}"))?;
    let now = OffsetDateTime::now_utc();
    Ok(Grant {
        token_type: AccessTokenType::Opaque,
        user_id: UserId::generate()?,
        scopes: ScopeSet::parse("openid profile urn:zitadel:iam:org:project:id:bench:aud")?,
        audience: vec!["bench".to_owned(), client_id.to_string()],
        client_id,
        roles: Default::default(),
        resource_owner: None,
        issued_at: now,
        expires_at: now + Duration::hours(12),
    })
}

async fn run(args: Args) -> Result<(), BoxError> {
    let store = MemoryStore::new();
    let minter = TokenMinter::new("https://auth.example.com");
    let grants = (0..args.grants.max(1)).map(grant).collect::<Result<Vec<_>, _>>()?;
    let every = args.tokens.div_ceil(MAX_SAMPLES).max(1);
    let mut samples: Vec<TokenDigest> = Vec::with_capacity(args.tokens.div_ceil(every));
    let mut batch: Vec<TokenRecord> = Vec::with_capacity(BATCH);

    let before = rss_bytes()?;
    let mut inserting = StdDuration::ZERO;
    let mut done = 0;
    while done < args.tokens {
        let n = BATCH.min(args.tokens - done);
        batch.clear();
        for i in 0..n {
            let grant = &grants[(done + i) % grants.len()];
            let record = minter.mint(grant)?.record.ok_or("an opaque token without a record")?;
            batch.push(record);
        }
        let start = Instant::now();
        for record in &batch {
            store.insert_token(record).await?;
        }
        inserting += start.elapsed();
        for (i, record) in batch.iter().enumerate() {
            if (done + i) % every == 0 {
                samples.push(record.digest);
            }
        }
        done += n;
    }
    drop(batch);
    let after = rss_bytes()?;

    let start = Instant::now();
    for digest in &samples {
        let found = store.token_by_digest(digest).await?;
        if found.is_none() {
            return Err("an inserted token was not found".into());
        }
    }
    let looking_up = start.elapsed();

    let grown = after.saturating_sub(before);
    println!("tokens:        {} ({} grants)", args.tokens, grants.len());
    println!("RSS before:    {:.1} MiB", mib(before));
    println!("RSS after:     {:.1} MiB", mib(after));
    println!("grown by:      {:.1} MiB", mib(grown));
    println!("per token:     {:.0} bytes", grown as f64 / args.tokens.max(1) as f64);
    println!("insert rate:   {:.0} tokens/s", rate(args.tokens, inserting));
    println!(
        "lookup rate:   {:.0} lookups/s ({} lookups)",
        rate(samples.len(), looking_up),
        samples.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("memory_footprint: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memory_footprint: {e}");
            ExitCode::FAILURE
        }
    }
}
