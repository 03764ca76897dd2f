//! Authorization as a value you hold.
//!
//! Extractors at the edge turn credentials into a [`Principal`]; the functions here turn
//! a principal into a scope — [`PlatformScope`] or [`TenantScope`] — whose
//! constructors are private to this module. Every store method takes a scope, so code
//! that was never authorized cannot even name the rows it would touch, and code holding
//! tenant A's scope has no way to spell tenant B.

pub mod rbac;

use std::collections::BTreeSet;

use crate::identity::operator::OperatorId;
use crate::identity::user::UserId;
use crate::tenant::{RegionName, Tenant, TenantId, TenantStatus};
use rbac::Permission;

/// An application of a tenant, with the permissions it was registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantApp {
    /// The only tenant this principal can act in, as read when the token was
    /// authenticated (so the request needs no second directory lookup).
    pub tenant: Tenant,
    /// Which application.
    pub app: crate::identity::application::AppId,
    /// What it may do.
    pub permissions: BTreeSet<Permission>,
}

/// A signed-in tenant user, as established from a verified access token and the
/// current state of their account (active, session live, current role grants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    /// The only tenant this principal can act in, as read when the token was
    /// authenticated (so the request needs no second directory lookup).
    pub tenant: Tenant,
    /// Who.
    pub user: UserId,
    /// The session the token belongs to.
    pub session: String,
    /// The application acting for the user (a delegated token), if any: the user's
    /// permissions are then intersected with the application's.
    pub via: Option<crate::identity::application::AppId>,
    /// What they may do now (from their current role grants).
    pub permissions: BTreeSet<Permission>,
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A platform operator authenticated by an access token.
    Operator(OperatorId),
    /// Someone running the `strongroom` CLI on the server with access to the data
    /// directory — which already means access to the root key.
    LocalAdmin,
    /// The server's own background work (re-encryption after a key rotation).
    System,
    /// A tenant user, confined to their tenant.
    User(TenantUser),
    /// A tenant's application (OAuth 2.0 client credentials), confined to its tenant.
    Application(TenantApp),
    /// Someone not (yet) authenticated: a failed sign-in is recorded under this actor.
    Anonymous,
}

impl Principal {
    /// A stable, non-secret label for logs and audit entries, e.g. `operator:<uuid>`.
    pub fn label(&self) -> String {
        match self {
            Self::Operator(id) => format!("operator:{id}"),
            Self::User(u) => format!("user:{}", u.user),
            Self::Application(a) => format!("application:{}", a.app),
            Self::Anonymous => "anonymous".into(),
            Self::LocalAdmin => "local-admin".into(),
            Self::System => "system".into(),
        }
    }
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    /// The principal may not do this.
    #[error("not permitted: {0}")]
    Forbidden(&'static str),
    /// The tenant does not accept writes in its current state.
    #[error("tenant is read-only (contract ended)")]
    TenantReadOnly,
    /// The object belongs to another tenant: answered exactly as if it did not exist.
    #[error("not found")]
    NotVisible,
}

/// Platform-level actions (operators only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformAction {
    /// List and read tenants.
    ReadTenants,
    /// Create tenants.
    ManageTenants,
    /// Create operators.
    ManageOperators,
    /// Inspect and rotate tenants' keys, and crypto-shred them.
    ManageKeys,
    /// Set tenants' sealed configuration secrets (write-only).
    ManageSecrets,
    /// Read a tenant's audit trail (checkpoints, tiles, proofs). Until tenant users and
    /// their `audit:read` permission exist, operators hold it.
    ReadAudit,
    /// Read and write tenant data directly (blobs, secret values). Only the local
    /// administrator and the server itself: no network principal has it.
    LocalData,
}

/// Proof that the holder may perform platform-level actions.
#[derive(Debug, Clone)]
pub struct PlatformScope {
    actor: Principal,
}

impl PlatformScope {
    /// Who acts under this scope.
    pub fn actor(&self) -> &Principal {
        &self.actor
    }
}

/// Proof that the holder may act on one tenant's data, and on nothing else.
#[derive(Debug, Clone)]
pub struct TenantScope {
    tenant: TenantId,
    region: RegionName,
    writable: bool,
    actor: Principal,
}

