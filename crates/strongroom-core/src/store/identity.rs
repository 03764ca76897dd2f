//! The identity ports: tenant users with their role grants and invitations
//! ([`UserStore`]), their sessions and refresh tokens ([`SessionStore`]), and the
//! tenant's OAuth 2.0 applications ([`ApplicationStore`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, Page, StoreError};
use crate::access::rbac::Role;
use crate::access::{Scoped, SignInScope, TenantScope, WritableScope};
use crate::identity::Email;
use crate::identity::application::{AppId, StoredApplication};
use crate::identity::user::{StoredSession, User, UserCredentials, UserId, UserStatus};

/// A new tenant user with its first role grants.
#[derive(Debug, Clone)]
pub struct NewUserRow {
    /// The user.
    pub user: User,
    /// PHC password hash.
    pub password_hash: String,
    /// Actor label of whoever created the user (recorded with the grants).
    pub granted_by: String,
}

/// A change to a user: status and/or the complete set of roles.
#[derive(Debug, Clone)]
pub struct UserChange {
    /// New status.
    pub status: Option<UserStatus>,
    /// New complete set of roles.
    pub roles: Option<Vec<Role>>,
    /// Actor label of whoever changes it.
    pub granted_by: String,
    /// When.
    pub at: OffsetDateTime,
}

/// A one-time invitation to become a tenant user.
#[derive(Debug, Clone)]
pub struct StoredInvitation {
    /// SHA-256 of the invitation token.
    pub hash: [u8; 32],
    /// Who is invited (their login name).
    pub email: Email,
    /// The role they will have.
    pub role: Role,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// The token was current: it is now used, and `new` replaces it.
    Rotated(StoredSession),
    /// The token had been used before: nothing was changed; the caller revokes the
    /// session with its audit entry in one transaction ([`SessionStore::revoke_session`]).
    Reused(StoredSession),
    /// No such token (or its session is revoked or expired).
    Invalid,
}

/// Tenant users, their role grants and invitations.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user with its role grants, audited in the same transaction. Fails with
    /// `Conflict` if the e-mail is taken in the tenant.
    async fn insert_user(
        &self,
        scope: &WritableScope,
        row: &NewUserRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A user by id, with roles.
    async fn user(&self, scope: &dyn Scoped, id: UserId) -> Result<Option<User>, StoreError>;

    /// A user and password hash by (normalised) e-mail.
    async fn user_credentials(
        &self,
        scope: &dyn Scoped,
        email: &Email,
    ) -> Result<Option<UserCredentials>, StoreError>;

    /// Users ordered by id, after the cursor.
    async fn users(
        &self,
        scope: &TenantScope,
        page: &Page<UserId>,
    ) -> Result<Vec<User>, StoreError>;

    /// Applies `change`, audited in the same transaction; disabling revokes every
    /// session of the user in that transaction too. `None` if no such user.
    async fn update_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<Option<User>, StoreError>;

    /// Replaces a user's password hash (re-hashing an imported bcrypt hash to argon2id
    /// after a successful sign-in; the password itself does not change), audited
    /// (`user.password_rehash`) in the same transaction.
    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Sets a user's printed name, audited (`user.name_set`) in the same transaction;
    /// false when there is no such user.
    async fn set_full_name(
        &self,
        scope: &WritableScope,
        id: UserId,
        full_name: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Deletes a user with their grants, sessions, refresh tokens and second factors
    /// (TOTP and passkeys), audited in the same transaction. `false` if no such user.
    async fn delete_user(
        &self,
        scope: &WritableScope,
        id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Stores an invitation, audited. `created_by` is the inviter's label
    /// (`Principal::label`); an invitation by an operator (`operator:…`) is for the
    /// tenant's first user only, and is void — to [`UserStore::invitation`] and
    /// [`UserStore::accept_invitation`] alike — once the tenant has any user.
    async fn insert_invitation(
        &self,
        scope: &WritableScope,
        invitation: &StoredInvitation,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The unused invitation with token hash `hash`, unexpired at `now` (the
    /// pre-authentication lookup that comes before any password is hashed).
    async fn invitation(
        &self,
        scope: &dyn Scoped,
        hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<StoredInvitation>, StoreError>;

    /// Whether the tenant has any user at all.
    async fn has_users(&self, scope: &dyn Scoped) -> Result<bool, StoreError>;

    /// Uses an unexpired, unused invitation to create `user` (with the invitation's
    /// role), in one transaction with `audit`. `None` if the token is unknown, used,
    /// expired at `now`, or an operator's invitation to a tenant that has users now.
    async fn accept_invitation(
        &self,
        scope: &WritableScope,
        hash: &[u8; 32],
        user: &NewUserRow,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<StoredInvitation>, StoreError>;
}

/// Sessions and their rotating refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a session with its first refresh token (hash), audited.
    async fn create_session(
        &self,
        scope: &TenantScope,
        session: &StoredSession,
        refresh_hash: &[u8; 32],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A session by id.
    async fn session(
        &self,
        scope: &dyn Scoped,
        id: &str,
    ) -> Result<Option<StoredSession>, StoreError>;

    /// Uses refresh token `old` once, storing `new` as its successor; a second use of
    /// `old` is reported as [`RefreshOutcome::Reused`] (and changes nothing). Sessions
    /// past `now` are not refreshed.
    async fn rotate_refresh(
        &self,
        scope: &SignInScope,
        old: &[u8; 32],
        new: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<RefreshOutcome, StoreError>;

    /// Revokes a session (logout, reuse detected), audited in the same transaction.
    async fn revoke_session(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// A tenant's OAuth 2.0 applications.
#[async_trait]
pub trait ApplicationStore: Send + Sync + 'static {
    /// Registers an application, audited in the same transaction.
    async fn insert_application(
        &self,
        scope: &WritableScope,
        app: &StoredApplication,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// An application by id.
    async fn application(
        &self,
        scope: &dyn Scoped,
        id: AppId,
    ) -> Result<Option<StoredApplication>, StoreError>;

    /// Every application of the tenant (bounded by the caller's page).
    async fn applications(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<StoredApplication>, StoreError>;

    /// Enables or disables an application, audited. `false` if no such application.
    async fn set_application_active(
        &self,
        scope: &WritableScope,
        id: AppId,
        active: bool,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}
