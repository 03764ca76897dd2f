//! The SAML engine: XML signatures, encryption and canonicalisation by xmlsec1,
//! through `samael` (decision 0009), behind the core's [`SamlEngine`] port.
//!
//! samael verifies every signature in a response against the IdP's certificates and
//! keeps only what xmlsec digested (the wrapping defence), then checks Destination,
//! Issuer, status, conditions, the bearer confirmation's Recipient and InResponseTo.
//! What it leaves out is done here or in the core: refusing metadata without a
//! signing certificate (samael would skip verification), restricting algorithms,
//! verifying the signature of an encrypted assertion once decrypted (samael does
//! not), refusing RSA 1.5 key transport, and handing the core the facts for its own
//! checks (assertion signed, audience required, replay, AuthnInstant).

use std::collections::BTreeMap;
use std::str::FromStr;

use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode,
};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::{Assertion, Response};
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use strongroom_core::identity::saml::{
    ENVELOPED, EXC_C14N, IdpMetadata, MAX_ATTRIBUTES, SamlEngine, SpContext, VerifiedAssertion,
    element_span, same_document_reference,
};
use strongroom_core::identity::sso::SsoError;
use zeroize::Zeroizing;

/// Signature algorithms accepted (no SHA-1, no DSA).
const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];
/// Key transport accepted for encrypted assertions (RSA-OAEP only: PKCS#1 v1.5 is
/// open to padding-oracle attacks).
const KEY_TRANSPORT: [&str; 1] = ["http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"];
/// Data encryption accepted: AES-128-GCM only (samael decrypts CBC without removing
/// its padding, so CBC assertions would never parse).
const DATA_ENCRYPTION: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
/// GCM's IV and tag, bytes: a shorter ciphertext would make samael slice out of range.
const GCM_OVERHEAD: usize = 12 + 16;

/// The server's SAML engine (stateless: everything comes with each call).
pub(crate) struct XmlSecEngine;

fn refused(why: impl Into<String>) -> SsoError {
    SsoError::Refused(why.into())
}

/// Our side failed: logged with its cause, a 500 without it.
fn internal(what: &str, e: impl std::fmt::Display) -> SsoError {
    tracing::error!(error = %e, "SAML engine: {what}");
    SsoError::Internal(format!("{what} failed (the server log says why)"))
}

/// IdP metadata as the administrator gives it (their input to fix).
fn metadata(xml: &str) -> Result<EntityDescriptor, SsoError> {
    EntityDescriptor::from_str(xml)
        .map_err(|e| SsoError::Invalid("saml/idp_metadata", format!("not SAML metadata: {e}")))
}

/// IdP metadata as stored (it was read when stored, so failing now is ours).
fn stored_metadata(xml: &str) -> Result<EntityDescriptor, SsoError> {
    EntityDescriptor::from_str(xml).map_err(|e| internal("reading the stored IdP metadata", e))
}

/// What a samael refusal says, in fixed words: its own texts carry our request ids
/// and URLs, which belong neither in a client's error nor in the audit trail.
fn why(e: &samael::service_provider::Error) -> SsoError {
    use samael::service_provider::Error as E;
    let words = match e {
        E::DestinationValidationError { .. } => "it is addressed to another endpoint (Destination)",
        E::AssertionExpired { .. }
        | E::ResponseExpired { .. }
        | E::AssertionConditionExpired { .. }
        | E::AssertionSubjectConfirmationExpired { .. } => "it has expired",
        E::AssertionConditionExpiredBefore { .. }
        | E::AssertionSubjectConfirmationExpiredBefore { .. } => "it is not valid yet",
        E::AssertionIssuerMismatch { .. } | E::ResponseIssuerMismatch { .. } => {
            "it was issued by another identity provider (Issuer)"
        }
        E::AssertionConditionAudienceRestrictionFailed { .. } => {
            "it is for another service provider (audience)"
        }
        E::AssertionRecipientMismatch { .. } => "it is for another ACS (Recipient)",
        E::AssertionInResponseToInvalid { .. } | E::ResponseInResponseToInvalid { .. } => {
            "it answers another request (InResponseTo)"
        }
        E::AssertionBearerSubjectConfirmationMissing | E::AssertionSubjectConfirmationMissing => {
            "it has no bearer SubjectConfirmation"
        }
        E::ResponseBadStatusCode { .. } => "the identity provider reported a failure (StatusCode)",
        E::FailedToValidateSignature => {
            "its signatures do not verify against the identity provider's certificates (or use a refused algorithm)"
        }
        _ => "it is unreadable",
    };
    refused(format!("the SAML response was refused: {words}"))
}

