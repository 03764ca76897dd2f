//! Tenant isolation at the storage layer: a scope on tenant A names none of tenant B's
//! rows, for reading or for writing, even with B's ids in hand and both tenants in the
//! same region's database.

use strongroom_core::access::TenantScope;
use strongroom_core::access::rbac::Role;
use strongroom_core::identity::Email;
use strongroom_core::identity::application::StoredApplication;
use strongroom_core::identity::user::{StoredSession, UserStatus};
use strongroom_core::store::{
    AuditFilter, NewUserRow, Page, RefreshOutcome, Store, StoredBlob, StoredSealed, UserChange,
};
use strongroom_core::tenant::Tenant;

use super::identity::{app, probe, session, user_row};
use super::{Backend, create, ev, now, tenant};

/// What tenant B holds, for the attempts to reach it.
struct Bravo {
    scope: TenantScope,
    bob: NewUserRow,
    session: StoredSession,
    secret: StoredSealed,
    application: StoredApplication,
    blob: StoredBlob,
    entries: u64,
}

/// Everything tenant B has, tried with tenant A's scope: nothing is found, nothing
/// changes, and B's rows are as they were.
pub(crate) async fn a_tenant_scope_cannot_reach_another_tenants_rows<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let ta = tenant("alpha", "eu");
    let a = create(s, &ta).await;
    let bravo = bravo(s).await;
    reads_find_nothing(s, &ta, &a, &bravo).await;
    writes_change_nothing(s, &a, &bravo).await;
    untouched(s, &bravo).await;
}

async fn bravo(s: &dyn Store) -> Bravo {
    let tb = tenant("bravo", "eu");
    let scope = create(s, &tb).await;
    let w = scope.writable().unwrap();
    let bob = user_row("bob@bravo.example", &[Role::Admin]);
    s.insert_user(&w, &bob, &ev()).await.unwrap();
    let session = session(bob.user.id);
    s.create_session(&scope, &session, &[5; 32], &ev())
        .await
        .unwrap();
    let secret = StoredSealed {
        id: "smtp".into(),
        version: 1,
        dek_version: 1,
        sealed: vec![0xb; 40],
    };
    assert!(
        s.put_sealed(&scope, "tenant-secret", &secret, 0, &ev())
            .await
            .unwrap()
    );
    let application = app(&tb);
    s.insert_application(&w, &application, "user:x", &ev())
        .await
        .unwrap();
    let blob = StoredBlob {
        id: "doc".into(),
        dek_version: 1,
        size: 3,
        file: "f".into(),
    };
    s.insert_blob(&w, &blob, &ev()).await.unwrap();
    let entries = s.audit_len(&scope).await.unwrap();
    Bravo {
        scope,
        bob,
        session,
        secret,
        application,
        blob,
        entries,
    }
}

async fn reads_find_nothing(s: &dyn Store, ta: &Tenant, a: &TenantScope, b: &Bravo) {
    let id = b.bob.user.id;
    assert!(s.user(a, id).await.unwrap().is_none());
    let email = Email::parse("bob@bravo.example").unwrap();
    assert!(
        s.user_credentials(&probe(ta), &email)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.users(
            a,
            &Page {
                after: None,
                limit: 10
            }
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(s.session(a, &b.session.id).await.unwrap().is_none());
    let r = s
        .rotate_refresh(&probe(ta), &[5; 32], &[6; 32], now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Invalid));
    assert!(
        s.sealed(a, "tenant-secret", "smtp")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.sealed_before(a, "tenant-secret", 9, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.application(a, b.application.app.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.applications(a, 10).await.unwrap().is_empty());
    assert!(s.blob(a, "doc").await.unwrap().is_none());
    assert!(s.blobs_before(a, 9, 10).await.unwrap().is_empty());
    let a_trail = s
        .audit_query(a, &AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(a_trail.len(), 1, "only A's own creation");
    assert!(!s.has_users(a).await.unwrap());
}

async fn writes_change_nothing(s: &dyn Store, a: &TenantScope, b: &Bravo) {
    let aw = a.writable().unwrap();
    let id = b.bob.user.id;
    let change = UserChange {
        status: Some(UserStatus::Disabled),
        roles: Some(vec![]),
        granted_by: "user:attacker".into(),
        at: now(),
    };
    assert!(
        s.update_user(&aw, id, &change, &ev())
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.delete_user(&aw, id, &ev_with_reason()).await.unwrap());
    let app = b.application.app.id;
    assert!(
        !s.set_application_active(&aw, app, false, &ev())
            .await
            .unwrap()
    );
    s.revoke_session(a, &b.session.id, &ev()).await.unwrap();
    let moved = StoredSealed {
        version: 2,
        sealed: vec![0xa; 40],
        ..b.secret.clone()
    };
    assert!(
        !s.reseal(a, "tenant-secret", &b.secret, &moved, &ev())
            .await
            .unwrap()
    );
    let moved_blob = StoredBlob {
        file: "g".into(),
        ..b.blob.clone()
    };
    assert!(!s.reseal_blob(a, &b.blob, &moved_blob, &ev()).await.unwrap());
}

async fn untouched(s: &dyn Store, b: &Bravo) {
    let bs = &b.scope;
    let still = s.user(bs, b.bob.user.id).await.unwrap().unwrap();
    assert_eq!(
        (still.status, still.roles),
        (b.bob.user.status, b.bob.user.roles.clone())
    );
    assert!(!s.session(bs, &b.session.id).await.unwrap().unwrap().revoked);
    let secret = s
        .sealed(bs, "tenant-secret", "smtp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret.sealed, b.secret.sealed);
    let app = s
        .application(bs, b.application.app.id)
        .await
        .unwrap()
        .unwrap();
    assert!(app.app.active);
    assert_eq!(s.blob(bs, "doc").await.unwrap().unwrap().file, "f");
    assert_eq!(s.audit_len(bs).await.unwrap(), b.entries);
}

fn ev_with_reason() -> strongroom_core::store::AuditEvent {
    let mut e = ev();
    e.entry.reason = Some("attempt".into());
    e
}
