//! Support access: operators are powerless inside a tenant unless the tenant grants
//! access. A tenant administrator (`users:manage`) grants one operator one scope, with
//! a reason, for at most 72 hours; the grant, every use and the expiry are entries in
//! the tenant's own trail, listable by the tenant and revocable at once. Without a live
//! grant an operator's token on the tenant's paths answers exactly as for a tenant that
//! does not exist.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{MAX_PAGE, Platform, PlatformError};
use crate::access::rbac::Permission;
use crate::access::{self, PlatformAction, Principal, TenantScope};
use crate::audit::entry::{Action, NewEntry, Target, validate_reason};
use crate::identity::operator::OperatorId;
use crate::store::{PendingWork, SupportGrant, SupportScope};
use crate::tenant::{Slug, Tenant};

/// Longest support grant, in hours.
pub const MAX_GRANT_HOURS: u32 = 72;

/// What an administrator asks to grant.
#[derive(Debug, Clone)]
pub struct SupportRequest {
    /// The operator to let in (their id, which they tell the customer).
    pub operator: OperatorId,
    /// What they may do.
    pub scope: SupportScope,
    /// Whether personal data in audit entries is readable to them.
    pub personal_data: bool,
    /// Why (recorded in the trail).
    pub reason: String,
    /// For how long, 1 to [`MAX_GRANT_HOURS`] hours.
    pub hours: u32,
}

/// A grant as the tenant sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupportGrantView {
    /// Grant id.
    pub id: String,
    /// The operator let in.
    #[schema(value_type = String)]
    pub operator: OperatorId,
    /// `audit:read`.
    pub scope: &'static str,
    /// Whether personal data in audit entries is readable to the operator.
    pub personal_data: bool,
    /// Why it was granted.
    pub reason: String,
    /// Who granted it (actor label).
    pub granted_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// Whether it lets the operator in now.
    pub live: bool,
}

impl SupportGrantView {
    fn of(g: SupportGrant, now: OffsetDateTime) -> Self {
        Self {
            live: g.is_live(now),
            id: g.id,
            operator: g.operator,
            scope: g.scope.as_str(),
            personal_data: g.personal_data,
            reason: g.reason,
            granted_by: g.granted_by,
            created_at: g.created_at,
            expires_at: g.expires_at,
            revoked_at: g.revoked_at,
        }
    }
}

fn grant_target(id: &str) -> Target {
    Target::of("support-grant", id)
}

impl Platform {
    /// Grants an operator support access (`users:manage`, reason required, at most
    /// 72 hours). Audited `support.grant`.
    pub async fn grant_support(
        &self,
        principal: &Principal,
        slug: &Slug,
        req: SupportRequest,
    ) -> Result<SupportGrantView, PlatformError> {
        validate_reason(Action::SupportGrant, Some(&req.reason))?;
        if !(1..=MAX_GRANT_HOURS).contains(&req.hours) {
            return Err(PlatformError::Invalid {
                field: Some("hours"),
                message: format!("a grant lasts 1 to {MAX_GRANT_HOURS} hours"),
            });
        }
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        // Granted by a signed-in administrator, not by an application (or one acting
        // for a user): letting someone in is a person's decision.
        if !matches!(principal, Principal::User(u) if u.via().is_none()) {
            return Err(PlatformError::Forbidden(
                "support access is granted by a signed-in administrator".into(),
            ));
        }
        match self.store.operator(req.operator).await? {
            Some(op) if op.disabled_at.is_none() => {}
            _ => {
                return Err(PlatformError::Invalid {
                    field: Some("operator"),
                    message: "no enabled operator has this id".into(),
                });
            }
        }
        let now = self.clock.now();
        let grant = SupportGrant {
            id: uuid::Uuid::new_v4().to_string(),
            operator: req.operator,
            scope: req.scope,
            personal_data: req.personal_data,
            reason: req.reason.clone(),
            granted_by: principal.label(),
            created_at: now,
            expires_at: now + time::Duration::hours(i64::from(req.hours)),
            revoked_at: None,
        };
        let entry = NewEntry::by(
            &scope,
            Action::SupportGrant,
            grant_target(&grant.id),
            Some(req.reason),
        );
        let event = self.recorder.event(&scope, entry).await?;
        self.store
            .insert_support_grant(&scope, &grant, &event)
            .await?;
        tracing::warn!(tenant = %slug, operator = %grant.operator, grant = %grant.id, "support access granted");
        Ok(SupportGrantView::of(grant, now))
    }

