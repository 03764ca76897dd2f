//! Records on the platform facade: record types, the record lifecycle, electronic
//! signatures with re-authentication, attachments, history, diffs, search and
//! verification. The model and the hashes are in [`crate::records`]; this file applies
//! the rules (who, in which state, against which ETag) and hands each change to the
//! store as one transaction with its audit entries.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use utoipa::ToSchema;

use super::{MAX_PAGE, Platform, PlatformError};
use crate::access::rbac::Permission;
use crate::access::{Principal, TenantScope, WritableScope};
use crate::audit::entry::{Action, NewEntry, Target, format_time};
use crate::audit::merkle::{Hash, leaf_hash, verify_inclusion};
use crate::identity::Email;
use crate::identity::totp::OneTimeCode;
use crate::identity::user::UserStatus;
use crate::objects::Kind;
use crate::records::content::{self, AttachmentRef, HashInput};
use crate::records::definition::{Compiled, Definition, TypeName};
use crate::records::{self as model, RecordId, RecordStatus, VersionState};
use crate::secret::SecretString;
use crate::store::{
    AuditEvent, AuditFilter, Page, RecordChange, RecordFilter, StoredRecord, StoredRecordEvent,
    StoredRecordType, StoredRevision, StoredSignature, StoredVersion, VersionUpdate,
};
use crate::tenant::Slug;

/// Id of the tenant's blind-index key (a sealed value of kind `index-key`).
const INDEX_KEY_ID: &str = "records";
/// Longest reason or comment, in characters.
const MAX_TEXT: usize = crate::audit::entry::MAX_REASON;
/// Most revisions of one version (every save is kept; this bounds what one record
/// can make every later read and verification walk).
pub const MAX_REVISIONS: u64 = 10_000;
/// Most attachments on one version.
pub const MAX_ATTACHMENTS: usize = 64;

/// A record type version as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordTypeView {
    /// Type name.
    pub name: TypeName,
    /// Type version.
    pub version: u64,
    /// The definition.
    pub definition: Definition,
    /// Who defined this version (actor label).
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A signature's manifestation (21 CFR 11.50) with what it signed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignatureView {
    /// Signature id.
    pub id: String,
    /// Signer's user id (never reused).
    pub signer_id: String,
    /// Printed name of the signer at signing time.
    pub printed_name: String,
    /// Date and time of signing, RFC 3339 with its zone offset.
    pub signed_at: String,
    /// The meaning of the signature (e.g. `approved`).
    pub meaning: String,
    /// The signer's comment.
    pub comment: Option<String>,
    /// The manifestation as one line, for display and print.
    pub manifestation: String,
    /// The content hash it signed (hex).
    pub content_hash: String,
    /// Whether it counts toward the version's policy: on its current content, given
    /// in its current review round (a signature on a round later rejected stays on
    /// record, but no longer counts).
    pub current: bool,
    /// How the signer re-authenticated.
    pub reauth: String,
    /// The signature's hash (hex), committed to by its `record.sign` audit entry.
    pub signature_hash: String,
    /// Position of that audit entry in the tenant's log.
    pub audit_seq: u64,
}

/// One version of a record, with its content and signatures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionView {
    /// Record id.
    pub record: String,
    /// Version number.
    pub version: u64,
    /// `draft`, `in_review`, `approved` or `superseded`.
    pub state: String,
    /// Type name.
    pub type_name: String,
    /// Type version the content was written under.
    pub type_version: u64,
    /// Latest revision of this version.
    pub revision: u64,
    /// Content hash (hex, docs/formats/records.md §3).
    pub content_hash: String,
    /// The content.
    #[schema(value_type = Object)]
    pub content: Value,
    /// Attachments (name, SHA-256, size, media type).
    pub attachments: Vec<AttachmentView>,
    /// Every signature on this version, in signing order.
    pub signatures: Vec<SignatureView>,
    /// The meaning of the next signature the policy needs, while in review.
    pub next_signature: Option<String>,
    /// Who started the version.
    pub created_by: String,
    /// When.
    pub created_at: String,
    /// When approved.
    pub approved_at: Option<String>,
}

/// An attachment as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttachmentView {
    /// File name.
    pub name: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// A record with its current version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordView {
    /// Record id.
    pub id: String,
    /// Type name.
    pub type_name: String,
    /// `draft`, `in_review`, `approved` or `retired`.
    pub status: String,
    /// Latest version number.
    pub current_version: u64,
    /// Creator's user id.
    pub created_by: String,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// The ETag to send as `If-Match` with the next change.
    pub etag: String,
    /// The current version.
    pub current: VersionView,
}

/// A record in a listing (no content: listing reads only plaintext columns).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordSummary {
    /// Record id.
    pub id: String,
    /// Type name.
    pub type_name: String,
    /// Status.
    pub status: String,
    /// Latest version.
    pub current_version: u64,
    /// Creator's user id.
    pub created_by: String,
    /// When created.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
}

/// One item of a record's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryItem {
    /// `revision`, `signature` or `state`.
    pub kind: &'static str,
    /// The audit action.
    pub action: String,
    /// Version concerned.
    pub version: u64,
    /// Revision number (revisions only).
    pub revision: Option<u64>,
    /// Who.
    pub actor: String,
    /// When.
    pub at: String,
    /// Reason or comment.
    pub reason: Option<String>,
    /// Content hash after the change (revisions) or signed (signatures).
    pub content_hash: Option<String>,
}

/// What `records verify` found.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Versions checked.
    pub versions: u64,
    /// Revisions re-hashed.
    pub revisions: u64,
    /// Signatures checked against their versions and audit entries.
    pub signatures: u64,
    /// Attachments re-hashed.
    pub attachments: u64,
    /// Size of the signed checkpoint inclusion was proven against.
    pub checkpoint_size: u64,
    /// Everything that failed, each naming the record and what is wrong. Empty means
    /// every check passed.
    pub failures: Vec<VerifyFailure>,
}

/// One failed check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyFailure {
    /// Record id.
    pub record: String,
    /// Version, where the failure is about one.
    pub version: Option<u64>,
    /// What failed.
    pub problem: String,
}

/// A signature request: meaning, comment and the re-authentication.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The meaning (must be the policy's next one).
    pub meaning: String,
    /// Optional comment.
    pub comment: Option<String>,
    /// The login identifier (required for the first signature in a session).
    pub email: Option<Email>,
    /// The password (not with `sso_challenge`).
    pub password: Option<SecretString>,
    /// A completed re-authentication at the signer's identity provider (the challenge
    /// id from `Platform::sso_sign_begin`), instead of the password.
    pub sso_challenge: Option<String>,
    /// A current TOTP code (when the signer's second factor is TOTP).
    pub totp: Option<OneTimeCode>,
    /// A passkey assertion: the challenge id and the authenticator's
    /// `PublicKeyCredential` (when the signer's second factor is a passkey).
    pub passkey: Option<(String, Value)>,
    /// The client's address (re-authentication is throttled like a sign-in).
    pub client: IpAddr,
}

/// Listing filters as the API gives them.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// Type name.
    pub type_name: Option<TypeName>,
    /// Status.
    pub status: Option<RecordStatus>,
    /// Creator.
    pub created_by: Option<String>,
    /// Created at or after.
    pub created_from: Option<OffsetDateTime>,
    /// Created before.
    pub created_to: Option<OffsetDateTime>,
    /// Updated at or after.
    pub updated_from: Option<OffsetDateTime>,
    /// Updated before.
    pub updated_to: Option<OffsetDateTime>,
    /// Exact-match searches on searchable fields (needs `type_name`).
    pub fields: Vec<(String, String)>,
}

/// The ETag of a record's state: its change counter.
pub fn etag(seq: u64) -> String {
    format!("\"{seq}\"")
}

fn parse_etag(if_match: Option<&str>) -> Result<u64, PlatformError> {
    let raw = if_match.ok_or(PlatformError::PreconditionRequired)?.trim();
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .and_then(|n| n.parse().ok())
        .ok_or(PlatformError::PreconditionFailed)
}

fn text_ok(field: &'static str, t: Option<&str>, required: bool) -> Result<(), PlatformError> {
    match t {
        None if required => Err(PlatformError::Invalid {
            field: Some(field),
            message: format!("`{field}` is required"),
        }),
        Some(r) if required && r.trim().is_empty() => Err(PlatformError::Invalid {
            field: Some(field),
            message: format!("`{field}` cannot be blank"),
        }),
        Some(r) if r.chars().count() > MAX_TEXT || r.chars().any(char::is_control) => {
            Err(PlatformError::Invalid {
                field: Some(field),
                message: format!("at most {MAX_TEXT} characters, no control characters"),
            })
        }
        _ => Ok(()),
    }
}

fn record_target(id: &str, version: u64) -> Target {
    Target::of("record", id).at_version(version)
}

fn user_label(p: &Principal) -> String {
    match p {
        Principal::User(u) => u.user().to_string(),
        other => other.label(),
    }
}

fn corrupt(what: impl Into<String>) -> PlatformError {
    PlatformError::internal(what.into())
}

fn attachments_of(rev: &StoredRevision) -> Result<Vec<AttachmentRef>, PlatformError> {
    serde_json::from_str(&rev.attachments)
        .map_err(|e| corrupt(format!("revision attachments unreadable: {e}")))
}

fn time_text(t: OffsetDateTime) -> String {
    format_time(t).replace('Z', "+00:00")
}

/// Most compiled type versions kept in memory.
const TYPE_CACHE: usize = 256;

/// Compiled record-type versions by (tenant, name, version): immutable once written, so
/// never stale; emptied when full (a simple bound, not an LRU).
#[derive(Default)]
pub(super) struct TypeCache(
    std::sync::Mutex<
        std::collections::HashMap<
            (crate::tenant::TenantId, String, u64),
            std::sync::Arc<LoadedType>,
        >,
    >,
);

