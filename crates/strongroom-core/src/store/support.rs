//! The support-access port: a tenant's grants of access to platform operators.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, StoreError};
use crate::access::{Scoped, TenantScope, WritableScope};
use crate::identity::operator::OperatorId;

/// What a support grant lets an operator do inside the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportScope {
    /// Read the audit trail (entries, checkpoints, tiles, proofs, exports).
    AuditRead,
}

impl SupportScope {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditRead => "audit:read",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        (s == "audit:read").then_some(Self::AuditRead)
    }
}

/// A grant of support access, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportGrant {
    /// Random id.
    pub id: String,
    /// The operator let in.
    pub operator: OperatorId,
    /// What they may do.
    pub scope: SupportScope,
    /// Whether they may see the personal data (IP addresses, user agents) sealed in
    /// audit entries; without it, it stays sealed to them.
    pub personal_data: bool,
    /// Why, in the granting administrator's words.
    pub reason: String,
    /// Actor label of the administrator who granted it.
    pub granted_by: String,
    /// When it was granted.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

impl SupportGrant {
    /// Whether it lets its operator in at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Support grants of a tenant.
#[async_trait]
pub trait SupportStore: Send + Sync + 'static {
    /// Stores a grant, audited in the same transaction.
    async fn insert_support_grant(
        &self,
        scope: &WritableScope,
        grant: &SupportGrant,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The tenant's grants, newest first (bounded by `limit`).
    async fn support_grants(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<SupportGrant>, StoreError>;

    /// The live grant of `operator` for `what` at `now`, if any (the lookup that lets
    /// an operator in; it comes before any tenant permission exists).
    async fn live_support_grant(
        &self,
        scope: &dyn Scoped,
        operator: OperatorId,
        what: SupportScope,
        now: OffsetDateTime,
    ) -> Result<Option<SupportGrant>, StoreError>;

    /// Revokes a live grant at `audit.at`, audited. `false` if there is no such live
    /// grant.
    /// (A plain tenant scope: taking access away is allowed on a read-only tenant.)
    async fn revoke_support_grant(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Grants that expired by `now` and whose expiry is not yet in the trail.
    async fn unrecorded_expiries(
        &self,
        scope: &TenantScope,
        now: OffsetDateTime,
    ) -> Result<Vec<SupportGrant>, StoreError>;

    /// Records a grant's expiry, with its audit entry.
    async fn record_expiry(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}