    /// The tenant's support grants, newest first (`users:manage`).
    pub async fn support_grants(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Vec<SupportGrantView>, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let now = self.clock.now();
        let grants = self.store.support_grants(&scope, MAX_PAGE).await?;
        Ok(grants
            .into_iter()
            .map(|g| SupportGrantView::of(g, now))
            .collect())
    }

    /// Revokes a live grant at once (`users:manage`, reason required). Audited
    /// `support.revoke`.
    pub async fn revoke_support(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &str,
        reason: String,
    ) -> Result<(), PlatformError> {
        validate_reason(Action::SupportRevoke, Some(&reason))?;
        if id.len() > 64 {
            return Err(PlatformError::NotFound("support grant"));
        }
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        // Revocation works on a read-only tenant too: taking access away is always allowed.

        let entry = NewEntry::by(
            &scope,
            Action::SupportRevoke,
            grant_target(id),
            Some(reason),
        );
        let event = self.recorder.event(&scope, entry).await?;
        if !self.store.revoke_support_grant(&scope, id, &event).await? {
            return Err(PlatformError::NotFound("support grant"));
        }
        Ok(())
    }

    /// An operator's way into `slug` for `what`: only with a live grant, and each use
    /// is audited (`support.use`, naming what it was for). Without one — or for a
    /// tenant that does not exist — the answer is the same "no such tenant".
    pub(super) async fn support_scope(
        &self,
        principal: &Principal,
        slug: &Slug,
        what: SupportScope,
        used_for: &str,
    ) -> Result<(Tenant, TenantScope, SupportGrant), PlatformError> {
        let Principal::Operator(op) = principal else {
            return Err(PlatformError::NotFound("tenant"));
        };
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(PlatformError::NotFound("tenant"))?;
        let probe = self.sign_in_scope(&tenant);
        let now = self.clock.now();
        let Some(grant) = self
            .store
            .live_support_grant(&probe, op.id(), what, now)
            .await?
        else {
            return Err(PlatformError::NotFound("tenant"));
        };
        let scope = access::provisioning_scope(&access::system_scope(), &tenant);
        let scope = access::support_scope(&scope, principal);
        let mut entry = NewEntry::by(&scope, Action::SupportUse, grant_target(&grant.id), None);
        entry.reason = Some(used_for.to_owned());
        self.recorder.record(&scope, entry).await?;
        // And in the platform trail, naming the tenant: the platform's own record of
        // what its operators did inside tenants.
        let platform = access::authorize_platform(principal, PlatformAction::ReadTenants)?;
        let log = access::platform_log(&platform);
        let mut entry = NewEntry::by(&log, Action::SupportUse, grant_target(&grant.id), None);
        entry.reason = Some(format!("{}: {used_for}", tenant.slug));
        self.recorder.record(&log, entry).await?;
        Ok((tenant, scope, grant))
    }

    async fn record_expiries(
        &self,
        home: &TenantScope,
        now: OffsetDateTime,
    ) -> Result<u64, PlatformError> {
        let mut recorded = 0;
        for g in self.store.unrecorded_expiries(home, now).await? {
            let entry = NewEntry::by(home, Action::SupportExpire, grant_target(&g.id), None);
            let event = self.recorder.event(home, entry).await?;
            self.store.record_expiry(home, &g.id, &event).await?;
            recorded += 1;
        }
        Ok(recorded)
    }

    /// Records, in each tenant's trail, the support grants that expired since the last
    /// round (`support.expire`). Part of the background round.
    pub async fn support_expiry_round(&self) -> Result<u64, PlatformError> {
        let sys = access::system_scope();
        let mut recorded = 0;
        let now = self.clock.now();
        for t in self.tenants_with(&sys, PendingWork::SupportExpiry).await? {
            // One tenant's failure (its region down) does not hold up the others'.
            match self
                .record_expiries(&access::provisioning_scope(&sys, &t), now)
                .await
            {
                Ok(n) => recorded += n,
                Err(e) => {
                    tracing::warn!(tenant = %t.slug, error = %super::chain(&e), "recording support-grant expiries failed; will retry")
                }
            }
        }
        Ok(recorded)
    }
}
