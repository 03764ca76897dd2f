//! Shared helpers for the integration tests.

use std::path::Path;

use serde_json::Value;
pub(crate) use strongroom_testkit::{Options, TestServer};

/// The binary under test.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strongroom"))
}

/// Starts a server with two regions, `eu` and `us`.
pub(crate) async fn start() -> TestServer {
    TestServer::start_with(
        bin(),
        Options {
            config: Some(TWO_REGIONS.into()),
            ..Options::default()
        },
    )
    .await
}

/// Starts a server with two regions again on an existing data directory.
pub(crate) async fn restart(dir: tempfile::TempDir) -> TestServer {
    TestServer::start_with(
        bin(),
        Options {
            config: Some(TWO_REGIONS.into()),
            dir: Some(dir),
            ..Options::default()
        },
    )
    .await
}

/// The local administrator, as the CLI gets it: from proof that the caller can read an
/// initialised, owner-only data directory. Tests that open a server's data directory in
/// process (like the CLI) use it; the principal grants nothing without such a platform.
pub(crate) fn local_admin() -> strongroom_core::access::Principal {
    use std::os::unix::fs::PermissionsExt;
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(d.path().join("control.db"), b"").unwrap();
        d
    });
    strongroom_core::access::DataDirProof::check(dir.path())
        .unwrap()
        .local_admin()
}

/// A config declaring two regions.
pub(crate) const TWO_REGIONS: &str = "[regions.eu]\n[regions.us]\n";

/// Asserts `resp` is problem+json of `slug` with `status`; returns the body.
pub(crate) async fn expect_problem(resp: reqwest::Response, status: u16, slug: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
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
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "request id in body and header"
    );
    body
}

/// Creates a tenant over the API; returns the response.
pub(crate) async fn create_tenant(s: &TestServer, token: &str, body: Value) -> reqwest::Response {
    crate::support::call_json(s, reqwest::Method::POST, "/v1/tenants", token, &body).await
}

/// The slugs of all tenants, via the API.
pub(crate) async fn tenant_slugs(s: &TestServer, token: &str) -> Vec<String> {
    let resp = crate::support::call(s, reqwest::Method::GET, "/v1/tenants?limit=100", token).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap().to_owned())
        .collect()
}

/// Starts a server with the two regions and `extra` configuration (TOML) after them.
pub(crate) async fn start_configured(extra: &str) -> TestServer {
    TestServer::start_with(
        bin(),
        Options {
            config: Some(format!("{TWO_REGIONS}{extra}")),
            ..Options::default()
        },
    )
    .await
}

/// Rows of a read-only query on the `eu` region database, read with Python's sqlite3
/// (not our code), each column as text; BLOBs as lower-case hex.
pub(crate) fn region_rows(data: &Path, sql: &str) -> Vec<Vec<String>> {
    if strongroom_testkit::backend::postgres_selected() {
        let root = data
            .parent()
            .expect("data directory inside the server's temp dir");
        return strongroom_testkit::backend::region_rows(root, "eu", sql);
    }
    let db = data.join("regions/eu/strongroom.db");
    let script = format!(
        "import sqlite3, sys\nc = sqlite3.connect('file:{}?mode=ro', uri=True)\nfor row in c.execute(sys.argv[1]):\n    print('\\t'.join(v.hex() if isinstance(v, bytes) else str(v) for v in row))\n",
        db.display()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Ends a test that exercises the SQLite adapter's files (tampering with them, their
/// layout on disk) when the suite runs on PostgreSQL: the PostgreSQL equivalents are
/// the storage crate's RLS and privilege tests.
macro_rules! sqlite_only {
    ($why:literal) => {
        if strongroom_testkit::backend::postgres_selected() {
            eprintln!("skipped on PostgreSQL: {}", $why);
            return;
        }
    };
}
pub(crate) use sqlite_only;

/// `method path` with a bearer token: the one request chain every test shares.
pub(crate) async fn call(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::Response {
    s.client()
        .request(method, s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `method path` with a bearer token and a JSON body.
pub(crate) async fn call_json(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &Value,
) -> reqwest::Response {
    s.client()
        .request(method, s.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `method path` without credentials, with a JSON body.
pub(crate) async fn send_json(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    s.client()
        .request(method, s.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `method path` without credentials or body.
pub(crate) async fn send(s: &TestServer, method: reqwest::Method, path: &str) -> reqwest::Response {
    s.client()
        .request(method, s.url(path))
        .send()
        .await
        .unwrap()
}

/// A token of an auditor of `tenant` (created through the CLI the first time): who
/// reads a tenant's trail in tests, since operators may not without a support grant.
pub(crate) async fn auditor(s: &TestServer, tenant: &str) -> String {
    let email = format!("auditor@{tenant}.example");
    let args = [
        "user",
        "create",
        "--tenant",
        tenant,
        "--email",
        &email,
        "--role",
        "auditor",
        "--password-stdin",
    ];
    let out = s.cli(&args, Some(strongroom_testkit::USER_PASSWORD)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "{stderr}"
    );
    s.api().sign_in(tenant, &email).await.access
}
