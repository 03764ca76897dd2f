//! SAML 2.0 single sign-on: a tenant's SAML identity providers, the screening every
//! response gets before any XML parser sees it, and the rules an assertion must meet
//! beyond its signature (signed assertion, our audience, replay, freshness).
//!
//! XML signatures, decryption and canonicalisation are never ours: they are done by
//! xmlsec1 (through `samael`, decision 0009) behind the [`SamlEngine`] port, which the
//! server binary implements, so the core links no C XML library. The engine returns
//! what a verified assertion says ([`VerifiedAssertion`]); this module decides whether
//! that is enough.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::sso::{Asserted, MAX_GROUPS, MAX_SETTING_LEN, SsoError};

/// Largest `SAMLResponse` form value accepted (base64), before decoding.
pub const MAX_SAML_RESPONSE_B64: usize = 192 * 1024;
/// Largest IdP metadata document accepted (given inline or fetched).
pub const MAX_IDP_METADATA: usize = 128 * 1024;
/// Attributes read from one assertion (the rest are ignored), and values per attribute.
pub const MAX_ATTRIBUTES: usize = 64;

/// The NameID formats a provider may be asked for.
pub const NAME_ID_FORMATS: [&str; 4] = [
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
];

/// A SAML 2.0 identity provider, as stored (inside the sealed SSO settings: the SP's
/// private key is encrypted under the tenant's data key with the rest).
#[derive(Clone, Serialize, Deserialize)]
pub struct SamlSettings {
    /// The IdP's metadata (an `EntityDescriptor`), as given or as last fetched.
    pub idp_metadata: String,
    /// Where the metadata was fetched from, when it was given by URL (re-read each time
    /// the administrator stores the provider again).
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// The IdP's entity id, read from the metadata: every Response and Assertion
    /// `Issuer` must be exactly this.
    pub idp_entity_id: String,
    /// Its HTTP-Redirect single sign-on URL, read from the metadata (checked against
    /// the operator's policy at every sign-in).
    #[serde(default)]
    pub idp_sso_url: String,
    /// SHA-256 (hex) of each signing certificate the metadata names (shown, and in the
    /// audit entry, so a change of trust anchor is visible).
    #[serde(default)]
    pub idp_certificates: Vec<String>,
    /// The NameID format asked for in the AuthnRequest (none: the IdP's choice).
    #[serde(default)]
    pub name_id_format: Option<String>,
    /// The attribute holding the e-mail address (empty: the NameID is the address).
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// The attribute holding the full (printed) name.
    #[serde(default = "default_name_attribute")]
    pub name_attribute: String,
    /// The attribute holding the groups (for `group_roles`).
    #[serde(default = "default_groups_attribute")]
    pub groups_attribute: String,
    /// Refuse assertions that arrive in clear (the IdP must encrypt them to the SP's
    /// certificate).
    #[serde(default)]
    pub require_encrypted: bool,
    /// The SP's private key (PKCS#8 PEM) for encrypted assertions: generated when the
    /// provider is first stored, kept across replacements, never shown.
    #[serde(serialize_with = "expose", deserialize_with = "read_secret")]
    pub sp_key_pem: Zeroizing<String>,
    /// The SP's self-signed certificate (PEM), published in its metadata.
    pub sp_cert_pem: String,
}

fn expose<S: serde::Serializer>(s: &Zeroizing<String>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s)
}

fn read_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    Ok(Zeroizing::new(String::deserialize(d)?))
}

/// Default attribute for the e-mail address (saml-idp, Okta and Keycloak mappers).
pub fn default_email_attribute() -> String {
    "email".into()
}
/// Default attribute for the printed name.
pub fn default_name_attribute() -> String {
    "displayName".into()
}
/// Default attribute for groups.
pub fn default_groups_attribute() -> String {
    "groups".into()
}

