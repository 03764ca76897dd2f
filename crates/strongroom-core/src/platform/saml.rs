//! SAML 2.0 single sign-on: the service provider each SAML identity provider of a
//! tenant talks to. Its entity id is its metadata URL
//! (`{public_url}/v1/t/{tenant}/sso/{provider}/metadata`), its assertion consumer
//! service `…/acs` (HTTP-POST); sign-ins are SP-initiated only (HTTP-Redirect
//! AuthnRequest with our own random id; IdP-initiated responses have no flow and are
//! refused).
//!
//! The round trip shares everything after verification with OIDC (`platform::sso`):
//! the flow table, the browser binding, linking, JIT, roles, sessions and the
//! signature re-authentication. What is SAML's is here: building the provider from
//! metadata, the AuthnRequest, and the response's checks beyond the engine's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::sso::{CallbackQuery, Flow, FlowStart, Purpose, now_secs, random_token, refused};
use super::{Platform, PlatformError};
use crate::audit::merkle::sha256;
use crate::identity::saml::{
    MAX_IDP_METADATA, SamlEngine, SamlSettings, SpContext, default_email_attribute,
    default_groups_attribute, default_name_attribute, request_id, screen_response, screen_xml,
};
use crate::identity::sso::{Asserted, Protocol, Provider, ProviderName, SsoError};
use crate::tenant::{Slug, Tenant, TenantId};

/// Most assertions remembered per tenant, and in all before tenants above their fair
/// share are refused (each completed flow adds one, kept no longer than a flow lives).
const MAX_SEEN_PER_TENANT: usize = 10_000;
const MAX_SEEN_ASSERTIONS: usize = 100_000;

/// A SAML identity provider as the tenant administrator gives it: its metadata inline
/// (`idp_metadata`) or by URL (`metadata_url`, fetched only from a host the operator
/// allows), and how its attributes map.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamlInput {
    /// The IdP's metadata XML (an `EntityDescriptor`).
    #[serde(default)]
    pub idp_metadata: Option<String>,
    /// Where to fetch the metadata (https; the host must be in `sso.allowed_hosts`).
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// The NameID format to ask for (default: the IdP's choice).
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// Attribute holding the e-mail (default `email`; empty: the NameID).
    #[serde(default)]
    pub email_attribute: Option<String>,
    /// Attribute holding the full name (default `displayName`).
    #[serde(default)]
    pub name_attribute: Option<String>,
    /// Attribute holding the groups (default `groups`).
    #[serde(default)]
    pub groups_attribute: Option<String>,
    /// Refuse assertions that are not encrypted to our certificate (default false).
    #[serde(default)]
    pub require_encrypted: bool,
}

impl std::fmt::Debug for SamlInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlInput")
            .field("metadata_url", &self.metadata_url)
            .finish_non_exhaustive()
    }
}

/// A SAML provider's settings as shown, with what to register at the IdP.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SamlView {
    /// The IdP's entity id.
    pub idp_entity_id: String,
    /// Where its metadata came from (none: given inline).
    pub metadata_url: Option<String>,
    /// Our entity id (the audience), which is also where our metadata is served.
    pub sp_entity_id: String,
    /// Our assertion consumer service (HTTP-POST).
    pub acs_url: String,
    /// Our metadata (entity id, ACS, encryption certificate).
    pub sp_metadata_url: String,
    /// Our certificate (PEM) for encrypted assertions.
    pub sp_certificate: String,
    /// SHA-256 (hex) of the IdP's signing certificates, as read from its metadata.
    pub idp_certificates: Vec<String>,
    /// The NameID format asked for.
    pub name_id_format: Option<String>,
    /// The e-mail attribute (empty: the NameID).
    pub email_attribute: String,
    /// The name attribute.
    pub name_attribute: String,
    /// The groups attribute.
    pub groups_attribute: String,
    /// Whether clear assertions are refused.
    pub require_encrypted: bool,
}

impl Platform {
    /// Sets the SAML engine (the server's xmlsec1). Without one, SAML providers can be
    /// neither configured nor used (503).
    pub fn set_saml_engine(&mut self, engine: Arc<dyn SamlEngine>) {
        self.sso.saml = Some(engine);
    }

    fn saml_engine(&self) -> Result<Arc<dyn SamlEngine>, PlatformError> {
        self.sso
            .saml
            .clone()
            .ok_or_else(|| PlatformError::unavailable("no SAML engine in this server"))
    }

    /// Our entity id for the tenant's provider `name` (its metadata URL).
    pub(super) fn saml_entity_id(&self, slug: &Slug, name: &ProviderName) -> String {
        format!("{}/v1/t/{slug}/sso/{name}/metadata", self.sso.public_url)
    }

