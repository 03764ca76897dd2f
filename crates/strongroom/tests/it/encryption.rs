//! Encryption at rest against the real server, real SQLite files and a real SoftHSM2
//! token: no plaintext on disk, tamper detection through storage, rotation under load,
//! crypto-shredding, and the HSM's availability gating readiness and writes.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use strongroom_core::access::{self, PlatformAction};
use strongroom_core::platform::{Platform, PlatformError};
use strongroom_core::secret::SecretBytes;
use strongroom_core::store::Store;
use strongroom_core::tenant::Slug;
use strongroom_testkit::SoftHsm;

use crate::support::{Options, TWO_REGIONS, TestServer, bin, create_tenant, expect_problem};

/// Opens the server's data directory in this process, the way the CLI does.
async fn local_platform(s: &TestServer) -> (Arc<Platform>, Arc<dyn Store>) {
    let (config, opened) = open_data_dir(s).await;
    let store = opened.store.clone();
    (strongroom::platform(&config, opened).await.unwrap(), store)
}

/// The server's configuration and its data directory's storage and keys.
async fn open_data_dir(
    s: &TestServer,
) -> (strongroom_core::config::Config, strongroom::datadir::Opened) {
    let file = s.dir.path().join("strongroom.toml");
    let config = strongroom_core::config::Config::load(
        file.exists().then_some(file.as_path()),
        s.env().to_vec(),
        vec![(
            "data_dir",
            toml::Value::String(s.data_dir().display().to_string()),
        )],
    )
    .unwrap();
    let opened = strongroom::datadir::DataDir::existing(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    (config, opened)
}

async fn put_secret(
    s: &TestServer,
    token: &str,
    tenant: &str,
    name: &str,
    value: &str,
) -> reqwest::Response {
    crate::support::call_json(
        s,
        reqwest::Method::PUT,
        &format!("/v1/tenants/{tenant}/secrets/{name}"),
        token,
        &json!({ "value": value }),
    )
    .await
}

async fn new_tenant(s: &TestServer, token: &str, slug: &str) {
    let resp = create_tenant(
        s,
        token,
        json!({"slug": slug, "display_name": slug, "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// The storage scope of a tenant, as the platform's key management gets it.
async fn scope_of(p: &Platform, t: &str) -> strongroom_core::access::TenantScope {
    let tenant = p
        .tenant(&crate::support::local_admin(), &slug(t))
        .await
        .unwrap();
    let ps = access::authorize_platform(&crate::support::local_admin(), PlatformAction::ManageKeys)
        .unwrap();
    access::provisioning_scope(&ps, &tenant)
}

/// An audit event for writes the tests make directly through the store (tampering).
fn tamper(scope: &strongroom_core::access::TenantScope) -> strongroom_core::store::AuditEvent {
    use strongroom_core::audit::entry::{Action, NewEntry, Target};
    let target = Target {
        id: "tamper".into(),
        kind: "test".into(),
        version: None,
    };
    strongroom_core::store::AuditEvent {
        entry: NewEntry::by(scope, Action::TenantSecretSet, target, None),
        at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

/// Every file under `dir` with its bytes (databases, WAL files, blobs, keys).
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    all_files(dir)
        .into_iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p.display().to_string())
        .collect()
}

/// A blob body: 300 KiB with a marker repeated through it (spans several chunks).
fn blob_body(marker: &str) -> Vec<u8> {
    marker
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(300 * 1024)
        .collect()
}

async fn read_blob(p: &Platform, tenant: &str, id: &str) -> Result<Vec<u8>, PlatformError> {
    let mut out = Vec::new();
    p.read_blob(&crate::support::local_admin(), &slug(tenant), id, &mut out)
        .await?;
    Ok(out)
}

#[tokio::test]
async fn sealed_values_and_blobs_never_reach_disk_in_clear() {
    crate::support::sqlite_only!(
        "scans the SQLite files and blob files (on PostgreSQL and S3: scale_out::nothing_reaches_the_database_or_the_bucket_in_clear)"
    );
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "plaintext-probe").await;
    let secret = "MARKER-client-secret-9d1c4e";
    let resp = put_secret(&s, &token, "plaintext-probe", "oidc-client", secret).await;
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(
        (info["version"].as_u64(), info["key_version"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        !info.to_string().contains(secret),
        "the value is never echoed"
    );

    let (p, _) = local_platform(&s).await;
    let body = blob_body("MARKER-batch-record-b7f2|");
    p.put_blob(
        &crate::support::local_admin(),
        &slug("plaintext-probe"),
        "att-1",
        &mut body.as_slice(),
    )
    .await
    .unwrap();
    assert_eq!(
        read_blob(&p, "plaintext-probe", "att-1").await.unwrap(),
        body
    );
    let opened = p
        .tenant_secret(
            &crate::support::local_admin(),
            &slug("plaintext-probe"),
            "oidc-client",
        )
        .await
        .unwrap();
    assert_eq!(opened.expose(), secret.as_bytes());
    drop(p);
    let (_, dir) = s.stop().await;
    let data = dir.path().join("data");

    // The scan sees the databases' contents (the slug is stored in clear) and the blob.
    assert!(
        !files_containing(&data, b"plaintext-probe").is_empty(),
        "scanner reads the databases"
    );
    let blob_files: Vec<_> = all_files(&data)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/blobs/"))
        .collect();
    assert_eq!(blob_files.len(), 1, "one blob file");
    assert!(
        blob_files[0].1.len() > body.len(),
        "the blob file holds the whole (sealed) body"
    );
    for marker in ["MARKER-client-secret", "MARKER-batch-record"] {
        assert_eq!(
            files_containing(&data, marker.as_bytes()),
            Vec::<String>::new(),
            "{marker} found in clear"
        );
    }
}

#[tokio::test]
async fn ciphertexts_moved_between_rows_tenants_or_files_do_not_open() {
    crate::support::sqlite_only!(
        "moves rows and blob files within the SQLite file and the data directory"
    );
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    for t in ["swap-a", "swap-b"] {
        new_tenant(&s, &token, t).await;
        for name in ["one", "two"] {
            assert_eq!(
                put_secret(&s, &token, t, name, &format!("{t}/{name}"))
                    .await
                    .status(),
                200
            );
        }
    }
    assert_eq!(
        put_secret(&s, &token, "swap-a", "one", "swap-a/one v2")
            .await
            .status(),
        200
    );
    let (p, store) = local_platform(&s).await;
    let (a, b) = (scope_of(&p, "swap-a").await, scope_of(&p, "swap-b").await);
    let kind = strongroom_core::objects::KIND_TENANT_SECRET;
    let a_one = store.sealed(&a, kind, "one").await.unwrap().unwrap();
    let a_two = store.sealed(&a, kind, "two").await.unwrap().unwrap();
    assert_ne!(a_one.sealed, a_two.sealed);
    let b_one = store.sealed(&b, kind, "one").await.unwrap().unwrap();
    let secret = |t: &'static str, n: &'static str| {
        let p = p.clone();
        async move {
            p.tenant_secret(&crate::support::local_admin(), &slug(t), n)
                .await
        }
    };
    let integrity = |r: Result<SecretBytes, PlatformError>, what: &str| match r {
        Err(e @ PlatformError::Internal(_)) => {
            let m = strongroom_http::problem::chain(&e);
            assert!(m.contains("authentication failed"), "{what}: {m}")
        }
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(v) => panic!(
            "{what}: opened as {:?}",
            String::from_utf8_lossy(v.expose())
        ),
    };

    // Another tenant's ciphertext of the same name and version.
    let b_two = store.sealed(&b, kind, "two").await.unwrap().unwrap();
    assert_eq!((a_two.version, b_two.version), (1, 1));
    assert!(
        store
            .put_sealed(&a, kind, &b_two, 1, &tamper(&a))
            .await
            .unwrap()
    );
    integrity(secret("swap-a", "two").await, "another tenant");
    // Another row of the same tenant at the same version.
    assert_eq!(a_one.version, 2);
    let moved = strongroom_core::store::StoredSealed {
        id: "two".into(),
        version: 2,
        ..a_one.clone()
    };
    assert!(
        store
            .put_sealed(&a, kind, &moved, 1, &tamper(&a))
            .await
            .unwrap()
    );
    integrity(secret("swap-a", "two").await, "another row");
    // The same object's previous version presented as the current one.
    let mut rollback = a_one.clone();
    rollback.version = 3; // sealed as version 2, presented as version 3
    assert!(
        store
            .put_sealed(&a, kind, &rollback, 2, &tamper(&a))
            .await
            .unwrap()
    );
    integrity(secret("swap-a", "one").await, "another version");
    // A flipped bit.
    let mut flipped = b_one.clone();
    let last = flipped.sealed.len() - 1;
    flipped.sealed[last] ^= 1;
    flipped.version = 2;
    assert!(
        store
            .put_sealed(&b, kind, &flipped, 1, &tamper(&b))
            .await
            .unwrap()
    );
    integrity(secret("swap-b", "one").await, "flipped bit");
    // Untouched values still open.
    assert_eq!(
        secret("swap-b", "two").await.unwrap().expose(),
        b"swap-b/two"
    );

    // Blobs: swapped, truncated and reordered files never yield data.
    let x = blob_body("blob-x|");
    let y = blob_body("blob-y|");
    for (id, body) in [("x", &x), ("y", &y)] {
        p.put_blob(
            &crate::support::local_admin(),
            &slug("swap-a"),
            id,
            &mut body.as_slice(),
        )
        .await
        .unwrap();
    }
    let bx = store.blob(&a, "x").await.unwrap().unwrap();
    let by = store.blob(&a, "y").await.unwrap().unwrap();
    let dir = s
        .data_dir()
        .join("regions/eu/blobs")
        .join(a.tenant().as_uuid().to_string());
    let (fx, fy) = (dir.join(&bx.file), dir.join(&by.file));
    let (cx, cy) = (std::fs::read(&fx).unwrap(), std::fs::read(&fy).unwrap());
    std::fs::write(&fx, &cy).unwrap();
    assert!(read_blob(&p, "swap-a", "x").await.is_err(), "swapped blob");
    std::fs::write(&fx, &cx[..cx.len() - 70_000]).unwrap();
    assert!(
        read_blob(&p, "swap-a", "x").await.is_err(),
        "truncated at a chunk boundary region"
    );
    let (h, chunk) = (strongroom_core::keys::stream::HEADER_LEN, 65_536 + 16);
    let mut reordered = cx.clone();
    reordered[h..h + chunk].copy_from_slice(&cx[h + chunk..h + 2 * chunk]);
    reordered[h + chunk..h + 2 * chunk].copy_from_slice(&cx[h..h + chunk]);
    std::fs::write(&fx, &reordered).unwrap();
    assert!(
        read_blob(&p, "swap-a", "x").await.is_err(),
        "reordered chunks"
    );
    std::fs::write(&fx, &cx).unwrap();
    assert_eq!(
        read_blob(&p, "swap-a", "x").await.unwrap(),
        x,
        "restored file opens"
    );
    assert_eq!(read_blob(&p, "swap-a", "y").await.unwrap(), y);
}

#[tokio::test]
async fn rotation_under_concurrent_reads_and_writes_loses_nothing() {
    crate::support::sqlite_only!("reads blob files from the data directory");
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "rotating").await;
    let (p, store) = local_platform(&s).await;
    let t = slug("rotating");
    let me = crate::support::local_admin();
    for i in 0..5 {
        let body = blob_body(&format!("blob-{i}|"));
        p.put_blob(&me, &t, &format!("b{i}"), &mut body.as_slice())
            .await
            .unwrap();
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (p, t) = (p.clone(), t.clone());
            tokio::spawn(async move {
                for round in 0..25 {
                    for k in 0..3 {
                        let v = SecretBytes::new(format!("w{w}-k{k}-r{round}").into_bytes());
                        p.set_tenant_secret(
                            &crate::support::local_admin(),
                            &t,
                            &strongroom_core::objects::SecretName::parse(&format!("w{w}-k{k}"))
                                .unwrap(),
                            &v,
                        )
                        .await
                        .unwrap();
                        let got = p
                            .tenant_secret(
                                &crate::support::local_admin(),
                                &t,
                                &format!("w{w}-k{k}"),
                            )
                            .await
                            .unwrap();
                        assert_eq!(got.expose(), v.expose(), "read-your-write during rotation");
                    }
                }
            })
        })
        .collect();
    let reader = {
        let (p, t) = (p.clone(), t.clone());
        tokio::spawn(async move {
            for _ in 0..10 {
                for i in 0..5 {
                    let mut out = Vec::new();
                    p.read_blob(
                        &crate::support::local_admin(),
                        &t,
                        &format!("b{i}"),
                        &mut out,
                    )
                    .await
                    .unwrap();
                    assert_eq!(out, blob_body(&format!("blob-{i}|")));
                }
            }
        })
    };
    let mut versions = Vec::new();
    for round in 0..4 {
        versions.push(p.rotate_data_key(&me, &t, None).await.unwrap());
        if round == 1 {
            p.rotate_kek(&me, &t, None, Some("yearly rotation".into()))
                .await
                .unwrap();
        }
        p.reencrypt(&me, &t, 7).await.unwrap();
    }
    for w in writers {
        w.await.unwrap();
    }
    reader.await.unwrap();
    assert_eq!(versions, vec![2, 3, 4, 5]);
    // Drain the re-encryption; afterwards everything is under the current key.
    let mut progress = p.reencrypt(&me, &t, 1000).await.unwrap();
    while progress.remaining > 0 {
        progress = p.reencrypt(&me, &t, 1000).await.unwrap();
    }
    assert_eq!(progress.current_key, 5);
    for w in 0..4 {
        for k in 0..3 {
            let got = p
                .tenant_secret(&me, &t, &format!("w{w}-k{k}"))
                .await
                .unwrap();
            assert_eq!(got.expose(), format!("w{w}-k{k}-r24").as_bytes());
        }
    }
    for i in 0..5 {
        assert_eq!(
            read_blob(&p, "rotating", &format!("b{i}")).await.unwrap(),
            blob_body(&format!("blob-{i}|"))
        );
    }
    // Every blob write and every re-encrypted object is in the trail, in the same
    // transaction as the change (`key.reencrypt` only when a move happened: at least
    // one per blob, which all started under the first key).
    let scope = scope_of(&p, "rotating").await;
    let count = |action: &'static str| {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let filter = strongroom_core::store::AuditFilter {
                action: Some(action.into()),
                ..Default::default()
            };
            store
                .audit_query(&scope, &filter, 0, 100_000)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("blob.put").await, 5);
    let moved = count("key.reencrypt").await;
    assert!(moved >= 5, "each blob moved at least once: {moved}");
    // Re-encryption replaced blob files rather than keeping old copies.
    let tenant = p.tenant(&me, &t).await.unwrap();
    let blob_dir = s
        .data_dir()
        .join("regions/eu/blobs")
        .join(tenant.id.as_uuid().to_string());
    assert_eq!(std::fs::read_dir(blob_dir).unwrap().count(), 5);

    let status = s.cli(&["keys", "status", "--json"], None).await;
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let mine = status
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slug"] == "rotating")
        .unwrap();
    assert_eq!(mine["kek_version"], 2);
    assert_eq!(mine["provider"], "local");
    assert_eq!(mine["data_keys"].as_array().unwrap().len(), 5);
    assert!(
        mine["data_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kek_version"] == 2),
        "all re-wrapped"
    );
}

#[tokio::test]
async fn crypto_shredding_leaves_nothing_readable() {
    crate::support::sqlite_only!(
        "scans the SQLite files for wrapped keys (PostgreSQL keeps dead tuples until vacuum: docs/postgres.md)"
    );
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    for t in ["doomed", "bystander"] {
        new_tenant(&s, &token, t).await;
        assert_eq!(
            put_secret(&s, &token, t, "webhook", &format!("{t}-webhook-secret"))
                .await
                .status(),
            200
        );
    }
    let (p, store) = local_platform(&s).await;
    let me = crate::support::local_admin();
    let body = blob_body("shred-me|");
    p.put_blob(&me, &slug("doomed"), "att", &mut body.as_slice())
        .await
        .unwrap();
    p.rotate_data_key(&me, &slug("doomed"), None).await.unwrap();
    let keys = store
        .tenant_keys(&scope_of(&p, "doomed").await)
        .await
        .unwrap();
    let wrapped: Vec<Vec<u8>> = keys
        .keks
        .iter()
        .map(|k| k.wrapped.clone())
        .chain(keys.deks.iter().map(|d| d.wrapped.clone()))
        .collect();
    assert_eq!(wrapped.len(), 3);
    for w in &wrapped {
        assert!(
            !files_containing(&s.data_dir(), w).is_empty(),
            "wrapped keys are on disk before shredding"
        );
    }

    // Refused without the confirmation, then done by the CLI while the server runs.
    let out = s
        .cli(
            &[
                "keys",
                "shred",
                "--tenant",
                "doomed",
                "--confirm",
                "bystander",
                "--reason",
                "contract ended",
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--confirm must repeat"));
    // A blank reason is the caller's mistake, refused before anything is touched.
    let out = s
        .cli(
            &[
                "keys",
                "shred",
                "--tenant",
                "doomed",
                "--confirm",
                "doomed",
                "--reason",
                "  ",
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires a reason"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        p.tenant_secret(&me, &slug("doomed"), "webhook")
            .await
            .is_ok(),
        "nothing destroyed yet"
    );
    let out = s
        .cli(
            &[
                "keys",
                "shred",
                "--tenant",
                "doomed",
                "--confirm",
                "doomed",
                "--reason",
                "contract ended",
            ],
            None,
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing decrypts, in this process (whose key cache was warm) or in the server.
    assert!(matches!(
        p.tenant_secret(&me, &slug("doomed"), "webhook").await,
        Err(PlatformError::Conflict(_))
    ));
    assert!(read_blob(&p, "doomed", "att").await.is_err());
    let resp = put_secret(&s, &token, "doomed", "webhook", "new").await;
    let problem = expect_problem(resp, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("destroyed"),
        "{problem}"
    );
    assert!(
        p.rotate_data_key(&me, &slug("doomed"), None).await.is_err(),
        "no new keys after shredding"
    );
    // The other tenant is untouched.
    assert_eq!(
        p.tenant_secret(&me, &slug("bystander"), "webhook")
            .await
            .unwrap()
            .expose(),
        b"bystander-webhook-secret"
    );
    // The wrapped keys are gone from every file, database and log alike.
    drop(p);
    let (_, dir) = s.stop().await;
    for w in &wrapped {
        assert_eq!(
            files_containing(&dir.path().join("data"), w),
            Vec::<String>::new(),
            "a wrapped key survived"
        );
    }
}

/// A server whose root key lives on a SoftHSM2 token.
async fn hsm_server(hsm: &SoftHsm, extra: &str) -> TestServer {
    let config = format!(
        "{TWO_REGIONS}[keys]\nroot = \"hsm\"\n{}{extra}",
        hsm.config_section("hsm", "strongroom-root")
    );
    TestServer::start_with(
        bin(),
        Options {
            config: Some(config),
            env: hsm.env(),
            ..Options::default()
        },
    )
    .await
}

#[tokio::test]
async fn softhsm_root_key_is_non_extractable_and_serves() {
    let hsm = SoftHsm::new("sr-root");
    let s = hsm_server(&hsm, "").await;
    assert!(
        !s.data_dir().join("root.key").exists(),
        "no key file when the root is on a token"
    );
    let token = s.operator_token().await;
    new_tenant(&s, &token, "hsm-tenant").await;
    assert_eq!(
        put_secret(&s, &token, "hsm-tenant", "sso", "via-hsm")
            .await
            .status(),
        200
    );
    let ready: Value = crate::support::send(&s, reqwest::Method::GET, "/readyz")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["keys"], "ok");

    let objects = hsm.pkcs11_tool(&["--list-objects", "--type", "secrkey"]);
    assert!(objects.contains("label:      strongroom-root"), "{objects}");
    assert!(
        objects.contains("never extractable") && objects.contains("sensitive"),
        "{objects}"
    );
    let read = hsm.pkcs11_tool(&[
        "--read-object",
        "--type",
        "secrkey",
        "--label",
        "strongroom-root",
    ]);
    assert!(
        read.contains("CKR_ATTRIBUTE_SENSITIVE") && read.contains("get CKA_VALUE failed"),
        "the key value must not be readable: {read}"
    );

    // Restart on the same token: the wrapped token-signing key and tenant keys unwrap.
    let (_, dir) = s.stop().await;
    let config = format!(
        "{TWO_REGIONS}[keys]\nroot = \"hsm\"\n{}",
        hsm.config_section("hsm", "strongroom-root")
    );
    let s = TestServer::start_with(
        bin(),
        Options {
            config: Some(config),
            env: hsm.env(),
            dir: Some(dir),
            ..Options::default()
        },
    )
    .await;
    let token = s.operator_token().await;
    let info: Value = put_secret(&s, &token, "hsm-tenant", "sso", "rotated")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["version"], 2);
    let out = s.cli(&["keys", "status"], None).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hsm-tenant") && text.contains("pkcs11:"),
        "{text}"
    );
}

#[tokio::test]
async fn token_unavailable_fails_readiness_and_refuses_writes_cleanly() {
    // Root on the local key file; one tenant keeps its KEK on its own token.
    let customer = SoftHsm::new("customer-hsm");
    let config = format!(
        "{TWO_REGIONS}{}",
        customer.config_section("customer", "acme-kek")
    );
    let s = TestServer::start_with(
        bin(),
        Options {
            config: Some(config),
            env: customer.env(),
            ..Options::default()
        },
    )
    .await;
    let token = s.operator_token().await;
    let resp = create_tenant(&s, &token, json!({"slug": "own-key", "display_name": "Own key", "region": "eu", "key_provider": "customer"})).await;
    assert_eq!(resp.status(), 201);
    new_tenant(&s, &token, "platform-key").await;
    let resp = create_tenant(&s, &token, json!({"slug": "bad-provider", "display_name": "x", "region": "eu", "key_provider": "nope"})).await;
    expect_problem(resp, 422, "validation").await;
    assert_eq!(
        put_secret(&s, &token, "own-key", "sso", "before")
            .await
            .status(),
        200
    );

    customer.remove_token();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await; // provider health is cached for 2 s
    // One customer's token is down: the deployment stays ready, degraded; only that
    // customer's tenant is refused.
    let ready = crate::support::send(&s, reqwest::Method::GET, "/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["keys"], "ok");
    assert_eq!(body["checks"]["customer_keys"], "degraded");

    let resp = put_secret(&s, &token, "own-key", "sso", "after").await;
    let problem = expect_problem(resp, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("unavailable"),
        "{problem}"
    );
    let resp = create_tenant(&s, &token, json!({"slug": "during-outage", "display_name": "x", "region": "eu", "key_provider": "customer"})).await;
    expect_problem(resp, 503, "unavailable").await;
    // Nothing half-written: no tenant, and the secret keeps its old version.
    let resp = crate::support::call(
        &s,
        reqwest::Method::GET,
        "/v1/tenants/during-outage",
        &token,
    )
    .await;
    assert_eq!(resp.status(), 404);
    let (p, store) = local_platform(&s).await;
    let row = store
        .sealed(
            &scope_of(&p, "own-key").await,
            strongroom_core::objects::KIND_TENANT_SECRET,
            "sso",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.version, 1, "the refused write changed nothing");
    // Tenants on the platform key keep working.
    assert_eq!(
        put_secret(&s, &token, "platform-key", "sso", "fine")
            .await
            .status(),
        200
    );
    let out = s.cli(&["keys", "status", "--json"], None).await;
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let own = status
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slug"] == "own-key")
        .unwrap();
    assert_eq!(own["provider"], "customer");
}

#[tokio::test]
async fn an_independent_reader_decrypts_from_the_format_document() {
    crate::support::sqlite_only!("the reference reader takes the SQLite file and blob files");
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "independent").await;
    let tenant: Value =
        crate::support::call(&s, reqwest::Method::GET, "/v1/tenants/independent", &token)
            .await
            .json()
            .await
            .unwrap();
    let id = tenant["id"].as_str().unwrap().to_owned();
    assert_eq!(
        put_secret(&s, &token, "independent", "sso", "first")
            .await
            .status(),
        200
    );
    let (p, _) = local_platform(&s).await;
    p.rotate_data_key(&crate::support::local_admin(), &slug("independent"), None)
        .await
        .unwrap();
    assert_eq!(
        put_secret(&s, &token, "independent", "sso", "second value")
            .await
            .status(),
        200
    );
    // 2 full chunks and a short one; and one of exactly two chunks (empty last chunk).
    let odd = blob_body("odd|")[..2 * 65_536 + 123].to_vec();
    let even: Vec<u8> = blob_body("even|")[..2 * 65_536].to_vec();
    for (bid, body) in [("odd", &odd), ("even", &even)] {
        p.put_blob(
            &crate::support::local_admin(),
            &slug("independent"),
            bid,
            &mut body.as_slice(),
        )
        .await
        .unwrap();
    }
    drop(p);
    let (_, dir) = s.stop().await;
    let data = dir.path().join("data");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/formats/reference/strongroom_decrypt.py");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args([
                "--data-dir",
                data.to_str().unwrap(),
                "--region",
                "eu",
                "--tenant",
                &id,
            ])
            .args(extra)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "reference reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(run(&["--secret", "sso"]), b"second value");
    for (bid, body) in [("odd", &odd), ("even", &even)] {
        let out = dir.path().join(format!("{bid}.out"));
        run(&["--blob", bid, "--out", out.to_str().unwrap()]);
        assert_eq!(&std::fs::read(&out).unwrap(), body, "blob {bid}");
    }
}

