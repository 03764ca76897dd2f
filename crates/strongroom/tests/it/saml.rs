//! SAML 2.0 single sign-on against a real IdP on loopback (npm `saml-idp`, signing with
//! xml-crypto), driven by a cookie-jar browser: SP-initiated sign-in, signature
//! wrapping in its usual shapes, unsigned and Response-only-signed assertions, wrong
//! audience, expiry, replay, XXE and oversized documents, encrypted assertions, and a
//! Part 11 signature that needs a fresh AuthnInstant.

use serde_json::{Value, json};
use strongroom_testkit::idp::{Browser, PUBLIC_URL, SamlIdp, SamlPost, SamlUser};
use strongroom_testkit::{Reply, USER_PASSWORD};

use crate::records::{Lab, etag_of};
use crate::sso::{challenge, in_review, sso_server};

/// Provider `corp` of tenant `slug`, with `saml` settings and groups qa → reviewer,
/// viewers → viewer.
async fn store(lab: &Lab, slug: &str, saml: Value) -> Reply {
    let groups = json!({"qa": ["reviewer"], "viewers": ["viewer"]});
    store_with(lab, slug, saml, groups).await
}

/// Provider `corp` of tenant `slug`, with `saml` settings and `group_roles`, linking
/// first sign-ins by e-mail (the test IdP's users cannot choose their address).
async fn store_with(lab: &Lab, slug: &str, saml: Value, group_roles: Value) -> Reply {
    lab.api
        .put(
            &format!("/v1/t/{slug}/sso/providers/corp"),
            &lab.admin,
            json!({"display_name": "Corporate SAML", "group_roles": group_roles,
                   "link_by_email": true, "saml": saml}),
        )
        .await
}

/// A lab tenant `slug` trusting `idp` (metadata fetched by URL) as provider `corp`.
async fn configured(lab: Lab, idp: &SamlIdp, slug: &str) -> Lab {
    let v = store(
        &lab,
        slug,
        json!({"metadata_url": format!("{}/metadata", idp.url)}),
    )
    .await
    .ok(200);
    assert_eq!(v["protocol"], "saml");
    assert_eq!(v["issuer"], idp.entity_id);
    let base = format!("{PUBLIC_URL}/v1/t/{slug}/sso/corp");
    assert_eq!(v["saml"]["sp_entity_id"], format!("{base}/metadata"));
    assert_eq!(v["saml"]["acs_url"], format!("{base}/acs"));
    assert_eq!(v["redirect_uri"], format!("{base}/acs"));
    lab
}

/// Posts `post` in `browser`; the reply.
async fn post(browser: &Browser, post: &SamlPost) -> Reply {
    Reply::from_response(browser.post_saml(post).await).await
}

