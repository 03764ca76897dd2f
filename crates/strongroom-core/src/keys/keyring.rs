//! The key hierarchy of every tenant: root key (a provider) → key-encryption key (KEK,
//! per tenant, versioned) → data keys (DEK, per tenant, versioned) → ciphertexts.
//!
//! Only wrapped keys are stored. Unwrapped keys live in the bounded, expiring
//! [`KeyCache`]. Every data key has a seal budget (`keys.data_key_max_seals`) spent in
//! blocks reserved in storage, so the budget holds across processes and restarts; an
//! exhausted key is replaced automatically.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cache::{KeyCache, Slot};
use super::{DataKey, KeyError, KeyProvider, ObjectRef, aead, sealed};
use crate::access::TenantScope;
use crate::clock::SharedClock;
use crate::config::KeysConfig;
use crate::secret::SecretBytes;
use crate::store::{AuditEvent, KeyStore, StoreError, StoredDek, StoredKek, TenantKeys};
use crate::tenant::TenantId;

/// How long a provider health result gates writes before it is checked again.
const HEALTH_TTL: Duration = Duration::from_secs(2);

/// A keyring operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Cryptography or the key provider failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant's keys were destroyed: its data can no longer be read.
    #[error("the tenant's keys were destroyed (crypto-shredded); its data cannot be decrypted")]
    Destroyed,
    /// No provider of that name is configured.
    #[error("no key provider named `{0}` is configured")]
    UnknownProvider(String),
    /// A ciphertext names a key version the tenant does not have.
    #[error("no data key version {0}")]
    UnknownVersion(u32),
    /// The current data key's seal budget is spent: rotate it (an audited write, which
    /// the caller records) and ask again.
    #[error("data key {0} has sealed all it may; it must be rotated")]
    BudgetSpent(u32),
}

/// The configured key providers by name, and which one is the root.
#[derive(Clone)]
pub struct Providers {
    root: String,
    all: BTreeMap<String, Arc<dyn KeyProvider>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("root", &self.root)
            .field("names", &self.all.keys())
            .finish()
    }
}

impl Providers {
    /// Providers with `root` among them.
    pub fn new(
        root: &str,
        all: BTreeMap<String, Arc<dyn KeyProvider>>,
    ) -> Result<Self, KeyringError> {
        if !all.contains_key(root) {
            return Err(KeyringError::UnknownProvider(root.to_owned()));
        }
        Ok(Self {
            root: root.to_owned(),
            all,
        })
    }

    /// The root provider's name.
    pub fn root_name(&self) -> &str {
        &self.root
    }

    /// The root provider (wraps platform keys and, by default, tenant KEKs).
    pub fn root(&self) -> Arc<dyn KeyProvider> {
        self.all[&self.root].clone()
    }

    /// A provider by name.
    pub fn get(&self, name: &str) -> Result<Arc<dyn KeyProvider>, KeyringError> {
        self.all
            .get(name)
            .cloned()
            .ok_or_else(|| KeyringError::UnknownProvider(name.to_owned()))
    }

    /// Names and descriptions of every provider.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.all
            .iter()
            .map(|(n, p)| (n.clone(), p.describe()))
            .collect()
    }

    /// Checks the root provider: what the whole deployment needs.
    pub async fn root_health(&self) -> Result<(), KeyError> {
        self.root()
            .health()
            .await
            .map_err(|e| KeyError::Unavailable(format!("root provider `{}`: {e}", self.root)))
    }

    /// Checks every provider other than the root (customer-owned tokens): each one's
    /// failure affects only the tenants whose keys it holds. The first failure wins.
    pub async fn others_health(&self) -> Result<(), KeyError> {
        for (name, p) in self.all.iter().filter(|(n, _)| **n != self.root) {
            p.health()
                .await
                .map_err(|e| KeyError::Unavailable(format!("provider `{name}`: {e}")))?;
        }
        Ok(())
    }

    /// Checks every provider; the first failure wins.
    pub async fn health(&self) -> Result<(), KeyError> {
        for (name, p) in &self.all {
            p.health()
                .await
                .map_err(|e| KeyError::Unavailable(format!("provider `{name}`: {e}")))?;
        }
        Ok(())
    }
}