#[tokio::test]
async fn the_server_re_encrypts_in_the_background_after_a_cli_rotation() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "background").await;
    for name in ["a", "b", "c"] {
        assert_eq!(
            put_secret(&s, &token, "background", name, name)
                .await
                .status(),
            200
        );
    }
    let out = s
        .cli(&["keys", "rotate", "--tenant", "background"], None)
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (p, store) = local_platform(&s).await;
    let scope = scope_of(&p, "background").await;
    let kind = strongroom_core::objects::KIND_TENANT_SECRET;
    assert_eq!(
        store
            .sealed_before(&scope, kind, 2, 10)
            .await
            .unwrap()
            .len(),
        3
    );
    // The server, not this process, moves them (its worker polls every 10 s when idle).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !store
        .sealed_before(&scope, kind, 2, 10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "not re-encrypted within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    for name in ["a", "b", "c"] {
        let row = store.sealed(&scope, kind, name).await.unwrap().unwrap();
        assert_eq!(
            (row.dek_version, row.version),
            (2, 1),
            "same version, new key"
        );
        assert_eq!(
            p.tenant_secret(&crate::support::local_admin(), &slug("background"), name)
                .await
                .unwrap()
                .expose(),
            name.as_bytes()
        );
    }
    // The server logs the round after its last write is visible: wait for the line.
    while !s
        .log()
        .contains("re-encrypted objects under the current data keys")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not log its re-encryption round"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A blob store that, the first time a given file is opened, first lets a concurrent
