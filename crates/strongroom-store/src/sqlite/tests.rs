use std::collections::BTreeMap;

use strongroom_core::access::{self, PlatformAction, Principal};
use strongroom_core::tenant::{DisplayName, TenantId, TenantStatus};
use time::OffsetDateTime;

use strongroom_core::audit::entry::{Action, Actor, NewEntry, Target};
use strongroom_core::store::{AuditEvent, StoredSealed};

use super::*;

fn ev() -> AuditEvent {
    AuditEvent {
        entry: NewEntry {
            action: Action::TenantCreate,
            actor: Actor {
                id: None,
                kind: "system",
            },
            target: Target {
                id: "t".into(),
                kind: "tenant".into(),
                version: None,
            },
            reason: None,
            session: None,
            before: None,
            after: None,
            personal: None,
        },
        at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    }
}

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
    s.create_tenant(&scope, &t, &home, &TenantKeys::default(), &ev())
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
        &ev(),
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
            &ev(),
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
    region::insert_home(
        s.region(&home).unwrap(),
        &home,
        &a,
        &TenantKeys::default(),
        &ev(),
    )
    .await
    .unwrap();
    assert!(
        s.create_tenant(&scope, &a, &home, &TenantKeys::default(), &ev())
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
            &ev(),
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

#[tokio::test]
async fn a_write_whose_audit_append_fails_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let t = tenant("audited", "eu");
    let home = access::provisioning_scope(&scope, &t);
    s.create_tenant(&scope, &t, &home, &TenantKeys::default(), &ev())
        .await
        .unwrap();
    let v1 = StoredSealed {
        id: "sso".into(),
        version: 1,
        dek_version: 1,
        sealed: vec![1; 40],
    };
    assert!(
        s.put_sealed(&home, "tenant-secret", &v1, 0, &ev())
            .await
            .unwrap()
    );
    assert_eq!(s.audit_entries(&home, 0, 10).await.unwrap().len(), 2);

    // Inject a failure into the audit append only (a trigger on the real database).
    let region = s.region(&home).unwrap().clone();
    let mut tx = region.write().await.unwrap();
    sqlx::query("CREATE TEMP TRIGGER inject_failure BEFORE INSERT ON main.audit_entries BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v2 = StoredSealed {
        version: 2,
        sealed: vec![2; 40],
        ..v1.clone()
    };
    let err = s
        .put_sealed(&home, "tenant-secret", &v2, 1, &ev())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected audit failure"), "{err}");
    let stored = s
        .sealed(&home, "tenant-secret", "sso")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.version, stored.sealed),
        (1, vec![1; 40]),
        "the write was rolled back"
    );
    assert_eq!(s.audit_entries(&home, 0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_audit_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let t = tenant("append-only", "eu");
    let home = access::provisioning_scope(&scope, &t);
    s.create_tenant(&scope, &t, &home, &TenantKeys::default(), &ev())
        .await
        .unwrap();
    let region = s.region(&home).unwrap().clone();
    for sql in [
        "UPDATE audit_entries SET action = 'x'",
        "DELETE FROM audit_entries",
    ] {
        let mut tx = region.write().await.unwrap();
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let entries = s.audit_entries(&home, 0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    let text = String::from_utf8(entries[0].entry.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"action":"tenant.create","#) && text.contains(r#""seq":0"#),
        "{text}"
    );
    assert_eq!(
        entries[0].leaf_hash,
        strongroom_core::audit::merkle::leaf_hash(&entries[0].entry)
    );
}

/// No SQL in this crate updates or deletes audit entries.
#[test]
fn no_statement_touches_audit_entries_except_insert_and_select() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut stack = vec![std::path::PathBuf::from(src)];
    let mut checked = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&p).unwrap().to_uppercase();
                checked += 1;
                for bad in [
                    "UPDATE AUDIT_ENTRIES",
                    "DELETE FROM AUDIT_ENTRIES",
                    "REPLACE INTO AUDIT_ENTRIES",
                    "DROP TRIGGER",
                ] {
                    assert!(!text.contains(bad), "{} contains {bad}", p.display());
                }
            }
        }
    }
    assert!(checked > 5);
}

#[tokio::test]
async fn invitations_work_once_for_their_address_and_not_after_expiry() {
    use strongroom_core::access::rbac::Role;
    use strongroom_core::identity::Email;
    use strongroom_core::identity::user::{User, UserId, UserStatus};
    use strongroom_core::store::{NewUserRow, StoredInvitation};
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let scope =
        access::authorize_platform(&Principal::LocalAdmin, PlatformAction::ManageTenants).unwrap();
    let t = tenant("invites", "eu");
    let home = access::provisioning_scope(&scope, &t);
    s.create_tenant(&scope, &t, &home, &TenantKeys::default(), &ev())
        .await
        .unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let invite = |hash: u8, expires: OffsetDateTime| StoredInvitation {
        hash: [hash; 32],
        email: Email::parse("new@acme.example").unwrap(),
        role: Role::Admin,
        expires_at: expires,
    };
    let row = |email: &str| NewUserRow {
        user: User {
            id: UserId::generate(),
            email: Email::parse(email).unwrap(),
            status: UserStatus::Active,
            roles: vec![],
            created_at: now,
        },
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA"
            .into(),
        granted_by: "invitation".into(),
    };
    let expired = invite(1, now - time::Duration::seconds(1));
    let live = invite(2, now + time::Duration::hours(72));
    for inv in [&expired, &live] {
        s.insert_invitation(&home, inv, "operator:x", &ev())
            .await
            .unwrap();
    }
    // Expired: refused, and nothing is created.
    let r = s
        .accept_invitation(&home, &expired.hash, &row("new@acme.example"), now, &ev())
        .await
        .unwrap();
    assert!(r.is_none());
    // Another address: refused, and the invitation stays usable.
    let r = s
        .accept_invitation(&home, &live.hash, &row("other@acme.example"), now, &ev())
        .await
        .unwrap();
    assert!(r.is_none());
    // The right address, once.
    let ok = s
        .accept_invitation(&home, &live.hash, &row("NEW@acme.example"), now, &ev())
        .await
        .unwrap()
        .expect("accepted");
    assert_eq!(ok.role, Role::Admin);
    let again = s
        .accept_invitation(&home, &live.hash, &row("new@acme.example"), now, &ev())
        .await
        .unwrap();
    assert!(again.is_none());
    let users = s
        .users(
            &home,
            &strongroom_core::store::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].roles, vec![Role::Admin]);
}
