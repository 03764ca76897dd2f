//! Tenant users on the platform facade: creating and changing users, signing in,
//! refreshing and signing out, and turning a bearer token into a principal.
//!
//! Every request re-derives a user's rights from the stored state — session live, user
//! active, current role grants — so disabling a user, revoking a session or removing a
//! role takes effect on the very next request, not when the token expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use super::{MAX_PAGE, Platform, PlatformError};
use std::net::IpAddr;

use crate::access::rbac::{Permission, Role, permissions_of};
use crate::access::{self, PlatformAction, Principal, TenantScope};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::identity::throttle::Attempt;
use crate::identity::token::{OPERATOR_AUDIENCE, TENANT_AUDIENCE, TenantClaims, TokenError};
use crate::identity::user::{StoredSession, User, UserId, UserStatus};
use crate::identity::{Email, IdentityError, password};
use crate::secret::SecretString;
use crate::store::{NewUserRow, Page, RefreshOutcome, UserChange};
use crate::tenant::{Slug, Tenant};

/// Prefix of refresh tokens (lets secret scanners recognise a leaked one).
const REFRESH_PREFIX: &str = "srr_";

/// What a successful sign-in or refresh returns.
#[derive(Clone, Serialize, ToSchema)]
pub struct UserTokens {
    /// The EdDSA-signed JWT access token (minutes).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single-use refresh token; each use returns a new one.
    pub refresh_token: String,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// How a new user proves who they are.
#[derive(Clone)]
pub enum Credential {
    /// A password (policy-checked, hashed with argon2id).
    Password(SecretString),
    /// A bcrypt hash from another system, for user import: accepted as is and
    /// re-hashed to argon2id at the user's next successful sign-in.
    BcryptHash(String),
}

/// A password or a password hash: neither is ever printed.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Credential::Password(..)",
            Self::BcryptHash(_) => "Credential::BcryptHash(..)",
        })
    }
}

/// A change requested to a user.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// Enable or disable.
    pub status: Option<UserStatus>,
    /// Replace the roles.
    pub roles: Option<Vec<Role>>,
}

impl UserPatch {
    /// The change in words, as the audit entry's reason; refuses an empty patch.
    fn describe(&self) -> Result<String, PlatformError> {
        let mut parts = Vec::new();
        if let Some(s) = &self.status {
            parts.push(format!("status={}", s.as_str()));
        }
        if let Some(r) = &self.roles {
            let names: Vec<&str> = r.iter().map(|r| r.as_str()).collect();
            parts.push(format!("roles={}", names.join(",")));
        }
        if parts.is_empty() {
            return Err(PlatformError::Invalid {
                field: None,
                message: "nothing to change: give `status` and/or `roles`".into(),
            });
        }
        Ok(parts.join("; "))
    }
}

/// Longest printed name, in characters.
pub(super) const MAX_FULL_NAME: usize = 200;

/// A printed name as given (absent = empty, to be set before signing): trimmed, at
/// most [`MAX_FULL_NAME`] characters, no control characters.
pub(super) fn full_name(given: Option<&str>) -> Result<String, PlatformError> {
    let name = given.unwrap_or("").trim();
    if name.chars().count() > MAX_FULL_NAME || name.chars().any(char::is_control) {
        return Err(PlatformError::Invalid {
            field: Some("full_name"),
            message: format!(
                "a printed name is at most {MAX_FULL_NAME} characters, without control characters"
            ),
        });
    }
    Ok(name.to_owned())
}

/// The hash a `user.name_set` entry records for a name (`before`/`after`): it lets an
/// auditor confirm a claimed name without the trail holding it in clear.
fn name_hash(user: UserId, name: &str) -> [u8; 32] {
    sha256(&[
        b"strongroom-printed-name-v1\0",
        user.to_string().as_bytes(),
        b"\0",
        name.as_bytes(),
    ])
}

pub(super) fn refresh_hash(token: &str) -> [u8; 32] {
    sha256(&[token.as_bytes()])
}

