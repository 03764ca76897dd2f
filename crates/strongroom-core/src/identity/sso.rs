//! Single sign-on: which identity providers a tenant trusts, and how what they say
//! about a person is turned into one of the tenant's users.
//!
//! This module holds the tenant's SSO settings (stored as one sealed value, so an
//! OIDC client secret is encrypted under the tenant's keys with the rest), their
//! validation, the mapping of claims to a user and roles, and the binding of a
//! signature's re-authentication to what is signed. The protocol exchanges themselves
//! (discovery, the code flow, ID-token verification) are in `platform::sso`, over the
//! [`IdpTransport`] port: the core opens no sockets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::access::rbac::Role;
use crate::audit::merkle::sha256;
use crate::identity::saml::SamlSettings;
use crate::identity::user::UserId;
use openidconnect::{http, url};

/// Most identity providers one tenant may configure.
pub const MAX_PROVIDERS: usize = 8;
/// Most break-glass accounts a tenant may name.
pub const MAX_BREAK_GLASS: usize = 8;
/// Most group → role mappings per provider.
pub const MAX_GROUP_MAPPINGS: usize = 64;
/// Most scopes requested from an OIDC provider.
pub const MAX_SCOPES: usize = 16;
/// Longest URL, client id, scope, claim or group name accepted in a setting.
pub const MAX_SETTING_LEN: usize = 512;
/// Longest response body read from an identity provider (discovery, keys, tokens).
pub const MAX_IDP_RESPONSE: usize = 256 * 1024;
/// Most groups read from one identity assertion (the rest are ignored).
pub const MAX_GROUPS: usize = 256;

