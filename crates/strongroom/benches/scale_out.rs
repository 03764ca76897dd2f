//! Scale-out throughput, all in one run on one machine (only the ratios mean anything):
//! record creates and reads over HTTPS from 16 clients on SQLite, on PostgreSQL with
//! one server node and with two (clients split between them), beside `pgbench`
//! inserting one 1 KiB row per transaction from 16 clients into the same cluster; and
//! attachment MB/s through the server into the S3 bucket beside a stock client
//! (boto3's managed transfer, as `aws s3 cp` uses) moving a file of the same size.
//!
//! `. .ci/services.sh && cargo bench -p strongroom --bench scale_out`
//! (`.ci/services.sh` starts PostgreSQL 15 and moto on loopback and exports
//! `SR_TEST_POSTGRES` and `SR_TEST_S3_*`; SCALE_SECS per phase, default 8).

// A bench reports on stdout and takes its settings from the environment.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    missing_docs
)]
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strongroom_testkit::{Options, TestServer, USER_PASSWORD};

const CLIENTS: usize = 16;
/// Attachment size for the S3 comparison.
const SIZE: usize = 256 << 20;

fn secs() -> u64 {
    std::env::var("SCALE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

fn content(i: u64) -> Value {
    // 1 KiB of JSON content, as in records_load.
    json!({"batch_no": format!("B-{i}"), "quantity": i, "notes": "n".repeat(980)})
}

/// Runs `op` from 16 clients for the phase's duration; returns operations per second.
async fn phase<F, Fut>(name: &str, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (op, done, failed) = (op.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let counter = if op(c, i).await { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    println!(
        "{name:<34} {rate:>9.1} /s  ({} ok, {} failed)",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    rate
}

async fn start(
    bin: &std::path::Path,
    postgres: bool,
    dir: Option<tempfile::TempDir>,
) -> TestServer {
    TestServer::start_with(
        bin,
        Options {
            config: Some("[regions.eu]\n".into()),
            postgres,
            dir,
            ..Options::default()
        },
    )
    .await
}

/// The tenant `bench`, its record type and one writer per client; returns their
/// access tokens.
async fn populate(s: &TestServer) -> Vec<String> {
    let api = s.api();
    let op = s.operator_token().await;
    api.create_tenant(&op, "bench").await;
    let out = s
        .cli(
            &[
                "user",
                "create",
                "--tenant",
                "bench",
                "--email",
                "admin@bench.example",
                "--full-name",
                "Bench Admin",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(USER_PASSWORD),
        )
        .await;
    assert!(out.status.success());
    let admin = api.sign_in("bench", "admin@bench.example").await.access;
    let def = json!({
        "schema": {"type": "object", "required": ["batch_no"], "properties": {
            "batch_no": {"type": "string"}, "quantity": {"type": "integer"}, "notes": {"type": "string"}}},
        "signature_policy": {"steps": [{"meaning": "authored", "permission": "records:write"}]},
        "searchable": ["batch_no"]
    });
    api.put("/v1/t/bench/record-types/batch", &admin, def)
        .await
        .ok(200);
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let w = format!("w{c}@bench.example");
        let body = json!({"email": w, "password": USER_PASSWORD, "roles": ["preparer"], "full_name": format!("Writer {c}")});
        api.post("/v1/t/bench/users", Some(&admin), body)
            .await
            .ok(201);
        writers.push(w);
    }
    writers
}

/// Creates then reads records from 16 clients spread over `nodes`; returns
/// (creates/s, reads/s).
async fn creates_and_reads(label: &str, nodes: &[&TestServer], writers: &[String]) -> (f64, f64) {
    let mut clients = Vec::new();
    for (c, w) in writers.iter().enumerate() {
        let node = nodes[c % nodes.len()];
        let token = node.api().sign_in("bench", w).await.access;
        clients.push((node.client(), node.url("/v1/t/bench/records"), token));
    }
    let clients = Arc::new(clients);
    let ids: Arc<std::sync::Mutex<Vec<Vec<String>>>> =
        Arc::new(std::sync::Mutex::new(vec![Vec::new(); CLIENTS]));
    let create = {
        let (clients, ids) = (clients.clone(), ids.clone());
        move |c: usize, i: u64| {
            let (clients, ids) = (clients.clone(), ids.clone());
            async move {
                let (client, base, token) = &clients[c];
                let r = client
                    .post(base)
                    .bearer_auth(token)
                    .json(&json!({"type": "batch", "content": content(i)}))
                    .send()
                    .await
                    .unwrap();
                if r.status() != 201 {
                    return false;
                }
                let v: Value = r.json().await.unwrap();
                ids.lock().unwrap()[c].push(v["id"].as_str().unwrap().to_owned());
                true
            }
        }
    };
    let created = phase(&format!("{label}: create"), create).await;
    let read = {
        let (clients, ids) = (clients.clone(), ids.clone());
        move |c: usize, i: u64| {
            let (clients, ids) = (clients.clone(), ids.clone());
            async move {
                let (client, base, token) = &clients[c];
                let id = {
                    let mine = &ids.lock().unwrap()[c];
                    mine[i as usize % mine.len()].clone()
                };
                client
                    .get(format!("{base}/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    == 200
            }
        }
    };
    let read = phase(&format!("{label}: read by id"), read).await;
    (created, read)
}

/// `pgbench` inserting one 1 KiB row per transaction from 16 clients, in a database
/// of its own on the same cluster; returns transactions per second.
fn pgbench_inserts() -> f64 {
    let admin = strongroom_testkit::backend::postgres_admin_url().unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let db = format!("{base}/sr_pgbench");
    let psql = |url: &str, sql: &str| {
        let ok = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
            .status()
            .unwrap();
        assert!(ok.success(), "{sql}");
    };
    psql(&admin, "DROP DATABASE IF EXISTS sr_pgbench");
    psql(&admin, "CREATE DATABASE sr_pgbench");
    psql(
        &db,
        "CREATE TABLE rows (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body bytea NOT NULL)",
    );
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "INSERT INTO rows (tenant_id, body) VALUES ('00000000-0000-0000-0000-000000000001', convert_to(repeat('n', 1024), 'UTF8'));\n",
    )
    .unwrap();
    let out = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &secs().to_string(),
            "-f",
        ])
        .arg(script.path())
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let tps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("pgbench: {text}{}", String::from_utf8_lossy(&out.stderr)));
    println!("{:<34} {tps:>9.1} /s", "pgbench insert 1 KiB (16 clients)");
    psql(&admin, "DROP DATABASE sr_pgbench");
    tps
}

/// An attachment of [`SIZE`] up and down through `s` over HTTP/1.1 (MB/s each way).
async fn attachment_mbps(s: &TestServer, token: &str) -> (f64, f64) {
    let api = s.api();
    let rec = api
        .send_if(
            reqwest::Method::POST,
            "/v1/t/bench/records",
            token,
            None,
            Some(&json!({"type": "batch", "content": content(0)})),
        )
        .await;
    let id = rec.json()["id"].as_str().unwrap().to_owned();
    let block = bytes::Bytes::from(vec![3u8; 1 << 20]);
    let stream = futures_util::stream::iter(
        (0..SIZE >> 20).map(move |_| Ok::<_, std::io::Error>(block.clone())),
    );
    // HTTP/1.1, as a stock S3 client speaks it (uploads over HTTP/2 are issue 14's).
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&s.cert_pem()).unwrap()])
        .http1_only()
        .build()
        .unwrap();
    let start = Instant::now();
    let r = client
        .put(s.url(&format!("/v1/t/bench/records/{id}/attachments/big.bin")))
        .bearer_auth(token)
        .header("if-match", rec.etag.clone().unwrap())
        .header("content-type", "application/octet-stream")
        .header("content-length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(stream))
        .timeout(Duration::from_secs(1200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let up = SIZE as f64 / start.elapsed().as_secs_f64() / 1e6;
    let start = Instant::now();
    let mut r = client
        .get(s.url(&format!(
            "/v1/t/bench/records/{id}/versions/1/attachments/big.bin"
        )))
        .bearer_auth(token)
        .timeout(Duration::from_secs(1200))
        .send()
        .await
        .unwrap();
    let mut n = 0usize;
    while let Some(c) = r.chunk().await.unwrap() {
        n += c.len();
    }
    assert_eq!(n, SIZE);
    (up, SIZE as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// boto3's managed transfer (multipart, as `aws s3 cp`) of a [`SIZE`] file into the
/// test bucket and back (MB/s each way).
fn stock_client_mbps() -> (f64, f64) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), vec![3u8; SIZE]).unwrap();
    let script = "import boto3, os, sys, time\n\
        c = boto3.client('s3', endpoint_url=os.environ['SR_TEST_S3_ENDPOINT'], region_name='us-east-1', aws_access_key_id=os.environ['SR_TEST_S3_KEY_ID'], aws_secret_access_key=os.environ['SR_TEST_S3_SECRET'])\n\
        b = os.environ['SR_TEST_S3_BUCKET']\n\
        t = time.time(); c.upload_file(sys.argv[1], b, 'bench/stock.bin'); up = time.time() - t\n\
        t = time.time(); c.download_file(b, 'bench/stock.bin', sys.argv[1] + '.back'); down = time.time() - t\n\
        os.remove(sys.argv[1] + '.back')\n\
        print(up, down)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut t = text.split_whitespace().map(|x| x.parse::<f64>().unwrap());
    let (up, down) = (t.next().unwrap(), t.next().unwrap());
    (SIZE as f64 / up / 1e6, SIZE as f64 / down / 1e6)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        strongroom_testkit::backend::postgres_admin_url().is_some(),
        "run `. .ci/services.sh` first: it starts PostgreSQL and S3 and says where"
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strongroom"));
    println!(
        "records over HTTPS, {CLIENTS} clients, {} s per phase, 1 KiB content",
        secs()
    );
    let lite = start(bin, false, None).await;
    let writers = populate(&lite).await;
    let (sc, sr) = creates_and_reads("SQLite, 1 node", &[&lite], &writers).await;
    drop(lite);

    let a = start(bin, true, None).await;
    let writers = populate(&a).await;
    let (p1c, p1r) = creates_and_reads("PostgreSQL, 1 node", &[&a], &writers).await;
    let b = a.another_node(Some("[regions.eu]\n".into())).await;
    let (p2c, p2r) = creates_and_reads("PostgreSQL, 2 nodes", &[&a, &b], &writers).await;
    drop(b);
    let pgbench = pgbench_inserts();

    println!("\nattachments, {} MiB", SIZE >> 20);
    let token = a.api().sign_in("bench", &writers[0]).await.access;
    let (up, down) = attachment_mbps(&a, &token).await;
    let (raw_up, raw_down) = stock_client_mbps();
    println!(
        "{:<34} {up:>9.1} MB/s up, {down:.1} MB/s down",
        "through Strongroom to S3"
    );
    println!(
        "{:<34} {raw_up:>9.1} MB/s up, {raw_down:.1} MB/s down",
        "boto3 managed transfer"
    );

    println!("\nratios");
    println!(
        "PostgreSQL 1 node / SQLite: create {:.2}, read {:.2}",
        p1c / sc,
        p1r / sr
    );
    println!(
        "PostgreSQL 2 nodes / 1 node: create {:.2}, read {:.2}",
        p2c / p1c,
        p2r / p1r
    );
    println!(
        "PostgreSQL create (1 node) / pgbench insert: {:.2}",
        p1c / pgbench
    );
    println!(
        "PostgreSQL create (2 nodes) / pgbench insert: {:.2}",
        p2c / pgbench
    );
    println!(
        "S3 through Strongroom / boto3: up {:.2}, down {:.2}",
        up / raw_up,
        down / raw_down
    );
}