/// The refusal's detail (401 `sso-failed`).
fn refused(r: &Reply) -> String {
    r.problem(401, "sso-failed")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn ada() -> SamlUser {
    SamlUser::new("ada@example.test", "qa")
}

#[tokio::test]
async fn saml_sign_in_links_by_email_maps_groups_and_is_audited() {
    let Some(idp) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = configured(Lab::on(sso_server().await, "acme").await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    let ada_user = api
        .create_user(&lab.admin, t, "ada@example.test", &["viewer"])
        .await;

    // Our SP metadata is public: entity id, ACS and certificate, never the key.
    let md = lab
        .s
        .client()
        .get(format!("{}/v1/t/{t}/sso/corp/metadata", lab.s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(md.status().as_u16(), 200);
    assert_eq!(md.headers()["content-type"], "application/samlmetadata+xml");
    let md = md.text().await.unwrap();
    for needle in [
        format!("entityID=\"{PUBLIC_URL}/v1/t/{t}/sso/corp/metadata\""),
        format!("Location=\"{PUBLIC_URL}/v1/t/{t}/sso/corp/acs\""),
        "X509Certificate".to_owned(),
    ] {
        let needle = needle.as_str();
        assert!(md.contains(needle), "{needle} in {md}");
    }
    assert!(!md.contains("PRIVATE KEY"));
    api.get(&format!("/v1/t/{t}/sso"), &lab.admin)
        .await
        .lacks(&["PRIVATE KEY"]);
    let none = lab
        .s
        .client()
        .get(format!("{}/v1/t/{t}/sso/other/metadata", lab.s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 404);

    // The start: a binding cookie that survives the IdP's cross-site POST, and an
    // AuthnRequest with our own long random id.
    let browser = Browser::new(&lab.s);
    let start = browser
        .client
        .get(format!("{}/v1/t/{t}/sso/corp/login", lab.s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "__Host-sr_sso_",
        "Path=/;",
        "HttpOnly",
        "Secure",
        "SameSite=None",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let to = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&format!("{}/saml/sso?SAMLRequest=", idp.url)),
        "{to}"
    );
    let response = browser.saml_at_idp(&to, &ada()).await;
    let request = idp.last_request().await;
    let id = request["id"].as_str().unwrap();
    assert!(id.starts_with('_') && id.len() >= 40, "{id}");
    assert_eq!(
        request["issuer"],
        format!("{PUBLIC_URL}/v1/t/{t}/sso/corp/metadata")
    );
    assert_ne!(request["forceAuthn"], "true");

    let tokens = post(&browser, &response).await.ok(200);
    let access = tokens["access_token"].as_str().unwrap();
    api.get(&format!("/v1/t/{t}/records"), access).await.ok(200);
    let user = api
        .get(
            &format!("/v1/t/{t}/users/{}", ada_user["id"].as_str().unwrap()),
            &lab.admin,
        )
        .await
        .ok(200);
    assert_eq!(user["roles"], json!(["reviewer"]));

    // Replayed: the attempt is spent; and under a fresh attempt it answers another
    // request (InResponseTo).
    assert!(refused(&post(&browser, &response).await).contains("unknown, used or expired"));
    let fresh = browser.saml_sign_in(t, "corp", &ada()).await;
    let replayed = SamlPost {
        relay_state: fresh.relay_state.clone(),
        ..response.clone()
    };
    assert!(refused(&post(&browser, &replayed).await).contains("InResponseTo"));
    // Another browser (no binding cookie) cannot finish someone's attempt.
    let fresh = browser.saml_sign_in(t, "corp", &ada()).await;
    let other = Browser::new(&lab.s);
    assert!(refused(&post(&other, &fresh).await).contains("binding cookie"));
    // Unsolicited (IdP-initiated): no attempt of ours matches it.
    let unsolicited = SamlPost {
        relay_state: "made-up".into(),
        ..fresh
    };
    assert!(refused(&post(&browser, &unsolicited).await).contains("unknown, used or expired"));

    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| {
        e["action"] == "sso.configure"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("add saml provider corp")
    }));
    assert!(entries.iter().any(|e| e["action"] == "sso.link"));
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "session.login" && e["reason"] == "sso: corp")
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "session.login_failed")
            .count()
            >= 2
    );
}

/// The response a fresh attempt in `browser` gets for ada, its document changed by
/// `f`; the reply to posting it.
async fn tampered(browser: &Browser, t: &str, f: impl Fn(&str) -> String) -> Reply {
    let mut p = browser.saml_sign_in(t, "corp", &ada()).await;
    p.xml = f(&p.xml);
    post(browser, &p).await
}

/// The (first) `<saml:Assertion …>…</saml:Assertion>` of a response.
fn assertion(xml: &str) -> (usize, usize) {
    let start = xml.find("<saml:Assertion").expect("an assertion");
    let end = xml.find("</saml:Assertion>").expect("its end") + "</saml:Assertion>".len();
    (start, end)
}

/// A copy of the assertion without its signature, naming someone else.
fn evil_copy(xml: &str, id: &str) -> String {
    let (s, e) = assertion(xml);
    let a = &xml[s..e];
    let sig_s = a.find("<Signature").unwrap();
    let sig_e = a.find("</Signature>").unwrap() + "</Signature>".len();
    let unsigned = format!("{}{}", &a[..sig_s], &a[sig_e..]);
    let id_s = unsigned.find(" ID=\"").unwrap() + 5;
    let id_e = unsigned[id_s..].find('"').unwrap() + id_s;
    format!("{}{id}{}", &unsigned[..id_s], &unsigned[id_e..])
        .replace("ada@example.test", "admin@acme.example")
}