/// Why an SSO setting or an identity provider's answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// A setting breaks a rule (the field, what is wrong).
    #[error("{1}")]
    Invalid(&'static str, String),
    /// The identity provider's answer was refused: why, in words safe to show.
    #[error("{0}")]
    Refused(String),
    /// The identity provider could not be reached or answered nonsense.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// Our side failed (a stored setting unreadable, the XML library): a server fault,
    /// never blamed on the client.
    #[error("single sign-on failed on the server: {0}")]
    Internal(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> SsoError {
    SsoError::Invalid(field, message.into())
}

/// A provider's name within its tenant: 1-32 characters of a-z, 0-9 and '-', starting
/// with a letter. It appears in URLs (`/v1/t/{tenant}/sso/{provider}/…`) and in the
/// audit trail. Links of subjects to users are bound to (name, issuer): a provider
/// removed and added back with the same name and issuer finds its links again; one
/// pointed at another issuer links afresh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ProviderName(String);

impl ProviderName {
    /// Longest name.
    pub const MAX_LEN: usize = 32;

    /// A valid name, or why not.
    pub fn parse(s: &str) -> Result<Self, SsoError> {
        // `providers` and `policy` are path segments of the settings API.
        let ok = !s.is_empty()
            && !matches!(s, "providers" | "policy")
            && s.len() <= Self::MAX_LEN
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(
                "name",
                "provider names are 1-32 characters of a-z, 0-9 and '-', starting with a letter",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProviderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProviderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A tenant's single sign-on settings: its identity providers and whether local
/// passwords are still accepted. Stored whole as one sealed value (kind
/// `tenant-policy`, id `sso`), replaced by compare-and-swap, so two administrators
/// changing it at once cannot lose each other's change.
// Stored types read leniently (a field a later version adds must not make every
// sign-in of the tenant fail after a downgrade); the API's input types are strict.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SsoSettings {
    /// Local passwords are refused (sign-in and signatures) except for `break_glass`.
    #[serde(default)]
    pub require_sso: bool,
    /// Users who may still sign in with a password when `require_sso` is set (each such
    /// sign-in is audited as a break-glass sign-in).
    #[serde(default)]
    pub break_glass: Vec<UserId>,
    /// The identity providers, by name.
    #[serde(default)]
    pub providers: Vec<Provider>,
}

impl std::fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("require_sso", &self.require_sso)
            .field("providers", &self.providers.len())
            .finish_non_exhaustive()
    }
}

impl SsoSettings {
    /// The enabled or disabled provider called `name`.
    pub fn provider(&self, name: &ProviderName) -> Option<&Provider> {
        self.providers.iter().find(|p| &p.name == name)
    }

    /// Whether `user` must sign in by SSO (a password is refused for them).
    pub fn password_refused(&self, user: UserId) -> bool {
        self.require_sso && !self.break_glass.contains(&user)
    }
}

/// One identity provider the tenant trusts.
#[derive(Clone, Serialize, Deserialize)]
pub struct Provider {
    /// Its name in the tenant.
    pub name: ProviderName,
    /// What the sign-in button says.
    pub display_name: String,
    /// Whether sign-ins through it are accepted.
    pub enabled: bool,
    /// Create a user at the first sign-in of someone the tenant does not know
    /// (just-in-time provisioning). Off by default: users are invited or provisioned.
    #[serde(default)]
    pub jit: bool,
    /// At the first sign-in of a subject not yet linked, match an existing active user
    /// by the provider's e-mail claim, when the provider says it is verified. On by
    /// default; turn it off for providers whose users can choose their e-mail address.
    #[serde(default = "yes")]
    pub link_by_email: bool,
    /// Group name → roles. When not empty, each sign-in sets the user's roles to those
    /// of the groups the provider names (the provider is the authority); when empty,
    /// roles are managed in the tenant and sign-ins leave them alone.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// The protocol and its settings (stored as an `oidc` or a `saml` member).
    #[serde(flatten)]
    pub protocol: Protocol,
}

/// How a provider is spoken to.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenID Connect.
    Oidc(OidcSettings),
    /// SAML 2.0 (boxed: the metadata and the SP key pair are large).
    Saml(Box<SamlSettings>),
}

fn yes() -> bool {
    true
}

impl Provider {
    /// The roles the provider's `groups` map to, deduplicated, in catalogue order;
    /// `None` when the provider does not manage roles.
    pub fn roles_for(&self, groups: &[String]) -> Option<Vec<Role>> {
        if self.group_roles.is_empty() {
            return None;
        }
        let mut roles: Vec<Role> = groups
            .iter()
            .filter_map(|g| self.group_roles.get(g))
            .flatten()
            .filter_map(|r| Role::parse(r))
            .collect();
        roles.sort_by_key(|r| Role::ALL.iter().position(|x| x == r));
        roles.dedup();
        Some(roles)
    }

    /// Checks every field, and that `issuer` is one this server may fetch from.
    pub fn validate(&self, policy: &IssuerPolicy) -> Result<(), SsoError> {
        text("display_name", &self.display_name, 1, 64)?;
        if self.group_roles.len() > MAX_GROUP_MAPPINGS {
            return Err(invalid(
                "group_roles",
                format!("at most {MAX_GROUP_MAPPINGS} groups"),
            ));
        }
        for (group, roles) in &self.group_roles {
            text("group_roles", group, 1, MAX_SETTING_LEN)?;
            if roles.len() > Role::ALL.len() {
                return Err(invalid("group_roles", "too many roles for one group"));
            }
            if let Some(r) = roles.iter().find(|r| Role::parse(r).is_none()) {
                return Err(invalid(
                    "group_roles",
                    format!("unknown role {r:?}: use admin, preparer, reviewer, viewer or auditor"),
                ));
            }
        }
        match &self.protocol {
            Protocol::Oidc(o) => o.validate(policy),
            Protocol::Saml(s) => s.validate(),
        }
    }

    /// `oidc` or `saml`.
    pub fn protocol_name(&self) -> &'static str {
        match &self.protocol {
            Protocol::Oidc(_) => "oidc",
            Protocol::Saml(_) => "saml",
        }
    }

    /// Who issues its assertions: the OIDC issuer or the SAML IdP's entity id (links
    /// of subjects to users are bound to it).
    pub fn issuer(&self) -> &str {
        match &self.protocol {
            Protocol::Oidc(o) => &o.issuer,
            Protocol::Saml(s) => &s.idp_entity_id,
        }
    }

    /// Its OIDC settings, if it is an OIDC provider.
    pub fn oidc(&self) -> Option<&OidcSettings> {
        match &self.protocol {
            Protocol::Oidc(o) => Some(o),
            Protocol::Saml(_) => None,
        }
    }
}