/// samael's service provider for one tenant's provider, with our limits.
fn service_provider(sp: SpContext<'_>, force_authn: bool) -> Result<ServiceProvider, SsoError> {
    let s = sp.settings;
    let key = openssl::pkey::PKey::private_key_from_pem(s.sp_key_pem.as_bytes())
        .map_err(|e| internal("reading the SP key", e))?;
    let cert = openssl::x509::X509::from_pem(s.sp_cert_pem.as_bytes())
        .and_then(|c| c.to_der())
        .map_err(|e| internal("reading the SP certificate", e))?;
    let skew = chrono::Duration::seconds(sp.skew_secs.max(0));
    let mut b = ServiceProviderBuilder::default();
    b.entity_id(sp.entity_id.to_owned())
        .metadata_url(sp.entity_id.to_owned())
        .acs_url(sp.acs_url.to_owned())
        .slo_url(None::<String>)
        .key(key)
        .certificate(CertificateDer::from(cert))
        .idp_metadata(stored_metadata(&s.idp_metadata)?)
        .force_authn(force_authn)
        .allow_idp_initiated(false)
        .max_clock_skew(skew)
        .max_issue_delay(chrono::Duration::seconds(90) + skew)
        .allowed_signature_algorithms(Some(ALGORITHMS.to_vec()));
    if let Some(f) = &s.name_id_format {
        b.authn_name_id_format(Some(f.clone()));
    }
    b.build().map_err(|e| internal("building the SP", e))
}

/// The IdP's signing certificates; never none (samael would then skip verification).
fn signing_certs(sp: &ServiceProvider) -> Result<Vec<CertificateDer>, SsoError> {
    match sp.idp_signing_certs() {
        Ok(Some(c)) if !c.is_empty() => Ok(c),
        Ok(_) => Err(SsoError::Invalid(
            "saml/idp_metadata",
            "the metadata names no signing certificate (KeyDescriptor use=\"signing\")".into(),
        )),
        Err(e) => Err(SsoError::Invalid(
            "saml/idp_metadata",
            format!("a certificate in the metadata is unreadable: {e}"),
        )),
    }
}

/// The stored provider's certificates (checked when stored: failing now is ours).
fn stored_certs(sp: &ServiceProvider) -> Result<Vec<CertificateDer>, SsoError> {
    signing_certs(sp).map_err(|e| internal("reading the stored IdP certificates", e))
}

/// What [`tree_screen`] found.
struct Shape {
    /// The document holds an `EncryptedAssertion`.
    encrypted: bool,
}