#[tokio::test]
async fn forged_wrapped_and_hostile_saml_responses_are_refused() {
    let Some(idp) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = configured(Lab::on(sso_server().await, "acme").await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    api.create_user(&lab.admin, t, "ada@example.test", &["viewer"])
        .await;
    let browser = Browser::new(&lab.s);

    // The NameID changed under both signatures.
    let r = tampered(&browser, t, |x| {
        x.replace(">ada@example.test<", ">admin@acme.example<")
    })
    .await;
    assert!(refused(&r).contains("do not verify"), "{r:?}");
    // XSW: an unsigned assertion beside the signed one (before, after), or in its place
    // with the signed one hidden in Extensions; an evil Response wrapping the real one.
    let before = |x: &str| {
        let (s, _) = assertion(x);
        format!("{}{}{}", &x[..s], evil_copy(x, "_evil"), &x[s..])
    };
    let after = |x: &str| {
        let (_, e) = assertion(x);
        format!("{}{}{}", &x[..e], evil_copy(x, "_evil"), &x[e..])
    };
    let same_id = |x: &str| {
        let (s, e) = assertion(x);
        let id_s = x[s..].find(" ID=\"").unwrap() + s + 5;
        let id = &x[id_s..x[id_s..].find('"').unwrap() + id_s];
        format!("{}{}{}", &x[..e], evil_copy(x, id), &x[e..])
    };
    let hidden = |x: &str| {
        let (s, e) = assertion(x);
        format!(
            "{}<samlp:Extensions>{}</samlp:Extensions>{}{}",
            &x[..s],
            &x[s..e],
            evil_copy(x, "_evil"),
            &x[e..]
        )
    };
    let wrapped_response = |x: &str| {
        let body_s = x.find("<samlp:Status>").unwrap();
        format!(
            "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_outer\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\"><samlp:Extensions>{x}</samlp:Extensions>{}",
            &x[body_s..]
        )
    };
    let replaced = |x: &str| {
        let (s, e) = assertion(x);
        format!("{}{}{}", &x[..s], evil_copy(x, "_evil"), &x[e..])
    };
    for (what, f) in [
        ("evil assertion before", &before as &dyn Fn(&str) -> String),
        ("evil assertion after", &after),
        ("duplicate ID", &same_id),
        ("signed assertion hidden in Extensions", &hidden),
        ("evil Response wrapping", &wrapped_response),
    ] {
        let r = tampered(&browser, t, f).await;
        assert!(refused(&r).contains("more than one"), "{what}: {r:?}");
    }
    let r = tampered(&browser, t, &replaced).await;
    assert!(
        refused(&r).contains("do not verify"),
        "evil assertion in place: {r:?}"
    );
    // Signatures that would make xmlsec fetch or transform before it checks anything.
    for (what, f) in [
        (
            "Reference to a URL",
            Box::new(|x: &str| {
                let i = x.find("<Reference URI=\"").unwrap() + "<Reference URI=\"".len();
                let j = x[i..].find('"').unwrap() + i;
                format!("{}http://127.0.0.1:1/internal{}", &x[..i], &x[j..])
            }) as Box<dyn Fn(&str) -> String>,
        ),
        (
            "XSLT transform",
            Box::new(|x: &str| {
                x.replacen(
                    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
                    "http://www.w3.org/TR/1999/REC-xslt-19991116",
                    1,
                )
            }),
        ),
    ] {
        let r = tampered(&browser, t, f).await;
        assert!(refused(&r).contains("before parsing"), "{what}: {r:?}");
    }
    // A declared encoding libxml2 would honour (UTF-7 spells `<!` without a `<`).
    let r = tampered(&browser, t, |x| {
        format!("<?xml version=\"1.0\" encoding=\"UTF-7\"?>{x}")
    })
    .await;
    assert!(refused(&r).contains("encoding"), "UTF-7: {r:?}");
    // XXE, entity expansion, a comment that truncates the NameID, a processing
    // instruction: refused before any parser.
    for (what, f) in [
        (
            "DOCTYPE with SYSTEM entity",
            Box::new(|x: &str| {
                format!("<!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{x}")
                    .replace(">ada@example.test<", ">&e;<")
            }) as Box<dyn Fn(&str) -> String>,
        ),
        (
            "billion laughs",
            Box::new(|x: &str| {
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>{x}"
                )
            }),
        ),
        (
            "comment in NameID",
            Box::new(|x: &str| x.replace(">ada@example.test<", ">ada@example.test<!---->.evil<")),
        ),
        (
            "processing instruction",
            Box::new(|x: &str| x.replace("<samlp:Status>", "<?evil x?><samlp:Status>")),
        ),
    ] {
        let r = tampered(&browser, t, f).await;
        assert!(refused(&r).contains("before parsing"), "{what}: {r:?}");
    }
    let r = tampered(&browser, t, |x| {
        x.replace(
            "</samlp:Response>",
            &format!("<!-- {} --></samlp:Response>", "x".repeat(200_000)),
        )
    })
    .await;
    assert!(refused(&r).contains("larger"), "oversized: {r:?}");
    // Not base64, or no response at all.
    let mut p = browser.saml_sign_in(t, "corp", &ada()).await;
    let r = browser
        .client
        .post(&p.acs)
        .form(&[
            ("SAMLResponse", "%%%"),
            ("RelayState", p.relay_state.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(refused(&Reply::from_response(r).await).contains("base64"));
    p = browser.saml_sign_in(t, "corp", &ada()).await;
    let r = browser
        .client
        .post(&p.acs)
        .form(&[("RelayState", p.relay_state.as_str())])
        .send()
        .await
        .unwrap();
    assert!(refused(&Reply::from_response(r).await).contains("no SAMLResponse"));
    let r = browser
        .client
        .post(&p.acs)
        .json(&json!({"SAMLResponse": "x"}))
        .send()
        .await
        .unwrap();
    Reply::from_response(r)
        .await
        .problem(415, "unsupported-media-type");

    // Nobody was signed in as admin, and every refusal is in the audit trail.
    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "session.login" && e["reason"] == "sso: corp")
    );
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "session.login_failed")
            .count()
            >= 12
    );
}

