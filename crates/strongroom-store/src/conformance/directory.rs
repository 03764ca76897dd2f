//! Conformance of the directory port: tenants, operators, signing keys.

use strongroom_core::access::{self, PlatformAction};
use strongroom_core::identity::Email;
use strongroom_core::identity::operator::{Operator, OperatorId};
use strongroom_core::store::{Page, StoreError, StoredSigningKey, TenantKeys};
use strongroom_core::tenant::RegionName;

use super::{Backend, create, ev, now, platform, tenant};

/// A tenant's home is in its region, and nowhere else.
pub(crate) async fn tenants_live_in_their_region_only<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let t = tenant("acme", "eu");
    let home = create(s, &t).await;
    let scope = platform(PlatformAction::ReadTenants);
    assert_eq!(s.tenant(&scope, &t.slug).await.unwrap().unwrap(), t);
    assert!(s.tenant_home_exists(&home).await.unwrap());
    // The same tenant id pointed at the other region finds nothing there.
    let mut moved = t.clone();
    moved.region = RegionName::parse("us").unwrap();
    let elsewhere = access::provisioning_scope(&scope, &moved);
    assert!(!s.tenant_home_exists(&elsewhere).await.unwrap());
}

/// A taken slug is a conflict, and the failed tenant leaves nothing behind.
pub(crate) async fn duplicate_slugs_conflict_and_leave_no_trace<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let a = tenant("acme", "eu");
    create(s, &a).await;
    let scope = platform(PlatformAction::ManageTenants);
    let dup = tenant("acme", "us");
    let home = access::provisioning_scope(&scope, &dup);
    let err = s
        .create_tenant(&scope, &dup, &home, &TenantKeys::default(), &ev())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                what: "tenant slug"
            }
        ),
        "{err:?}"
    );
    assert!(!s.tenant_home_exists(&home).await.unwrap());
    let all = s.tenants(&scope, first_page(10)).await.unwrap();
    assert_eq!(all, vec![a]);
}

/// If the region write fails, the directory entry is not kept.
pub(crate) async fn a_failed_region_write_leaves_no_directory_entry<B: Backend>() {
    let b = B::fresh().await;
    let a = tenant("acme", "eu");
    b.occupy_home(&a).await;
    let scope = platform(PlatformAction::ManageTenants);
    let home = access::provisioning_scope(&scope, &a);
    let s = b.store();
    assert!(
        s.create_tenant(&scope, &a, &home, &TenantKeys::default(), &ev())
            .await
            .is_err()
    );
    assert!(s.tenant(&scope, &a.slug).await.unwrap().is_none());
}

fn first_page(limit: u32) -> Page<strongroom_core::tenant::Slug> {
    Page { after: None, limit }
}

/// Tenant pages come in slug order and resume after the cursor.
pub(crate) async fn pages_follow_slug_order<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    for slug in ["ccc", "aaa", "bbb"] {
        create(s, &tenant(slug, "eu")).await;
    }
    let scope = platform(PlatformAction::ReadTenants);
    let first = s.tenants(&scope, first_page(2)).await.unwrap();
    let slugs = |v: &[strongroom_core::tenant::Tenant]| {
        v.iter().map(|t| t.slug.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(slugs(&first), ["aaa", "bbb"]);
    let after = Some(first[1].slug.clone());
    let next = s.tenants(&scope, Page { after, limit: 2 }).await.unwrap();
    assert_eq!(slugs(&next), ["ccc"]);
}

/// Operator e-mails are unique whatever their case, and found whatever their case.
pub(crate) async fn operator_emails_are_unique_case_insensitively<B: Backend>() {
    let b = B::fresh().await;
    let s = b.store();
    let scope = platform(PlatformAction::ManageOperators);
    let op = |e: &str| Operator {
        id: OperatorId::generate(),
        email: Email::parse(e).unwrap(),
        created_at: now(),
    };
    s.insert_operator(&scope, &op("Ann@example.com"), "$h")
        .await
        .unwrap();
    let err = s
        .insert_operator(&scope, &op("ann@EXAMPLE.com"), "$h")
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
    let key = |kid: &str, secs: i64| StoredSigningKey {
        kid: kid.into(),
        public_key: vec![1; 32],
        wrapped_private_key: vec![2; 80],
        created_at: now() + time::Duration::seconds(secs),
    };
    for (kid, at) in [("old", 0), ("new", 60), ("mid", 30)] {
        s.insert_signing_key(&key(kid, at)).await.unwrap();
    }
    let kids = |v: Vec<StoredSigningKey>| v.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(kids(s.signing_keys().await.unwrap()), ["new", "mid", "old"]);
    assert!(matches!(
        s.insert_signing_key(&key("mid", 90)).await,
        Err(StoreError::Conflict { .. })
    ));
    s.delete_signing_key("old").await.unwrap();
    assert_eq!(kids(s.signing_keys().await.unwrap()), ["new", "mid"]);
}
