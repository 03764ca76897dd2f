//! Conformance of the support-access port: a grant lets one operator in for one scope
//! until it expires or is revoked, each change audited with it; expiries are reported
//! once; and one tenant's grants are no other tenant's.

use strongroom_core::identity::operator::OperatorId;
use strongroom_core::store::{SupportGrant, SupportScope};
use time::Duration;

use super::{Backend, create, ev, now, tenant};

fn grant(operator: OperatorId, hours: i64) -> SupportGrant {
    SupportGrant {
        id: uuid::Uuid::new_v4().to_string(),
        operator,
        scope: SupportScope::AuditRead,
        personal_data: false,
        reason: "ticket 42".into(),
        granted_by: "user:x".into(),
        created_at: now(),
        expires_at: now() + Duration::hours(hours),
        revoked_at: None,
    }
}

/// Grants: live for their operator and scope until expiry or revocation (revoking
/// twice is refused), audited with each change, expiries reported until recorded, and
/// invisible from another tenant.
pub(crate) async fn support_grants_let_one_operator_in_until_revoked_or_expired<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("supported", "eu")).await;
    let other = create(s, &tenant("elsewhere", "eu")).await;
    let (op, stranger) = (OperatorId::generate(), OperatorId::generate());
    let short = grant(op, 1);
    let long = grant(op, 48);
    let entries = s.audit_len(&home).await.unwrap();
    for g in [&short, &long] {
        s.insert_support_grant(&home.writable().unwrap(), g, &ev())
            .await
            .unwrap();
    }
    assert_eq!(s.audit_len(&home).await.unwrap(), entries + 2, "audited");
    let live = |at| s.live_support_grant(&home, op, SupportScope::AuditRead, at);
    assert!(live(now()).await.unwrap().is_some());
    assert!(
        s.live_support_grant(&home, stranger, SupportScope::AuditRead, now())
            .await
            .unwrap()
            .is_none(),
        "another operator"
    );
    assert!(
        s.live_support_grant(&other, op, SupportScope::AuditRead, now())
            .await
            .unwrap()
            .is_none(),
        "another tenant"
    );
    assert_eq!(s.support_grants(&home, 10).await.unwrap().len(), 2);
    assert!(s.support_grants(&other, 10).await.unwrap().is_empty());
    // Two hours on: the short grant has expired, reported until its expiry is recorded.
    let later = now() + Duration::hours(2);
    let expired = s.unrecorded_expiries(&home, later).await.unwrap();
    assert_eq!(
        expired.iter().map(|g| &g.id).collect::<Vec<_>>(),
        [&short.id]
    );
    s.record_expiry(&home, &short.id, &ev()).await.unwrap();
    assert!(
        s.unrecorded_expiries(&home, later)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(live(later).await.unwrap().unwrap().id, long.id);
    // Revoked: at once, once, and not from another tenant.
    assert!(
        !s.revoke_support_grant(&other, &long.id, &ev())
            .await
            .unwrap()
    );
    assert!(
        s.revoke_support_grant(&home, &long.id, &ev())
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_support_grant(&home, &long.id, &ev())
            .await
            .unwrap()
    );
    assert!(
        live(later).await.unwrap().is_none(),
        "neither grant lets in now"
    );
}
