//! Key management and sealed objects on the platform facade: status, rotation,
//! crypto-shredding, re-encryption, tenant secrets and blobs.

use serde::Serialize;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{MAX_PAGE, Platform, PlatformError};
use crate::access::{self, PlatformAction, PlatformScope, Principal, TenantScope};
use crate::audit::entry::{Action, NewEntry, Target, validate_reason};
use crate::objects::{Kind, ReencryptProgress, SecretName};
use crate::secret::SecretBytes;
use crate::store::{Page, PendingWork, StoredBlob};
use crate::tenant::{Slug, Tenant};

/// The audit target of a key version.
fn key_target(kind: &str, version: u32) -> Target {
    Target::of(kind, version.to_string()).at_version(version.into())
}

/// One tenant's key hierarchy, without any key material.
#[derive(Debug, Clone, Serialize)]
pub struct TenantKeyStatus {
    /// The tenant.
    pub slug: Slug,
    /// Its region.
    pub region: String,
    /// Provider holding its key-encryption key (absent once shredded).
    pub provider: Option<String>,
    /// Current key-encryption key version.
    pub kek_version: Option<u32>,
    /// Data keys, oldest first; the last is current.
    pub data_keys: Vec<DataKeyStatus>,
    /// When the keys were destroyed, if they were.
    #[serde(with = "time::serde::rfc3339::option")]
    pub destroyed_at: Option<OffsetDateTime>,
}

/// One data key's metadata.
#[derive(Debug, Clone, Serialize)]
pub struct DataKeyStatus {
    /// Version.
    pub version: u32,
    /// KEK version wrapping it.
    pub kek_version: u32,
    /// Nonces reserved so far (usage budget spent).
    pub seals_reserved: u64,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What was stored for a tenant secret (never its value).
#[derive(Debug, Clone, Serialize)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// Its version (1 on first write, +1 on every change).
    pub version: u64,
    /// The data key version that sealed it.
    pub key_version: u32,
}

impl Platform {
    /// Authorizes `action` and returns the tenant and a scope on it.
    pub(super) async fn tenant_scope(
        &self,
        principal: &Principal,
        slug: &Slug,
        action: PlatformAction,
    ) -> Result<(Tenant, TenantScope), PlatformError> {
        let scope = access::authorize_platform(principal, action)?;
        let tenant = self
            .store
            .tenant(&scope, slug)
            .await?
            .ok_or(PlatformError::NotFound("tenant"))?;
        let home = access::provisioning_scope(&scope, &tenant);
        Ok((tenant, home))
    }

