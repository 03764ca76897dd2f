//! Applications: service clients of one tenant that obtain tokens with OAuth 2.0 client
//! credentials (RFC 6749 §4.4) and act with their own, fixed set of permissions.
//!
//! The client secret is 32 random bytes shown once; only its SHA-256 is stored (a
//! high-entropy secret needs no slow hash) and it is compared in constant time.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::rbac::Permission;

/// An application's stable id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct AppId(Uuid);

impl AppId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read back from storage or a verified token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An application as shown through the API. Never carries the secret or its hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Application {
    /// Stable id.
    pub id: AppId,
    /// OAuth 2.0 `client_id`: `<tenant slug>.<id>`.
    pub client_id: String,
    /// A name for people.
    pub name: String,
    /// What its tokens may do.
    #[schema(value_type = Vec<String>)]
    #[serde(serialize_with = "permission_names")]
    pub permissions: Vec<Permission>,
    /// Whether it may obtain tokens.
    pub active: bool,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

fn permission_names<S: serde::Serializer>(p: &[Permission], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|p| p.as_str()))
}

/// What the store keeps: the application and the SHA-256 of its secret.
#[derive(Clone)]
pub struct StoredApplication {
    /// The application.
    pub app: Application,
    /// SHA-256 of the client secret.
    pub secret_hash: [u8; 32],
}

impl std::fmt::Debug for StoredApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredApplication")
            .field("app", &self.app.id)
            .finish_non_exhaustive()
    }
}
