//! Single sign-on by OpenID Connect: a tenant administrator's identity providers, the
//! browser's round trip (authorization code with PKCE, `state` and `nonce`), the
//! verification of the ID token, and the re-authentication at the provider that an
//! SSO user's electronic signature needs (21 CFR 11.200: `prompt=login`, `max_age=0`,
//! an `auth_time` no older than the challenge, the nonce bound to what is signed).
//!
//! Flows in progress are held in memory on the node that started them (like passkey
//! ceremonies), bounded in number and time; the browser is bound to its flow by a
//! cookie whose hash the flow keeps, so a callback URL is useless in another browser
//! (login CSRF) and works once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    HttpRequest, HttpResponse, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::users::{new_refresh_token, refresh_hash, user_target};
use super::{Platform, PlatformError, UserTokens};
use crate::access::rbac::{Permission, Role, permissions_of};
use crate::access::{self, Principal, TenantScope};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::identity::Email;
use crate::identity::saml::SamlEngine;
use crate::identity::sso::{
    Asserted, IdpTransport, IssuerPolicy, MAX_BREAK_GLASS, MAX_PROVIDERS, OidcSettings, Protocol,
    Provider, ProviderName, SigningIntent, SsoError, SsoSettings, link_id,
};
use crate::identity::user::{StoredSession, User, UserId, UserStatus};
use crate::objects::Kind;
use crate::store::{NewUserRow, UserChange};
use crate::tenant::{Slug, Tenant, TenantId};

/// Kind and id of the sealed SSO settings.
const SETTINGS_KIND: Kind = Kind::TenantPolicy;
const SETTINGS_ID: &str = "sso";
/// Most flows in progress on this node, per tenant and in all.
const MAX_FLOWS_PER_TENANT: usize = 1_000;
const MAX_FLOWS: usize = 10_000;
/// Live (unfinished) sign-in flows per client address.
const MAX_LIVE_PER_ADDRESS: usize = 16;
/// Signature re-authentications in progress (and completed, unspent) per session.
const MAX_SIGN_FLOWS_PER_SESSION: usize = 4;
/// Cached provider documents, in all (the cache is emptied when it is full).
const MAX_CACHED_PROVIDERS: usize = 1_024;
/// How long a tenant's settings are reused on the sign-in paths (a change made on
/// another node is seen within this).
const SETTINGS_TTL: Duration = Duration::from_secs(5);
/// A provider whose discovery failed is not asked again for this long.
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// How long a completed re-authentication may wait for its signature.
const REAUTH_TTL: Duration = Duration::from_secs(300);
/// A provider's discovery document is re-read after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Keys are re-fetched for an unknown `kid` at most this often per provider.
const JWKS_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// Prefix of the browser-binding cookie's name (the rest names the flow). `__Host-`:
/// the browser accepts it only from this origin, over HTTPS, for `Path=/`, so no
/// sibling domain can plant one (cookie tossing).
pub const BINDING_COOKIE_PREFIX: &str = "__Host-sr_sso_";

/// The server-wide SSO machinery: the transport, what the operator allows, cached
/// provider metadata and the flows in progress.
pub(super) struct SsoRuntime {
    pub(super) transport: Option<Arc<dyn IdpTransport>>,
    /// XML signatures and encryption for SAML (the server's xmlsec1 engine).
    pub(super) saml: Option<Arc<dyn SamlEngine>>,
    /// SAML assertions already used (SHA-256 of issuer and id → until when), per
    /// tenant.
    pub(super) seen_assertions: Mutex<HashMap<TenantId, HashMap<[u8; 32], i64>>>,
    pub(super) policy: IssuerPolicy,
    pub(super) public_url: String,
    pub(super) skew: i64,
    pub(super) flow_ttl: Duration,
    per_address: u32,
    providers: Mutex<HashMap<String, Arc<CachedProvider>>>,
    /// Providers whose discovery failed lately (not asked again for a while).
    failures: Mutex<HashMap<String, Instant>>,
    flows: Mutex<HashMap<String, Flow>>,
    reauths: Mutex<HashMap<String, Reauthenticated>>,
    /// SSO requests (starts and callbacks) per client address (/64 for IPv6) in the
    /// current minute.
    per_address_seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Tenants' settings as last read (every password sign-in asks whether SSO is
    /// required), reused for [`SETTINGS_TTL`] and dropped when this node changes them.
    settings: Mutex<HashMap<TenantId, (Instant, Arc<SsoSettings>)>>,
}

impl SsoRuntime {
    pub(super) fn new(config: &crate::config::Config) -> Self {
        let public_url = if config.sso.public_url.is_empty() {
            config.webauthn.origin.trim_end_matches('/').to_owned()
        } else {
            config.sso.public_url.clone()
        };
        Self {
            transport: None,
            saml: None,
            seen_assertions: Mutex::default(),
            policy: IssuerPolicy {
                allow_http_loopback: config.sso.allow_http_loopback,
                allowed_hosts: config.sso.allowed_hosts.clone(),
            },
            public_url,
            skew: i64::try_from(config.sso.clock_skew_secs).unwrap_or(5),
            flow_ttl: Duration::from_secs(config.sso.flow_ttl_secs),
            per_address: config.sso.per_address_per_minute,
            providers: Mutex::default(),
            failures: Mutex::default(),
            flows: Mutex::default(),
            reauths: Mutex::default(),
            per_address_seen: Mutex::default(),
            settings: Mutex::default(),
        }
    }

    pub(super) fn transport(&self) -> Result<Http, PlatformError> {
        self.transport
            .clone()
            .map(Http)
            .ok_or_else(|| PlatformError::unavailable("no transport to identity providers"))
    }

    /// Counts one SSO request from `client`: refused past `sso.per_address_per_minute`,
    /// so one address cannot fill the flow table or the audit trail.
    fn admit(&self, client: IpAddr) -> Result<(), PlatformError> {
        let key = crate::identity::throttle::throttle_address(client);
        let mut map = self
            .per_address_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(60));
            if map.len() > 50_000 {
                map.clear(); // a spread-out flood: forget rather than grow
            }
        }
        let entry = map.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 > self.per_address {
            let left = 60u64.saturating_sub(entry.0.elapsed().as_secs()).max(1);
            return Err(PlatformError::AtCapacity {
                what: "single sign-on requests from this address",
                retry_after_secs: left,
            });
        }
        Ok(())
    }

    /// Stores a flow under its `state`, dropping expired ones. Past the bounds nothing
    /// is evicted (one tenant's or one session's flood cannot push out anyone else's
    /// flows): the new flow is refused.
    pub(super) fn put_flow(&self, state: String, flow: Flow) -> Result<(), PlatformError> {
        let mut map = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.flow_ttl;
        map.retain(|_, f| f.started.elapsed() < ttl);
        let full = match &flow.purpose {
            Purpose::SignIn => {
                let (tenant, client) = (flow.tenant, flow.client);
                let sign_ins = || {
                    map.values()
                        .filter(|f| matches!(f.purpose, Purpose::SignIn))
                };
                // Live anonymous flows per address, per tenant and in all: one address
                // holds at most a handful, so filling a tenant takes many addresses.
                sign_ins().filter(|f| f.client == client).count() >= MAX_LIVE_PER_ADDRESS
                    || sign_ins().filter(|f| f.tenant == tenant).count() >= MAX_FLOWS_PER_TENANT
                    || sign_ins().count() >= MAX_FLOWS
            }
            Purpose::Sign { intent, .. } => {
                let session = &intent.session;
                map.values()
                    .filter(|f| matches!(&f.purpose, Purpose::Sign { intent: i, .. } if &i.session == session))
                    .count()
                    >= MAX_SIGN_FLOWS_PER_SESSION
            }
        };
        // Signatures' flows (authenticated, a few per session) have their own room.
        if full || map.len() >= 2 * MAX_FLOWS {
            return Err(table_full());
        }
        map.insert(state, flow);
        Ok(())
    }

    /// Takes (and so spends) the flow of `state`, if it is live.
    fn take_flow(&self, state: &str) -> Option<Flow> {
        let mut map = self.flows.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(state)
            .filter(|f| f.started.elapsed() < self.flow_ttl)
    }

    /// Keeps a completed re-authentication for its signature: at most a few per
    /// session (a newer one replaces the session's oldest), and never more than the
    /// table holds (then refused, not silently dropped).
    fn put_reauth(&self, challenge: String, r: Reauthenticated) -> Result<(), PlatformError> {
        let mut map = self.reauths.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, x| x.at.elapsed() < REAUTH_TTL);
        let mine: Vec<(String, Instant)> = map
            .iter()
            .filter(|(_, x)| x.intent.session == r.intent.session)
            .map(|(k, x)| (k.clone(), x.at))
            .collect();
        if mine.len() >= MAX_SIGN_FLOWS_PER_SESSION
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, at)| *at)
        {
            map.remove(oldest);
        }
        if map.len() >= MAX_FLOWS {
            return Err(table_full());
        }
        map.insert(challenge, r);
        Ok(())
    }

    /// Takes the completed re-authentication `challenge` if it is live.
    fn take_reauth(&self, challenge: &str) -> Option<Reauthenticated> {
        let mut map = self.reauths.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(challenge)
            .filter(|r| r.at.elapsed() < REAUTH_TTL)
    }
}

