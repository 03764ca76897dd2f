//! Tenant users: the people who work inside one tenant. Their e-mail is unique within
//! the tenant (the same person may exist in two tenants as two unrelated users), and
//! their role grants are stored apart from their profile, with who granted them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Email;
use crate::access::rbac::Role;

/// A user's stable id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read back from storage or a verified token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in; sessions are honoured.
    Active,
    /// May not sign in; every session stops working at the next request.
    Disabled,
}

impl UserStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A tenant user as shown through the API. Never carries the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Login name, unique within the tenant.
    pub email: Email,
    /// Printed name, as a signature's manifestation shows it (21 CFR 11.50); empty
    /// until set. Required of anyone who signs.
    pub full_name: String,
    /// Active or disabled.
    pub status: UserStatus,
    /// Granted roles.
    #[schema(value_type = Vec<String>)]
    #[serde(serialize_with = "role_names")]
    pub roles: Vec<Role>,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

fn role_names<S: serde::Serializer>(roles: &[Role], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(roles.iter().map(|r| r.as_str()))
}

/// What the store returns to check a sign-in.
#[derive(Clone)]
pub struct UserCredentials {
    /// The account.
    pub user: User,
    /// PHC-format password hash (argon2id).
    pub password_hash: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user.id)
            .finish_non_exhaustive()
    }
}

/// A sign-in session: what a refresh token continues and what logout ends.
#[derive(Debug, Clone)]
pub struct StoredSession {
    /// Session id (carried in access tokens as `sid`).
    pub id: String,
    /// Whose.
    pub user: UserId,
    /// When it stops being refreshable.
    pub expires_at: OffsetDateTime,
    /// Set when logged out or revoked (refresh-token reuse, user disabled).
    pub revoked: bool,
    /// Opened without a second factor the tenant's policy requires: no permissions,
    /// only enrolment.
    pub restricted: bool,
    /// Opened with a verified second factor (then the MFA policy is satisfied for the
    /// session's life; otherwise it is re-checked on every request).
    pub second_factor: bool,
}
