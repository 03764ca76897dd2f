//! Sealed objects: small values (tenant secrets such as SSO client secrets) and large
//! blobs (attachments, later backups), always encrypted under the tenant's current data
//! key and bound to tenant, kind, id and version. Also the re-encryption step that moves
//! old ciphertexts to the current data key after a rotation.
//!
//! Storage sees ciphertext only: values are sealed before they reach the [`Store`], and
//! blobs are streamed through the STREAM sealer into the [`BlobStore`], one chunk in
//! memory at a time.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::access::{TenantScope, WritableScope};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::audit::recorder::Recorder;
use crate::keys::stream::{self, StreamError};
use crate::keys::{DataKey, Keyring, KeyringError, ObjectRef, sealed};
use crate::secret::SecretBytes;
use crate::store::{BlobStore, ObjectStore, StoreError, StoredBlob, StoredSealed};

/// The kinds of sealed objects. Each kind's name is bound into its ciphertexts
/// (docs/formats/encryption.md), so a value of one kind can never be opened as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Tenant secrets (webhook secrets, …): write-only.
    TenantSecret,
    /// A user's TOTP factor and recovery-code hashes.
    UserMfa,
    /// A user's registered passkeys.
    UserPasskeys,
    /// A tenant policy (`mfa`: which roles need a second factor; `sso`: the single
    /// sign-on settings, OIDC client secrets included).
    TenantPolicy,
    /// Encrypted streams (attachments, …).
    Blob,
    /// The tenant's blind-index key (searchable record fields).
    IndexKey,
    /// A link from an identity provider's subject to a user (single sign-on).
    SsoLink,
    /// One saved revision of a record version's content (stored in the records
    /// tables, append-only; never re-encrypted in place).
    RecordRevision,
}

impl Kind {
    /// Every kind stored as a small sealed value: what re-encryption walks.
    pub const VALUES: [Kind; 6] = [
        Self::TenantSecret,
        Self::UserMfa,
        Self::UserPasskeys,
        Self::TenantPolicy,
        Self::IndexKey,
        Self::SsoLink,
    ];

    /// The stable name bound into ciphertexts and stored with each row.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TenantSecret => "tenant-secret",
            Self::UserMfa => "user-mfa",
            Self::UserPasskeys => "user-passkeys",
            Self::TenantPolicy => "tenant-policy",
            Self::Blob => "blob",
            Self::IndexKey => "index-key",
            Self::SsoLink => "sso-link",
            Self::RecordRevision => "record-revision",
        }
    }
}

/// The name of a tenant secret: 1-64 characters of a-z, 0-9, '-', '_' and '.'.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

/// Longest tenant-secret name.
pub const MAX_SECRET_NAME: usize = 64;

