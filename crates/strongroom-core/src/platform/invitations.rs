//! Invitations: how an operator (or a tenant's user administrator) brings a new user —
//! typically the tenant's first admin — in over the API without ever knowing their
//! password. The invitation token works once, for one address, until it expires.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Platform, PlatformError};
use crate::access::rbac::{Permission, Role};
use crate::access::{self, PlatformAction, Principal, TenantUser};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::identity::user::{User, UserId, UserStatus};
use crate::identity::{Email, IdentityError, password};
use crate::secret::SecretString;
use crate::store::{NewUserRow, StoredInvitation};
use crate::tenant::Slug;

/// How long an invitation works.
const VALID_FOR: time::Duration = time::Duration::hours(72);
/// Prefix of invitation tokens (recognisable to secret scanners).
const PREFIX: &str = "sri_";

/// An invitation, as returned once to whoever created it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    /// The one-time token to pass to the invitee (only its hash is kept).
    pub token: String,
    /// Who may accept it.
    pub email: Email,
    /// The role they get.
    pub role: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl Platform {
    /// Invites `email` to become a user of `slug` with `role`: operators (the first
    /// admin of a new tenant) and users with `users:manage`.
    pub async fn invite_user(
        &self,
        principal: &Principal,
        slug: &Slug,
        email: Email,
        role: Role,
    ) -> Result<Invitation, PlatformError> {
        let (_, scope) = self
            .tenant_access(
                principal,
                slug,
                Permission::UsersManage,
                Some(PlatformAction::ManageTenants),
            )
            .await?;
        scope.require_writable()?;
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw)
            .map_err(|_| PlatformError::Internal("system RNG failed".into()))?;
        let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let stored = StoredInvitation {
            hash: sha256(&[token.as_bytes()]),
            email: email.clone(),
            role,
            expires_at: self.clock.now() + VALID_FOR,
        };
        let target = Target {
            id: role.as_str().into(),
            kind: "invitation".into(),
            version: None,
        };
        let event = self
            .keyring
            .audit_event(
                &scope,
                NewEntry::by(&scope, Action::UserInvite, target, None),
            )
            .await?;
        self.store
            .insert_invitation(&scope, &stored, &principal.label(), &event)
            .await?;
        Ok(Invitation {
            token,
            email,
            role: role.as_str().into(),
            expires_at: stored.expires_at,
        })
    }

    /// Accepts an invitation: creates the user with the invited role and the chosen
    /// password. Any problem with the token (unknown, used, expired, another address)
    /// is the same `Unauthenticated`.
    pub async fn accept_invitation(
        &self,
        slug: &Slug,
        token: &SecretString,
        email: Email,
        new_password: &SecretString,
    ) -> Result<User, PlatformError> {
        password::check_policy(new_password, &[email.as_str(), slug.as_str()])?;
        let t = token.expose();
        if !t.starts_with(PREFIX) || t.len() > 128 {
            return Err(PlatformError::Unauthenticated);
        }
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(PlatformError::Unauthenticated)?;
        let hash = self.passwords.hash(new_password).await?;
        let user = User {
            id: UserId::generate(),
            email,
            status: UserStatus::Active,
            roles: vec![],
            created_at: self.clock.now(),
        };
        let actor = Principal::User(TenantUser {
            tenant: tenant.clone(),
            user: user.id,
            session: String::new(),
            via: None,
            permissions: Default::default(),
        });
        let scope = access::sign_in_scope(&tenant, actor);
        let target = Target {
            id: user.id.to_string(),
            kind: "user".into(),
            version: None,
        };
        let mut entry = NewEntry::by(&scope, Action::UserInviteAccept, target, None);
        entry.session = None;
        let event = self.keyring.audit_event(&scope, entry).await?;
        let row = NewUserRow {
            user: user.clone(),
            password_hash: hash,
            granted_by: "invitation".into(),
        };
        let Some(inv) = self
            .store
            .accept_invitation(
                &scope,
                &sha256(&[t.as_bytes()]),
                &row,
                self.clock.now(),
                &event,
            )
            .await?
        else {
            return Err(IdentityError::InvalidCredentials.into());
        };
        Ok(User {
            roles: vec![inv.role],
            ..user
        })
    }
}
