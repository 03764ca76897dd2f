//! The directory port: the tenant directory in the control database (which region
//! each tenant lives in) and each tenant's home in its region.

use async_trait::async_trait;

use super::{AuditEvent, Page, StoreError, TenantKeys};
use crate::access::{PlatformScope, TenantScope};
use crate::tenant::{Slug, Tenant};

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
}
