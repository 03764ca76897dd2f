//! Raw SQLite through rusqlite, the physical baseline of `bench/compare.sh`: the same
//! ~1 KiB payload Strongroom stores, in a WAL database with `synchronous=FULL`.
//!
//! `sqlite-baseline <dir> <secs>` prints three lines of `name value unit`:
//! durable inserts per second one per transaction, the same batched 100 per
//! transaction, and microseconds per trivial statement (`SELECT ?1`, prepared and
//! cached): the driver's own cost, the floor under every statement of the adapter.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, body TEXT NOT NULL)")?;
    Ok(c)
}

fn payload(i: u64) -> String {
    format!(r#"{{"batch_no":"B-{i}","quantity":{i},"notes":"{}"}}"#, "n".repeat(980))
}

/// Inserts for `secs`, `batch` rows per transaction; returns rows per second.
fn inserts(c: &mut Connection, secs: f64, batch: u64) -> rusqlite::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO rows (tenant, body) VALUES (?1, ?2)")?;
            for _ in 0..batch {
                stmt.execute(params!["t0", payload(n)])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Microseconds per `SELECT ?1`.
fn statement(c: &Connection, secs: f64) -> rusqlite::Result<f64> {
    let mut stmt = c.prepare_cached("SELECT ?1")?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let v: i64 = stmt.query_row([n as i64], |r| r.get(0))?;
        std::hint::black_box(v);
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: sqlite-baseline <dir> <secs>")?);
    let secs: f64 = args.next().unwrap_or_else(|| "5".into()).parse()?;
    std::fs::create_dir_all(&dir)?;
    let mut c = open(&dir.join("baseline.db"))?;
    println!("rusqlite_inserts_one_per_tx {:.1} /s", inserts(&mut c, secs, 1)?);
    println!("rusqlite_inserts_batched_100 {:.1} /s", inserts(&mut c, secs, 100)?);
    println!("rusqlite_statement {:.2} us", statement(&c, secs.min(2.0))?);
    std::thread::sleep(Duration::from_millis(1));
    Ok(())
}