    /// (entity id, ACS URL) of the tenant's provider `name`.
    fn sp_urls(&self, slug: &Slug, name: &ProviderName) -> (String, String) {
        (
            self.saml_entity_id(slug, name),
            self.saml_acs_url(slug, name),
        )
    }

    /// Our assertion consumer service for the tenant's provider `name`.
    pub(super) fn saml_acs_url(&self, slug: &Slug, name: &ProviderName) -> String {
        format!("{}/v1/t/{slug}/sso/{name}/acs", self.sso.public_url)
    }

    pub(super) fn saml_view(&self, slug: &Slug, name: &ProviderName, s: &SamlSettings) -> SamlView {
        let entity = self.saml_entity_id(slug, name);
        SamlView {
            idp_entity_id: s.idp_entity_id.clone(),
            metadata_url: s.metadata_url.clone(),
            sp_metadata_url: entity.clone(),
            sp_entity_id: entity,
            acs_url: self.saml_acs_url(slug, name),
            sp_certificate: s.sp_cert_pem.clone(),
            idp_certificates: s.idp_certificates.clone(),
            name_id_format: s.name_id_format.clone(),
            email_attribute: s.email_attribute.clone(),
            name_attribute: s.name_attribute.clone(),
            groups_attribute: s.groups_attribute.clone(),
            require_encrypted: s.require_encrypted,
        }
    }

    /// The provider an administrator's SAML input describes: the metadata read (and
    /// fetched, from an allowed host only) and checked by the engine, the SP key pair
    /// kept from the stored provider or made new.
    pub(super) async fn saml_provider_from(
        &self,
        name: &ProviderName,
        input: super::ProviderInput,
        existing: Option<&Provider>,
    ) -> Result<Provider, PlatformError> {
        let engine = self.saml_engine()?;
        let Some(saml) = input.saml else {
            return Err(PlatformError::internal("saml_provider_from without SAML"));
        };
        let xml = match (saml.idp_metadata, &saml.metadata_url) {
            (Some(xml), None) => xml,
            (None, Some(url)) => self.fetch_idp_metadata(url).await?,
            _ => {
                return Err(PlatformError::Invalid {
                    field: Some("saml/idp_metadata"),
                    message: "give exactly one of idp_metadata and metadata_url".into(),
                });
            }
        };
        let bad = |why: String| PlatformError::Invalid {
            field: Some("saml/idp_metadata"),
            message: why,
        };
        if xml.len() > MAX_IDP_METADATA {
            return Err(bad(format!(
                "the metadata is larger than {MAX_IDP_METADATA} bytes"
            )));
        }
        screen_xml(&xml, "metadata").map_err(|e| bad(e.to_string()))?;
        let (reader, doc) = (engine.clone(), xml.clone());
        let meta = tokio::task::spawn_blocking(move || reader.read_idp_metadata(&doc))
            .await
            .map_err(|_| PlatformError::internal("reading the metadata stopped"))?
            .map_err(|e| bad(e.to_string()))?;
        self.sso
            .policy
            .check_endpoint(&meta.sso_redirect_url)
            .map_err(|e| bad(format!("its SingleSignOnService cannot be used: {e}")))?;
        let (sp_key_pem, sp_cert_pem) = Self::sp_key_pair(engine, existing).await?;
        Ok(Provider {
            name: name.clone(),
            display_name: input.display_name,
            enabled: input.enabled,
            jit: input.jit,
            link_by_email: input.link_by_email.unwrap_or(false),
            group_roles: input.group_roles,
            protocol: Protocol::Saml(Box::new(SamlSettings {
                idp_metadata: xml,
                metadata_url: saml.metadata_url,
                idp_entity_id: meta.entity_id,
                idp_sso_url: meta.sso_redirect_url,
                idp_certificates: meta.signing_certificates,
                name_id_format: saml.name_id_format,
                email_attribute: saml.email_attribute.unwrap_or_else(default_email_attribute),
                name_attribute: saml.name_attribute.unwrap_or_else(default_name_attribute),
                groups_attribute: saml
                    .groups_attribute
                    .unwrap_or_else(default_groups_attribute),
                require_encrypted: saml.require_encrypted,
                sp_key_pem,
                sp_cert_pem,
            })),
        })
    }

    /// The SP key pair: the stored provider's (the IdP encrypts to its certificate), or
    /// a new one for a new SAML provider.
    async fn sp_key_pair(
        engine: Arc<dyn SamlEngine>,
        existing: Option<&Provider>,
    ) -> Result<(Zeroizing<String>, String), PlatformError> {
        if let Some(Protocol::Saml(s)) = existing.map(|e| &e.protocol) {
            return Ok((s.sp_key_pem.clone(), s.sp_cert_pem.clone()));
        }
        // RSA key generation takes a while: off the async workers.
        Ok(
            tokio::task::spawn_blocking(move || engine.new_sp_key_pair())
                .await
                .map_err(|_| PlatformError::internal("SP key generation stopped"))??,
        )
    }

