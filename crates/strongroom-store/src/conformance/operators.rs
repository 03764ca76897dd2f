//! Conformance of the operator port: operators, their status and second factor,
//! token-signing keys, and the platform trail those changes are recorded in.

use strongroom_core::access::{self, PlatformAction};
use strongroom_core::audit::entry::Action;
use strongroom_core::identity::Email;
use strongroom_core::identity::operator::{Operator, OperatorId};
use strongroom_core::store::{StoreError, StoredSigningKey};

use super::{Backend, create, ev, event_at, now, platform, tenant};

fn op(email: &str) -> Operator {
    Operator {
        id: OperatorId::generate(),
        email: Email::parse(email).unwrap(),
        created_at: now(),
        disabled_at: None,
    }
}

/// Operator e-mails are unique whatever their case, and found whatever their case.
pub(crate) async fn operator_emails_are_unique_case_insensitively<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = platform(PlatformAction::ManageOperators);
    s.insert_operator(&scope, &op("Ann@example.com"), "$h", &ev())
        .await
        .unwrap();
    let err = s
        .insert_operator(&scope, &op("ann@EXAMPLE.com"), "$h", &ev())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let found = s
        .operator_credentials(&Email::parse("ANN@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.unwrap().operator.email.as_str(), "Ann@example.com");
}

/// Signing keys are listed newest first; a retired one can be deleted; ids are unique.
pub(crate) async fn signing_keys_come_newest_first_and_can_be_deleted<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = platform(PlatformAction::ManageKeys);
    let key = |kid: &str, secs: i64| StoredSigningKey {
        kid: kid.into(),
        public_key: vec![1; 32],
        wrapped_private_key: vec![2; 80],
        created_at: now() + time::Duration::seconds(secs),
        revoked_at: None,
    };
    for (kid, at) in [("old", 0), ("new", 60), ("mid", 30)] {
        s.insert_signing_key(&scope, &key(kid, at), None)
            .await
            .unwrap();
    }
    let kids = |v: Vec<StoredSigningKey>| v.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(kids(s.signing_keys().await.unwrap()), ["new", "mid", "old"]);
    assert!(matches!(
        s.insert_signing_key(&scope, &key("mid", 90), None).await,
        Err(StoreError::Conflict { .. })
    ));
    s.delete_signing_key("old").await.unwrap();
    assert_eq!(kids(s.signing_keys().await.unwrap()), ["new", "mid"]);
}

/// Disabling happens once; creating and disabling are entries of the platform trail.
pub(crate) async fn operators_are_disabled_once_and_their_changes_are_in_the_platform_trail<
    B: Backend,
>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = platform(PlatformAction::ManageOperators);
    let log = access::platform_log(&scope);
    let before = s.audit_len(&log).await.unwrap();
    let ann = op("ann@example.com");
    s.insert_operator(&scope, &ann, "$h", &event_at(Action::OperatorCreate, now()))
        .await
        .unwrap();
    let mut off = event_at(Action::OperatorDisable, now());
    off.entry.reason = Some("left".into());
    assert!(s.disable_operator(&scope, ann.id, &off).await.unwrap());
    assert!(
        !s.disable_operator(&scope, ann.id, &off).await.unwrap(),
        "already"
    );
    assert!(
        !s.disable_operator(&scope, OperatorId::generate(), &off)
            .await
            .unwrap()
    );
    let got = s.operator(ann.id).await.unwrap().unwrap();
    assert!(got.disabled_at.is_some());
    assert_eq!(s.operators(&scope, 10).await.unwrap().len(), 1);
    // A compare-and-swap against a stale value changes nothing; against the stored
    // one, it replaces it.
    assert!(
        !s.replace_operator_mfa(&scope, ann.id, &[1; 40], &[2; 40])
            .await
            .unwrap()
    );
    s.set_operator_mfa(&scope, ann.id, Some(&[7; 40]), None)
        .await
        .unwrap();
    let creds = s.operator_credentials(&ann.email).await.unwrap().unwrap();
    assert_eq!(creds.mfa.as_deref(), Some(&[7u8; 40][..]));
    assert!(
        s.replace_operator_mfa(&scope, ann.id, &[7; 40], &[8; 40])
            .await
            .unwrap()
    );
    assert!(
        !s.replace_operator_mfa(&scope, ann.id, &[7; 40], &[9; 40])
            .await
            .unwrap()
    );
    let creds = s.operator_credentials(&ann.email).await.unwrap().unwrap();
    assert_eq!(creds.mfa.as_deref(), Some(&[8u8; 40][..]));
    assert_eq!(
        s.audit_len(&log).await.unwrap(),
        before + 2,
        "create and disable"
    );
}

/// A revoked key is listed as revoked (the platform decides what verifies), once.
pub(crate) async fn revoked_signing_keys_stay_listed_as_revoked<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = platform(PlatformAction::ManageKeys);
    let key = StoredSigningKey {
        kid: "k1".into(),
        public_key: vec![1; 32],
        wrapped_private_key: vec![2; 80],
        created_at: now(),
        revoked_at: None,
    };
    s.insert_signing_key(
        &scope,
        &key,
        Some(&event_at(Action::SigningKeyRotate, now())),
    )
    .await
    .unwrap();
    let mut revoke = event_at(Action::SigningKeyRevoke, now());
    revoke.entry.reason = Some("leaked".into());
    assert!(s.revoke_signing_key(&scope, "k1", &revoke).await.unwrap());
    assert!(!s.revoke_signing_key(&scope, "k1", &revoke).await.unwrap());
    assert!(!s.revoke_signing_key(&scope, "nope", &revoke).await.unwrap());
    let keys = s.signing_keys().await.unwrap();
    assert!(keys[0].revoked_at.is_some());
    assert_eq!(s.audit_len(&access::platform_log(&scope)).await.unwrap(), 2);
}

/// Entries of the platform trail are in no tenant's trail, and no tenant's are in it.
pub(crate) async fn the_platform_trail_is_apart_from_every_tenants<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let home = create(s, &tenant("acme", "eu")).await;
    let scope = platform(PlatformAction::ManageTenants);
    let log = access::platform_log(&scope);
    let tenant_before = s.audit_len(&home).await.unwrap();
    s.append_audit(&log, &ev()).await.unwrap();
    assert_eq!(s.audit_len(&home).await.unwrap(), tenant_before);
    s.append_audit(&home, &ev()).await.unwrap();
    let platform_entries = s.audit_entries(&log, 0, 100).await.unwrap();
    // create() appended the tenant's creation to the platform trail, and one more here.
    assert_eq!(platform_entries.len(), 2);
    assert_eq!(
        platform_entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1]
    );
    // And it is as append-only as a tenant's.
    for refused in b.rewrite_audit(&log).await {
        let e = refused.expect("the database allowed a platform-trail entry to change");
        // By a trigger ("append-only") or, on PostgreSQL, by the role's privileges.
        assert!(
            e.contains("append-only") || e.contains("permission denied"),
            "{e}"
        );
    }
    assert_eq!(s.audit_entries(&log, 0, 100).await.unwrap().len(), 2);
}
