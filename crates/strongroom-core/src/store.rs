//! The storage port: what Strongroom needs from a database, and nothing about how.
//!
//! Adapters (SQLite now, PostgreSQL next) live in `strongroom-store` and implement
//! [`Store`]. Every method that touches tenant data takes a scope from
//! [`crate::access`]; methods without one are the few pre-authentication lookups
//! (finding an operator to check a password, loading signing keys).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::{PlatformScope, TenantScope};
use crate::audit::entry::NewEntry;
use crate::audit::merkle::Hash;
use crate::identity::Email;
use crate::identity::operator::{Operator, OperatorCredentials};
use crate::tenant::{Slug, Tenant};

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
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data violates an invariant (a row that cannot be decoded).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("storage failure: {0}")]
    Backend(String),
}

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
}

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

/// An audit entry to append in the same transaction as the write it describes. The
/// store assigns its sequence number and a time never earlier than the previous entry's.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The caller's part of the entry.
    pub entry: NewEntry,
    /// When it happened (server clock).
    pub at: OffsetDateTime,
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

/// A new tenant user with its first role grants.
#[derive(Debug, Clone)]
pub struct NewUserRow {
    /// The user.
    pub user: crate::identity::user::User,
    /// PHC password hash.
    pub password_hash: String,
    /// Actor label of whoever created the user (recorded with the grants).
    pub granted_by: String,
}

/// A change to a user: status and/or the complete set of roles.
#[derive(Debug, Clone)]
pub struct UserChange {
    /// New status.
    pub status: Option<crate::identity::user::UserStatus>,
    /// New complete set of roles.
    pub roles: Option<Vec<crate::access::rbac::Role>>,
    /// Actor label of whoever changes it.
    pub granted_by: String,
    /// When.
    pub at: OffsetDateTime,
}

/// A one-time invitation to become a tenant user.
#[derive(Debug, Clone)]
pub struct StoredInvitation {
    /// SHA-256 of the invitation token.
    pub hash: [u8; 32],
    /// Who is invited (their login name).
    pub email: crate::identity::Email,
    /// The role they will have.
    pub role: crate::access::rbac::Role,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// The token was current: it is now used, and `new` replaces it.
    Rotated(crate::identity::user::StoredSession),
    /// The token had been used before: the session is now revoked.
    Reused(crate::identity::user::StoredSession),
    /// No such token (or its session is revoked or expired).
    Invalid,
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

/// A page request for listing: items strictly after `after`, at most `limit`.
#[derive(Debug, Clone)]
pub struct Page<C> {
    /// Cursor: the last item of the previous page.
    pub after: Option<C>,
    /// Page size (the caller bounds it).
    pub limit: u32,
}

/// Everything Strongroom stores, behind one seam.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that every database (control and each region) answers a query.
    async fn health(&self) -> Result<(), StoreError>;

    /// Adds an operator. Fails with `Conflict` if the e-mail is taken.
    async fn insert_operator(
        &self,
        scope: &PlatformScope,
        operator: &Operator,
        password_hash: &str,
    ) -> Result<(), StoreError>;

    /// Pre-authentication lookup of an operator and their password hash.
    async fn operator_credentials(
        &self,
        email: &Email,
    ) -> Result<Option<OperatorCredentials>, StoreError>;

