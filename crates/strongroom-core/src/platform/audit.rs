//! The audit trail on the platform facade: checkpoints, verifier keys and tiles.

use super::{Platform, PlatformError};
use crate::access::{PlatformAction, Principal};
use crate::tenant::Slug;

impl Platform {
    /// Integrates the tenant's new audit entries and returns the latest signed
    /// checkpoint (C2SP tlog-checkpoint as a signed note).
    pub async fn audit_checkpoint(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<String, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ReadAudit)
            .await?;
        Ok(self.audit.checkpoint(&scope, slug.as_str()).await?.1)
    }

    /// The tenant's audit verifier key (C2SP vkey).
    pub async fn audit_vkey(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<String, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ReadAudit)
            .await?;
        Ok(self.audit.vkey(&scope, slug.as_str()).await?)
    }

    /// A tile or entry bundle of the tenant's audit log (`tile/...`, C2SP tlog-tiles).
    pub async fn audit_tile(
        &self,
        principal: &Principal,
        slug: &Slug,
        path: &str,
    ) -> Result<Vec<u8>, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ReadAudit)
            .await?;
        Ok(self.audit.tile(&scope, slug.as_str(), path).await?)
    }
}
