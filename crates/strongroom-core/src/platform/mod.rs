//! The platform: the one facade the CLI and the HTTP edge both call.
//!
//! It holds the store, the key provider, the clock, the token service and the password
//! pool, and applies the rules (authorization first, then validation against the
//! deployment's configuration, then storage). Because the CLI and the API go through
//! the same methods, they cannot drift apart.

mod applications;
mod audit;
mod error;
mod invitations;
mod keys;
mod mfa;
mod operators;
mod passkeys;
mod records;
mod saml;
mod sso;
mod support;
mod users;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::access::{self, PlatformAction, Principal};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::identity::operator::OperatorId;
use crate::identity::password::PasswordHasher;
use crate::identity::token::{Jwks, SigningKey, TokenError, TokenService};
use crate::keys::{KeyProvider, Keyring, Providers};
use crate::objects::Objects;
use crate::secret::SecretBytes;
use crate::store::{BlobStore, Page, Store, StoreError, StoredSigningKey};
use crate::tenant::{NewTenant, Slug, Tenant, TenantError, TenantId, TenantStatus};

pub use applications::{OAuthError, OAuthToken, RegisteredApplication};
pub use audit::{AuditExport, AuditPage, AuditStatus, ExportFormat, PLATFORM_TRAIL};
pub use error::{Cause, PlatformError, chain};
pub use invitations::Invitation;
pub use keys::{DataKeyStatus, SecretInfo, TenantKeyStatus};
pub use mfa::{Reauth, RecoveryCodes, SecondFactor, TotpEnrolment};
pub use records::{
    AttachmentView, HistoryItem, MAX_ATTACHMENTS, MAX_REVISIONS, RecordQuery, RecordSummary,
    RecordTypeView, RecordView, SignRequest, SignatureView, VerifyFailure, VerifyReport,
    VersionView, etag,
};
pub use saml::{SamlInput, SamlView};
pub use sso::{
    BINDING_COOKIE_PREFIX, CallbackOutcome, CallbackQuery, FlowStart, OidcInput, OidcView,
    ProviderInput, ProviderView, SsoReauthEvidence, SsoSettingsView, binding_cookie_name,
};
pub use support::{MAX_GRANT_HOURS, SupportGrantView, SupportRequest};
pub use users::{Credential, UserPatch, UserTokens};

/// Largest page a list endpoint returns.
pub const MAX_PAGE: u32 = 100;

/// The operator principal of verified operator-token claims.
fn operator_from_claims(claims: &crate::identity::token::Claims) -> Result<Principal, TokenError> {
    let id = claims
        .sub
        .strip_prefix("operator:")
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or(TokenError::Malformed)?;
    Ok(access::operator(OperatorId::from_uuid(id)))
}

/// The running deployment's services, shared by every request.
pub struct Platform {
    store: Arc<dyn Store>,
    providers: Providers,
    keyring: Arc<Keyring>,
    objects: Objects,
    recorder: Arc<crate::audit::recorder::Recorder>,
    audit: crate::audit::log::AuditLogs,
    clock: SharedClock,
    /// Swapped whole when signing keys are rotated (by any process sharing the store).
    tokens: std::sync::RwLock<Arc<TokenService>>,
    issuer: String,
    passwords: PasswordHasher,
    regions: BTreeSet<crate::tenant::RegionName>,
    operator_ttl_secs: u64,
    user_ttl_secs: u64,
    session_ttl_secs: u64,
    reload_secs: u64,
    audit_limits: crate::config::AuditConfig,
    /// Slots for concurrent audit exports (`audit.max_concurrent_exports`).
    export_slots: Arc<tokio::sync::Semaphore>,
    /// Exports running per tenant (at most one each).
    exports_by_tenant: audit::ExportsByTenant,
    throttle: crate::identity::throttle::SignInThrottle,
    /// Serialises each account's second-factor checks so a TOTP code cannot be spent
    /// twice by racing sign-ins (read, verify and write happen under it). Per account,
    /// so that one tenant's slow key provider cannot hold up everyone's sign-ins.
    mfa_lock: AccountLocks,
    webauthn: webauthn_rs::prelude::Webauthn,
    ceremonies: passkeys::Ceremonies,
    readiness: tokio::sync::Mutex<Option<(std::time::Instant, Readiness)>>,
    require_operator_totp: bool,
    max_attachment_bytes: u64,
    /// Compiled record-type versions.
    type_cache: records::TypeCache,
    /// Tenants' MFA policies as last read (see `mfa_required_now`).
    mfa_policies: std::sync::Mutex<
        std::collections::HashMap<crate::tenant::TenantId, (std::time::Instant, mfa::MfaPolicy)>,
    >,
    /// Single sign-on: the transport, cached provider metadata, flows in progress.
    sso: sso::SsoRuntime,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("keys", &self.providers)
            .finish_non_exhaustive()
    }
}