    /// GETs IdP metadata from `url`: only from a host the operator lists in
    /// `sso.allowed_hosts` (or a loopback test IdP when plain HTTP to loopback is
    /// allowed), through the same guarded transport as OIDC discovery.
    async fn fetch_idp_metadata(&self, url: &str) -> Result<String, PlatformError> {
        let field = "saml/metadata_url";
        let policy = &self.sso.policy;
        let loopback_test = policy.allow_http_loopback
            && openidconnect::url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .is_some_and(|h| h == "127.0.0.1" || h == "[::1]" || h == "localhost");
        if policy.allowed_hosts.is_empty() && !loopback_test {
            return Err(PlatformError::Invalid {
                field: Some(field),
                message: "metadata is fetched only from hosts the operator lists in sso.allowed_hosts; give it inline as idp_metadata instead".into(),
            });
        }
        policy.check(field, url)?;
        let http = self.sso.transport()?;
        let failed = |why: String| PlatformError::Invalid {
            field: Some(field),
            message: format!("the metadata could not be fetched: {why}"),
        };
        let body =
            super::sso::fetch_document(&http, url, "application/samlmetadata+xml, application/xml")
                .await
                .map_err(failed)?;
        String::from_utf8(body).map_err(|_| failed("not UTF-8".into()))
    }

