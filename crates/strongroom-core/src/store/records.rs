//! The records port: record types, records, their versions, revisions, signatures,
//! state changes and blind-index tokens.
//!
//! Every change to a record is one [`RecordChange`], applied in one transaction with
//! its audit entries, and only if the record's change counter is still the one the
//! caller read (optimistic concurrency: the ETag). Revisions, signatures, events and
//! type versions are only ever inserted; a version row is updated only while it is a
//! draft or in review (adapters refuse, in the statement and in the schema, to touch
//! an approved one).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{AuditEvent, Page, StoreError};
use crate::access::{TenantScope, WritableScope};
use crate::audit::merkle::Hash;

/// A version of a record type.
#[derive(Debug, Clone)]
pub struct StoredRecordType {
    /// Type name.
    pub name: String,
    /// Type version (1, 2, …).
    pub version: u64,
    /// The definition, as JSON.
    pub definition: String,
    /// Actor label of who defined it.
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A record's listing row.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Record id.
    pub id: String,
    /// Type name.
    pub type_name: String,
    /// The latest version.
    pub current_version: u64,
    /// `draft`, `in_review`, `approved` or `retired`.
    pub status: String,
    /// Change counter: +1 on every change (the ETag).
    pub seq: u64,
    /// Creator's user id.
    pub created_by: String,
    /// When created.
    pub created_at: OffsetDateTime,
    /// When last changed.
    pub updated_at: OffsetDateTime,
}

/// A version of a record.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Version number.
    pub version: u64,
    /// Type version its content is validated against.
    pub type_version: u64,
    /// `draft`, `in_review` or `approved`.
    pub state: String,
    /// Latest revision.
    pub revision: u64,
    /// Content hash of the latest revision.
    pub content_hash: Hash,
    /// Who started the version (user id).
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
    /// When approved.
    pub approved_at: Option<OffsetDateTime>,
}

/// One saved state of a version's content.
#[derive(Debug, Clone)]
pub struct StoredRevision {
    /// Version number.
    pub version: u64,
    /// Revision number within the version (1, 2, …).
    pub revision: u64,
    /// Data-key version that sealed it.
    pub dek_version: u32,
    /// Sealed content (kind `record-revision`).
    pub sealed: Vec<u8>,
    /// JSON array of the version's attachments at this revision.
    pub attachments: String,
    /// Content hash.
    pub content_hash: Hash,
    /// Who saved it (user id).
    pub saved_by: String,
    /// When.
    pub saved_at: OffsetDateTime,
}

/// A stored electronic signature.
#[derive(Debug, Clone)]
pub struct StoredSignature {
    /// Signature id.
    pub id: String,
    /// Record id.
    pub record_id: String,
    /// Version signed.
    pub version: u64,
    /// Signer's user id.
    pub signer_id: String,
    /// Printed name at signing time.
    pub printed_name: String,
    /// Meaning.
    pub meaning: String,
    /// Comment.
    pub comment: Option<String>,
    /// When.
    pub signed_at: OffsetDateTime,
    /// Content hash signed.
    pub content_hash: Hash,
    /// Session it was given in.
    pub session_id: String,
    /// How the signer re-authenticated.
    pub reauth: String,
    /// The signature's own hash (what its audit entry commits to).
    pub signature_hash: Hash,
    /// Sequence number of its `record.sign` audit entry (set by the store).
    pub audit_seq: u64,
}

/// A state change that is not a revision (submit, reject, approve, revise, retire).
#[derive(Debug, Clone)]
pub struct StoredRecordEvent {
    /// The record's change counter after the change.
    pub seq: u64,
    /// Version concerned.
    pub version: u64,
    /// Audit action name.
    pub action: String,
    /// Actor label.
    pub actor: String,
    /// Reason, where one was given.
    pub reason: Option<String>,
    /// When.
    pub at: OffsetDateTime,
    /// Position of its audit entry (the last of the change's entries; set by the
    /// store): what orders review rounds.
    pub audit_seq: u64,
}

/// A version row's new state (only drafts and versions in review are ever updated).
#[derive(Debug, Clone)]
pub struct VersionUpdate {
    /// Which version.
    pub version: u64,
    /// New state.
    pub state: String,
    /// New latest revision.
    pub revision: u64,
    /// New content hash.
    pub content_hash: Hash,
    /// Set when it becomes approved.
    pub approved_at: Option<OffsetDateTime>,
}