impl TypeCache {
    fn get(
        &self,
        key: &(crate::tenant::TenantId, String, u64),
    ) -> Option<std::sync::Arc<LoadedType>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: (crate::tenant::TenantId, String, u64), value: std::sync::Arc<LoadedType>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= TYPE_CACHE {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// A parsed, compiled record type.
pub(super) struct LoadedType {
    row: StoredRecordType,
    definition: Definition,
    compiled: Compiled,
}

/// Everything stored about one record, read for a decision or a view.
struct Loaded {
    record: StoredRecord,
    versions: Vec<StoredVersion>,
    signatures: Vec<StoredSignature>,
    events: Vec<StoredRecordEvent>,
}

impl Loaded {
    fn version(&self, n: u64) -> Result<&StoredVersion, PlatformError> {
        self.versions
            .iter()
            .find(|v| v.version == n)
            .ok_or(PlatformError::NotFound("version"))
    }

    fn current(&self) -> Result<&StoredVersion, PlatformError> {
        self.version(self.record.current_version)
    }

    /// When version `n`'s current review round began (its latest submission): only
    /// signatures given since then count, so a version rejected and resubmitted — even
    /// with the same content — needs every signature again.
    ///
    /// Rounds are ordered by audit-log position, never by the clock (which may step
    /// back): a signature belongs to the round whose submission precedes its
    /// `record.sign` entry.
    fn round_start(&self, n: u64) -> Option<u64> {
        self.events
            .iter()
            .filter(|e| e.version == n && e.action == Action::RecordSubmit.as_str())
            .map(|e| e.audit_seq)
            .max()
    }

    /// The signatures that count toward version `v`'s policy now: on its current
    /// content, given in its current review round.
    fn counting(&self, v: &StoredVersion) -> Vec<&StoredSignature> {
        let round = self.round_start(v.version);
        self.signatures
            .iter()
            .filter(|s| {
                s.version == v.version
                    && s.content_hash == v.content_hash
                    && round.is_none_or(|r| s.audit_seq > r)
            })
            .collect()
    }
}

impl Platform {
    async fn records_scope(
        &self,
        principal: &Principal,
        slug: &Slug,
        permission: Permission,
    ) -> Result<TenantScope, PlatformError> {
        Ok(self
            .tenant_access(principal, slug, permission, None)
            .await?
            .1)
    }

    /// A type version, compiled. Type versions never change, so compiled ones are
    /// kept (at most [`TYPE_CACHE`]) instead of meta-validating and compiling a schema
    /// on every read.
    async fn load_type(
        &self,
        scope: &TenantScope,
        name: &str,
        version: Option<u64>,
    ) -> Result<std::sync::Arc<LoadedType>, PlatformError> {
        let key = |v: u64| (scope.tenant(), name.to_owned(), v);
        if let Some(v) = version
            && let Some(hit) = self.type_cache.get(&key(v))
        {
            return Ok(hit);
        }
        let row = self
            .store
            .record_type(scope, name, version)
            .await?
            .ok_or(PlatformError::NotFound("record type"))?;
        if let Some(hit) = self.type_cache.get(&key(row.version)) {
            return Ok(hit);
        }
        let definition: Definition = serde_json::from_str(&row.definition)
            .map_err(|e| corrupt(format!("record type definition unreadable: {e}")))?;
        let compiled = definition
            .validate()
            .map_err(|e| corrupt(format!("stored record type no longer compiles: {e}")))?;
        let version = row.version;
        let loaded = std::sync::Arc::new(LoadedType {
            row,
            definition,
            compiled,
        });
        self.type_cache.put(key(version), loaded.clone());
        Ok(loaded)
    }

    /// Defines a record type, or changes one (a new type version), `records:admin`.
    pub async fn define_record_type(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: TypeName,
        definition: Definition,
    ) -> Result<RecordTypeView, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsAdmin)
            .await?
            .writable()?;
        definition.validate()?;
        let json = serde_json::to_string(&definition).map_err(PlatformError::internal_from)?;
        for _ in 0..4 {
            let latest = self.store.record_type(&scope, name.as_str(), None).await?;
            let version = latest.map_or(1, |t| t.version + 1);
            let row = StoredRecordType {
                name: name.to_string(),
                version,
                definition: json.clone(),
                created_by: principal.label(),
                created_at: self.clock.now(),
            };
            let mut entry = NewEntry::by(
                &scope,
                Action::RecordTypeDefine,
                Target::of("record-type", name.as_str()).at_version(version),
                None,
            );
            entry.after = Some(crate::audit::merkle::sha256(&[json.as_bytes()]));
            let event = self.recorder.event(&scope, entry).await?;
            match self.store.insert_record_type(&scope, &row, &event).await {
                Ok(()) => {
                    return Ok(RecordTypeView {
                        name,
                        version,
                        definition,
                        created_by: row.created_by,
                        created_at: row.created_at,
                    });
                }
                // Another definition took this version number first: take the next.
                Err(crate::store::StoreError::Conflict {
                    what: "record type version",
                }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PlatformError::unavailable(
            "record type definitions kept colliding; retry",
        ))
    }

    /// A record type (latest version, or `version`), `records:read`.
    pub async fn record_type(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &TypeName,
        version: Option<u64>,
    ) -> Result<RecordTypeView, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let t = self.load_type(&scope, name.as_str(), version).await?;
        Ok(RecordTypeView {
            name: name.clone(),
            version: t.row.version,
            definition: t.definition.clone(),
            created_by: t.row.created_by.clone(),
            created_at: t.row.created_at,
        })
    }

    /// The latest version of every record type, `records:read`.
    pub async fn record_types(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Vec<RecordTypeView>, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let mut out = Vec::new();
        for row in self.store.record_types(&scope).await? {
            let definition: Definition = serde_json::from_str(&row.definition)
                .map_err(|e| corrupt(format!("record type definition unreadable: {e}")))?;
            out.push(RecordTypeView {
                name: TypeName::parse(&row.name)
                    .map_err(|_| corrupt(format!("stored type name {:?}", row.name)))?,
                version: row.version,
                definition,
                created_by: row.created_by,
                created_at: row.created_at,
            });
        }
        Ok(out)
    }

    /// The tenant's blind-index key, created on first use (a sealed value, so it is
    /// under the tenant's key hierarchy: re-encrypted with it, shredded with it).
    async fn index_key(
        &self,
        scope: &TenantScope,
        create: Option<&WritableScope>,
    ) -> Result<Option<crate::secret::SecretBytes>, PlatformError> {
        if let Some((_, key)) = self
            .objects
            .value(scope, Kind::IndexKey, INDEX_KEY_ID)
            .await?
        {
            return Ok(Some(key));
        }
        let Some(w) = create else { return Ok(None) };
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(raw.as_mut())
            .map_err(|_| PlatformError::internal("system RNG failed"))?;
        let fresh = crate::secret::SecretBytes::new(raw.to_vec());
        self.objects
            .create_value(
                w,
                Kind::IndexKey,
                INDEX_KEY_ID,
                fresh.expose(),
                Action::IndexKeyCreate,
            )
            .await?;
        // Whoever won the race, use what is stored.
        Ok(self
            .objects
            .value(scope, Kind::IndexKey, INDEX_KEY_ID)
            .await?
            .map(|(_, k)| k))
    }

    fn check_content(
        &self,
        t: &LoadedType,
        content: &Map<String, Value>,
    ) -> Result<(), PlatformError> {
        let value = Value::Object(content.clone());
        let violations = t.compiled.violations(&value);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(PlatformError::SchemaViolation(violations))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn seal_revision(
        &self,
        scope: &WritableScope,
        record: &str,
        version: u64,
        revision: u64,
        content: &Map<String, Value>,
        attachments: &[AttachmentRef],
        hash: Hash,
        by: &Principal,
    ) -> Result<StoredRevision, PlatformError> {
        let plain = serde_json::to_vec(content).map_err(PlatformError::internal_from)?;
        let (dek_version, sealed) = self
            .objects
            .seal_detached(
                scope,
                Kind::RecordRevision,
                &format!("{record}/{version}"),
                revision,
                &plain,
            )
            .await?;
        Ok(StoredRevision {
            version,
            revision,
            dek_version,
            sealed,
            attachments: serde_json::to_string(attachments)
                .map_err(PlatformError::internal_from)?,
            content_hash: hash,
            saved_by: user_label(by),
            saved_at: self.clock.now(),
        })
    }

    async fn open_revision(
        &self,
        scope: &TenantScope,
        record: &str,
        rev: &StoredRevision,
    ) -> Result<Map<String, Value>, PlatformError> {
        let plain = self
            .objects
            .open_detached(
                scope,
                Kind::RecordRevision,
                &format!("{record}/{}", rev.version),
                rev.revision,
                &rev.sealed,
            )
            .await?;
        match serde_json::from_slice(plain.expose()) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(corrupt("record revision content unreadable")),
        }
    }

    async fn latest_revision(
        &self,
        scope: &TenantScope,
        record: &str,
        version: u64,
    ) -> Result<StoredRevision, PlatformError> {
        self.store
            .latest_record_revision(scope, record, version)
            .await?
            .ok_or_else(|| corrupt(format!("record {record} version {version} has no revision")))
    }

    async fn load(&self, scope: &TenantScope, id: &RecordId) -> Result<Loaded, PlatformError> {
        let id = id.to_string();
        let record = self
            .store
            .record(scope, &id)
            .await?
            .ok_or(PlatformError::NotFound("record"))?;
        let versions = self.store.record_versions(scope, &id).await?;
        let signatures = self.store.record_signatures(scope, &id).await?;
        let events = self.store.record_events(scope, &id).await?;
        Ok(Loaded {
            record,
            versions,
            signatures,
            events,
        })
    }

    async fn event(
        &self,
        scope: &TenantScope,
        action: Action,
        target: Target,
        reason: Option<String>,
        before: Option<Hash>,
        after: Option<Hash>,
    ) -> Result<AuditEvent, PlatformError> {
        let mut entry = NewEntry::by(scope, action, target, reason);
        entry.before = before;
        entry.after = after;
        Ok(self.recorder.event(scope, entry).await?)
    }

    async fn index_for(
        &self,
        scope: &WritableScope,
        t: &LoadedType,
        content: &Map<String, Value>,
    ) -> Result<Vec<(String, Hash)>, PlatformError> {
        if t.definition.searchable.is_empty() {
            return Ok(vec![]);
        }
        let key = self
            .index_key(scope, Some(scope))
            .await?
            .ok_or_else(|| PlatformError::internal("blind-index key missing"))?;
        Ok(model::index_tokens(
            key.expose(),
            t.row.name.as_str(),
            &t.definition.searchable,
            content,
        ))
    }

    /// Creates a record of `type_name` (latest type version) with `content` as version
    /// 1, revision 1, a draft; `records:write`.
    pub async fn create_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        type_name: &TypeName,
        content: Map<String, Value>,
    ) -> Result<RecordView, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsWrite)
            .await?
            .writable()?;
        content::check(&Value::Object(content.clone()))?;
        let t = self.load_type(&scope, type_name.as_str(), None).await?;
        self.check_content(&t, &content)?;
        let id = RecordId::generate().to_string();
        let hash = content::content_hash(&HashInput {
            record: &id,
            version: 1,
            type_name: type_name.as_str(),
            type_version: t.row.version,
            content: &content,
            attachments: &[],
        });
        let rev = self
            .seal_revision(&scope, &id, 1, 1, &content, &[], hash, principal)
            .await?;
        let (record, version) = new_draft(
            &id,
            type_name,
            t.row.version,
            hash,
            principal,
            self.clock.now(),
        );
        let index = self.index_for(&scope, &t, &content).await?;
        let event = self
            .event(
                &scope,
                Action::RecordCreate,
                record_target(&id, 1),
                None,
                None,
                Some(hash),
            )
            .await?;
        self.store
            .create_record(&scope, &record, &version, &rev, &index, &event)
            .await?;
        // The view of what was just committed, without reading it back: the content
        // is the validated value that was sealed, the rows are those written.
        let loaded = Loaded {
            record,
            versions: vec![version],
            signatures: Vec::new(),
            events: Vec::new(),
        };
        let current = self
            .version_view_of(&scope, &loaded, 1, &rev, content)
            .await?;
        Ok(Self::view_of(&loaded, current))
    }

    /// A record with its current version, `records:read`.
    pub async fn record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
    ) -> Result<RecordView, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        self.record_view(&scope, id).await
    }

    async fn record_view(
        &self,
        scope: &TenantScope,
        id: &RecordId,
    ) -> Result<RecordView, PlatformError> {
        let loaded = self.load(scope, id).await?;
        let current = self
            .version_view(scope, &loaded, loaded.record.current_version)
            .await?;
        Ok(Self::view_of(&loaded, current))
    }

    fn view_of(loaded: &Loaded, current: VersionView) -> RecordView {
        let r = &loaded.record;
        RecordView {
            id: r.id.clone(),
            type_name: r.type_name.clone(),
            status: r.status.clone(),
            current_version: r.current_version,
            created_by: r.created_by.clone(),
            created_at: time_text(r.created_at),
            updated_at: time_text(r.updated_at),
            etag: etag(r.seq),
            current,
        }
    }

    /// One version with content and signatures, `records:read`. Returns it with the
    /// record's ETag.
    pub async fn record_version(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        version: u64,
    ) -> Result<(VersionView, String), PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let loaded = self.load(&scope, id).await?;
        let view = self.version_view(&scope, &loaded, version).await?;
        Ok((view, etag(loaded.record.seq)))
    }

    async fn version_view(
        &self,
        scope: &TenantScope,
        loaded: &Loaded,
        n: u64,
    ) -> Result<VersionView, PlatformError> {
        let id = &loaded.record.id;
        let rev = self.latest_revision(scope, id, n).await?;
        let content = self.open_revision(scope, id, &rev).await?;
        self.version_view_of(scope, loaded, n, &rev, content).await
    }

    /// [`version_view`](Self::version_view) of revision `rev` whose content the
    /// caller already holds (it just sealed and stored it).
    async fn version_view_of(
        &self,
        scope: &TenantScope,
        loaded: &Loaded,
        n: u64,
        rev: &StoredRevision,
        content: Map<String, Value>,
    ) -> Result<VersionView, PlatformError> {
        let v = loaded.version(n)?;
        let id = &loaded.record.id;
        let attachments = attachments_of(rev)?;
        let superseded = v.state == "approved"
            && loaded
                .versions
                .iter()
                .any(|o| o.version > n && o.state == "approved");
        let state = if superseded {
            "superseded".to_owned()
        } else {
            v.state.clone()
        };
        let signatures: Vec<SignatureView> = loaded
            .signatures
            .iter()
            .filter(|s| s.version == n)
            .map(|s| {
                let counts = loaded.counting(v).iter().any(|c| c.id == s.id);
                signature_view(s, counts)
            })
            .collect();
        let next_signature = if v.state == "in_review" {
            let t = self
                .load_type(scope, &loaded.record.type_name, Some(v.type_version))
                .await?;
            next_step(&t.definition, &loaded.counting(v))
                .map(|i| t.definition.signature_policy.steps[i].meaning.clone())
        } else {
            None
        };
        Ok(VersionView {
            record: id.clone(),
            version: n,
            state,
            type_name: loaded.record.type_name.clone(),
            type_version: v.type_version,
            revision: v.revision,
            content_hash: hex::encode(v.content_hash),
            content: Value::Object(content),
            attachments: attachments
                .into_iter()
                .map(|a| AttachmentView {
                    name: a.name,
                    sha256: a.sha256,
                    size: a.size,
                    media_type: a.media_type,
                })
                .collect(),
            signatures,
            next_signature,
            created_by: v.created_by.clone(),
            created_at: time_text(v.created_at),
            approved_at: v.approved_at.map(time_text),
        })
    }

    /// Lists records by id (cursor `after`), `records:read`. Field searches go through
    /// the blind index: exact matches on a type's searchable fields.
    pub async fn records(
        &self,
        principal: &Principal,
        slug: &Slug,
        query: RecordQuery,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<RecordSummary>, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let mut filter = RecordFilter {
            type_name: query.type_name.as_ref().map(|t| t.to_string()),
            status: query.status.map(|s| s.as_str().to_owned()),
            created_by: query.created_by,
            created_from: query.created_from,
            created_to: query.created_to,
            updated_from: query.updated_from,
            updated_to: query.updated_to,
            index: vec![],
        };
        if !query.fields.is_empty() {
            let Some(type_name) = &query.type_name else {
                return Err(PlatformError::Invalid {
                    field: Some("type"),
                    message: "searching by field needs `type`".into(),
                });
            };
            let t = self.load_type(&scope, type_name.as_str(), None).await?;
            let Some(key) = self.index_key(&scope, None).await? else {
                return Ok(vec![]);
            };
            for (field, value) in &query.fields {
                if !t.definition.searchable.contains(field) {
                    return Err(PlatformError::Invalid {
                        field: Some("field"),
                        message: format!("`{field}` is not a searchable field of {type_name}"),
                    });
                }
                let n = model::normalise(&Value::String(value.clone())).unwrap_or_default();
                filter.index.push((
                    field.clone(),
                    model::index_token(key.expose(), type_name.as_str(), field, &n),
                ));
            }
        }
        let page = Page {
            after: after.map(|a| a.to_string()),
            limit: limit.clamp(1, MAX_PAGE),
        };
        Ok(self
            .store
            .records(&scope, &filter, &page)
            .await?
            .into_iter()
            .map(|r| RecordSummary {
                id: r.id,
                type_name: r.type_name,
                status: r.status,
                current_version: r.current_version,
                created_by: r.created_by,
                created_at: time_text(r.created_at),
                updated_at: time_text(r.updated_at),
            })
            .collect())
    }

    /// Saves new content of the current draft (a new revision), `records:write`.
    pub async fn update_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        content: Map<String, Value>,
    ) -> Result<RecordView, PlatformError> {
        content::check(&Value::Object(content.clone()))?;
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsWrite)
            .await?;
        let v = loaded.current()?.clone();
        require_draft(&loaded, &v)?;
        let t = self
            .load_type(&scope, &loaded.record.type_name, Some(v.type_version))
            .await?;
        self.check_content(&t, &content)?;
        let rev = self
            .latest_revision(&scope, &loaded.record.id, v.version)
            .await?;
        let attachments = attachments_of(&rev)?;
        self.save_revision(
            &scope,
            principal,
            &loaded,
            &v,
            &t,
            content,
            attachments,
            Action::RecordUpdate,
        )
        .await?;
        self.record_view(&scope, id).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_revision(
        &self,
        scope: &WritableScope,
        principal: &Principal,
        loaded: &Loaded,
        v: &StoredVersion,
        t: &LoadedType,
        content: Map<String, Value>,
        attachments: Vec<AttachmentRef>,
        action: Action,
    ) -> Result<(), PlatformError> {
        let id = &loaded.record.id;
        require_room(v)?;
        let revision = v.revision + 1;
        let hash = content::content_hash(&HashInput {
            record: id,
            version: v.version,
            type_name: &loaded.record.type_name,
            type_version: v.type_version,
            content: &content,
            attachments: &attachments,
        });
        let rev = self
            .seal_revision(
                scope,
                id,
                v.version,
                revision,
                &content,
                &attachments,
                hash,
                principal,
            )
            .await?;
        let index = self.index_for(scope, t, &content).await?;
        let event = self
            .event(
                scope,
                action,
                record_target(id, v.version),
                None,
                Some(v.content_hash),
                Some(hash),
            )
            .await?;
        let change = RecordChange {
            record: id.clone(),
            expected_seq: loaded.record.seq,
            status: RecordStatus::Draft.as_str().into(),
            current_version: v.version,
            at: event.at,
            new_version: None,
            version_update: Some(VersionUpdate {
                version: v.version,
                state: VersionState::Draft.as_str().into(),
                revision,
                content_hash: hash,
                approved_at: None,
            }),
            revision: Some(rev),
            signature: None,
            event: None,
            index: Some(index),
        };
        if self.store.change_record(scope, &change, &[event]).await? {
            Ok(())
        } else {
            Err(PlatformError::PreconditionFailed)
        }
    }

    /// A state change without new content (submit, reject, retire).
    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &self,
        scope: &WritableScope,
        principal: &Principal,
        loaded: &Loaded,
        v: &StoredVersion,
        action: Action,
        state: VersionState,
        status: RecordStatus,
        reason: Option<String>,
    ) -> Result<(), PlatformError> {
        let id = &loaded.record.id;
        let event = self
            .event(
                scope,
                action,
                record_target(id, v.version),
                reason.clone(),
                Some(v.content_hash),
                Some(v.content_hash),
            )
            .await?;
        let version_update = (v.state != "approved").then(|| VersionUpdate {
            version: v.version,
            state: state.as_str().into(),
            revision: v.revision,
            content_hash: v.content_hash,
            approved_at: None,
        });
        let change = RecordChange {
            record: id.clone(),
            expected_seq: loaded.record.seq,
            status: status.as_str().into(),
            current_version: v.version,
            at: event.at,
            new_version: None,
            version_update,
            revision: None,
            signature: None,
            event: Some(StoredRecordEvent {
                seq: loaded.record.seq + 1,
                version: v.version,
                action: action.as_str().into(),
                actor: user_label(principal),
                reason,
                at: event.at,
                audit_seq: 0,
            }),
            index: None,
        };
        if self.store.change_record(scope, &change, &[event]).await? {
            Ok(())
        } else {
            Err(PlatformError::PreconditionFailed)
        }
    }

    async fn writable_loaded(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        permission: Permission,
    ) -> Result<(WritableScope, Loaded), PlatformError> {
        let scope = self
            .records_scope(principal, slug, permission)
            .await?
            .writable()?;
        // A record that does not exist (or is another tenant's) is "not found" before
        // anything is said about the caller's precondition.
        let loaded = self.load(&scope, id).await?;
        if loaded.record.seq != parse_etag(if_match)? {
            return Err(PlatformError::PreconditionFailed);
        }
        Ok((scope, loaded))
    }

    /// Submits the current draft for review: its content is frozen, `records:write`.
    pub async fn submit_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
    ) -> Result<RecordView, PlatformError> {
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsWrite)
            .await?;
        let v = loaded.current()?.clone();
        require_draft(&loaded, &v)?;
        // The schema may have been written under an older type version (a revision):
        // content is checked against the version it will be approved under.
        let t = self
            .load_type(&scope, &loaded.record.type_name, Some(v.type_version))
            .await?;
        let rev = self
            .latest_revision(&scope, &loaded.record.id, v.version)
            .await?;
        let content = self.open_revision(&scope, &loaded.record.id, &rev).await?;
        self.check_content(&t, &content)?;
        self.transition(
            &scope,
            principal,
            &loaded,
            &v,
            Action::RecordSubmit,
            VersionState::InReview,
            RecordStatus::InReview,
            None,
        )
        .await?;
        self.record_view(&scope, id).await
    }

    /// Sends a version in review back to draft, with a reason; `records:review` or
    /// `records:approve`. Signatures already given stay on record but no longer count
    /// once the content changes.
    pub async fn reject_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        reason: String,
    ) -> Result<RecordView, PlatformError> {
        text_ok("reason", Some(&reason), true)?;
        // Whoever may review or approve may send a version back.
        let held = match principal {
            Principal::User(u) => Some(u.permissions()),
            Principal::Application(a) => Some(a.permissions()),
            _ => None,
        };
        let permission = if held.is_some_and(|p| p.contains(&Permission::RecordsApprove)) {
            Permission::RecordsApprove
        } else {
            Permission::RecordsReview
        };
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, permission)
            .await?;
        let v = loaded.current()?.clone();
        if v.state != "in_review" || loaded.record.status == "retired" {
            return Err(PlatformError::RecordState(
                "only a version in review can be rejected".into(),
            ));
        }
        self.transition(
            &scope,
            principal,
            &loaded,
            &v,
            Action::RecordReject,
            VersionState::Draft,
            RecordStatus::Draft,
            Some(reason),
        )
        .await?;
        self.record_view(&scope, id).await
    }

    /// Retires a record for good, with a reason; `records:approve`.
    pub async fn retire_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        reason: String,
    ) -> Result<RecordView, PlatformError> {
        text_ok("reason", Some(&reason), true)?;
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsApprove)
            .await?;
        if loaded.record.status == "retired" {
            return Err(PlatformError::RecordState(
                "the record is already retired".into(),
            ));
        }
        let v = loaded.current()?.clone();
        let state = VersionState::parse(&v.state).unwrap_or(VersionState::Draft);
        self.transition(
            &scope,
            principal,
            &loaded,
            &v,
            Action::RecordRetire,
            state,
            RecordStatus::Retired,
            Some(reason),
        )
        .await?;
        self.record_view(&scope, id).await
    }

    /// Revises the approved current version: version n+1 starts as a draft with the
    /// same content and attachments, under the type's latest version; `records:write`,
    /// reason required. Version n stays exactly as it is (and is superseded once n+1
    /// is approved).
    #[allow(clippy::too_many_lines)] // one transaction's worth of fields, spelled out
    pub async fn revise_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        reason: String,
    ) -> Result<RecordView, PlatformError> {
        text_ok("reason", Some(&reason), true)?;
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsWrite)
            .await?;
        let v = loaded.current()?.clone();
        if v.state != "approved" || loaded.record.status == "retired" {
            return Err(PlatformError::RecordState(
                "only an approved current version can be revised".into(),
            ));
        }
        let rid = &loaded.record.id;
        let t = self
            .load_type(&scope, &loaded.record.type_name, None)
            .await?;
        let rev = self.latest_revision(&scope, rid, v.version).await?;
        let content = self.open_revision(&scope, rid, &rev).await?;
        let attachments = attachments_of(&rev)?;
        let n = v.version + 1;
        let hash = content::content_hash(&HashInput {
            record: rid,
            version: n,
            type_name: &loaded.record.type_name,
            type_version: t.row.version,
            content: &content,
            attachments: &attachments,
        });
        let new_rev = self
            .seal_revision(&scope, rid, n, 1, &content, &attachments, hash, principal)
            .await?;
        let index = self.index_for(&scope, &t, &content).await?;
        let event = self
            .event(
                &scope,
                Action::RecordRevise,
                record_target(rid, n),
                Some(reason.clone()),
                Some(v.content_hash),
                Some(hash),
            )
            .await?;
        let change = RecordChange {
            record: rid.clone(),
            expected_seq: loaded.record.seq,
            status: RecordStatus::Draft.as_str().into(),
            current_version: n,
            at: event.at,
            new_version: Some(StoredVersion {
                version: n,
                type_version: t.row.version,
                state: VersionState::Draft.as_str().into(),
                revision: 1,
                content_hash: hash,
                created_by: user_label(principal),
                created_at: event.at,
                approved_at: None,
            }),
            version_update: None,
            revision: Some(new_rev),
            signature: None,
            event: Some(StoredRecordEvent {
                seq: loaded.record.seq + 1,
                version: n,
                action: Action::RecordRevise.as_str().into(),
                actor: user_label(principal),
                reason: Some(reason),
                at: event.at,
                audit_seq: 0,
            }),
            index: Some(index),
        };
        if !self.store.change_record(&scope, &change, &[event]).await? {
            return Err(PlatformError::PreconditionFailed);
        }
        self.record_view(&scope, id).await
    }

    /// Applies an electronic signature to version `n` (which must be the current
    /// version, in review, unchanged since `if_match`), re-authenticating the signer in
    /// the same request. Only a user's own interactive session can sign. The last
    /// signature the policy requires approves the version, in the same transaction.
    #[allow(clippy::too_many_lines)] // the Part 11 signing rules in the order an auditor reads them
    pub async fn sign_record(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        n: u64,
        if_match: Option<&str>,
        request: SignRequest,
    ) -> Result<RecordView, PlatformError> {
        let user = match principal {
            Principal::User(u) if u.via().is_none() => u.clone(),
            Principal::User(_) => {
                return Err(PlatformError::SigningNotPermitted(
                    "an application acting for a user (a delegated token) can never sign".into(),
                ));
            }
            Principal::Application(_) => {
                return Err(PlatformError::SigningNotPermitted(
                    "an application can never sign: signatures are given by people".into(),
                ));
            }
            _ => {
                // Operators, the local administrator: a tenant's records are not theirs
                // to see, let alone sign.
                return Err(PlatformError::NotFound("tenant"));
            }
        };
        text_ok("comment", request.comment.as_deref(), false)?;
        // The permission a signature needs depends on its step: checked below.
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsRead)
            .await?;
        let (v, t, step) = self
            .signature_step(&scope, &loaded, n, &request.meaning, &user)
            .await?;
        let last = step + 1 == t.definition.signature_policy.steps.len();
        let me = user.user().to_string();
        // Re-authentication: the login identifier (first signature in the session),
        // the password, and the second factor if the signer has one.
        let stored_user = self
            .store
            .user(&scope, user.user())
            .await?
            .ok_or(PlatformError::Unauthenticated)?;
        if stored_user.status != UserStatus::Active {
            return Err(PlatformError::Unauthenticated);
        }
        if stored_user.full_name.trim().is_empty() {
            return Err(PlatformError::RecordState(
                "set your printed name (full_name) before signing".into(),
            ));
        }
        if request.sso_challenge.is_some()
            && (request.password.is_some()
                || request.email.is_some()
                || request.totp.is_some()
                || request.passkey.is_some())
        {
            return Err(PlatformError::Invalid {
                field: Some("sso_challenge"),
                message: "an SSO re-authentication replaces the password: send sso_challenge alone"
                    .into(),
            });
        }
        let reauth = if let Some(challenge) = &request.sso_challenge {
            let intent = crate::identity::sso::SigningIntent {
                session: user.session().to_owned(),
                user: user.user(),
                record: loaded.record.id.clone(),
                version: v.version,
                content_hash: v.content_hash,
                meaning: request.meaning.clone(),
            };
            match self.spend_sso_reauth(challenge, &intent) {
                Ok(evidence) => evidence.method(),
                Err(e) => {
                    self.signature_failed(
                        &scope,
                        &loaded.record.id,
                        v.version,
                        "SSO re-authentication unknown, spent, expired or for another signature",
                    )
                    .await?;
                    return Err(e);
                }
            }
        } else {
            self.password_reauth(
                &scope,
                slug,
                &user,
                &stored_user,
                &loaded.record.id,
                v.version,
                &request,
            )
            .await?
        };
        // The signature and, if it completes the policy, the approval.
        let now = self.clock.now();
        let sig_id = uuid::Uuid::now_v7().to_string();
        let fields = model::SignatureFields {
            id: &sig_id,
            record: &loaded.record.id,
            version: v.version,
            signer: &me,
            printed_name: &stored_user.full_name,
            meaning: &request.meaning,
            comment: request.comment.as_deref(),
            signed_at: now,
            content_hash: &v.content_hash,
            session: user.session(),
            reauth: &reauth,
        };
        let sig_hash = model::signature_hash(&fields);
        let signature = StoredSignature {
            id: sig_id.clone(),
            record_id: loaded.record.id.clone(),
            version: v.version,
            signer_id: me.clone(),
            printed_name: stored_user.full_name.clone(),
            meaning: request.meaning.clone(),
            comment: request.comment.clone(),
            signed_at: now,
            content_hash: v.content_hash,
            session_id: user.session().to_owned(),
            reauth: reauth.clone(),
            signature_hash: sig_hash,
            audit_seq: 0,
        };
        let mut events = vec![
            self.event(
                &scope,
                Action::RecordSign,
                record_target(&loaded.record.id, v.version),
                Some(format!("meaning: {}", request.meaning)),
                Some(v.content_hash),
                Some(sig_hash),
            )
            .await?,
        ];
        let (status, version_update, event) = if last {
            events.push(
                self.event(
                    &scope,
                    Action::RecordApprove,
                    record_target(&loaded.record.id, v.version),
                    None,
                    Some(v.content_hash),
                    Some(v.content_hash),
                )
                .await?,
            );
            (
                RecordStatus::Approved,
                Some(VersionUpdate {
                    version: v.version,
                    state: VersionState::Approved.as_str().into(),
                    revision: v.revision,
                    content_hash: v.content_hash,
                    approved_at: Some(now),
                }),
                Some(StoredRecordEvent {
                    seq: loaded.record.seq + 1,
                    version: v.version,
                    action: Action::RecordApprove.as_str().into(),
                    actor: me.clone(),
                    reason: None,
                    at: now,
                    audit_seq: 0,
                }),
            )
        } else {
            (RecordStatus::InReview, None, None)
        };
        let change = RecordChange {
            record: loaded.record.id.clone(),
            expected_seq: loaded.record.seq,
            status: status.as_str().into(),
            current_version: v.version,
            at: now,
            new_version: None,
            version_update,
            revision: None,
            signature: Some(signature),
            event,
            index: None,
        };
        if !self.store.change_record(&scope, &change, &events).await? {
            return Err(PlatformError::PreconditionFailed);
        }
        tracing::info!(tenant = %slug, record = %loaded.record.id, version = v.version, meaning = %request.meaning, "record signed");
        self.record_view(&scope, id).await
    }

    /// The version `n` a signature with `meaning` by `user` would sign, its type and
    /// the policy step, if that signature could be given now: the current version, in
    /// review, the step the policy needs next, the user holding its permission, and
    /// separation of duties (one signature per person per round; the approver no
    /// editor; an editor no reviewer unless the policy allows it). Shared by signing
    /// and by the start of an SSO re-authentication, so nobody goes to their identity
    /// provider for a signature they could not give.
    async fn signature_step(
        &self,
        scope: &TenantScope,
        loaded: &Loaded,
        n: u64,
        meaning: &str,
        user: &crate::access::TenantUser,
    ) -> Result<(StoredVersion, std::sync::Arc<LoadedType>, usize), PlatformError> {
        if n != loaded.record.current_version {
            return Err(PlatformError::RecordState(
                "only the current version can be signed".into(),
            ));
        }
        let v = loaded.current()?.clone();
        if v.state != "in_review" || loaded.record.status != "in_review" {
            return Err(PlatformError::RecordState(
                "only a version in review can be signed: submit it first".into(),
            ));
        }
        let t = self
            .load_type(scope, &loaded.record.type_name, Some(v.type_version))
            .await?;
        let policy = &t.definition.signature_policy;
        let step = policy
            .steps
            .iter()
            .position(|s| s.meaning == meaning)
            .ok_or_else(|| PlatformError::Invalid {
                field: Some("meaning"),
                message: format!(
                    "not a meaning of this type's policy: {}",
                    policy
                        .steps
                        .iter()
                        .map(|s| s.meaning.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let next = next_step(&t.definition, &loaded.counting(&v));
        if next != Some(step) {
            return Err(PlatformError::RecordState(match next {
                Some(i) => format!(
                    "the next signature this version needs is `{}`",
                    policy.steps[i].meaning
                ),
                None => "this version has every signature it needs".into(),
            }));
        }
        let needed = policy
            .permission(step)
            .ok_or_else(|| corrupt("policy permission"))?;
        if !user.permissions().contains(&needed) {
            return Err(PlatformError::Forbidden(format!(
                "signing as `{meaning}` needs {}",
                needed.as_str()
            )));
        }
        self.separation_of_duties(scope, loaded, &v, &t, step, user)
            .await?;
        Ok((v, t, step))
    }

    /// Separation of duties for a signature at policy `step` of version `v`.
    async fn separation_of_duties(
        &self,
        scope: &TenantScope,
        loaded: &Loaded,
        v: &StoredVersion,
        t: &LoadedType,
        step: usize,
        user: &crate::access::TenantUser,
    ) -> Result<(), PlatformError> {
        let policy = &t.definition.signature_policy;
        // Separation of duties, from the stored history of the record: its editors are
        // everyone who saved any revision of any version (a revision carries earlier
        // versions' content forward) or started one.
        let me = user.user().to_string();
        let mut editors: BTreeSet<String> = self
            .store
            .record_editors(scope, &loaded.record.id)
            .await?
            .into_iter()
            .collect();
        editors.extend(loaded.versions.iter().map(|x| x.created_by.clone()));
        let current_sigs = loaded.counting(v);
        if current_sigs.iter().any(|s| s.signer_id == me) {
            return Err(PlatformError::SeparationOfDuties(
                "one person gives at most one signature per review round".into(),
            ));
        }
        let last = step + 1 == policy.steps.len();
        // The approver (the last step, also in a one-step policy) is never an editor of
        // the record; earlier signers of this round were refused just above. Unless the
        // policy allows it, an editor does not review either.
        if editors.contains(&me) && (last || (step > 0 && !policy.author_may_review)) {
            return Err(PlatformError::SeparationOfDuties(if last {
                "the approver must differ from the record's authors, editors and reviewers".into()
            } else {
                "the author of a version may not review it".into()
            }));
        }
        Ok(())
    }

    /// The password path of a signature's re-authentication: the login identifier
    /// (first signature in the session), the password, the second factor. Refused when
    /// the tenant requires SSO (unless the signer is a break-glass user). Returns the
    /// method, e.g. `login-id+password+totp`.
    #[allow(clippy::too_many_arguments)]
    async fn password_reauth(
        &self,
        scope: &TenantScope,
        slug: &Slug,
        user: &crate::access::TenantUser,
        stored_user: &crate::identity::user::User,
        record: &str,
        version: u64,
        request: &SignRequest,
    ) -> Result<String, PlatformError> {
        let (allowed, _) = self.password_allowed(user.tenant(), user.user()).await?;
        if !allowed {
            return Err(PlatformError::SsoRequired(
                "this tenant requires single sign-on: re-authenticate at your identity provider (POST …/signatures/sso-challenge) and sign with sso_challenge".into(),
            ));
        }
        if request.password.is_none() {
            return Err(PlatformError::Invalid {
                field: Some("password"),
                message: "a signature needs your password (or an sso_challenge)".into(),
            });
        }
        let first = !self.store.session_has_signed(scope, user.session()).await?;
        let mut method = Vec::new();
        if first || request.email.is_some() {
            let Some(given) = &request.email else {
                return Err(PlatformError::Invalid {
                    field: Some("email"),
                    message: "the first signature in a session needs your login identifier (`email`) as well as your password".into(),
                });
            };
            if given.as_str().to_lowercase() != stored_user.email.as_str().to_lowercase() {
                // A wrong login identifier is a failed credential like a wrong password.
                let account = format!("{slug}/{}", stored_user.email.as_str());
                self.throttle
                    .begin(&account, request.client)
                    .map_err(super::users::too_many)?
                    .failed();
                self.signature_failed(scope, record, version, "wrong login identifier")
                    .await?;
                return Err(PlatformError::ReauthenticationFailed);
            }
            method.push("login-id");
        }
        self.reauthenticate_signer(
            scope,
            slug,
            stored_user,
            request,
            (user.session(), record, version),
            &mut method,
        )
        .await?;
        Ok(method.join("+"))
    }

    /// The password and second-factor part of a signature's re-authentication,
    /// throttled and counted exactly like a sign-in (a wrong password here is a guess
    /// at the account's password).
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_lines)] // password, then second factor, each with its throttle and audit
    async fn reauthenticate_signer(
        &self,
        scope: &TenantScope,
        slug: &Slug,
        user: &crate::identity::user::User,
        request: &SignRequest,
        (session, record, version): (&str, &str, u64),
        method: &mut Vec<&'static str>,
    ) -> Result<(), PlatformError> {
        let Some(password) = request.password.as_ref() else {
            return Err(PlatformError::ReauthenticationFailed);
        };
        let account = format!("{slug}/{}", user.email.as_str());
        let attempt = self
            .throttle
            .begin(&account, request.client)
            .map_err(super::users::too_many)?;
        let creds = self.store.user_credentials(scope, &user.email).await?;
        let ok = match &creds {
            Some(c) if c.user.id == user.id => {
                self.passwords.verify(password, &c.password_hash).await?
            }
            _ => {
                self.passwords.verify_dummy(password).await?;
                false
            }
        };
        if !ok {
            attempt.failed();
            self.signature_failed(scope, record, version, "wrong password")
                .await?;
            return Err(PlatformError::ReauthenticationFailed);
        }
        method.push("password");
        let offered = super::SecondFactor {
            totp: request.totp.clone(),
            recovery_code: None,
            passkey: request.passkey.clone(),
        };
        let factor_attempt = self
            .throttle
            .begin_second_factor(&account)
            .map_err(super::users::too_many)?;
        let purpose = super::passkeys::Purpose::Sign {
            session: session.to_owned(),
            record: record.to_owned(),
            version,
        };
        match self
            .check_second_factor(scope, user.id, &offered, &purpose)
            .await?
        {
            super::mfa::FactorCheck::NotEnrolled => {
                factor_attempt.succeeded();
            }
            super::mfa::FactorCheck::Verified => {
                factor_attempt.succeeded();
                method.push(if offered.passkey.is_some() {
                    "passkey"
                } else {
                    "totp"
                });
            }
            super::mfa::FactorCheck::Failed => {
                factor_attempt.failed();
                attempt.failed();
                self.signature_failed(scope, record, version, "second factor missing or wrong")
                    .await?;
                return Err(PlatformError::ReauthenticationFailed);
            }
        }
        attempt.succeeded();
        Ok(())
    }

    async fn signature_failed(
        &self,
        scope: &TenantScope,
        record: &str,
        version: u64,
        why: &str,
    ) -> Result<(), PlatformError> {
        let entry = NewEntry::by(
            scope,
            Action::SignatureFailed,
            record_target(record, version),
            Some(why.into()),
        );
        self.recorder.record(scope, entry).await?;
        tracing::warn!(tenant = %scope.tenant(), record = %record, "signature re-authentication failed");
        Ok(())
    }

    /// The record id and content hash of version `n` if the caller could sign it now
    /// (the current version, in review): what an SSO re-authentication is bound to.
    pub(super) async fn signable_hash(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        n: u64,
        meaning: &str,
    ) -> Result<(String, [u8; 32]), PlatformError> {
        let Principal::User(user) = principal else {
            return Err(PlatformError::SigningNotPermitted(
                "only a user's own session can sign".into(),
            ));
        };
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let loaded = self.load(&scope, id).await?;
        let (v, _, _) = self
            .signature_step(&scope, &loaded, n, meaning, user)
            .await?;
        Ok((loaded.record.id.clone(), v.content_hash))
    }

    /// A passkey challenge for signing version `n` of a record in the caller's own
    /// session: answered in the signature request's `passkey`, good for that signature
    /// only, once, for a few minutes. `None` when the caller has no passkey.
    pub async fn signature_passkey_challenge(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        n: u64,
    ) -> Result<Option<(String, Value)>, PlatformError> {
        let Principal::User(user) = principal else {
            return Err(PlatformError::SigningNotPermitted(
                "only a user's own session can sign".into(),
            ));
        };
        if user.via().is_some() {
            return Err(PlatformError::SigningNotPermitted(
                "an application acting for a user (a delegated token) can never sign".into(),
            ));
        }
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let loaded = self.load(&scope, id).await?;
        loaded.version(n)?;
        let purpose = super::passkeys::Purpose::Sign {
            session: user.session().to_owned(),
            record: loaded.record.id.clone(),
            version: n,
        };
        self.passkey_challenge_for(&scope, user.user(), purpose)
            .await
    }

    /// Every revision, signature and state change of a record, in time order;
    /// `records:read`.
    #[allow(clippy::too_many_lines)] // three sources merged into one timeline
    pub async fn record_history(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
    ) -> Result<Vec<HistoryItem>, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let loaded = self.load(&scope, id).await?;
        let rid = loaded.record.id.clone();
        let mut items: Vec<(OffsetDateTime, u8, HistoryItem)> = Vec::new();
        let revisions = self.store.record_revisions(&scope, &rid).await?;
        for r in &revisions {
            let action = if r.version == 1 && r.revision == 1 {
                Action::RecordCreate
            } else if r.revision == 1 {
                Action::RecordRevise
            } else {
                Action::RecordUpdate
            };
            items.push((
                r.saved_at,
                0,
                HistoryItem {
                    kind: "revision",
                    action: action.as_str().into(),
                    version: r.version,
                    revision: Some(r.revision),
                    actor: r.saved_by.clone(),
                    at: time_text(r.saved_at),
                    reason: None,
                    content_hash: Some(hex::encode(r.content_hash)),
                },
            ));
        }
        for s in &loaded.signatures {
            items.push((
                s.signed_at,
                1,
                HistoryItem {
                    kind: "signature",
                    action: Action::RecordSign.as_str().into(),
                    version: s.version,
                    revision: None,
                    actor: s.signer_id.clone(),
                    at: time_text(s.signed_at),
                    reason: Some(format!("{} ({})", s.meaning, s.printed_name)),
                    content_hash: Some(hex::encode(s.content_hash)),
                },
            ));
        }
        for e in self.store.record_events(&scope, &rid).await? {
            items.push((
                e.at,
                2,
                HistoryItem {
                    kind: "state",
                    action: e.action,
                    version: e.version,
                    revision: None,
                    actor: e.actor,
                    at: time_text(e.at),
                    reason: e.reason,
                    content_hash: None,
                },
            ));
        }
        items.sort_by_key(|a| (a.0, a.1));
        Ok(items.into_iter().map(|(_, _, i)| i).collect())
    }

    /// The RFC 6902 JSON Patch that turns version `against` into version `n` (content
    /// and attachments); `records:read`.
    pub async fn record_diff(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        n: u64,
        against: u64,
    ) -> Result<Value, PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let loaded = self.load(&scope, id).await?;
        let mut docs = Vec::new();
        for which in [against, n] {
            loaded.version(which)?;
            let rev = self
                .latest_revision(&scope, &loaded.record.id, which)
                .await?;
            let content = self.open_revision(&scope, &loaded.record.id, &rev).await?;
            let attachments: Map<String, Value> = attachments_of(&rev)?
                .into_iter()
                .map(|a| (a.name, Value::String(a.sha256)))
                .collect();
            docs.push(serde_json::json!({"attachments": attachments, "content": content}));
        }
        let patch = json_patch::diff(&docs[0], &docs[1]);
        serde_json::to_value(patch).map_err(PlatformError::internal_from)
    }

    /// Adds an attachment to the current draft (a new revision): streamed through the
    /// sealer, never buffered whole, hashed on the way, at most `max_bytes`.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_lines)] // validation, streaming and the new revision in one place
    pub async fn attach(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        if_match: Option<&str>,
        name: &str,
        media_type: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        max_bytes: u64,
    ) -> Result<RecordView, PlatformError> {
        let valid_name = !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_. ".contains(c));
        if !valid_name {
            return Err(PlatformError::Invalid {
                field: Some("name"),
                message: "attachment names are 1-255 letters, digits, '-', '_', '.' and spaces, not starting with '.'".into(),
            });
        }
        let media_ok = media_type.len() <= 127
            && media_type.contains('/')
            && media_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-+.".contains(&b));
        if !media_ok {
            return Err(PlatformError::Invalid {
                field: Some("content-type"),
                message: "a media type such as application/pdf".into(),
            });
        }
        let (scope, loaded) = self
            .writable_loaded(principal, slug, id, if_match, Permission::RecordsWrite)
            .await?;
        let v = loaded.current()?.clone();
        require_draft(&loaded, &v)?;
        let rev = self
            .latest_revision(&scope, &loaded.record.id, v.version)
            .await?;
        let mut attachments = attachments_of(&rev)?;
        if attachments.iter().any(|a| a.name == name) {
            return Err(PlatformError::Conflict(format!(
                "an attachment named {name:?} exists on this version"
            )));
        }
        if attachments.len() >= MAX_ATTACHMENTS {
            return Err(PlatformError::Invalid {
                field: Some("name"),
                message: format!("at most {MAX_ATTACHMENTS} attachments per version"),
            });
        }
        let blob_id = format!("att-{}", uuid::Uuid::now_v7());
        let mut hashing = HashingReader::new(reader, max_bytes);
        let stored = self.objects.put_blob(&scope, &blob_id, &mut hashing).await;
        if hashing.exceeded {
            return Err(PlatformError::TooLarge(format!(
                "attachments are at most {max_bytes} bytes"
            )));
        }
        let blob = stored?;
        let (sha, size) = hashing.finish();
        if size != blob.size {
            return Err(corrupt("attachment size mismatch"));
        }
        attachments.push(AttachmentRef {
            name: name.to_owned(),
            sha256: hex::encode(sha),
            size,
            media_type: media_type.to_owned(),
            blob: blob_id,
        });
        let t = self
            .load_type(&scope, &loaded.record.type_name, Some(v.type_version))
            .await?;
        let content = self.open_revision(&scope, &loaded.record.id, &rev).await?;
        self.save_revision(
            &scope,
            principal,
            &loaded,
            &v,
            &t,
            content,
            attachments,
            Action::RecordAttach,
        )
        .await?;
        self.record_view(&scope, id).await
    }

    /// Finds an attachment of version `n` (its size and media type), `records:read`.
    pub async fn attachment(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &RecordId,
        n: u64,
        name: &str,
    ) -> Result<(TenantScope, AttachmentRef), PlatformError> {
        let scope = self
            .records_scope(principal, slug, Permission::RecordsRead)
            .await?;
        let rid = id.to_string();
        if self.store.record(&scope, &rid).await?.is_none() {
            return Err(PlatformError::NotFound("record"));
        }
        let rev = self
            .store
            .latest_record_revision(&scope, &rid, n)
            .await?
            .ok_or(PlatformError::NotFound("version"))?;
        let found = attachments_of(&rev)?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or(PlatformError::NotFound("attachment"))?;
        Ok((scope, found))
    }

    /// Streams an attachment (found with [`Platform::attachment`]) into `writer`,
    /// skipping `skip` bytes and writing at most `take` (HTTP ranges). Tampering is
    /// reported before any unverified byte is written.
    pub async fn read_attachment(
        &self,
        scope: &TenantScope,
        attachment: &AttachmentRef,
        skip: u64,
        take: u64,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, PlatformError> {
        Ok(self
            .objects
            .read_blob_range(scope, &attachment.blob, skip, take, writer)
            .await?)
    }

    /// Recomputes and cross-checks everything about the tenant's records (or one):
    /// every revision's content hash, every version against its latest revision, every
    /// attachment's SHA-256, every signature against the version it names, its own hash
    /// and its `record.sign` audit entry, and that entry's inclusion in the tenant's
    /// signed checkpoint. `audit:read` (or the local administrator).
    pub async fn verify_records(
        &self,
        principal: &Principal,
        slug: &Slug,
        only: Option<&RecordId>,
    ) -> Result<VerifyReport, PlatformError> {
        // Verification reads the audit trail (and costs work): `audit:read`.
        let scope = self
            .records_scope(principal, slug, Permission::AuditRead)
            .await?;
        let (size, note) = self.audit.checkpoint(&scope, slug.as_str()).await?;
        let vkey = self.audit.vkey(&scope, slug.as_str()).await?;
        let verifier = crate::audit::note::Verifier::parse(&vkey)
            .map_err(|e| corrupt(format!("verifier key: {e}")))?;
        let cp = verifier
            .open(&note)
            .map_err(|e| corrupt(format!("checkpoint signature: {e}")))
            .and_then(|t| {
                crate::audit::note::Checkpoint::parse(t)
                    .map_err(|e| corrupt(format!("checkpoint: {e}")))
            })?;
        let mut report = VerifyReport {
            checkpoint_size: size,
            ..VerifyReport::default()
        };
        let ids: Vec<String> = match only {
            Some(id) => vec![id.to_string()],
            None => {
                let mut all = Vec::new();
                let mut after = None;
                loop {
                    let page = Page {
                        after: after.clone(),
                        limit: 500,
                    };
                    let batch = self
                        .store
                        .records(&scope, &RecordFilter::default(), &page)
                        .await?;
                    let done = batch.len() < 500;
                    after = batch.last().map(|r| r.id.clone());
                    all.extend(batch.into_iter().map(|r| r.id));
                    if done {
                        break;
                    }
                }
                all
            }
        };
        for rid in ids {
            let id = RecordId::parse(&rid).ok_or_else(|| corrupt(format!("record id {rid:?}")))?;
            let loaded = self.load(&scope, &id).await?;
            report.records += 1;
            self.verify_one(&scope, slug, &loaded, &cp, &mut report)
                .await?;
        }
        Ok(report)
    }

    #[allow(clippy::too_many_lines)] // every check of one record, in the order docs/formats/records.md §7 lists them
    async fn verify_one(
        &self,
        scope: &TenantScope,
        slug: &Slug,
        loaded: &Loaded,
        cp: &crate::audit::note::Checkpoint,
        report: &mut VerifyReport,
    ) -> Result<(), PlatformError> {
        let rid = &loaded.record.id;
        let mut failures: Vec<(Option<u64>, String)> = Vec::new();
        // The record's audit entries: what every revision, approval and signature must
        // match. Each one relied on must itself be in the signed checkpoint.
        let entries = self.record_entries(scope, rid).await?;
        let mut proven = std::collections::HashMap::new();
        // Revision heads only; each one's content is read (and dropped) in turn below.
        let revisions = self.store.record_revisions(scope, rid).await?;
        for v in &loaded.versions {
            report.versions += 1;
            let revs: Vec<&StoredRevision> = revisions
                .iter()
                .filter(|r| r.version == v.version)
                .collect();
            if revs.iter().map(|r| r.revision).ne(1..=v.revision) {
                failures.push((
                    Some(v.version),
                    format!(
                        "revisions are not exactly 1..={} (revisions missing or added)",
                        v.revision
                    ),
                ));
            }
            // Revision i is recorded by the i-th content entry of this version, in log
            // order (create, update, attach, revise): one to one, same hash, same actor.
            let recorded: Vec<&(u64, Value, Vec<u8>)> = entries
                .iter()
                .filter(|(_, e, _)| {
                    e["target"]["version"] == v.version
                        && matches!(
                            e["action"].as_str(),
                            Some(
                                "record.create"
                                    | "record.update"
                                    | "record.attach"
                                    | "record.revise"
                            )
                        )
                })
                .collect();
            if recorded.len() != revs.len() {
                failures.push((
                    Some(v.version),
                    format!(
                        "{} revisions are stored but the trail records {} content changes",
                        revs.len(),
                        recorded.len()
                    ),
                ));
            }
            for (i, head) in revs.iter().enumerate() {
                report.revisions += 1;
                let Some(r) = self
                    .store
                    .record_revision(scope, rid, head.version, head.revision)
                    .await?
                else {
                    continue; // gone since listed: the contiguity check names it
                };
                let r = &r;
                let Ok(content) = self.open_revision(scope, rid, r).await else {
                    failures.push((
                        Some(v.version),
                        format!(
                            "revision {} cannot be opened: its ciphertext was altered or is not this record's",
                            r.revision
                        ),
                    ));
                    continue;
                };
                let Ok(attachments) = attachments_of(r) else {
                    failures.push((
                        Some(v.version),
                        format!("revision {}: its attachment list is unreadable", r.revision),
                    ));
                    continue;
                };
                let hash = content::content_hash(&HashInput {
                    record: rid,
                    version: v.version,
                    type_name: &loaded.record.type_name,
                    type_version: v.type_version,
                    content: &content,
                    attachments: &attachments,
                });
                if hash != r.content_hash {
                    failures.push((
                        Some(v.version),
                        format!(
                            "revision {}: stored content hash does not match its content",
                            r.revision
                        ),
                    ));
                }
                match recorded.get(i) {
                    Some((seq, e, bytes)) if e["after"] == hex::encode(hash).as_str() => {
                        if actor_label(e) != r.saved_by {
                            failures.push((
                                Some(v.version),
                                format!(
                                    "revision {}: saved by {} but its audit entry names another actor",
                                    r.revision, r.saved_by
                                ),
                            ));
                        }
                        proven.insert(*seq, bytes.clone());
                    }
                    _ => failures.push((
                        Some(v.version),
                        format!(
                            "revision {}: the trail's content change at that place records other content",
                            r.revision
                        ),
                    )),
                }
            }
            if let Some(last) = revs.last() {
                if last.content_hash != v.content_hash {
                    failures.push((
                        Some(v.version),
                        "the version's content hash is not its latest revision's".into(),
                    ));
                }
                // Attachments of the version's content, re-hashed from the streams.
                for a in attachments_of(last).unwrap_or_default() {
                    report.attachments += 1;
                    let mut sink = HashingWriter::default();
                    let read = self.objects.read_blob(scope, &a.blob, &mut sink).await;
                    if read.is_err()
                        || hex::encode(sink.finish()) != a.sha256
                        || sink.size != a.size
                    {
                        failures.push((
                            Some(v.version),
                            format!(
                                "attachment {:?} does not match its recorded SHA-256",
                                a.name
                            ),
                        ));
                    }
                }
            }
            let approval = entries.iter().find(|(_, e, _)| {
                e["action"] == "record.approve" && e["target"]["version"] == v.version
            });
            match (v.state == "approved", approval) {
                (true, None) => failures.push((
                    Some(v.version),
                    "approved, but no record.approve audit entry names this version".into(),
                )),
                (true, Some((_, e, _))) if e["after"] != hex::encode(v.content_hash).as_str() => {
                    failures.push((
                        Some(v.version),
                        "its record.approve audit entry names other content".into(),
                    ));
                }
                (false, Some(_)) => failures.push((
                    Some(v.version),
                    format!(
                        "the trail approved this version, but it is stored as {}",
                        v.state
                    ),
                )),
                (true, Some((seq, _, bytes))) => {
                    proven.insert(*seq, bytes.clone());
                    // Every step of the policy it was approved under has a signature
                    // on this content.
                    let def = self
                        .store
                        .record_type(scope, &loaded.record.type_name, Some(v.type_version))
                        .await?
                        .and_then(|t| serde_json::from_str::<Definition>(&t.definition).ok());
                    if def.is_none() {
                        failures.push((
                            Some(v.version),
                            format!(
                                "its record type {} version {} is missing or unreadable",
                                loaded.record.type_name, v.type_version
                            ),
                        ));
                    }
                    for step in def.iter().flat_map(|d| d.signature_policy.steps.iter()) {
                        let signed = loaded.signatures.iter().any(|s| {
                            s.version == v.version
                                && s.content_hash == v.content_hash
                                && s.meaning == step.meaning
                        });
                        if !signed {
                            failures.push((
                                Some(v.version),
                                format!(
                                    "approved without a `{}` signature on its content",
                                    step.meaning
                                ),
                            ));
                        }
                    }
                }
                (false, None) => {}
            }
        }
        // Every record.sign entry has its signature row (none deleted).
        for (seq, e, _) in &entries {
            if e["action"] == "record.sign"
                && !loaded.signatures.iter().any(|s| s.audit_seq == *seq)
            {
                failures.push((
                    e["target"]["version"].as_u64(),
                    format!("audit entry {seq} records a signature whose row is missing"),
                ));
            }
        }
        for s in &loaded.signatures {
            report.signatures += 1;
            let recomputed = model::signature_hash(&fields_of(s));
            let mut sfail = |problem: String| {
                failures.push((
                    Some(s.version),
                    format!("signature {} ({}): {problem}", s.id, s.meaning),
                ));
            };
            if recomputed != s.signature_hash {
                sfail("its fields do not match its hash (meaning, time, signer, record or content changed)".into());
            }
            if s.record_id != *rid {
                sfail("it belongs to another record".into());
            }
            let signed_revision = revisions
                .iter()
                .any(|r| r.version == s.version && r.content_hash == s.content_hash);
            if !signed_revision {
                sfail("the content hash it signed is not any revision of that version".into());
            }
            // Its audit entry, found by position, must commit to the recomputed hash.
            let stored = self.store.audit_entries(scope, s.audit_seq, 1).await?;
            let Some(entry) = stored.first().filter(|e| e.seq == s.audit_seq) else {
                sfail(format!("its audit entry {} is missing", s.audit_seq));
                continue;
            };
            let parsed: Value = serde_json::from_slice(&entry.entry).unwrap_or(Value::Null);
            let bound = parsed["action"] == "record.sign"
                && parsed["target"]["id"] == rid.as_str()
                && parsed["target"]["version"] == s.version
                && parsed["after"] == hex::encode(recomputed).as_str()
                && parsed["actor"]["id"] == s.signer_id.as_str();
            if !bound {
                sfail(format!(
                    "audit entry {} does not commit to this signature by this signer on this record and version",
                    s.audit_seq
                ));
            }
            proven.insert(s.audit_seq, entry.entry.clone());
        }
        // Inclusion of every entry relied on in the signed checkpoint.
        for (seq, bytes) in &proven {
            let ok = match self
                .audit
                .inclusion(scope, slug.as_str(), *seq, Some(cp.size))
                .await
            {
                Ok(proof) => {
                    verify_inclusion(*seq, cp.size, &leaf_hash(bytes), &proof.hashes, &cp.root)
                        .is_ok()
                }
                Err(_) => false,
            };
            if !ok {
                failures.push((
                    None,
                    format!(
                        "audit entry {seq} is not included in the signed checkpoint of size {}",
                        cp.size
                    ),
                ));
            }
        }
        report.failures.extend(
            failures
                .into_iter()
                .map(|(version, problem)| VerifyFailure {
                    record: rid.clone(),
                    version,
                    problem,
                }),
        );
        Ok(())
    }

    /// Every audit entry whose target is the record: position, parsed, stored bytes.
    async fn record_entries(
        &self,
        scope: &TenantScope,
        rid: &str,
    ) -> Result<Vec<(u64, Value, Vec<u8>)>, PlatformError> {
        let filter = AuditFilter {
            target: Some(format!("record:{rid}")),
            ..AuditFilter::default()
        };
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let batch = self.store.audit_query(scope, &filter, from, 500).await?;
            let done = batch.len() < 500;
            for e in batch {
                from = e.seq + 1;
                let parsed = serde_json::from_slice(&e.entry).unwrap_or(Value::Null);
                out.push((e.seq, parsed, e.entry));
            }
            if done {
                return Ok(out);
            }
        }
    }
}

