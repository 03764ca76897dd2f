use super::*;
use crate::tenant::{DisplayName, Slug};

fn tenant(slug: &str, status: TenantStatus) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        slug: Slug::parse(slug).unwrap(),
        display_name: DisplayName::parse("T").unwrap(),
        region: RegionName::parse("eu").unwrap(),
        status,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn user(t: &Tenant, perms: &[Permission]) -> Principal {
    signed_in_user(
        t.clone(),
        UserId::generate(),
        "s".into(),
        None,
        perms.iter().copied().collect(),
    )
}

#[test]
fn a_user_of_another_tenant_sees_nothing_and_a_user_without_the_permission_is_refused() {
    let (a, b) = (
        tenant("aaa", TenantStatus::Active),
        tenant("bbb", TenantStatus::Active),
    );
    let reader = user(&a, &[Permission::AuditRead]);
    assert_eq!(
        authorize_tenant(&reader, &b, Permission::AuditRead).err(),
        Some(AccessError::NotVisible)
    );
    assert!(matches!(
        authorize_tenant(&reader, &a, Permission::UsersManage),
        Err(AccessError::Forbidden(_))
    ));
    let scope = authorize_tenant(&reader, &a, Permission::AuditRead).unwrap();
    assert_eq!(scope.tenant(), a.id);
}

#[test]
fn platform_principals_get_no_tenant_scope_and_tenant_principals_no_platform_scope() {
    let a = tenant("aaa", TenantStatus::Active);
    assert!(
        authorize_tenant(&operator(OperatorId::generate()), &a, Permission::AuditRead).is_err()
    );
    assert!(authorize_tenant(&system(), &a, Permission::AuditRead).is_err());
    assert_eq!(
        authorize_platform(&user(&a, &[]), PlatformAction::ReadTenants).err(),
        Some(AccessError::NotVisible)
    );
    assert!(authorize_platform(&Principal::Anonymous, PlatformAction::ReadTenants).is_err());
    assert!(own_account(&operator(OperatorId::generate())).is_err());
}

#[test]
fn read_only_tenants_and_anonymous_scopes_give_no_writable_scope() {
    let ended = tenant("ended", TenantStatus::ContractEnded);
    let admin = user(&ended, &[Permission::UsersManage]);
    let scope = authorize_tenant(&admin, &ended, Permission::UsersManage).unwrap();
    assert_eq!(scope.writable().err(), Some(AccessError::TenantReadOnly));
    let live = tenant("live", TenantStatus::Active);
    let sys = authorize_platform(&system(), PlatformAction::ReadTenants).unwrap();
    let anonymous = sign_in(&sys, &live).anonymous(&live);
    assert!(anonymous.writable().is_err());
    let own = own_account(&user(&live, &[])).unwrap();
    assert!(own.writable().is_ok());
}

#[test]
fn the_data_directory_proof_needs_an_initialised_owner_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    assert!(matches!(
        DataDirProof::check(&path),
        Err(DataDirError::NotInitialised(_))
    ));
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        DataDirProof::check(&path),
        Err(DataDirError::NotInitialised(_))
    ));
    std::fs::write(path.join(DataDirProof::MARKER), b"").unwrap();
    let proof = DataDirProof::check(&path).unwrap();
    assert!(matches!(proof.local_admin(), Principal::LocalAdmin(_)));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(
        DataDirProof::check(&path),
        Err(DataDirError::TooOpen(_))
    ));
}
