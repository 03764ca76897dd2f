//! Platform operators: the people who run a deployment. They live in their own
//! namespace, apart from tenant users, and cannot act inside a tenant.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Email;

/// An operator's stable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct OperatorId(Uuid);

impl OperatorId {
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

impl std::fmt::Display for OperatorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An operator as shown to other operators. Never carries the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Operator {
    /// Stable id.
    pub id: OperatorId,
    /// Login name.
    pub email: Email,
    /// When the account was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the account was disabled, if it was (its tokens stop working at once).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<OffsetDateTime>,
}

/// What the store returns to check a sign-in: the account and its password hash.
#[derive(Clone)]
pub struct OperatorCredentials {
    /// The account.
    pub operator: Operator,
    /// PHC-format argon2id hash.
    pub password_hash: String,
    /// The second factor's state (TOTP), wrapped by the root provider, if enrolled.
    pub mfa: Option<Vec<u8>>,
}

impl std::fmt::Debug for OperatorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCredentials")
            .field("operator", &self.operator)
            .finish_non_exhaustive()
    }
}