/// An audit entry's actor in the form revisions record it (`user_label`): a user's
/// bare id, otherwise `<kind>:<id>` or the kind alone.
fn actor_label(entry: &Value) -> String {
    let kind = entry["actor"]["kind"].as_str().unwrap_or_default();
    match (kind, entry["actor"]["id"].as_str()) {
        ("user", Some(id)) => id.to_owned(),
        (k, Some(id)) => format!("{k}:{id}"),
        (k, None) => k.to_owned(),
    }
}

/// The fields of a stored signature, as its hash covers them.
fn fields_of(s: &StoredSignature) -> model::SignatureFields<'_> {
    model::SignatureFields {
        id: &s.id,
        record: &s.record_id,
        version: s.version,
        signer: &s.signer_id,
        printed_name: &s.printed_name,
        meaning: &s.meaning,
        comment: s.comment.as_deref(),
        signed_at: s.signed_at,
        content_hash: &s.content_hash,
        session: &s.session_id,
        reauth: &s.reauth,
    }
}

fn require_room(v: &StoredVersion) -> Result<(), PlatformError> {
    if v.revision >= MAX_REVISIONS {
        return Err(PlatformError::RecordState(format!(
            "this version has {MAX_REVISIONS} revisions, the most one version keeps: submit it"
        )));
    }
    Ok(())
}

