//! Conformance of the identity ports: users and grants, invitations, sessions and
//! refresh tokens, applications.

use strongroom_core::access::rbac::{Permission, Role};
use strongroom_core::access::{self, PlatformAction, TenantScope};
use strongroom_core::audit::entry::Action;
use strongroom_core::identity::Email;
use strongroom_core::identity::application::{AppId, Application, StoredApplication};
use strongroom_core::identity::user::{StoredSession, User, UserId, UserStatus};
use strongroom_core::store::{
    NewUserRow, Page, RefreshOutcome, StoreError, StoredInvitation, StoredSealed, UserChange,
};
use strongroom_core::tenant::Tenant;
use time::Duration;

use super::{Backend, create, ev, event_at, now, platform, tenant};

/// A new user row for `email` with `roles`.
pub(crate) fn user_row(email: &str, roles: &[Role]) -> NewUserRow {
    NewUserRow {
        user: User {
            id: UserId::generate(),
            email: Email::parse(email).unwrap(),
            full_name: String::new(),
            status: UserStatus::Active,
            roles: roles.to_vec(),
            created_at: now(),
        },
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"
            .into(),
        granted_by: "local-admin".into(),
    }
}

/// A live session of `user` (not stored).
pub(crate) fn session(user: UserId) -> StoredSession {
    StoredSession {
        id: uuid::Uuid::new_v4().to_string(),
        user,
        expires_at: now() + Duration::hours(12),
        revoked: false,
        restricted: false,
        second_factor: false,
    }
}

/// The sign-in scope of `t`.
pub(crate) fn probe(t: &Tenant) -> access::SignInScope {
    access::sign_in(&platform(PlatformAction::ReadTenants), t)
}

/// An application of `t` (not stored).
pub(crate) fn app(t: &Tenant) -> StoredApplication {
    let id = AppId::generate();
    StoredApplication {
        app: Application {
            id,
            client_id: format!("{}.{id}", t.slug),
            name: "Batch import".into(),
            permissions: vec![Permission::RecordsRead],
            active: true,
            created_at: now(),
        },
        secret_hash: [7; 32],
    }
}

/// An invitation can be spent once, only by its address, only before it expires.
pub(crate) async fn invitations_work_once_for_their_address_and_not_after_expiry<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("invites", "eu");
    let home = create(s, &t).await.writable().unwrap();
    let invite = |hash: u8, expires| StoredInvitation {
        hash: [hash; 32],
        email: Email::parse("new@acme.example").unwrap(),
        role: Role::Admin,
        expires_at: expires,
    };
    let expired = invite(1, now() - Duration::seconds(1));
    let live = invite(2, now() + Duration::hours(72));
    for inv in [&expired, &live] {
        s.insert_invitation(&home, inv, "operator:x", &ev())
            .await
            .unwrap();
    }
    assert!(!s.has_users(&home).await.unwrap());
    let found = s.invitation(&probe(&t), &live.hash, now()).await.unwrap();
    assert_eq!(found.unwrap().email.as_str(), "new@acme.example");
    assert!(
        s.invitation(&probe(&t), &expired.hash, now())
            .await
            .unwrap()
            .is_none()
    );
    let home = &home;
    let accept = |hash, email| {
        let row = user_row(email, &[]);
        async move {
            s.accept_invitation(home, hash, &row, now(), &ev())
                .await
                .unwrap()
        }
    };
    assert!(
        accept(&expired.hash, "new@acme.example").await.is_none(),
        "expired"
    );
    assert!(
        accept(&live.hash, "other@acme.example").await.is_none(),
        "other address"
    );
    let ok = accept(&live.hash, "NEW@acme.example")
        .await
        .expect("accepted");
    assert_eq!(ok.role, Role::Admin);
    assert!(
        accept(&live.hash, "new@acme.example").await.is_none(),
        "spent"
    );
    assert!(
        s.invitation(&probe(&t), &live.hash, now())
            .await
            .unwrap()
            .is_none()
    );
    let users = s
        .users(
            home,
            &Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].roles, vec![Role::Admin]);
    assert!(s.has_users(home).await.unwrap());
}

async fn new_user(s: &dyn strongroom_core::store::Store, home: &TenantScope, email: &str) -> User {
    let row = user_row(email, &[Role::Preparer]);
    s.insert_user(&home.writable().unwrap(), &row, &ev())
        .await
        .unwrap();
    row.user
}

/// E-mails are unique per tenant (any case); disabling a user revokes their sessions in
/// the same write; role changes replace the grants.
pub(crate) async fn users_are_unique_per_tenant_and_disabling_revokes_sessions<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("people", "eu");
    let home = create(s, &t).await;
    let ann = new_user(s, &home, "ann@acme.example").await;
    let dup = user_row("ANN@acme.example", &[]);
    assert!(matches!(
        s.insert_user(&home.writable().unwrap(), &dup, &ev()).await,
        Err(StoreError::Conflict { .. })
    ));
    let other = create(s, &tenant("others", "eu")).await;
    new_user(s, &other, "ann@acme.example").await; // another tenant: fine
    let sess = session(ann.id);
    s.create_session(&home, &sess, &[1; 32], &ev())
        .await
        .unwrap();
    let creds = s
        .user_credentials(&probe(&t), &Email::parse("Ann@Acme.example").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user.id, ann.id);
    let change = UserChange {
        status: Some(UserStatus::Disabled),
        roles: Some(vec![Role::Reviewer, Role::Viewer]),
        granted_by: "user:x".into(),
        at: now(),
    };
    let w = home.writable().unwrap();
    let changed = s
        .update_user(&w, ann.id, &change, &ev())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.status, UserStatus::Disabled);
    assert_eq!(changed.roles, vec![Role::Reviewer, Role::Viewer]);
    let revoked = s.session(&home, &sess.id).await.unwrap().unwrap();
    assert!(revoked.revoked, "disabling revoked the session");
    assert!(
        s.update_user(&w, UserId::generate(), &change, &ev())
            .await
            .unwrap()
            .is_none()
    );
}