#[tokio::test]
async fn assertions_must_be_signed_for_us_and_unexpired() {
    let Some(idp) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = configured(Lab::on(sso_server().await, "acme").await, &idp, "acme").await;
    let t = "acme";
    lab.api
        .create_user(&lab.admin, t, "ada@example.test", &["viewer"])
        .await;
    let browser = Browser::new(&lab.s);
    let attempt = || async { post(&browser, &browser.saml_sign_in(t, "corp", &ada()).await).await };

    // Only the Response signed: not enough.
    idp.settings(&[("signAssertion", "false")]).await;
    assert!(refused(&attempt().await).contains("not signed"));
    // Nothing signed.
    idp.settings(&[("signResponse", "false"), ("signAssertion", "false")])
        .await;
    assert!(refused(&attempt().await).contains("do not verify"));
    // Only the assertion signed: the usual profile, accepted.
    idp.settings(&[("signResponse", "false"), ("signAssertion", "true")])
        .await;
    attempt().await.ok(200);
    // For another service provider (audience).
    idp.settings(&[("audience", "https://vault.test/v1/t/beta/sso/corp/metadata")])
        .await;
    assert!(
        refused(&attempt().await)
            .to_lowercase()
            .contains("audience")
    );
    idp.settings(&[(
        "audience",
        &format!("{PUBLIC_URL}/v1/t/{t}/sso/corp/metadata"),
    )])
    .await;
    // Issued by someone else.
    idp.settings(&[("issuer", "urn:someone-else")]).await;
    assert!(refused(&attempt().await).contains("Issuer"));
    idp.settings(&[("issuer", &idp.entity_id)]).await;
    // Expired (a signed assertion whose NotOnOrAfter is ten minutes ago).
    idp.settings(&[("lifetimeInSeconds", "-600")]).await;
    assert!(refused(&attempt().await).contains("expired"));
    idp.settings(&[("lifetimeInSeconds", "3600")]).await;
    attempt().await.ok(200);
    // SHA-1, which samael would accept by default.
    idp.settings(&[
        ("signatureAlgorithm", "rsa-sha1"),
        ("digestAlgorithm", "sha1"),
    ])
    .await;
    assert!(refused(&attempt().await).contains("do not verify"));
    idp.settings(&[
        ("signatureAlgorithm", "rsa-sha256"),
        ("digestAlgorithm", "sha256"),
    ])
    .await;
    attempt().await.ok(200);
}

