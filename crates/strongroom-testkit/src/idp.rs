//! Real identity providers on loopback for the SSO tests: the OpenID-certified
//! `oidc-provider` (npm) started from `crates/strongroom/tests/idp/`, and a cookie-jar
//! "browser" that walks its login pages the way a person's browser would.
//!
//! The packages are installed by `npm ci` in that directory (`.ci/run` does it). Without
//! them the SSO tests skip, unless `SR_REQUIRE_IDP=1` (CI), when they fail.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::TestServer;

/// The public URL the test servers are configured with (`sso.public_url`): what the
/// identity provider redirects browsers to; [`Browser`] maps it to the real server,
/// like a reverse proxy in front of it would.
pub const PUBLIC_URL: &str = "https://vault.test";

/// The directory holding the IdP scripts and their `node_modules`, if installed.
#[allow(clippy::disallowed_methods, clippy::print_stderr)] // test settings come from the environment; a skip says so
pub fn idp_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SR_TEST_IDP_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../strongroom/tests/idp"),
        PathBuf::from,
    );
    if dir.join("node_modules/oidc-provider").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("SR_REQUIRE_IDP").as_deref() != Ok("1"),
        "SR_REQUIRE_IDP=1 but the test IdPs are not installed in {}: run npm ci there",
        dir.display()
    );
    eprintln!(
        "skipping: the test IdPs are not installed (npm ci in {})",
        dir.display()
    );
    None
}

