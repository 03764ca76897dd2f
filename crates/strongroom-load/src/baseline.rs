//! The sqlx side of the driver comparison: exactly what `bench/sqlite-baseline` does
//! through rusqlite (the same table, payload, pragmas and loops), through sqlx's
//! SQLite driver as Strongroom uses it, so the two lines of `bench/compare.sh` differ
//! only in the driver.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use clap::Args;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor, SqliteConnection};

/// `strongroom-load sqlx-baseline`.
#[derive(Debug, Args)]
pub(crate) struct BaselineArgs {
    /// A scratch directory (a fresh database is created in it).
    dir: PathBuf,
    /// Seconds per measurement.
    #[arg(default_value_t = 5.0)]
    secs: f64,
}

fn payload(i: u64) -> String {
    format!(
        r#"{{"batch_no":"B-{i}","quantity":{i},"notes":"{}"}}"#,
        "n".repeat(980)
    )
}

async fn inserts(c: &mut SqliteConnection, secs: f64, batch: u64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let mut tx = c.begin().await?;
        for _ in 0..batch {
            sqlx::query("INSERT INTO rows (tenant, body) VALUES (?1, ?2)")
                .bind("t0")
                .bind(payload(n))
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn statement(c: &mut SqliteConnection, secs: f64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let v: i64 = sqlx::query_scalar("SELECT ?1")
            .bind(n as i64)
            .fetch_one(&mut *c)
            .await?;
        std::hint::black_box(v);
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Prints the same three lines as `sqlite-baseline`, for sqlx.
pub(crate) async fn run(args: BaselineArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let url = format!("sqlite://{}", args.dir.join("baseline-sqlx.db").display());
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut c = SqliteConnection::connect_with(&options).await?;
    c.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, body TEXT NOT NULL)")
        .await?;
    println!(
        "sqlx_inserts_one_per_tx {:.1} /s",
        inserts(&mut c, args.secs, 1).await?
    );
    println!(
        "sqlx_inserts_batched_100 {:.1} /s",
        inserts(&mut c, args.secs, 100).await?
    );
    println!(
        "sqlx_statement {:.2} us",
        statement(&mut c, args.secs.min(2.0)).await?
    );
    Ok(())
}
