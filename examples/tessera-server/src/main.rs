//! The Tessera reference server.
//!
//! Run with: `cargo run -p tessera-server -- serve`
//!
//! `serve` answers OAuth 2.0 requests; the `service-user` commands manage
//! service users in the same database, also while a server is running on it.
#![forbid(unsafe_code)]

mod access;
mod bootstrap;
mod cli;
mod client_keys;
mod commands;
mod log_format;
mod log_writer;
mod organization;
mod projects;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: a token request makes a few dozen short-lived allocations, which it
/// serves from per-thread free lists at a fraction of the system allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(commands::run(cli));
    log_writer::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// Prints a one-line error and returns a failing exit status.
fn fail(message: &str) -> ExitCode {
    let line = message.replace('\n', " ");
    #[allow(clippy::print_stderr)] // the CLI's error channel
    {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}