/// The answer when a table of SSO attempts has no room (a 429, retry in a minute).
fn table_full() -> PlatformError {
    PlatformError::AtCapacity {
        what: "single sign-on attempts",
        retry_after_secs: 60,
    }
}

/// openidconnect's HTTP seam over our [`IdpTransport`].
#[derive(Clone)]
pub(super) struct Http(Arc<dyn IdpTransport>);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = crate::identity::sso::IdpTransportError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let t = self.0.clone();
        Box::pin(async move { t.send(request).await })
    }
}

/// A provider's discovery document and keys, as last fetched.
struct CachedProvider {
    metadata: Mutex<CoreProviderMetadata>,
    /// The provider says its authorization responses carry `iss` (RFC 9207), so one
    /// that does not is refused.
    iss_in_responses: bool,
    fetched: Instant,
    keys_fetched: Mutex<Option<Instant>>,
}

/// A browser's round trip in progress.
pub(super) struct Flow {
    pub(super) tenant: TenantId,
    /// The client address that started it (IPv6: its /64).
    pub(super) client: IpAddr,
    pub(super) provider: ProviderName,
    pub(super) issuer: String,
    /// OIDC: the nonce; SAML: the AuthnRequest's id.
    pub(super) nonce: String,
    /// OIDC: the PKCE verifier (SAML: empty).
    pub(super) verifier: Zeroizing<String>,
    /// SHA-256 of the browser-binding cookie's value.
    pub(super) binding: [u8; 32],
    pub(super) started: Instant,
    /// When it started, seconds since the epoch (what `iat` and `auth_time` are judged
    /// against).
    pub(super) started_at: i64,
    pub(super) purpose: Purpose,
}

/// What a flow is for.
pub(super) enum Purpose {
    SignIn,
    Sign {
        challenge: String,
        intent: SigningIntent,
    },
}

/// A re-authentication at the provider, waiting for its signature.
struct Reauthenticated {
    intent: SigningIntent,
    provider: ProviderName,
    protocol: &'static str,
    auth_time: i64,
    /// SHA-256 of the ID token the provider returned.
    digest: [u8; 32],
    at: Instant,
}

/// How a signature's re-authentication at an identity provider went, for the
/// signature's record (`reauth`).
#[derive(Debug, Clone)]
pub struct SsoReauthEvidence {
    /// `oidc` or `saml`.
    pub protocol: &'static str,
    /// The provider.
    pub provider: String,
    /// When the person authenticated there (the ID token's `auth_time`, the
    /// assertion's `AuthnInstant`), RFC 3339.
    pub auth_time: String,
    /// SHA-256 (hex) of the ID token (OIDC) or of the decoded SAML response it returned.
    pub response_digest: String,
}

impl SsoReauthEvidence {
    /// The signature's `reauth` text: `oidc:<provider> auth_time=<RFC 3339>
    /// id_token_sha256=<hex>`, or `saml:<provider> auth_time=<RFC 3339>
    /// response_sha256=<hex>`.
    pub fn method(&self) -> String {
        let digest = if self.protocol == "saml" {
            "response_sha256"
        } else {
            "id_token_sha256"
        };
        format!(
            "{}:{} auth_time={} {digest}={}",
            self.protocol, self.provider, self.auth_time, self.response_digest
        )
    }
}

/// An identity provider as the tenant administrator gives it: every setting, the client
/// secret optional when replacing (kept if omitted).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    /// What the sign-in button says.
    pub display_name: String,
    /// Whether sign-ins through it are accepted (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Create unknown users at their first sign-in (default false).
    #[serde(default)]
    pub jit: bool,
    /// Link a first sign-in to the existing user with the provider's verified e-mail
    /// (default: true for OIDC, whose `email_verified` says so; false for SAML, which
    /// has no such signal — turn it on for an IdP whose users cannot choose their
    /// address).
    #[serde(default)]
    pub link_by_email: Option<bool>,
    /// Group → roles; when given, each sign-in sets the user's roles from their groups.
    #[serde(default)]
    pub group_roles: std::collections::BTreeMap<String, Vec<String>>,
    /// The OpenID Connect settings (give this or `saml`).
    #[serde(default)]
    pub oidc: Option<OidcInput>,
    /// The SAML 2.0 settings (give this or `oidc`).
    #[serde(default)]
    pub saml: Option<super::saml::SamlInput>,
}

fn default_true() -> bool {
    true
}

/// OpenID Connect settings as given (the secret write-only).
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcInput {
    /// The issuer URL (`https://…`; discovery is read from it).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret; omit to keep the stored one.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub client_secret: Option<crate::secret::SecretString>,
    /// Scopes besides `openid` (default `email`, `profile`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Claim holding the e-mail (default `email`).
    #[serde(default)]
    pub email_claim: Option<String>,
    /// Claim holding the full name (default `name`).
    #[serde(default)]
    pub name_claim: Option<String>,
    /// Claim holding the groups (default `groups`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Accepted ID-token algorithms (default `RS256`, `ES256`).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
}

impl std::fmt::Debug for OidcInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcInput")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A configured identity provider as shown (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderView {
    /// Its name in the tenant.
    pub name: String,
    /// What the sign-in button says.
    pub display_name: String,
    /// `oidc` or `saml`.
    pub protocol: &'static str,
    /// Whether sign-ins through it are accepted.
    pub enabled: bool,
    /// Just-in-time user creation.
    pub jit: bool,
    /// First sign-ins linked by verified e-mail.
    pub link_by_email: bool,
    /// Group → roles.
    pub group_roles: std::collections::BTreeMap<String, Vec<String>>,
    /// The issuer (OIDC) or the IdP's entity id (SAML).
    pub issuer: String,
    /// The callback to register at the provider: the redirect URI (OIDC) or the
    /// assertion consumer service URL (SAML, HTTP-POST).
    pub redirect_uri: String,
    /// Where a browser starts signing in through this provider.
    pub login_url: String,
    /// OIDC: its settings (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcView>,
    /// SAML: its settings and our service provider's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saml: Option<super::saml::SamlView>,
}

/// An OIDC provider's settings as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OidcView {
    /// Our client id.
    pub client_id: String,
    /// Always true: a secret is stored (it is never shown).
    pub client_secret_set: bool,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// The e-mail claim.
    pub email_claim: String,
    /// The name claim.
    pub name_claim: String,
    /// The groups claim.
    pub groups_claim: String,
    /// Accepted ID-token algorithms.
    pub algorithms: Vec<String>,
}

/// The tenant's SSO settings as shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoSettingsView {
    /// Local passwords refused except for `break_glass`.
    pub require_sso: bool,
    /// User ids that may still use a password.
    pub break_glass: Vec<String>,
    /// The identity providers.
    pub providers: Vec<ProviderView>,
}

/// What the end of a round trip produced.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// A sign-in: the same tokens as a password sign-in.
    SignedIn(UserTokens),
    /// A signature's re-authentication, to be used by its signature request.
    Reauthenticated {
        /// The challenge id to give as `sso_challenge`.
        challenge_id: String,
        /// The provider's `auth_time`, RFC 3339.
        auth_time: String,
    },
}

/// The start of a round trip: where to send the browser and the cookie that binds it.
#[derive(Debug)]
pub struct FlowStart {
    /// The provider's authorization URL.
    pub authorization_url: String,
    /// Name of the browser-binding cookie.
    pub cookie_name: String,
    /// Its value (random; only its hash is kept).
    pub cookie_value: String,
    /// Path the cookie is scoped to.
    pub cookie_path: String,
    /// Seconds the cookie (and the flow) lives.
    pub max_age_secs: u64,
    /// The round trip ends in a cross-site POST (SAML's HTTP-POST binding), so the
    /// cookie must be `SameSite=None` to come back with it (it stays `__Host-`,
    /// `Secure` and `HttpOnly`).
    pub cross_site_post: bool,
    /// For a signature's re-authentication: its challenge id.
    pub challenge_id: Option<String>,
}

