//! Several stateless server nodes over one PostgreSQL database and one S3 bucket, and
//! what happens when either goes away. Ignored in the SQLite pass; the PostgreSQL
//! pass of `.ci/run` (`SR_TEST_BACKEND=postgres`, with a cluster and an S3 server on
//! loopback) runs them with `--include-ignored`, and each fails if run without it.

use std::path::Path;
use std::process::Stdio;

use reqwest::Method;
use serde_json::json;
use strongroom_testkit::backend;

use crate::records::{Lab, etag_of};
use crate::support::{Options, TWO_REGIONS, TestServer, bin};

macro_rules! postgres_only {
    () => {
        assert!(
            backend::postgres_selected(),
            "needs SR_TEST_BACKEND=postgres and the services of .ci/services.sh"
        );
    };
}

const SIGNER: &str = "this node now signs audit checkpoints";

/// `strongroom records verify` and `audit export` + `audit verify` for `tenant`,
/// through `s`'s CLI: hashes, signatures, audit bindings and the Merkle log.
async fn verify_everything(s: &TestServer, tenant: &str) {
    let out = s
        .cli(&["records", "verify", "--tenant", tenant], None)
        .await;
    assert!(
        out.status.success(),
        "records verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    static EXPORTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = s.dir.path().join(format!("export-{tenant}-{n}"));
    let out = s
        .cli(
            &[
                "audit",
                "export",
                "--tenant",
                tenant,
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vkey = s.cli(&["audit", "vkey", "--tenant", tenant], None).await;
    let vkey = String::from_utf8(vkey.stdout).unwrap();
    let out = s
        .cli(
            &[
                "audit",
                "verify",
                "--dir",
                dir.to_str().unwrap(),
                "--vkey",
                vkey.trim(),
            ],
            None,
        )
        .await;
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: the PostgreSQL pass of .ci/run"]
async fn two_nodes_on_one_database_and_bucket_write_one_tenant_without_losing_anything() {
    postgres_only!();
    let lab = Lab::on(crate::support::start().await, "shared").await;
    let b = lab.s.another_node(Some(TWO_REGIONS.into())).await;
    let (_, author_a) = lab
        .user("shared", "al@shared.example", "Al Author", &["preparer"])
        .await;
    let api_b = b.api();
    let author_b = api_b.sign_in("shared", "al@shared.example").await.access;

    // 40 creates at once, half through each node: every one lands, once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (api, token) = if i % 2 == 0 {
            (lab.api.clone(), author_a.clone())
        } else {
            (api_b.clone(), author_b.clone())
        };
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"type": "batch", "content": {"batch_no": format!("B-{i}"), "quantity": i}});
            api.send_if(
                Method::POST,
                "/v1/t/shared/records",
                &token,
                None,
                Some(&body),
            )
            .await
            .ok(201)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);

    // One draft saved alternately through both nodes, each save conditional on the
    // last: revisions 1..=11 with no gap and no lost save; a stale ETag loses on
    // either node.
    let rec = lab
        .create("shared", &author_a, json!({"batch_no": "X", "quantity": 0}))
        .await;
    let base = format!(
        "/v1/t/shared/records/{}",
        rec.json()["id"].as_str().unwrap()
    );
    let stale = etag_of(&rec);
    let mut etag = stale.clone();
    for round in 1..=10 {
        let (api, token) = if round % 2 == 0 {
            (&lab.api, &author_a)
        } else {
            (&api_b, &author_b)
        };
        let saved = api
            .send_if(
                Method::PUT,
                &format!("{base}/content"),
                token,
                Some(&etag),
                Some(&json!({"content": {"batch_no": "X", "quantity": round}})),
            )
            .await;
        saved.ok(200);
        etag = etag_of(&saved);
    }
    let late = api_b
        .send_if(
            Method::PUT,
            &format!("{base}/content"),
            &author_b,
            Some(&stale),
            Some(&json!({"content": {"batch_no": "X", "quantity": 99}})),
        )
        .await;
    late.problem(412, "precondition-failed");
    let seen = lab.api.get(&base, &author_a).await.ok(200);
    assert_eq!(seen["current"]["revision"], 11);
    assert_eq!(seen["current"]["content"]["quantity"], 10);

    // An attachment uploaded through one node is read back through the other.
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let up = lab
        .api
        .send_raw(
            Method::PUT,
            &format!("{base}/attachments/data.bin"),
            &author_a,
            &[
                ("if-match", &etag),
                ("content-type", "application/octet-stream"),
            ],
            Some(body.clone()),
        )
        .await;
    up.ok(201);
    let got = b
        .client()
        .get(b.url(&format!("{base}/versions/1/attachments/data.bin")))
        .bearer_auth(&author_b)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), body);

    verify_everything(&b, "shared").await;

    // Exactly one node signs checkpoints; when it goes, the other takes over.
    let wait_for_signer = async |s: &TestServer| {
        for _ in 0..150 {
            if s.log().contains(SIGNER) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        false
    };
    let (a_leads, b_leads) = (lab.s.log().contains(SIGNER), b.log().contains(SIGNER));
    assert!(a_leads != b_leads, "one signer: a {a_leads}, b {b_leads}");
    let (leader, standby) = if a_leads { (lab.s, b) } else { (b, lab.s) };
    assert!(
        standby
            .log()
            .contains("another node signs audit checkpoints")
    );
    leader.stop().await;
    assert!(
        wait_for_signer(&standby).await,
        "the standby never took over"
    );
    verify_everything(&standby, "shared").await;
}