impl TenantScope {
    /// The tenant this scope is for.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The region whose storage holds the tenant's data.
    pub fn region(&self) -> &RegionName {
        &self.region
    }

    /// Who acts under this scope.
    pub fn actor(&self) -> &Principal {
        &self.actor
    }

    /// Fails unless the tenant accepts writes.
    pub fn require_writable(&self) -> Result<(), AccessError> {
        if self.writable {
            Ok(())
        } else {
            Err(AccessError::TenantReadOnly)
        }
    }
}

/// Decides whether `principal` may perform `action` at platform level.
///
/// Today every platform action is open to operators and the local administrator and
/// to no one else; tenant principals (a later variant) will be refused here.
pub fn authorize_platform(
    principal: &Principal,
    action: PlatformAction,
) -> Result<PlatformScope, AccessError> {
    tracing::trace!(actor = %principal.label(), ?action, "platform authorization");
    match (principal, action) {
        (Principal::Operator(_), PlatformAction::LocalData) => Err(AccessError::Forbidden(
            "tenant data is not readable through the platform API",
        )),
        (Principal::Operator(_) | Principal::LocalAdmin | Principal::System, _) => {
            Ok(PlatformScope {
                actor: principal.clone(),
            })
        }
        // Tenant users have no platform-level rights; on a tenant's path they are
        // refused as if the tenant did not exist (see `authorize_tenant`).
        (Principal::User(_) | Principal::Application(_), _) => Err(AccessError::NotVisible),
        (Principal::Anonymous, _) => Err(AccessError::Forbidden("authentication required")),
    }
}

/// Decides whether a tenant user may do something needing `permission` in `tenant`.
///
/// A user of another tenant gets [`AccessError::NotVisible`] — the caller answers as
/// for a tenant that does not exist — and a user of this tenant without the permission
/// gets `Forbidden`. Platform principals never pass here: they reach tenants only
/// through [`provisioning_scope`] for platform actions.
pub fn authorize_tenant(
    principal: &Principal,
    tenant: &Tenant,
    permission: Permission,
) -> Result<TenantScope, AccessError> {
    match principal {
        Principal::User(u) if u.tenant.id != tenant.id => Err(AccessError::NotVisible),
        Principal::User(u) if !u.permissions.contains(&permission) => {
            Err(AccessError::Forbidden(permission.as_str()))
        }
        Principal::User(_) => Ok(TenantScope {
            tenant: tenant.id,
            region: tenant.region.clone(),
            writable: tenant.status == TenantStatus::Active,
            actor: principal.clone(),
        }),
        Principal::Application(a) if a.tenant.id != tenant.id => Err(AccessError::NotVisible),
        Principal::Application(a) if !a.permissions.contains(&permission) => {
            Err(AccessError::Forbidden(permission.as_str()))
        }
        Principal::Application(_) => Ok(TenantScope {
            tenant: tenant.id,
            region: tenant.region.clone(),
            writable: tenant.status == TenantStatus::Active,
            actor: principal.clone(),
        }),
        _ => Err(AccessError::Forbidden("not a user of this tenant")),
    }
}

/// The scope of a sign-in event in `tenant` by `actor` — a user who has just proven
/// their credentials, or [`Principal::Anonymous`] for a failed attempt. It records the
/// event (and the session) in the tenant; it grants no permission, since every other
/// action goes through [`authorize_tenant`].
pub fn sign_in_scope(tenant: &Tenant, actor: Principal) -> TenantScope {
    TenantScope {
        tenant: tenant.id,
        region: tenant.region.clone(),
        writable: tenant.status == TenantStatus::Active,
        actor,
    }
}

/// Grants platform-level work on one tenant (provisioning its storage, managing its
/// keys) a scope for that tenant. Requires a platform scope: only platform actors get
/// one this way; tenant users will get theirs from their own credentials.
pub fn provisioning_scope(platform: &PlatformScope, tenant: &Tenant) -> TenantScope {
    TenantScope {
        tenant: tenant.id,
        region: tenant.region.clone(),
        writable: tenant.status == TenantStatus::Active,
        actor: platform.actor.clone(),
    }
}