impl SamlSettings {
    /// Checks the fields an administrator chose (the metadata was checked when read).
    pub fn validate(&self) -> Result<(), SsoError> {
        if let Some(f) = &self.name_id_format
            && !NAME_ID_FORMATS.contains(&f.as_str())
        {
            return Err(SsoError::Invalid(
                "saml/name_id_format",
                format!("{f:?} is not a NameID format this server asks for"),
            ));
        }
        for (field, a) in [
            ("saml/email_attribute", &self.email_attribute),
            ("saml/name_attribute", &self.name_attribute),
            ("saml/groups_attribute", &self.groups_attribute),
        ] {
            if a.chars().count() > MAX_SETTING_LEN || a.chars().any(char::is_control) {
                return Err(SsoError::Invalid(
                    field,
                    format!("at most {MAX_SETTING_LEN} characters, no control characters"),
                ));
            }
        }
        Ok(())
    }
}

/// What the engine read from IdP metadata, refused unless it is usable: an entity id,
/// at least one signing certificate (without one, samael would skip verification) and
/// an HTTP-Redirect single sign-on endpoint.
#[derive(Debug, Clone)]
pub struct IdpMetadata {
    /// `entityID`.
    pub entity_id: String,
    /// The `SingleSignOnService` location for the HTTP-Redirect binding.
    pub sso_redirect_url: String,
    /// SHA-256 (hex) of each signing certificate it names (at least one).
    pub signing_certificates: Vec<String>,
}

/// The service provider one tenant's provider is: what the engine needs to build
/// requests and metadata and to check responses.
#[derive(Clone, Copy)]
pub struct SpContext<'a> {
    /// Our entity id (the audience every assertion must name).
    pub entity_id: &'a str,
    /// Our assertion consumer service (HTTP-POST): Destination and Recipient.
    pub acs_url: &'a str,
    /// The provider's settings.
    pub settings: &'a SamlSettings,
    /// Clock skew allowed, seconds.
    pub skew_secs: i64,
}

impl std::fmt::Debug for SpContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpContext")
            .field("entity_id", &self.entity_id)
            .finish_non_exhaustive()
    }
}

/// What a response's verified assertion says (every field from content xmlsec
/// verified, or from the decrypted assertion whose own signature it verified).
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    /// The Assertion's `ID` (the replay cache's key).
    pub id: String,
    /// Its `Issuer`.
    pub issuer: String,
    /// Whether the Assertion itself carried a signature that verified (a signature
    /// over the Response alone does not count: "signed assertions required").
    pub assertion_signed: bool,
    /// Whether it arrived encrypted.
    pub encrypted: bool,
    /// `Subject/NameID`.
    pub name_id: String,
    /// The NameID's `Format`, if given.
    pub name_id_format: Option<String>,
    /// Every `AudienceRestriction/Audience`.
    pub audiences: Vec<String>,
    /// The earliest `NotOnOrAfter` of the conditions and the bearer confirmation,
    /// seconds since the epoch (how long its id is remembered).
    pub not_on_or_after: i64,
    /// The latest `AuthnStatement/@AuthnInstant`, seconds since the epoch.
    pub authn_instant: Option<i64>,
    /// Attributes by name (values in order), bounded by [`MAX_ATTRIBUTES`].
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// XML signatures and encryption for SAML: a port, implemented by the server binary
/// over xmlsec1. Every method is synchronous and CPU-bound.
pub trait SamlEngine: Send + Sync + 'static {
    /// Reads and checks IdP metadata.
    fn read_idp_metadata(&self, xml: &str) -> Result<IdpMetadata, SsoError>;
    /// A new SP key pair: (PKCS#8 private key PEM, self-signed certificate PEM).
    fn new_sp_key_pair(&self) -> Result<(Zeroizing<String>, String), SsoError>;
    /// The SP's metadata document (`EntityDescriptor`).
    fn sp_metadata(&self, sp: SpContext<'_>) -> Result<String, SsoError>;
    /// The IdP URL (HTTP-Redirect binding) carrying an AuthnRequest with `request_id`
    /// and `relay_state`; `force_authn` asks the IdP to authenticate afresh.
    fn authn_request_url(
        &self,
        sp: SpContext<'_>,
        request_id: &str,
        relay_state: &str,
        force_authn: bool,
    ) -> Result<String, SsoError>;
    /// Verifies a screened response document (see [`screen_response`]) answering
    /// `request_id`: every signature against the IdP's certificates, Destination,
    /// Issuer, status, conditions, bearer confirmation, InResponseTo; decrypts an
    /// encrypted assertion with the SP key.
    fn verify_response(
        &self,
        sp: SpContext<'_>,
        xml: &str,
        request_id: &str,
    ) -> Result<VerifiedAssertion, SsoError>;
}

