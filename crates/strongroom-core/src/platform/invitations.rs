//! Invitations: how an operator (or a tenant's user administrator) brings a new user —
//! typically the tenant's first admin — in over the API without ever knowing their
//! password. The invitation token works once, for one address, until it expires.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Platform, PlatformError};
use crate::access::rbac::{Permission, Role};
use crate::access::{self, PlatformAction, Principal};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::identity::user::{User, UserId, UserStatus};
use crate::identity::{Email, IdentityError, password};
use crate::secret::SecretString;
use crate::store::{NewUserRow, StoredInvitation};
use crate::tenant::{Slug, Tenant};

/// How long an invitation works.
const VALID_FOR: time::Duration = time::Duration::hours(72);
/// Prefix of invitation tokens (recognisable to secret scanners).
const PREFIX: &str = "sri_";

/// An invitation, as returned once to whoever created it.
#[derive(Clone, Serialize, ToSchema)]
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

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("email", &self.email)
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Platform {
    /// Invites `email` to become a user of `slug` with `role`: users with
    /// `users:manage`, and operators only for a tenant's first user (a tenant with no
    /// users yet) — afterwards operators have no say over who joins a tenant.
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
        if matches!(principal, Principal::Operator(_)) && self.store.has_users(&scope).await? {
            return Err(PlatformError::Forbidden(
                "this tenant has users: only its own user administrators can invite".into(),
            ));
        }
        let scope = scope.writable()?;
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw)
            .map_err(|_| PlatformError::internal("system RNG failed"))?;
        let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let stored = StoredInvitation {
            hash: sha256(&[token.as_bytes()]),
            email: email.clone(),
            role,
            expires_at: self.clock.now() + VALID_FOR,
        };
        let target = Target::of("invitation", role.as_str());
        let entry = NewEntry::by(&scope, Action::UserInvite, target, None);
        let event = self.recorder.event(&scope, entry).await?;
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

    /// Accepts an invitation from `client`: creates the user with the invited role and
    /// the chosen password. Any problem with the token (unknown, used, expired, another
    /// address, unknown tenant) is the same `Unauthenticated`, found before any
    /// password is hashed; attempts are throttled per address.
    pub async fn accept_invitation(
        &self,
        slug: &Slug,
        token: &SecretString,
        email: Email,
        full_name: Option<&str>,
        new_password: &SecretString,
        client: IpAddr,
    ) -> Result<User, PlatformError> {
        let full_name = super::users::full_name(full_name)?;
        let t = token.expose();
        if !t.starts_with(PREFIX) || t.len() > 128 {
            return Err(PlatformError::Unauthenticated);
        }
        let attempt = self
            .throttle
            .begin(&format!("{slug}/invitation"), client)
            .map_err(super::users::too_many)?;
        let hash = sha256(&[t.as_bytes()]);
        let Some((tenant, invitation)) = self.live_invitation(slug, &hash).await? else {
            attempt.failed();
            return Err(PlatformError::Unauthenticated);
        };
        if invitation.email.as_str().to_lowercase() != email.as_str().to_lowercase() {
            attempt.failed();
            return Err(PlatformError::Unauthenticated);
        }
        // The password's strength is judged only for a real invitation (the estimator
        // is work an anonymous caller should not be able to ask for at will).
        if let Err(e) = password::check_policy(new_password, &[email.as_str(), slug.as_str()]) {
            attempt.succeeded(); // the token was right; a weak password is not a guess
            return Err(e.into());
        }
        let user = self
            .create_invited(&tenant, &hash, email, full_name, new_password)
            .await?;
        attempt.succeeded();
        Ok(user)
    }

    /// The tenant and the unused, unexpired invitation `hash` names, if both exist.
    async fn live_invitation(
        &self,
        slug: &Slug,
        hash: &[u8; 32],
    ) -> Result<Option<(Tenant, StoredInvitation)>, PlatformError> {
        let Some(tenant) = self.tenant_by_slug(slug).await? else {
            return Ok(None);
        };
        let probe = self.sign_in_scope(&tenant);
        let found = self
            .store
            .invitation(&probe, hash, self.clock.now())
            .await?;
        Ok(found.map(|i| (tenant, i)))
    }

    /// Creates the invited user (the store spends the invitation in the same
    /// transaction, so two acceptances cannot both succeed).
    async fn create_invited(
        &self,
        tenant: &Tenant,
        hash: &[u8; 32],
        email: Email,
        full_name: String,
        new_password: &SecretString,
    ) -> Result<User, PlatformError> {
        let password_hash = self.passwords.hash(new_password).await?;
        let user = User {
            id: UserId::generate(),
            email,
            full_name,
            status: UserStatus::Active,
            roles: vec![],
            created_at: self.clock.now(),
        };
        let actor = access::signed_in_user(
            tenant.clone(),
            user.id,
            String::new(),
            None,
            Default::default(),
        );
        let scope = access::own_account(&actor)?.writable()?;
        let mut entry = NewEntry::by(
            &scope,
            Action::UserInviteAccept,
            Target::of("user", user.id.to_string()),
            None,
        );
        entry.session = None;
        let event = self.recorder.event(&scope, entry).await?;
        let row = NewUserRow {
            user: user.clone(),
            password_hash,
            granted_by: "invitation".into(),
        };
        let accepted = self
            .store
            .accept_invitation(&scope, hash, &row, self.clock.now(), &event)
            .await?;
        let inv = accepted.ok_or(IdentityError::InvalidCredentials)?;
        Ok(User {
            roles: vec![inv.role],
            ..user
        })
    }
}