#[tokio::test]
async fn saml_settings_are_checked_and_the_sp_key_is_kept() {
    let Some(idp) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = Lab::on(sso_server().await, "acme").await;
    let t = "acme";
    let metadata = idp.metadata().await;
    let field = |r: Reply| {
        let p = r.problem(422, "validation");
        p["errors"][0]["pointer"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Without a signing certificate samael would skip verification: refused.
    let start = metadata.find("<KeyDescriptor").unwrap();
    let end = metadata.find("</KeyDescriptor>").unwrap() + "</KeyDescriptor>".len();
    let no_key = format!("{}{}", &metadata[..start], &metadata[end..]);
    let r = store(&lab, t, json!({"idp_metadata": no_key})).await;
    assert_eq!(field(r), "/saml/idp_metadata");
    let r = store(
        &lab,
        t,
        json!({"idp_metadata": format!("<!DOCTYPE x>{metadata}")}),
    )
    .await;
    assert_eq!(field(r), "/saml/idp_metadata");
    let r = store(&lab, t, json!({"idp_metadata": "<not metadata/>"})).await;
    assert_eq!(field(r), "/saml/idp_metadata");
    // Fetched only from an allowed host: here only the loopback test IdP.
    let r = store(
        &lab,
        t,
        json!({"metadata_url": "https://idp.example.com/metadata"}),
    )
    .await;
    assert_eq!(field(r), "/saml/metadata_url");
    let r = store(&lab, t, json!({"metadata_url": "http://10.0.0.1/metadata"})).await;
    assert_eq!(field(r), "/saml/metadata_url");
    let r = store(&lab, t, json!({})).await;
    assert_eq!(field(r), "/saml/idp_metadata");
    let r = store(
        &lab,
        t,
        json!({"idp_metadata": metadata, "name_id_format": "urn:made-up"}),
    )
    .await;
    assert_eq!(field(r), "/saml/name_id_format");
    let both = json!({
        "display_name": "x",
        "saml": {"idp_metadata": metadata},
        "oidc": {"issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s"},
    });
    lab.api
        .put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, both)
        .await
        .problem(422, "validation");

    // Inline metadata; a replacement keeps the SP's key pair (the IdP has our
    // certificate), and never shows the key. Without being told, a SAML provider does
    // not link by e-mail (SAML says nothing of an address being verified).
    let first = lab
        .api
        .put(
            &format!("/v1/t/{t}/sso/providers/corp"),
            &lab.admin,
            json!({"display_name": "x", "saml": {"idp_metadata": metadata}}),
        )
        .await
        .ok(200);
    assert_eq!(first["link_by_email"], false);
    let fingerprint = first["saml"]["idp_certificates"][0].as_str().unwrap();
    assert_eq!(fingerprint.len(), 64);
    let entries = lab.api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| e["action"] == "sso.configure"
        && e["reason"].as_str().unwrap_or("").contains(fingerprint)));
    assert_eq!(first["saml"]["metadata_url"], Value::Null);
    let again = store(
        &lab,
        t,
        json!({"idp_metadata": metadata, "email_attribute": "", "require_encrypted": true}),
    )
    .await;
    again.lacks(&["PRIVATE KEY"]);
    let again = again.ok(200);
    assert_eq!(
        again["saml"]["sp_certificate"],
        first["saml"]["sp_certificate"]
    );
    assert_eq!(again["saml"]["require_encrypted"], true);
    assert!(
        again["saml"]["sp_certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    // The CLI stores the same from a file.
    let file = idp.path("metadata.xml");
    std::fs::write(&file, &metadata).unwrap();
    let out = lab
        .s
        .cli(
            &[
                "sso",
                "set-saml",
                "--tenant",
                t,
                "--name",
                "cli",
                "--display-name",
                "From the CLI",
                "--metadata-file",
                file.to_str().unwrap(),
            ],
            None,
        )
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ACS (HTTP-POST)"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points provider `corp` at `idp` (by metadata URL), encryption required or not.
async fn require(lab: &Lab, idp: &SamlIdp, required: bool) {
    let url = format!("{}/metadata", idp.url);
    store(
        lab,
        "acme",
        json!({"metadata_url": url, "require_encrypted": required}),
    )
    .await
    .ok(200);
}

#[tokio::test]
async fn encrypted_assertions_are_decrypted_and_can_be_required() {
    let Some(clear) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = configured(Lab::on(sso_server().await, "acme").await, &clear, "acme").await;
    let t = "acme";
    lab.api
        .create_user(&lab.admin, t, "ada@example.test", &["viewer"])
        .await;
    // An IdP that encrypts to our certificate (AES-128-GCM, RSA-OAEP).
    let view = lab
        .api
        .get(&format!("/v1/t/{t}/sso"), &lab.admin)
        .await
        .ok(200);
    let cert = view["providers"][0]["saml"]["sp_certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, pub_file) = (dir.path().join("sp.pem"), dir.path().join("sp-pub.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    let public = openssl::x509::X509::from_pem(cert.as_bytes())
        .unwrap()
        .public_key()
        .unwrap()
        .public_key_to_pem()
        .unwrap();
    std::fs::write(&pub_file, public).unwrap();
    let Some(encrypting) = SamlIdp::start(
        "acme",
        "corp",
        &[
            "--encryptAssertion",
            "--encryptionCert",
            cert_file.to_str().unwrap(),
            "--encryptionPublicKey",
            pub_file.to_str().unwrap(),
        ],
        &[(
            "SAML_IDP_ENC_ALG",
            "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        )],
    )
    .await
    else {
        return;
    };
    require(&lab, &encrypting, true).await;
    let browser = Browser::new(&lab.s);
    let p = browser.saml_sign_in(t, "corp", &ada()).await;
    assert!(p.xml.contains("EncryptedAssertion") && !p.xml.contains("ada@example.test"));
    post(&browser, &p).await.ok(200);
    // Encrypted but not signed inside (only the Response is): refused.
    encrypting.settings(&[("signAssertion", "false")]).await;
    let r = post(&browser, &browser.saml_sign_in(t, "corp", &ada()).await).await;
    assert!(refused(&r).contains("not signed"), "{r:?}");
    // The clear IdP, while encryption is required: refused.
    require(&lab, &clear, true).await;
    let r = post(&browser, &browser.saml_sign_in(t, "corp", &ada()).await).await;
    assert!(refused(&r).contains("encrypt"));
    require(&lab, &clear, false).await;
    post(&browser, &browser.saml_sign_in(t, "corp", &ada()).await)
        .await
        .ok(200);
}

#[tokio::test]
async fn a_saml_user_signs_only_after_a_fresh_authentication_at_the_idp() {
    let Some(idp) = SamlIdp::start("acme", "corp", &[], &[]).await else {
        return;
    };
    let lab = configured(Lab::on(sso_server().await, "acme").await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    let body = json!({"email": "rob@example.test", "password": USER_PASSWORD, "roles": ["reviewer"], "full_name": "Rob Reviewer"});
    api.post(&format!("/v1/t/{t}/users"), Some(&lab.admin), body)
        .await
        .ok(201);
    // No group mapping: roles stay as the tenant set them.
    let url = format!("{}/metadata", idp.url);
    store_with(&lab, t, json!({ "metadata_url": url }), json!({}))
        .await
        .ok(200);
    let (sigs, etag) = in_review(&lab, t).await;
    let rob_user = SamlUser::new("rob@example.test", "");
    let browser = Browser::new(&lab.s);
    let tokens = post(&browser, &browser.saml_sign_in(t, "corp", &rob_user).await)
        .await
        .ok(200);
    let rob = tokens["access_token"].as_str().unwrap().to_owned();

    // The IdP reports an old authentication (it ignored ForceAuthn): refused.
    idp.authn_age(3600).await;
    let (_, url) = challenge(&browser, &lab, &sigs, &rob, "reviewed").await;
    let p = browser.saml_at_idp(&url, &rob_user).await;
    assert_eq!(idp.last_request().await["forceAuthn"], "true");
    assert!(refused(&post(&browser, &p).await).contains("did not authenticate"));
    idp.authn_age(0).await;
    // Someone else authenticating does not sign for rob.
    let (_, url) = challenge(&browser, &lab, &sigs, &rob, "reviewed").await;
    let p = browser
        .saml_at_idp(&url, &SamlUser::new("mallory@example.test", ""))
        .await;
    assert!(refused(&post(&browser, &p).await).contains("someone other"));

    let (id, url) = challenge(&browser, &lab, &sigs, &rob, "reviewed").await;
    let p = browser.saml_at_idp(&url, &rob_user).await;
    let done = post(&browser, &p).await.ok(200);
    assert_eq!(done["challenge_id"], id);
    let body = json!({"meaning": "reviewed", "sso_challenge": id});
    let signed = api
        .send_if(reqwest::Method::POST, &sigs, &rob, Some(&etag), Some(&body))
        .await;
    let _ = etag_of(&signed);
    let v = signed.ok(201);
    let sig = &v["current"]["signatures"][1];
    assert_eq!(sig["printed_name"], "Rob Reviewer");
    let reauth = sig["reauth"].as_str().unwrap();
    assert!(
        reauth.starts_with("saml:corp auth_time=") && reauth.contains("response_sha256="),
        "{reauth}"
    );
    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| e["action"] == "signature.failed"
        && e["reason"].as_str().unwrap_or("").contains("AuthnInstant")));
}
