//! `strongroom-load`: an end-to-end load generator.
//!
//! It starts the real `strongroom serve` on loopback (this build's binary, a fresh data
//! directory, SQLite or PostgreSQL), creates tenants, users and a record type over the
//! API, and then drives the HTTPS API (HTTP/1.1 or HTTP/2) from a fixed number of
//! concurrent clients for a fixed time or count, with a mix of record creates, reads,
//! filtered lists, updates, signatures and audit queries. It reports throughput,
//! latency percentiles, errors by status and the server's peak resident memory.
//! `pocketbase` drives a PocketBase on loopback with the same payload and client
//! settings, for `bench/compare.sh`. Traffic goes only to loopback, and every run ends
//! by itself.
//!
//! ```text
//! cargo build --release -p strongroom -p strongroom-load   # the server it starts, and itself
//! cargo run -p strongroom-load --release -- strongroom --scenario mixed --secs 10
//! cargo run -p strongroom-load --release -- strongroom --scenario create --http 2
//! cargo run -p strongroom-load --release -- idle --tenants 10000 --secs 30
//! ```
//!
//! It starts the `strongroom` binary beside its own (`--bin` to choose another), so
//! build both with the same profile first.

// A command-line tool: it prints its report, and reads the environment only through clap.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// Rates and percentiles are floating point over counts that fit easily.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

mod pocketbase;
mod report;
mod run;
mod strongroom;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load generator for Strongroom (and PocketBase, for comparison)"
)]
struct Cli {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// Start a Strongroom server on loopback, set it up, and drive it.
    Strongroom(strongroom::StrongroomArgs),
    /// Drive a PocketBase serving on loopback (started by bench/compare.sh).
    Pocketbase(pocketbase::PocketbaseArgs),
    /// Start a Strongroom server with many idle tenants and measure its idle CPU and
    /// memory.
    Idle(strongroom::IdleArgs),
}

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Only record creates.
    Create,
    /// Only reads of one record by id (records are created first).
    Read,
    /// Only filtered lists (records are created first).
    List,
    /// The mix given by `--mix`.
    Mixed,
}

/// HTTP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Http {
    /// HTTP/1.1, one connection per client.
    #[value(name = "1")]
    One,
    /// HTTP/2, every client on one connection.
    #[value(name = "2")]
    Two,
}

/// Settings shared by every target: the same for both sides of a comparison.
#[derive(Debug, Clone, Args)]
pub(crate) struct Load {
    /// What the clients do.
    #[arg(long, value_enum, default_value = "mixed")]
    pub(crate) scenario: Scenario,
    /// Operations per 100 in the mixed scenario.
    #[arg(
        long,
        default_value = "create=40,read=30,update=12,list=10,audit=6,sign=2"
    )]
    pub(crate) mix: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub(crate) concurrency: u32,
    /// Run for this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) secs: u64,
    /// Or stop after this many operations (whichever comes first).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Send at most this many operations per second in total (0: as fast as answered),
    /// to measure latency below peak.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// HTTP version.
    #[arg(long, value_enum, default_value = "1")]
    pub(crate) http: Http,
    /// Records created per tenant before a read or list run.
    #[arg(long, default_value_t = 500)]
    pub(crate) seed: u32,
    /// Print the report as one JSON object too.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Load {
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

/// The record content every target stores: about 1 KiB of JSON.
pub(crate) fn content(i: u64) -> serde_json::Value {
    serde_json::json!({"batch_no": format!("B-{i}"), "quantity": i, "notes": "n".repeat(980)})
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.target {
            Target::Strongroom(args) => strongroom::run(args).await,
            Target::Pocketbase(args) => pocketbase::run(args).await,
            Target::Idle(args) => strongroom::idle(args).await,
        }
    })
}