impl SecretName {
    /// A valid name, or why not.
    pub fn parse(name: &str) -> Result<Self, ObjectError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_SECRET_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(ObjectError::Invalid(format!(
                "secret names are 1-{MAX_SECRET_NAME} characters of a-z, 0-9, '-', '_' and '.'"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Object kind of tenant secrets (SSO client secrets, webhook secrets, …).
pub const KIND_TENANT_SECRET: &str = Kind::TenantSecret.as_str();
/// Object kind of blobs.
pub const KIND_BLOB: &str = Kind::Blob.as_str();
/// Largest sealed value accepted (secrets are small; big things are blobs).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Attempts at a compare-and-swap write before reporting contention.
const CAS_ATTEMPTS: usize = 16;

/// A sealed-object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Keys or storage failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// Streaming failed (tampering is reported as the key error inside).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The value breaks a rule (too large, bad name).
    #[error("{0}")]
    Invalid(String),
    /// No such object.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Concurrent writers kept winning; try again.
    #[error("the object is being changed concurrently; retry")]
    Contended,
}

impl From<StoreError> for ObjectError {
    fn from(e: StoreError) -> Self {
        Self::Keyring(e.into())
    }
}

/// A pinned write's outcome: written, or not because another writer won (`false`).
fn swapped(put: Result<StoredSealed, ObjectError>) -> Result<bool, ObjectError> {
    match put {
        Ok(_) => Ok(true),
        Err(ObjectError::Contended) => Ok(false),
        Err(e) => Err(e),
    }
}

/// How far a re-encryption pass got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReencryptProgress {
    /// Sealed values moved to the current data key.
    pub values: u64,
    /// Blobs moved to the current data key.
    pub blobs: u64,
    /// Objects still under an older key (0 when done).
    pub remaining: u64,
    /// The data key version everything is being moved to.
    pub current_key: u32,
}

/// Sealed values and blobs of every tenant.
pub struct Objects {
    keyring: Arc<Keyring>,
    recorder: Arc<Recorder>,
    store: Arc<dyn ObjectStore>,
    blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

impl Objects {
    /// Sealed objects over these keys and stores.
    pub fn new(
        keyring: Arc<Keyring>,
        recorder: Arc<Recorder>,
        store: Arc<dyn ObjectStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        Self {
            keyring,
            recorder,
            store,
            blobs,
        }
    }

    /// The current data key for sealing, rotating it first (audited, by the scope's
    /// actor, with the reason that it was automatic) when its seal budget is spent.
    async fn sealing_key(&self, scope: &TenantScope) -> Result<DataKey, ObjectError> {
        for _ in 0..4 {
            match self.keyring.sealing_key(scope).await {
                Err(KeyringError::BudgetSpent(_)) => {}
                other => return Ok(other?),
            }
            let reason = "automatic: the data key's seal budget is spent".to_owned();
            let target = Target::of("data-key", "next");
            let entry = NewEntry::by(scope, Action::KeyRotate, target, Some(reason));
            let event = self.recorder.event(scope, entry).await?;
            self.keyring
                .rotate_dek(scope, |v| {
                    event.about(Target::of("data-key", v.to_string()).at_version(v.into()))
                })
                .await?;
        }
        Err(ObjectError::Contended)
    }

    /// Writes a new version of the value `kind`/`id`, sealed under the current data key.
    /// Returns the stored row (ciphertext and versions).
    /// `action` is the audit action recorded with the write (same transaction); the
    /// entry's before/after hashes are SHA-256 of the stored ciphertexts, never of the
    /// plaintext (a hash of a short secret would let it be guessed).
    pub async fn put_value(
        &self,
        scope: &WritableScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
    ) -> Result<StoredSealed, ObjectError> {
        self.put_value_because(scope, kind, id, plaintext, action, None)
            .await
    }

    /// [`Objects::put_value`] with the actor's reason recorded in the audit entry (for
    /// actions whose catalogue entry requires one).
    pub async fn put_value_because(
        &self,
        scope: &WritableScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
        reason: Option<String>,
    ) -> Result<StoredSealed, ObjectError> {
        self.put(scope, kind, id, plaintext, action, reason, None)
            .await
    }

    /// [`Objects::put_value_because`] only if the stored value is still at version
    /// `read` (0 = absent): `Ok(false)`, nothing written, if another writer changed it
    /// since the caller read it (settings edited by two administrators at once).
    #[allow(clippy::too_many_arguments)] // the write, its audit and its precondition
    pub async fn put_value_if(
        &self,
        scope: &WritableScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
        reason: Option<String>,
        read: u64,
    ) -> Result<bool, ObjectError> {
        swapped(
            self.put(scope, kind, id, plaintext, action, reason, Some(read))
                .await,
        )
    }

    /// Writes security bookkeeping that a sign-in must update even in a read-only
    /// tenant (a second factor's last accepted step, a passkey's counter): the same
    /// sealed, audited write as [`Objects::put_value`], without the writability check.
    pub async fn put_state(
        &self,
        scope: &TenantScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
    ) -> Result<StoredSealed, ObjectError> {
        self.put(scope, kind, id, plaintext, action, None, None)
            .await
    }

    /// [`Objects::put_state`] only if the stored value is still at version `read`
    /// (the version the caller's decision was based on): `Ok(false)`, nothing written,
    /// if another request (on any server node) changed it meanwhile. A spent one-time
    /// code is recorded this way, so two sign-ins racing with one code cannot both
    /// succeed, whichever nodes they reach.
    pub async fn put_state_if(
        &self,
        scope: &TenantScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
        read: u64,
    ) -> Result<bool, ObjectError> {
        swapped(
            self.put(scope, kind, id, plaintext, action, None, Some(read))
                .await,
        )
    }

    /// Seals and stores a new version of `kind`/`id`. With `pinned`, one attempt
    /// against exactly that version; without, retried against whatever is current.
    #[allow(clippy::too_many_arguments)] // one private core behind four public doors
    async fn put(
        &self,
        scope: &TenantScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
        reason: Option<String>,
        pinned: Option<u64>,
    ) -> Result<StoredSealed, ObjectError> {
        if plaintext.len() > MAX_VALUE_BYTES {
            return Err(ObjectError::Invalid(format!(
                "value is {} bytes; at most {MAX_VALUE_BYTES} are accepted",
                plaintext.len()
            )));
        }
        for _ in 0..CAS_ATTEMPTS {
            let name = kind.as_str();
            let current = self.store.sealed(scope, name, id).await?;
            let expected = current.as_ref().map_or(0, |c| c.version);
            if pinned.is_some_and(|p| p != expected) {
                return Err(ObjectError::Contended);
            }
            let before = current.map(|c| c.sealed);
            let version = expected + 1;
            let object = ObjectRef {
                tenant: scope.tenant(),
                kind: name,
                id,
                version,
            };
            let key = self.sealing_key(scope).await?;
            let row = StoredSealed {
                id: id.to_owned(),
                version,
                dek_version: key.version,
                sealed: sealed::seal(&key, &object, plaintext).map_err(KeyringError::from)?,
            };
            let target = Target::of(name, id).at_version(version);
            let mut entry = NewEntry::by(scope, action, target, reason.clone());
            entry.before = before.as_deref().map(|b| sha256(&[b]));
            entry.after = Some(sha256(&[&row.sealed]));
            let event = self.recorder.event(scope, entry).await?;
            if self
                .store
                .put_sealed(scope, name, &row, expected, &event)
                .await?
            {
                return Ok(row);
            }
            if pinned.is_some() {
                break;
            }
        }
        Err(ObjectError::Contended)
    }

    /// Writes version 1 of `kind`/`id` unless it exists: false (nothing written) when
    /// another writer created it first. For values that must never be replaced once
    /// made (the blind-index key: every stored token depends on it).
    pub async fn create_value(
        &self,
        scope: &WritableScope,
        kind: Kind,
        id: &str,
        plaintext: &[u8],
        action: Action,
    ) -> Result<bool, ObjectError> {
        let name = kind.as_str();
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind: name,
            id,
            version: 1,
        };
        let key = self.sealing_key(scope).await?;
        let row = StoredSealed {
            id: id.to_owned(),
            version: 1,
            dek_version: key.version,
            sealed: sealed::seal(&key, &object, plaintext).map_err(KeyringError::from)?,
        };
        let mut entry = NewEntry::by(scope, action, Target::of(name, id).at_version(1), None);
        entry.after = Some(sha256(&[&row.sealed]));
        let event = self.recorder.event(scope, entry).await?;
        Ok(self.store.put_sealed(scope, name, &row, 0, &event).await?)
    }

    /// Seals `plaintext` as `kind`/`id` at `version` under the current data key, for a
    /// caller that stores the ciphertext itself (record revisions). Returns the data
    /// key version and the sealed bytes.
    pub async fn seal_detached(
        &self,
        scope: &WritableScope,
        kind: Kind,
        id: &str,
        version: u64,
        plaintext: &[u8],
    ) -> Result<(u32, Vec<u8>), ObjectError> {
        let key = self.sealing_key(scope).await?;
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind: kind.as_str(),
            id,
            version,
        };
        let sealed = sealed::seal(&key, &object, plaintext).map_err(KeyringError::from)?;
        Ok((key.version, sealed))
    }

    /// Opens what [`Objects::seal_detached`] sealed; tampering, or bytes sealed for
    /// another tenant, kind, id or version, fail.
    pub async fn open_detached(
        &self,
        scope: &TenantScope,
        kind: Kind,
        id: &str,
        version: u64,
        sealed_bytes: &[u8],
    ) -> Result<SecretBytes, ObjectError> {
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind: kind.as_str(),
            id,
            version,
        };
        Ok(self
            .keyring
            .open_value(scope, &object, sealed_bytes)
            .await?)
    }