/// A new refresh token of `tenant`: `srr_<slug>.<256 random bits, base64url>`. The
/// slug lets the tenant-less OAuth token endpoint find the tenant; only the token's
/// SHA-256 is stored.
pub(super) fn new_refresh_token(tenant: &Slug) -> Result<String, PlatformError> {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).map_err(|_| PlatformError::internal("system RNG failed"))?;
    Ok(format!(
        "{REFRESH_PREFIX}{tenant}.{}",
        URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// The tenant a refresh token names, if it is shaped like one of ours.
fn refresh_tenant(token: &str) -> Option<Slug> {
    if token.len() > 128 {
        return None;
    }
    let (slug, _) = token.strip_prefix(REFRESH_PREFIX)?.split_once('.')?;
    Slug::parse(slug).ok()
}

pub(super) fn user_target(id: Option<UserId>) -> Target {
    Target::of(
        "user",
        id.map_or_else(|| "unknown".into(), |u| u.to_string()),
    )
}

impl Platform {
    /// The tenant behind `slug`, looked up with the server's own rights.
    pub(super) async fn tenant_by_slug(
        &self,
        slug: &Slug,
    ) -> Result<Option<Tenant>, PlatformError> {
        let sys = access::system_scope();
        Ok(self.store.tenant(&sys, slug).await?)
    }

    /// The narrow scope of pre-authentication lookups in `tenant`, on the server's
    /// own authority.
    pub(super) fn sign_in_scope(&self, tenant: &Tenant) -> access::SignInScope {
        access::sign_in(&access::system_scope(), tenant)
    }

    /// The caller's own tenant, for acting on their own account (no permission
    /// needed): a signed-in user's own session, not an application's or a delegated
    /// token's — account security is the user's alone.
    pub(super) async fn own_scope(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<(Tenant, TenantScope), PlatformError> {
        let Principal::User(u) = principal else {
            return Err(PlatformError::Forbidden(
                "only a signed-in user has an account here".into(),
            ));
        };
        // Another tenant's slug answers exactly as a missing tenant does.
        if u.tenant().slug != *slug {
            return Err(PlatformError::NotFound("tenant"));
        }
        if u.via().is_some() {
            return Err(PlatformError::Forbidden(
                "an application acting for a user cannot change the user's account security".into(),
            ));
        }
        Ok((u.tenant().clone(), access::own_account(principal)?))
    }

    /// A scope on `slug` for `principal` needing `permission`: tenant users by their
    /// grants (another tenant's user sees "not found"); the local administrator always;
    /// operators only for `operator_action`, if the operation allows one.
    pub(super) async fn tenant_access(
        &self,
        principal: &Principal,
        slug: &Slug,
        permission: Permission,
        operator_action: Option<PlatformAction>,
    ) -> Result<(Tenant, TenantScope), PlatformError> {
        match principal {
            // The tenant was read when the token was authenticated: a user's or an
            // application's own tenant needs no second lookup, and any other slug —
            // another tenant's or none at all — answers "no such tenant".
            Principal::User(_) | Principal::Application(_) => {
                let tenant = principal
                    .home_tenant()
                    .filter(|t| t.slug == *slug)
                    .ok_or(PlatformError::NotFound("tenant"))?;
                let scope = access::authorize_tenant(principal, tenant, permission)?;
                Ok((tenant.clone(), scope))
            }
            Principal::LocalAdmin(_) | Principal::System(_) => {
                self.tenant_scope(principal, slug, PlatformAction::ManageTenants)
                    .await
            }
            // Inside a tenant an operator is no one: the tenant's own API answers them
            // as if it did not exist (support access is the one way in, for reading
            // the trail; see `support`).
            Principal::Operator(_) => match operator_action {
                Some(action) => self.tenant_scope(principal, slug, action).await,
                None => Err(PlatformError::NotFound("tenant")),
            },
            Principal::Anonymous => Err(PlatformError::Unauthenticated),
        }
    }

    /// Creates a tenant user with roles. The local administrator (bootstrap) or a user
    /// with `users:manage`.
    pub async fn create_user(
        &self,
        principal: &Principal,
        slug: &Slug,
        email: Email,
        full_name: Option<&str>,
        credential: Credential,
        roles: Vec<Role>,
    ) -> Result<User, PlatformError> {
        let full_name = self::full_name(full_name)?;
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        let hash = match credential {
            Credential::Password(p) => {
                password::check_policy(&p, &[email.as_str(), slug.as_str()])?;
                self.passwords.hash(&p).await?
            }
            Credential::BcryptHash(h) => {
                password::check_bcrypt_import(&h).map_err(|e| PlatformError::Invalid {
                    field: Some("password_hash"),
                    message: e.to_string(),
                })?;
                h
            }
        };
        let user = User {
            id: UserId::generate(),
            email,
            full_name,
            status: UserStatus::Active,
            roles,
            created_at: self.clock.now(),
        };
        let entry = NewEntry::by(&scope, Action::UserCreate, user_target(Some(user.id)), None);
        let event = self.recorder.event(&scope, entry).await?;
        let row = NewUserRow {
            user: user.clone(),
            password_hash: hash,
            granted_by: principal.label(),
        };
        self.store.insert_user(&scope, &row, &event).await?;
        tracing::info!(tenant = %slug, user = %user.id, actor = %principal.label(), "user created");
        Ok(user)
    }

    /// One user (`users:manage`).
    pub async fn user(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: UserId,
    ) -> Result<User, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        self.store
            .user(&scope, id)
            .await?
            .ok_or(PlatformError::NotFound("user"))
    }

    /// Users ordered by id (`users:manage`).
    pub async fn users(
        &self,
        principal: &Principal,
        slug: &Slug,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<User>, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let page = Page {
            after,
            limit: limit.clamp(1, MAX_PAGE),
        };
        Ok(self.store.users(&scope, &page).await?)
    }

    /// Enables/disables a user or replaces their roles (`users:manage`). Disabling
    /// revokes every session at once.
    pub async fn update_user(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        let reason = patch.describe()?;
        let entry = NewEntry::by(
            &scope,
            Action::UserUpdate,
            user_target(Some(id)),
            Some(reason),
        );
        let event = self.recorder.event(&scope, entry).await?;
        let change = UserChange {
            status: patch.status,
            roles: patch.roles,
            granted_by: principal.label(),
            at: event.at,
        };
        self.store
            .update_user(&scope, id, &change, &event)
            .await?
            .ok_or(PlatformError::NotFound("user"))
    }

    /// Sets a user's printed name: an administrator (`users:manage`) for anyone, or a
    /// signed-in user (their own interactive session) for themselves. Audited
    /// (`user.name_set`) with hashes of the old and new name. Signatures already given
    /// keep the name printed at signing time.
    pub async fn set_full_name(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: UserId,
        name: &str,
    ) -> Result<User, PlatformError> {
        let name = self::full_name(Some(name))?;
        if name.is_empty() {
            return Err(PlatformError::Invalid {
                field: Some("full_name"),
                message: "a printed name cannot be empty".into(),
            });
        }
        let own = matches!(principal, Principal::User(u) if u.user() == id && u.via().is_none());
        let scope = if own {
            self.own_scope(principal, slug).await?.1
        } else {
            self.tenant_access(principal, slug, Permission::UsersManage, None)
                .await?
                .1
        };
        let scope = scope.writable()?;
        let before = self
            .store
            .user(&scope, id)
            .await?
            .ok_or(PlatformError::NotFound("user"))?;
        let mut entry = NewEntry::by(&scope, Action::UserNameSet, user_target(Some(id)), None);
        entry.before = Some(name_hash(id, &before.full_name));
        entry.after = Some(name_hash(id, &name));
        let event = self.recorder.event(&scope, entry).await?;
        if !self.store.set_full_name(&scope, id, &name, &event).await? {
            return Err(PlatformError::NotFound("user"));
        }
        Ok(User {
            full_name: name,
            ..before
        })
    }

    /// Deletes a user (`users:manage`, reason required): their sessions end at once.
    /// The audit trail keeps their id; their personal data in it is erased separately
    /// (`audit erase-subject`). Deleting oneself is refused.
    pub async fn delete_user(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: UserId,
        reason: String,
    ) -> Result<(), PlatformError> {
        crate::audit::entry::validate_reason(Action::UserDelete, Some(&reason))?;
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        if matches!(principal, Principal::User(u) if u.user() == id) {
            return Err(PlatformError::Conflict("you cannot delete yourself".into()));
        }
        let entry = NewEntry::by(
            &scope,
            Action::UserDelete,
            user_target(Some(id)),
            Some(reason),
        );
        let event = self.recorder.event(&scope, entry).await?;
        if !self.store.delete_user(&scope, id, &event).await? {
            return Err(PlatformError::NotFound("user"));
        }
        Ok(())
    }

    /// The password step of a sign-in: throttling, the tenant, the account and the
    /// hash check. Every failure is the same `InvalidCredentials` (and audited in an
    /// existing tenant). The attempt is reserved with the throttle before any hashing,
    /// so concurrent attempts cannot check more passwords than the lockout allows; the
    /// caller ends it (success only after every factor is proven).
    pub(super) async fn check_password(
        &self,
        slug: &Slug,
        email: &Email,
        password: &SecretString,
        client: IpAddr,
    ) -> Result<(Tenant, User, String, Attempt<'_>), PlatformError> {
        let account = format!("{slug}/{}", email.as_str());
        let attempt = self.throttle.begin(&account, client).map_err(too_many)?;
        let Some(tenant) = self.tenant_by_slug(slug).await? else {
            // The same work as for a tenant that exists: a hash, and an audited failure
            // (in the platform trail, which is where a sign-in to no tenant belongs).
            self.passwords.verify_dummy(password).await?;
            attempt.failed();
            let log = access::platform_log_anonymous(&access::system_scope());
            let target = Target::of("tenant", slug.as_str());
            let entry = NewEntry::by(&log, Action::SessionLoginFailed, target, None);
            self.recorder.record(&log, entry).await?;
            return Err(IdentityError::InvalidCredentials.into());
        };
        let probe = self.sign_in_scope(&tenant);
        let creds = self.store.user_credentials(&probe, email).await?;
        let verified = match &creds {
            Some(c) => self.passwords.verify(password, &c.password_hash).await?,
            None => {
                // Same hashing time as a real check: no e-mail enumeration by timing.
                self.passwords.verify_dummy(password).await?;
                false
            }
        };
        match creds {
            Some(c) if verified && c.user.status == UserStatus::Active => {
                let (allowed, _) = self.password_allowed(&tenant, c.user.id).await?;
                if !allowed {
                    // Answered, counted and audited exactly like a wrong password, so
                    // neither the reply nor the lockout tells a right password from a
                    // wrong one (the account signs in by SSO; its password is moot).
                    attempt.failed();
                    let scope = self.sign_in_scope(&tenant).anonymous(&tenant);
                    let entry = NewEntry::by(
                        &scope,
                        Action::SessionLoginFailed,
                        user_target(Some(c.user.id)),
                        Some("password refused: the tenant requires single sign-on".into()),
                    );
                    self.recorder.record(&scope, entry).await?;
                    return Err(IdentityError::InvalidCredentials.into());
                }
                Ok((tenant, c.user, c.password_hash, attempt))
            }
            other => {
                attempt.failed();
                self.record_failed_login(&tenant, other.map(|c| c.user.id))
                    .await?;
                tracing::info!(tenant = %slug, "user sign-in failed");
                Err(IdentityError::InvalidCredentials.into())
            }
        }
    }

    /// Signs a user in with e-mail and password (and a second factor where they have
    /// one), from `client`: a new session, an access token and a refresh token. Every
    /// failure looks the same to the caller (unknown tenant, unknown e-mail, wrong
    /// password, disabled user) and costs the same hashing time; failures in an
    /// existing tenant are audited (`session.login_failed`).
    pub async fn user_login(
        &self,
        slug: &Slug,
        email: &Email,
        password: &SecretString,
        second: &super::SecondFactor,
        client: IpAddr,
    ) -> Result<UserTokens, PlatformError> {
        let (tenant, user, stored_hash, attempt) =
            self.check_password(slug, email, password, client).await?;
        let session = self.new_session(&user);
        let principal = access::signed_in_user(
            tenant.clone(),
            user.id,
            session.id.clone(),
            None,
            permissions_of(&user.roles),
        );
        let scope = access::own_account(&principal)?;
        let account = format!("{slug}/{}", email.as_str());
        let (restricted, second_factor) = match self
            .second_factor_step(&scope, &user, second, &account)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                attempt.failed();
                return Err(e);
            }
        };
        attempt.succeeded();
        let session = StoredSession {
            restricted,
            second_factor,
            ..session
        };
        let refresh = new_refresh_token(&tenant.slug)?;
        // A password sign-in while the tenant requires SSO is a break-glass use.
        let (_, sso_required) = self.password_allowed(&tenant, user.id).await?;
        let reason = sso_required.then(|| {
            "break-glass: password sign-in while the tenant requires single sign-on".to_owned()
        });
        if sso_required {
            tracing::warn!(tenant = %slug, user = %user.id, "break-glass password sign-in");
        }
        let entry = NewEntry::by(
            &scope,
            Action::SessionLogin,
            user_target(Some(user.id)),
            reason,
        );
        let event = self.recorder.event(&scope, entry).await?;
        self.store
            .create_session(&scope, &session, &refresh_hash(&refresh), &event)
            .await?;
        self.upgrade_hash(&scope, user.id, &stored_hash, password)
            .await?;
        tracing::info!(tenant = %slug, user = %user.id, "user signed in");
        Ok(self.user_tokens(&tenant, &user, &session, refresh))
    }

    /// A session for `user` starting now (not yet stored).
    pub(super) fn new_session(&self, user: &User) -> StoredSession {
        StoredSession {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.id,
            expires_at: self.clock.now()
                + time::Duration::seconds(i64::try_from(self.session_ttl_secs).unwrap_or(43_200)),
            revoked: false,
            restricted: false,
            second_factor: false,
        }
    }

    /// The second-factor step of a sign-in, after the password: throttled per account
    /// (a wrong code is a guess at the factor). Returns whether the session must be
    /// restricted (a factor required by policy but not enrolled yet) and whether a
    /// factor was verified.
    async fn second_factor_step(
        &self,
        scope: &TenantScope,
        user: &User,
        offered: &super::SecondFactor,
        account: &str,
    ) -> Result<(bool, bool), PlatformError> {
        let attempt = self
            .throttle
            .begin_second_factor(account)
            .map_err(too_many)?;
        let purpose = super::passkeys::Purpose::SignIn;
        match self
            .check_second_factor(scope, user.id, offered, &purpose)
            .await?
        {
            super::mfa::FactorCheck::Failed => {
                attempt.failed();
                self.record_failed_login_in(scope, Some(user.id)).await?;
                Err(PlatformError::SecondFactorRequired)
            }
            super::mfa::FactorCheck::Verified => {
                attempt.succeeded();
                Ok((false, true))
            }
            super::mfa::FactorCheck::NotEnrolled => {
                attempt.succeeded();
                Ok((self.mfa_required(scope, &user.roles).await?, false))
            }
        }
    }

    /// The audit event of `action` on a user (or an unknown one), by the scope's actor.
    pub(super) async fn user_event(
        &self,
        scope: &TenantScope,
        action: Action,
        user: Option<UserId>,
    ) -> Result<crate::store::AuditEvent, PlatformError> {
        let entry = NewEntry::by(scope, action, user_target(user), None);
        Ok(self.recorder.event(scope, entry).await?)
    }

    /// Replaces an imported bcrypt hash with argon2id, now that the password is known
    /// to be right. A hashing failure leaves the bcrypt hash, to be retried next time.
    async fn upgrade_hash(
        &self,
        scope: &TenantScope,
        user: UserId,
        stored: &str,
        password: &SecretString,
    ) -> Result<(), PlatformError> {
        if !password::is_bcrypt(stored) {
            return Ok(());
        }
        match self.passwords.hash(password).await {
            Ok(h) => {
                let event = self
                    .user_event(scope, Action::UserPasswordRehash, Some(user))
                    .await?;
                self.store
                    .set_password_hash(scope, user, &h, &event)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(error = %super::chain(&e), "re-hashing an imported password failed")
            }
        }
        Ok(())
    }

    /// Audits a failed sign-in in the tenant (`session.login_failed`, actor
    /// `anonymous`, the client's address sealed).
    pub(super) async fn record_failed_login(
        &self,
        tenant: &Tenant,
        user: Option<UserId>,
    ) -> Result<(), PlatformError> {
        let failed = self.sign_in_scope(tenant).anonymous(tenant);
        self.record_failed_login_in(&failed, user).await
    }

    async fn record_failed_login_in(
        &self,
        scope: &TenantScope,
        user: Option<UserId>,
    ) -> Result<(), PlatformError> {
        let entry = NewEntry::by(scope, Action::SessionLoginFailed, user_target(user), None);
        self.recorder.record(scope, entry).await?;
        Ok(())
    }

    /// Access and refresh tokens for `user`'s `session`. A restricted session's token
    /// claims no permissions (the server would grant none anyway: rights are re-derived
    /// per request).
    pub(super) fn user_tokens(
        &self,
        tenant: &Tenant,
        user: &User,
        session: &StoredSession,
        refresh: String,
    ) -> UserTokens {
        let perms = if session.restricted {
            Vec::new()
        } else {
            permissions_of(&user.roles)
                .into_iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        let issued = self.tokens().issue_for_tenant(
            &format!("user:{}", user.id),
            self.user_ttl_secs,
            TenantClaims {
                tid: tenant.id.as_uuid().to_string(),
                tenant: tenant.slug.to_string(),
                sid: session.id.clone(),
                perms,
                app: None,
            },
        );
        UserTokens {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: refresh,
        }
    }

    /// Exchanges a refresh token for new tokens. Each refresh token works once; a
    /// second use revokes the whole session (`session.refresh_reuse`).
    pub async fn user_refresh(
        &self,
        slug: &Slug,
        refresh_token: &SecretString,
    ) -> Result<UserTokens, PlatformError> {
        let token = refresh_token.expose();
        if refresh_tenant(token).as_ref() != Some(slug) {
            return Err(PlatformError::Unauthenticated);
        }
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(PlatformError::Unauthenticated)?;
        let probe = self.sign_in_scope(&tenant);
        let next = new_refresh_token(slug)?;
        let outcome = self
            .store
            .rotate_refresh(
                &probe,
                &refresh_hash(token),
                &refresh_hash(&next),
                self.clock.now(),
            )
            .await?;
        let session = match outcome {
            RefreshOutcome::Rotated(s) => s,
            RefreshOutcome::Reused(s) => return Err(self.refresh_reused(&tenant, &s).await),
            RefreshOutcome::Invalid => return Err(PlatformError::Unauthenticated),
        };
        let user = self
            .store
            .user(&probe, session.user)
            .await?
            .filter(|u| u.status == UserStatus::Active)
            .ok_or(PlatformError::Unauthenticated)?;
        Ok(self.user_tokens(&tenant, &user, &session, next))
    }

    /// The OAuth 2.0 refresh-token grant (RFC 6749 §6): [`Platform::user_refresh`] in
    /// the tenant the token names.
    pub async fn oauth_refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<UserTokens, PlatformError> {
        let slug = refresh_tenant(refresh_token.expose()).ok_or(PlatformError::Unauthenticated)?;
        self.user_refresh(&slug, refresh_token).await
    }

    /// Revokes the session of a replayed refresh token together with its audit entry
    /// (`session.refresh_reuse`, one transaction) and answers `Unauthenticated`.
    async fn refresh_reused(&self, tenant: &Tenant, s: &StoredSession) -> PlatformError {
        let scope = self.sign_in_scope(tenant).anonymous(tenant);
        let mut entry = NewEntry::by(
            &scope,
            Action::SessionRefreshReuse,
            user_target(Some(s.user)),
            None,
        );
        entry.session = Some(s.id.clone());
        let revoked = match self.recorder.event(&scope, entry).await {
            Ok(event) => self
                .store
                .revoke_session(&scope, &s.id, &event)
                .await
                .map_err(PlatformError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = revoked {
            return e;
        }
        tracing::warn!(tenant = %tenant.slug, user = %s.user, "refresh token reused; session revoked");
        PlatformError::Unauthenticated
    }

    /// Ends the caller's session (`session.logout`).
    pub async fn user_logout(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<(), PlatformError> {
        let (_, scope) = self.own_scope(principal, slug).await?;
        let Principal::User(u) = principal else {
            return Err(PlatformError::Forbidden(
                "only a signed-in user has a session".into(),
            ));
        };
        let event = self
            .user_event(&scope, Action::SessionLogout, Some(u.user()))
            .await?;
        self.store
            .revoke_session(&scope, u.session(), &event)
            .await?;
        Ok(())
    }

    /// Turns a bearer token into a principal: an operator, or a tenant user whose
    /// session is live, whose account is active, with the permissions of their current
    /// role grants. Any failure is `Unauthenticated`.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, PlatformError> {
        let claims = self
            .tokens()
            .verify_any(bearer, &[OPERATOR_AUDIENCE, TENANT_AUDIENCE])?;
        if claims.aud == OPERATOR_AUDIENCE {
            return self.operator_principal(&claims).await;
        }
        let tenant = self.tenant_of_claims(&claims).await?;
        if let Some(app) = claims.sub.strip_prefix("app:") {
            let app = parse_app(app)?;
            let claimed = claims.perms.unwrap_or_default();
            return self.authenticate_application(&tenant, app, &claimed).await;
        }
        let user = claims
            .sub
            .strip_prefix("user:")
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(UserId::from_uuid)
            .ok_or(TokenError::Malformed)?;
        let sid = claims.sid.clone().ok_or(TokenError::Malformed)?;
        let mut permissions = self.live_permissions(&tenant, user, &sid).await?;
        let via = match &claims.app {
            None => None,
            Some(app) => {
                // A delegated token: the application must still be active, and the
                // user keeps only what both hold now and the token was issued for.
                let app = parse_app(app)?;
                let claimed = claims.perms.clone().unwrap_or_default();
                let Principal::Application(a) = self
                    .authenticate_application(&tenant, app, &claimed)
                    .await?
                else {
                    return Err(PlatformError::Unauthenticated);
                };
                permissions.retain(|p| a.permissions().contains(p));
                Some(app)
            }
        };
        Ok(access::signed_in_user(tenant, user, sid, via, permissions))
    }

    /// The tenant a tenant token names, which must still be the same tenant (slug and
    /// id).
    async fn tenant_of_claims(
        &self,
        claims: &crate::identity::token::Claims,
    ) -> Result<Tenant, PlatformError> {
        let (Some(tid), Some(slug)) = (&claims.tid, &claims.tenant) else {
            return Err(TokenError::Malformed.into());
        };
        let slug = Slug::parse(slug).map_err(|_| TokenError::Malformed)?;
        self.tenant_by_slug(&slug)
            .await?
            .filter(|t| t.id.as_uuid().to_string() == *tid)
            .ok_or(PlatformError::Unauthenticated)
    }

    /// What `user` may do in session `sid` now: nothing unless the session is live and
    /// the account active; nothing but enrolment in a restricted session; otherwise the
    /// permissions of the current role grants.
    async fn live_permissions(
        &self,
        tenant: &Tenant,
        user: UserId,
        sid: &str,
    ) -> Result<std::collections::BTreeSet<Permission>, PlatformError> {
        let probe = self.sign_in_scope(tenant);
        let session = self
            .store
            .session(&probe, sid)
            .await?
            .filter(|s| s.user == user && !s.revoked && s.expires_at > self.clock.now())
            .ok_or(PlatformError::Unauthenticated)?;
        let account = self
            .store
            .user(&probe, user)
            .await?
            .filter(|u| u.status == UserStatus::Active)
            .ok_or(PlatformError::Unauthenticated)?;
        // Must enrol a second factor (tenant policy) before doing anything else — also
        // when a role that needs one was granted after the session began.
        if session.restricted
            || (!session.second_factor && self.mfa_required_now(tenant, &account.roles).await?)
        {
            return Ok(std::collections::BTreeSet::new());
        }
        Ok(permissions_of(&account.roles))
    }
}

/// An application id from a token claim.
fn parse_app(s: &str) -> Result<crate::identity::application::AppId, TokenError> {
    uuid::Uuid::parse_str(s)
        .map(crate::identity::application::AppId::from_uuid)
        .map_err(|_| TokenError::Malformed)
}

/// The answer to a throttled attempt.
pub(super) fn too_many(retry_after_secs: u64) -> PlatformError {
    PlatformError::TooManyRequests { retry_after_secs }
}
