//! The storage ports: what Strongroom needs from a database, and nothing about how.
//!
//! One port per aggregate, each with its row types beside it:
//!
//! | port | holds |
//! |---|---|
//! | [`DirectoryStore`] | the tenant directory and each tenant's home |
//! | [`OperatorStore`] | operators (status, second factor), token-signing keys |
//! | [`KeyStore`] | each tenant's wrapped KEKs and DEKs, seal budgets |
//! | [`ObjectStore`] | sealed values and blob metadata ([`BlobStore`]: the blob files) |
//! | [`AuditStore`] | audit entries, hash tiles, checkpoints, personal-data keys |
//! | [`UserStore`], [`SessionStore`], [`ApplicationStore`] | tenant identities |
//! | [`SupportStore`] | a tenant's grants of support access to operators |
//! | [`RecordStore`] | record types, records, versions, revisions, signatures |
//!
//! [`Store`] is all of them together, for the one place that holds a whole backend
//! (the platform); everything else takes only the port it uses. Adapters (SQLite now,
//! PostgreSQL next) live in `strongroom-store` and implement each port directly. No
//! driver type crosses a port: errors arrive as [`StoreError`], rows as the types here.
//! Every method that touches tenant data takes a scope from [`crate::access`]; methods
//! without one are the few pre-authentication lookups (finding an operator to check a
//! password, loading signing keys).

mod audit;
mod directory;
mod identity;
mod keys;
mod objects;
mod operators;
mod records;
mod support;

pub use audit::{
    AuditEvent, AuditFilter, AuditLogState, AuditStore, StoredEntry, StoredSubjectKey, StoredTile,
};
pub use directory::{DirectoryStore, PendingWork};
pub use identity::{
    ApplicationStore, NewUserRow, RefreshOutcome, SessionStore, StoredInvitation, UserChange,
    UserStore,
};
pub use keys::{KeyStore, StoredDek, StoredKek, TenantKeys};
pub use objects::{BlobSink, BlobStore, ObjectStore, StoredBlob, StoredSealed};
pub use operators::{OperatorStore, StoredSigningKey};
pub use records::{
    RecordChange, RecordFilter, RecordStore, StoredRecord, StoredRecordEvent, StoredRecordType,
    StoredRevision, StoredSignature, StoredVersion, VersionUpdate,
};
pub use support::{SupportGrant, SupportScope, SupportStore};

/// A boxed error from a storage driver, kept as the cause of a [`StoreError`] without
/// naming the driver's type in the port.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed, grouped by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (`what` names the rule, e.g. `tenant slug`).
    #[error("{what} already exists")]
    Conflict {
        /// Which rule.
        what: &'static str,
    },
    /// The database cannot be reached or is busy; retrying later may work.
    #[error("storage unavailable: {context}")]
    Unavailable {
        /// What was being done (a path, a statement's purpose).
        context: String,
        /// The driver's error, if there was one.
        #[source]
        source: Option<BackendError>,
    },
    /// Stored data violates an invariant (a row that cannot be decoded).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("storage failure: {context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BackendError>,
    },
}

impl StoreError {
    /// Unavailable for a reason of our own (no driver error behind it).
    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// A backend failure for a reason of our own (no driver error behind it).
    pub fn backend(context: impl Into<String>) -> Self {
        Self::Backend {
            context: context.into(),
            source: None,
        }
    }
}

/// A page request for listing: items strictly after `after`, at most `limit`.
#[derive(Debug, Clone)]
pub struct Page<C> {
    /// Cursor: the last item of the previous page.
    pub after: Option<C>,
    /// Page size (the caller bounds it).
    pub limit: u32,
}

/// Every port of one backend: what the platform holds. Implemented automatically for
/// any type implementing all the ports.
pub trait Store:
    DirectoryStore
    + OperatorStore
    + KeyStore
    + ObjectStore
    + AuditStore
    + UserStore
    + SessionStore
    + ApplicationStore
    + SupportStore
    + RecordStore
{
}

impl<T> Store for T where
    T: DirectoryStore
        + OperatorStore
        + KeyStore
        + ObjectStore
        + AuditStore
        + UserStore
        + SessionStore
        + ApplicationStore
        + SupportStore
        + RecordStore
{
}