fn require_draft(loaded: &Loaded, v: &StoredVersion) -> Result<(), PlatformError> {
    if loaded.record.status == "retired" {
        return Err(PlatformError::RecordState("the record is retired".into()));
    }
    match v.state.as_str() {
        "draft" => Ok(()),
        "in_review" => Err(PlatformError::RecordState(
            "the version is in review: its content is frozen (reject it to edit)".into(),
        )),
        _ => Err(PlatformError::RecordState(
            "the version is approved and never changes: revise it to make a new version".into(),
        )),
    }
}

/// The index of the next step the policy needs for `v`, counting only signatures on
/// its current content, or `None` when every step is done.
fn next_step(def: &Definition, counting: &[&StoredSignature]) -> Option<usize> {
    def.signature_policy
        .steps
        .iter()
        .position(|step| !counting.iter().any(|s| s.meaning == step.meaning))
}

fn signature_view(s: &StoredSignature, counts: bool) -> SignatureView {
    let when = time_text(s.signed_at);
    SignatureView {
        id: s.id.clone(),
        signer_id: s.signer_id.clone(),
        printed_name: s.printed_name.clone(),
        manifestation: format!(
            "Signed by {} on {} (UTC offset +00:00), meaning: {}",
            s.printed_name, when, s.meaning
        ),
        signed_at: when,
        meaning: s.meaning.clone(),
        comment: s.comment.clone(),
        content_hash: hex::encode(s.content_hash),
        current: counts,
        reauth: s.reauth.clone(),
        signature_hash: hex::encode(s.signature_hash),
        audit_seq: s.audit_seq,
    }
}

