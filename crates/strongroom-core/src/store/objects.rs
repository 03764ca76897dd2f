//! The object port: sealed values (tenant secrets, second factors, policies) and the
//! metadata of encrypted blobs, plus the blob files themselves ([`BlobStore`]).

use async_trait::async_trait;

use super::{AuditEvent, StoreError};
use crate::access::{TenantScope, WritableScope};

/// A sealed value as stored (tenant secrets and other small sealed objects).
#[derive(Debug, Clone)]
pub struct StoredSealed {
    /// Object id within its kind (e.g. the secret's name).
    pub id: String,
    /// Object version, bound into the ciphertext.
    pub version: u64,
    /// Data-key version that sealed it.
    pub dek_version: u32,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

/// A stored blob's metadata; its content is an encrypted stream in the blob store.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    /// Blob id.
    pub id: String,
    /// Data-key version of the stream.
    pub dek_version: u32,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Name of the file holding the stream (changes when re-encrypted).
    pub file: String,
}

/// Sealed values and blob metadata of a tenant.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Writes a sealed value of `kind` if the stored version is still `expected` (0 =
    /// absent), with its audit entry. Returns false (and writes nothing) when another
    /// writer got there first.
    async fn put_sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        value: &StoredSealed,
        expected: u64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Reads a sealed value.
    async fn sealed(
        &self,
        scope: &TenantScope,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredSealed>, StoreError>;

    /// Sealed values of `kind` sealed under a data key older than `current`.
    async fn sealed_before(
        &self,
        scope: &TenantScope,
        kind: &str,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredSealed>, StoreError>;

    /// Replaces a value's ciphertext by a re-encrypted one, unless it changed meanwhile;
    /// `audit` (`key.reencrypt`) is appended in the same transaction, only if it did not.
    async fn reseal(
        &self,
        scope: &TenantScope,
        kind: &str,
        old: &StoredSealed,
        new: &StoredSealed,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Records a blob whose stream is already committed to the blob store, audited
    /// (`blob.put`) in the same transaction.
    async fn insert_blob(
        &self,
        scope: &WritableScope,
        blob: &StoredBlob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A blob's metadata.
    async fn blob(&self, scope: &TenantScope, id: &str) -> Result<Option<StoredBlob>, StoreError>;

    /// Blobs sealed under a data key older than `current`.
    async fn blobs_before(
        &self,
        scope: &TenantScope,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredBlob>, StoreError>;

    /// Points a blob at its re-encrypted stream, unless it changed meanwhile; `audit`
    /// (`key.reencrypt`) is appended in the same transaction, only if it did not.
    async fn reseal_blob(
        &self,
        scope: &TenantScope,
        old: &StoredBlob,
        new: &StoredBlob,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// Where encrypted streams live: a directory per region (or, later, a bucket).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing `file`; nothing is visible until [`BlobSink::commit`].
    async fn create(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn BlobSink>, StoreError>;

    /// Reads `file`.
    async fn open(
        &self,
        scope: &TenantScope,
        file: &str,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StoreError>;

    /// Reads `file` from byte `offset` (ranged reads of large streams).
    async fn open_at(
        &self,
        scope: &TenantScope,
        file: &str,
        offset: u64,
    ) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, StoreError>;

    /// Deletes `file` (absent is fine).
    async fn remove(&self, scope: &TenantScope, file: &str) -> Result<(), StoreError>;

    /// Deletes every file of the tenant.
    async fn remove_all(&self, scope: &TenantScope) -> Result<(), StoreError>;
}

/// A blob being written.
#[async_trait]
pub trait BlobSink: tokio::io::AsyncWrite + Send + Unpin {
    /// Makes the written bytes durable and visible under the file's name.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