/// The authoritative structural check, on the tree libxml2 builds with the very
/// parser and options samael hands to xmlsec (so no disagreement between a string
/// scanner and libxml's recovery can hide anything), reading attributes as xmlsec
/// does (`xmlGetProp`: namespace-blind, first match). xmlsec dereferences and
/// transforms every `Reference` before it checks a `SignatureValue`, with every URI
/// scheme and transform enabled, so before it sees the document: at most one
/// Response and one assertion (clear or encrypted), at most two `Signature`s with
/// one `Reference` each whose `URI` is absent, `""` or `#id`; transforms only
/// enveloped-signature and exclusive c14n (its `InclusiveNamespaces` the only child
/// allowed); exclusive c14n; no `Object`, `Manifest` or `RetrievalMethod`.
fn tree_screen(xml: &str, what: &str) -> Result<Shape, SsoError> {
    let bad = |why: &str| refused(format!("the {what} {why} (refused before verification)"));
    let doc = libxml::parser::Parser::default()
        .parse_string(xml)
        .map_err(|_| bad("is not XML"))?;
    let root = doc.get_root_element().ok_or_else(|| bad("is empty"))?;
    let mut c = Counts::default();
    let mut stack = vec![(root, 0usize)];
    let mut seen = 0usize;
    while let Some((node, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_ELEMENTS || depth > MAX_DEPTH {
            return Err(bad("is larger or deeper than a SAML response is"));
        }
        screen_node(&node, &mut c).map_err(&bad)?;
        stack.extend(
            node.get_child_elements()
                .into_iter()
                .map(|n| (n, depth + 1)),
        );
    }
    if c.responses > 1 || c.assertions + c.encrypted > 1 {
        return Err(bad("holds more than one Response or assertion"));
    }
    if c.signatures > 2 || c.references > c.signatures || c.transforms > 2 * c.signatures {
        return Err(bad(
            "has a signature structure no SAML IdP sends (too many signatures, references or transforms)",
        ));
    }
    Ok(Shape {
        encrypted: c.encrypted == 1,
    })
}

/// Most elements, and deepest nesting, of a document the tree screen accepts (a SAML
/// response has some tens of elements, a dozen levels deep).
const MAX_ELEMENTS: usize = 5_000;
const MAX_DEPTH: usize = 64;

/// The children of a transform or canonicalisation method: none, or (for exclusive
/// c14n) one `InclusiveNamespaces` whose `PrefixList` is short — xmlsec splits it on
/// every space and libxml2's c14n then walks the ancestors of every element once per
/// entry, so a list of spaces is quadratic work before any signature is checked.
fn c14n_children_ok(node: &libxml::tree::Node, exclusive: bool) -> Result<(), &'static str> {
    let children = node.get_child_elements();
    let ok = match children.as_slice() {
        [] => true,
        [inclusive] if exclusive && inclusive.get_name() == "InclusiveNamespaces" => {
            inclusive.get_child_elements().is_empty()
                && inclusive.get_property("PrefixList").is_none_or(|list| {
                    list.len() <= 256
                        && !list.starts_with(' ')
                        && !list.ends_with(' ')
                        && !list.contains("  ")
                        && list.split(' ').count() <= 16
                        && list.split(' ').all(|p| {
                            p == "#default"
                                || (!p.is_empty()
                                    && p.bytes()
                                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
                        })
                })
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("has signature transform parameters no SAML IdP sends (InclusiveNamespaces)")
    }
}

/// What [`tree_screen`] counts.
#[derive(Default)]
struct Counts {
    responses: usize,
    assertions: usize,
    encrypted: usize,
    signatures: usize,
    references: usize,
    transforms: usize,
}

/// One element of the tree: counted, and its signature attributes checked as xmlsec
/// reads them; why it is refused, if it is.
fn screen_node(node: &libxml::tree::Node, c: &mut Counts) -> Result<(), &'static str> {
    let name = node.get_name();
    match name.as_str() {
        "Response" => c.responses += 1,
        "Assertion" => c.assertions += 1,
        "EncryptedAssertion" => c.encrypted += 1,
        "Signature" => c.signatures += 1,
        "Reference" => {
            c.references += 1;
            if !same_document_reference(&node.get_property("URI").unwrap_or_default()) {
                return Err("has a signature referencing something outside the document");
            }
        }
        "Transform" => {
            c.transforms += 1;
            let alg = node.get_property("Algorithm").unwrap_or_default();
            if alg != ENVELOPED && alg != EXC_C14N {
                return Err(
                    "has a signature transform other than enveloped-signature and exclusive c14n",
                );
            }
            c14n_children_ok(node, alg == EXC_C14N)?;
        }
        "CanonicalizationMethod" => {
            if node.get_property("Algorithm").unwrap_or_default() != EXC_C14N {
                return Err("has a canonicalisation other than exclusive c14n");
            }
            c14n_children_ok(node, true)?;
        }
        "Object" | "Manifest" | "RetrievalMethod" => {
            return Err("has a signature Object, Manifest or RetrievalMethod");
        }
        _ => {}
    }
    Ok(())
}

/// Whether the assertion `id` carries its own signature, i.e. a `Signature` child
/// whose one reference is `#id`. Asked of the document as received (xmlsec's reduced
/// output drops enveloped signatures), after every signature in it has verified and
/// the screen has made sure it holds a single assertion: so that signature is the
/// IdP's, over this assertion.
fn signs_itself(assertion: Option<&Assertion>, id: &str) -> bool {
    let own = format!("#{id}");
    assertion.filter(|a| a.id == id).is_some_and(|a| {
        a.signature.as_ref().is_some_and(|s| {
            s.signed_info.reference.len() == 1
                && s.signed_info.reference[0].uri.as_deref() == Some(own.as_str())
        })
    })
}

/// The encrypted assertion of a verified (reduced) response, decrypted with the SP
/// key, and its own signature verified: the plaintext assertion as xmlsec digested it,
/// whether it signs itself, and its verified XML.
fn decrypt_and_verify(
    reduced: &Response,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    certs: &[CertificateDer],
) -> Result<(Assertion, bool, String), SsoError> {
    let enc = reduced
        .encrypted_assertion
        .as_ref()
        .ok_or_else(|| refused("the encrypted assertion is not covered by the signature"))?;
    let (ekey, method) = enc
        .encrypted_key_info()
        .ok_or_else(|| refused("the encrypted assertion carries no key"))?;
    if !KEY_TRANSPORT.contains(&method.as_str()) {
        return Err(refused(format!(
            "the assertion's key is encrypted with {method}: only RSA-OAEP is accepted"
        )));
    }
    let aes = Crypto::decrypt_assertion_key_info(ekey, method, key)
        .map_err(|_| refused("the assertion cannot be decrypted with our key"))?;
    let aes = Zeroizing::new(aes);
    let (evalue, method) = enc
        .encrypted_value_info()
        .ok_or_else(|| refused("the encrypted assertion carries no data"))?;
    if method != DATA_ENCRYPTION {
        return Err(refused(format!(
            "the assertion is encrypted with {method}: only AES-128-GCM is accepted"
        )));
    }
    use base64::Engine as _;
    let compact: String = evalue.value.split_whitespace().collect();
    let long_enough = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .is_ok_and(|b| b.len() > GCM_OVERHEAD);
    if !long_enough {
        return Err(refused("the encrypted assertion's data is malformed"));
    }
    let plain = Crypto::decrypt_assertion_value_info(evalue, method, &aes)
        .map_err(|_| refused("the assertion cannot be decrypted (algorithm or data)"))?;
    let plain =
        String::from_utf8(plain).map_err(|_| refused("the decrypted assertion is not UTF-8"))?;
    strongroom_core::identity::saml::screen_xml(&plain, "decrypted assertion")?;
    strongroom_core::identity::saml::screen_signatures(&plain, "decrypted assertion")?;
    if tree_screen(&plain, "decrypted assertion")?.encrypted {
        return Err(refused(
            "the decrypted assertion holds another encrypted assertion",
        ));
    }
    let signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &plain,
        certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&ALGORITHMS),
    )
    .map_err(|_| refused("the decrypted assertion is not signed by the identity provider"))?;
    let verified = signed
        .parse::<Assertion>()
        .map_err(|_| refused("the decrypted assertion is unreadable"))?;
    let own = signs_itself(plain.parse::<Assertion>().ok().as_ref(), &verified.id);
    Ok((verified, own, signed))
}

