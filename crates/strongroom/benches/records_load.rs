//! Records over HTTPS with 16 concurrent clients: create, read, update and sign
//! throughput for 1 KiB records, beside the raw SQLite durable insert rate of the same
//! payload; attachment upload/download MB/s beside `openssl speed` AES-256-GCM and a
//! raw file copy, all in one run on one machine (only the ratios mean anything).
//!
//! `cargo bench -p strongroom --bench records_load` (RECORDS_SECS per phase, default 8).

// A bench reports on stdout and takes its phase length from the environment.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
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

fn secs() -> u64 {
    std::env::var("RECORDS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

fn content(i: u64) -> Value {
    // 1 KiB of JSON content.
    json!({"batch_no": format!("B-{i}"), "quantity": i, "notes": "n".repeat(980)})
}

/// Runs `op` from 16 clients for the phase's duration; returns operations per second.
async fn phase<F, Fut>(name: &str, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (op, done, failed) = (op.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    if op(c, i).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
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
        "{name:<28} {rate:>9.1} /s  ({} ok, {} failed)",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    rate
}

async fn raw_sqlite_rate() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE r (id INTEGER PRIMARY KEY, body BLOB NOT NULL);",
    )
    .unwrap();
    let body = serde_json::to_vec(&content(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs());
    let start = Instant::now();
    let mut n = 0u64;
    let mut insert = conn.prepare("INSERT INTO r (body) VALUES (?1)").unwrap();
    while Instant::now() < deadline {
        // One row per transaction, durable at commit (synchronous=FULL).
        insert.execute([&body]).unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("{:<28} {rate:>9.1} /s", "raw SQLite insert (FULL)");
    rate
}

fn openssl_gcm_mbps() -> f64 {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-evp",
            "aes-256-gcm",
            "-bytes",
            "65536",
            "-seconds",
            "2",
        ])
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line: "AES-256-GCM  <kB/s>k"
    let line = text.lines().last().unwrap_or_default();
    let kbs: f64 = line
        .split_whitespace()
        .last()
        .and_then(|v| v.trim_end_matches('k').parse().ok())
        .unwrap_or(0.0);
    let mbps = kbs * 1000.0 / 1e6;
    println!("{:<28} {mbps:>9.1} MB/s", "openssl aes-256-gcm 64 KiB");
    mbps
}

fn file_copy_mbps(size: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, vec![7u8; size]).unwrap();
    let start = Instant::now();
    std::fs::copy(&src, dir.path().join("dst")).unwrap();
    std::fs::File::open(dir.path().join("dst"))
        .unwrap()
        .sync_all()
        .unwrap();
    let mbps = size as f64 / start.elapsed().as_secs_f64() / 1e6;
    println!("{:<28} {mbps:>9.1} MB/s", "raw file copy + fsync");
    mbps
}

const SIZE: usize = 256 << 20;