/// The query of the provider's redirect back to us.
#[derive(Debug, Clone, Default)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// Our `state`.
    pub state: Option<String>,
    /// RFC 9207 `iss`.
    pub iss: Option<String>,
    /// An error the provider reported instead of a code.
    pub error: Option<String>,
    /// SAML: the `SAMLResponse` form value (base64).
    pub saml_response: Option<String>,
}

/// The name of the binding cookie of the flow with `state`.
pub fn binding_cookie_name(state: &str) -> String {
    let h = sha256(&[b"strongroom-sso-binding-name\n", state.as_bytes()]);
    format!("{BINDING_COOKIE_PREFIX}{}", hex::encode(&h[..8]))
}

pub(super) fn random_token() -> Result<String, PlatformError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| PlatformError::internal("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

pub(super) fn now_secs(p: &Platform) -> i64 {
    p.clock.now().unix_timestamp()
}

pub(super) fn refused(why: impl Into<String>) -> SsoError {
    SsoError::Refused(why.into())
}

impl From<SsoError> for PlatformError {
    fn from(e: SsoError) -> Self {
        match e {
            SsoError::Invalid(field, message) => PlatformError::Invalid {
                field: Some(field),
                message,
            },
            SsoError::Refused(why) => PlatformError::SsoRefused(why),
            SsoError::Unavailable(why) => PlatformError::IdpUnavailable(why),
            SsoError::Internal(why) => PlatformError::internal(why),
        }
    }
}

impl Platform {
    /// Sets the transport to identity providers (the server's HTTP client). Without
    /// one, SSO answers 503.
    pub fn set_idp_transport(&mut self, transport: Arc<dyn IdpTransport>) {
        self.sso.transport = Some(transport);
    }

    /// The tenant's SSO settings (none yet: the defaults).
    async fn sso_settings_of(
        &self,
        scope: &TenantScope,
    ) -> Result<(u64, SsoSettings), PlatformError> {
        let Some((version, bytes)) = self
            .objects
            .value(scope, SETTINGS_KIND, SETTINGS_ID)
            .await?
        else {
            return Ok((0, SsoSettings::default()));
        };
        let s = serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("SSO settings unreadable: {e}")))?;
        Ok((version, s))
    }

    /// The SSO settings of a tenant, read with the server's own rights (sign-in paths).
    pub(super) async fn sso_settings_for(
        &self,
        tenant: &Tenant,
    ) -> Result<Arc<SsoSettings>, PlatformError> {
        let cached = self
            .sso
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant.id)
            .filter(|(at, _)| at.elapsed() < SETTINGS_TTL)
            .map(|(_, s)| s.clone());
        if let Some(s) = cached {
            return Ok(s);
        }
        let scope = access::provisioning_scope(&access::system_scope(), tenant);
        let fresh = Arc::new(self.sso_settings_of(&scope).await?.1);
        let mut map = self.sso.settings.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_PROVIDERS {
            map.clear();
        }
        map.insert(tenant.id, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Replaces the settings if they are still at `read`, with one `sso.configure`
    /// entry saying what changed.
    async fn store_sso_settings(
        &self,
        scope: &TenantScope,
        settings: &SsoSettings,
        read: u64,
        what: String,
    ) -> Result<(), PlatformError> {
        let scope = scope.clone().writable()?;
        let json =
            Zeroizing::new(serde_json::to_vec(settings).map_err(PlatformError::internal_from)?);
        if json.len() > crate::objects::MAX_VALUE_BYTES {
            return Err(PlatformError::Invalid {
                field: None,
                message: format!(
                    "the tenant's SSO settings would take {} bytes; at most {} fit (fewer providers or shorter mappings)",
                    json.len(),
                    crate::objects::MAX_VALUE_BYTES
                ),
            });
        }
        let stored = self
            .objects
            .put_value_if(
                &scope,
                SETTINGS_KIND,
                SETTINGS_ID,
                &json,
                Action::SsoConfigure,
                Some(what),
                read,
            )
            .await?;
        self.sso
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&scope.tenant());
        if !stored {
            return Err(PlatformError::Conflict(
                "the SSO settings were changed by someone else meanwhile; read them and try again"
                    .into(),
            ));
        }
        Ok(())
    }

    fn view(&self, slug: &Slug, s: &SsoSettings) -> SsoSettingsView {
        SsoSettingsView {
            require_sso: s.require_sso,
            break_glass: s.break_glass.iter().map(ToString::to_string).collect(),
            providers: s
                .providers
                .iter()
                .map(|p| self.provider_view(slug, p))
                .collect(),
        }
    }

    fn provider_view(&self, slug: &Slug, p: &Provider) -> ProviderView {
        let (redirect_uri, oidc, saml) = match &p.protocol {
            Protocol::Oidc(o) => (
                self.redirect_uri(slug, &p.name),
                Some(OidcView {
                    client_id: o.client_id.clone(),
                    client_secret_set: true,
                    scopes: o.scopes.clone(),
                    email_claim: o.email_claim.clone(),
                    name_claim: o.name_claim.clone(),
                    groups_claim: o.groups_claim.clone(),
                    algorithms: o.algorithms.clone(),
                }),
                None,
            ),
            Protocol::Saml(s) => (
                self.saml_acs_url(slug, &p.name),
                None,
                Some(self.saml_view(slug, &p.name, s)),
            ),
        };
        ProviderView {
            name: p.name.to_string(),
            display_name: p.display_name.clone(),
            protocol: p.protocol_name(),
            enabled: p.enabled,
            jit: p.jit,
            link_by_email: p.link_by_email,
            group_roles: p.group_roles.clone(),
            issuer: p.issuer().to_owned(),
            redirect_uri,
            login_url: format!("{}/v1/t/{slug}/sso/{}/login", self.sso.public_url, p.name),
            oidc,
            saml,
        }
    }

    fn redirect_uri(&self, slug: &Slug, name: &ProviderName) -> String {
        format!("{}/v1/t/{slug}/sso/{name}/callback", self.sso.public_url)
    }

    /// The scope for changing SSO settings: `users:manage` in a person's own
    /// interactive session (never an application or a delegated token: whoever
    /// chooses the identity provider chooses who can sign in as anyone), or the local
    /// administrator.
    async fn sso_admin(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<TenantScope, PlatformError> {
        match principal {
            Principal::Application(_) => {
                return Err(PlatformError::Forbidden(
                    "an application cannot change single sign-on: only an administrator's own session".into(),
                ));
            }
            Principal::User(u) if u.via().is_some() => {
                return Err(PlatformError::Forbidden(
                    "a delegated token cannot change single sign-on: only an administrator's own session".into(),
                ));
            }
            _ => {}
        }
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        Ok(scope)
    }

    /// The tenant's SSO settings (`users:manage`).
    pub async fn sso_settings(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<SsoSettingsView, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let (_, s) = self.sso_settings_of(&scope).await?;
        Ok(self.view(slug, &s))
    }

    /// Adds or replaces the identity provider `name` (`users:manage`): its discovery
    /// document is fetched and checked first, so a wrong issuer is found now rather
    /// than at someone's first sign-in.
    pub async fn put_sso_provider(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &ProviderName,
        input: ProviderInput,
    ) -> Result<ProviderView, PlatformError> {
        let scope = self.sso_admin(principal, slug).await?;
        let (read, mut settings) = self.sso_settings_of(&scope).await?;
        let existing = settings.provider(name).cloned();
        if existing.is_none() && settings.providers.len() >= MAX_PROVIDERS {
            return Err(PlatformError::Invalid {
                field: None,
                message: format!("a tenant has at most {MAX_PROVIDERS} identity providers"),
            });
        }
        if settings.require_sso
            && !input.enabled
            && !settings
                .providers
                .iter()
                .any(|p| p.enabled && &p.name != name)
        {
            return Err(PlatformError::Conflict(
                "the tenant requires SSO: keep an enabled identity provider, or turn require_sso off first".into(),
            ));
        }
        let provider = self
            .checked_provider(&scope, name, input, existing.as_ref())
            .await?;
        let what = describe(existing.as_ref(), &provider);
        settings.providers.retain(|p| &p.name != name);
        settings.providers.push(provider.clone());
        settings.providers.sort_by(|a, b| a.name.cmp(&b.name));
        self.store_sso_settings(&scope, &settings, read, what)
            .await?;
        tracing::info!(tenant = %slug, provider = %name, "identity provider configured");
        Ok(self.provider_view(slug, &provider))
    }

    /// The provider `input` describes, checked: its fields, and its discovery document
    /// (OIDC) or metadata (SAML) read now, so a wrong issuer is the administrator's
    /// input to fix (422) rather than an outage at someone's first sign-in.
    async fn checked_provider(
        &self,
        scope: &TenantScope,
        name: &ProviderName,
        input: ProviderInput,
        existing: Option<&Provider>,
    ) -> Result<Provider, PlatformError> {
        let provider = match (&input.oidc, &input.saml) {
            (Some(_), None) => provider_from(name, input, existing)?,
            (None, Some(_)) => self.saml_provider_from(name, input, existing).await?,
            _ => {
                return Err(PlatformError::Invalid {
                    field: None,
                    message: "give exactly one of oidc and saml".into(),
                });
            }
        };
        provider.validate(&self.sso.policy)?;
        self.forget_provider(scope.tenant(), name);
        if let Protocol::Oidc(_) = &provider.protocol
            && let Err(e) = self.metadata(scope.tenant(), &provider).await
        {
            return Err(match e {
                PlatformError::IdpUnavailable(why) => PlatformError::Invalid {
                    field: Some("oidc/issuer"),
                    message: format!("the issuer cannot be used: {why}"),
                },
                other => other,
            });
        }
        // A failure cached by the check above must not outlive the fix.
        self.forget_provider(scope.tenant(), name);
        Ok(provider)
    }

    /// Removes the identity provider `name` (`users:manage`). Links of its subjects
    /// stay, bound to its issuer, and are unused unless it is added back.
    pub async fn delete_sso_provider(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &ProviderName,
    ) -> Result<(), PlatformError> {
        let scope = self.sso_admin(principal, slug).await?;
        let (read, mut settings) = self.sso_settings_of(&scope).await?;
        if settings.provider(name).is_none() {
            return Err(PlatformError::NotFound("identity provider"));
        }
        settings.providers.retain(|p| &p.name != name);
        self.forget_provider(scope.tenant(), name);
        if settings.require_sso && settings.providers.iter().all(|p| !p.enabled) {
            return Err(PlatformError::Conflict(
                "the tenant requires SSO: keep an enabled identity provider, or turn require_sso off first".into(),
            ));
        }
        self.store_sso_settings(&scope, &settings, read, format!("remove provider {name}"))
            .await
    }

    /// Sets whether the tenant requires SSO, and who may still use a password
    /// (`users:manage`). Requiring SSO needs an enabled provider and at least one
    /// break-glass administrator, so the tenant cannot lock itself out.
    pub async fn set_sso_policy(
        &self,
        principal: &Principal,
        slug: &Slug,
        require_sso: bool,
        break_glass: Vec<UserId>,
    ) -> Result<SsoSettingsView, PlatformError> {
        if break_glass.len() > MAX_BREAK_GLASS {
            return Err(PlatformError::Invalid {
                field: Some("break_glass"),
                message: format!("at most {MAX_BREAK_GLASS} break-glass users"),
            });
        }
        let scope = self.sso_admin(principal, slug).await?;
        let (read, mut settings) = self.sso_settings_of(&scope).await?;
        let mut glass = Vec::new();
        for id in break_glass {
            let user = self
                .store
                .user(&scope, id)
                .await?
                .filter(|u| u.status == UserStatus::Active)
                .ok_or_else(|| PlatformError::Invalid {
                    field: Some("break_glass"),
                    message: format!("{id} is not an active user of this tenant"),
                })?;
            if !glass.contains(&user.id) {
                glass.push(user.id);
            }
        }
        if require_sso {
            if !settings.providers.iter().any(|p| p.enabled) {
                return Err(PlatformError::Conflict(
                    "configure and enable an identity provider before requiring SSO".into(),
                ));
            }
            let mut admin = false;
            for id in &glass {
                if let Some(u) = self.store.user(&scope, *id).await? {
                    admin |= u.roles.contains(&Role::Admin);
                }
            }
            if !admin {
                return Err(PlatformError::Invalid {
                    field: Some("break_glass"),
                    message: "requiring SSO needs at least one break-glass administrator".into(),
                });
            }
        }
        settings.require_sso = require_sso;
        settings.break_glass = glass;
        let what = format!(
            "require_sso={require_sso}; break_glass={}",
            settings
                .break_glass
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        self.store_sso_settings(&scope, &settings, read, what)
            .await?;
        Ok(self.view(slug, &settings))
    }

    /// The provider's discovery document (cached for an hour).
    async fn metadata(
        &self,
        tenant: TenantId,
        provider: &Provider,
    ) -> Result<Arc<CachedProvider>, PlatformError> {
        let key = cache_key(tenant, provider);
        let cached = self
            .sso
            .providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|c| c.fetched.elapsed() < METADATA_TTL)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let failed_lately = self
            .sso
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|at| at.elapsed() < FAILURE_BACKOFF);
        if failed_lately {
            return Err(SsoError::Unavailable(
                "its discovery failed moments ago; retry shortly".into(),
            )
            .into());
        }
        let (metadata, iss_in_responses) = match self.discover(provider).await {
            Ok(m) => m,
            Err(e) => {
                let mut failures = self.sso.failures.lock().unwrap_or_else(|p| p.into_inner());
                if failures.len() >= MAX_CACHED_PROVIDERS {
                    failures.clear();
                }
                failures.insert(key, Instant::now());
                return Err(e);
            }
        };
        let entry = Arc::new(CachedProvider {
            metadata: Mutex::new(metadata),
            iss_in_responses,
            fetched: Instant::now(),
            keys_fetched: Mutex::new(None),
        });
        let mut cache = self.sso.providers.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_PROVIDERS {
            cache.clear();
        }
        cache.insert(key, entry.clone());
        Ok(entry)
    }

    /// Reads the provider's discovery document and keys by hand (not
    /// `discover_async`, which fetches the keys before anyone has checked where they
    /// are): the document must name exactly the configured issuer, and every endpoint
    /// in it must pass the issuer policy before any of them is used. What went wrong
    /// is logged; the caller hears only which step failed.
    async fn discover(
        &self,
        provider: &Provider,
    ) -> Result<(CoreProviderMetadata, bool), PlatformError> {
        let http = self.sso.transport()?;
        let issuer = provider.issuer();
        // Stored settings are judged by today's policy (it may be stricter than when
        // they were stored).
        self.sso.policy.check("oidc/issuer", issuer)?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let failed = |step: &str, detail: String| {
            tracing::warn!(issuer = %issuer, detail = %detail, "identity provider discovery failed at {step}");
            PlatformError::from(SsoError::Unavailable(format!(
                "the provider's {step} could not be used (the server log says why)"
            )))
        };
        let body = fetch_document(&http, &url, "application/json")
            .await
            .map_err(|detail| failed("discovery document", detail))?;
        let metadata: CoreProviderMetadata = serde_json::from_slice(&body)
            .map_err(|e| failed("discovery document", e.to_string()))?;
        // Not in openidconnect's core metadata: read from the same document.
        let iss_in_responses = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|d| {
                d.get("authorization_response_iss_parameter_supported")?
                    .as_bool()
            })
            .unwrap_or(false);
        if metadata.issuer().as_str() != issuer {
            return Err(failed(
                "discovery document",
                format!("it names the issuer {}", metadata.issuer().as_str()),
            ));
        }
        for (what, url) in [
            (
                "authorization_endpoint",
                Some(metadata.authorization_endpoint().as_str()),
            ),
            (
                "token_endpoint",
                metadata.token_endpoint().map(|u| u.as_str()),
            ),
            ("jwks_uri", Some(metadata.jwks_uri().as_str())),
        ] {
            let url = url.ok_or_else(|| failed(what, "missing".into()))?;
            self.sso
                .policy
                .check_endpoint(url)
                .map_err(|e| failed(what, format!("{url}: {e}")))?;
        }
        let keys = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &http)
            .await
            .map_err(|e| failed("keys (jwks_uri)", super::chain(&e)))?;
        Ok((metadata.set_jwks(keys), iss_in_responses))
    }

    /// Forgets what is cached about the tenant's provider `name` (it was replaced or
    /// removed).
    fn forget_provider(&self, tenant: TenantId, name: &ProviderName) {
        let prefix = format!("{}/{}/", tenant.as_uuid(), name);
        self.sso
            .providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
        self.sso
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// The tenant and its enabled provider `name`, for the anonymous start of a
    /// sign-in: an unknown tenant and an unknown or disabled provider look alike.
    async fn sign_in_provider(
        &self,
        slug: &Slug,
        name: &ProviderName,
    ) -> Result<(Tenant, Arc<SsoSettings>, Provider), PlatformError> {
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(PlatformError::NotFound("identity provider"))?;
        let settings = self.sso_settings_for(&tenant).await?;
        let provider = settings
            .provider(name)
            .filter(|p| p.enabled)
            .cloned()
            .ok_or(PlatformError::NotFound("identity provider"))?;
        Ok((tenant, settings, provider))
    }

    /// Starts a sign-in through the tenant's provider `name`: where to send the browser
    /// (the authorization request with PKCE S256, `state` and `nonce`) and the cookie
    /// that binds the browser to this flow.
    pub async fn sso_begin(
        &self,
        slug: &Slug,
        name: &ProviderName,
        client: IpAddr,
    ) -> Result<FlowStart, PlatformError> {
        self.sso.admit(client)?;
        let (tenant, _, provider) = self.sign_in_provider(slug, name).await?;
        let nonce = random_token()?;
        self.begin(&tenant, &provider, nonce, Purpose::SignIn, client)
            .await
    }

    async fn begin(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        nonce: String,
        purpose: Purpose,
        from: IpAddr,
    ) -> Result<FlowStart, PlatformError> {
        let oidc = match &provider.protocol {
            Protocol::Oidc(o) => o,
            Protocol::Saml(s) => {
                return self
                    .saml_begin(tenant, provider, s, nonce, purpose, from)
                    .await;
            }
        };
        let cached = self.metadata(tenant.id, provider).await?;
        let client = self.client(tenant, provider, &cached)?;
        let state = random_token()?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (state_for, nonce_for) = (state.clone(), nonce.clone());
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_for),
            move || Nonce::new(nonce_for),
        );
        for s in &oidc.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        request = request.set_pkce_challenge(challenge);
        let challenge_id = match &purpose {
            Purpose::Sign { challenge, .. } => {
                request = request
                    .add_prompt(CoreAuthPrompt::Login)
                    .set_max_age(Duration::ZERO);
                Some(challenge.clone())
            }
            Purpose::SignIn => None,
        };
        let (url, _, _) = request.url();
        let cookie_value = random_token()?;
        self.sso.put_flow(
            state.clone(),
            Flow {
                tenant: tenant.id,
                client: crate::identity::throttle::throttle_address(from),
                provider: provider.name.clone(),
                issuer: oidc.issuer.clone(),
                nonce,
                verifier: Zeroizing::new(verifier.secret().clone()),
                binding: sha256(&[cookie_value.as_bytes()]),
                started: Instant::now(),
                started_at: now_secs(self),
                purpose,
            },
        )?;
        Ok(FlowStart {
            authorization_url: url.to_string(),
            cookie_name: binding_cookie_name(&state),
            cookie_value,
            cookie_path: "/".into(),
            max_age_secs: self.sso.flow_ttl.as_secs(),
            cross_site_post: false,
            challenge_id,
        })
    }

    fn client(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        cached: &CachedProvider,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        PlatformError,
    > {
        let metadata = cached
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let redirect = RedirectUrl::new(self.redirect_uri(&tenant.slug, &provider.name))
            .map_err(|e| PlatformError::internal(format!("redirect URL: {e}")))?;
        let oidc = provider
            .oidc()
            .ok_or_else(|| PlatformError::internal("an OIDC client for a SAML provider"))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(oidc.client_id.clone()),
            Some(ClientSecret::new(oidc.client_secret.to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts the re-authentication at the identity provider that an SSO user's
    /// signature of version `n` with `meaning` needs: the caller's own session, a
    /// version they could sign now. Returns the flow (the browser goes to the provider,
    /// which must make the person log in again) with its challenge id.
    pub async fn sso_sign_begin(
        &self,
        principal: &Principal,
        slug: &Slug,
        record: &crate::records::RecordId,
        n: u64,
        meaning: &str,
        name: &ProviderName,
    ) -> Result<FlowStart, PlatformError> {
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
        let (tenant, scope) = self.own_scope(principal, slug).await?;
        let (_, settings) = self.sso_settings_of(&scope).await?;
        let provider = settings
            .provider(name)
            .filter(|p| p.enabled)
            .cloned()
            .ok_or(PlatformError::NotFound("identity provider"))?;
        let (record, content_hash) = self
            .signable_hash(principal, slug, record, n, meaning)
            .await?;
        let challenge = random_token()?;
        let intent = SigningIntent {
            session: user.session().to_owned(),
            user: user.user(),
            record,
            version: n,
            content_hash,
            meaning: meaning.to_owned(),
        };
        let nonce = intent.nonce(&challenge);
        self.begin(
            &tenant,
            &provider,
            nonce,
            Purpose::Sign { challenge, intent },
            // Signature flows are counted per session, not per address.
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        )
        .await
    }

    /// Completes a round trip: the provider's redirect with `query`, from the browser
    /// holding the binding cookie `binding` (the value of the cookie named for the
    /// flow's state). A sign-in ends in a session; a signature's re-authentication in
    /// a challenge its signature request can spend.
    pub async fn sso_callback(
        &self,
        slug: &Slug,
        name: &ProviderName,
        query: CallbackQuery,
        binding: Option<&str>,
        client_addr: IpAddr,
    ) -> Result<CallbackOutcome, PlatformError> {
        self.sso.admit(client_addr)?;
        let state = query
            .state
            .as_deref()
            .filter(|s| s.len() <= 128)
            .ok_or_else(|| refused("the callback carries no state"))?;
        // Spent whatever happens next: a callback works once.
        let flow = self
            .sso
            .take_flow(state)
            .ok_or_else(|| {
                tracing::warn!(tenant = %slug, provider = %name, "SSO callback for an unknown, used or expired attempt (several nodes without session affinity look like this)");
                refused("unknown, used or expired sign-in attempt (state)")
            })?;
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .filter(|t| t.id == flow.tenant)
            .ok_or_else(|| refused("this sign-in attempt belongs to another tenant"))?;
        if &flow.provider != name {
            return Err(
                refused("this sign-in attempt belongs to another identity provider").into(),
            );
        }
        let bound = binding.is_some_and(|b| {
            subtle::ConstantTimeEq::ct_eq(&sha256(&[b.as_bytes()])[..], &flow.binding[..]).into()
        });
        let result = if bound {
            self.finish(&tenant, &flow, &query).await
        } else {
            Err(refused("the browser that started this sign-in must finish it (binding cookie missing or wrong)").into())
        };
        match (&flow.purpose, result) {
            (_, Ok(outcome)) => Ok(outcome),
            (Purpose::SignIn, Err(e)) => {
                self.sso_login_failed(&tenant, name, &e).await?;
                Err(e)
            }
            (Purpose::Sign { intent, .. }, Err(e)) => {
                self.sso_signature_failed(&tenant, intent, name, &e).await?;
                Err(e)
            }
        }
    }

    async fn finish(
        &self,
        tenant: &Tenant,
        flow: &Flow,
        query: &CallbackQuery,
    ) -> Result<CallbackOutcome, PlatformError> {
        if let Some(error) = &query.error {
            let e: String = error
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            return Err(refused(format!("the identity provider answered {e}")).into());
        }
        let settings = self.sso_settings_for(tenant).await?;
        let provider = settings
            .provider(&flow.provider)
            .filter(|p| p.enabled && p.issuer() == flow.issuer)
            .cloned()
            .ok_or_else(|| refused("the identity provider was disabled or changed meanwhile"))?;
        let (asserted, digest) = match &provider.protocol {
            Protocol::Oidc(oidc) => {
                self.oidc_finish(tenant, &provider, oidc, flow, query)
                    .await?
            }
            Protocol::Saml(saml) => {
                self.saml_finish(tenant, &provider, saml, flow, query)
                    .await?
            }
        };
        match &flow.purpose {
            Purpose::SignIn => {
                let tokens = self.sso_session(tenant, &provider, &asserted).await?;
                Ok(CallbackOutcome::SignedIn(tokens))
            }
            Purpose::Sign { challenge, intent } => {
                self.reauthenticated(tenant, &provider, &asserted, digest, challenge, intent)
                    .await
            }
        }
    }

    /// The OIDC half of a callback: the authorization response's `iss`, then the code
    /// redeemed and the ID token verified.
    async fn oidc_finish(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        oidc: &OidcSettings,
        flow: &Flow,
        query: &CallbackQuery,
    ) -> Result<(Asserted, [u8; 32]), PlatformError> {
        // RFC 9207: the authorization response names its issuer (mix-up defence), and
        // must when the provider says its responses do.
        let cached = self.metadata(tenant.id, provider).await?;
        match &query.iss {
            Some(iss) if iss != &oidc.issuer => {
                return Err(refused("the response names another issuer (iss)").into());
            }
            None if cached.iss_in_responses => {
                return Err(refused("the response does not name its issuer (iss)").into());
            }
            _ => {}
        }
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| refused("the callback carries no code"))?;
        self.redeem(tenant, provider, &cached, flow, code).await
    }

    /// A signature's re-authentication came back: it must name the signer (by their
    /// link) and carry `auth_time` (checked against the challenge by the verifier).
    async fn reauthenticated(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
        digest: [u8; 32],
        challenge: &str,
        intent: &SigningIntent,
    ) -> Result<CallbackOutcome, PlatformError> {
        let auth_time = asserted
            .auth_time
            .ok_or_else(|| refused("the ID token has no auth_time"))?;
        let user = self.linked_user(tenant, provider, asserted).await?;
        if user.map(|u| u.id) != Some(intent.user) {
            return Err(
                refused("the identity provider signed in someone other than the signer").into(),
            );
        }
        self.sso.put_reauth(
            challenge.to_owned(),
            Reauthenticated {
                intent: intent.clone(),
                provider: provider.name.clone(),
                protocol: provider.protocol_name(),
                auth_time,
                digest,
                at: Instant::now(),
            },
        )?;
        Ok(CallbackOutcome::Reauthenticated {
            challenge_id: challenge.to_owned(),
            auth_time: rfc3339(auth_time),
        })
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the ID token: issuer,
    /// audience (and `azp`), expiry, `iat`, the nonce, the signature against the
    /// provider's keys (re-fetched once for an unknown key id, at most every 30 s), and
    /// for a signature an `auth_time` no older than the challenge.
    async fn redeem(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        cached: &CachedProvider,
        flow: &Flow,
        code: &str,
    ) -> Result<(Asserted, [u8; 32]), PlatformError> {
        let http = self.sso.transport()?;
        let response = self.exchange(tenant, provider, cached, flow, code).await?;
        let id_token = response
            .id_token()
            .ok_or_else(|| refused("the token response has no ID token"))?
            .clone();
        let raw = id_token.to_string();
        let digest = sha256(&[raw.as_bytes()]);
        let reauth_after = match flow.purpose {
            Purpose::Sign { .. } => Some(flow.started_at - self.sso.skew),
            Purpose::SignIn => None,
        };
        let nonce = Nonce::new(flow.nonce.clone());
        let mut refreshed = false;
        let verified;
        loop {
            let client = self.client(tenant, provider, cached)?;
            let verifier = self.verifier(&client, provider, flow, reauth_after)?;
            match id_token.claims(&verifier, &nonce) {
                Ok(claims) => {
                    verified = (
                        claims.subject().as_str().to_owned(),
                        claims.auth_time().map(|t| t.timestamp()),
                        claims.authorized_party().map(|a| a.as_str().to_owned()),
                    );
                    break;
                }
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !refreshed => {
                    refreshed = true;
                    if !self.refresh_keys(cached, &http).await? {
                        return Err(refused(
                            "the ID token is signed with a key the provider does not publish (its keys were re-read within the last 30 s)",
                        )
                        .into());
                    }
                }
                Err(e) => {
                    return Err(
                        refused(format!("the ID token was refused: {}", super::chain(&e))).into(),
                    );
                }
            }
        }
        Ok((asserted_from(&raw, provider, verified)?, digest))
    }

    /// The code exchange at the token endpoint, with the flow's PKCE verifier.
    async fn exchange(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        cached: &CachedProvider,
        flow: &Flow,
        code: &str,
    ) -> Result<openidconnect::core::CoreTokenResponse, PlatformError> {
        let http = self.sso.transport()?;
        let client = self.client(tenant, provider, cached)?;
        Ok(client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SsoError::Unavailable(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.to_string()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => refused(format!(
                    "the identity provider refused the code: {}",
                    r.error()
                )),
                other => {
                    tracing::warn!(provider = %provider.name, error = %super::chain(&other), "token request to the identity provider failed");
                    SsoError::Unavailable("the token request failed (the server log says why)".into())
                }
            })?)
    }

    fn verifier<'a>(
        &self,
        client: &'a CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        provider: &Provider,
        flow: &Flow,
        reauth_after: Option<i64>,
    ) -> Result<openidconnect::core::CoreIdTokenVerifier<'a>, PlatformError> {
        let algs: Vec<CoreJwsSigningAlgorithm> = provider
            .oidc()
            .map(|o| o.algorithms.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|a| match a.as_str() {
                "RS256" => Some(CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256),
                "ES256" => Some(CoreJwsSigningAlgorithm::EcdsaP256Sha256),
                "PS256" => Some(CoreJwsSigningAlgorithm::RsaSsaPssSha256),
                "EdDSA" => Some(CoreJwsSigningAlgorithm::EdDsa),
                _ => None,
            })
            .collect();
        let skew = self.sso.skew;
        let earliest = flow.started_at - skew;
        let latest = now_secs(self) + skew;
        Ok(client
            .id_token_verifier()
            .set_allowed_algs(algs)
            // Issued for this flow: not before it started, not in the future.
            .set_issue_time_verifier_fn(move |iat| {
                let t = iat.timestamp();
                if t < earliest || t > latest {
                    Err(format!("iat {t} is outside this sign-in ({earliest}..{latest})"))
                } else {
                    Ok(())
                }
            })
            .set_auth_time_verifier_fn(move |at| match (reauth_after, at) {
                (_, Some(t)) if t.timestamp() > latest => {
                    Err(format!("auth_time {} is in the future", t.timestamp()))
                }
                (None, _) => Ok(()),
                (Some(after), Some(t)) if t.timestamp() >= after => Ok(()),
                (Some(_), Some(t)) => Err(format!(
                    "auth_time {} is older than the signing challenge: the provider did not re-authenticate",
                    t.timestamp()
                )),
                (Some(_), None) => Err("auth_time is missing: re-authentication cannot be shown".into()),
            }))
    }

    /// Re-reads the provider's keys unless that was done in the last 30 s; whether it
    /// did.
    async fn refresh_keys(
        &self,
        cached: &CachedProvider,
        http: &Http,
    ) -> Result<bool, PlatformError> {
        {
            let mut last = cached
                .keys_fetched
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < JWKS_REFRESH_EVERY) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let uri = cached
            .metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jwks_uri()
            .clone();
        let keys = CoreJsonWebKeySet::fetch_async(&uri, http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %super::chain(&e), "re-reading an identity provider's keys failed");
                SsoError::Unavailable("its keys could not be read (the server log says why)".into())
            })?;
        tracing::info!("an identity provider's keys were re-read (a token named an unknown key)");
        let mut m = cached.metadata.lock().unwrap_or_else(|p| p.into_inner());
        *m = m.clone().set_jwks(keys);
        Ok(true)
    }

    /// The user a provider's subject is linked to, if the link and the user exist.
    async fn linked_user(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
    ) -> Result<Option<User>, PlatformError> {
        let scope = access::provisioning_scope(&access::system_scope(), tenant);
        let id = link_id(&provider.name, provider.issuer(), &asserted.subject);
        let Some((_, bytes)) = self.objects.value(&scope, Kind::SsoLink, &id).await? else {
            return Ok(None);
        };
        let link: Link = serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("SSO link unreadable: {e}")))?;
        Ok(self.store.user(&scope, link.user).await?)
    }

    /// Finds (linking by verified e-mail, or creating just in time, as the provider
    /// allows) the user a sign-in names, applies the provider's roles, and opens a
    /// session exactly like a password sign-in's.
    async fn sso_session(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
    ) -> Result<UserTokens, PlatformError> {
        let user = match self.linked_user(tenant, provider, asserted).await? {
            Some(u) => u,
            None => self.first_sign_in(tenant, provider, asserted).await?,
        };
        if user.status != UserStatus::Active {
            return Err(refused("the account is disabled").into());
        }
        // A break-glass account is the way in when the provider fails or is
        // compromised: it signs in with its password only.
        if self
            .sso_settings_for(tenant)
            .await?
            .break_glass
            .contains(&user.id)
        {
            return Err(
                refused("a break-glass account signs in with its password, not by SSO").into(),
            );
        }
        let user = self.sync_roles(tenant, provider, asserted, user).await?;
        let session = StoredSession {
            // The provider vouched for the authentication, second factor included.
            second_factor: true,
            ..self.new_session(&user)
        };
        let principal = access::signed_in_user(
            tenant.clone(),
            user.id,
            session.id.clone(),
            None,
            permissions_of(&user.roles),
        );
        let scope = access::own_account(&principal)?;
        let refresh = new_refresh_token(&tenant.slug)?;
        let entry = NewEntry::by(
            &scope,
            Action::SessionLogin,
            user_target(Some(user.id)),
            Some(format!("sso: {}", provider.name)),
        );
        let event = self.recorder.event(&scope, entry).await?;
        self.store
            .create_session(&scope, &session, &refresh_hash(&refresh), &event)
            .await?;
        tracing::info!(tenant = %tenant.slug, user = %user.id, provider = %provider.name, "user signed in by SSO");
        Ok(self.user_tokens(tenant, &user, &session, refresh))
    }

    /// A subject's first sign-in: link to the user with the verified e-mail, or create
    /// one, as the provider allows; otherwise refused.
    async fn first_sign_in(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
    ) -> Result<User, PlatformError> {
        let system = access::provisioning_scope(&access::system_scope(), tenant);
        let settings = self.sso_settings_for(tenant).await?;
        let email = asserted.email.as_deref().and_then(|e| Email::parse(e).ok());
        let by_email = match (&email, provider.link_by_email && asserted.email_verified) {
            (Some(e), true) => self
                .store
                .user_credentials(&system, e)
                .await?
                .map(|c| c.user)
                // Only an active account, and never a break-glass one: the way in
                // when SSO fails must not be reachable through SSO.
                .filter(|u| {
                    u.status == UserStatus::Active && !settings.break_glass.contains(&u.id)
                }),
            _ => None,
        };
        let user = match by_email {
            Some(u) => u,
            None if provider.jit => {
                let email = email.ok_or_else(|| {
                    refused("the provider gave no usable e-mail address to create the account with")
                })?;
                if !asserted.email_verified {
                    return Err(refused(
                        "the provider does not say the e-mail address is verified",
                    )
                    .into());
                }
                self.create_jit_user(tenant, provider, asserted, email)
                    .await?
            }
            None => {
                return Err(refused(
                    "no account in this tenant for this identity (ask an administrator to invite you)",
                )
                .into());
            }
        };
        self.link(tenant, provider, asserted, &user).await?;
        Ok(user)
    }

    /// Links the provider's subject to `user`, once: each user has at most one subject
    /// per provider (an address the provider later gives to someone else links nobody
    /// new) and each subject one user; both records are created only if absent, so two
    /// first sign-ins racing cannot link twice.
    async fn link(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
        user: &User,
    ) -> Result<(), PlatformError> {
        let system = access::provisioning_scope(&access::system_scope(), tenant)
            .writable()
            .map_err(|_| refused("the tenant is read-only: no new sign-in links"))?;
        let link = Link {
            user: user.id,
            provider: provider.name.to_string(),
            issuer: provider.issuer().to_owned(),
            subject: asserted.subject.clone(),
        };
        let json = serde_json::to_vec(&link).map_err(PlatformError::internal_from)?;
        let mine = user_link_id(&provider.name, provider.issuer(), user.id);
        if !self
            .objects
            .create_value(&system, Kind::SsoLink, &mine, &json, Action::SsoLink)
            .await?
        {
            // Already there: fine if it names this very subject (a first attempt that
            // stopped between the two records), refused if another.
            let same = match self.objects.value(&system, Kind::SsoLink, &mine).await? {
                Some((_, bytes)) => serde_json::from_slice::<Link>(bytes.expose())
                    .is_ok_and(|l| l.subject == asserted.subject && l.issuer == link.issuer),
                None => false,
            };
            if !same {
                return Err(refused(
                    "this account is already linked to another identity at this provider",
                )
                .into());
            }
        }
        let id = link_id(&provider.name, provider.issuer(), &asserted.subject);
        if self
            .objects
            .create_value(&system, Kind::SsoLink, &id, &json, Action::SsoLink)
            .await?
        {
            return Ok(());
        }
        self.replace_dangling_link(&system, &id, &json).await
    }

    /// The subject's link record exists: it is replaced only if the account it names
    /// is gone (deleted), never while it points at someone, and only if unchanged since
    /// read.
    async fn replace_dangling_link(
        &self,
        system: &crate::access::WritableScope,
        id: &str,
        json: &[u8],
    ) -> Result<(), PlatformError> {
        let (version, bytes) = self
            .objects
            .value(system, Kind::SsoLink, id)
            .await?
            .ok_or_else(|| refused("this identity was linked meanwhile; sign in again"))?;
        let old: Link = serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("SSO link unreadable: {e}")))?;
        if self.store.user(system, old.user).await?.is_some()
            || !self
                .objects
                .put_value_if(
                    system,
                    Kind::SsoLink,
                    id,
                    json,
                    Action::SsoLink,
                    None,
                    version,
                )
                .await?
        {
            return Err(
                refused("this identity was linked to an account meanwhile; sign in again").into(),
            );
        }
        Ok(())
    }

    async fn create_jit_user(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
        email: Email,
    ) -> Result<User, PlatformError> {
        let scope = access::provisioning_scope(&access::system_scope(), tenant).writable()?;
        // No password anyone knows: a hash of 32 random bytes.
        let unusable = crate::secret::SecretString::new(random_token()?);
        let hash = self.passwords.hash(&unusable).await?;
        // The provider's name claim, if it passes the printed-name rules (else empty:
        // the user sets one before signing).
        let full_name = super::users::full_name(asserted.name.as_deref()).unwrap_or_default();
        let user = User {
            id: UserId::generate(),
            email,
            full_name,
            status: UserStatus::Active,
            roles: provider.roles_for(&asserted.groups).unwrap_or_default(),
            created_at: self.clock.now(),
        };
        let entry = NewEntry::by(
            &scope,
            Action::UserCreate,
            user_target(Some(user.id)),
            Some(format!(
                "just in time, at the first sign-in through {}",
                provider.name
            )),
        );
        let event = self.recorder.event(&scope, entry).await?;
        let row = NewUserRow {
            user: user.clone(),
            password_hash: hash,
            granted_by: format!("sso:{}", provider.name),
        };
        self.store.insert_user(&scope, &row, &event).await?;
        Ok(user)
    }

    /// Sets the user's roles from the provider's groups when the provider manages
    /// roles and they differ (audited `user.update`, actor: the system).
    async fn sync_roles(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        asserted: &Asserted,
        user: User,
    ) -> Result<User, PlatformError> {
        let Some(roles) = provider.roles_for(&asserted.groups) else {
            return Ok(user);
        };
        // A break-glass user's roles are the tenant's: the provider never takes away
        // the way in that exists for when the provider fails.
        if self
            .sso_settings_for(tenant)
            .await?
            .break_glass
            .contains(&user.id)
        {
            return Ok(user);
        }
        let mut current = user.roles.clone();
        current.sort_by_key(|r| Role::ALL.iter().position(|x| x == r));
        if current == roles {
            return Ok(user);
        }
        let Ok(scope) = access::provisioning_scope(&access::system_scope(), tenant).writable()
        else {
            return Ok(user); // a read-only tenant keeps its grants
        };
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let entry = NewEntry::by(
            &scope,
            Action::UserUpdate,
            user_target(Some(user.id)),
            Some(format!(
                "roles={} (from {}'s groups)",
                names.join(","),
                provider.name
            )),
        );
        let event = self.recorder.event(&scope, entry).await?;
        let change = UserChange {
            status: None,
            roles: Some(roles),
            granted_by: format!("sso:{}", provider.name),
            at: self.clock.now(),
        };
        Ok(self
            .store
            .update_user(&scope, user.id, &change, &event)
            .await?
            .unwrap_or(user))
    }

    async fn sso_login_failed(
        &self,
        tenant: &Tenant,
        name: &ProviderName,
        e: &PlatformError,
    ) -> Result<(), PlatformError> {
        let scope = self.sign_in_scope(tenant).anonymous(tenant);
        let entry = NewEntry::by(
            &scope,
            Action::SessionLoginFailed,
            Target::of("identity-provider", name.as_str()),
            Some(failure_reason(name, e)),
        );
        self.recorder.record(&scope, entry).await?;
        tracing::info!(tenant = %tenant.slug, provider = %name, error = %e, "SSO sign-in refused");
        Ok(())
    }

    async fn sso_signature_failed(
        &self,
        tenant: &Tenant,
        intent: &SigningIntent,
        name: &ProviderName,
        e: &PlatformError,
    ) -> Result<(), PlatformError> {
        let scope = self.sign_in_scope(tenant).anonymous(tenant);
        let entry = NewEntry::by(
            &scope,
            Action::SignatureFailed,
            Target::of("record", intent.record.clone()).at_version(intent.version),
            Some(failure_reason(name, e)),
        );
        self.recorder.record(&scope, entry).await?;
        tracing::warn!(tenant = %tenant.slug, provider = %name, error = %e, "SSO re-authentication for a signature refused");
        Ok(())
    }

    /// Spends the completed re-authentication `challenge` for a signature by `intent`'s
    /// signer: it must be theirs, from this session, for this version, content and
    /// meaning, and fresh.
    pub(super) fn spend_sso_reauth(
        &self,
        challenge: &str,
        intent: &SigningIntent,
    ) -> Result<SsoReauthEvidence, PlatformError> {
        let r = self
            .sso
            .take_reauth(challenge)
            .ok_or(PlatformError::ReauthenticationFailed)?;
        if &r.intent != intent {
            return Err(PlatformError::ReauthenticationFailed);
        }
        Ok(SsoReauthEvidence {
            protocol: r.protocol,
            provider: r.provider.to_string(),
            auth_time: rfc3339(r.auth_time),
            response_digest: hex::encode(r.digest),
        })
    }

    /// Whether `user` may use a password in `tenant` now (not when the tenant requires
    /// SSO, unless they are a break-glass user), and whether the tenant requires SSO
    /// (so that an allowed password use is a break-glass one).
    pub(super) async fn password_allowed(
        &self,
        tenant: &Tenant,
        user: UserId,
    ) -> Result<(bool, bool), PlatformError> {
        let s = self.sso_settings_for(tenant).await?;
        Ok((!s.password_refused(user), s.require_sso))
    }
}