/// An encrypted assertion, done in steps because samael cannot read the
/// `EncryptedData/KeyInfo` that many IdPs send (a default-namespace `KeyInfo`; its
/// struct insists on an `xmlns:ds` attribute): the Response's signature is verified
/// by xmlsec (it must cover the encrypted assertion), the assertion decrypted with
/// our key and its own signature verified by xmlsec; then a response made only of
/// those verified parts (the decrypted assertion in place of the encrypted one) goes
/// through samael's checks of Destination, InResponseTo, Issuer, status, conditions
/// and the bearer confirmation — with a service provider that has no certificates,
/// since everything in that document was verified already.
fn encrypted_response(
    provider: &ServiceProvider,
    certs: &[CertificateDer],
    xml: &str,
    request_id: &str,
) -> Result<VerifiedAssertion, SsoError> {
    let reduced = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        certs,
        ReduceMode::ValidateAndMarkNoAncestors,
        Some(&ALGORITHMS),
    )
    .map_err(|_| refused("the SAML response's signature does not verify"))?;
    let (start, end) = element_span(&reduced, "EncryptedAssertion")
        .ok_or_else(|| refused("an encrypted assertion must come in a signed Response"))?;
    // Only to read the ciphertexts out of it: a namespace declaration samael wants.
    let readable = reduced.replace(
        "<KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\">",
        "<KeyInfo xmlns=\"http://www.w3.org/2000/09/xmldsig#\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
    );
    let response = readable
        .parse::<Response>()
        .map_err(|_| refused("the encrypted assertion is unreadable"))?;
    let key = provider
        .key
        .as_ref()
        .ok_or_else(|| refused("no SP key to decrypt with"))?;
    let (inner, own, inner_xml) = decrypt_and_verify(&response, key, certs)?;
    let inner_xml = match inner_xml.strip_prefix("<?xml") {
        Some(rest) => rest.find("?>").map_or("", |i| &rest[i + 2..]).to_owned(),
        None => inner_xml,
    };
    let verified_parts = format!("{}{inner_xml}{}", &reduced[..start], &reduced[end..]);
    let mut checker = provider.clone();
    for d in checker
        .idp_metadata
        .idp_sso_descriptors
        .iter_mut()
        .flatten()
    {
        d.key_descriptors.clear();
    }
    // Nothing left to decrypt: should an encrypted assertion ever survive into that
    // document, samael must refuse it rather than decrypt it unverified.
    checker.key = None;
    let checked = checker
        .parse_xml_response(&verified_parts, Some(&[request_id]))
        .map_err(|e| why(&e))?;
    if checked.id != inner.id {
        return Err(refused("the decrypted assertion is not the one verified"));
    }
    facts(&inner, own, true)
}