fn refused(why: impl Into<String>) -> SsoError {
    SsoError::Refused(why.into())
}

/// Screens a `SAMLResponse` form value before any XML parser sees it: bounded size,
/// strict base64, UTF-8, then [`screen_xml`] and [`screen_signatures`], and one
/// Response holding one assertion (a second copy of either is what signature wrapping
/// needs, and no IdP sends one). XXE, entity expansion, comment-truncation and
/// wrapping tricks end here, whatever the parser's defaults.
pub fn screen_response(b64: &str) -> Result<String, SsoError> {
    if b64.len() > MAX_SAML_RESPONSE_B64 {
        return Err(refused(format!(
            "the SAML response is larger than {MAX_SAML_RESPONSE_B64} bytes"
        )));
    }
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| refused("the SAML response is not base64"))?;
    let xml = String::from_utf8(bytes).map_err(|_| refused("the SAML response is not UTF-8"))?;
    screen_xml(&xml, "SAML response")?;
    let count = |local: &str| start_tags(&xml).filter(|t| t.local == local).count();
    let (responses, clear, encrypted) = (
        count("Response"),
        count("Assertion"),
        count("EncryptedAssertion"),
    );
    if responses > 1 || clear + encrypted > 1 {
        return Err(refused(
            "the SAML response holds more than one Response or assertion (refused before parsing)",
        ));
    }
    screen_signatures(&xml, "SAML response")?;
    Ok(xml)
}

/// A start tag found by [`start_tags`]: its local name (prefix removed) and the text of
/// its attributes.
#[derive(Debug, Clone, Copy)]
pub struct StartTag<'a> {
    /// Byte offset of its `<`.
    pub at: usize,
    /// The element's local name.
    pub local: &'a str,
    /// Everything between the name and the closing `>` (attributes, maybe `/`).
    pub attributes: &'a str,
}

impl StartTag<'_> {
    /// The value of the unprefixed attribute `name`, as written (references not
    /// expanded); `Err` when it is given twice (libxml's recovery could keep either).
    pub fn attribute(&self, name: &str) -> Result<Option<&str>, SsoError> {
        let mut found = None;
        let mut rest = self.attributes;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim();
            let after = rest[eq + 1..].trim_start();
            let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                return Err(refused("malformed attribute (refused before parsing)"));
            };
            let body = &after[1..];
            let Some(close) = body.find(quote) else {
                return Err(refused("unterminated attribute (refused before parsing)"));
            };
            if key == name {
                if found.is_some() {
                    return Err(refused(format!(
                        "attribute {name} given twice (refused before parsing)"
                    )));
                }
                found = Some(&body[..close]);
            }
            rest = &body[close + 1..];
        }
        Ok(found)
    }
}

/// Every start tag of `xml`, in order (end tags, comments and declarations skipped;
/// `>` inside quoted attribute values does not end a tag).
pub fn start_tags(xml: &str) -> impl Iterator<Item = StartTag<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        loop {
            let rel = xml[pos..].find('<')?;
            let at = pos + rel;
            let tag = &xml[at + 1..];
            let name_end = tag
                .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                .unwrap_or(tag.len());
            let name = &tag[..name_end];
            // The tag ends at the first `>` outside quotes.
            let mut quote = None;
            let mut end = tag.len();
            for (i, c) in tag.char_indices() {
                match (quote, c) {
                    (None, '"' | '\'') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (None, '>') => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            pos = (at + 1 + end).min(xml.len());
            if name.is_empty() || name.starts_with(['/', '!', '?']) {
                continue;
            }
            let local = name.rsplit(':').next().unwrap_or(name);
            return Some(StartTag {
                at,
                local,
                attributes: &tag[name_end..end],
            });
        }
    })
}

/// `[start, end)` of the first element with local name `local` (its start tag to its
/// matching end tag, same qualified name), if any.
pub fn element_span(xml: &str, local: &str) -> Option<(usize, usize)> {
    let tag = start_tags(xml).find(|t| t.local == local)?;
    let name_len =
        xml[tag.at + 1..].find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')?;
    let name = &xml[tag.at + 1..tag.at + 1 + name_len];
    let close = format!("</{name}>");
    let end = xml[tag.at..].find(&close)? + tag.at + close.len();
    Some((tag.at, end))
}