/// An OpenID Connect provider: the authorization-code flow with PKCE, `state` and
/// `nonce`, against the provider's discovery document.
#[derive(Clone, Serialize, Deserialize)]
pub struct OidcSettings {
    /// The issuer (`iss`), whose `/.well-known/openid-configuration` is fetched; the
    /// document must name exactly this issuer.
    pub issuer: String,
    /// Our client id at the provider (the ID token's audience).
    pub client_id: String,
    /// Our client secret at the provider: write-only through the API, sealed at rest.
    #[serde(serialize_with = "expose_secret", deserialize_with = "read_secret")]
    pub client_secret: Zeroizing<String>,
    /// Scopes requested besides `openid` (e.g. `email`, `profile`, `groups`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim holding the e-mail address.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// The claim holding the full (printed) name.
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The claim holding the list of groups (for `group_roles`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// ID-token signature algorithms accepted (`RS256`, `ES256`, `PS256`, `EdDSA`).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

fn expose_secret<S: serde::Serializer>(s: &Zeroizing<String>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

fn read_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    Ok(Zeroizing::new(String::deserialize(d)?))
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

/// The ID-token signature algorithms this server knows how to check.
pub const ALGORITHMS: [&str; 4] = ["RS256", "ES256", "PS256", "EdDSA"];

impl OidcSettings {
    fn validate(&self, policy: &IssuerPolicy) -> Result<(), SsoError> {
        policy.check("oidc/issuer", &self.issuer)?;
        text("oidc/client_id", &self.client_id, 1, MAX_SETTING_LEN)?;
        text(
            "oidc/client_secret",
            &self.client_secret,
            1,
            MAX_SETTING_LEN,
        )?;
        if self.scopes.len() > MAX_SCOPES {
            return Err(invalid(
                "oidc/scopes",
                format!("at most {MAX_SCOPES} scopes"),
            ));
        }
        for s in &self.scopes {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
            if !ok || s == "openid" {
                return Err(invalid(
                    "oidc/scopes",
                    format!("{s:?} is not a scope to ask for (openid is always requested)"),
                ));
            }
        }
        for (field, claim) in [
            ("oidc/email_claim", &self.email_claim),
            ("oidc/name_claim", &self.name_claim),
            ("oidc/groups_claim", &self.groups_claim),
        ] {
            text(field, claim, 1, 64)?;
        }
        if self.algorithms.is_empty() || self.algorithms.len() > ALGORITHMS.len() {
            return Err(invalid(
                "oidc/algorithms",
                "name one or more of RS256, ES256, PS256, EdDSA",
            ));
        }
        if let Some(a) = self
            .algorithms
            .iter()
            .find(|a| !ALGORITHMS.contains(&a.as_str()))
        {
            return Err(invalid(
                "oidc/algorithms",
                format!("{a:?} is not accepted: use RS256, ES256, PS256 or EdDSA"),
            ));
        }
        Ok(())
    }
}

/// Which issuers the server may fetch from: `https` always (any public host, or only
/// `allowed_hosts` when the operator lists them); plain `http` only to a loopback
/// address, and only when the operator allows it (tests, a local IdP). Addresses in
/// private, link-local and loopback ranges are refused over `https` too unless
/// allowed, so a tenant administrator cannot point the server at its own network.
#[derive(Debug, Clone, Default)]
pub struct IssuerPolicy {
    /// Accept `http://127.0.0.1…`/`http://[::1]…`/`http://localhost…` issuers.
    pub allow_http_loopback: bool,
    /// When not empty, the only hosts an issuer may name.
    pub allowed_hosts: Vec<String>,
}

impl IssuerPolicy {
    /// Checks the issuer `url` for `field`.
    pub fn check(&self, field: &'static str, url: &str) -> Result<(), SsoError> {
        self.check_url(field, url, false)
    }

    /// Checks an endpoint a provider's discovery document names (a query string is
    /// allowed there, as some providers need one).
    pub fn check_endpoint(&self, url: &str) -> Result<(), SsoError> {
        self.check_url("endpoint", url, true)
    }

    fn check_url(&self, field: &'static str, url: &str, query: bool) -> Result<(), SsoError> {
        text(field, url, 1, MAX_SETTING_LEN)?;
        let parsed = url::Url::parse(url).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
        if (parsed.query().is_some() && !query)
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
        {
            return Err(invalid(
                field,
                "an issuer has no query, fragment or user info",
            ));
        }
        if parsed.password().is_some() {
            return Err(invalid(
                field,
                "an issuer has no query, fragment or user info",
            ));
        }
        let host = parsed
            .host()
            .ok_or_else(|| invalid(field, "the URL names no host"))?;
        let (loopback, internal) = classify(&host);
        match parsed.scheme() {
            "https" if !internal || self.allow_http_loopback && loopback => {}
            "https" => {
                return Err(invalid(
                    field,
                    "the issuer names a private or loopback address",
                ));
            }
            "http" if loopback && self.allow_http_loopback => {}
            _ => return Err(invalid(field, "the issuer must be an https URL")),
        }
        if !self.allowed_hosts.is_empty() {
            let h = host.to_string();
            if !self
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&h))
            {
                return Err(invalid(
                    field,
                    format!(
                        "{h} is not among the identity-provider hosts this server allows (sso.allowed_hosts)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether a URL's host is a loopback name or address, and whether it is internal
/// (loopback, or an IP literal the server may not reach). IP literals are judged here;
/// names are judged again when they are resolved, by the transport
/// ([`address_allowed`]), so DNS cannot smuggle an internal address in.
fn classify(host: &url::Host<&str>) -> (bool, bool) {
    let loopback = match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
    };
    let internal = loopback
        || match host {
            url::Host::Ipv4(a) => !address_allowed(std::net::IpAddr::V4(*a), false),
            url::Host::Ipv6(a) => !address_allowed(std::net::IpAddr::V6(*a), false),
            url::Host::Domain(_) => false,
        };
    (loopback, internal)
}

/// Whether the server may connect to `ip` for an identity provider: a public unicast
/// address (never private, loopback, link-local, shared, benchmarking, documentation,
/// multicast, reserved, or an IPv6 form that embeds one of those), or a loopback one
/// when `allow_loopback` (a local test IdP).
pub fn address_allowed(ip: std::net::IpAddr, allow_loopback: bool) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = |a: Ipv4Addr| {
        let [b0, b1, ..] = a.octets();
        if a.is_loopback() {
            return allow_loopback;
        }
        !(a.is_private()
            || a.is_link_local()
            || a.is_unspecified()
            || a.is_broadcast()
            || a.is_multicast()
            || a.is_documentation()
            || b0 == 0
            || b0 >= 240
            || (b0 == 100 && (64..128).contains(&b1)) // shared address space (CGNAT, cloud metadata)
            || (b0 == 198 && (18..20).contains(&b1)) // benchmarking
            || (b0 == 192 && b1 == 0 && a.octets()[2] == 0) // IETF protocol assignments
            || (b0 == 192 && b1 == 88 && a.octets()[2] == 99)) // 6to4 relay anycast
    };
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => {
            if let Some(mapped) = a.to_ipv4_mapped() {
                return v4(mapped);
            }
            if a.is_loopback() {
                return allow_loopback;
            }
            let s0 = a.segments()[0];
            let nat64 = a.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            // Only global unicast (2000::/3), less the special-purpose blocks in it.
            if (s0 & 0xe000) != 0x2000 {
                return false;
            }
            let teredo = s0 == 0x2001 && a.segments()[1] == 0;
            !(teredo
                || a.is_unspecified()
                || a.is_multicast()
                || nat64
                || s0 == 0x2002 // 6to4
                || (s0 & 0xfe00) == 0xfc00 // unique local
                || (s0 & 0xffc0) == 0xfe80 // link-local
                || (s0 & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s0 == 0x2001 && a.segments()[1] == 0x0db8) // documentation
                || a.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), SsoError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(invalid(field, format!("{min}-{max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "no control characters"));
    }
    Ok(())
}

/// What a provider asserted about the person who signed in, taken from a verified ID
/// token.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// The provider's stable subject identifier (`sub`).
    pub subject: String,
    /// The e-mail claim, if any.
    pub email: Option<String>,
    /// Whether the provider says the e-mail is verified.
    pub email_verified: bool,
    /// The name claim, if any.
    pub name: Option<String>,
    /// The groups claim (at most [`MAX_GROUPS`]).
    pub groups: Vec<String>,
    /// When the person authenticated at the provider (`auth_time`), seconds since the
    /// epoch.
    pub auth_time: Option<i64>,
}

impl Asserted {
    /// Reads the mapped claims from a verified ID token's payload.
    pub fn from_claims(
        settings: &OidcSettings,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, SsoError> {
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| SsoError::Refused("the ID token has no usable sub".into()))?
            .to_owned();
        let string = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .filter(|s| s.chars().count() <= MAX_SETTING_LEN)
                .map(str::to_owned)
        };
        let groups = match claims.get(&settings.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str())
                .filter(|g| g.len() <= MAX_SETTING_LEN)
                .take(MAX_GROUPS)
                .map(str::to_owned)
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Self {
            subject,
            email: string(&settings.email_claim),
            // `email_verified` speaks of the `email` claim only: with another claim
            // mapped to the address (a username, a UPN), nothing says it is verified.
            email_verified: settings.email_claim == "email"
                && claims
                    .get("email_verified")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            name: string(&settings.name_claim),
            groups,
            auth_time: claims.get("auth_time").and_then(serde_json::Value::as_i64),
        })
    }
}

/// The id of the sealed link from a provider's subject to a user: SHA-256 over the
/// provider's name, its issuer and the subject (hex). The issuer is part of it, so a
/// provider re-pointed at another issuer links nobody by accident.
pub fn link_id(provider: &ProviderName, issuer: &str, subject: &str) -> String {
    hex::encode(sha256(&[
        b"strongroom-sso-link-v1\n",
        provider.as_str().as_bytes(),
        b"\n",
        issuer.as_bytes(),
        b"\n",
        subject.as_bytes(),
    ]))
}

/// What a signature's re-authentication is for: the OIDC `nonce` of the round trip is
/// derived from it, so an ID token obtained for one record version and meaning can
/// never complete a signature of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningIntent {
    /// The signer's session.
    pub session: String,
    /// The signer.
    pub user: UserId,
    /// The record.
    pub record: String,
    /// The version.
    pub version: u64,
    /// The content hash of that version.
    pub content_hash: [u8; 32],
    /// The meaning being signed.
    pub meaning: String,
}

impl SigningIntent {
    /// The nonce: base64url(SHA-256(label, challenge id, session, user, record,
    /// version, content hash, meaning)). The random challenge id makes it unguessable;
    /// the rest binds it to what is signed.
    pub fn nonce(&self, challenge: &str) -> String {
        use base64::Engine as _;
        let version = self.version.to_be_bytes();
        let user = self.user.to_string();
        let digest = sha256(&[
            b"strongroom-sign-reauth-v1\n",
            challenge.as_bytes(),
            b"\n",
            self.session.as_bytes(),
            b"\n",
            user.as_bytes(),
            b"\n",
            self.record.as_bytes(),
            b"\n",
            &version,
            &self.content_hash,
            self.meaning.as_bytes(),
        ]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }
}

/// The transport to identity providers (discovery, keys, token requests): a port, so
/// the core opens no sockets. The server's implementation follows no redirects,
/// bounds time and reads at most [`MAX_IDP_RESPONSE`] bytes.
#[async_trait::async_trait]
pub trait IdpTransport: Send + Sync + 'static {
    /// Sends one request and returns the whole response.
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, IdpTransportError>;
}

/// A request to an identity provider failed before an answer arrived.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdpTransportError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(issuer: &str) -> OidcSettings {
        OidcSettings {
            issuer: issuer.into(),
            client_id: "c".into(),
            client_secret: Zeroizing::new("s".into()),
            scopes: default_scopes(),
            email_claim: default_email_claim(),
            name_claim: default_name_claim(),
            groups_claim: default_groups_claim(),
            algorithms: default_algorithms(),
        }
    }

    #[test]
    fn issuers_are_https_or_allowed_loopback_and_never_internal() {
        let strict = IssuerPolicy::default();
        let tests = IssuerPolicy {
            allow_http_loopback: true,
            allowed_hosts: vec![],
        };
        assert!(strict.check("issuer", "https://idp.example.com").is_ok());
        assert!(
            strict
                .check("issuer", "https://idp.example.com/realms/x")
                .is_ok()
        );
        for bad in [
            "http://idp.example.com",
            "http://127.0.0.1:9000",
            "https://127.0.0.1",
            "https://10.1.2.3",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a00:1]/",
            "https://100.100.100.200/",
            "https://0.1.2.3/",
            "https://:pw@idp.example.com",
            "https://printer.localhost/",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "https://[64:ff9b:1::a00:1]/",
            "https://192.88.99.1/",
            "https://user@idp.example.com",
            "https://idp.example.com/?a=b",
            "ftp://idp.example.com",
            "file:///etc/passwd",
            "not a url",
            "",
        ] {
            assert!(strict.check("issuer", bad).is_err(), "{bad}");
        }
        assert!(tests.check("issuer", "http://127.0.0.1:9000").is_ok());
        assert!(tests.check("issuer", "http://10.0.0.1").is_err());
        let listed = IssuerPolicy {
            allow_http_loopback: false,
            allowed_hosts: vec!["login.example.com".into()],
        };
        assert!(
            listed
                .check("issuer", "https://login.example.com/x")
                .is_ok()
        );
        assert!(
            listed
                .check("issuer", "https://evil.example.com/x")
                .is_err()
        );
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        let p = IssuerPolicy::default();
        let mut s = oidc("https://idp.example.com");
        assert!(s.validate(&p).is_ok());
        s.scopes = vec!["openid".into()];
        assert!(s.validate(&p).is_err());
        s.scopes = vec!["a b".into()];
        assert!(s.validate(&p).is_err());
        s = oidc("https://idp.example.com");
        s.algorithms = vec!["HS256".into()];
        assert!(
            s.validate(&p).is_err(),
            "a shared-secret algorithm is never accepted"
        );
        s.algorithms = vec!["none".into()];
        assert!(s.validate(&p).is_err());
        assert!(ProviderName::parse("okta-1").is_ok());
        for bad in ["", "1okta", "Okta", "a/b", &"a".repeat(33)] {
            assert!(ProviderName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_map_to_roles_only_when_the_provider_manages_them() {
        let mut p = Provider {
            name: ProviderName::parse("idp").unwrap(),
            display_name: "IdP".into(),
            enabled: true,
            jit: false,
            link_by_email: true,
            group_roles: BTreeMap::new(),
            protocol: Protocol::Oidc(oidc("https://idp.example.com")),
        };
        assert_eq!(p.roles_for(&["qa".into()]), None);
        p.group_roles
            .insert("qa".into(), vec!["reviewer".into(), "viewer".into()]);
        p.group_roles.insert("admins".into(), vec!["admin".into()]);
        assert_eq!(
            p.roles_for(&["qa".into(), "qa".into(), "other".into()]),
            Some(vec![Role::Reviewer, Role::Viewer])
        );
        assert_eq!(p.roles_for(&[]), Some(vec![]));
    }

    #[test]
    fn settings_stored_before_saml_still_read_and_round_trip() {
        let stored = serde_json::json!({
            "require_sso": false,
            "providers": [{
                "name": "corp", "display_name": "Corp", "enabled": true,
                "oidc": {"issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s"}
            }]
        });
        let s: SsoSettings = serde_json::from_value(stored).unwrap();
        let p = &s.providers[0];
        assert_eq!(p.protocol_name(), "oidc");
        assert_eq!(p.issuer(), "https://idp.example.com");
        assert!(p.link_by_email);
        let again = serde_json::to_value(&s).unwrap();
        assert_eq!(again["providers"][0]["oidc"]["client_id"], "c");
        assert!(again["providers"][0].get("saml").is_none());
    }

    #[test]
    fn a_nonce_binds_the_challenge_to_what_is_signed() {
        let intent = SigningIntent {
            session: "s".into(),
            user: UserId::generate(),
            record: "r".into(),
            version: 1,
            content_hash: [7; 32],
            meaning: "approved".into(),
        };
        let n = intent.nonce("c1");
        assert_eq!(n, intent.nonce("c1"));
        assert_ne!(n, intent.nonce("c2"));
        let other = SigningIntent {
            meaning: "reviewed".into(),
            ..intent.clone()
        };
        assert_ne!(n, other.nonce("c1"));
        let other = SigningIntent {
            content_hash: [8; 32],
            ..intent
        };
        assert_ne!(n, other.nonce("c1"));
    }
}
