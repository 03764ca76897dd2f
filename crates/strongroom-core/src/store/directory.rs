//! The directory port: the tenant directory in the control database (which region
//! each tenant lives in) and each tenant's home in its region.

use std::collections::BTreeSet;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, Page, StoreError, TenantKeys};
use crate::access::{PlatformScope, TenantScope};
use crate::tenant::{Slug, Tenant, TenantId};

/// Background work a tenant can have pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingWork {
    /// Audit entries not yet covered by a signed checkpoint.
    Audit,
    /// Objects that may still be sealed under an older data key.
    Reencrypt,
    /// Support grants that expired and whose expiry is not yet in the tenant's trail.
    /// Found from the grants themselves: there is no mark, and
    /// [`DirectoryStore::work_done`] has nothing to clear for it.
    SupportExpiry,
}

impl PendingWork {
    /// The kind's name (the one stored with a mark, for the kinds that have marks).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Reencrypt => "reencrypt",
            Self::SupportExpiry => "support-expiry",
        }
    }
}

/// The tenant directory (which region each tenant lives in).
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Checks that every database (control and each region) answers a query.
    async fn health(&self) -> Result<(), StoreError>;

    /// Whether this process is now the one that runs the deployment's singleton
    /// background work (the audit integrator that signs checkpoints). Called before
    /// every round; leadership can be lost between rounds (a dropped connection) and
    /// is then taken by another node. A backend only one process can open (SQLite,
    /// whose data directory `serve` locks) always leads.
    async fn lead_background_work(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Creates a tenant: its directory entry, and its home in its region's storage.
    /// Both or neither, with the tenant's freshly provisioned (wrapped) keys and its
    /// first audit entry (`audit`) in the same region transaction, and the platform
    /// trail's entry (`platform_audit`) in the directory's. `home` is the tenant's own
    /// scope, made by the caller from the platform scope.
    async fn create_tenant(
        &self,
        scope: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
        keys: &TenantKeys,
        audit: &AuditEvent,
        platform_audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Looks a tenant up by slug.
    async fn tenant(
        &self,
        scope: &PlatformScope,
        slug: &Slug,
    ) -> Result<Option<Tenant>, StoreError>;

    /// Lists tenants in slug order.
    async fn tenants(
        &self,
        scope: &PlatformScope,
        page: Page<Slug>,
    ) -> Result<Vec<Tenant>, StoreError>;

    /// Confirms the tenant's home exists in its region's storage (and only there).
    async fn tenant_home_exists(&self, scope: &TenantScope) -> Result<bool, StoreError>;

    /// The tenants that may have `kind` of work pending (at `now`), so a background
    /// round visits them instead of every tenant. A mark is written in the same
    /// transaction as the work it announces (an audit append, a new data key), so no
    /// pending work is missed, by this process or any other. `None`: the backend keeps no such index,
    /// and every tenant is visited (the default, and PostgreSQL's for now).
    async fn pending_work(
        &self,
        kind: PendingWork,
        now: OffsetDateTime,
    ) -> Result<Option<BTreeSet<TenantId>>, StoreError> {
        let _ = (kind, now);
        Ok(None)
    }

    /// Clears the tenant's `kind` mark if it is at most `done` (the work is done up
    /// to there); a later mark, from a write since, stays.
    async fn work_done(
        &self,
        scope: &TenantScope,
        kind: PendingWork,
        done: u64,
    ) -> Result<(), StoreError> {
        let _ = (scope, kind, done);
        Ok(())
    }

    /// The tenants with these ids (those that exist), in slug order, for a round over
    /// pending tenants only. The default pages through the directory.
    async fn tenants_by_id(
        &self,
        scope: &PlatformScope,
        ids: &BTreeSet<TenantId>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.tenants(scope, Page { after, limit: 500 }).await?;
            let done = page.len() < 500;
            after = page.last().map(|t| t.slug.clone());
            out.extend(page.into_iter().filter(|t| ids.contains(&t.id)));
            if done {
                return Ok(out);
            }
        }
    }
}
