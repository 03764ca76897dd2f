//! A typed client for the server's API: requests that come back as a [`Reply`] whose
//! status, problem `type` and body are checked in one call, sign-in, tenant set-up, and
//! the audit actions a request left behind. Integration tests say what they send and
//! what must (and must not) come back, not how to build a request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::TestServer;

/// Password given to every user the kit creates.
pub const USER_PASSWORD: &str = "correct horse battery staple 42";

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `x-request-id`, if any.
    pub request_id: Option<String>,
    /// `ETag`, if any.
    pub etag: Option<String>,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// A reply read from a response of any client (e.g. a cookie-keeping browser).
    pub async fn from_response(r: reqwest::Response) -> Self {
        read(r).await
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Asserts the status; returns the JSON body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status: {}", self.text);
        self.json()
    }

    /// Asserts an RFC 9457 problem of `slug` with `status` (type, title, detail and
    /// request id all present, the id matching the header); returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status: {}", self.text);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(
            body["type"],
            format!("https://strongroom.dev/errors/{slug}"),
            "{body}"
        );
        assert_eq!(body["status"], status);
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
        assert_eq!(body["request_id"].as_str(), self.request_id.as_deref());
        body
    }

    /// Asserts that none of `needles` appears anywhere in the body.
    #[track_caller]
    pub fn lacks(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(!self.text.contains(n), "{n:?} leaked into {}", self.text);
        }
        self
    }
}

/// Signed-in tokens of a tenant user.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

/// The API of one running server. Every reply it reads is checked against the
/// server's own OpenAPI document: an operation answering a status or content type the
/// document does not list fails the test that saw it.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    doc: std::sync::Arc<tokio::sync::OnceCell<Value>>,
}

impl Api {
    /// A client of `server`'s API.
    pub fn new(server: &TestServer) -> Self {
        Self {
            base: server.base.clone(),
            http: server.client(),
            doc: Default::default(),
        }
    }

    /// A client of `server`'s API whose connections come from `ip` (a loopback
    /// address such as `127.0.0.2`).
    pub fn from_address(server: &TestServer, ip: &str) -> Self {
        let cert = reqwest::Certificate::from_pem(&server.cert_pem()).expect("cert");
        let http = reqwest::Client::builder()
            .tls_certs_only([cert])
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("client");
        Self {
            base: server.base.clone(),
            http,
            doc: Default::default(),
        }
    }

    /// Sends `method path` with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let reply = read(req.send().await.expect("request")).await;
        self.check_documented(&method, path, &reply).await;
        reply
    }

    /// Sends `method path` with a bearer token, extra headers and a raw body (`None`:
    /// no body), checked against the OpenAPI document like every other reply. The
    /// reply's `etag` is kept in [`Reply::etag`].
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let reply = read(req.send().await.expect("request")).await;
        self.check_documented(&method, path, &reply).await;
        reply
    }

    /// `method path` with a JSON body and `If-Match: etag` (`None`: no header).
    pub async fn send_if(
        &self,
        method: Method,
        path: &str,
        token: &str,
        etag: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(e) = etag {
            headers.push(("if-match", e));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.send_raw(method, path, token, &headers, bytes).await
    }

    /// Asserts that the operation `method path` documents `reply`'s status and content
    /// type (paths no operation matches are the router's own 404/405, also problems).
    async fn check_documented(&self, method: &Method, path: &str, reply: &Reply) {
        let doc = self
            .doc
            .get_or_init(|| async {
                let r = self.http.get(format!("{}/openapi.json", self.base)).send();
                r.await
                    .expect("openapi")
                    .json()
                    .await
                    .expect("openapi json")
            })
            .await;
        let bare = path.split('?').next().unwrap_or(path);
        let Some(op) = crate::openapi::operation(doc, method.as_str(), bare) else {
            return;
        };
        let status = reply.status.to_string();
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {bare} answered {status}, which its OpenAPI operation does not list: {}",
            reply.text
        );
        let essence = |c: &str| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        };
        if let (Some(ct), Some(listed)) = (&reply.content_type, documented["content"].as_object()) {
            assert!(
                listed.keys().any(|k| essence(k) == essence(ct)),
                "{method} {bare} {status} answered {ct}, which its OpenAPI operation does not list"
            );
        }
    }

    /// Sends a form-encoded POST (the OAuth token endpoint).
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let req = self.http.post(format!("{}{path}", self.base)).form(fields);
        let reply = read(req.send().await.expect("request")).await;
        self.check_documented(&Method::POST, path, &reply).await;
        reply
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// `POST path` with `token` (if any) and a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, path, token, Some(&body)).await
    }

    /// `PATCH path` with `token` and a JSON body.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(token), Some(&body))
            .await
    }

    /// `PUT path` with `token` and a JSON body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::PUT, path, Some(token), Some(&body)).await
    }

    /// `DELETE path` with `token` and an optional JSON body.
    pub async fn delete(&self, path: &str, token: &str, body: Option<Value>) -> Reply {
        self.send(Method::DELETE, path, Some(token), body.as_ref())
            .await
    }

    /// Signs `email` in to `tenant` with `password`.
    pub async fn sign_in_with(&self, tenant: &str, email: &str, password: &str) -> Reply {
        let body = json!({"email": email, "password": password});
        self.post(&format!("/v1/t/{tenant}/sessions"), None, body)
            .await
    }

    /// Signs `email` in to `tenant` with [`USER_PASSWORD`], which must work.
    pub async fn sign_in(&self, tenant: &str, email: &str) -> Tokens {
        let body = self
            .sign_in_with(tenant, email, USER_PASSWORD)
            .await
            .ok(201);
        Tokens {
            access: body["access_token"].as_str().expect("access").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates tenant `slug` in region `eu` as the operator.
    pub async fn create_tenant(&self, operator: &str, slug: &str) -> Value {
        let body = json!({"slug": slug, "display_name": slug, "region": "eu"});
        self.post("/v1/tenants", Some(operator), body).await.ok(201)
    }

    /// Creates a user with `roles` (and [`USER_PASSWORD`]) as `admin`; returns the user.
    pub async fn create_user(
        &self,
        admin: &str,
        tenant: &str,
        email: &str,
        roles: &[&str],
    ) -> Value {
        let body = json!({"email": email, "password": USER_PASSWORD, "roles": roles});
        self.post(&format!("/v1/t/{tenant}/users"), Some(admin), body)
            .await
            .ok(201)
    }

    /// Every audit entry of `tenant`, oldest first, read with `token` (which needs
    /// `audit:read`).
    pub async fn audit_entries(&self, token: &str, tenant: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/v1/t/{tenant}/audit/entries?limit=500{cursor}");
            let page = self.get(&path, token).await.ok(200);
            out.extend(page["entries"].as_array().expect("entries").iter().cloned());
            match page["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return out,
            }
        }
    }

    /// The actions of `tenant`'s audit entries, oldest first.
    pub async fn audit_actions(&self, token: &str, tenant: &str) -> Vec<String> {
        self.audit_entries(token, tenant)
            .await
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn read(resp: reqwest::Response) -> Reply {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, request_id) = (header("content-type"), header("x-request-id"));
    let etag = header("etag");
    Reply {
        status: resp.status().as_u16(),
        content_type,
        request_id,
        etag,
        text: resp.text().await.expect("body"),
    }
}