/// One async lock per account (`<tenant id>/<user id>`, `@operator/<e-mail>`), made on
/// first use; unused ones are dropped once there are more than a thousand.
#[derive(Default)]
pub(super) struct AccountLocks(
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
);

impl AccountLocks {
    /// Waits for, and holds, the account's lock.
    pub(super) async fn lock(&self, account: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() > 1024 {
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            map.entry(account).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// Longest a readiness check waits for one dependency.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// `check`, or a failure naming `what` if it takes longer than [`HEALTH_TIMEOUT`].
async fn bounded(
    what: &'static str,
    check: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(HEALTH_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {HEALTH_TIMEOUT:?}")))
}

/// How long a readiness result is reused: probes every second must not become a
/// database and HSM round trip each.
const READINESS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The state of each dependency, for `/readyz`.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `Ok` or why the databases are not usable.
    pub database: Result<(), String>,
    /// `Ok` or why the root key provider is not usable.
    pub keys: Result<(), String>,
    /// `Ok` or why a customer-owned key provider is not usable: only the tenants whose
    /// keys it holds are affected (their requests answer 503), so this does not make
    /// the deployment unready.
    pub customer_keys: Result<(), String>,
}

impl Readiness {
    /// True when every dependency is usable.
    pub fn is_ready(&self) -> bool {
        self.database.is_ok() && self.keys.is_ok()
    }
}

impl Platform {
    /// Assembles the platform, creating the token-signing key on first start. The
    /// signing key is wrapped by the root provider.
    #[allow(clippy::too_many_lines)] // one line per field of the platform
    pub async fn open(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        providers: Providers,
        clock: SharedClock,
        config: &Config,
    ) -> Result<Self, PlatformError> {
        let tokens = load_token_service(
            &*store,
            &*providers.root(),
            clock.clone(),
            config.tokens.issuer.clone(),
        )
        .await?;
        let passwords = PasswordHasher::new(&config.passwords)?;
        let keyring = Arc::new(Keyring::new(
            providers.clone(),
            store.clone(),
            clock.clone(),
            &config.keys,
        ));
        let recorder = Arc::new(crate::audit::recorder::Recorder::new(
            store.clone(),
            providers.root(),
            clock.clone(),
        ));
        let objects = Objects::new(keyring.clone(), recorder.clone(), store.clone(), blobs);
        let audit = crate::audit::log::AuditLogs::new(
            store.clone(),
            providers.root(),
            &config.tokens.issuer,
        );
        Ok(Self {
            throttle: crate::identity::throttle::SignInThrottle::new(
                &config.passwords,
                clock.clone(),
            ),
            mfa_lock: AccountLocks::default(),
            webauthn: passkeys::relying_party(&config.webauthn)?,
            ceremonies: passkeys::Ceremonies::default(),
            readiness: tokio::sync::Mutex::new(None),
            require_operator_totp: config.operators.require_totp,
            max_attachment_bytes: config.limits.max_attachment_bytes,
            type_cache: records::TypeCache::default(),
            mfa_policies: std::sync::Mutex::new(Default::default()),
            sso: sso::SsoRuntime::new(config),
            store,
            providers,
            keyring,
            objects,
            recorder,
            audit,
            clock,
            tokens: std::sync::RwLock::new(Arc::new(tokens)),
            issuer: config.tokens.issuer.clone(),
            passwords,
            regions: config.regions.keys().cloned().collect(),
            operator_ttl_secs: config.tokens.operator_ttl_secs,
            user_ttl_secs: config.tokens.user_ttl_secs,
            session_ttl_secs: config.tokens.session_ttl_secs,
            reload_secs: config.tokens.reload_secs,
            audit_limits: config.audit.clone(),
            export_slots: Arc::new(tokio::sync::Semaphore::new(
                config.audit.max_concurrent_exports,
            )),
            exports_by_tenant: Arc::default(),
        })
    }

    /// Checks the databases and the root key provider (and, for information, the
    /// customer-owned providers), reusing a result younger than two seconds.
    pub async fn readiness(&self) -> Readiness {
        let mut cached = self.readiness.lock().await;
        if let Some((at, r)) = cached.as_ref()
            && at.elapsed() < READINESS_TTL
        {
            return r.clone();
        }
        // Each check is bounded: a hung token answers "no answer", not never.
        let (database, keys, customer) = tokio::join!(
            bounded("database", async {
                self.store.health().await.map_err(|e| e.to_string())
            }),
            bounded("root key provider", async {
                self.providers
                    .root_health()
                    .await
                    .map_err(|e| e.to_string())
            }),
            bounded("customer key providers", async {
                self.providers
                    .others_health()
                    .await
                    .map_err(|e| e.to_string())
            })
        );
        let r = Readiness {
            database,
            keys,
            customer_keys: customer,
        };
        *cached = Some((std::time::Instant::now(), r.clone()));
        r
    }

    /// Largest record attachment accepted (`limits.max_attachment_bytes`).
    pub fn max_attachment_bytes(&self) -> u64 {
        self.max_attachment_bytes
    }

    /// The key providers (name, description), for status output.
    pub fn key_providers(&self) -> Vec<(String, String)> {
        self.providers.describe()
    }

    /// Creates a tenant in a declared region.
    pub async fn create_tenant(
        &self,
        principal: &Principal,
        new: NewTenant,
    ) -> Result<Tenant, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageTenants)?;
        if !self.regions.contains(&new.region) {
            return Err(TenantError::UnknownRegion(new.region.to_string()).into());
        }
        let provider = match new.key_provider.as_deref() {
            None => self.providers.root_name().to_owned(),
            Some(p) if self.providers.get(p).is_ok() => p.to_owned(),
            Some(p) => {
                return Err(PlatformError::Invalid {
                    field: Some("key_provider"),
                    message: format!("no key provider named `{p}` is configured"),
                });
            }
        };
        let tenant = Tenant {
            id: TenantId::generate(),
            slug: new.slug,
            display_name: new.display_name,
            region: new.region,
            status: TenantStatus::Active,
            created_at: self.clock.now(),
        };
        // Keys first: if the provider is unavailable, nothing is created.
        let keys = self.keyring.provision(tenant.id, Some(&provider)).await?;
        let home = access::provisioning_scope(&scope, &tenant);
        let target = crate::audit::entry::Target::of("tenant", tenant.slug.to_string());
        let entry = crate::audit::entry::NewEntry::by(
            &home,
            crate::audit::entry::Action::TenantCreate,
            target,
            None,
        );
        let mut event = self.recorder.event(&home, entry).await?;
        event.at = tenant.created_at;
        let platform_event = self
            .platform_event(
                &scope,
                crate::audit::entry::Action::TenantCreate,
                target_of(&tenant),
                None,
            )
            .await?;
        self.store
            .create_tenant(&scope, &tenant, &home, &keys, &event, &platform_event)
            .await?;
        tracing::info!(tenant = %tenant.slug, region = %tenant.region, key_provider = %provider, actor = %principal.label(), "tenant created");
        Ok(tenant)
    }

    /// Reads one tenant.
    pub async fn tenant(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Tenant, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ReadTenants)?;
        self.store
            .tenant(&scope, slug)
            .await?
            .ok_or(PlatformError::NotFound("tenant"))
    }

