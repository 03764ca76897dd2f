//! Authorization as a value you hold.
//!
//! Extractors at the edge turn credentials into a [`Principal`]; the functions here turn
//! a principal into a scope — [`PlatformScope`], [`TenantScope`] (and from it a
//! [`WritableScope`]), or the narrow [`SignInScope`] — whose constructors are private to
//! this module. Every store method takes a scope, so code that was never authorized
//! cannot even name the rows it would touch, and code holding tenant A's scope has no
//! way to spell tenant B.
//!
//! Principals are sealed too: outside this crate no code can build one. Inside it they
//! are minted only here, from proof — verified token claims (through the platform), a
//! proven password, or, for the command line, [`DataDirProof`]:
//!
//! ```compile_fail
//! // A principal cannot be forged outside strongroom-core: the payload's fields are private.
//! use strongroom_core::access::{Principal, OperatorPrincipal};
//! # fn forge(id: strongroom_core::identity::operator::OperatorId) -> Principal {
//! Principal::Operator(OperatorPrincipal { id })
//! # }
//! ```
//!
//! ```compile_fail
//! // Nor can a scope: its fields are private and it has no public constructor.
//! use strongroom_core::access::{Principal, TenantScope};
//! use strongroom_core::tenant::{RegionName, TenantId};
//! # fn forge(tenant: TenantId, region: RegionName, actor: Principal) -> TenantScope {
//! TenantScope { tenant, region, writable: true, actor }
//! # }
//! ```
//!
//! ```compile_fail
//! // The system principal (which passes every platform check) is minted only in-crate.
//! let system = strongroom_core::access::system();
//! ```
//!
//! ```compile_fail
//! // A sign-in scope (pre-authentication lookups) needs a platform scope, which only
//! // `authorize_platform` hands out: it cannot be built by hand.
//! # fn t(tenant: &strongroom_core::tenant::Tenant, who: strongroom_core::access::Principal) {
//! let platform = strongroom_core::access::PlatformScope { actor: who };
//! let probe = strongroom_core::access::sign_in(&platform, tenant);
//! # }
//! ```
//!
//! The same code with the legitimate path compiles:
//!
//! ```
//! # fn t(dir: &std::path::Path) -> Result<(), strongroom_core::access::DataDirError> {
//! use strongroom_core::access::{DataDirProof, Principal};
//! let admin: Principal = DataDirProof::check(dir)?.local_admin();
//! # Ok(()) }
//! ```

pub mod rbac;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::identity::application::AppId;
use crate::identity::operator::OperatorId;
use crate::identity::user::UserId;
use crate::tenant::{RegionName, Tenant, TenantId, TenantStatus};
use rbac::Permission;

/// A platform operator, authenticated by a verified operator token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPrincipal {
    id: OperatorId,
}

impl OperatorPrincipal {
    /// Which operator.
    pub fn id(&self) -> OperatorId {
        self.id
    }
}

/// Someone running the `strongroom` CLI with access to the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAdmin {
    _proof: (),
}

/// The server's own background work (re-encryption, audit integration) and its
/// internal lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemActor {
    _private: (),
}

/// A tenant's application (OAuth 2.0 client credentials), with the permissions its
/// token carries and it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantApp {
    tenant: Tenant,
    app: AppId,
    permissions: BTreeSet<Permission>,
}

impl TenantApp {
    /// The only tenant this principal can act in, as read when its token was
    /// authenticated (so the request needs no second directory lookup).
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Which application.
    pub fn app(&self) -> AppId {
        self.app
    }

    /// What it may do.
    pub fn permissions(&self) -> &BTreeSet<Permission> {
        &self.permissions
    }
}

/// A signed-in tenant user, as established from a verified access token and the
/// current state of their account (active, session live, current role grants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantUser {
    tenant: Tenant,
    user: UserId,
    session: String,
    via: Option<AppId>,
    permissions: BTreeSet<Permission>,
}

impl TenantUser {
    /// The only tenant this principal can act in, as read when the token was
    /// authenticated.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Who.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The session the token belongs to.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The application acting for the user (a delegated token), if any: the user's
    /// permissions are then intersected with the application's.
    pub fn via(&self) -> Option<AppId> {
        self.via
    }