/// Exclusive c14n, the only canonicalisation (and, with [`ENVELOPED`], transform) a
/// SAML signature may use here.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The enveloped-signature transform.
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Whether a signature `Reference` URI stays inside the document: absent/empty, or
/// `#` + an id of at most 256 NCName-safe characters (never a URL, a file or an
/// XPointer expression, which xmlsec would dereference before verifying anything).
pub fn same_document_reference(uri: &str) -> bool {
    uri.is_empty()
        || uri.strip_prefix('#').is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 256
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        })
}

/// The XML signatures a SAML document may carry, a first cheap pass on the text (the
/// server's SAML engine checks the same again, authoritatively, on the tree libxml2
/// builds, since a string scanner and libxml's recovery can disagree): xmlsec
/// dereferences and transforms every `Reference` before it checks the
/// `SignatureValue`, so at most two `Signature`s with one `Reference` each, whose `URI`
/// is `""` or `#` + an id (never a URL or a file: no fetching, no SSRF), whose only
/// transforms are enveloped-signature and exclusive c14n (no XPath, XSLT or
/// Base64), exclusive c14n as the canonicalisation, and no `Object`, `Manifest` or
/// `RetrievalMethod` anywhere.
pub fn screen_signatures(xml: &str, what: &str) -> Result<(), SsoError> {
    let bad = |why: &str| {
        refused(format!(
            "the {what}'s signature {why} (refused before parsing)"
        ))
    };
    let (mut signatures, mut references, mut transforms) = (0, 0, 0);
    for tag in start_tags(xml) {
        match tag.local {
            "Signature" => signatures += 1,
            "Reference" => {
                references += 1;
                if !same_document_reference(tag.attribute("URI")?.unwrap_or("")) {
                    return Err(bad("references something outside the document"));
                }
            }
            "Transform" => {
                transforms += 1;
                let alg = tag.attribute("Algorithm")?.unwrap_or("");
                if alg != ENVELOPED && alg != EXC_C14N {
                    return Err(bad(
                        "uses a transform other than enveloped-signature and exclusive c14n",
                    ));
                }
            }
            "CanonicalizationMethod" if tag.attribute("Algorithm")?.unwrap_or("") != EXC_C14N => {
                return Err(bad("uses a canonicalisation other than exclusive c14n"));
            }
            "Object"
            | "Manifest"
            | "RetrievalMethod"
            | "XPath"
            | "XSLT"
            | "SignatureProperties" => {
                return Err(bad("carries an Object, Manifest, RetrievalMethod or XPath"));
            }
            _ => {}
        }
    }
    if signatures > 2 || references > signatures || transforms > 2 * signatures {
        return Err(bad(
            "structure is not one a SAML IdP sends (too many signatures, references or transforms)",
        ));
    }
    Ok(())
}

/// Refuses XML with a DOCTYPE, ENTITY, CDATA, comment, processing instruction, NUL,
/// or a declaration naming an encoding other than UTF-8 (libxml2 would obey it, and
/// `+ADw-` in UTF-7 is a `<` no byte scan sees); used on responses, decrypted
/// assertions and IdP metadata.
pub fn screen_xml(xml: &str, what: &str) -> Result<(), SsoError> {
    let body = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let body = match body.strip_prefix("<?xml") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_whitespace()) => {
            let end = rest
                .find("?>")
                .ok_or_else(|| refused(format!("the {what}'s XML declaration is unterminated")))?;
            let declaration = &rest[..end];
            // libxml2 ends an unfinished declaration at the first `>`: one holding a
            // `<` or `>` would end elsewhere there than here.
            if declaration.contains(['<', '>']) {
                return Err(refused(format!(
                    "the {what}'s XML declaration is malformed (refused before parsing)"
                )));
            }
            if let Some(i) = declaration.find("encoding") {
                let value = declaration[i + "encoding".len()..]
                    .trim_start()
                    .strip_prefix('=')
                    .map(|v| v.trim_start().trim_matches(|c| c == '"' || c == '\''))
                    .and_then(|v| v.split(['"', '\'']).next())
                    .unwrap_or("");
                if !value.eq_ignore_ascii_case("utf-8") {
                    return Err(refused(format!(
                        "the {what} declares an encoding other than UTF-8 (refused before parsing)"
                    )));
                }
            }
            &rest[end + 2..]
        }
        _ => body,
    };
    if body.contains('\0') {
        return Err(refused(format!("the {what} contains a NUL")));
    }
    if body.contains("<!") {
        return Err(refused(format!(
            "the {what} contains a DOCTYPE, entity, CDATA or comment (refused before parsing)"
        )));
    }
    if body.contains("<?") {
        return Err(refused(format!(
            "the {what} contains a processing instruction (refused before parsing)"
        )));
    }
    Ok(())
}

