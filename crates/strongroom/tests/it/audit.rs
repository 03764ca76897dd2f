//! The audit trail end to end: entries written with the writes they describe, exported
//! in the tlog-tiles layout, verified offline by `strongroom audit verify`, and every
//! kind of tampering with the stored log caught and located.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::support::{TestServer, create_tenant};

async fn put_secret(s: &TestServer, token: &str, name: &str, value: &str) {
    let resp = crate::support::call_json(
        s,
        reqwest::Method::PUT,
        &format!("/v1/tenants/audited/secrets/{name}"),
        token,
        &json!({ "value": value }),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn export(s: &TestServer, name: &str) -> PathBuf {
    let dir = s.dir.path().join(name);
    let out = s
        .cli(
            &[
                "audit",
                "export",
                "--tenant",
                "audited",
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .await;
    stdout(&out);
    dir
}

/// Runs `audit verify`; returns (success, the one line it printed).
async fn verify(s: &TestServer, dir: &Path, vkey: &str, state: &Path) -> (bool, String) {
    let out = s
        .cli(
            &[
                "audit",
                "verify",
                "--dir",
                dir.to_str().unwrap(),
                "--vkey",
                vkey,
                "--state",
                state.to_str().unwrap(),
            ],
            None,
        )
        .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_owned())
}

/// Edits the region database directly, as someone with file access would (dropping
/// the append-only triggers first).
fn tamper(data: &Path, sql: &str) {
    let db = data.join("regions/eu/strongroom.db");
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({:?})\nc.executescript('''DROP TRIGGER IF EXISTS audit_entries_are_never_updated; DROP TRIGGER IF EXISTS audit_entries_are_never_deleted; {sql}''')\nc.commit()\n",
        db.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn exported_logs_verify_and_every_tampering_is_located() {
    crate::support::sqlite_only!(
        "tampers with the SQLite file (PostgreSQL refuses the same edits by privileges: strongroom-store's postgres tests)"
    );
    // The background integrator is held off (one hour) so that the last step below
    // controls exactly which entries are still unintegrated when one is deleted.
    let s = crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 3600000\n").await;
    let token = s.operator_token().await;
    let resp = create_tenant(
        &s,
        &token,
        json!({"slug": "audited", "display_name": "A", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    for i in 0..6 {
        put_secret(&s, &token, &format!("s{i}"), "value").await;
    }
    stdout(
        &s.cli(&["keys", "rotate", "--tenant", "audited"], None)
            .await,
    );
    let vkey = stdout(&s.cli(&["audit", "vkey", "--tenant", "audited"], None).await)
        .trim()
        .to_owned();
    assert!(vkey.starts_with("strongroom/t/audited/audit+"), "{vkey}");
    let state = s.dir.path().join("verifier-state.json");

    let clean = export(&s, "export-clean").await;
    let checkpoint = std::fs::read_to_string(clean.join("checkpoint")).unwrap();
    assert!(
        checkpoint.starts_with("strongroom/t/audited/audit\n8\n"),
        "{checkpoint}"
    );
    let (ok, line) = verify(&s, &clean, &vkey, &state).await;
    assert!(ok && line.starts_with("OK: 8 entries"), "{line}");
    let bundle = std::fs::read(clean.join("tile/entries/000.p/8")).unwrap();
    let text = String::from_utf8_lossy(&bundle);
    for action in ["tenant.create", "tenant.secret.set", "key.rotate"] {
        assert!(
            text.contains(&format!("\"action\":\"{action}\"")),
            "{action} in {text}"
        );
    }
    // A verifier key for another log does not verify this one.
    let other = "strongroom/t/other/audit+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert!(
        !verify(&s, &clean, other, &s.dir.path().join("x.json"))
            .await
            .0
    );

    // More entries; the state file moves forward.
    put_secret(&s, &token, "later", "value").await;
    let (ok, line) = verify(&s, &export(&s, "export-2").await, &vkey, &state).await;
    assert!(ok && line.starts_with("OK: 9 entries"), "{line}");

    let data = s.data_dir();
    // One byte of one stored entry (the target id, matched with its JSON key: the
    // sealed personal data is random base64 and may hold "s2" anywhere).
    tamper(
        &data,
        r#"UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '"id":"s2"', '"id":"s9"') AS BLOB) WHERE seq = 3;"#,
    );
    let (ok, line) = verify(&s, &export(&s, "export-edited").await, &vkey, &state).await;
    assert!(!ok && line.contains("first bad index 3"), "{line}");
    // Two entries swapped (after undoing the edit).
    tamper(
        &data,
        r#"UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '"id":"s9"', '"id":"s2"') AS BLOB) WHERE seq = 3;"#,
    );
    let (ok, line) = verify(&s, &export(&s, "export-restored").await, &vkey, &state).await;
    assert!(ok, "the undone edit verifies again: {line}");
    tamper(
        &data,
        "UPDATE audit_entries SET seq = 1000 WHERE seq = 5; UPDATE audit_entries SET seq = 5 WHERE seq = 6; UPDATE audit_entries SET seq = 6 WHERE seq = 1000;",
    );
    let (ok, line) = verify(&s, &export(&s, "export-swapped").await, &vkey, &state).await;
    assert!(!ok && line.contains("first bad index 5"), "{line}");
    // One entry deleted.
    tamper(&data, "DELETE FROM audit_entries WHERE seq = 1;");
    let (ok, line) = verify(&s, &export(&s, "export-deleted").await, &vkey, &state).await;
    assert!(!ok && line.contains("first bad index 1"), "{line}");
    // An entry deleted before it was integrated: the log is never signed over the gap.
    put_secret(&s, &token, "pending-1", "value").await;
    put_secret(&s, &token, "pending-2", "value").await;
    tamper(&data, "DELETE FROM audit_entries WHERE seq = 9;");
    let out = s
        .cli(&["audit", "checkpoint", "--tenant", "audited"], None)
        .await;
    assert!(!out.status.success(), "a checkpoint over a gap was signed");
    export_or_fail(&s).await;
}

/// An export must fail too while the log cannot be integrated.
async fn export_or_fail(s: &TestServer) {
    let dir = s.dir.path().join("export-after-gap");
    let out = s
        .cli(
            &[
                "audit",
                "export",
                "--tenant",
                "audited",
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(
        !out.status.success(),
        "export must fail while the log has a gap"
    );
}

#[tokio::test]
async fn a_rolled_back_log_is_detected() {
    crate::support::sqlite_only!("rolls the SQLite files back on disk");
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    let resp = create_tenant(
        &s,
        &token,
        json!({"slug": "audited", "display_name": "A", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    put_secret(&s, &token, "a", "1").await;
    let vkey = stdout(&s.cli(&["audit", "vkey", "--tenant", "audited"], None).await)
        .trim()
        .to_owned();
    stdout(
        &s.cli(&["audit", "checkpoint", "--tenant", "audited"], None)
            .await,
    );
    // An old copy of the database (a backup), taken now.
    let (_, dir) = s.stop().await;
    let region = dir.path().join("data/regions/eu");
    let backup = dir.path().join("region-backup");
    std::fs::create_dir_all(&backup).unwrap();
    for f in std::fs::read_dir(&region).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, backup.join(p.file_name().unwrap())).unwrap();
        }
    }
    let s = crate::support::restart(dir).await;
    let token = s.operator_token().await;
    for i in 0..3 {
        put_secret(&s, &token, &format!("b{i}"), "2").await;
    }
    let state = s.dir.path().join("state.json");
    let (ok, line) = verify(&s, &export(&s, "newer").await, &vkey, &state).await;
    assert!(ok && line.starts_with("OK: 5 entries"), "{line}");
    // Restore the old database: the log goes back to 2 entries with a validly signed
    // (old) checkpoint. Only the verifier's memory can tell.
    let (_, dir) = s.stop().await;
    for f in std::fs::read_dir(&backup).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(
            &p,
            dir.path()
                .join("data/regions/eu")
                .join(p.file_name().unwrap()),
        )
        .unwrap();
    }
    for wal in ["strongroom.db-wal", "strongroom.db-shm"] {
        if !backup.join(wal).exists() {
            let _ = std::fs::remove_file(dir.path().join("data/regions/eu").join(wal));
        }
    }
    let s = crate::support::restart(dir).await;
    let (ok, line) = verify(&s, &export(&s, "rolled-back").await, &vkey, &state).await;
    assert!(!ok && line.contains("rolled back from 5 to 2"), "{line}");
}

#[tokio::test]
async fn an_independent_verifier_accepts_our_checkpoint_and_tree() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    let resp = create_tenant(
        &s,
        &token,
        json!({"slug": "audited", "display_name": "A", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    for i in 0..20 {
        put_secret(&s, &token, &format!("s{i}"), "v").await;
    }
    let vkey = stdout(&s.cli(&["audit", "vkey", "--tenant", "audited"], None).await)
        .trim()
        .to_owned();
    let dir = export(&s, "export").await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/formats/reference/tlog_verify.py");
    let run = |vkey: &str, extra: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .arg(vkey)
            .args(extra)
            .output()
            .expect("python3");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(&vkey, &["--inclusion", "7"]);
    assert!(ok && text.starts_with("OK 21 "), "{text}");
    // The same root as our own verifier reports.
    let ours = stdout(
        &s.cli(
            &[
                "audit",
                "verify",
                "--dir",
                dir.to_str().unwrap(),
                "--vkey",
                &vkey,
            ],
            None,
        )
        .await,
    );
    let root = text.split_whitespace().nth(2).unwrap();
    assert!(ours.contains(root), "{ours} vs {text}");
    // A flipped bit in the checkpoint fails the independent signature check.
    let cp = dir.join("checkpoint");
    let note = std::fs::read_to_string(&cp)
        .unwrap()
        .replacen("\n21\n", "\n20\n", 1);
    std::fs::write(&cp, note).unwrap();
    assert!(!run(&vkey, &[]).0);
}

#[tokio::test]
async fn the_log_is_served_as_tlog_tiles_over_https() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    let resp = create_tenant(
        &s,
        &token,
        json!({"slug": "audited", "display_name": "A", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    for i in 0..3 {
        put_secret(&s, &token, &format!("s{i}"), "v").await;
    }
    let reader = crate::support::auditor(&s, "audited").await;
    let get = |path: String, auth: bool| {
        let req = s.client().get(s.url(&path));
        let req = if auth { req.bearer_auth(&reader) } else { req };
        async move { req.send().await.unwrap() }
    };
    let vkey = get("/v1/t/audited/audit/vkey".into(), true)
        .await
        .text()
        .await
        .unwrap();
    let resp = get("/v1/t/audited/audit/checkpoint".into(), true).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let note = resp.text().await.unwrap();
    let v = strongroom_core::audit::note::Verifier::parse(&vkey).unwrap();
    let cp = strongroom_core::audit::note::Checkpoint::parse(v.open(&note).unwrap()).unwrap();
    // tenant.create, three secrets, the auditor's user.create and session.login.
    assert_eq!(cp.size, 6);
    let bundle = get("/v1/t/audited/audit/tile/entries/000.p/6".into(), true)
        .await
        .bytes()
        .await
        .unwrap();
    let entries = strongroom_core::audit::tiles::read_bundle(&bundle).unwrap();
    let leaves: Vec<_> = entries
        .iter()
        .map(|e| strongroom_core::audit::merkle::leaf_hash(e))
        .collect();
    assert_eq!(
        strongroom_core::audit::merkle::root_of(&leaves),
        cp.root,
        "root from served entries"
    );
    let tile = get("/v1/t/audited/audit/tile/0/000.p/6".into(), true)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(tile.to_vec(), leaves.concat());

    // Unauthenticated, unknown tenant, malformed or not-yet-existing tiles.
    assert_eq!(
        get("/v1/t/audited/audit/checkpoint".into(), false)
            .await
            .status(),
        401
    );
    for path in [
        "/v1/t/nobody-here/audit/checkpoint",
        "/v1/t/audited/audit/tile/entries/000.p/7",
        "/v1/t/audited/audit/tile/entries/000",
        "/v1/t/audited/audit/tile/0/5",
        "/v1/t/audited/audit/tile/9/000.p/1",
    ] {
        let resp = get(path.into(), true).await;
        crate::support::expect_problem(resp, 404, "not-found").await;
    }
    // Dot segments are resolved by the client; whatever arrives, nothing is served.
    assert_eq!(
        get("/v1/t/audited/audit/tile/0/../../000.p/1".into(), true)
            .await
            .status(),
        404
    );
    assert_eq!(
        get("/v1/t/audited/audit/tile/0/%2e%2e/000.p/1".into(), true)
            .await
            .status(),
        404
    );
}

/// Tiles are re-checked against the last signed checkpoint before the tree is
/// extended: a rewritten partial tile stops signing for that log (and only that log);
/// full tiles cannot be rewritten or removed at all.
#[tokio::test]
async fn the_integrator_refuses_to_extend_a_tree_whose_tiles_were_rewritten() {
    crate::support::sqlite_only!("rewrites tiles in the SQLite file");
    let s = crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 3600000\n").await;
    let token = s.operator_token().await;
    for slug in ["audited", "bystander"] {
        let body = json!({"slug": slug, "display_name": slug, "region": "eu"});
        assert_eq!(create_tenant(&s, &token, body).await.status(), 201);
    }
    let api = s.api();
    let reader = crate::support::auditor(&s, "audited").await;
    let bystander = crate::support::auditor(&s, "bystander").await;
    api.get("/v1/t/audited/audit/checkpoint", &reader)
        .await
        .ok(200);
    put_secret(&s, &token, "before", "value").await;
    // Someone with file access rewrites the stored level-0 tile.
    let tenant = crate::support::region_rows(
        &s.data_dir(),
        "SELECT tenant_id FROM tenant_homes WHERE slug = 'audited'",
    )[0][0]
        .clone();
    tamper(
        &s.data_dir(),
        &format!(
            "UPDATE audit_tiles SET hashes = zeroblob(length(hashes)) WHERE tenant_id = '{tenant}' AND level = 0;"
        ),
    );
    let refused = api.get("/v1/t/audited/audit/checkpoint", &reader).await;
    refused.problem(500, "internal");
    assert!(
        s.log().contains("do not match the signed checkpoint"),
        "{}",
        s.log()
    );
    // The other tenant's log is unaffected.
    api.get("/v1/t/bystander/audit/checkpoint", &bystander)
        .await
        .ok(200);
    // Full tiles and deletions are refused by the database itself.
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({:?})\nfor sql in [\"DELETE FROM audit_tiles\", \"INSERT INTO audit_tiles VALUES ('{tenant}', 3, 0, zeroblob(8192))\", \"UPDATE audit_tiles SET hashes = zeroblob(32) WHERE level = 3\"]:\n    try:\n        c.execute(sql)\n        print('ok', sql)\n    except Exception as e:\n        print('refused', e)\n",
        s.data_dir()
            .join("regions/eu/strongroom.db")
            .display()
            .to_string()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("refused audit tiles are append-only"),
        "{text}"
    );
    assert!(
        text.contains("refused full audit tiles are final"),
        "{text}"
    );
}