    /// Lists tenants in slug order, `limit` capped at [`MAX_PAGE`].
    pub async fn tenants(
        &self,
        principal: &Principal,
        after: Option<Slug>,
        limit: u32,
    ) -> Result<Vec<Tenant>, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ReadTenants)?;
        let page = Page {
            after,
            limit: limit.clamp(1, MAX_PAGE),
        };
        Ok(self.store.tenants(&scope, page).await?)
    }

    /// Checks that a tenant's home exists in its region's storage.
    pub async fn tenant_storage_ok(
        &self,
        principal: &Principal,
        tenant: &Tenant,
    ) -> Result<bool, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ReadTenants)?;
        let home = access::provisioning_scope(&scope, tenant);
        Ok(self.store.tenant_home_exists(&home).await?)
    }

    /// The public keys that verify this deployment's tokens.
    pub fn jwks(&self) -> Jwks {
        self.tokens().jwks()
    }

    /// The current token service.
    fn tokens(&self) -> Arc<TokenService> {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the signing keys (a rotation by the CLI or another server): the newest
    /// signs, all verify. Returns whether the active key changed.
    pub async fn reload_signing_keys(&self) -> Result<bool, PlatformError> {
        // Revocations first, from the public rows alone: even if unwrapping the keys
        // below fails (root provider down), a revoked key stops verifying now.
        let live: std::collections::HashSet<String> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| k.kid)
            .collect();
        self.tokens().keep_only(&live);
        let fresh = load_token_service(
            &*self.store,
            &*self.providers.root(),
            self.clock.clone(),
            self.issuer.clone(),
        )
        .await?;
        let mut current = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let changed = current.active_kid() != fresh.active_kid()
            || current.jwks().keys.len() != fresh.jwks().keys.len();
        if changed {
            tracing::info!(kid = %fresh.active_kid(), "token signing keys reloaded");
            *current = Arc::new(fresh);
        }
        Ok(changed)
    }

    /// Deletes keys retired long enough ago that no token they signed can still be
    /// valid: a key stops signing when its successor is created (plus a reload interval
    /// for other processes), and tokens live at most the longest configured lifetime
    /// (plus clock-skew leeway).
    async fn prune_signing_keys(&self) -> Result<(), PlatformError> {
        let keys = self.store.signing_keys().await?; // newest first
        let lifetime = self.operator_ttl_secs.max(self.user_ttl_secs) + self.reload_secs + 120;
        let cutoff = self.clock.now()
            - time::Duration::seconds(i64::try_from(lifetime).unwrap_or(i64::MAX / 2));
        for pair in keys.windows(2) {
            let (successor, retired) = (&pair[0], &pair[1]);
            if successor.created_at < cutoff {
                self.store.delete_signing_key(&retired.kid).await?;
                tracing::info!(kid = %retired.kid, "retired token signing key removed");
            }
        }
        Ok(())
    }
}

