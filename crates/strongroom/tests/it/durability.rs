//! The write path under crashes: concurrent record creates (group commit on, as by
//! default) while the server is killed with SIGKILL, twenty times over the same data
//! directory. This proves the acknowledgement rule (nothing is answered before its
//! batch's COMMIT); a SIGKILL cannot lose what the kernel already holds, so it does not
//! test the flush, which is SQLite's `synchronous` contract.
//! After every restart each acknowledged write is present with its audit entry, nothing
//! that was not written appears, nothing is half-present, and at the end the tenant's
//! audit log verifies offline and `records verify` finds every record intact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use strongroom_testkit::Api;

use crate::records::Lab;
use crate::support::TestServer;

const TENANT: &str = "crash";
const WRITERS: usize = 16;
const ROUNDS: u32 = 20;

/// What the writers of one round learnt: batch numbers sent, and those acknowledged
/// (with the record id the server gave).
#[derive(Default)]
struct Round {
    sent: BTreeSet<String>,
    acked: BTreeMap<String, String>,
}

/// Sixteen writers create records as fast as the server answers, until it is gone.
fn writers(
    s: &TestServer,
    token: &str,
    round: u32,
    seen: &Arc<Mutex<Round>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (client, url, token, seen) = (
                s.client(),
                s.url(&format!("/v1/t/{TENANT}/records")),
                token.to_owned(),
                seen.clone(),
            );
            tokio::spawn(async move {
                for i in 0u32.. {
                    let batch_no = format!("R{round}-W{w}-{i}");
                    seen.lock().unwrap().sent.insert(batch_no.clone());
                    let body =
                        json!({"type": "batch", "content": {"batch_no": batch_no, "quantity": i}});
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    let Ok(resp) = sent else { break }; // the server is gone
                    if resp.status() != 201 {
                        break;
                    }
                    let Ok(v) = resp.json::<Value>().await else {
                        break;
                    };
                    let id = v["id"].as_str().unwrap().to_owned();
                    seen.lock().unwrap().acked.insert(batch_no, id);
                }
            })
        })
        .collect()
}

/// Every record of the tenant: batch number → (record id, current revision's content).
async fn stored(api: &Api, token: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = api
            .get(
                &format!("/v1/t/{TENANT}/records?type=batch&limit=100{after}"),
                token,
            )
            .await
            .ok(200);
        for r in page["items"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap().to_owned();
            let full = api
                .get(&format!("/v1/t/{TENANT}/records/{id}"), token)
                .await
                .ok(200);
            let batch_no = full["current"]["content"]["batch_no"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                out.insert(batch_no.clone(), id).is_none(),
                "{batch_no} stored twice"
            );
        }
        match page["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return out,
        }
    }
}