/// The id of an AuthnRequest: `_` + the given random or intent-bound token (an XML
/// NCName: never starting with a digit).
pub fn request_id(token: &str) -> String {
    format!("_{token}")
}

impl VerifiedAssertion {
    /// The rules beyond the engine's: the assertion itself signed, encrypted if the
    /// provider requires it, issued by the provider, naming our entity id as its
    /// audience (an assertion without an audience is refused), and not expired
    /// `now` (seconds). For a signature's re-authentication, `authn_after` is the
    /// earliest acceptable `AuthnInstant` (the challenge, less the skew).
    pub fn check(
        &self,
        sp: SpContext<'_>,
        now: i64,
        authn_after: Option<i64>,
    ) -> Result<(), SsoError> {
        if !self.assertion_signed {
            return Err(refused(
                "the assertion is not signed (a signature over the Response alone is not enough)",
            ));
        }
        if sp.settings.require_encrypted && !self.encrypted {
            return Err(refused("the provider must encrypt its assertions"));
        }
        if self.issuer != sp.settings.idp_entity_id {
            return Err(refused(
                "the assertion was issued by another identity provider",
            ));
        }
        if self.audiences.is_empty() {
            return Err(refused("the assertion names no audience"));
        }
        if !self.audiences.iter().all(|a| a == sp.entity_id) {
            return Err(refused(
                "the assertion is for another service provider (audience)",
            ));
        }
        if self.not_on_or_after + sp.skew_secs <= now {
            return Err(refused("the assertion has expired"));
        }
        if let Some(after) = authn_after {
            match self.authn_instant {
                None => return Err(refused("the assertion has no AuthnInstant")),
                Some(t) if t < after => {
                    return Err(refused(
                        "the identity provider did not authenticate the signer again (AuthnInstant older than the challenge)",
                    ));
                }
                Some(t) if t > now + sp.skew_secs => {
                    return Err(refused("the assertion's AuthnInstant is in the future"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// What it asserts, in the terms sign-in uses: the NameID is the subject; e-mail,
    /// name and groups come from the mapped attributes. SAML has no `email_verified`:
    /// the address counts as verified (the IdP is the tenant's directory), and
    /// `link_by_email` is the administrator's switch.
    pub fn asserted(&self, settings: &SamlSettings) -> Result<Asserted, SsoError> {
        let subject = self.name_id.trim();
        if subject.is_empty() || subject.len() > 255 || subject.chars().any(char::is_control) {
            return Err(refused("the assertion has no usable NameID"));
        }
        if self.name_id_format.as_deref()
            == Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
        {
            return Err(refused(
                "a transient NameID cannot identify a user: configure a persistent or e-mail NameID",
            ));
        }
        let first = |name: &str| {
            self.attributes
                .get(name)
                .and_then(|v| v.first())
                .filter(|s| s.chars().count() <= MAX_SETTING_LEN)
                .cloned()
        };
        let email = if settings.email_attribute.is_empty() {
            Some(subject.to_owned())
        } else {
            first(&settings.email_attribute)
        };
        let groups = self
            .attributes
            .get(&settings.groups_attribute)
            .map(|v| {
                v.iter()
                    .filter(|g| g.len() <= MAX_SETTING_LEN)
                    .take(MAX_GROUPS)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Asserted {
            subject: subject.to_owned(),
            email_verified: email.is_some(),
            email,
            name: first(&settings.name_attribute),
            groups,
            auth_time: self.authn_instant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SamlSettings {
        SamlSettings {
            idp_metadata: String::new(),
            metadata_url: None,
            idp_entity_id: "urn:idp".into(),
            idp_sso_url: String::new(),
            idp_certificates: Vec::new(),
            name_id_format: None,
            email_attribute: default_email_attribute(),
            name_attribute: default_name_attribute(),
            groups_attribute: default_groups_attribute(),
            require_encrypted: false,
            sp_key_pem: Zeroizing::new(String::new()),
            sp_cert_pem: String::new(),
        }
    }

    fn assertion() -> VerifiedAssertion {
        VerifiedAssertion {
            id: "_a1".into(),
            issuer: "urn:idp".into(),
            assertion_signed: true,
            encrypted: false,
            name_id: "ada@example.com".into(),
            name_id_format: None,
            audiences: vec!["https://sp/metadata".into()],
            not_on_or_after: 1_000,
            authn_instant: Some(500),
            attributes: BTreeMap::from([
                ("email".into(), vec!["ada@example.com".into()]),
                ("groups".into(), vec!["qa".into(), "ops".into()]),
            ]),
        }
    }

    #[test]
    fn hostile_documents_are_refused_before_parsing() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(screen_response(&b64("<?xml version=\"1.0\"?><samlp:Response/>")).is_ok());
        for evil in [
            "<!DOCTYPE r [<!ENTITY a \"aaaa\">]><r>&a;</r>",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><r/>",
            "<r><NameID>admin@x<!---->.evil.com</NameID></r>",
            "<r><?xml-stylesheet href=\"x\"?></r>",
            "<r><![CDATA[x]]></r>",
            "<r>\0</r>",
            "<?xml version=\"1.0\"",
        ] {
            let e = screen_response(&b64(evil)).unwrap_err();
            assert!(matches!(e, SsoError::Refused(_)), "{evil}: {e}");
        }
        assert!(screen_response("not base64 !").is_err());
        for wrapped in [
            "<p:Response><a:Assertion ID=\"1\"/><a:Assertion ID=\"2\"></a:Assertion></p:Response>",
            "<p:Response><p:Response/></p:Response>",
            "<Response><Assertion/><x:EncryptedAssertion/></Response>",
            "<Response a=\"x>\"><Assertion/><Assertion/></Response>",
        ] {
            let e = screen_response(&b64(wrapped)).unwrap_err().to_string();
            assert!(e.contains("more than one"), "{wrapped}: {e}");
        }
        // Encodings libxml2 would honour, and a stylesheet PI dressed as a declaration.
        for evil in [
            "<?xml version=\"1.0\" encoding=\"UTF-7\"?><r>+ADwAIQ-DOCTYPE</r>",
            "<?xml version='1.0' encoding='ISO-8859-1'?><r/>",
            "<?xml-stylesheet href=\"x\"?><r/>",
            "<?xml version=\"1.0\"><!DOCTYPE r [<!ENTITY z \"?>\">]><r/>",
        ] {
            assert!(screen_response(&b64(evil)).is_err(), "{evil}");
        }
        assert!(screen_response(&b64("<?xml version=\"1.0\" encoding=\"utf-8\"?><r/>")).is_ok());
        assert!(
            screen_response(&b64(
                "<p:Response><a:Assertion><a:AssertionX/></a:Assertion></p:Response>"
            ))
            .is_ok()
        );
        assert!(screen_response(&b64("\u{fffd}")).is_ok());
        let big = "A".repeat(MAX_SAML_RESPONSE_B64 + 4);
        assert!(
            screen_response(&big)
                .unwrap_err()
                .to_string()
                .contains("larger")
        );
        let invalid_utf8 = base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x3c]);
        assert!(screen_response(&invalid_utf8).is_err());
    }

    /// A signature as saml-idp writes it, with `reference` and `transform` changed.
    fn signed(reference: &str, transform: &str) -> String {
        format!(
            "<Response ID=\"_r\"><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/><ds:Reference URI=\"{reference}\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"/><ds:Transform Algorithm=\"{transform}\"/></ds:Transforms></ds:Reference></ds:SignedInfo></ds:Signature></Response>"
        )
    }

    #[test]
    fn signatures_may_only_reference_the_document_itself() {
        screen_signatures(&signed("#_r", EXC_C14N), "x").unwrap();
        screen_signatures(&signed("", EXC_C14N), "x").unwrap();
        for (reference, transform) in [
            ("http://10.0.0.5/admin", EXC_C14N),
            ("file:///dev/zero", EXC_C14N),
            ("&#104;ttp://x", EXC_C14N),
            ("#_r", "http://www.w3.org/TR/1999/REC-xslt-19991116"),
            ("#_r", "http://www.w3.org/TR/1999/REC-xpath-19991116"),
            ("#_r", "http://www.w3.org/2000/09/xmldsig#base64"),
        ] {
            assert!(
                screen_signatures(&signed(reference, transform), "x").is_err(),
                "{reference} {transform}"
            );
        }
        let twice = signed("#_r", EXC_C14N).replace("URI=\"#_r\"", "URI=\"#_r\" URI=\"http://x\"");
        assert!(screen_signatures(&twice, "x").is_err());
        let manifest = signed("#_r", EXC_C14N).replace(
            "</ds:SignedInfo>",
            "</ds:SignedInfo><ds:Object><ds:Manifest/></ds:Object>",
        );
        assert!(screen_signatures(&manifest, "x").is_err());
        let many = format!("<R>{}</R>", signed("#_r", EXC_C14N).repeat(3));
        assert!(screen_signatures(&many, "x").is_err());
        let span = element_span("<a><p:E x=\"1\"><p:E2/></p:E></a>", "E").unwrap();
        assert_eq!(span, (3, 27));
    }

    #[test]
    fn an_assertion_must_be_signed_ours_fresh_and_recent_enough_to_sign() {
        let s = settings();
        let sp = SpContext {
            entity_id: "https://sp/metadata",
            acs_url: "https://sp/acs",
            settings: &s,
            skew_secs: 5,
        };
        let ok = assertion();
        ok.check(sp, 900, None).unwrap();
        ok.check(sp, 900, Some(495)).unwrap();
        let refused = |a: VerifiedAssertion, now: i64, after: Option<i64>| {
            a.check(sp, now, after).unwrap_err().to_string()
        };
        let mut a = ok.clone();
        a.assertion_signed = false;
        assert!(refused(a, 900, None).contains("not signed"));
        let mut a = ok.clone();
        a.audiences.clear();
        assert!(refused(a, 900, None).contains("no audience"));
        let mut a = ok.clone();
        a.audiences.push("urn:tenant-b".into());
        assert!(refused(a, 900, None).contains("another service provider"));
        let mut a = ok.clone();
        a.issuer = "urn:other".into();
        assert!(refused(a, 900, None).contains("another identity provider"));
        assert!(refused(ok.clone(), 1_005, None).contains("expired"));
        assert!(refused(ok.clone(), 900, Some(501)).contains("did not authenticate"));
        let mut a = ok.clone();
        a.authn_instant = None;
        assert!(refused(a, 900, Some(1)).contains("no AuthnInstant"));
        assert!(refused(ok.clone(), 400, Some(1)).contains("future"));
        let enc = SamlSettings {
            require_encrypted: true,
            ..settings()
        };
        let sp_enc = SpContext {
            settings: &enc,
            ..sp
        };
        assert!(ok.check(sp_enc, 900, None).is_err());
    }

    #[test]
    fn attributes_map_to_the_signed_in_person() {
        let a = assertion().asserted(&settings()).unwrap();
        assert_eq!(a.subject, "ada@example.com");
        assert_eq!(a.email.as_deref(), Some("ada@example.com"));
        assert_eq!(a.groups, ["qa", "ops"]);
        assert_eq!(a.auth_time, Some(500));
        let mut t = assertion();
        t.name_id_format = Some("urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into());
        assert!(t.asserted(&settings()).is_err());
        let mut blank = assertion();
        blank.name_id = " ".into();
        assert!(blank.asserted(&settings()).is_err());
        let by_name_id = SamlSettings {
            email_attribute: String::new(),
            ..settings()
        };
        let mut a = assertion();
        a.attributes.clear();
        assert_eq!(
            a.asserted(&by_name_id).unwrap().email.as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(a.asserted(&settings()).unwrap().email, None);
    }
}
