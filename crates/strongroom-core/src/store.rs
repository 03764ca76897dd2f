//! The storage port: what Strongroom needs from a database, and nothing about how.
//!
//! Adapters (SQLite now, PostgreSQL next) live in `strongroom-store` and implement
//! [`Store`]. Every method that touches tenant data takes a scope from
//! [`crate::access`]; methods without one are the few pre-authentication lookups
//! (finding an operator to check a password, loading signing keys).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::{PlatformScope, TenantScope};
use crate::identity::Email;
use crate::identity::operator::{Operator, OperatorCredentials};
use crate::tenant::{Slug, Tenant};

/// Why a storage operation failed, grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (`what` names the rule, e.g. `tenant slug`).
    #[error("{what} already exists")]
    Conflict {
        /// Which rule.
        what: &'static str,
    },
    /// The database cannot be reached or is busy; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data violates an invariant (a row that cannot be decoded).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("storage failure: {0}")]
    Backend(String),
}

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

/// A page request for listing: items strictly after `after`, at most `limit`.
#[derive(Debug, Clone)]
pub struct Page<C> {
    /// Cursor: the last item of the previous page.
    pub after: Option<C>,
    /// Page size (the caller bounds it).
    pub limit: u32,
}

/// Everything Strongroom stores, behind one seam.
#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    /// Creates a tenant: its directory entry, and its home in its region's storage.
    /// Both or neither. `home` is the tenant's own scope, made by the caller from the
    /// platform scope.
    async fn create_tenant(
        &self,
        scope: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
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