/// Record ids the tenant's audit trail has a `record.create` entry for.
async fn created_in_log(api: &Api, token: &str) -> BTreeSet<String> {
    api.audit_entries(token, TENANT)
        .await
        .iter()
        .filter(|e| e["action"] == "record.create")
        .map(|e| e["target"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn ok_cli(s: &TestServer, args: &[&str]) -> String {
    let out = s.cli(args, None).await;
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn kill_9_in_the_middle_of_group_commits_loses_no_acknowledged_write_twenty_times() {
    crate::support::sqlite_only!("reads the region database file");
    let lab = Lab::on(
        crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 20\n").await,
        TENANT,
    )
    .await;
    let (_, _) = lab
        .user(TENANT, "al@crash.example", "Al", &["preparer"])
        .await;
    let mut s = lab.s;
    let mut acked_total: BTreeMap<String, String> = BTreeMap::new();
    let mut sent_total: BTreeSet<String> = BTreeSet::new();
    let mut batched_rounds = 0;
    for round in 0..ROUNDS {
        let api = s.api();
        let author = api.sign_in(TENANT, "al@crash.example").await.access;
        let seen = Arc::new(Mutex::new(Round::default()));
        let running = writers(&s, &author, round, &seen);
        // Vary where in the stream the kill lands, and let some writes through first.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().acked.len() < 8 {
            assert!(
                std::time::Instant::now() < deadline && !running.iter().all(|w| w.is_finished()),
                "round {round}: the writers stopped before eight writes were acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(round % 5) * 20)).await;
        let dir = s.kill9().await;
        for w in running {
            w.await.unwrap();
        }
        let Round { sent, acked } = std::mem::take(&mut *seen.lock().unwrap());
        sent_total.extend(sent);
        acked_total.extend(acked);

        s = crate::support::restart(dir).await;
        let api = s.api();
        let admin_after = api
            .sign_in(TENANT, &format!("admin@{TENANT}.example"))
            .await
            .access;
        let now = stored(&api, &admin_after).await;
        for (batch_no, id) in &acked_total {
            assert_eq!(
                now.get(batch_no),
                Some(id),
                "round {round}: acknowledged {batch_no} is missing"
            );
        }
        for batch_no in now.keys() {
            assert!(
                sent_total.contains(batch_no),
                "round {round}: {batch_no} was never sent"
            );
        }
        // Every stored record (acknowledged or not) has its creation entry, and every
        // creation entry names a stored record: data and log committed together.
        let logged = created_in_log(&api, &admin_after).await;
        let ids: BTreeSet<String> = now.values().cloned().collect();
        assert_eq!(
            logged, ids,
            "round {round}: records and their audit entries differ"
        );
        let rows = crate::support::region_rows(
            &s.data_dir(),
            "SELECT count(*) FROM record_revisions r JOIN records c ON c.id = r.record_id",
        );
        assert_eq!(
            rows[0][0],
            ids.len().to_string(),
            "round {round}: one revision per record"
        );
        if now.len() > acked_total.len() {
            // Some writes committed whose answers the kill cut off: batches were in flight.
            batched_rounds += 1;
        }
    }
    eprintln!(
        "{} writes acknowledged over {ROUNDS} kills; {batched_rounds} rounds had commits the client never heard of",
        acked_total.len()
    );

    // The whole log verifies offline, and every record's hashes and signatures check.
    let vkey = ok_cli(&s, &["audit", "vkey", "--tenant", TENANT])
        .await
        .trim()
        .to_owned();
    let out_dir = s.dir.path().join("export-after-crashes");
    let out_str = out_dir.to_str().unwrap().to_owned();
    ok_cli(
        &s,
        &["audit", "export", "--tenant", TENANT, "--dir", &out_str],
    )
    .await;
    let state = s.dir.path().join("verify-state.json");
    ok_cli(
        &s,
        &[
            "audit",
            "verify",
            "--dir",
            &out_str,
            "--vkey",
            &vkey,
            "--state",
            state.to_str().unwrap(),
        ],
    )
    .await;
    ok_cli(&s, &["records", "verify", "--tenant", TENANT]).await;
}

/// Rows of the pending-work index, as `tenant kind` pairs (read with Python's sqlite3).
fn pending(s: &TestServer) -> Vec<String> {
    crate::support::region_rows(
        &s.data_dir(),
        "SELECT tenant_id || ' ' || kind FROM work_pending ORDER BY 1",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

/// Polls (up to 30 s) until `done` holds for the pending-work index.
async fn until_pending(
    s: &TestServer,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    for _ in 0..300 {
        let rows = pending(s);
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: pending work is still {:?}", pending(s));
}

#[tokio::test]
async fn background_rounds_find_work_through_the_pending_index_which_idle_tenants_leave_empty() {
    crate::support::sqlite_only!("reads the region database file (PostgreSQL keeps no index yet)");
    let s = crate::support::start_configured("[audit]\ncheckpoint_interval_ms = 50\n").await;
    let op = s.operator_token().await;
    let api = s.api();
    for t in ["idle-a", "idle-b", "busy"] {
        api.create_tenant(&op, t).await;
    }
    // Each new tenant's first entries mark it; the integrator checkpoints them and
    // clears every audit mark, so an idle round visits no tenant.
    until_pending(&s, "after creation", |rows| {
        rows.iter().all(|r| !r.ends_with(" audit"))
    })
    .await;
    let lab = Lab::on(s, "lab").await;
    until_pending(&lab.s, "after the lab's set-up", |rows| {
        rows.iter().all(|r| !r.ends_with(" audit"))
    })
    .await;
    // A write marks its tenant, in the same transaction as its audit entry; the next
    // round integrates it (its entry gets an inclusion proof) and clears the mark.
    let (_, author) = lab.user("lab", "al@lab.example", "Al", &["preparer"]).await;
    let r = lab
        .create("lab", &author, json!({"batch_no": "B-1", "quantity": 1}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    until_pending(&lab.s, "after a write", |rows| {
        rows.iter().all(|r| !r.ends_with(" audit"))
    })
    .await;
    let entries = lab.api.audit_entries(&lab.admin, "lab").await;
    let last = entries.last().unwrap()["seq"].as_u64().unwrap();
    let proof = lab
        .api
        .get(
            &format!("/v1/t/lab/audit/proof/inclusion?index={last}"),
            &lab.admin,
        )
        .await;
    assert_eq!(
        proof.status, 200,
        "the last entry is in a checkpoint: {}",
        proof.text
    );
    assert!(proof.json()["checkpoint_size"].as_u64().unwrap() > last);
    // No re-encryption is pending anywhere either (no data key was rotated).
    assert!(pending(&lab.s).is_empty(), "{:?}", pending(&lab.s));
}