/// XML-escapes text for an attribute or element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn secs(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp()
}

/// The assertion's attributes by name, bounded.
fn attributes(a: &Assertion) -> BTreeMap<String, Vec<String>> {
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attr in a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
    {
        let Some(name) = attr.name.clone() else {
            continue;
        };
        if attributes.len() >= MAX_ATTRIBUTES && !attributes.contains_key(&name) {
            continue;
        }
        let values = attributes.entry(name).or_default();
        for v in attr.values.iter().filter_map(|v| v.value.clone()) {
            if values.len() < strongroom_core::identity::sso::MAX_GROUPS {
                values.push(v);
            }
        }
    }
    attributes
}

/// The facts the core checks, from an assertion whose every byte was verified.
fn facts(
    a: &Assertion,
    assertion_signed: bool,
    encrypted: bool,
) -> Result<VerifiedAssertion, SsoError> {
    let subject = a.subject.as_ref();
    let name_id = subject
        .and_then(|s| s.name_id.as_ref())
        .ok_or_else(|| refused("the assertion has no NameID"))?;
    let bearer_until = subject
        .and_then(|s| s.subject_confirmations.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.subject_confirmation_data.as_ref()?.not_on_or_after)
        .map(secs)
        .min();
    let conditions_until = a
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after)
        .map(secs);
    let not_on_or_after = [bearer_until, conditions_until]
        .into_iter()
        .flatten()
        .min()
        .ok_or_else(|| refused("the assertion has no NotOnOrAfter"))?;
    let audiences = a
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_ref())
        .into_iter()
        .flatten()
        .flat_map(|r| r.audience.iter().cloned())
        .collect();
    let authn_instant = a
        .authn_statements
        .iter()
        .flatten()
        .filter_map(|s| s.authn_instant)
        .map(secs)
        .max();
    let attributes = attributes(a);
    Ok(VerifiedAssertion {
        id: a.id.clone(),
        issuer: a.issuer.value.clone().unwrap_or_default(),
        assertion_signed,
        encrypted,
        name_id: name_id.value.clone(),
        name_id_format: name_id.format.clone(),
        audiences,
        not_on_or_after,
        authn_instant,
        attributes,
    })
}