/// Per-tenant keys: provisioning, sealing, opening, rotation, destruction.
pub struct Keyring {
    providers: Providers,
    store: Arc<dyn KeyStore>,
    cache: KeyCache,
    clock: SharedClock,
    max_seals: u64,
    budgets: Mutex<HashMap<(TenantId, u32), u64>>,
    health: Mutex<HashMap<String, (Instant, bool)>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

/// Context binding a wrapped KEK to its tenant and version.
fn kek_context(tenant: TenantId, version: u32) -> Vec<u8> {
    format!("tenant-kek:{}:{version}", tenant.as_uuid()).into_bytes()
}

/// Associated data binding a wrapped DEK to its tenant, its version and its KEK's.
fn dek_aad(tenant: TenantId, version: u32, kek_version: u32) -> Vec<u8> {
    let mut aad = b"strongroom/dek/v1\0".to_vec();
    aad.extend_from_slice(tenant.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&kek_version.to_be_bytes());
    aad
}

impl Keyring {
    /// A keyring over `store` using `providers`.
    pub fn new(
        providers: Providers,
        store: Arc<dyn KeyStore>,
        clock: SharedClock,
        config: &KeysConfig,
    ) -> Self {
        Self {
            providers,
            store,
            cache: KeyCache::new(
                Duration::from_secs(config.cache_ttl_secs),
                config.cache_capacity,
            ),
            clock,
            max_seals: config.data_key_max_seals,
            budgets: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
        }
    }

    /// The providers.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Makes KEK 1 (wrapped by `provider`) and DEK 1 (wrapped by the KEK) for a new
    /// tenant. Nothing is stored: the caller stores them with the tenant.
    pub async fn provision(
        &self,
        tenant: TenantId,
        provider: Option<&str>,
    ) -> Result<TenantKeys, KeyringError> {
        let name = provider.unwrap_or(self.providers.root_name()).to_owned();
        let p = self.providers.get(&name)?;
        let now = self.clock.now();
        let kek = aead::generate_key()?;
        let dek = aead::generate_key()?;
        let kek_row = StoredKek {
            version: 1,
            provider: name,
            wrapped: p.wrap(&kek, &kek_context(tenant, 1)).await?,
            created_at: now,
        };
        let dek_row = StoredDek {
            version: 1,
            kek_version: 1,
            wrapped: aead::seal(&kek, &dek_aad(tenant, 1, 1), dek.expose())?,
            created_at: now,
            seals_reserved: 0,
        };
        Ok(TenantKeys {
            keks: vec![kek_row],
            deks: vec![dek_row],
            destroyed_at: None,
        })
    }

    /// The tenant's stored keys, refusing destroyed ones.
    pub async fn keys(&self, scope: &TenantScope) -> Result<TenantKeys, KeyringError> {
        let keys = self.store.tenant_keys(scope).await?;
        if keys.destroyed_at.is_some() || keys.deks.is_empty() || keys.keks.is_empty() {
            self.cache.forget_tenant(scope.tenant());
            return Err(KeyringError::Destroyed);
        }
        Ok(keys)
    }

    /// Opens a sealed value for `object`, with whichever data key sealed it.
    pub async fn open_value(
        &self,
        scope: &TenantScope,
        object: &ObjectRef<'_>,
        sealed_value: &[u8],
    ) -> Result<SecretBytes, KeyringError> {
        let key = self
            .data_key(scope, sealed::key_version(sealed_value)?)
            .await?;
        Ok(SecretBytes::new(sealed::open(&key, object, sealed_value)?))
    }

