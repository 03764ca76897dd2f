//! The key port: each tenant's wrapped key-encryption and data keys, their seal
//! budgets, rotation and destruction. Only wrapped keys ever reach storage.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, StoreError};
use crate::access::TenantScope;

/// A tenant's key-encryption key as stored: wrapped by a key provider.
#[derive(Debug, Clone)]
pub struct StoredKek {
    /// Version (1, 2, … after rotations).
    pub version: u32,
    /// Name of the provider that wrapped it.
    pub provider: String,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

/// A tenant's data key as stored: wrapped by one of the tenant's KEKs.
#[derive(Debug, Clone)]
pub struct StoredDek {
    /// Version, recorded in every ciphertext it seals.
    pub version: u32,
    /// The KEK version that wraps it.
    pub kek_version: u32,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Seals reserved so far by all processes (the nonce-use budget spent).
    pub seals_reserved: u64,
}

/// All of a tenant's keys.
#[derive(Debug, Clone, Default)]
pub struct TenantKeys {
    /// Key-encryption keys, ascending version.
    pub keks: Vec<StoredKek>,
    /// Data keys, ascending version; the last is current.
    pub deks: Vec<StoredDek>,
    /// Set once the keys were destroyed (crypto-shredding).
    pub destroyed_at: Option<OffsetDateTime>,
}

/// A tenant's wrapped keys.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The tenant's wrapped keys.
    async fn tenant_keys(&self, scope: &TenantScope) -> Result<TenantKeys, StoreError>;

    /// Adds a data key. `Conflict` if the version exists (a concurrent rotation won).
    async fn add_data_key(
        &self,
        scope: &TenantScope,
        dek: &StoredDek,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces the tenant's KEKs by `kek` and re-wraps every data key with it, in one
    /// transaction; the old wrapped KEKs are deleted.
    async fn replace_kek(
        &self,
        scope: &TenantScope,
        kek: &StoredKek,
        rewrapped: &[StoredDek],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Adds `n` to a data key's reserved seals; returns the new total.
    async fn reserve_seals(
        &self,
        scope: &TenantScope,
        dek_version: u32,
        n: u64,
    ) -> Result<u64, StoreError>;

    /// Deletes every wrapped key of the tenant and records when (`audit.at`), with the
    /// audit entry (crypto-shredding). Storage must not retain the deleted bytes
    /// (overwritten pages, checkpointed log).
    async fn destroy_tenant_keys(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}