impl SamlEngine for XmlSecEngine {
    fn read_idp_metadata(&self, xml: &str) -> Result<IdpMetadata, SsoError> {
        let md = metadata(xml)?;
        let invalid = |m: &str| SsoError::Invalid("saml/idp_metadata", m.into());
        let entity_id = md
            .entity_id
            .clone()
            .filter(|e| !e.is_empty() && e.len() <= 1024)
            .ok_or_else(|| invalid("the metadata has no entityID"))?;
        let sp = ServiceProviderBuilder::default()
            .idp_metadata(md)
            .build()
            .map_err(|e| internal("reading the metadata", e))?;
        let certs = signing_certs(&sp)?;
        let mut fingerprints = Vec::new();
        for c in &certs {
            openssl::x509::X509::from_der(c.der_data())
                .map_err(|_| invalid("a signing certificate in the metadata is not X.509"))?;
            fingerprints.push(hex::encode(openssl::sha::sha256(c.der_data())));
        }
        let sso_redirect_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| invalid("the metadata has no HTTP-Redirect SingleSignOnService"))?;
        Ok(IdpMetadata {
            entity_id,
            sso_redirect_url,
            signing_certificates: fingerprints,
        })
    }

    fn new_sp_key_pair(&self) -> Result<(Zeroizing<String>, String), SsoError> {
        use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, pkey::PKey, rsa::Rsa};
        let make = || -> Result<(Zeroizing<String>, String), openssl::error::ErrorStack> {
            let key = PKey::from_rsa(Rsa::generate(3072)?)?;
            let mut name = openssl::x509::X509NameBuilder::new()?;
            name.append_entry_by_text("CN", "Strongroom SAML service provider")?;
            let name = name.build();
            let mut serial = BigNum::new()?;
            serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
            let mut b = openssl::x509::X509::builder()?;
            b.set_version(2)?;
            let serial = serial.to_asn1_integer()?;
            b.set_serial_number(&serial)?;
            b.set_subject_name(&name)?;
            b.set_issuer_name(&name)?;
            b.set_pubkey(&key)?;
            let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
            b.set_not_before(&from)?;
            b.set_not_after(&until)?;
            b.sign(&key, MessageDigest::sha256())?;
            let cert = String::from_utf8_lossy(&b.build().to_pem()?).into_owned();
            // PEM is ASCII: the buffer becomes the string without a copy.
            let pem = Zeroizing::new(
                String::from_utf8(key.private_key_to_pem_pkcs8()?).unwrap_or_default(),
            );
            Ok((pem, cert))
        };
        make().map_err(|e| internal("making the SP key pair", e))
    }

    /// Written here rather than by samael's `metadata()`, which needs a logout URL,
    /// marks its encryption key `use="signing"` and offers AES-192/256, which it cannot
    /// decrypt. Every value is XML-escaped; nothing is signed.
    fn sp_metadata(&self, sp: SpContext<'_>) -> Result<String, SsoError> {
        let cert = openssl::x509::X509::from_pem(sp.settings.sp_cert_pem.as_bytes())
            .and_then(|c| c.to_der())
            .map_err(|e| internal("reading the SP certificate", e))?;
        use base64::Engine as _;
        let cert = base64::engine::general_purpose::STANDARD.encode(cert);
        let name_id = sp
            .settings
            .name_id_format
            .as_deref()
            .map(|f| format!("<md:NameIDFormat>{}</md:NameIDFormat>", escape(f)))
            .unwrap_or_default();
        Ok(format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">"#,
                r#"<md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
                r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"#,
                r#"<md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/>"#,
                r#"<md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>"#,
                r#"</md:KeyDescriptor>{name_id}"#,
                r#"<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>"#,
                r#"</md:SPSSODescriptor></md:EntityDescriptor>"#
            ),
            entity = escape(sp.entity_id),
            cert = cert,
            name_id = name_id,
            acs = escape(sp.acs_url),
        ))
    }

    fn authn_request_url(
        &self,
        sp: SpContext<'_>,
        request_id: &str,
        relay_state: &str,
        force_authn: bool,
    ) -> Result<String, SsoError> {
        let sp = service_provider(sp, force_authn)?;
        let idp_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or_else(|| refused("the IdP metadata has no HTTP-Redirect SingleSignOnService"))?;
        let mut request = sp
            .make_authentication_request(&idp_url)
            .map_err(|e| internal("making the AuthnRequest", e))?;
        // samael's ids carry 32 random bits; ours are 256 (or bound to a signature).
        request.id = request_id.to_owned();
        request
            .redirect(relay_state)
            .map_err(|e| internal("encoding the AuthnRequest", e))?
            .map(|u| u.to_string())
            .ok_or_else(|| refused("the AuthnRequest has no destination"))
    }

    fn verify_response(
        &self,
        sp: SpContext<'_>,
        xml: &str,
        request_id: &str,
    ) -> Result<VerifiedAssertion, SsoError> {
        let shape = tree_screen(xml, "SAML response")?;
        let provider = service_provider(sp, false)?;
        let certs = stored_certs(&provider)?;
        if shape.encrypted {
            return encrypted_response(&provider, &certs, xml, request_id);
        }
        let assertion = provider
            .parse_xml_response(xml, Some(&[request_id]))
            .map_err(|e| why(&e))?;
        let received = xml
            .parse::<Response>()
            .ok()
            .and_then(|r| r.assertion)
            .or_else(|| xml.parse::<Assertion>().ok());
        facts(
            &assertion,
            signs_itself(received.as_ref(), &assertion.id),
            false,
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::identity::saml::SamlSettings;

    /// IdP metadata naming `cert_pem` as its signing certificate.
    fn idp_metadata(cert_pem: &str) -> String {
        let b64: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        format!(
            r#"<EntityDescriptor entityID="urn:test:idp" xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><KeyDescriptor use="signing"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data><X509Certificate>{b64}</X509Certificate></X509Data></KeyInfo></KeyDescriptor><SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></IDPSSODescriptor></EntityDescriptor>"#
        )
    }

    fn settings() -> SamlSettings {
        let engine = XmlSecEngine;
        let (key, cert) = engine.new_sp_key_pair().unwrap();
        SamlSettings {
            idp_metadata: idp_metadata(&cert),
            metadata_url: None,
            idp_entity_id: "urn:test:idp".into(),
            idp_sso_url: "https://idp.example.com/sso".into(),
            idp_certificates: Vec::new(),
            name_id_format: None,
            email_attribute: "email".into(),
            name_attribute: "displayName".into(),
            groups_attribute: "groups".into(),
            require_encrypted: false,
            sp_key_pem: key,
            sp_cert_pem: cert,
        }
    }

    #[test]
    fn metadata_requests_and_sp_metadata() {
        let engine = XmlSecEngine;
        let s = settings();
        let md = engine.read_idp_metadata(&s.idp_metadata).unwrap();
        assert_eq!(md.entity_id, "urn:test:idp");
        assert_eq!(md.sso_redirect_url, "https://idp.example.com/sso");
        assert_eq!(md.signing_certificates.len(), 1);
        let sp = SpContext {
            entity_id: "https://sp/metadata",
            acs_url: "https://sp/acs",
            settings: &s,
            skew_secs: 5,
        };
        let xml = engine.sp_metadata(sp).unwrap();
        assert!(xml.contains("entityID=\"https://sp/metadata\""), "{xml}");
        assert!(!xml.contains("PRIVATE"));
        let url = engine
            .authn_request_url(sp, "_abc", "state1", true)
            .unwrap();
        assert!(
            url.starts_with("https://idp.example.com/sso?SAMLRequest="),
            "{url}"
        );
        assert!(url.ends_with("&RelayState=state1"), "{url}");
        let no_key = s
            .idp_metadata
            .replace("use=\"signing\"", "use=\"encryption\"");
        assert!(engine.read_idp_metadata(&no_key).is_err());
    }

    /// A response saml-idp signed (Response and Assertion, RSA-SHA256) for request
    /// `_abc` of `acme`'s provider `corp` (the fuzz seed); its certificate is in its
    /// `KeyInfo`.
    const SIGNED: &str = include_str!("../../../fuzz/seeds/saml_screen/signed-response.xml");

    /// Checks `xml` as the fixture's SP would, its times judged with twenty years'
    /// skew (the fixture is old): never through the screen, so this is samael's and
    /// xmlsec's own defence.
    fn verify(xml: &str, request: &str) -> Result<VerifiedAssertion, SsoError> {
        let cert = SIGNED
            .split("<X509Certificate>")
            .nth(1)
            .and_then(|r| r.split("</X509Certificate>").next())
            .unwrap();
        let pem = format!("-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----\n");
        let s = SamlSettings {
            idp_metadata: idp_metadata(&pem),
            ..settings()
        };
        let sp = SpContext {
            entity_id: "https://vault.test/v1/t/acme/sso/corp/metadata",
            acs_url: "https://vault.test/v1/t/acme/sso/corp/acs",
            settings: &s,
            skew_secs: 20 * 365 * 86_400,
        };
        XmlSecEngine.verify_response(sp, xml, request)
    }

    fn assertion_span(xml: &str) -> (usize, usize) {
        let start = xml.find("<saml:Assertion").unwrap();
        let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
        (start, end)
    }

    /// The assertion without its signature, naming the tenant's admin, with `id`.
    fn evil(xml: &str, id: &str) -> String {
        let (s, e) = assertion_span(xml);
        let a = &xml[s..e];
        let (ss, se) = (
            a.find("<Signature").unwrap(),
            a.find("</Signature>").unwrap() + "</Signature>".len(),
        );
        let unsigned = format!("{}{}", &a[..ss], &a[se..]);
        let i = unsigned.find(" ID=\"").unwrap() + 5;
        let j = unsigned[i..].find('"').unwrap() + i;
        format!("{}{id}{}", &unsigned[..i], &unsigned[j..])
            .replace("ada@example.com", "admin@acme.example")
    }

    #[test]
    fn xmlsec_itself_refuses_wrapped_and_altered_responses() {
        let ok = verify(SIGNED, "_abc").unwrap();
        assert_eq!(ok.name_id, "ada@example.com");
        assert!(ok.assertion_signed);
        assert!(!ok.encrypted);
        assert_eq!(
            ok.audiences,
            ["https://vault.test/v1/t/acme/sso/corp/metadata"]
        );
        // Another request's answer.
        assert!(verify(SIGNED, "_other").is_err());
        // Altered under the signatures.
        assert!(
            verify(
                &SIGNED.replace("ada@example.com", "admin@acme.example"),
                "_abc"
            )
            .is_err()
        );
        let (s, e) = assertion_span(SIGNED);
        let wrapped = [
            format!("{}{}{}", &SIGNED[..s], evil(SIGNED, "_evil"), &SIGNED[s..]),
            format!("{}{}{}", &SIGNED[..e], evil(SIGNED, "_evil"), &SIGNED[e..]),
            format!(
                "{}<samlp:Extensions>{}</samlp:Extensions>{}{}",
                &SIGNED[..s],
                &SIGNED[s..e],
                evil(SIGNED, "_evil"),
                &SIGNED[e..]
            ),
            format!("{}{}{}", &SIGNED[..s], evil(SIGNED, "_evil"), &SIGNED[e..]),
        ];
        for (n, xml) in wrapped.iter().enumerate() {
            // Refused, or (where xmlsec keeps only the signed copy) the real signer;
            // never the wrapped-in admin.
            if let Ok(v) = verify(xml, "_abc") {
                assert_eq!(v.name_id, "ada@example.com", "wrapping {n}");
            }
        }
    }

    #[test]
    fn what_libxml_would_see_is_screened_not_what_a_scanner_sees() {
        let sig_method =
            "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>";
        assert!(SIGNED.contains(sig_method));
        for (what, xml) in [
            (
                "a prefixed URI (xmlGetProp reads it as URI)",
                SIGNED.replacen("<Reference URI=\"", "<Reference xmlns:x=\"urn:x\" x:URI=\"http://169.254.169.254/\" y=\"", 1),
            ),
            (
                "a Reference hidden in a quoted attribute that libxml ends at `<`",
                SIGNED.replacen(
                    sig_method,
                    "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\" x='<Reference URI=\"file:///etc/passwd\"><DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><DigestValue>AA==</DigestValue></Reference>'/>",
                    1,
                ),
            ),
            (
                "an XSLT transform under a prefixed Algorithm",
                SIGNED.replacen(
                    "<Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
                    "<Transform xmlns:x=\"urn:x\" x:Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\" Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
                    1,
                ),
            ),
        ] {
            let e = verify(&xml, "_abc").map(|v| v.name_id).unwrap_err().to_string();
            assert!(e.contains("refused before verification"), "{what}: {e}");
        }
    }

    #[test]
    fn c14n_parameters_that_make_quadratic_work_are_refused() {
        let t = "<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>";
        assert!(SIGNED.contains(t));
        let with = |list: &str| {
            SIGNED.replacen(
                t,
                &format!("<Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"><ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"{list}\"/></Transform>"),
                1,
            )
        };
        for list in [
            " ".repeat(10_000),
            "a  b".into(),
            "x".repeat(300),
            "a b c d e f g h i j k l m n o p q".into(),
        ] {
            let e = verify(&with(&list), "_abc")
                .map(|v| v.name_id)
                .unwrap_err()
                .to_string();
            assert!(e.contains("InclusiveNamespaces"), "{}: {e}", list.len());
        }
        // A usual list passes the screen (and then fails only its digest: the fixture
        // was signed without it).
        let e = verify(&with("xs #default"), "_abc")
            .map(|v| v.name_id)
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("InclusiveNamespaces") && e.contains("do not verify"),
            "{e}"
        );
        let deep = SIGNED.replacen(
            "<samlp:Status>",
            &format!("{}<samlp:Status>", "<x>".repeat(70) + &"</x>".repeat(70)),
            1,
        );
        let e = verify(&deep, "_abc")
            .map(|v| v.name_id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("deeper"), "{e}");
    }
}
