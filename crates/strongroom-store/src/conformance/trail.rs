//! Conformance of the audit port: atomic appends, an append-only log, numbering,
//! queries, and erasure of personal-data keys.

use strongroom_core::audit::entry::Action;
use strongroom_core::audit::merkle::leaf_hash;
use strongroom_core::store::{AuditFilter, StoredEntry, StoredSealed, StoredSubjectKey};

use super::{Backend, create, ev, event_at, now, tenant};

fn sealed(version: u64, byte: u8) -> StoredSealed {
    StoredSealed {
        id: "sso".into(),
        version,
        dek_version: 1,
        sealed: vec![byte; 40],
    }
}

/// A regulated write whose audit entry cannot be appended does not happen.
pub(crate) async fn a_write_whose_audit_append_fails_leaves_no_trace<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("audited", "eu")).await;
    assert!(
        s.put_sealed(&home, "tenant-secret", &sealed(1, 1), 0, &ev())
            .await
            .unwrap()
    );
    assert_eq!(s.audit_entries(&home, 0, 10).await.unwrap().len(), 2);
    b.break_audit_appends(&home).await;
    let err = s
        .put_sealed(&home, "tenant-secret", &sealed(2, 2), 1, &ev())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("storage failure"), "{err}");
    let stored = s
        .sealed(&home, "tenant-secret", "sso")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.version, stored.sealed),
        (1, vec![1; 40]),
        "rolled back"
    );
    assert_eq!(s.audit_entries(&home, 0, 10).await.unwrap().len(), 2);
}

/// The database itself refuses to change or remove an entry.
pub(crate) async fn the_database_refuses_to_update_or_delete_audit_entries<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("append-only", "eu")).await;
    for refused in b.rewrite_audit(&home).await {
        let e = refused.expect("the database allowed an audit entry to change");
        // By a trigger ("append-only") or, on PostgreSQL, by the role's privileges.
        assert!(
            e.contains("append-only") || e.contains("permission denied"),
            "{e}"
        );
    }
    let entries = s.audit_entries(&home, 0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    let text = String::from_utf8(entries[0].entry.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"action":"tenant.create","#) && text.contains(r#""seq":0"#),
        "{text}"
    );
    assert_eq!(entries[0].leaf_hash, leaf_hash(&entries[0].entry));
}

fn field(e: &StoredEntry, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&e.entry).unwrap();
    v[name].clone()
}

/// Sequence numbers run 0, 1, 2, … and an entry's time is never before the previous
/// entry's, whatever clock the writer had.
pub(crate) async fn entries_are_numbered_without_gaps_and_time_never_goes_back<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("numbered", "eu")).await;
    for secs in [-10, 5, -3, 20] {
        let at = now() + time::Duration::seconds(secs);
        s.append_audit(&home, &event_at(Action::AuditQuery, at))
            .await
            .unwrap();
    }
    let entries = s.audit_entries(&home, 0, 100).await.unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    let times: Vec<String> = entries
        .iter()
        .map(|e| field(e, "time").as_str().unwrap().to_owned())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(s.audit_len(&home).await.unwrap(), 5);
    assert_eq!(s.audit_entries(&home, 3, 100).await.unwrap().len(), 2);
}

/// Queries return exactly the matching entries, in order, from the cursor on.
pub(crate) async fn audit_queries_filter_and_page<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("queried", "eu")).await;
    for action in [Action::AuditQuery, Action::AuditExport, Action::AuditQuery] {
        s.append_audit(&home, &event_at(action, now()))
            .await
            .unwrap();
    }
    let only = |action: &str| AuditFilter {
        action: Some(action.into()),
        ..AuditFilter::default()
    };
    let queries = s
        .audit_query(&home, &only("audit.query"), 0, 10)
        .await
        .unwrap();
    assert_eq!(queries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
    let rest = s
        .audit_query(&home, &only("audit.query"), 2, 10)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    let one = s
        .audit_query(&home, &AuditFilter::default(), 0, 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let by_target = AuditFilter {
        target: Some("tenant:t".into()),
        until: Some(now() - time::Duration::seconds(1)),
        ..AuditFilter::default()
    };
    assert!(
        s.audit_query(&home, &by_target, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Erasure destroys the subject's keys and nobody else's, and is itself audited.
pub(crate) async fn erasing_a_subject_destroys_only_its_keys<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("erasure", "eu")).await;
    for (subject, key_id) in [("user:a", "k-a"), ("user:b", "k-b")] {
        let key = StoredSubjectKey {
            key_id: key_id.into(),
            wrapped: Some(vec![9; 60]),
        };
        s.insert_audit_subject_key(&home, subject, &key, now())
            .await
            .unwrap();
    }
    let w = home.writable().unwrap();
    let before = s.audit_len(&home).await.unwrap();
    let event = event_at(Action::SubjectErase, now());
    let mut event = event;
    event.entry.reason = Some("GDPR request".into());
    assert_eq!(
        s.erase_audit_subject(&w, "user:a", &event).await.unwrap(),
        1
    );
    assert!(
        s.audit_subject_key(&home, "user:a")
            .await
            .unwrap()
            .is_none()
    );
    let erased = s
        .audit_subject_key_by_id(&home, "k-a")
        .await
        .unwrap()
        .unwrap();
    assert!(erased.wrapped.is_none(), "the key material is gone");
    assert!(
        s.audit_subject_key(&home, "user:b")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.audit_len(&home).await.unwrap(), before + 1);
}