    /// Every tenant's key versions and provider.
    pub async fn key_status(
        &self,
        principal: &Principal,
    ) -> Result<Vec<TenantKeyStatus>, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageKeys)?;
        let mut out = Vec::new();
        for t in self.all_tenants(&scope).await? {
            let keys = self
                .store
                .tenant_keys(&access::provisioning_scope(&scope, &t))
                .await?;
            let kek = keys.keks.last();
            out.push(TenantKeyStatus {
                slug: t.slug.clone(),
                region: t.region.to_string(),
                provider: kek.map(|k| k.provider.clone()),
                kek_version: kek.map(|k| k.version),
                data_keys: keys
                    .deks
                    .iter()
                    .map(|d| DataKeyStatus {
                        version: d.version,
                        kek_version: d.kek_version,
                        seals_reserved: d.seals_reserved,
                        created_at: d.created_at,
                    })
                    .collect(),
                destroyed_at: keys.destroyed_at,
            });
        }
        Ok(out)
    }

    /// The tenants a background round over `kind` visits: those with work pending when
    /// the store keeps an index of them (so 10,000 idle tenants cost one read per
    /// round, not 10,000), every tenant otherwise.
    pub(super) async fn tenants_with(
        &self,
        scope: &PlatformScope,
        kind: PendingWork,
    ) -> Result<Vec<Tenant>, PlatformError> {
        match self.store.pending_work(kind, self.clock.now()).await? {
            Some(ids) if ids.is_empty() => Ok(Vec::new()),
            Some(ids) => Ok(self.store.tenants_by_id(scope, &ids).await?),
            None => self.all_tenants(scope).await,
        }
    }

    /// Every tenant, in slug order (the directory is small next to tenant data).
    pub(super) async fn all_tenants(
        &self,
        scope: &PlatformScope,
    ) -> Result<Vec<Tenant>, PlatformError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .tenants(
                    scope,
                    Page {
                        after,
                        limit: MAX_PAGE,
                    },
                )
                .await?;
            let done = page.len() < MAX_PAGE as usize;
            after = page.last().map(|t| t.slug.clone());
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Makes a new data key current for the tenant. Returns its version.
    pub async fn rotate_data_key(
        &self,
        principal: &Principal,
        slug: &Slug,
        reason: Option<String>,
    ) -> Result<u32, PlatformError> {
        validate_reason(Action::KeyRotate, reason.as_deref())?;
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageKeys)
            .await?;
        let entry = NewEntry::by(&scope, Action::KeyRotate, key_target("data-key", 0), reason);
        let event = self.recorder.event(&scope, entry).await?;
        let version = self
            .keyring
            .rotate_dek(&scope, |v| event.about(key_target("data-key", v)))
            .await?;
        tracing::info!(tenant = %slug, version, actor = %principal.label(), "data key rotated");
        Ok(version)
    }

    /// Replaces the tenant's key-encryption key (optionally moving it to `provider`)
    /// and re-wraps its data keys. Returns the new KEK version.
    pub async fn rotate_kek(
        &self,
        principal: &Principal,
        slug: &Slug,
        provider: Option<&str>,
        reason: Option<String>,
    ) -> Result<u32, PlatformError> {
        validate_reason(Action::KeyKekRotate, reason.as_deref())?;
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageKeys)
            .await?;
        let kind = "key-encryption-key";
        let entry = NewEntry::by(&scope, Action::KeyKekRotate, key_target(kind, 0), reason);
        let event = self.recorder.event(&scope, entry).await?;
        let version = self
            .keyring
            .rotate_kek(&scope, provider, |v| event.about(key_target(kind, v)))
            .await?;
        tracing::info!(tenant = %slug, version, actor = %principal.label(), "key-encryption key rotated");
        Ok(version)
    }

    /// Destroys all of the tenant's keys: every ciphertext it has becomes unreadable.
    /// Irreversible; the reason is recorded in the audit trail.
    pub async fn shred_tenant_keys(
        &self,
        principal: &Principal,
        slug: &Slug,
        reason: String,
    ) -> Result<(), PlatformError> {
        validate_reason(Action::KeyShred, Some(&reason))?;
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageKeys)
            .await?;
        let target = Target::of("tenant", scope.tenant().as_uuid().to_string());
        let entry = NewEntry::by(&scope, Action::KeyShred, target, Some(reason));
        let event = self.recorder.event(&scope, entry).await?;
        self.keyring.destroy(&scope, &event).await?;
        tracing::warn!(tenant = %slug, actor = %principal.label(), "tenant keys crypto-shredded");
        Ok(())
    }

    /// Moves up to `budget` of the tenant's objects to its current data key.
    pub async fn reencrypt(
        &self,
        principal: &Principal,
        slug: &Slug,
        budget: u32,
    ) -> Result<ReencryptProgress, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageKeys)
            .await?;
        Ok(self.objects.reencrypt_step(&scope, budget).await?)
    }

    /// Drops unwrapped keys cached past `keys.cache_ttl_secs` (called on a timer, so an
    /// expired key is wiped whether or not it is read again). Returns how many.
    pub fn drop_expired_keys(&self) -> usize {
        self.keyring.drop_expired_keys()
    }

    /// Clears a pending-work mark; a failure only means one more visit next round.
    pub(super) async fn work_done(&self, home: &TenantScope, kind: PendingWork, done: u64) {
        if let Err(e) = self.store.work_done(home, kind, done).await {
            tracing::warn!(error = %e, "clearing a pending-work mark failed; the tenant is visited again");
        }
    }

    /// How many unwrapped tenant keys this process holds in memory now.
    pub fn cached_keys(&self) -> usize {
        self.keyring.cached_keys()
    }

    /// One round of background re-encryption over every tenant, moving at most
    /// `budget` objects in all. Returns how many moved and how many remain.
    pub async fn reencrypt_round(&self, budget: u32) -> Result<(u64, u64), PlatformError> {
        let scope = access::authorize_platform(&access::system(), PlatformAction::ManageKeys)?;
        let (mut moved, mut remaining) = (0u64, 0u64);
        for t in self.tenants_with(&scope, PendingWork::Reencrypt).await? {
            let left = u32::try_from(u64::from(budget).saturating_sub(moved)).unwrap_or(0);
            if left == 0 {
                // Budget spent: the tenants not visited may still have work; say so,
                // so the next round comes soon, without querying each of them now.
                return Ok((moved, remaining.max(1)));
            }
            let home = access::provisioning_scope(&scope, &t);
            match self.objects.reencrypt_step(&home, left).await {
                Ok(p) => {
                    moved += p.values + p.blobs;
                    remaining += p.remaining;
                    if p.remaining == 0 {
                        self.work_done(&home, PendingWork::Reencrypt, u64::from(p.current_key))
                            .await;
                    }
                }
                // Shredded tenants have nothing to move, now or ever.
                Err(crate::objects::ObjectError::Keyring(crate::keys::KeyringError::Destroyed)) => {
                    self.work_done(&home, PendingWork::Reencrypt, u64::MAX)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(tenant = %t.slug, error = %super::chain(&e), "re-encryption step failed; will retry");
                }
            }
        }
        Ok((moved, remaining))
    }

    /// Stores a tenant secret (an SSO client secret, a webhook secret), sealed. The
    /// value can never be read back through the API.
    pub async fn set_tenant_secret(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &SecretName,
        value: &SecretBytes,
    ) -> Result<SecretInfo, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::ManageSecrets)
            .await?;
        let scope = scope.writable()?;
        let row = self
            .objects
            .put_value(
                &scope,
                Kind::TenantSecret,
                name.as_str(),
                value.expose(),
                crate::audit::entry::Action::TenantSecretSet,
            )
            .await?;
        tracing::info!(tenant = %slug, secret = %name, version = row.version, actor = %principal.label(), "tenant secret set");
        Ok(SecretInfo {
            name: name.to_string(),
            version: row.version,
            key_version: row.dek_version,
        })
    }

    /// Opens a tenant secret (for the server's own use, e.g. an SSO client).
    pub async fn tenant_secret(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &str,
    ) -> Result<SecretBytes, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::LocalData)
            .await?;
        let (_, value) = self
            .objects
            .value(&scope, Kind::TenantSecret, name)
            .await?
            .ok_or(PlatformError::NotFound("secret"))?;
        Ok(value)
    }

    /// Stores a blob for the tenant, encrypted as it streams in.
    pub async fn put_blob(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<StoredBlob, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::LocalData)
            .await?;
        let scope = scope.writable()?;
        Ok(self.objects.put_blob(&scope, id, reader).await?)
    }

    /// Streams a tenant's blob, decrypted, into `writer`.
    pub async fn read_blob(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: &str,
        writer: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<u64, PlatformError> {
        let (_, scope) = self
            .tenant_scope(principal, slug, PlatformAction::LocalData)
            .await?;
        Ok(self.objects.read_blob(&scope, id, writer).await?)
    }
}
