//! The directory port: the platform's own records in the control database —
//! operators, token-signing keys, and the tenant directory (which region each tenant
//! lives in).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, Page, StoreError, TenantKeys};
use crate::access::{PlatformScope, TenantScope};
use crate::identity::Email;
use crate::identity::operator::{Operator, OperatorCredentials};
use crate::tenant::{Slug, Tenant};

/// A wrapped signing key as stored.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Raw public key.
    pub public_key: Vec<u8>,
    /// PKCS#8 private key wrapped by the key provider.
    pub wrapped_private_key: Vec<u8>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Operators, signing keys and the tenant directory.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Checks that every database (control and each region) answers a query.
    async fn health(&self) -> Result<(), StoreError>;

    /// Adds an operator. Fails with `Conflict` if the e-mail is taken.
    async fn insert_operator(
        &self,
        scope: &PlatformScope,
        operator: &Operator,
        password_hash: &str,
    ) -> Result<(), StoreError>;

    /// Pre-authentication lookup of an operator and their password hash.
    async fn operator_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<OperatorCredentials>, StoreError>;

    /// The platform's token-signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Removes a retired token-signing key (its tokens have all expired).
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Creates a tenant: its directory entry, and its home in its region's storage.
    /// Both or neither, with the tenant's freshly provisioned (wrapped) keys in the same
    /// region transaction. `home` is the tenant's own scope, made by the caller from the
    /// platform scope.
    async fn create_tenant(
        &self,
        scope: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
        keys: &TenantKeys,
        audit: &AuditEvent,
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
