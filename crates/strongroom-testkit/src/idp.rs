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
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(30), async {
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
                "oidc-provider did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        // Keep reading what it prints: a closed pipe would kill it at its next line
        // (oidc-provider logs some events to stdout).
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
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