/// The audit entry's words for storing `provider` over `existing`.
fn describe(existing: Option<&Provider>, provider: &Provider) -> String {
    let detail = match &provider.protocol {
        Protocol::Oidc(o) => format!("issuer {}, client {}", o.issuer, o.client_id),
        Protocol::Saml(s) => format!(
            "IdP {}, metadata {}, signing certificates (SHA-256) {}, require_encrypted={}",
            s.idp_entity_id,
            s.metadata_url.as_deref().unwrap_or("given inline"),
            s.idp_certificates.join(" "),
            s.require_encrypted
        ),
    };
    format!(
        "{} {} provider {}: {detail}, enabled={}, jit={}, link_by_email={}, groups mapped {}{}",
        if existing.is_some() { "replace" } else { "add" },
        provider.protocol_name(),
        provider.name,
        provider.enabled,
        provider.jit,
        provider.link_by_email,
        provider.group_roles.len(),
        if input_secret_changed(existing, provider) {
            ", new client secret"
        } else {
            ""
        },
    )
}

/// The provider an administrator's input describes; the stored client secret is kept
/// when none is given (for the same issuer only: a secret never follows a provider to
/// another issuer).
fn provider_from(
    name: &ProviderName,
    input: ProviderInput,
    existing: Option<&Provider>,
) -> Result<Provider, PlatformError> {
    let Some(o) = input.oidc else {
        return Err(PlatformError::internal(
            "provider_from without OIDC settings",
        ));
    };
    let stored = existing.and_then(Provider::oidc);
    let secret = match (&o.client_secret, stored) {
        (Some(s), _) => Zeroizing::new(s.expose().to_owned()),
        (None, Some(e)) if e.issuer == o.issuer => e.client_secret.clone(),
        (None, _) => {
            return Err(PlatformError::Invalid {
                field: Some("oidc/client_secret"),
                message: "a new provider (or a new issuer) needs its client secret".into(),
            });
        }
    };
    let defaults: OidcSettings = serde_json::from_value(serde_json::json!({
        "issuer": "", "client_id": "", "client_secret": ""
    }))
    .map_err(PlatformError::internal_from)?;
    Ok(Provider {
        name: name.clone(),
        display_name: input.display_name,
        enabled: input.enabled,
        jit: input.jit,
        link_by_email: input.link_by_email.unwrap_or(true),
        group_roles: input.group_roles,
        protocol: Protocol::Oidc(OidcSettings {
            issuer: o.issuer,
            client_id: o.client_id,
            client_secret: secret,
            scopes: o.scopes.unwrap_or(defaults.scopes),
            email_claim: o.email_claim.unwrap_or(defaults.email_claim),
            name_claim: o.name_claim.unwrap_or(defaults.name_claim),
            groups_claim: o.groups_claim.unwrap_or(defaults.groups_claim),
            algorithms: o.algorithms.unwrap_or(defaults.algorithms),
        }),
    })
}