    /// The current data key, for sealing: refuses when the tenant's provider is
    /// unavailable (no writes that could not be read back), and spends one seal of the
    /// key's budget; when the budget is exhausted it answers
    /// [`KeyringError::BudgetSpent`] and the caller rotates (see
    /// `objects::Objects::sealing_key`).
    pub async fn sealing_key(&self, scope: &TenantScope) -> Result<DataKey, KeyringError> {
        for _ in 0..8 {
            let keys = self.keys(scope).await?;
            self.require_provider(&keys).await?;
            let current = keys.deks.last().ok_or(KeyringError::Destroyed)?;
            if self.take_budget(scope.tenant(), current.version) {
                return self.unwrap_dek(scope, &keys, current).await;
            }
            let block = (self.max_seals / 16).clamp(1, 4096);
            let total = self
                .store
                .reserve_seals(scope, current.version, block)
                .await?;
            if total > self.max_seals {
                tracing::info!(tenant = %scope.tenant(), version = current.version, "data key seal budget spent");
                return Err(KeyringError::BudgetSpent(current.version));
            }
            self.add_budget(scope.tenant(), current.version, block);
        }
        Err(KeyError::Unavailable("could not obtain a data key with seal budget".into()).into())
    }

    /// The version of the tenant's current data key.
    pub async fn current_version(&self, scope: &TenantScope) -> Result<u32, KeyringError> {
        let keys = self.keys(scope).await?;
        keys.deks
            .last()
            .map(|d| d.version)
            .ok_or(KeyringError::Destroyed)
    }

    /// A data key by version, for opening. The stored keys are consulted on every call
    /// (one indexed read), so a shredding done by another process takes effect at once
    /// even though unwrapped keys are cached; the cache saves the provider round trip.
    pub async fn data_key(
        &self,
        scope: &TenantScope,
        version: u32,
    ) -> Result<DataKey, KeyringError> {
        let keys = self.keys(scope).await?;
        let dek = keys
            .deks
            .iter()
            .find(|d| d.version == version)
            .ok_or(KeyringError::UnknownVersion(version))?;
        self.unwrap_dek(scope, &keys, dek).await
    }

    async fn unwrap_dek(
        &self,
        scope: &TenantScope,
        keys: &TenantKeys,
        dek: &StoredDek,
    ) -> Result<DataKey, KeyringError> {
        if let Some(key) = self.cache.get(scope.tenant(), Slot::Dek(dek.version)) {
            return Ok(DataKey {
                version: dek.version,
                key,
            });
        }
        let kek = self.kek(scope, keys, dek.kek_version).await?;
        let key = aead::open(
            &kek,
            &dek_aad(scope.tenant(), dek.version, dek.kek_version),
            &dek.wrapped,
        )?;
        self.cache
            .put(scope.tenant(), Slot::Dek(dek.version), key.clone());
        Ok(DataKey {
            version: dek.version,
            key,
        })
    }

    async fn kek(
        &self,
        scope: &TenantScope,
        keys: &TenantKeys,
        version: u32,
    ) -> Result<SecretBytes, KeyringError> {
        if let Some(key) = self.cache.get(scope.tenant(), Slot::Kek(version)) {
            return Ok(key);
        }
        let row = keys
            .keks
            .iter()
            .find(|k| k.version == version)
            .ok_or(KeyringError::Destroyed)?;
        let provider = self.providers.get(&row.provider)?;
        let key = provider
            .unwrap(&row.wrapped, &kek_context(scope.tenant(), version))
            .await?;
        self.cache
            .put(scope.tenant(), Slot::Kek(version), key.clone());
        Ok(key)
    }