    /// The platform's token-signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Removes a retired token-signing key (its tokens have all expired).
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Creates a tenant: its directory entry, and its home in its region's storage.
    /// Both or neither, with the tenant's freshly provisioned (wrapped) keys in the same
    /// region transaction. `home` is the tenant's own scope, made by the caller from the
    /// platform scope.
    async fn create_tenant(
        &self,
        scope: &PlatformScope,
        tenant: &Tenant,
        home: &TenantScope,
        keys: &TenantKeys,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Looks a tenant up by slug.
    async fn tenant(
        &self,
        scope: &PlatformScope,
        slug: &Slug,
    ) -> Result<Option<Tenant>, StoreError>;

    /// Lists tenants in slug order.
    async fn tenants(
        &self,
        scope: &PlatformScope,
        page: Page<Slug>,
    ) -> Result<Vec<Tenant>, StoreError>;

    /// Confirms the tenant's home exists in its region's storage (and only there).
    async fn tenant_home_exists(&self, scope: &TenantScope) -> Result<bool, StoreError>;

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
        scope: &TenantScope,
        subject: &str,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;

    /// Creates a user with its role grants, audited in the same transaction. Fails with
    /// `Conflict` if the e-mail is taken in the tenant.
    async fn insert_user(
        &self,
        scope: &TenantScope,
        row: &NewUserRow,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A user by id, with roles.
    async fn user(
        &self,
        scope: &TenantScope,
        id: crate::identity::user::UserId,
    ) -> Result<Option<crate::identity::user::User>, StoreError>;

    /// A user and password hash by (normalised) e-mail.
    async fn user_credentials(
        &self,
        scope: &TenantScope,
        email: &crate::identity::Email,
    ) -> Result<Option<crate::identity::user::UserCredentials>, StoreError>;

    /// Users ordered by id, after the cursor.
    async fn users(
        &self,
        scope: &TenantScope,
        page: &Page<crate::identity::user::UserId>,
    ) -> Result<Vec<crate::identity::user::User>, StoreError>;

    /// Applies `change`, audited in the same transaction; disabling revokes every
    /// session of the user in that transaction too. `None` if no such user.
    async fn update_user(
        &self,
        scope: &TenantScope,
        id: crate::identity::user::UserId,
        change: &UserChange,
        audit: &AuditEvent,
    ) -> Result<Option<crate::identity::user::User>, StoreError>;

    /// Replaces a user's password hash (re-hashing an imported bcrypt hash to argon2id
    /// after a successful sign-in; the password itself does not change).
    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: crate::identity::user::UserId,
        hash: &str,
    ) -> Result<(), StoreError>;

    /// Registers an application, audited in the same transaction.
    async fn insert_application(
        &self,
        scope: &TenantScope,
        app: &crate::identity::application::StoredApplication,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// An application by id.
    async fn application(
        &self,
        scope: &TenantScope,
        id: crate::identity::application::AppId,
    ) -> Result<Option<crate::identity::application::StoredApplication>, StoreError>;

    /// Every application of the tenant (bounded by the caller's page).
    async fn applications(
        &self,
        scope: &TenantScope,
        limit: u32,
    ) -> Result<Vec<crate::identity::application::StoredApplication>, StoreError>;

    /// Enables or disables an application, audited. `false` if no such application.
    async fn set_application_active(
        &self,
        scope: &TenantScope,
        id: crate::identity::application::AppId,
        active: bool,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Deletes a user with their grants, sessions, refresh tokens and second factors
    /// (TOTP and passkeys),
    /// audited in the same transaction. `false` if no such user.
    async fn delete_user(
        &self,
        scope: &TenantScope,
        id: crate::identity::user::UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Stores an invitation, audited.
    async fn insert_invitation(
        &self,
        scope: &TenantScope,
        invitation: &StoredInvitation,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Uses an unexpired, unused invitation to create `user` (with the invitation's
    /// role), in one transaction with `audit`. `None` if the token is unknown, used or
    /// expired at `now`.
    async fn accept_invitation(
        &self,
        scope: &TenantScope,
        hash: &[u8; 32],
        user: &NewUserRow,
        now: OffsetDateTime,
        audit: &AuditEvent,
    ) -> Result<Option<StoredInvitation>, StoreError>;

    /// Starts a session with its first refresh token (hash), audited.
    async fn create_session(
        &self,
        scope: &TenantScope,
        session: &crate::identity::user::StoredSession,
        refresh_hash: &[u8; 32],
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// A session by id.
    async fn session(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<crate::identity::user::StoredSession>, StoreError>;

    /// Uses refresh token `old` once, storing `new` as its successor; a second use of
    /// `old` revokes the session. Sessions past `now` are not refreshed.
    async fn rotate_refresh(
        &self,
        scope: &TenantScope,
        old: &[u8; 32],
        new: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<RefreshOutcome, StoreError>;

    /// Revokes a session (logout, reuse detected), audited in the same transaction.
    async fn revoke_session(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

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

    /// Replaces a value's ciphertext by a re-encrypted one, unless it changed meanwhile.
    async fn reseal(
        &self,
        scope: &TenantScope,
        kind: &str,
        old: &StoredSealed,
        new: &StoredSealed,
    ) -> Result<bool, StoreError>;

    /// Records a blob whose stream is already committed to the blob store.
    async fn insert_blob(&self, scope: &TenantScope, blob: &StoredBlob) -> Result<(), StoreError>;

    /// A blob's metadata.
    async fn blob(&self, scope: &TenantScope, id: &str) -> Result<Option<StoredBlob>, StoreError>;

    /// Blobs sealed under a data key older than `current`.
    async fn blobs_before(
        &self,
        scope: &TenantScope,
        current: u32,
        limit: u32,
    ) -> Result<Vec<StoredBlob>, StoreError>;

    /// Points a blob at its re-encrypted stream, unless it changed meanwhile.
    async fn reseal_blob(
        &self,
        scope: &TenantScope,
        old: &StoredBlob,
        new: &StoredBlob,
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