    fn sp<'a>(
        &self,
        entity_id: &'a str,
        acs_url: &'a str,
        settings: &'a SamlSettings,
    ) -> SpContext<'a> {
        SpContext {
            entity_id,
            acs_url,
            settings,
            skew_secs: self.sso.skew,
        }
    }

    /// Starts a SAML round trip: an AuthnRequest (HTTP-Redirect) whose id is
    /// `_` + `token` (random for a sign-in, bound to what is signed for a signature,
    /// which also sets `ForceAuthn`), `RelayState` our random state.
    pub(super) async fn saml_begin(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        saml: &SamlSettings,
        token: String,
        purpose: Purpose,
        from: std::net::IpAddr,
    ) -> Result<FlowStart, PlatformError> {
        let engine = self.saml_engine()?;
        // Stored settings are judged by today's policy (it may be stricter than when
        // they were stored).
        if !saml.idp_sso_url.is_empty() {
            self.sso.policy.check_endpoint(&saml.idp_sso_url)?;
        }
        let (entity, acs) = self.sp_urls(&tenant.slug, &provider.name);
        let state = random_token()?;
        let id = request_id(&token);
        let (force, challenge_id) = match &purpose {
            Purpose::Sign { challenge, .. } => (true, Some(challenge.clone())),
            Purpose::SignIn => (false, None),
        };
        // Key and metadata parsing, deflate: off the async workers (this is anonymous).
        let (settings, skew) = (saml.clone(), self.sso.skew);
        let (entity_c, acs_c, id_c, state_c) = (entity, acs, id.clone(), state.clone());
        let url = tokio::task::spawn_blocking(move || {
            let sp = SpContext {
                entity_id: &entity_c,
                acs_url: &acs_c,
                settings: &settings,
                skew_secs: skew,
            };
            engine.authn_request_url(sp, &id_c, &state_c, force)
        })
        .await
        .map_err(|_| PlatformError::internal("AuthnRequest stopped"))??;
        let cookie_value = random_token()?;
        self.sso.put_flow(
            state.clone(),
            Flow {
                tenant: tenant.id,
                client: crate::identity::throttle::throttle_address(from),
                provider: provider.name.clone(),
                issuer: saml.idp_entity_id.clone(),
                nonce: id,
                verifier: Zeroizing::new(String::new()),
                binding: sha256(&[cookie_value.as_bytes()]),
                started: Instant::now(),
                started_at: now_secs(self),
                purpose,
            },
        )?;
        Ok(FlowStart {
            authorization_url: url,
            cookie_name: super::binding_cookie_name(&state),
            cookie_value,
            cookie_path: "/".into(),
            max_age_secs: self.sso.flow_ttl.as_secs(),
            cross_site_post: true,
            challenge_id,
        })
    }

    /// The SAML half of a callback (the ACS POST): the response screened, verified by
    /// the engine against this flow's request id (off the async workers: XML and RSA
    /// work), then our rules (signed assertion, audience, issuer, expiry, AuthnInstant
    /// for a signature), then the assertion id spent. Returns what it asserts and the
    /// SHA-256 of the decoded response.
    pub(super) async fn saml_finish(
        &self,
        tenant: &Tenant,
        provider: &Provider,
        saml: &SamlSettings,
        flow: &Flow,
        query: &CallbackQuery,
    ) -> Result<(Asserted, [u8; 32]), PlatformError> {
        let engine = self.saml_engine()?;
        let b64 = query
            .saml_response
            .as_deref()
            .ok_or_else(|| refused("the POST carries no SAMLResponse"))?;
        let xml = screen_response(b64)?;
        let digest = sha256(&[xml.as_bytes()]);
        let (entity, acs) = self.sp_urls(&tenant.slug, &provider.name);
        let (settings, request, skew) = (saml.clone(), flow.nonce.clone(), self.sso.skew);
        let (entity_c, acs_c) = (entity.clone(), acs.clone());
        let verified = tokio::task::spawn_blocking(move || {
            let sp = SpContext {
                entity_id: &entity_c,
                acs_url: &acs_c,
                settings: &settings,
                skew_secs: skew,
            };
            engine.verify_response(sp, &xml, &request)
        })
        .await
        .map_err(|_| PlatformError::internal("SAML verification stopped"))??;
        let now = now_secs(self);
        let authn_after = match flow.purpose {
            Purpose::Sign { .. } => Some(flow.started_at - self.sso.skew),
            Purpose::SignIn => None,
        };
        verified.check(self.sp(&entity, &acs, saml), now, authn_after)?;
        let asserted = verified.asserted(saml)?;
        self.spend_assertion(tenant.id, &verified, now)?;
        Ok((asserted, digest))
    }

    /// Remembers an assertion (by SHA-256 of its issuer and id) for as long as a flow
    /// could still take it — until its `NotOnOrAfter`, and never longer than a flow
    /// lives: after that no flow exists that its `InResponseTo` could answer — and
    /// refuses a second use. Bounded per tenant (one tenant's IdP cannot crowd out the
    /// others) and in all; full of unexpired ids, it refuses (503) rather than forgets.
    fn spend_assertion(
        &self,
        tenant: TenantId,
        verified: &crate::identity::saml::VerifiedAssertion,
        now: i64,
    ) -> Result<(), PlatformError> {
        let key = sha256(&[
            b"strongroom-saml-assertion-v1\n",
            verified.issuer.as_bytes(),
            b"\n",
            verified.id.as_bytes(),
        ]);
        let flow_ttl = i64::try_from(self.sso.flow_ttl.as_secs()).unwrap_or(i64::MAX);
        let until = verified
            .not_on_or_after
            .min(now.saturating_add(flow_ttl))
            .saturating_add(self.sso.skew);
        let mut seen = self
            .sso
            .seen_assertions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let total: usize = seen.values().map(HashMap::len).sum();
        let mine = seen.entry(tenant).or_default();
        if mine.get(&key).is_some_and(|t| *t > now) {
            return Err(
                SsoError::Refused("this assertion was already used (replay)".into()).into(),
            );
        }
        if mine.len() >= MAX_SEEN_PER_TENANT || total >= MAX_SEEN_ASSERTIONS {
            mine.retain(|_, t| *t > now);
            if mine.len() >= MAX_SEEN_PER_TENANT {
                return Err(PlatformError::unavailable(
                    "too many SAML sign-ins in progress for this tenant; retry shortly",
                ));
            }
            seen.retain(|_, m| {
                m.retain(|_, t| *t > now);
                !m.is_empty()
            });
            // Full in all: only a tenant holding more than its fair share is refused,
            // so a few busy (or hostile) tenants cannot lock out the rest; the table
            // stays bounded by the per-tenant cap.
            let total: usize = seen.values().map(HashMap::len).sum();
            let mine = seen.get(&tenant).map_or(0, HashMap::len);
            if total >= MAX_SEEN_ASSERTIONS && mine >= total / seen.len().max(1) {
                return Err(PlatformError::unavailable(
                    "too many SAML sign-ins in progress; retry shortly",
                ));
            }
        }
        seen.entry(tenant).or_default().insert(key, until);
        Ok(())
    }

    /// Our SAML service provider's metadata for the tenant's provider `name`
    /// (anonymous: the IdP's administrator registers it). Unknown tenants, unknown
    /// providers and OIDC providers look alike.
    pub async fn saml_sp_metadata(
        &self,
        slug: &Slug,
        name: &ProviderName,
    ) -> Result<String, PlatformError> {
        let engine = self.saml_engine()?;
        let tenant = self
            .tenant_by_slug(slug)
            .await?
            .ok_or(PlatformError::NotFound("identity provider"))?;
        let settings = self.sso_settings_for(&tenant).await?;
        let Some(Protocol::Saml(saml)) = settings.provider(name).map(|p| &p.protocol) else {
            return Err(PlatformError::NotFound("identity provider"));
        };
        let (entity, acs) = self.sp_urls(slug, name);
        Ok(engine.sp_metadata(self.sp(&entity, &acs, saml))?)
    }
}
