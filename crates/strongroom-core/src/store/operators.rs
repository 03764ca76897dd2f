//! The operator port: platform operators (with their status and second factor) and
//! the platform's token-signing keys, in the control database. Changes are recorded
//! in the platform's own audit trail in the same transaction.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, StoreError};
use crate::access::PlatformScope;
use crate::identity::Email;
use crate::identity::operator::{Operator, OperatorCredentials, OperatorId};

/// A wrapped signing key as stored.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Raw public key.
    pub public_key: Vec<u8>,
    /// PKCS#8 private key wrapped by the key provider.
    pub wrapped_private_key: Vec<u8>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was: it then verifies nothing and leaves the JWKS.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Operators and signing keys.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Adds an operator, audited in the platform trail. `Conflict` if the e-mail is
    /// taken.
    async fn insert_operator(
        &self,
        scope: &PlatformScope,
        operator: &Operator,
        password_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Pre-authentication lookup of an operator and their password hash.
    async fn operator_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<OperatorCredentials>, StoreError>;

    /// An operator by id (the per-request check of an operator's token).
    async fn operator(&self, id: OperatorId) -> Result<Option<Operator>, StoreError>;

    /// Every operator, in e-mail order (bounded by `limit`).
    async fn operators(
        &self,
        scope: &PlatformScope,
        limit: u32,
    ) -> Result<Vec<Operator>, StoreError>;

    /// Disables an operator at `audit.at`, audited. `false` if there is no such active
    /// operator.
    async fn disable_operator(
        &self,
        scope: &PlatformScope,
        id: OperatorId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Stores (or clears) an operator's second factor, wrapped by the root provider,
    /// with its platform-trail entry when the change is one to record.
    async fn set_operator_mfa(
        &self,
        scope: &PlatformScope,
        id: OperatorId,
        wrapped: Option<&[u8]>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;

    /// Replaces the operator's wrapped second factor with `new` only if it is still
    /// `old` (a compare-and-swap): false, nothing written, if another sign-in (on any
    /// server node) changed it first. How a spent TOTP step is recorded, so one code
    /// signs in once.
    async fn replace_operator_mfa(
        &self,
        scope: &PlatformScope,
        id: OperatorId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;

    /// The platform's token-signing keys, newest first, revoked ones included.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key (the first at initialisation has no `audit`).
    async fn insert_signing_key(
        &self,
        scope: &PlatformScope,
        key: &StoredSigningKey,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError>;

    /// Removes a retired token-signing key (its tokens have all expired).
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Revokes a signing key at `audit.at`, audited. `false` if no such unrevoked key.
    async fn revoke_signing_key(
        &self,
        scope: &PlatformScope,
        kid: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}