    /// What they may do now (from their current role grants).
    pub fn permissions(&self) -> &BTreeSet<Permission> {
        &self.permissions
    }
}

/// Who is acting. The payloads have private fields: a principal is minted only by this
/// module, from proof.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// A platform operator authenticated by an access token.
    Operator(OperatorPrincipal),
    /// Someone running the `strongroom` CLI on the server with access to the data
    /// directory — which already means access to the root key.
    LocalAdmin(LocalAdmin),
    /// The server's own background work.
    System(SystemActor),
    /// A tenant user, confined to their tenant.
    User(TenantUser),
    /// A tenant's application, confined to its tenant.
    Application(TenantApp),
    /// Someone not (yet) authenticated: a failed sign-in is recorded under this actor.
    /// It holds no rights anywhere.
    Anonymous,
}

impl Principal {
    /// A stable, non-secret label for logs and audit entries, e.g. `operator:<uuid>`.
    pub fn label(&self) -> String {
        match self {
            Self::Operator(o) => format!("operator:{}", o.id),
            Self::User(u) => format!("user:{}", u.user),
            Self::Application(a) => format!("application:{}", a.app),
            Self::Anonymous => "anonymous".into(),
            Self::LocalAdmin(_) => "local-admin".into(),
            Self::System(_) => "system".into(),
        }
    }

    /// The tenant a tenant principal (user or application) is confined to.
    pub fn home_tenant(&self) -> Option<&Tenant> {
        match self {
            Self::User(u) => Some(&u.tenant),
            Self::Application(a) => Some(&a.tenant),
            _ => None,
        }
    }
}

/// The operator principal of a verified operator token (the platform verifies it).
pub(crate) fn operator(id: OperatorId) -> Principal {
    Principal::Operator(OperatorPrincipal { id })
}

/// The server itself, for background work and internal lookups.
pub(crate) fn system() -> Principal {
    Principal::System(SystemActor { _private: () })
}

/// The server's own platform scope (the system passes every platform check).
pub(crate) fn system_scope() -> PlatformScope {
    PlatformScope { actor: system() }
}

/// A tenant user whose credentials or token were just verified against storage.
pub(crate) fn signed_in_user(
    tenant: Tenant,
    user: UserId,
    session: String,
    via: Option<AppId>,
    permissions: BTreeSet<Permission>,
) -> Principal {
    Principal::User(TenantUser {
        tenant,
        user,
        session,
        via,
        permissions,
    })
}

/// An application whose credentials or token were just verified against storage.
pub(crate) fn application(
    tenant: Tenant,
    app: AppId,
    permissions: BTreeSet<Permission>,
) -> Principal {
    Principal::Application(TenantApp {
        tenant,
        app,
        permissions,
    })
}

/// Why a data directory is not proof of local administration.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Nothing there, or not a directory.
    #[error(
        "{0} is not an initialised Strongroom data directory (run `strongroom serve` or `strongroom init` to create one)"
    )]
    NotInitialised(PathBuf),
    /// The directory can be read by other users: it proves nothing about who we are.
    #[error("{0} is accessible to other users (mode must be 0700)")]
    TooOpen(PathBuf),
    /// It could not be inspected.
    #[error("cannot read data directory {path}")]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Proof that the caller can read an initialised, owner-only Strongroom data directory
/// — its databases and root key — which is what the command line's local-administrator
/// rights rest on.
#[derive(Debug)]
pub struct DataDirProof {
    _private: (),
}

impl DataDirProof {
    /// The file whose presence marks an initialised data directory (SQLite).
    pub const MARKER: &'static str = "control.db";
    /// The file that marks an initialised data directory whose databases are on
    /// PostgreSQL (it names the control database).
    pub const POSTGRES_MARKER: &'static str = "postgres.instance";