/// re-encryption finish: the blob now points at a new file and the old one is gone —
/// exactly the interleaving that made a download fail during a key rotation.
struct RacingBlobs {
    inner: Arc<dyn strongroom_core::store::BlobStore>,
    store: Arc<dyn Store>,
    raced: std::sync::Mutex<bool>,
}

#[async_trait::async_trait]
impl strongroom_core::store::BlobStore for RacingBlobs {
    async fn open_at(
        &self,
        scope: &strongroom_core::access::TenantScope,
        file: &str,
        offset: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, strongroom_core::store::StoreError>
    {
        self.inner.open_at(scope, file, offset).await
    }

    async fn create(
        &self,
        scope: &strongroom_core::access::TenantScope,
        file: &str,
    ) -> Result<Box<dyn strongroom_core::store::BlobSink>, strongroom_core::store::StoreError> {
        self.inner.create(scope, file).await
    }

    async fn open(
        &self,
        scope: &strongroom_core::access::TenantScope,
        file: &str,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, strongroom_core::store::StoreError>
    {
        let race = std::mem::replace(&mut *self.raced.lock().unwrap(), true);
        if !race {
            // Copy the stream under a new name, point the blob at it, delete the old.
            let old = self.store.blob(scope, "doc").await.unwrap().unwrap();
            let mut bytes = Vec::new();
            let mut r = self.inner.open(scope, file).await?;
            tokio::io::AsyncReadExt::read_to_end(&mut r, &mut bytes)
                .await
                .unwrap();
            let moved = format!("{file}-moved");
            let mut sink = self.inner.create(scope, &moved).await?;
            tokio::io::AsyncWriteExt::write_all(&mut sink, &bytes)
                .await
                .unwrap();
            sink.commit().await?;
            let new = strongroom_core::store::StoredBlob {
                file: moved,
                ..old.clone()
            };
            let event = strongroom_core::store::AuditEvent {
                entry: strongroom_core::audit::entry::NewEntry {
                    action: strongroom_core::audit::entry::Action::KeyReencrypt,
                    actor: strongroom_core::audit::entry::Actor {
                        id: None,
                        kind: "system",
                    },
                    target: strongroom_core::audit::entry::Target::of("blob", "doc"),
                    reason: None,
                    session: None,
                    before: None,
                    after: None,
                    personal: None,
                },
                // The store keeps entry times monotonic: an early time is raised.
                at: time::OffsetDateTime::UNIX_EPOCH,
            };
            assert!(
                self.store
                    .reseal_blob(scope, &old, &new, &event)
                    .await
                    .unwrap()
            );
            self.inner.remove(scope, file).await?;
        }
        self.inner.open(scope, file).await
    }

    async fn remove(
        &self,
        scope: &strongroom_core::access::TenantScope,
        file: &str,
    ) -> Result<(), strongroom_core::store::StoreError> {
        self.inner.remove(scope, file).await
    }

    async fn remove_all(
        &self,
        scope: &strongroom_core::access::TenantScope,
    ) -> Result<(), strongroom_core::store::StoreError> {
        self.inner.remove_all(scope).await
    }
}

#[tokio::test]
async fn a_download_whose_file_is_replaced_by_re_encryption_still_succeeds() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "racing").await;
    let (p, _) = local_platform(&s).await;
    let me = crate::support::local_admin();
    let body = blob_body("racing-blob|");
    p.put_blob(&me, &slug("racing"), "doc", &mut body.as_slice())
        .await
        .unwrap();
    // The same data directory, with a blob store that races the first open.
    let (config, opened) = open_data_dir(&s).await;
    let racing = Arc::new(RacingBlobs {
        inner: opened.blobs.clone(),
        store: opened.store.clone(),
        raced: std::sync::Mutex::new(false),
    });
    let clock = Arc::new(strongroom_core::clock::SystemClock);
    let p = Platform::open(
        opened.store,
        racing.clone(),
        opened.providers,
        clock,
        &config,
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    p.read_blob(&me, &slug("racing"), "doc", &mut out)
        .await
        .unwrap();
    assert!(*racing.raced.lock().unwrap(), "the race happened");
    assert_eq!(out, body, "the reader followed the blob to its new file");
}

/// A shred commits, then purges the database journal so the destroyed keys leave the
/// disk too. If that purge fails (a reader holds an old snapshot), the keys must still
/// be gone from memory: nothing may decrypt from the cache after a shred.
#[tokio::test]
async fn a_shred_whose_journal_purge_fails_still_drops_cached_keys() {
    crate::support::sqlite_only!("breaks the SQLite journal purge");
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    new_tenant(&s, &token, "shredded").await;
    let (p, _) = local_platform(&s).await;
    let me = crate::support::local_admin();
    let t = slug("shredded");
    let name = strongroom_core::objects::SecretName::parse("smtp").unwrap();
    p.set_tenant_secret(&me, &t, &name, &SecretBytes::new(b"v".to_vec()))
        .await
        .unwrap();
    // Read once: the tenant's keys are now cached.
    assert_eq!(
        p.tenant_secret(&me, &t, "smtp").await.unwrap().expose(),
        b"v"
    );
    let db = s.data_dir().join("regions/eu/strongroom.db");
    let reader =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM tenant_homes", [], |r| r.get(0))
        .unwrap();
    assert!(p.cached_keys() > 0);
    let shred = p.shred_tenant_keys(&me, &t, "contract ended".into()).await;
    assert!(
        matches!(shred, Err(PlatformError::Unavailable(_))),
        "the journal cannot be purged under the reader's snapshot: {shred:?}"
    );
    assert_eq!(p.cached_keys(), 0, "destroyed keys still held in memory");
    assert!(p.tenant_secret(&me, &t, "smtp").await.is_err());
    reader.execute_batch("ROLLBACK").unwrap();
}

/// A root key on the token that the token would reveal (created by another tool as
/// extractable and not sensitive) is refused, with the reason: Strongroom does not
/// initialise on it.
#[tokio::test]
async fn an_extractable_token_key_is_refused() {
    let hsm = SoftHsm::new("sr-weak");
    let made = hsm.pkcs11_tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "strongroom-root",
        "--extractable",
    ]);
    assert!(made.contains("strongroom-root"), "{made}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strongroom.toml");
    std::fs::write(
        &config,
        format!(
            "{TWO_REGIONS}[keys]\nroot = \"hsm\"\n{}",
            hsm.config_section("hsm", "strongroom-root")
        ),
    )
    .unwrap();
    let out = strongroom_testkit::run_cli(
        bin(),
        &dir.path().join("data"),
        Some(&config),
        &hsm.env(),
        &["init"],
        None,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "initialised on an extractable key");
    assert!(
        stderr.contains("is extractable") && stderr.contains("CKA_EXTRACTABLE=false"),
        "{stderr}"
    );
}