/// A refresh token works once; its second use revokes the session.
pub(crate) async fn refresh_tokens_rotate_once_and_reuse_revokes_the_session<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("refresh", "eu");
    let home = create(s, &t).await;
    let ann = new_user(s, &home, "ann@acme.example").await;
    let sess = session(ann.id);
    s.create_session(&home, &sess, &[1; 32], &ev())
        .await
        .unwrap();
    let p = probe(&t);
    let r = s
        .rotate_refresh(&p, &[1; 32], &[2; 32], now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Rotated(ref x) if x.id == sess.id));
    let r = s
        .rotate_refresh(&p, &[2; 32], &[3; 32], now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Rotated(_)));
    let r = s
        .rotate_refresh(&p, &[1; 32], &[4; 32], now())
        .await
        .unwrap();
    assert!(
        matches!(r, RefreshOutcome::Reused(_)),
        "first token replayed"
    );
    // Reported, not acted on: the revocation comes with its audit entry.
    assert!(!s.session(&p, &sess.id).await.unwrap().unwrap().revoked);
    let before = s.audit_len(&home).await.unwrap();
    s.revoke_session(&home, &sess.id, &ev()).await.unwrap();
    assert!(s.session(&p, &sess.id).await.unwrap().unwrap().revoked);
    assert_eq!(s.audit_len(&home).await.unwrap(), before + 1);
    let r = s
        .rotate_refresh(&p, &[3; 32], &[5; 32], now())
        .await
        .unwrap();
    assert!(
        matches!(r, RefreshOutcome::Invalid),
        "the session is revoked"
    );
    let r = s
        .rotate_refresh(&p, &[9; 32], &[6; 32], now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Invalid), "unknown token");
    // An expired session is not refreshed.
    let late = session(ann.id);
    s.create_session(&home, &late, &[7; 32], &ev())
        .await
        .unwrap();
    let after = now() + Duration::hours(13);
    let r = s
        .rotate_refresh(&p, &[7; 32], &[8; 32], after)
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Invalid));
}

/// Deleting a user takes their sessions, grants and second factors with them.
pub(crate) async fn deleting_a_user_removes_their_sessions_grants_and_factors<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("leavers", "eu");
    let home = create(s, &t).await;
    let ann = new_user(s, &home, "ann@acme.example").await;
    let sess = session(ann.id);
    s.create_session(&home, &sess, &[1; 32], &ev())
        .await
        .unwrap();
    let factor = StoredSealed {
        id: ann.id.to_string(),
        version: 1,
        dek_version: 1,
        sealed: vec![1; 40],
    };
    for kind in ["user-mfa", "user-passkeys"] {
        assert!(s.put_sealed(&home, kind, &factor, 0, &ev()).await.unwrap());
    }
    let mut event = event_at(Action::UserDelete, now());
    event.entry.reason = Some("left the company".into());
    let w = home.writable().unwrap();
    assert!(s.delete_user(&w, ann.id, &event).await.unwrap());
    assert!(s.user(&home, ann.id).await.unwrap().is_none());
    assert!(s.session(&home, &sess.id).await.unwrap().is_none());
    for kind in ["user-mfa", "user-passkeys"] {
        let left = s.sealed(&home, kind, &ann.id.to_string()).await.unwrap();
        assert!(left.is_none(), "{kind} left behind");
    }
    let r = s
        .rotate_refresh(&probe(&t), &[1; 32], &[2; 32], now())
        .await
        .unwrap();
    assert!(matches!(r, RefreshOutcome::Invalid));
    assert!(
        !s.delete_user(&w, ann.id, &event).await.unwrap(),
        "already gone"
    );
}

/// Applications are stored with their secret hash, listed, and enabled or disabled.
pub(crate) async fn applications_are_stored_and_toggled<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("apps", "eu");
    let home = create(s, &t).await;
    let w = home.writable().unwrap();
    let a = app(&t);
    s.insert_application(&w, &a, "user:x", &ev()).await.unwrap();
    let found = s.application(&probe(&t), a.app.id).await.unwrap().unwrap();
    assert_eq!(found.secret_hash, a.secret_hash);
    assert_eq!(found.app.permissions, a.app.permissions);
    assert_eq!(s.applications(&home, 10).await.unwrap().len(), 1);
    assert!(
        s.set_application_active(&w, a.app.id, false, &ev())
            .await
            .unwrap()
    );
    assert!(
        !s.application(&home, a.app.id)
            .await
            .unwrap()
            .unwrap()
            .app
            .active
    );
    assert!(
        !s.set_application_active(&w, AppId::generate(), true, &ev())
            .await
            .unwrap()
    );
}
