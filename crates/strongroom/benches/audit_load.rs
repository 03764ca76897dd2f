//! Audit append throughput under concurrent writers, with checkpoint signing running,
//! and checkpoint latency (commit → covered by a signed checkpoint).
//!
//! A load generator, not a criterion micro-benchmark: `bench/audit_load.py` runs it and
//! writes the table. Every write is a real audited write through the platform (tenant
//! secret sealed under the tenant's data key, its `tenant.secret.set` entry appended
//! in the same SQLite transaction, `synchronous=FULL`), against a data directory on
//! the same disk as the baseline:
//!
//! * baseline — bare SQLite: one durable `BEGIN IMMEDIATE; INSERT 560 bytes; COMMIT`
//!   per write, same pragmas, same disk, same number of concurrent writers.
//! * audited writes by an operator (the request's IP and user agent sealed under the
//!   operator's subject key in every entry) with no integrator running, and with the integrator every 1000 ms
//!   (the default) and every 100 ms.
//! * checkpoint latency: while the load runs, a probe notes the log length every 5 ms
//!   and records when a signed checkpoint first covers it (an upper bound for every
//!   entry committed before the probe; probes are spread over the integrator's cycle).
//!
//! Output: one `audit-load:` line per measurement (parsed by the script).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strongroom_core::access::{DataDirProof, Principal};
use strongroom_core::audit::origin::{self, Origin};
use strongroom_core::config::Config;
use strongroom_core::platform::Platform;
use strongroom_core::secret::SecretBytes;
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug};

const WRITERS: usize = 8;
const RUN: Duration = Duration::from_secs(6);

async fn platform(dir: &std::path::Path) -> Arc<Platform> {
    let flags = vec![(
        "data_dir",
        toml::Value::String(dir.join("data").display().to_string()),
    )];
    let config = Config::load(None, Vec::<(String, String)>::new(), flags).unwrap();
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    strongroom::platform(&config, opened).await.unwrap()
}

async fn bare_sqlite(dir: &std::path::Path) -> f64 {
    let path = dir.join("baseline.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )
    .unwrap();
    // One writer connection, as the store has; writers queue for it.
    let conn = Arc::new(std::sync::Mutex::new(conn));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (conn, done) = (conn.clone(), done.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            while started.elapsed() < RUN {
                let c = conn.lock().unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                c.execute("INSERT INTO t (body) VALUES (?1)", [vec![7u8; 560]])
                    .unwrap();
                c.execute_batch("COMMIT").unwrap();
                drop(c);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A real operator, signed in: writes carry its sealed origin like network writes.
async fn operator(p: &Platform, me: &Principal) -> Principal {
    let email = strongroom_core::identity::Email::parse("op@bench.example").unwrap();
    let password = strongroom_core::secret::SecretString::new("correct horse battery".into());
    p.create_operator(me, email.clone(), &password)
        .await
        .unwrap();
    let client = "192.0.2.10".parse().unwrap();
    let token = p
        .operator_login(&email, &password, None, client)
        .await
        .unwrap();
    p.authenticate_operator(&token.access_token).await.unwrap()
}

struct Outcome {
    writes_per_sec: f64,
    /// Checkpoint latencies observed by the probe, in milliseconds.
    latencies: Vec<f64>,
}

#[allow(clippy::too_many_lines)] // one measurement: writers, an integrator and a probe
async fn audited(
    p: &Arc<Platform>,
    operator: &Principal,
    slugs: &[Slug],
    interval: Option<Duration>,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let integrator = interval.map(|every| {
        let (p, stop) = (p.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                p.integrate_audit_round().await.unwrap();
            }
        })
    });
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (p, done, slug) = (p.clone(), done.clone(), slugs[w % slugs.len()].clone());
        let operator = operator.clone();
        tasks.push(tokio::spawn(async move {
            let value = SecretBytes::new(vec![b'v'; 64]);
            // An operator over the network: each entry carries the request's origin,
            // sealed under the operator's subject key.
            let mut i = 0u64;
            while started.elapsed() < RUN {
                let name = strongroom_core::objects::SecretName::parse(&format!("w{w}-{}", i % 16))
                    .unwrap();
                let origin = Origin::new("192.0.2.10".parse().ok(), Some("bench/1.0"));
                origin::scope(origin, p.set_tenant_secret(&operator, &slug, &name, &value))
                    .await
                    .unwrap();
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut latencies = Vec::new();
    if interval.is_some() {
        // Probe every 5 ms: note (now, log length); a probe is resolved when a signed
        // checkpoint covers that length. Probes are spread evenly over the integrator's
        // cycle, so the distribution is that of a write committed at a random moment.
        let mut pending: std::collections::VecDeque<(Instant, u64)> = Default::default();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let probe_until = RUN.saturating_sub(Duration::from_millis(200));
        while started.elapsed() < probe_until || !pending.is_empty() {
            let status = p.audit_status(operator, &slugs[0]).await.unwrap();
            let now = Instant::now();
            while pending
                .front()
                .is_some_and(|(_, n)| *n <= status.integrated)
            {
                let (t0, _) = pending.pop_front().unwrap();
                latencies.push((now - t0).as_secs_f64() * 1000.0);
            }
            if started.elapsed() < probe_until {
                pending.push_back((now, status.entries));
            } else if started.elapsed() > RUN + Duration::from_secs(5) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let writes_per_sec = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(i) = integrator {
        i.await.unwrap();
    }
    Outcome {
        writes_per_sec,
        latencies,
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    // `cargo bench` passes criterion-style flags; this generator takes none.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let base = bare_sqlite(dir.path()).await;
        println!("audit-load: baseline {base:.1}");
        let p = platform(dir.path()).await;
        let me = DataDirProof::check(&dir.path().join("data"))
            .unwrap()
            .local_admin();
        let operator = operator(&p, &me).await;
        let mut slugs = Vec::new();
        for i in 0..WRITERS {
            let slug = Slug::parse(&format!("bench-{i}")).unwrap();
            let new = NewTenant {
                slug: slug.clone(),
                display_name: DisplayName::parse("Bench").unwrap(),
                region: RegionName::parse("local").unwrap(),
                key_provider: None,
            };
            p.create_tenant(&me, new).await.unwrap();
            slugs.push(slug);
        }
        for (name, tenants, interval) in [
            ("one-log/no-integrator", 1, None),
            ("one-log/integrator-1000ms", 1, Some(1000)),
            ("one-log/integrator-100ms", 1, Some(100)),
            ("8-logs/integrator-1000ms", WRITERS, Some(1000)),
        ] {
            let every = interval.map(Duration::from_millis);
            let o = audited(&p, &operator, &slugs[..tenants], every).await;
            let mut l = o.latencies.clone();
            l.sort_by(f64::total_cmp);
            println!(
                "audit-load: {name} {:.1} {:.1} {:.1} {:.1} {}",
                o.writes_per_sec,
                percentile(&l, 0.5),
                percentile(&l, 0.99),
                l.last().copied().unwrap_or(f64::NAN),
                l.len()
            );
        }
    });
}