/// The platform-trail target naming a tenant.
fn target_of(tenant: &Tenant) -> crate::audit::entry::Target {
    crate::audit::entry::Target::of("tenant", tenant.slug.to_string())
}

/// Context a signing key is wrapped under: binds the wrapped bytes to their key id.
fn signing_key_context(kid: &str) -> Vec<u8> {
    format!("platform-signing-key:{kid}").into_bytes()
}

async fn load_token_service(
    store: &dyn Store,
    keys: &dyn KeyProvider,
    clock: SharedClock,
    issuer: String,
) -> Result<TokenService, PlatformError> {
    let live = |keys: Vec<StoredSigningKey>| -> Vec<StoredSigningKey> {
        keys.into_iter()
            .filter(|k| k.revoked_at.is_none())
            .collect()
    };
    let mut stored = live(store.signing_keys().await?);
    if stored.is_empty() {
        let (key, pkcs8) = SigningKey::generate().map_err(PlatformError::internal_from)?;
        let record = StoredSigningKey {
            kid: key.kid().to_owned(),
            public_key: key.public_key(),
            wrapped_private_key: keys.wrap(&pkcs8, &signing_key_context(key.kid())).await?,
            created_at: clock.now(),
            revoked_at: None,
        };
        match store
            .insert_signing_key(&access::system_scope(), &record, None)
            .await
        {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        stored = live(store.signing_keys().await?);
    }
    let mut loaded = Vec::with_capacity(stored.len());
    for s in &stored {
        let pkcs8: SecretBytes = keys
            .unwrap(&s.wrapped_private_key, &signing_key_context(&s.kid))
            .await?;
        let key = SigningKey::from_pkcs8(&pkcs8).map_err(PlatformError::internal_from)?;
        if key.kid() != s.kid {
            return Err(PlatformError::internal(format!(
                "signing key {} does not match its id",
                s.kid
            )));
        }
        loaded.push(key);
    }
    let mut loaded = loaded.into_iter();
    let active = loaded
        .next()
        .ok_or_else(|| PlatformError::internal("no signing key"))?;
    Ok(TokenService::new(issuer, active, loaded.collect(), clock))
}