    /// Makes a new data key current; old ones stay readable. Returns the new version.
    /// Audited in the same transaction with the event `audit` makes for the new
    /// version (the recorder's event, completed with its target).
    pub async fn rotate_dek(
        &self,
        scope: &TenantScope,
        audit: impl FnOnce(u32) -> AuditEvent + Send,
    ) -> Result<u32, KeyringError> {
        let keys = self.keys(scope).await?;
        self.require_provider(&keys).await?;
        let kek_row = keys.keks.last().ok_or(KeyringError::Destroyed)?;
        let kek = self.kek(scope, &keys, kek_row.version).await?;
        let version = keys.deks.last().map_or(1, |d| d.version + 1);
        let dek = aead::generate_key()?;
        let row = StoredDek {
            version,
            kek_version: kek_row.version,
            wrapped: aead::seal(
                &kek,
                &dek_aad(scope.tenant(), version, kek_row.version),
                dek.expose(),
            )?,
            created_at: self.clock.now(),
            seals_reserved: 0,
        };
        match self.store.add_data_key(scope, &row, &audit(version)).await {
            Ok(()) => {
                tracing::info!(tenant = %scope.tenant(), version, "data key rotated");
                Ok(version)
            }
            // Someone else rotated at the same moment; theirs is current.
            Err(StoreError::Conflict { .. }) => Ok(version),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the tenant's KEK (optionally moving it to another provider) and re-wraps
    /// every data key with the new one. Ciphertexts are untouched. Returns the new
    /// KEK version.
    pub async fn rotate_kek(
        &self,
        scope: &TenantScope,
        provider: Option<&str>,
        audit: impl FnOnce(u32) -> AuditEvent + Send,
    ) -> Result<u32, KeyringError> {
        let keys = self.keys(scope).await?;
        let old = keys.keks.last().ok_or(KeyringError::Destroyed)?;
        let name = provider.unwrap_or(&old.provider).to_owned();
        let p = self.providers.get(&name)?;
        let version = old.version + 1;
        let kek = aead::generate_key()?;
        let row = StoredKek {
            version,
            provider: name,
            wrapped: p.wrap(&kek, &kek_context(scope.tenant(), version)).await?,
            created_at: self.clock.now(),
        };
        let mut rewrapped = Vec::with_capacity(keys.deks.len());
        for dek in &keys.deks {
            let plain = self.unwrap_dek(scope, &keys, dek).await?;
            let wrapped = aead::seal(
                &kek,
                &dek_aad(scope.tenant(), dek.version, version),
                plain.key.expose(),
            )?;
            rewrapped.push(StoredDek {
                kek_version: version,
                wrapped,
                ..dek.clone()
            });
        }
        self.store
            .replace_kek(scope, &row, &rewrapped, &audit(version))
            .await?;
        self.cache.forget_tenant(scope.tenant());
        tracing::info!(tenant = %scope.tenant(), version, "key-encryption key rotated; data keys re-wrapped");
        Ok(version)
    }

    /// Drops cached keys past their TTL (see the cache); the server calls it on a timer.
    pub fn drop_expired_keys(&self) -> usize {
        self.cache.purge_expired()
    }

    /// How many unwrapped keys are held in memory now (for monitoring, and for tests
    /// that check keys are let go).
    pub fn cached_keys(&self) -> usize {
        self.cache.len()
    }

    /// Destroys every key of the tenant. Irreversible: all its data becomes unreadable.
    /// Audited (`key.shred`) in the same transaction with `audit`.
    pub async fn destroy(
        &self,
        scope: &TenantScope,
        audit: &AuditEvent,
    ) -> Result<(), KeyringError> {
        let destroyed = self.store.destroy_tenant_keys(scope, audit).await;
        // Whatever the store answered — the destruction may have committed and only a
        // later step (purging the database journal) failed — no key of the tenant
        // stays usable from memory.
        self.cache.forget_tenant(scope.tenant());
        self.budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, _), _| *t != scope.tenant());
        destroyed?;
        tracing::warn!(tenant = %scope.tenant(), "tenant keys destroyed (crypto-shredded)");
        Ok(())
    }

    /// Refuses writes while the provider holding the tenant's KEK is unavailable (its
    /// health is re-checked at most every two seconds).
    async fn require_provider(&self, keys: &TenantKeys) -> Result<(), KeyringError> {
        let name = &keys.keks.last().ok_or(KeyringError::Destroyed)?.provider;
        let cached = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        let ok = match cached {
            Some((at, ok)) if at.elapsed() < HEALTH_TTL => ok,
            _ => {
                let ok = self.providers.get(name)?.health().await.is_ok();
                self.health
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.clone(), (Instant::now(), ok));
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(KeyError::Unavailable(format!(
                "key provider `{name}` is unavailable; writes are refused"
            ))
            .into())
        }
    }

    fn take_budget(&self, tenant: TenantId, version: u32) -> bool {
        let mut b = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        match b.get_mut(&(tenant, version)) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn add_budget(&self, tenant: TenantId, version: u32, n: u64) {
        *self
            .budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((tenant, version))
            .or_insert(0) += n;
    }
}