/// Waits (at most 30 s) for a started IdP's `READY <url>` line and returns the URL,
/// then keeps draining its stdout (a closed pipe would kill it at its next line);
/// panics with its log (`what` names it) if it never gets ready.
async fn ready(child: &mut Child, log: &std::path::Path, what: &str) -> String {
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix("READY ") {
                return Some(u.trim().to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        panic!(
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url
}

/// A running `oidc-provider` on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct OidcIdp {
    /// Its issuer, `http://127.0.0.1:<port>`.
    pub issuer: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OidcIdp {
    /// Starts the provider with these clients (oidc-provider client metadata, JSON), or
    /// `None` when the IdPs are not installed (see [`idp_dir`]).
    pub async fn start(clients: &serde_json::Value) -> Option<Self> {
        let dir = idp_dir()?;
        let tmp = tempfile::tempdir().expect("temp dir");
        let log = tmp.path().join("oidc-idp.log");
        let mut child = Command::new("node")
            .arg(dir.join("oidc-idp.mjs"))
            .arg("--auto-consent")
            .arg("--clients-json")
            .arg(clients.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .kill_on_drop(true)
            .spawn()
            .expect("node (install nodejs)");
        let issuer = ready(&mut child, &log, "oidc-provider").await;
        Some(Self {
            issuer,
            child,
            log,
            _dir: tmp,
        })
    }

    /// One of the provider's test hooks (`/__test/rotate`, `/__test/stale-login?secs=N`,
    /// `/__test/tamper?mode=M`, …).
    pub async fn hook(&self, path_and_query: &str) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path_and_query}", self.issuer))
            .send()
            .await
            .expect("IdP hook");
        assert!(
            r.status().is_success(),
            "hook {path_and_query}: {}",
            r.status()
        );
        r.json().await.expect("hook JSON")
    }

    /// What the provider wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// A browser: one cookie jar across the identity provider and the server, following
/// redirects by hand so each step can be seen (and the server's public URL mapped to
/// the test server).
#[derive(Debug, Clone)]
pub struct Browser {
    /// The client (cookies kept, no automatic redirects).
    pub client: reqwest::Client,
    base: String,
}

/// Where a walk through the provider ended.
#[derive(Debug)]
pub struct Landing {
    /// The callback URL the provider sent the browser to (on the real server).
    pub callback: String,
    /// How many pages of the provider it went through (each a GET, some also a form
    /// POST), the redirect back included.
    pub requests: usize,
}

impl Browser {
    /// A browser that trusts `server`'s certificate.
    pub fn new(server: &TestServer) -> Self {
        let cert = reqwest::Certificate::from_pem(&server.cert_pem()).expect("cert");
        let client = reqwest::Client::builder()
            .tls_certs_only([cert])
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            client,
            base: server.base.clone(),
        }
    }

    /// `url` with the server's public URL replaced by the test server's address.
    pub fn local(&self, url: &str) -> String {
        url.strip_prefix(PUBLIC_URL)
            .map_or_else(|| url.to_owned(), |rest| format!("{}{rest}", self.base))
    }

    /// Starts a sign-in at the server (`GET …/sso/{provider}/login`) and walks the
    /// provider's pages as `login`, stopping at the redirect back to the server.
    pub async fn sign_in_at_idp(&self, tenant: &str, provider: &str, login: &str) -> Landing {
        let start = self
            .client
            .get(format!("{}/v1/t/{tenant}/sso/{provider}/login", self.base))
            .send()
            .await
            .expect("login start");
        assert_eq!(
            start.status().as_u16(),
            303,
            "login start: {}",
            start.status()
        );
        let to = location(&start, &self.base);
        self.walk(&to, login).await
    }

    /// Walks the provider's pages from `url` (an authorization request) as `login`
    /// (oidc-provider's development interactions accept any login name and password),
    /// stopping at the redirect back to the server.
    pub async fn walk(&self, url: &str, login: &str) -> Landing {
        let mut url = url.to_owned();
        for requests in 1..=12 {
            if url.starts_with(PUBLIC_URL) || url.starts_with(&self.base) {
                return Landing {
                    callback: self.local(&url),
                    requests,
                };
            }
            let r = self.client.get(&url).send().await.expect("IdP page");
            let status = r.status().as_u16();
            if status == 303 || status == 302 {
                url = location(&r, &url);
                continue;
            }
            assert_eq!(status, 200, "IdP page {url}: {status}");
            let page = r.text().await.expect("page");
            // A login or consent prompt, or an auto-submitting form (oidc-provider ends
            // the previous account's session first when someone else logs in).
            let (action, form): (String, Vec<(String, String)>) =
                match hidden(&page, "prompt").as_deref() {
                    Some("login") => (
                        url.clone(),
                        vec![
                            ("prompt".into(), "login".into()),
                            ("login".into(), login.into()),
                            ("password".into(), "any".into()),
                        ],
                    ),
                    Some(p) => (url.clone(), vec![("prompt".into(), p.into())]),
                    None => {
                        let action = attribute(&page, "action")
                            .unwrap_or_else(|| panic!("no form at {url}: {page}"));
                        (action, hidden_fields(&page))
                    }
                };
            let posted = self
                .client
                .post(&action)
                .form(&form)
                .send()
                .await
                .expect("IdP form");
            assert!(
                posted.status().is_redirection(),
                "IdP form at {action}: {}",
                posted.status()
            );
            url = location(&posted, &url);
        }
        panic!("the identity provider never sent the browser back");
    }
}

/// The `Location` of a redirect, resolved against `current`.
fn location(r: &reqwest::Response, current: &str) -> String {
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    reqwest::Url::parse(current)
        .and_then(|base| base.join(loc))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| loc.to_owned())
}

/// The first `name="…"` attribute value in a page.
fn attribute(page: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = page.find(&needle)? + needle.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

/// Every hidden input of a page, as (name, value).
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input")
        .skip(1)
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
        .collect()
}

/// A hidden form field's value in an HTML page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page.find(&needle)? + needle.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

/// A running `saml-idp` (npm) on `127.0.0.1` with a fresh RSA signing key, stopped
/// when dropped. Its settings (signing, audience, lifetime, …) are per process: a test
/// that changes them starts its own.
#[derive(Debug)]
pub struct SamlIdp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its entity id.
    pub entity_id: String,
    /// Its signing certificate (PEM).
    pub cert_pem: String,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

/// Who signs in at the SAML IdP (its form's profile fields).
#[derive(Debug, Clone)]
pub struct SamlUser {
    /// The NameID (e-mail format).
    pub name_id: String,
    /// The `email` attribute.
    pub email: String,
    /// The `displayName` attribute.
    pub display_name: String,
    /// The `groups` attribute (comma-separated values become several).
    pub groups: String,
}

impl SamlUser {
    /// A user whose NameID and e-mail are `email`.
    pub fn new(email: &str, groups: &str) -> Self {
        Self {
            name_id: email.into(),
            email: email.into(),
            display_name: format!("Test {email}"),
            groups: groups.into(),
        }
    }
}

/// A SAML response the IdP's page would post to the server, not yet posted.
#[derive(Debug, Clone)]
pub struct SamlPost {
    /// The ACS (on the real server).
    pub acs: String,
    /// The decoded response document (tests may alter it before posting).
    pub xml: String,
    /// `RelayState`.
    pub relay_state: String,
}

/// A self-signed RSA-2048 certificate and its PKCS#8 key, PEM.
fn rsa_cert(cn: &str) -> (String, String) {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let mut name = x509::X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", cn).expect("cn");
    let name = name.build();
    let mut b = x509::X509::builder().expect("x509");
    b.set_version(2).expect("version");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    let (from, until) = (
        Asn1Time::days_from_now(0).expect("t"),
        Asn1Time::days_from_now(2).expect("t"),
    );
    b.set_not_before(&from).expect("nb");
    b.set_not_after(&until).expect("na");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let cert = String::from_utf8(b.build().to_pem().expect("pem")).expect("utf8");
    let key = String::from_utf8(key.private_key_to_pem_pkcs8().expect("pem")).expect("utf8");
    (cert, key)
}

impl SamlIdp {
    /// Starts the IdP for the server's tenant `tenant`, provider `provider` (its
    /// audience and default ACS), with extra saml-idp options and environment, or
    /// `None` when the IdPs are not installed (see [`idp_dir`]).
    pub async fn start(
        tenant: &str,
        provider: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Self> {
        let dir = idp_dir()?;
        let tmp = tempfile::tempdir().expect("temp dir");
        let (cert_pem, key_pem) = rsa_cert("Strongroom Test SAML IdP");
        std::fs::write(tmp.path().join("idp-cert.pem"), &cert_pem).expect("cert");
        std::fs::write(tmp.path().join("idp-key.pem"), &key_pem).expect("key");
        let log = tmp.path().join("saml-idp.log");
        let entity_id = "urn:strongroom:test-idp".to_owned();
        let base = format!("{PUBLIC_URL}/v1/t/{tenant}/sso/{provider}");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("saml-idp.cjs"))
            .arg("--cert")
            .arg(tmp.path().join("idp-cert.pem"))
            .arg("--key")
            .arg(tmp.path().join("idp-key.pem"))
            .args(["--issuer", &entity_id])
            .args(["--acsUrl", &format!("{base}/acs")])
            .args(["--audience", &format!("{base}/metadata")])
            .args(extra)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node (install nodejs)");
        let url = ready(&mut child, &log, "saml-idp").await;
        Some(Self {
            url,
            entity_id,
            cert_pem,
            child,
            log,
            dir: tmp,
        })
    }

    /// A path in the IdP's own temporary directory (for extra key files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Its metadata document.
    pub async fn metadata(&self) -> String {
        reqwest::get(format!("{}/metadata", self.url))
            .await
            .expect("metadata")
            .text()
            .await
            .expect("metadata text")
    }

    /// Changes IdP options at run time (saml-idp's `POST /settings`, e.g.
    /// `signAssertion=false`).
    pub async fn settings(&self, pairs: &[(&str, &str)]) {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(format!("{}/settings", self.url))
            .form(pairs)
            .send()
            .await
            .expect("settings");
        assert!(
            r.status().is_success() || r.status().is_redirection(),
            "settings: {}",
            r.status()
        );
    }

    /// Later assertions carry `AuthnInstant = now - secs` (an IdP that ignored
    /// `ForceAuthn`).
    pub async fn authn_age(&self, secs: u64) {
        let r = reqwest::Client::new()
            .post(format!("{}/__test/authn-age?secs={secs}", self.url))
            .send()
            .await
            .expect("hook");
        assert!(r.status().is_success());
    }

    /// The last AuthnRequest the IdP parsed (id, issuer, acsUrl, forceAuthn).
    pub async fn last_request(&self) -> serde_json::Value {
        reqwest::get(format!("{}/__test/last-request", self.url))
            .await
            .expect("hook")
            .json()
            .await
            .expect("json")
    }

    /// What the IdP wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// HTML attribute unescaping of what saml-idp's templates escape.
fn unescape(s: &str) -> String {
    s.replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&#x60;", "`")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the input named `name` in `page`, quoted with `"` or `'`.
fn input_value(page: &str, name: &str) -> Option<String> {
    let tag = page
        .split("<input")
        .skip(1)
        .find(|t| t.contains(&format!("name=\"{name}\"")))?;
    let (start, quote) = ["value=\"", "value='"]
        .iter()
        .find_map(|n| tag.find(n).map(|i| (i + n.len(), n.as_bytes()[6] as char)))?;
    let end = tag[start..].find(quote)? + start;
    Some(unescape(&tag[start..end]))
}

impl Browser {
    /// Follows a redirect to the SAML IdP (`authorization_url`: the AuthnRequest by
    /// HTTP-Redirect) and signs in there as `user`; the response its page would post
    /// back, not yet posted.
    pub async fn saml_at_idp(&self, authorization_url: &str, user: &SamlUser) -> SamlPost {
        let page = self
            .client
            .get(authorization_url)
            .send()
            .await
            .expect("IdP SSO page");
        assert_eq!(page.status().as_u16(), 200, "IdP SSO page");
        let base = {
            let u = reqwest::Url::parse(authorization_url).expect("url");
            format!("{}://{}", u.scheme(), u.authority())
        };
        let page = page.text().await.expect("page");
        let authn = input_value(&page, "_authnRequest").expect("_authnRequest");
        let form = [
            ("userName", user.name_id.as_str()),
            (
                "nameIdFormat",
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            ),
            ("firstName", "Test"),
            ("lastName", "User"),
            ("displayName", user.display_name.as_str()),
            ("email", user.email.as_str()),
            ("mobilePhone", "+1-555-0100"),
            ("groups", user.groups.as_str()),
            ("userType", "Employee"),
            ("_authnRequest", authn.as_str()),
        ];
        let signed = self
            .client
            .post(format!("{base}/signin"))
            .form(&form)
            .send()
            .await
            .expect("IdP sign-in");
        assert_eq!(signed.status().as_u16(), 200, "IdP sign-in");
        let page = signed.text().await.expect("page");
        let acs = attribute(&page, "action").expect("form action");
        let response = input_value(&page, "SAMLResponse").expect("SAMLResponse");
        let relay_state = input_value(&page, "RelayState").unwrap_or_default();
        use base64::Engine as _;
        let xml = base64::engine::general_purpose::STANDARD
            .decode(response.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .expect("a base64 XML response");
        SamlPost {
            acs: self.local(&unescape(&acs)),
            xml,
            relay_state,
        }
    }

    /// Starts a SAML sign-in at the server and signs `user` in at the IdP; the response
    /// to post.
    pub async fn saml_sign_in(&self, tenant: &str, provider: &str, user: &SamlUser) -> SamlPost {
        let start = self
            .client
            .get(format!("{}/v1/t/{tenant}/sso/{provider}/login", self.base))
            .send()
            .await
            .expect("login start");
        assert_eq!(start.status().as_u16(), 303, "login start");
        let to = location(&start, &self.base);
        self.saml_at_idp(&to, user).await
    }

    /// Posts a SAML response (its document base64-encoded again) to the ACS, as the
    /// IdP page's auto-submitting form would.
    pub async fn post_saml(&self, post: &SamlPost) -> reqwest::Response {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(post.xml.as_bytes());
        self.client
            .post(&post.acs)
            .form(&[
                ("SAMLResponse", b64.as_str()),
                ("RelayState", post.relay_state.as_str()),
            ])
            .send()
            .await
            .expect("ACS")
    }
}
