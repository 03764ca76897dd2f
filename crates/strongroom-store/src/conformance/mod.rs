//! The storage conformance suite: every storage test written once, generic over a
//! [`Backend`], and instantiated per adapter with [`conformance!`] (SQLite in
//! `sqlite/tests.rs`; the PostgreSQL adapter plugs in the same way). Each test gets a
//! fresh, empty store, and the suite includes attempts to cross tenants.

// Scenarios read top to bottom; the production limit on function length is for code.
#![allow(clippy::too_many_lines)]

mod directory;
mod identity;
mod isolation;
mod keys;
mod operators;
mod records;
mod support;
mod trail;

use std::os::unix::fs::PermissionsExt;

use async_trait::async_trait;
use strongroom_core::access::{self, PlatformAction, PlatformScope, Principal, TenantScope};
use strongroom_core::audit::entry::{Action, Actor, NewEntry, Target};
use strongroom_core::store::{AuditEvent, Store, TenantKeys};
use strongroom_core::tenant::{DisplayName, RegionName, Slug, Tenant, TenantId, TenantStatus};
use time::OffsetDateTime;

pub(crate) use directory::*;
pub(crate) use identity::*;
pub(crate) use isolation::*;
pub(crate) use keys::*;
pub(crate) use operators::*;
pub(crate) use records::*;
pub(crate) use support::*;
pub(crate) use trail::*;

/// A storage backend under test: a fresh store, plus the few things only raw access to
/// its database can do (injecting faults, tampering).
#[async_trait]
pub(crate) trait Backend: Send + Sync + Sized {
    /// A fresh, empty store with the regions `eu` and `us`.
    async fn fresh() -> Self;
    /// The store.
    fn store(&self) -> &dyn Store;
    /// Makes every later audit append in `scope`'s region fail (a database trigger),
    /// so a test can check that the write it accompanies rolls back.
    async fn break_audit_appends(&self, scope: &TenantScope);
    /// Tries to UPDATE and DELETE the audit entries of `scope`'s region with raw SQL;
    /// returns each attempt's error (`None` if the database allowed it).
    async fn rewrite_audit(&self, scope: &TenantScope) -> Vec<Option<String>>;
    /// Writes `tenant`'s home row in its region directly, so that creating it through
    /// the port fails in the region after the directory insert.
    async fn occupy_home(&self, tenant: &Tenant);
}

/// The local administrator, proven from a throwaway directory shaped like a data
/// directory (storage tests have no CLI).
pub(crate) fn admin() -> Principal {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.path().join("control.db"), b"").unwrap();
    access::DataDirProof::check(dir.path())
        .unwrap()
        .local_admin()
}

/// A platform scope for `action`.
pub(crate) fn platform(action: PlatformAction) -> PlatformScope {
    access::authorize_platform(&admin(), action).unwrap()
}

/// A fixed instant.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// A new, active tenant (not yet stored).
pub(crate) fn tenant(slug: &str, region: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        slug: Slug::parse(slug).unwrap(),
        display_name: DisplayName::parse("Acme").unwrap(),
        region: RegionName::parse(region).unwrap(),
        status: TenantStatus::Active,
        created_at: now(),
    }
}

/// An audit event of `action` at `at`, by the system.
pub(crate) fn event_at(action: Action, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        entry: NewEntry {
            action,
            actor: Actor {
                id: None,
                kind: "system",
            },
            target: Target::of("tenant", "t"),
            reason: None,
            session: None,
            before: None,
            after: None,
            personal: None,
        },
        at,
    }
}

/// An audit event at [`now`].
pub(crate) fn ev() -> AuditEvent {
    event_at(Action::TenantCreate, now())
}

/// Stores `t` and returns its scope.
pub(crate) async fn create(store: &dyn Store, t: &Tenant) -> TenantScope {
    let scope = platform(PlatformAction::ManageTenants);
    let home = access::provisioning_scope(&scope, t);
    store
        .create_tenant(&scope, t, &home, &TenantKeys::default(), &ev(), &ev())
        .await
        .unwrap();
    home
}

/// Instantiates every conformance test for a [`Backend`] type, as `#[tokio::test]`s
/// of the module it is invoked in.
macro_rules! conformance {
    ($backend:ty: $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $crate::conformance::$test::<$backend>().await;
            }
        )+
    };
    ($backend:ty) => {
        $crate::conformance::conformance!($backend:
            tenants_live_in_their_region_only,
            duplicate_slugs_conflict_and_leave_no_trace,
            a_failed_region_write_leaves_no_directory_entry,
            pages_follow_slug_order,
            operator_emails_are_unique_case_insensitively,
            signing_keys_come_newest_first_and_can_be_deleted,
            operators_are_disabled_once_and_their_changes_are_in_the_platform_trail,
            revoked_signing_keys_stay_listed_as_revoked,
            the_platform_trail_is_apart_from_every_tenants,
            a_write_whose_audit_append_fails_leaves_no_trace,
            the_database_refuses_to_update_or_delete_audit_entries,
            entries_are_numbered_without_gaps_and_time_never_goes_back,
            audit_queries_filter_and_page,
            erasing_a_subject_destroys_only_its_keys,
            sealed_writes_are_compare_and_swap,
            data_keys_conflict_on_the_same_version_and_shredding_destroys_them,
            invitations_work_once_for_their_address_and_not_after_expiry,
            users_are_unique_per_tenant_and_disabling_revokes_sessions,
            refresh_tokens_rotate_once_and_reuse_revokes_the_session,
            deleting_a_user_removes_their_sessions_grants_and_factors,
            applications_are_stored_and_toggled,
            a_tenant_scope_cannot_reach_another_tenants_rows,
            support_grants_let_one_operator_in_until_revoked_or_expired,
            record_changes_are_compare_and_swap_and_approval_is_final,
            a_record_write_whose_audit_append_fails_leaves_nothing,
            a_tenant_scope_cannot_reach_another_tenants_records,
        );
    };
}
pub(crate) use conformance;