/// Runs `sql` as the superuser on the cluster's `postgres` database.
fn admin_sql(sql: &str) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(backend::postgres_admin_url().unwrap())
        .args(["-c", sql])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: the PostgreSQL pass of .ci/run"]
async fn the_database_going_away_is_a_503_without_partial_writes_and_service_resumes() {
    postgres_only!();
    let lab = Lab::on(crate::support::start().await, "outage").await;
    let (_, author) = lab
        .user("outage", "al@outage.example", "Al Author", &["preparer"])
        .await;
    let db = backend::database_name(lab.s.dir.path(), "eu");
    // Writes in flight while every connection of the server is cut and no new one
    // is let in: each ends in a 201 or a 503 problem, never a 500.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (api, token) = (lab.api.clone(), author.clone());
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"type": "batch", "content": {"batch_no": format!("O-{i}"), "quantity": i}});
            api.send_if(
                Method::POST,
                "/v1/t/outage/records",
                &token,
                None,
                Some(&body),
            )
            .await
        }));
    }
    admin_sql(&format!(
        "ALTER DATABASE {db} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ));
    let mut created = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            503 => {
                r.problem(503, "unavailable");
            }
            other => panic!("{other}: {}\n{}", r.json(), lab.s.log()),
        }
    }
    // Down: writes and reads of the region are 503 problems; readiness says so; the
    // control plane (another database) still answers.
    let body = json!({"type": "batch", "content": {"batch_no": "down", "quantity": 1}});
    lab.api
        .send_if(
            Method::POST,
            "/v1/t/outage/records",
            &author,
            None,
            Some(&body),
        )
        .await
        .problem(503, "unavailable");
    let ready = lab
        .s
        .client()
        .get(lab.s.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // Back: the same server process serves again, on new connections.
    admin_sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
    let mut back = false;
    for _ in 0..50 {
        let r = lab
            .api
            .send_if(
                Method::POST,
                "/v1/t/outage/records",
                &author,
                None,
                Some(&body),
            )
            .await;
        if r.status == 201 {
            back = true;
            break;
        }
        r.problem(503, "unavailable");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(back, "service did not resume");
    // Nothing partial: every stored record has its audit entries and verifies, and
    // every acknowledged create is there.
    let listed = lab
        .api
        .get("/v1/t/outage/records?type=batch", &author)
        .await
        .ok(200);
    let n = listed["items"].as_array().unwrap().len();
    assert!(
        n > created,
        "{n} stored, {created} acknowledged before the outage"
    );
    verify_everything(&lab.s, "outage").await;
}

/// An S3 server of this test's own (no authentication), so that it can be stopped.
struct OwnS3 {
    child: std::process::Child,
    endpoint: String,
}

impl OwnS3 {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let script = format!(
            "import boto3, time\nfor _ in range(100):\n    try:\n        boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', aws_access_key_id='k', aws_secret_access_key='s').create_bucket(Bucket='own'); break\n    except Exception:\n        time.sleep(0.1)\nelse:\n    raise SystemExit('moto did not start')\n"
        );
        let ok = std::process::Command::new("python3")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(ok.success());
        Self { child, endpoint }
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: the PostgreSQL pass of .ci/run"]
async fn an_s3_outage_fails_attachments_with_503_while_metadata_keeps_working() {
    postgres_only!();
    let mut s3 = OwnS3::start();
    let env: Vec<(String, String)> = [
        ("ENDPOINT", s3.endpoint.as_str()),
        ("BUCKET", "own"),
        ("ACCESS_KEY_ID", "k"),
        ("SECRET_ACCESS_KEY", "s"),
        ("PATH_STYLE", "true"),
        ("ALLOW_HTTP", "true"),
        ("PREFIX", ""),
    ]
    .iter()
    .map(|(k, v)| (format!("STRONGROOM_REGIONS__EU__S3__{k}"), (*v).to_owned()))
    .collect();
    let s = TestServer::start_with(
        bin(),
        Options {
            config: Some(TWO_REGIONS.into()),
            env,
            ..Options::default()
        },
    )
    .await;
    let lab = Lab::on(s, "s3down").await;
    let (_, author) = lab
        .user("s3down", "al@s3down.example", "Al Author", &["preparer"])
        .await;
    let rec = lab
        .create("s3down", &author, json!({"batch_no": "S", "quantity": 1}))
        .await;
    let base = format!(
        "/v1/t/s3down/records/{}",
        rec.json()["id"].as_str().unwrap()
    );
    let up = lab
        .api
        .send_raw(
            Method::PUT,
            &format!("{base}/attachments/a.bin"),
            &author,
            &[
                ("if-match", &etag_of(&rec)),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![7; 10_000]),
        )
        .await;
    up.ok(201);
    let etag = etag_of(&up);
    let _ = s3.child.kill();
    let _ = s3.child.wait();

    let get = lab
        .api
        .get(&format!("{base}/versions/1/attachments/a.bin"), &author)
        .await;
    get.problem(503, "unavailable");
    let put = lab
        .api
        .send_raw(
            Method::PUT,
            &format!("{base}/attachments/b.bin"),
            &author,
            &[
                ("if-match", &etag),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![8; 10_000]),
        )
        .await;
    put.problem(503, "unavailable");
    // Metadata: reads, lists and record writes still work.
    let seen = lab.api.get(&base, &author).await.ok(200);
    assert_eq!(
        seen["current"]["revision"], 2,
        "the failed upload changed nothing"
    );
    lab.create("s3down", &author, json!({"batch_no": "T", "quantity": 2}))
        .await
        .ok(201);
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: the PostgreSQL pass of .ci/run"]
async fn a_wrong_database_password_or_s3_secret_fails_at_start_naming_the_setting() {
    postgres_only!();
    let first = crate::support::start().await;
    let (_, dir) = first.stop().await;
    for (var, secret, setting) in [
        (
            "STRONGROOM_DATABASE__PASSWORD",
            "wrong-db-pa55word-x1",
            "database.password",
        ),
        (
            "STRONGROOM_REGIONS__EU__S3__SECRET_ACCESS_KEY",
            "wrong-s3-s3cret-x2",
            "regions.eu.s3",
        ),
    ] {
        if setting.contains("s3") && !backend::s3_configured() {
            continue;
        }
        let kept = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), kept.path());
        let err = TestServer::try_start(
            bin(),
            Options {
                config: Some(TWO_REGIONS.into()),
                env: vec![(var.into(), secret.into())],
                dir: Some(kept),
                ..Options::default()
            },
        )
        .await
        .expect_err("started with a wrong secret");
        assert!(err.0.contains(setting), "{}", err.0);
        assert!(!err.0.contains(secret), "the secret was printed: {}", err.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::set_permissions(&dest, e.metadata().unwrap().permissions()).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL and S3: the PostgreSQL pass of .ci/run"]
async fn nothing_reaches_the_database_or_the_bucket_in_clear() {
    postgres_only!();
    let lab = Lab::on(crate::support::start().await, "clear").await;
    let (_, author) = lab
        .user("clear", "al@clear.example", "Al Author", &["preparer"])
        .await;
    let marker = "PLAINTEXT-MARKER-5150";
    let rec = lab
        .create(
            "clear",
            &author,
            json!({"batch_no": "C-1", "quantity": 1, "notes": marker}),
        )
        .await;
    let base = format!("/v1/t/clear/records/{}", rec.json()["id"].as_str().unwrap());
    lab.api
        .send_raw(
            Method::PUT,
            &format!("{base}/attachments/m.txt"),
            &author,
            &[("if-match", &etag_of(&rec)), ("content-type", "text/plain")],
            Some(marker.repeat(1000).into_bytes()),
        )
        .await
        .ok(201);
    let mut images = vec![
        backend::dump_region(lab.s.dir.path(), "eu"),
        backend::dump_region(lab.s.dir.path(), "control"),
    ];
    if let Some(objects) = backend::bucket_objects(lab.s.dir.path()) {
        assert!(!objects.is_empty(), "the attachment is in the bucket");
        images.extend(objects);
    }
    for image in images {
        assert!(
            image.windows(marker.len()).all(|w| w != marker.as_bytes()),
            "plaintext in a dump or an object"
        );
    }
}