    /// Checks that `dir` is an initialised data directory (it holds the control
    /// database), readable by us and by no other user.
    pub fn check(dir: &Path) -> Result<Self, DataDirError> {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Err(DataDirError::NotInitialised(dir.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataDirError::NotInitialised(dir.to_owned()));
            }
            Err(source) => {
                return Err(DataDirError::Unreadable {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(DataDirError::TooOpen(dir.to_owned()));
        }
        let marker = [Self::MARKER, Self::POSTGRES_MARKER]
            .into_iter()
            .map(|m| dir.join(m))
            .find(|p| p.exists())
            .unwrap_or_else(|| dir.join(Self::MARKER));
        match std::fs::File::open(marker) {
            Ok(_) => Ok(Self { _private: () }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DataDirError::NotInitialised(dir.to_owned()))
            }
            Err(source) => Err(DataDirError::Unreadable {
                path: dir.to_owned(),
                source,
            }),
        }
    }

    /// The local administrator this proof entitles.
    pub fn local_admin(&self) -> Principal {
        Principal::LocalAdmin(LocalAdmin { _proof: () })
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
    /// Create, list and disable operators and manage their second factor: the local
    /// administrator only (no network principal manages operators).
    ManageOperators,
    /// Inspect and rotate tenants' keys, crypto-shred them, rotate and revoke the
    /// token-signing keys, erase audit subjects: the local administrator and the
    /// system only.
    ManageKeys,
    /// Set tenants' sealed configuration secrets (write-only).
    ManageSecrets,
    /// Read a tenant's audit trail on the platform's own authority: the local
    /// administrator and the system. Operators read a tenant's trail only through a
    /// live support grant from the tenant (`platform::support`).
    ReadAudit,
    /// Read the platform's own trail: operators, the local administrator and the
    /// system.
    ReadPlatformAudit,
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

mod sealed {
    /// Only this module's scope types are [`super::Scoped`].
    pub trait Sealed {}
}

/// What every tenant scope tells storage: which tenant, in which region. Sealed: only
/// the scope types of this module implement it.
pub trait Scoped: sealed::Sealed + Send + Sync {
    /// The tenant this scope is for.
    fn tenant(&self) -> TenantId;
    /// The region whose storage holds the tenant's data.
    fn region(&self) -> &RegionName;
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
    fn new(tenant: &Tenant, actor: Principal) -> Self {
        Self {
            tenant: tenant.id,
            region: tenant.region.clone(),
            writable: tenant.status == TenantStatus::Active,
            actor,
        }
    }

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

    /// The right to change the tenant's data, which a tenant whose contract ended
    /// (read-only) does not give. Obtained once per operation; write methods take it.
    pub fn writable(&self) -> Result<WritableScope, AccessError> {
        if matches!(self.actor, Principal::Anonymous) {
            // An anonymous scope only records attempts; it never changes data.
            return Err(AccessError::Forbidden("authentication required"));
        }
        if self.writable {
            Ok(WritableScope(self.clone()))
        } else {
            Err(AccessError::TenantReadOnly)
        }
    }
}

impl sealed::Sealed for TenantScope {}
impl Scoped for TenantScope {
    fn tenant(&self) -> TenantId {
        self.tenant
    }
    fn region(&self) -> &RegionName {
        &self.region
    }
}

/// A [`TenantScope`] on a tenant that accepts writes: what every method that changes
/// tenant data takes.
#[derive(Debug, Clone)]
pub struct WritableScope(TenantScope);

impl std::ops::Deref for WritableScope {
    type Target = TenantScope;
    fn deref(&self) -> &TenantScope {
        &self.0
    }
}

impl sealed::Sealed for WritableScope {}
impl Scoped for WritableScope {
    fn tenant(&self) -> TenantId {
        self.0.tenant
    }
    fn region(&self) -> &RegionName {
        &self.0.region
    }
}

/// The narrow scope of pre-authentication work in one tenant: looking up the
/// credentials being presented (a password hash, a session, a refresh token, an
/// application, an invitation) and recording the attempt. It grants no permission:
/// store methods accept it only for those lookups and for sign-in audit events.
#[derive(Debug, Clone)]
pub struct SignInScope {
    tenant: TenantId,
    region: RegionName,
}

impl sealed::Sealed for SignInScope {}
impl Scoped for SignInScope {
    fn tenant(&self) -> TenantId {
        self.tenant
    }
    fn region(&self) -> &RegionName {
        &self.region
    }
}

impl SignInScope {
    /// The scope under which a failed or anonymous attempt is recorded (actor
    /// `anonymous`): it can append audit entries and nothing the store guards with a
    /// permission.
    pub(crate) fn anonymous(&self, tenant: &Tenant) -> TenantScope {
        TenantScope::new(tenant, Principal::Anonymous)
    }
}

/// Pre-authentication lookups in `tenant`, on the authority of a platform scope (the
/// server's own, in the sign-in paths; a storage test's local administrator).
pub fn sign_in(_platform: &PlatformScope, tenant: &Tenant) -> SignInScope {
    SignInScope {
        tenant: tenant.id,
        region: tenant.region.clone(),
    }
}

/// Decides whether `principal` may perform `action` at platform level.
///
/// Operators may read and create tenants, set their sealed configuration secrets and
/// read the platform trail; everything else (operators, keys, tenants' trails, direct
/// data access) is the local administrator's and the system's. No tenant principal has
/// any platform action. Defence in depth: the HTTP API exposes none of the local
/// administrator's actions either.
pub fn authorize_platform(
    principal: &Principal,
    action: PlatformAction,
) -> Result<PlatformScope, AccessError> {
    tracing::trace!(actor = %principal.label(), ?action, "platform authorization");
    match (principal, action) {
        (Principal::Operator(_), PlatformAction::LocalData) => Err(AccessError::Forbidden(
            "tenant data is not readable through the platform API",
        )),
        (
            Principal::Operator(_),
            PlatformAction::ManageOperators
            | PlatformAction::ManageKeys
            | PlatformAction::ReadAudit,
        ) => Err(AccessError::Forbidden(
            "only the local administrator (the CLI on the server) may do this",
        )),
        (Principal::Operator(_) | Principal::LocalAdmin(_) | Principal::System(_), _) => {
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

/// Decides whether a tenant principal may do something needing `permission` in
/// `tenant`.
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
    let (home, held) = match principal {
        Principal::User(u) => (&u.tenant, &u.permissions),
        Principal::Application(a) => (&a.tenant, &a.permissions),
        _ => return Err(AccessError::Forbidden("not a user of this tenant")),
    };
    if home.id != tenant.id {
        return Err(AccessError::NotVisible);
    }
    if !held.contains(&permission) {
        return Err(AccessError::Forbidden(permission.as_str()));
    }
    Ok(TenantScope::new(tenant, principal.clone()))
}

/// The scope of a tenant principal's work on its own account in its own tenant
/// (sessions, second factors): no permission is needed, and no other tenant can be
/// named. Platform principals have no account in a tenant.
pub fn own_account(principal: &Principal) -> Result<TenantScope, AccessError> {
    match principal.home_tenant() {
        Some(tenant) => Ok(TenantScope::new(tenant, principal.clone())),
        None => Err(AccessError::Forbidden(
            "only a tenant's user has an account here",
        )),
    }
}

/// The scope an operator acts under inside a tenant through a live support grant:
/// `tenant` is the server's own provisioning scope on it (the grant was checked by the
/// platform), with the operator as the actor, so every entry it causes names them.
pub(crate) fn support_scope(tenant: &TenantScope, operator: &Principal) -> TenantScope {
    TenantScope {
        actor: operator.clone(),
        ..tenant.clone()
    }
}

/// The scope of the platform's own audit trail (a log like a tenant's, kept in the
/// control database, for the pseudo-tenant [`TenantId::PLATFORM`]), for whoever holds a
/// platform scope: what operators and the platform do is recorded there.
pub fn platform_log(platform: &PlatformScope) -> TenantScope {
    TenantScope {
        tenant: TenantId::PLATFORM,
        region: RegionName::platform(),
        writable: true,
        actor: platform.actor.clone(),
    }
}

/// The platform trail's scope for an attempt by someone not (yet) authenticated: a
/// failed operator sign-in is recorded under the actor `anonymous`.
pub(crate) fn platform_log_anonymous(platform: &PlatformScope) -> TenantScope {
    TenantScope {
        actor: Principal::Anonymous,
        ..platform_log(platform)
    }
}

/// Grants platform-level work on one tenant (provisioning its storage, managing its
/// keys) a scope for that tenant. Requires a platform scope: only platform actors get
/// one this way; tenant users get theirs from their own credentials.
pub fn provisioning_scope(platform: &PlatformScope, tenant: &Tenant) -> TenantScope {
    TenantScope::new(tenant, platform.actor.clone())
}

#[cfg(test)]
mod tests;