/// What a verified ID token asserts: its payload's claims (the library checked these
/// very bytes), which must agree with what the library itself read — `sub` and
/// `auth_time` (a token with duplicate keys could be read two ways) — and whose `azp`,
/// if any, must be us (the library leaves `azp` unchecked).
fn asserted_from(
    raw: &str,
    provider: &Provider,
    verified: (String, Option<i64>, Option<String>),
) -> Result<Asserted, PlatformError> {
    let payload = raw
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&b).ok())
        .ok_or_else(|| refused("the ID token's claims are unreadable"))?;
    let oidc = provider
        .oidc()
        .ok_or_else(|| PlatformError::internal("an ID token for a SAML provider"))?;
    let asserted = Asserted::from_claims(oidc, &payload)?;
    let (subject, auth_time, azp) = verified;
    if subject != asserted.subject || auth_time != asserted.auth_time {
        return Err(refused("the ID token's claims are ambiguous").into());
    }
    if azp.is_some_and(|a| a != oidc.client_id) {
        return Err(refused("the ID token was issued to another client (azp)").into());
    }
    Ok(asserted)
}

/// GETs a document (`accept`: its media types) from an identity provider; its body, or
/// what went wrong.
pub(super) async fn fetch_document(
    http: &Http,
    url: &str,
    accept: &str,
) -> Result<Vec<u8>, String> {
    let request = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::GET)
        .uri(url)
        .header(openidconnect::http::header::ACCEPT, accept)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let response = http.0.send(request).await.map_err(|e| e.to_string())?;
    if response.status() != openidconnect::http::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    Ok(response.into_body())
}

