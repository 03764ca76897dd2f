//! The records port: the change counter is a compare-and-swap, an approved version
//! cannot be changed through the port, a failed audit append leaves no record, and a
//! tenant scope reaches none of another tenant's records.

use strongroom_core::access::TenantScope;
use strongroom_core::store::{
    Page, RecordChange, RecordFilter, Store, StoredRecord, StoredRevision, StoredSignature,
    StoredVersion, VersionUpdate,
};

use super::{Backend, create, ev, now, tenant};

fn record(id: &str) -> (StoredRecord, StoredVersion, StoredRevision) {
    (
        StoredRecord {
            id: id.into(),
            type_name: "batch".into(),
            current_version: 1,
            status: "draft".into(),
            seq: 1,
            created_by: "u1".into(),
            created_at: now(),
            updated_at: now(),
        },
        StoredVersion {
            version: 1,
            type_version: 1,
            state: "draft".into(),
            revision: 1,
            content_hash: [1; 32],
            created_by: "u1".into(),
            created_at: now(),
            approved_at: None,
        },
        revision(1, [1; 32]),
    )
}

fn revision(n: u64, hash: [u8; 32]) -> StoredRevision {
    StoredRevision {
        version: 1,
        revision: n,
        dek_version: 1,
        sealed: vec![0xaa; 48],
        attachments: "[]".into(),
        content_hash: hash,
        saved_by: "u1".into(),
        saved_at: now(),
    }
}

fn change(id: &str, expected: u64, state: &str, revision: Option<StoredRevision>) -> RecordChange {
    let hash = revision.as_ref().map_or([1; 32], |r| r.content_hash);
    let n = revision.as_ref().map_or(1, |r| r.revision);
    RecordChange {
        record: id.into(),
        expected_seq: expected,
        status: state.into(),
        current_version: 1,
        at: now(),
        new_version: None,
        version_update: Some(VersionUpdate {
            version: 1,
            state: state.into(),
            revision: n,
            content_hash: hash,
            approved_at: (state == "approved").then(now),
        }),
        revision,
        signature: None,
        event: None,
        index: Some(vec![("batch_no".into(), [9; 32])]),
    }
}

async fn seq(s: &dyn Store, scope: &TenantScope, id: &str) -> u64 {
    s.record(scope, id).await.unwrap().unwrap().seq
}

/// Stale writers change nothing; an approved version refuses every later change.
pub(crate) async fn record_changes_are_compare_and_swap_and_approval_is_final<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = create(s, &tenant("acme", "eu")).await;
    let w = scope.writable().unwrap();
    let (r, v, rev) = record("r1");
    s.create_record(&w, &r, &v, &rev, &[], &ev()).await.unwrap();
    assert!(
        s.change_record(
            &w,
            &change("r1", 1, "draft", Some(revision(2, [2; 32]))),
            &[ev()]
        )
        .await
        .unwrap()
    );
    // The same base again: stale, nothing written (no revision 2 twice, no entry).
    let entries = s.audit_len(&scope).await.unwrap();
    assert!(
        !s.change_record(
            &w,
            &change("r1", 1, "draft", Some(revision(3, [3; 32]))),
            &[ev()]
        )
        .await
        .unwrap()
    );
    assert_eq!(s.audit_len(&scope).await.unwrap(), entries);
    assert_eq!(s.record_revisions(&scope, "r1").await.unwrap().len(), 2);
    // Approve, then try to change the approved version through the port.
    assert!(
        s.change_record(&w, &change("r1", 2, "approved", None), &[ev()])
            .await
            .unwrap()
    );
    let after = s.record_versions(&scope, "r1").await.unwrap();
    assert_eq!(after[0].state, "approved");
    let entries = s.audit_len(&scope).await.unwrap();
    let attempt = s
        .change_record(
            &w,
            &change("r1", 3, "draft", Some(revision(3, [4; 32]))),
            &[ev()],
        )
        .await;
    assert!(attempt.is_err(), "an approved version was changed");
    assert_eq!(
        s.record_versions(&scope, "r1").await.unwrap()[0].content_hash,
        after[0].content_hash
    );
    assert_eq!(
        seq(s, &scope, "r1").await,
        3,
        "the failed change rolled back whole"
    );
    assert_eq!(s.audit_len(&scope).await.unwrap(), entries);
    assert_eq!(s.record_revisions(&scope, "r1").await.unwrap().len(), 2);
}

/// A record write whose audit append fails leaves no record behind.
pub(crate) async fn a_record_write_whose_audit_append_fails_leaves_nothing<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = create(s, &tenant("acme", "eu")).await;
    let w = scope.writable().unwrap();
    b.break_audit_appends(&scope).await;
    let (r, v, rev) = record("r1");
    assert!(s.create_record(&w, &r, &v, &rev, &[], &ev()).await.is_err());
    assert!(s.record(&scope, "r1").await.unwrap().is_none());
    assert!(s.record_revisions(&scope, "r1").await.unwrap().is_empty());
}

/// Tenant A's scope with tenant B's record id: nothing read, nothing changed.
pub(crate) async fn a_tenant_scope_cannot_reach_another_tenants_records<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let a = create(s, &tenant("alpha", "eu")).await;
    let bravo = create(s, &tenant("bravo", "eu")).await;
    let wb = bravo.writable().unwrap();
    let (r, v, rev) = record("shared-id");
    s.create_record(&wb, &r, &v, &rev, &[("batch_no".into(), [9; 32])], &ev())
        .await
        .unwrap();
    let mut submit = change("shared-id", 1, "in_review", None);
    submit.status = "in_review".into();
    submit.signature = Some(StoredSignature {
        id: "sig-1".into(),
        record_id: "shared-id".into(),
        version: 1,
        signer_id: "u2".into(),
        printed_name: "Bo".into(),
        meaning: "authored".into(),
        comment: None,
        signed_at: now(),
        content_hash: [1; 32],
        session_id: "sess-b".into(),
        reauth: "password".into(),
        signature_hash: [7; 32],
        audit_seq: 0,
    });
    assert!(s.change_record(&wb, &submit, &[ev()]).await.unwrap());
    assert!(s.record(&a, "shared-id").await.unwrap().is_none());
    let page = Page {
        after: None,
        limit: 100,
    };
    let everything = RecordFilter {
        index: vec![("batch_no".into(), [9; 32])],
        ..RecordFilter::default()
    };
    assert!(s.records(&a, &everything, &page).await.unwrap().is_empty());
    assert!(
        s.records(&a, &RecordFilter::default(), &page)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.record_versions(&a, "shared-id").await.unwrap().is_empty());
    assert!(
        s.record_revisions(&a, "shared-id")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.record_signatures(&a, "shared-id")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.record_events(&a, "shared-id").await.unwrap().is_empty());
    assert!(!s.session_has_signed(&a, "sess-b").await.unwrap());
    let wa = a.writable().unwrap();
    assert!(
        !s.change_record(&wa, &change("shared-id", 2, "approved", None), &[ev()])
            .await
            .unwrap()
    );
    // B's record is as it was.
    assert_eq!(seq(s, &bravo, "shared-id").await, 2);
    assert_eq!(
        s.record_versions(&bravo, "shared-id").await.unwrap()[0].state,
        "in_review"
    );
    assert_eq!(
        s.record_signatures(&bravo, "shared-id")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.session_has_signed(&bravo, "sess-b").await.unwrap());
}
