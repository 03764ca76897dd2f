//! Conformance of the directory port: tenants, operators, signing keys.

use strongroom_core::access::{self, PlatformAction};
use strongroom_core::store::{Page, StoreError, TenantKeys};
use strongroom_core::tenant::RegionName;

use super::{Backend, create, ev, platform, tenant};

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
        .create_tenant(&scope, &dup, &home, &TenantKeys::default(), &ev(), &ev())
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
        s.create_tenant(&scope, &a, &home, &TenantKeys::default(), &ev(), &ev())
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