    /// Reads and opens the value `kind`/`id`.
    pub async fn value(
        &self,
        scope: &TenantScope,
        kind: Kind,
        id: &str,
    ) -> Result<Option<(u64, SecretBytes)>, ObjectError> {
        let Some(row) = self.store.sealed(scope, kind.as_str(), id).await? else {
            return Ok(None);
        };
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind: kind.as_str(),
            id: &row.id,
            version: row.version,
        };
        let plain = self.keyring.open_value(scope, &object, &row.sealed).await?;
        Ok(Some((row.version, plain)))
    }

    /// Encrypts everything `reader` yields into a new blob `id`. Nothing is recorded
    /// unless the whole stream was written and made durable.
    pub async fn put_blob(
        &self,
        scope: &WritableScope,
        id: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<StoredBlob, ObjectError> {
        let key = self.sealing_key(scope).await?;
        let file = uuid::Uuid::now_v7().to_string();
        let object = blob_ref(scope, id);
        let mut sink = self.blobs.create(scope, &file).await?;
        let size = stream::seal_to(&key, &object, reader, &mut sink).await?;
        sink.commit().await?;
        let blob = StoredBlob {
            id: id.to_owned(),
            dek_version: key.version,
            size,
            file: file.clone(),
        };
        let entry = NewEntry::by(scope, Action::BlobPut, Target::of(KIND_BLOB, id), None);
        let stored = match self.recorder.event(scope, entry).await {
            Ok(event) => self
                .store
                .insert_blob(scope, &blob, &event)
                .await
                .map_err(ObjectError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            self.blobs.remove(scope, &file).await?;
            return Err(e);
        }
        Ok(blob)
    }

    /// Decrypts blob `id` into `writer`; returns its size. On tampering the error comes
    /// before any unverified byte is written.
    pub async fn read_blob(
        &self,
        scope: &TenantScope,
        id: &str,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, ObjectError> {
        self.read_blob_range(scope, id, 0, u64::MAX, writer).await
    }

    /// Decrypts `len` bytes of blob `id` from plaintext byte `start` into `writer`
    /// (an HTTP range); returns how many were written. Only the chunks holding the range
    /// are read and decrypted, each verified before any of its bytes is written: a range
    /// near the end of a large file costs a chunk, not the file.
    pub async fn read_blob_range(
        &self,
        scope: &TenantScope,
        id: &str,
        start: u64,
        len: u64,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, ObjectError> {
        self.read_blob_range_inner(scope, id, start, len, writer, false)
            .await
    }

    async fn read_blob_range_inner(
        &self,
        scope: &TenantScope,
        id: &str,
        start: u64,
        len: u64,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
        retried: bool,
    ) -> Result<u64, ObjectError> {
        let (blob, mut reader) = self.open_blob(scope, id).await?;
        let header = stream::read_header(&mut reader).await?;
        let key = self
            .keyring
            .data_key(
                scope,
                stream::key_version(&header).map_err(KeyringError::from)?,
            )
            .await?;
        let object = blob_ref(scope, &blob.id);
        let mut opener = stream::Opener::new(&key, &object, &header).map_err(KeyringError::from)?;
        let log2 = stream::chunk_log2(&header).map_err(KeyringError::from)?;
        let first = start >> log2;
        if first > 0 {
            let index = u32::try_from(first)
                .map_err(|_| ObjectError::Invalid("range beyond the stream".into()))?;
            opener.start_at(index).map_err(KeyringError::from)?;
            let offset = stream::chunk_offset(log2, first);
            reader = match self.blobs.open_at(scope, &blob.file, offset).await {
                Ok(r) => r,
                // Re-encryption replaced the file between the two opens: start again
                // from the blob's current metadata (once; `open_blob` retries too).
                Err(_) if !retried => {
                    return Box::pin(
                        self.read_blob_range_inner(scope, id, start, len, writer, true),
                    )
                    .await;
                }
                Err(e) => return Err(e.into()),
            };
        }
        let mut window = Window {
            inner: writer,
            skip: start - (first << log2),
            take: len,
        };
        match stream::open_from(opener, &mut reader, &mut window).await {
            Ok(_) => {}
            // Stopped on purpose once the range was written; anything else fails.
            Err(StreamError::Io(e)) if window.take == 0 && e.to_string() == RANGE_DONE => {}
            Err(e) => return Err(e.into()),
        }
        Ok(len - window.take)
    }

    /// The blob's metadata and its open stream file. Re-encryption replaces a blob's
    /// file and then deletes the old one, so a reader that read the metadata just
    /// before can find its file gone: it then reads the metadata again and opens the
    /// new file (once open, a file stays readable whatever happens to its name).
    async fn open_blob(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<(StoredBlob, Box<dyn AsyncRead + Send + Unpin>), ObjectError> {
        let mut last = None;
        let mut failure = None;
        for _ in 0..3 {
            let blob = self
                .store
                .blob(scope, id)
                .await?
                .ok_or(ObjectError::NotFound("blob"))?;
            if last.as_ref().is_some_and(|f| *f == blob.file) {
                break; // the same file is missing twice: not a race, a loss
            }
            match self.blobs.open(scope, &blob.file).await {
                Ok(reader) => return Ok((blob, reader)),
                Err(e) => {
                    tracing::debug!(blob = %id, error = %e, "blob file moved while opening; reading its metadata again");
                    last = Some(blob.file);
                    failure = Some(e);
                }
            }
        }
        // The store's own verdict: unavailable (an outage), or corrupt (an object that
        // is gone for good).
        Err(ObjectError::Keyring(KeyringError::Store(
            failure.unwrap_or_else(|| {
                StoreError::unavailable(format!("blob {id}: its stream file is missing"))
            }),
        )))
    }

    /// Moves up to `budget` objects of the tenant from older data keys to the current
    /// one. Resumable by construction: the work left is whatever is still sealed under
    /// an older key, so a crash or restart just continues. Values changed concurrently
    /// are skipped (their new version is already under the current key).
    pub async fn reencrypt_step(
        &self,
        scope: &TenantScope,
        budget: u32,
    ) -> Result<ReencryptProgress, ObjectError> {
        let current = self.keyring.current_version(scope).await?;
        let mut progress = ReencryptProgress {
            current_key: current,
            ..ReencryptProgress::default()
        };
        let mut left = budget;
        for kind in Kind::VALUES.map(Kind::as_str) {
            for old in self.store.sealed_before(scope, kind, current, left).await? {
                left = left.saturating_sub(1);
                if self.reseal_value(scope, kind, &old, current).await? {
                    progress.values += 1;
                }
            }
        }
        for old in self.store.blobs_before(scope, current, left).await? {
            if self.reseal_blob(scope, &old).await? {
                progress.blobs += 1;
            }
        }
        for kind in Kind::VALUES.map(Kind::as_str) {
            progress.remaining += self
                .store
                .sealed_before(scope, kind, current, 1)
                .await?
                .len() as u64;
        }
        progress.remaining += self.store.blobs_before(scope, current, 1).await?.len() as u64;
        Ok(progress)
    }

    async fn reseal_value(
        &self,
        scope: &TenantScope,
        kind: &str,
        old: &StoredSealed,
        current: u32,
    ) -> Result<bool, ObjectError> {
        let object = ObjectRef {
            tenant: scope.tenant(),
            kind,
            id: &old.id,
            version: old.version,
        };
        let plain = self.keyring.open_value(scope, &object, &old.sealed).await?;
        let key = self.sealing_key(scope).await?;
        if key.version < current {
            return Ok(false);
        }
        let new = StoredSealed {
            dek_version: key.version,
            sealed: sealed::seal(&key, &object, plain.expose()).map_err(KeyringError::from)?,
            ..old.clone()
        };
        let target = Target::of(kind, old.id.as_str()).at_version(old.version);
        let mut entry = NewEntry::by(scope, Action::KeyReencrypt, target, None);
        entry.reason = Some(format!(
            "data key {} -> {}",
            old.dek_version, new.dek_version
        ));
        entry.before = Some(sha256(&[&old.sealed]));
        entry.after = Some(sha256(&[&new.sealed]));
        let event = self.recorder.event(scope, entry).await?;
        Ok(self.store.reseal(scope, kind, old, &new, &event).await?)
    }

    async fn reseal_blob(
        &self,
        scope: &TenantScope,
        old: &StoredBlob,
    ) -> Result<bool, ObjectError> {
        let key = self.sealing_key(scope).await?;
        let object = blob_ref(scope, &old.id);
        let mut reader = self.blobs.open(scope, &old.file).await?;
        let header = stream::read_header(&mut reader).await?;
        let old_key = self
            .keyring
            .data_key(
                scope,
                stream::key_version(&header).map_err(KeyringError::from)?,
            )
            .await?;
        let file = uuid::Uuid::now_v7().to_string();
        let mut sink = self.blobs.create(scope, &file).await?;
        // Decrypt-and-re-encrypt through a pipe: one chunk of each in memory. Each side
        // drops its end when done, so a failure on either side ends the other.
        let (plain_in, plain_out) = tokio::io::duplex(64 * 1024);
        let open = async move {
            let mut plain_in = plain_in;
            stream::open_to(&old_key, &object, &header, &mut reader, &mut plain_in).await
        };
        let seal_key = key.clone();
        let seal = async move {
            let mut plain_out = plain_out;
            let r = stream::seal_to(&seal_key, &object, &mut plain_out, &mut sink).await;
            (r, sink)
        };
        let (opened, (sealed_size, sink)) = tokio::join!(open, seal);
        let (size, sealed_size) = (opened?, sealed_size?);
        if size != sealed_size || size != old.size {
            return Err(ObjectError::Invalid(format!(
                "blob {} changed size while re-encrypting",
                old.id
            )));
        }
        sink.commit().await?;
        let new = StoredBlob {
            dek_version: key.version,
            file: file.clone(),
            ..old.clone()
        };
        let mut entry = NewEntry::by(
            scope,
            Action::KeyReencrypt,
            Target::of(KIND_BLOB, old.id.as_str()),
            None,
        );
        entry.reason = Some(format!(
            "data key {} -> {}",
            old.dek_version, new.dek_version
        ));
        let event = self.recorder.event(scope, entry).await?;
        if self.store.reseal_blob(scope, old, &new, &event).await? {
            self.blobs.remove(scope, &old.file).await?;
            Ok(true)
        } else {
            self.blobs.remove(scope, &file).await?;
            Ok(false)
        }
    }
}

fn blob_ref<'a>(scope: &TenantScope, id: &'a str) -> ObjectRef<'a> {
    ObjectRef {
        tenant: scope.tenant(),
        kind: KIND_BLOB,
        id,
        version: 1,
    }
}

/// Why a ranged read stops early (not a failure).
const RANGE_DONE: &str = "range complete";

/// Passes on only the bytes of a range: drops the first `skip`, then at most `take`.
struct Window<'a> {
    inner: &'a mut (dyn AsyncWrite + Send + Unpin),
    skip: u64,
    take: u64,
}

impl AsyncWrite for Window<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let len = buf.len() as u64;
        if this.take == 0 {
            // The range is written: stop decrypting the rest of the file.
            return std::task::Poll::Ready(Err(std::io::Error::other(RANGE_DONE)));
        }
        if this.skip >= len {
            this.skip -= len;
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        let start = usize::try_from(this.skip).unwrap_or(usize::MAX);
        let end = buf
            .len()
            .min(start.saturating_add(usize::try_from(this.take).unwrap_or(usize::MAX)));
        if start >= end {
            this.skip = 0;
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        match std::pin::Pin::new(&mut *this.inner).poll_write(cx, &buf[start..end]) {
            std::task::Poll::Ready(Ok(n)) => {
                // Count what was consumed from `buf`: the skipped prefix plus what the
                // inner writer took.
                this.skip = 0;
                this.take -= n as u64;
                std::task::Poll::Ready(Ok(start + n))
            }
            other => other,
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
