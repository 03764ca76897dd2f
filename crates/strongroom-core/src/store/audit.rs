//! The audit port: each tenant's append-only entries, its hash tiles and signed
//! checkpoint, and the per-subject keys that seal personal data in entries.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::access::{TenantScope, WritableScope};
use crate::audit::entry::NewEntry;
use crate::audit::merkle::Hash;

/// An audit entry to append in the same transaction as the write it describes. The
/// store assigns its sequence number and a time never earlier than the previous entry's.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The caller's part of the entry.
    pub entry: NewEntry,
    /// When it happened (server clock).
    pub at: OffsetDateTime,
}

impl AuditEvent {
    /// The same event about `target` (for writes whose target, such as a new key's
    /// version, is known only once the write is under way).
    pub fn about(mut self, target: crate::audit::entry::Target) -> Self {
        self.entry.target = target;
        self
    }
}

/// An audit entry as stored.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Position in the tenant's log.
    pub seq: u64,
    /// Canonical bytes.
    pub entry: Vec<u8>,
    /// RFC 9162 leaf hash of `entry`.
    pub leaf_hash: Hash,
}

/// A tenant's audit log as integrated so far.
#[derive(Debug, Clone)]
pub struct AuditLogState {
    /// Key name (also the checkpoint origin).
    pub key_name: String,
    /// Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The signing key's seed, wrapped by the root provider.
    pub wrapped_seed: Vec<u8>,
    /// Entries covered by `checkpoint`.
    pub size: u64,
    /// The latest signed checkpoint, once there is one.
    pub checkpoint: Option<String>,
}

/// A hash tile: (level, index, hashes).
pub type StoredTile = (u8, u64, Vec<Hash>);

/// A subject's key for the personal data in audit entries, wrapped by the root provider.
#[derive(Debug, Clone)]
pub struct StoredSubjectKey {
    /// Random id, referenced from entries (`personal.subject`).
    pub key_id: String,
    /// The wrapped key; `None` once erased.
    pub wrapped: Option<Vec<u8>>,
}

/// Filters of an audit-trail query; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Actor as `<kind>:<id>`, e.g. `operator:<uuid>` (`local-admin:` for the CLI).
    pub actor: Option<String>,
    /// Action name from the catalogue.
    pub action: Option<String>,
    /// Target as `<kind>:<id>`, e.g. `tenant-secret:smtp`.
    pub target: Option<String>,
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries before this time.
    pub until: Option<OffsetDateTime>,
}

/// A tenant's audit trail as stored.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// The tenant's integrated audit log, if it was ever set up.
    async fn audit_log(&self, scope: &TenantScope) -> Result<Option<AuditLogState>, StoreError>;

    /// Sets up the tenant's audit log with its signing key (no-op if it exists).
    async fn init_audit_log(
        &self,
        scope: &TenantScope,
        state: &AuditLogState,
    ) -> Result<(), StoreError>;

    /// Reads hash tiles; absent ones are left out.
    async fn audit_tiles(
        &self,
        scope: &TenantScope,
        wanted: &[(u8, u64)],
    ) -> Result<Vec<StoredTile>, StoreError>;

    /// Records an integration: writes `tiles`, moves the size from `from` to `to` and
    /// stores the checkpoint, unless another integrator moved the size first (false).
    async fn integrate_audit(
        &self,
        scope: &TenantScope,
        from: u64,
        to: u64,
        tiles: &[StoredTile],
        checkpoint: &str,
    ) -> Result<bool, StoreError>;

    /// Number of entries in the tenant's log.
    async fn audit_len(&self, scope: &TenantScope) -> Result<u64, StoreError>;

    /// Entries of the tenant's audit log from `from`, at most `limit`, in order.
    async fn audit_entries(
        &self,
        scope: &TenantScope,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// Appends an entry that describes no other write (an audit query or export).
    /// Returns its sequence number.
    async fn append_audit(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;

    /// Entries matching `filter` with sequence numbers `from..`, at most `limit`, in
    /// order.
    async fn audit_query(
        &self,
        scope: &TenantScope,
        filter: &AuditFilter,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError>;

    /// The subject's live (not erased) personal-data key, if it has one.
    async fn audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError>;

    /// A personal-data key by id, erased or not.
    async fn audit_subject_key_by_id(
        &self,
        scope: &TenantScope,
        key_id: &str,
    ) -> Result<Option<StoredSubjectKey>, StoreError>;

    /// Stores a new personal-data key for `subject`, unless it already has a live one.
    async fn insert_audit_subject_key(
        &self,
        scope: &TenantScope,
        subject: &str,
        key: &StoredSubjectKey,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Destroys every personal-data key of `subject` (erasure), audited in the same
    /// transaction, and purges the database's journal. Returns how many keys were
    /// destroyed.
    async fn erase_audit_subject(
        &self,
        scope: &WritableScope,
        subject: &str,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;
}