/// A provider subject's link to a user (sealed, kind `sso-link`).
#[derive(Serialize, Deserialize)]
struct Link {
    user: UserId,
    provider: String,
    issuer: String,
    subject: String,
}

/// The id of a user's own link record at a provider (`user:` + SHA-256 of provider,
/// issuer and user id), which makes a second subject for the same user impossible.
fn user_link_id(provider: &ProviderName, issuer: &str, user: UserId) -> String {
    let id = user.to_string();
    let h = sha256(&[
        b"strongroom-sso-user-link-v1\n",
        provider.as_str().as_bytes(),
        b"\n",
        issuer.as_bytes(),
        b"\n",
        id.as_bytes(),
    ]);
    format!("user-{}", hex::encode(h))
}

fn cache_key(tenant: TenantId, provider: &Provider) -> String {
    format!(
        "{}/{}/{}",
        tenant.as_uuid(),
        provider.name,
        provider.issuer()
    )
}

fn input_secret_changed(existing: Option<&Provider>, new: &Provider) -> bool {
    match (existing.and_then(Provider::oidc), new.oidc()) {
        (Some(e), Some(n)) => e.client_secret.as_str() != n.client_secret.as_str(),
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

fn failure_reason(name: &ProviderName, e: &PlatformError) -> String {
    let why = match e {
        PlatformError::SsoRefused(w) | PlatformError::IdpUnavailable(w) => w.clone(),
        other => other.to_string(),
    };
    format!("sso {name}: {why}").chars().take(500).collect()
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