/// One change to a record, applied atomically with its audit entries if the record's
/// change counter is still `expected_seq`.
#[derive(Debug, Clone)]
pub struct RecordChange {
    /// Record id.
    pub record: String,
    /// The change counter the caller read (its ETag).
    pub expected_seq: u64,
    /// The record's status afterwards.
    pub status: String,
    /// Its current version afterwards.
    pub current_version: u64,
    /// When.
    pub at: OffsetDateTime,
    /// A version started by this change (a revision of an approved one).
    pub new_version: Option<StoredVersion>,
    /// An existing version's new state.
    pub version_update: Option<VersionUpdate>,
    /// A revision saved by this change.
    pub revision: Option<StoredRevision>,
    /// A signature given by this change (its audit entry is `audit[0]`).
    pub signature: Option<StoredSignature>,
    /// A state change to list in the history.
    pub event: Option<StoredRecordEvent>,
    /// The blind-index tokens of the record's current content, replacing the old.
    pub index: Option<Vec<(String, Hash)>>,
}

/// Filters of a record listing; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Type name.
    pub type_name: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Creator's user id.
    pub created_by: Option<String>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_to: Option<OffsetDateTime>,
    /// Updated at or after.
    pub updated_from: Option<OffsetDateTime>,
    /// Updated before.
    pub updated_to: Option<OffsetDateTime>,
    /// Blind-index matches: (field, token), all required.
    pub index: Vec<(String, Hash)>,
}

/// Records of a tenant.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Appends a type version, audited; `Conflict` if that version exists already.
    async fn insert_record_type(
        &self,
        scope: &WritableScope,
        record_type: &StoredRecordType,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A type at `version`, or its latest version.
    async fn record_type(
        &self,
        scope: &TenantScope,
        name: &str,
        version: Option<u64>,
    ) -> Result<Option<StoredRecordType>, StoreError>;

    /// The latest version of every type, by name.
    async fn record_types(&self, scope: &TenantScope) -> Result<Vec<StoredRecordType>, StoreError>;

    /// Creates a record with version 1 and its first revision, audited.
    async fn create_record(
        &self,
        scope: &WritableScope,
        record: &StoredRecord,
        version: &StoredVersion,
        revision: &StoredRevision,
        index: &[(String, Hash)],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// One record.
    async fn record(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<StoredRecord>, StoreError>;

    /// Records matching `filter`, by id, after the page cursor.
    async fn records(
        &self,
        scope: &TenantScope,
        filter: &RecordFilter,
        page: &Page<String>,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Every version of a record, oldest first.
    async fn record_versions(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredVersion>, StoreError>;

    /// Every revision of a record, in order, *without* its sealed content (`sealed`
    /// is empty): listing and history read no ciphertext, whatever the record's size.
    async fn record_revisions(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredRevision>, StoreError>;

    /// One revision with its sealed content.
    async fn record_revision(
        &self,
        scope: &TenantScope,
        id: &str,
        version: u64,
        revision: u64,
    ) -> Result<Option<StoredRevision>, StoreError>;

    /// The latest revision of one version (one row, whatever the number of revisions).
    async fn latest_record_revision(
        &self,
        scope: &TenantScope,
        id: &str,
        version: u64,
    ) -> Result<Option<StoredRevision>, StoreError>;

    /// Everyone who saved a revision of any version of the record (user ids or actor
    /// labels), without reading the revisions themselves.
    async fn record_editors(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// Every signature on a record, in signing order.
    async fn record_signatures(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredSignature>, StoreError>;

    /// Every state change of a record, in order.
    async fn record_events(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<StoredRecordEvent>, StoreError>;

    /// Whether any signature was given in `session` (the first one in a session also
    /// needs the login identifier).
    async fn session_has_signed(
        &self,
        scope: &TenantScope,
        session: &str,
    ) -> Result<bool, StoreError>;

    /// Applies `change` with `audit` (in order) in one transaction; false (nothing
    /// written) when the record changed since `expected_seq` was read.
    async fn change_record(
        &self,
        scope: &WritableScope,
        change: &RecordChange,
        audit: &[AuditEvent],
    ) -> Result<bool, StoreError>;
}
