use std::collections::BTreeMap;

use strongroom_core::access::{self, PlatformAction, Principal};
use strongroom_core::tenant::{DisplayName, TenantId, TenantStatus};
use time::OffsetDateTime;

use super::*;

async fn store(dir: &Path) -> SqliteStore {
    let regions: BTreeMap<RegionName, PathBuf> = ["eu", "us"]
        .iter()
        .map(|r| (RegionName::parse(r).unwrap(), dir.join("regions").join(r)))
        .collect();
    SqliteStore::open(&dir.join("control.db"), &regions)
        .await
        .unwrap()
}

fn tenant(slug: &str, region: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        slug: Slug::parse(slug).unwrap(),
        display_name: DisplayName::parse("Acme").unwrap(),
        region: RegionName::parse(region).unwrap(),
        status: TenantStatus::Active,
        created_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

#[tokio::test]
async fn tenants_live_in_their_region_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let t = tenant("acme", "eu");
    let home = access::provisioning_scope(&scope, &t);
    s.create_tenant(&scope, &t, &home, &TenantKeys::default())
        .await
        .unwrap();
    assert_eq!(s.tenant(&scope, &t.slug).await.unwrap().unwrap(), t);
    assert!(s.tenant_home_exists(&home).await.unwrap());

    // The same tenant id pointed at the other region finds nothing there.
    let mut moved = t.clone();
    moved.region = RegionName::parse("us").unwrap();
    let elsewhere = access::provisioning_scope(&scope, &moved);
    assert!(!s.tenant_home_exists(&elsewhere).await.unwrap());
}

#[tokio::test]
async fn duplicate_slugs_conflict_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let a = tenant("acme", "eu");
    s.create_tenant(
        &scope,
        &a,
        &access::provisioning_scope(&scope, &a),
        &TenantKeys::default(),
    )
    .await
    .unwrap();
    let b = tenant("acme", "us");
    let err = s
        .create_tenant(
            &scope,
            &b,
            &access::provisioning_scope(&scope, &b),
            &TenantKeys::default(),
        )
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
    assert!(
        !s.tenant_home_exists(&access::provisioning_scope(&scope, &b))
            .await
            .unwrap()
    );
    let all = s
        .tenants(
            &scope,
            Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all, vec![a]);
}

#[tokio::test]
async fn a_failed_region_write_leaves_no_directory_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let a = tenant("acme", "eu");
    let home = access::provisioning_scope(&scope, &a);
    // Pre-existing home row with the same tenant id: the region insert fails.
    region::insert_home(s.region(&home).unwrap(), &home, &a, &TenantKeys::default())
        .await
        .unwrap();
    assert!(
        s.create_tenant(&scope, &a, &home, &TenantKeys::default())
            .await
            .is_err()
    );
    assert!(s.tenant(&scope, &a.slug).await.unwrap().is_none());
}

#[tokio::test]
async fn pages_follow_slug_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    for slug in ["ccc", "aaa", "bbb"] {
        let t = tenant(slug, "eu");
        s.create_tenant(
            &scope,
            &t,
            &access::provisioning_scope(&scope, &t),
            &TenantKeys::default(),
        )
        .await
        .unwrap();
    }
    let first = s
        .tenants(
            &scope,
            Page {
                after: None,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        ["aaa", "bbb"]
    );
    let next = s
        .tenants(
            &scope,
            Page {
                after: Some(first[1].slug.clone()),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        ["ccc"]
    );
}

#[tokio::test]
async fn operator_emails_are_unique_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope = access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageOperators)
        .unwrap();
    let op = |e: &str| Operator {
        id: OperatorId::generate(),
        email: Email::parse(e).unwrap(),
        created_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    };
    s.insert_operator(&scope, &op("Ann@example.com"), "$h")
        .await
        .unwrap();
    let err = s
        .insert_operator(&scope, &op("ann@EXAMPLE.com"), "$h")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
    let found = s
        .operator_credentials(&Email::parse("ANN@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.unwrap().operator.email.as_str(), "Ann@example.com");
}

use strongroom_core::identity::operator::OperatorId;