/// Hashes and counts what passes through, refusing more than a limit.
struct HashingReader<'a> {
    inner: &'a mut (dyn AsyncRead + Send + Unpin),
    hash: aws_lc_rs::digest::Context,
    size: u64,
    limit: u64,
    exceeded: bool,
}

impl<'a> HashingReader<'a> {
    fn new(inner: &'a mut (dyn AsyncRead + Send + Unpin), limit: u64) -> Self {
        Self {
            inner,
            hash: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            size: 0,
            limit,
            exceeded: false,
        }
    }

    fn finish(self) -> (Hash, u64) {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.hash.finish().as_ref());
        (out, self.size)
    }
}

impl AsyncRead for HashingReader<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match std::pin::Pin::new(&mut *this.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                this.size += fresh.len() as u64;
                if this.size > this.limit {
                    this.exceeded = true;
                    return std::task::Poll::Ready(Err(std::io::Error::other(
                        "attachment larger than allowed",
                    )));
                }
                this.hash.update(fresh);
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Hashes what is written (verification re-hashes attachments without keeping them).
struct HashingWriter {
    hash: aws_lc_rs::digest::Context,
    size: u64,
}

impl Default for HashingWriter {
    fn default() -> Self {
        Self {
            hash: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            size: 0,
        }
    }
}

impl HashingWriter {
    fn finish(&self) -> Hash {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.hash.clone().finish().as_ref());
        out
    }
}

impl AsyncWrite for HashingWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.hash.update(buf);
        self.size += buf.len() as u64;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The rows of a new record: version 1, revision 1, a draft.
fn new_draft(
    id: &str,
    type_name: &TypeName,
    type_version: u64,
    hash: Hash,
    principal: &Principal,
    now: OffsetDateTime,
) -> (StoredRecord, StoredVersion) {
    let record = StoredRecord {
        id: id.to_owned(),
        type_name: type_name.to_string(),
        current_version: 1,
        status: RecordStatus::Draft.as_str().into(),
        seq: 1,
        created_by: user_label(principal),
        created_at: now,
        updated_at: now,
    };
    let version = StoredVersion {
        version: 1,
        type_version,
        state: VersionState::Draft.as_str().into(),
        revision: 1,
        content_hash: hash,
        created_by: user_label(principal),
        created_at: now,
        approved_at: None,
    };
    (record, version)
}