/// Uploads then downloads a 256 MiB attachment on a new record; returns MB/s each way.
async fn attachment_round_trip(
    api: &strongroom_testkit::Api,
    client: &reqwest::Client,
    s: &TestServer,
    token: &str,
) -> (f64, f64) {
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
    let start = Instant::now();
    let r = client
        .put(s.url(&format!("/v1/t/bench/records/{id}/attachments/big.bin")))
        .bearer_auth(token)
        .header("if-match", rec.etag.clone().unwrap())
        .header("content-type", "application/octet-stream")
        .header("content-length", SIZE.to_string())
        .body(reqwest::Body::wrap_stream(stream))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let up = SIZE as f64 / start.elapsed().as_secs_f64() / 1e6;
    let start = Instant::now();
    let mut r = client
        .get(s.url(&format!(
            "/v1/t/bench/records/{id}/versions/1/attachments/big.bin"
        )))
        .bearer_auth(token)
        .timeout(Duration::from_secs(600))
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

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_strongroom"));
    let s = TestServer::start_with(
        bin,
        Options {
            config: Some("[regions.eu]\n".into()),
            ..Options::default()
        },
    )
    .await;
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
        "signature_policy": {"steps": [
            {"meaning": "authored", "permission": "records:write"},
            {"meaning": "approved", "permission": "records:approve"}]},
        "searchable": ["batch_no"]
    });
    api.put("/v1/t/bench/record-types/batch", &admin, def)
        .await
        .ok(200);
    let mut writers = Vec::new();
    let mut signers = Vec::new();
    for c in 0..CLIENTS {
        let w = format!("w{c}@bench.example");
        let body = json!({"email": w, "password": USER_PASSWORD, "roles": ["preparer"], "full_name": format!("Writer {c}")});
        api.post("/v1/t/bench/users", Some(&admin), body)
            .await
            .ok(201);
        writers.push(api.sign_in("bench", &w).await.access);
        let a = format!("a{c}@bench.example");
        let body = json!({"email": a, "password": USER_PASSWORD, "roles": ["reviewer"], "full_name": format!("Approver {c}")});
        api.post("/v1/t/bench/users", Some(&admin), body)
            .await
            .ok(201);
        signers.push((a.clone(), api.sign_in("bench", &a).await.access));
    }
    let client = s.client();
    let url = |p: &str| s.url(p);
    println!(
        "records over HTTPS, {CLIENTS} clients, {} s per phase, 1 KiB content",
        secs()
    );

    // Create.
    let ids: Arc<std::sync::Mutex<Vec<(usize, String, String)>>> = Arc::default();
    let create = {
        let (client, base, writers, ids) = (
            client.clone(),
            url("/v1/t/bench/records"),
            writers.clone(),
            ids.clone(),
        );
        move |c: usize, i: u64| {
            let (client, base, token, ids) = (
                client.clone(),
                base.clone(),
                writers[c].clone(),
                ids.clone(),
            );
            async move {
                let r = client
                    .post(&base)
                    .bearer_auth(&token)
                    .json(&json!({"type": "batch", "content": content(i)}))
                    .send()
                    .await
                    .unwrap();
                let ok = r.status() == 201;
                let etag = r
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_owned());
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if ok && let Some(e) = etag {
                    ids.lock()
                        .unwrap()
                        .push((c, v["id"].as_str().unwrap().to_owned(), e));
                }
                ok
            }
        }
    };
    let create_rate = phase("create", create).await;
    let all: Vec<(usize, String, String)> = ids.lock().unwrap().clone();

    // Read by id.
    let read = {
        let (client, s_base, writers, all) = (
            client.clone(),
            url("/v1/t/bench/records/"),
            writers.clone(),
            all.clone(),
        );
        move |c: usize, i: u64| {
            let (client, token) = (client.clone(), writers[c].clone());
            let id = all[(i as usize * CLIENTS + c) % all.len()].1.clone();
            let u = format!("{s_base}{id}");
            async move {
                client
                    .get(&u)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    == 200
            }
        }
    };
    let read_rate = phase("read by id", read).await;

    // Update: each client its own record, following its ETag.
    let mine: Vec<Arc<tokio::sync::Mutex<(String, String)>>> = (0..CLIENTS)
        .map(|c| {
            let (_, id, e) = all.iter().find(|(o, _, _)| *o == c).unwrap().clone();
            Arc::new(tokio::sync::Mutex::new((id, e)))
        })
        .collect();
    let update = {
        let (client, base, writers, mine) = (
            client.clone(),
            url("/v1/t/bench/records/"),
            writers.clone(),
            mine.clone(),
        );
        move |c: usize, i: u64| {
            let (client, base, token, slot) = (
                client.clone(),
                base.clone(),
                writers[c].clone(),
                mine[c].clone(),
            );
            async move {
                let mut slot = slot.lock().await;
                let r = client
                    .put(format!("{base}{}/content", slot.0))
                    .bearer_auth(&token)
                    .header("if-match", &slot.1)
                    .json(&json!({"content": content(i)}))
                    .send()
                    .await
                    .unwrap();
                if r.status() != 200 {
                    return false;
                }
                slot.1 = r.headers()["etag"].to_str().unwrap().to_owned();
                true
            }
        }
    };
    let update_rate = phase("update (new revision)", update).await;

    // Sign: records submitted and authored by their writer; approvers sign them.
    let mut queue = Vec::new();
    for (c, id, etag) in all
        .iter()
        .filter(|(_, id, _)| !mine.iter().any(|m| m.try_lock().unwrap().0 == *id))
        .take(4000)
    {
        let r = client
            .post(url(&format!("/v1/t/bench/records/{id}/submit")))
            .bearer_auth(&writers[*c])
            .header("if-match", etag)
            .send()
            .await
            .unwrap();
        let e = r.headers()["etag"].to_str().unwrap().to_owned();
        let r = client.post(url(&format!("/v1/t/bench/records/{id}/versions/1/signatures"))).bearer_auth(&writers[*c])
            .header("if-match", &e)
            .json(&json!({"meaning": "authored", "password": USER_PASSWORD, "email": format!("w{c}@bench.example")}))
            .send().await.unwrap();
        if r.status() != 201 {
            continue;
        }
        queue.push((id.clone(), r.headers()["etag"].to_str().unwrap().to_owned()));
        if queue.len() >= 1500 {
            break;
        }
    }
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let sign = {
        let (client, base, signers, queue) = (
            client.clone(),
            url("/v1/t/bench/records/"),
            signers.clone(),
            queue.clone(),
        );
        move |c: usize, _: u64| {
            let (client, base, (email, token)) = (client.clone(), base.clone(), signers[c].clone());
            let next = queue.lock().unwrap().pop();
            async move {
                let Some((id, etag)) = next else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return false;
                };
                let r = client
                    .post(format!("{base}{id}/versions/1/signatures"))
                    .bearer_auth(&token)
                    .header("if-match", &etag)
                    .json(
                        &json!({"meaning": "approved", "password": USER_PASSWORD, "email": email}),
                    )
                    .send()
                    .await
                    .unwrap();
                r.status() == 201
            }
        }
    };
    let sign_rate = phase("sign (argon2id re-auth)", sign).await;

    let raw = raw_sqlite_rate().await;

    // Attachments, over HTTP/1.1 and HTTP/2.
    let cert = reqwest::Certificate::from_pem(&s.cert_pem()).unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only([cert])
        .http1_only()
        .build()
        .unwrap();
    let mut transfer = Vec::new();
    for (proto, c) in [("HTTP/1.1", &h1), ("HTTP/2", &client)] {
        let (up, down) = attachment_round_trip(&api, c, &s, &writers[0]).await;
        println!("{:<28} {up:>9.1} MB/s", format!("upload 256 MiB {proto}"));
        println!(
            "{:<28} {down:>9.1} MB/s",
            format!("download 256 MiB {proto}")
        );
        transfer.push((proto, up, down));
    }
    let gcm = openssl_gcm_mbps();
    let copy = file_copy_mbps(SIZE);

    println!("\nratios (same run):");
    println!("create / raw SQLite insert   {:.2}", create_rate / raw);
    println!("read / raw SQLite insert     {:.2}", read_rate / raw);
    println!("update / raw SQLite insert   {:.2}", update_rate / raw);
    println!("sign / raw SQLite insert     {:.3}", sign_rate / raw);
    for (proto, up, down) in transfer {
        println!("upload {proto:<8} / openssl GCM    {:.2}", up / gcm);
        println!("download {proto:<8} / openssl GCM  {:.2}", down / gcm);
        println!("upload {proto:<8} / file copy      {:.2}", up / copy);
        println!("download {proto:<8} / file copy    {:.2}", down / copy);
    }
    s.stop().await;
}
