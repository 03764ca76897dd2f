//! The audit trail as auditors and operators use it: JSON proofs checked by an
//! independent verifier, filtered queries with cursors, CSV/JSON exports (each itself
//! audited), personal data sealed and erasable without breaking proofs, verification
//! over HTTPS, the background integrator, and a crash under load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{TestServer, create_tenant, expect_problem};

const UA: &str = "audit-review-test/1.0 (marker-7f3a9c)";

async fn tenant(s: &TestServer, token: &str, slug: &str) {
    let resp = create_tenant(
        s,
        token,
        json!({"slug": slug, "display_name": "A", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
}

async fn put(s: &TestServer, token: &str, slug: &str, name: &str) -> reqwest::Response {
    s.client()
        .put(s.url(&format!("/v1/tenants/{slug}/secrets/{name}")))
        .bearer_auth(token)
        .header("user-agent", UA)
        .json(&json!({ "value": "v" }))
        .send()
        .await
        .unwrap()
}

async fn get(s: &TestServer, token: &str, path: &str) -> reqwest::Response {
    crate::support::call(s, reqwest::Method::GET, path, token).await
}

async fn json_ok(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn python(script: &str, args: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/formats/reference")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn json_proofs_verify_here_and_in_an_independent_verifier() {
    use strongroom_core::audit::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    use strongroom_core::audit::note::{Checkpoint, Verifier};
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    tenant(&s, &token, "proofs").await;
    let reader = crate::support::auditor(&s, "proofs").await;
    // 300 entries (the tenant's creation, its auditor's creation and sign-in, 297
    // secrets): the tree spans two level-0 tiles and a level-1 tile.
    for i in 0..297 {
        assert_eq!(
            put(&s, &token, "proofs", &format!("s{i}")).await.status(),
            200
        );
    }
    let vkey = ok(&s.cli(&["audit", "vkey", "--tenant", "proofs"], None).await)
        .trim()
        .to_owned();
    let dir = s.dir.path().join("export");
    ok(&s
        .cli(
            &[
                "audit",
                "export",
                "--tenant",
                "proofs",
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .await);
    let bundles: Vec<Vec<u8>> = (0..2)
        .flat_map(|n| {
            let p = if n == 0 {
                dir.join("tile/entries/000")
            } else {
                dir.join("tile/entries/001.p/44")
            };
            strongroom_core::audit::tiles::read_bundle(&std::fs::read(p).unwrap())
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(bundles.len(), 300);
    let leaves: Vec<_> = bundles.iter().map(|e| leaf_hash(e)).collect();
    let root_at = |n: usize| strongroom_core::audit::merkle::root_of(&leaves[..n]);

    for (index, size) in [
        (7u64, None),
        (290, None),
        (3, Some(100u64)),
        (299, Some(300)),
    ] {
        let mut q = format!("/v1/t/proofs/audit/proof/inclusion?index={index}");
        if let Some(n) = size {
            q.push_str(&format!("&size={n}"));
        }
        let p = json_ok(get(&s, &reader, &q).await).await;
        let n = p["size"].as_u64().unwrap();
        assert_eq!(n, size.unwrap_or(300));
        // The checkpoint in the answer is signed and its root is the root we compute.
        let v = Verifier::parse(&vkey).unwrap();
        let cp = Checkpoint::parse(v.open(p["checkpoint"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(cp.root, root_at(300));
        let proof = hashes(&p);
        let i = usize::try_from(index).unwrap();
        let root = root_at(usize::try_from(n).unwrap());
        assert!(verify_inclusion(index, n, &leaves[i], &proof, &root).is_ok());
        // The independent verifier accepts it; a flipped byte is refused.
        let file = s.dir.path().join(format!("incl-{index}.json"));
        std::fs::write(&file, p.to_string()).unwrap();
        let (good, text) = python(
            "tlog_verify.py",
            &[
                dir.to_str().unwrap(),
                &vkey,
                "--served-inclusion",
                file.to_str().unwrap(),
            ],
        );
        assert!(good && text.starts_with("OK 300 "), "{text}");
        let mut bad = p.clone();
        let h0 = bad["hashes"][0].as_str().unwrap().to_owned();
        let flipped = format!(
            "{}{}",
            if h0.starts_with('0') { "1" } else { "0" },
            &h0[1..]
        );
        bad["hashes"][0] = json!(flipped);
        std::fs::write(&file, bad.to_string()).unwrap();
        let (good, text) = python(
            "tlog_verify.py",
            &[
                dir.to_str().unwrap(),
                &vkey,
                "--served-inclusion",
                file.to_str().unwrap(),
            ],
        );
        assert!(!good, "{text}");
    }
    for (from, to) in [
        (1u64, None),
        (100, None),
        (256, None),
        (64, Some(200u64)),
        (300, None),
    ] {
        let mut q = format!("/v1/t/proofs/audit/proof/consistency?from={from}");
        if let Some(n) = to {
            q.push_str(&format!("&to={n}"));
        }
        let p = json_ok(get(&s, &reader, &q).await).await;
        let n = p["size"].as_u64().unwrap();
        let proof = hashes(&p);
        let (m, nn) = (usize::try_from(from).unwrap(), usize::try_from(n).unwrap());
        assert!(verify_consistency(from, n, &proof, &root_at(m), &root_at(nn)).is_ok());
        let file = s.dir.path().join(format!("cons-{from}.json"));
        std::fs::write(&file, p.to_string()).unwrap();
        let (good, text) = python(
            "tlog_verify.py",
            &[
                dir.to_str().unwrap(),
                &vkey,
                "--served-consistency",
                file.to_str().unwrap(),
            ],
        );
        assert!(good, "{from}: {text}");
    }
    // Positions the log does not have are the caller's mistake.
    for (q, field) in [
        ("proof/inclusion?index=300", "index"),
        ("proof/inclusion?index=5&size=5", "index"),
        ("proof/inclusion?index=1&size=100000", "size"),
        ("proof/consistency?from=301", "from"),
        ("proof/consistency?from=10&to=5", "from"),
        ("proof/consistency?from=1&to=99999", "to"),
    ] {
        let body = expect_problem(
            get(&s, &reader, &format!("/v1/t/proofs/audit/{q}")).await,
            422,
            "validation",
        )
        .await;
        assert!(body.to_string().contains(field), "{q}: {body}");
    }
    for q in [
        "proof/inclusion?index=-1",
        "proof/inclusion?index=x",
        "proof/inclusion",
        "proof/inclusion?index=1&extra=2",
        "proof/consistency?from=18446744073709551616",
    ] {
        expect_problem(
            get(&s, &reader, &format!("/v1/t/proofs/audit/{q}")).await,
            422,
            "validation",
        )
        .await;
    }
}

/// Every entry of the tenant's trail, through the paginated query.
async fn all_entries(
    s: &TestServer,
    token: &str,
    slug: &str,
    filter: &str,
    limit: u32,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("/v1/t/{slug}/audit/entries?limit={limit}{filter}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = json_ok(get(s, token, &q).await).await;
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn queries_filter_paginate_export_and_are_themselves_audited() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    tenant(&s, &token, "review").await;
    tenant(&s, &token, "other").await;
    let reader = crate::support::auditor(&s, "review").await;
    for i in 0..7 {
        assert_eq!(
            put(&s, &token, "review", &format!("s{i}")).await.status(),
            200
        );
    }
    assert_eq!(put(&s, &token, "review", "s1").await.status(), 200);
    assert_eq!(put(&s, &token, "other", "s1").await.status(), 200);
    ok(&s.cli(&["keys", "rotate", "--tenant", "review"], None).await);

    // Pages of 3 walk the whole trail once, in order, without duplicates.
    let all = all_entries(&s, &reader, "review", "", 3).await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    // tenant.create, 8 secret writes, key.rotate, and the audit.query entries of the
    // pages fetched so far (each page is a query, audited before it is answered).
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "tenant.create");
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "tenant.secret.set")
            .count(),
        8
    );
    assert_eq!(actions.iter().filter(|a| **a == "key.rotate").count(), 1);
    assert!(actions.contains(&"audit.query"));
    // The other tenant's write is not in this trail.
    assert!(all.iter().all(|e| e["target"]["id"] != "other"));

    let operator = all[0]["actor"].clone();
    assert_eq!(operator["kind"], "operator");
    let actor = format!("operator:{}", operator["id"].as_str().unwrap());

    let by_action = all_entries(&s, &reader, "review", "&action=tenant.secret.set", 100).await;
    assert_eq!(by_action.len(), 8);
    let by_target = all_entries(&s, &reader, "review", "&target=tenant-secret:s1", 100).await;
    assert_eq!(by_target.len(), 2);
    assert_eq!(by_target[1]["target"]["version"], 2);
    assert_ne!(
        by_target[1]["before"],
        Value::Null,
        "a replacement has a before hash"
    );
    let by_actor = all_entries(&s, &reader, "review", &format!("&actor={actor}"), 100).await;
    assert!(by_actor.iter().all(|e| e["actor"] == operator));
    let cli_actions = all_entries(&s, &reader, "review", "&actor=local-admin:", 100).await;
    let cli_names: Vec<&str> = cli_actions
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        cli_names,
        ["user.create", "key.rotate"],
        "the auditor's creation, the rotation"
    );
    let cli_actions = [cli_actions[1].clone()];

    // Time range: everything from the 3rd secret write's time up to (excluding) the
    // rotation's time.
    let since = by_action[2]["time"].as_str().unwrap();
    let until = cli_actions[0]["time"].as_str().unwrap();
    let ranged = all_entries(
        &s,
        &reader,
        "review",
        &format!("&action=tenant.secret.set&since={since}&until={until}"),
        100,
    )
    .await;
    assert_eq!(ranged.len(), 6);

    // Personal data: the request's origin, opened for the reviewer; none for the CLI.
    let first = &by_action[0]["personal"];
    assert_eq!(first["ip"], "127.0.0.1", "{first}");
    assert_eq!(first["user_agent"], UA);
    assert_eq!(first["erased"], false);
    assert_eq!(cli_actions[0]["personal"], Value::Null);

    // The queries are in the trail, with what they asked for.
    let queries = all_entries(&s, &reader, "review", "&action=audit.query", 500).await;
    let targets: BTreeSet<String> = queries
        .iter()
        .map(|e| e["target"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(targets.contains("action=tenant.secret.set"), "{targets:?}");
    assert!(targets.contains("target=tenant-secret:s1"), "{targets:?}");
    assert!(targets.contains("all"), "{targets:?}");
    assert!(
        queries.iter().all(|e| e["actor"]["kind"] == "user"),
        "queries by the auditor"
    );

    // CSV export: a header, one row per matching entry, the origin opened; audited.
    let resp = get(
        &s,
        &reader,
        "/v1/t/review/audit/export?format=csv&action=tenant.secret.set",
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("review-audit.csv")
    );
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 9, "{csv}");
    assert!(lines[0].starts_with("seq,time,action,actor_kind,actor_id,"));
    assert!(
        lines[1].contains(UA) && lines[1].contains(",127.0.0.1,"),
        "{}",
        lines[1]
    );
    let exported: Vec<Value> = json_ok(get(&s, &reader, "/v1/t/review/audit/export").await)
        .await
        .as_array()
        .unwrap()
        .clone();
    assert!(exported.len() >= all.len());
    let exports = all_entries(&s, &reader, "review", "&action=audit.export", 100).await;
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0]["target"]["id"], "action=tenant.secret.set");

    // Hostile filters get a problem naming the parameter, and are not audited.
    let before = all_entries(&s, &reader, "review", "&action=audit.query", 500)
        .await
        .len();
    for (q, field) in [
        ("action=nope", "action"),
        ("actor=no-colon", "actor"),
        ("since=yesterday", "since"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("cursor=abc", "cursor"),
        ("format=csv", "format"),
    ] {
        let body = expect_problem(
            get(&s, &reader, &format!("/v1/t/review/audit/entries?{q}")).await,
            422,
            "validation",
        )
        .await;
        assert!(body.to_string().contains(field), "{q}: {body}");
    }
    let long = "x".repeat(400);
    expect_problem(
        get(
            &s,
            &reader,
            &format!("/v1/t/review/audit/entries?target=k:{long}"),
        )
        .await,
        422,
        "validation",
    )
    .await;
    expect_problem(
        get(&s, &reader, "/v1/t/review/audit/export?format=xml").await,
        422,
        "validation",
    )
    .await;
    expect_problem(
        get(&s, &reader, "/v1/t/review/audit/export?cursor=1").await,
        422,
        "validation",
    )
    .await;
    expect_problem(
        get(&s, &reader, "/v1/t/nobody/audit/entries").await,
        404,
        "not-found",
    )
    .await;
    let resp = crate::support::send(&s, reqwest::Method::GET, "/v1/t/review/audit/entries").await;
    assert_eq!(resp.status(), 401);
    // +1: the query that counts them.
    let after = all_entries(&s, &reader, "review", "&action=audit.query", 500)
        .await
        .len();
    assert_eq!(after, before + 1);
}

/// Every file of the data directory contains `needle`?
fn anywhere_on_disk(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn personal_data_is_sealed_and_erasure_keeps_every_proof() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    tenant(&s, &token, "gdpr").await;
    let reader = crate::support::auditor(&s, "gdpr").await;
    for i in 0..3 {
        assert_eq!(
            put(&s, &token, "gdpr", &format!("s{i}")).await.status(),
            200
        );
    }
    // The user agent is nowhere in clear on disk (databases, WAL files), though the
    // entries carry it.
    let entries = all_entries(&s, &reader, "gdpr", "&action=tenant.secret.set", 100).await;
    assert_eq!(entries[0]["personal"]["user_agent"], UA);
    assert!(!anywhere_on_disk(&s.data_dir(), b"marker-7f3a9c"));
    assert!(
        anywhere_on_disk(&s.data_dir(), b"tenant.secret.set"),
        "the scan can find things"
    );

    let actor = format!("operator:{}", entries[0]["actor"]["id"].as_str().unwrap());
    let vkey = ok(&s.cli(&["audit", "vkey", "--tenant", "gdpr"], None).await)
        .trim()
        .to_owned();
    let state = s.dir.path().join("state.json");
    let export = |name: &'static str| {
        let dir = s.dir.path().join(name);
        let s = &s;
        async move {
            ok(&s
                .cli(
                    &[
                        "audit",
                        "export",
                        "--tenant",
                        "gdpr",
                        "--dir",
                        dir.to_str().unwrap(),
                    ],
                    None,
                )
                .await);
            dir
        }
    };
    let verify = |dir: std::path::PathBuf| {
        let (s, vkey, state) = (&s, vkey.clone(), state.clone());
        async move {
            s.cli(
                &[
                    "audit",
                    "verify",
                    "--dir",
                    dir.to_str().unwrap(),
                    "--vkey",
                    &vkey,
                    "--state",
                    state.to_str().unwrap(),
                ],
                None,
            )
            .await
        }
    };
    let before = export("before").await;
    ok(&verify(before.clone()).await);
    let old_bundle = find_first_bundle(&before).expect("bundle");

    // Erasure needs a reason and a well-formed subject.
    let out = s
        .cli(
            &[
                "audit",
                "erase-subject",
                "--tenant",
                "gdpr",
                "--subject",
                &actor,
                "--reason",
                " ",
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
    let out = s
        .cli(
            &[
                "audit",
                "erase-subject",
                "--tenant",
                "gdpr",
                "--subject",
                "nobody",
                "--reason",
                "r",
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
    let text = ok(&s
        .cli(
            &[
                "audit",
                "erase-subject",
                "--tenant",
                "gdpr",
                "--subject",
                &actor,
                "--reason",
                "GDPR art. 17 request 4711",
            ],
            None,
        )
        .await);
    assert!(text.contains("erased 1"), "{text}");

    // The data is gone; the entries are byte for byte the same and the log verifies
    // as an extension of what was verified before.
    let entries = all_entries(&s, &reader, "gdpr", "&action=tenant.secret.set", 100).await;
    for e in &entries {
        assert_eq!(e["personal"]["erased"], true, "{e}");
        assert_eq!(e["personal"]["ip"], Value::Null);
    }
    let after = export("after").await;
    let new_bundle = find_first_bundle(&after).expect("bundle");
    assert!(
        new_bundle.starts_with(&old_bundle),
        "entries changed by erasure"
    );
    let out = verify(after).await;
    let line = ok(&out);
    assert!(line.starts_with("OK: "), "{line}");
    // The erasure is itself in the trail, with its reason; new activity by the same
    // subject gets a fresh key and is readable.
    let erasures = all_entries(&s, &reader, "gdpr", "&action=audit.subject_erase", 100).await;
    assert_eq!(erasures.len(), 1);
    assert_eq!(erasures[0]["reason"], "GDPR art. 17 request 4711");
    assert_eq!(put(&s, &token, "gdpr", "later").await.status(), 200);
    let later = all_entries(&s, &reader, "gdpr", "&target=tenant-secret:later", 100).await;
    assert_eq!(later[0]["personal"]["user_agent"], UA);
}

/// The first entry bundle of an export, whatever its width.
fn find_first_bundle(dir: &Path) -> Option<Vec<u8>> {
    let p = dir.join("tile/entries");
    if let Ok(b) = std::fs::read(p.join("000")) {
        return Some(b);
    }
    let partial = std::fs::read_dir(p.join("000.p"))
        .ok()?
        .next()?
        .ok()?
        .path();
    std::fs::read(partial).ok()
}

#[tokio::test]
async fn audit_verify_fetches_and_checks_a_servers_log_over_https() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    tenant(&s, &token, "remote").await;
    let reader = crate::support::auditor(&s, "remote").await;
    for i in 0..5 {
        assert_eq!(
            put(&s, &token, "remote", &format!("s{i}")).await.status(),
            200
        );
    }
    let vkey = ok(&s.cli(&["audit", "vkey", "--tenant", "remote"], None).await)
        .trim()
        .to_owned();
    let token_file = s.dir.path().join("token");
    std::fs::write(&token_file, format!("{reader}\n")).unwrap();
    let cert = s.data_dir().join("tls/cert.pem");
    let state = s.dir.path().join("remote-state.json");
    let run = |vkey: String, token_file: std::path::PathBuf| {
        let (s, cert, state) = (&s, cert.clone(), state.clone());
        async move {
            let out = s
                .cli(
                    &[
                        "audit",
                        "verify",
                        "--url",
                        &s.base,
                        "--tenant",
                        "remote",
                        "--vkey",
                        &vkey,
                        "--ca-cert",
                        cert.to_str().unwrap(),
                        "--token-file",
                        token_file.to_str().unwrap(),
                        "--state",
                        state.to_str().unwrap(),
                    ],
                    None,
                )
                .await;
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text.trim().to_owned())
        }
    };
    let (good, line) = run(vkey.clone(), token_file.clone()).await;
    assert!(
        good && line.starts_with("OK: 8 entries of strongroom/t/remote/audit"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["size"], 8);
    // The log grows: still OK, and consistent with the state kept from the first run.
    assert_eq!(put(&s, &token, "remote", "s9").await.status(), 200);
    let (good, line) = run(vkey.clone(), token_file.clone()).await;
    assert!(good && line.starts_with("OK: 9 entries"), "{line}");
    // Another log's key; a token the server refuses.
    tenant(&s, &token, "elsewhere").await;
    let other = ok(&s
        .cli(&["audit", "vkey", "--tenant", "elsewhere"], None)
        .await)
    .trim()
    .to_owned();
    let (good, line) = run(other, token_file.clone()).await;
    assert!(!good && line.contains("FAILED"), "{line}");
    let bad_token = s.dir.path().join("bad-token");
    std::fs::write(&bad_token, "not-a-token").unwrap();
    let (good, line) = run(vkey.clone(), bad_token).await;
    assert!(!good && line.contains("HTTP 401"), "{line}");
    // Without the certificate the self-signed server is not trusted.
    let out = s
        .cli(
            &[
                "audit",
                "verify",
                "--url",
                &s.base,
                "--tenant",
                "remote",
                "--vkey",
                &vkey,
                "--token-file",
                token_file.to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
}

/// The integrated size recorded in the region database (what the background integrator
/// has signed), read without going through the server.
fn integrated_size(data: &Path, slug: &str) -> i64 {
    let rows = crate::support::region_rows(
        data,
        &format!(
            "SELECT l.size FROM audit_logs l JOIN tenant_homes h USING (tenant_id) WHERE h.slug = '{slug}'"
        ),
    );
    rows.first().map_or(-1, |r| r[0].parse().unwrap())
}

#[tokio::test]
async fn the_server_integrates_and_signs_new_entries_by_itself() {
    let s = crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 100\n").await;
    let token = s.operator_token().await;
    tenant(&s, &token, "background").await;
    for i in 0..4 {
        assert_eq!(
            put(&s, &token, "background", &format!("s{i}"))
                .await
                .status(),
            200
        );
    }
    // Nobody asks for a checkpoint; the integrator signs one covering all 5 entries.
    let mut size = -1;
    for _ in 0..100 {
        size = integrated_size(&s.data_dir(), "background");
        if size == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(size, 5);
}

#[tokio::test]
async fn after_a_crash_under_load_every_acknowledged_write_has_its_entry() {
    let s = crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 20\n").await;
    let token = s.operator_token().await;
    tenant(&s, &token, "crash").await;
    // Four writers hammer eight secrets; the server is killed with SIGKILL mid-stream.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, token, acked, stop) = (
            s.client(),
            s.base.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("k{}", (w * 3 + i) % 8);
                i += 1;
                let resp = client
                    .put(format!("{url}/v1/tenants/crash/secrets/{name}"))
                    .bearer_auth(&token)
                    .json(&json!({"value": "v"}))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if let Some(version) = v["version"].as_u64() {
                            acked.lock().unwrap().push((name, version));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let dir = s.kill9().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "load was applied: {} writes", acked.len());

    let s = crate::support::restart(dir).await;

    let reader = crate::support::auditor(&s, "crash").await;
    let entries = all_entries(&s, &reader, "crash", "&action=tenant.secret.set", 500).await;
    let logged: BTreeSet<(String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["target"]["id"].as_str().unwrap().to_owned(),
                e["target"]["version"].as_u64().unwrap(),
            )
        })
        .collect();
    for a in &acked {
        assert!(logged.contains(a), "acknowledged write {a:?} has no entry");
    }
    // Log and data agree: each secret's stored version and ciphertext are those of its
    // last entry, and versions have no gaps (no entry for a write that did not happen).
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for e in &entries {
        let id = e["target"]["id"].as_str().unwrap().to_owned();
        let v = e["target"]["version"].as_u64().unwrap();
        let prev = last.get(&id).map_or(0, |p| p.0);
        assert_eq!(v, prev + 1, "versions of {id} in the log");
        last.insert(id, (v, e["after"].as_str().unwrap().to_owned()));
    }
    // Read back with Python's sqlite3; hash the ciphertexts here.
    let stored: BTreeMap<String, (u64, String)> = crate::support::region_rows(
        &s.data_dir(),
        "SELECT id, version, sealed FROM sealed_values WHERE kind = 'tenant-secret'",
    )
    .into_iter()
    .map(|r| {
        let sealed = hex::decode(&r[2]).unwrap();
        let hash = hex::encode(strongroom_core::audit::merkle::sha256(&[&sealed]));
        (r[0].clone(), (r[1].parse().unwrap(), hash))
    })
    .collect();
    assert_eq!(stored, last);
    // And the whole log verifies from an export after the restart.
    let vkey = ok(&s.cli(&["audit", "vkey", "--tenant", "crash"], None).await)
        .trim()
        .to_owned();
    let out_dir = s.dir.path().join("export-after-crash");
    ok(&s
        .cli(
            &[
                "audit",
                "export",
                "--tenant",
                "crash",
                "--dir",
                out_dir.to_str().unwrap(),
            ],
            None,
        )
        .await);
    let line = ok(&s
        .cli(
            &[
                "audit",
                "verify",
                "--dir",
                out_dir.to_str().unwrap(),
                "--vkey",
                &vkey,
            ],
            None,
        )
        .await);
    assert!(line.starts_with("OK: "), "{line}");
}

#[tokio::test]
async fn no_api_method_changes_or_removes_an_entry() {
    use strongroom_core::audit::note::{Checkpoint, Verifier};
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    tenant(&s, &token, "fixed").await;
    let reader = crate::support::auditor(&s, "fixed").await;
    assert_eq!(put(&s, &token, "fixed", "a").await.status(), 200);
    let vkey = get(&s, &reader, "/v1/t/fixed/audit/vkey")
        .await
        .text()
        .await
        .unwrap();
    let checkpoint = || async {
        let note = get(&s, &reader, "/v1/t/fixed/audit/checkpoint")
            .await
            .text()
            .await
            .unwrap();
        let v = Verifier::parse(&vkey).unwrap();
        let cp = Checkpoint::parse(v.open(&note).unwrap()).unwrap();
        (cp.size, cp.root)
    };
    let before = checkpoint().await;
    // Every audit path the API documents, with every writing method.
    let doc: Value = crate::support::send(&s, reqwest::Method::GET, "/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.contains("/audit"))
        .map(|p| {
            p.replace("{tenant}", "fixed")
                .replace("{path}", "entries/000.p/2")
        })
        .collect();
    assert!(paths.len() >= 7, "{paths:?}");
    for path in &paths {
        assert!(
            doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.contains("/audit"))
                .all(|(_, ops)| ops.as_object().unwrap().keys().all(|m| m == "get")),
            "audit operations are read-only"
        );
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
            reqwest::Method::PATCH,
        ] {
            let resp = s
                .client()
                .request(method.clone(), s.url(path))
                .bearer_auth(&token)
                .json(&json!({"seq": 0, "entry": "x"}))
                .send()
                .await
                .unwrap();
            expect_problem(resp, 405, "method-not-allowed").await;
        }
    }
    assert_eq!(checkpoint().await, before, "the log is unchanged");
}

/// Exports are streamed a page at a time (`audit.max_page` entries per step, here 3)
/// and still form one complete document: the same entries as paging through the
/// query API, in order, as JSON and as CSV, with no length known up front.
#[tokio::test]
async fn exports_stream_page_by_page_into_one_document() {
    let s = crate::support::start_configured("[audit]\nmax_page = 3\n").await;
    let op = s.operator_token().await;
    tenant(&s, &op, "streamed").await;
    for i in 0..10 {
        assert_eq!(
            put(&s, &op, "streamed", &format!("s{i}")).await.status(),
            200
        );
    }
    let reader = crate::support::auditor(&s, "streamed").await;
    let filter = "action=tenant.secret.set";
    let resp = get(
        &s,
        &reader,
        &format!("/v1/t/streamed/audit/export?{filter}"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), None, "streamed, not buffered");
    let exported: Vec<Value> = json_ok(resp).await.as_array().unwrap().clone();
    let paged = all_entries(&s, &reader, "streamed", &format!("&{filter}"), 3).await;
    assert_eq!(exported.len(), 10);
    assert_eq!(exported, paged);
    let csv = get(
        &s,
        &reader,
        &format!("/v1/t/streamed/audit/export?format=csv&{filter}"),
    )
    .await
    .text()
    .await
    .unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 11, "a header and ten rows: {csv}");
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("seq,")).count(),
        1,
        "one header"
    );
    // Nothing matching is still a document.
    let none = get(&s, &reader, "/v1/t/streamed/audit/export?action=key.shred").await;
    assert_eq!(json_ok(none).await, json!([]));
}

/// At most `audit.max_concurrent_exports` exports run at once; the next is refused
/// with a retry hint until one finishes or is abandoned (dropped).
#[tokio::test]
async fn concurrent_exports_are_bounded() {
    use strongroom_core::platform::{ExportFormat, Platform, PlatformError};
    use strongroom_core::store::AuditFilter;
    use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug};
    let dir = tempfile::tempdir().unwrap();
    let flags = vec![(
        "data_dir",
        toml::Value::String(dir.path().join("data").display().to_string()),
    )];
    let mut config =
        strongroom_core::config::Config::load(None, Vec::<(String, String)>::new(), flags).unwrap();
    config.audit.max_concurrent_exports = 2;
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    let p = Platform::open(
        opened.store,
        opened.blobs,
        opened.providers,
        std::sync::Arc::new(strongroom_core::clock::SystemClock),
        &config,
    )
    .await
    .unwrap();
    let me = crate::support::local_admin();
    let mut slugs = Vec::new();
    for name in ["bounded", "other", "third"] {
        let slug = Slug::parse(name).unwrap();
        p.create_tenant(
            &me,
            NewTenant {
                slug: slug.clone(),
                display_name: DisplayName::parse("B").unwrap(),
                region: RegionName::parse("local").unwrap(),
                key_provider: None,
            },
        )
        .await
        .unwrap();
        slugs.push(slug);
    }
    let (slug, other, third) = (&slugs[0], &slugs[1], &slugs[2]);
    let all = AuditFilter::default();
    let mut first = p
        .audit_export(&me, slug, &all, ExportFormat::Csv)
        .await
        .unwrap();
    let header = p.audit_export_next(&mut first).await.unwrap().unwrap();
    assert!(header.starts_with(b"seq,time,"));
    // One per tenant: the same tenant again is refused...
    let refused = p.audit_export(&me, slug, &all, ExportFormat::Json).await;
    assert!(
        matches!(refused, Err(PlatformError::AtCapacity { retry_after_secs, .. }) if retry_after_secs > 0),
        "{refused:?}"
    );
    // ...another tenant is not, until the global bound (2) is reached.
    let second = p
        .audit_export(&me, other, &all, ExportFormat::Json)
        .await
        .unwrap();
    let refused = p.audit_export(&me, third, &all, ExportFormat::Json).await;
    assert!(
        matches!(refused, Err(PlatformError::AtCapacity { .. })),
        "{refused:?}"
    );
    drop(second);
    drop(first); // a client that went away
    let mut again = p
        .audit_export(&me, slug, &all, ExportFormat::Json)
        .await
        .unwrap();
    let mut doc = Vec::new();
    while let Some(chunk) = p.audit_export_next(&mut again).await.unwrap() {
        doc.extend(chunk);
    }
    let entries: Vec<Value> = serde_json::from_slice(&doc).unwrap();
    assert!(!entries.is_empty());
}
