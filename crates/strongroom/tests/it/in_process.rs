//! The in-process tier: the same application `serve` serves, driven with
//! `tower::ServiceExt::oneshot` — no socket, no TLS — for pure HTTP-edge behaviour:
//! problem+json for every refusal, security headers, request ids, body limits, and a
//! sign-in that cannot see the client's address being refused rather than let through
//! unthrottled.

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The application over a fresh data directory (kept alive with it).
async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = strongroom_core::config::Config::load(
        None,
        Vec::<(String, String)>::new(),
        vec![
            (
                "data_dir",
                toml::Value::String(dir.path().join("data").display().to_string()),
            ),
            ("limits.max_body_bytes", toml::Value::Integer(1024)),
        ],
    )
    .unwrap();
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    (strongroom::app(&config, opened).await.unwrap(), dir)
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(app: &axum::Router, req: axum::http::Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A request as the real listener hands it over: with the peer's address attached.
fn request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> axum::http::Request<Body> {
    let mut req = bare(method, path, content_type, body);
    let peer: std::net::SocketAddr = "192.0.2.1:40000".parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    req
}

/// A request with no peer address (what no listener of ours produces).
fn bare(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> axum::http::Request<Body> {
    let mut b = axum::http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn problem(a: &Answer, status: u16, slug: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(
        a.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(
        a.body["type"],
        format!("https://strongroom.dev/errors/{slug}")
    );
    assert_eq!(
        a.body["request_id"].as_str(),
        a.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        "the problem names the request"
    );
    for h in [
        "strict-transport-security",
        "content-security-policy",
        "x-content-type-options",
    ] {
        assert!(a.headers.contains_key(h), "{h} missing on a {status}");
    }
}

#[tokio::test]
async fn the_edge_answers_every_refusal_with_a_problem_and_headers() {
    let (app, _dir) = app().await;
    let json = Some("application/json");
    let cases = [
        (request("GET", "/nowhere", None, ""), 404, "no-route"),
        (
            request("DELETE", "/healthz", None, ""),
            405,
            "method-not-allowed",
        ),
        (
            request("POST", "/v1/tenants", json, "{"),
            401,
            "unauthenticated",
        ),
        (
            request("POST", "/v1/operator/sessions", Some("text/plain"), "x"),
            415,
            "unsupported-media-type",
        ),
        (
            request("POST", "/v1/operator/sessions", json, "{not json"),
            400,
            "malformed-body",
        ),
        (
            request("POST", "/v1/operator/sessions", json, &"x".repeat(4096)),
            413,
            "payload-too-large",
        ),
        (
            request(
                "POST",
                "/v1/operator/sessions",
                json,
                r#"{"email":"a@b.example","password":"p","extra":1}"#,
            ),
            422,
            "validation",
        ),
        (
            request("GET", "/v1/t/NOT-A-SLUG/audit/checkpoint", None, ""),
            401,
            "unauthenticated",
        ),
    ];
    for (req, status, slug) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let a = call(&app, req).await;
        assert_eq!(a.status, status, "{what}: {}", a.body);
        problem(&a, status, slug);
    }
}

#[tokio::test]
async fn a_sign_in_without_a_client_address_is_refused_not_unthrottled() {
    let (app, _dir) = app().await;
    for path in ["/v1/operator/sessions", "/v1/t/acme/sessions"] {
        let body = r#"{"email":"a@b.example","password":"whatever it is"}"#;
        let a = call(&app, bare("POST", path, Some("application/json"), body)).await;
        problem(&a, 403, "forbidden");
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap()
                .contains("network address")
        );
    }
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_and_a_hostile_one_replaced() {
    let (app, _dir) = app().await;
    for (sent, kept) in [
        ("0190f3b2-aaaa-7bbb-8ccc-0123456789ab", true),
        ("bad\tid", false),
    ] {
        let mut req = request("GET", "/healthz", None, "");
        req.headers_mut().insert(
            "x-request-id",
            sent.parse().unwrap_or_else(|_| "x".parse().unwrap()),
        );
        let a = call(&app, req).await;
        assert_eq!(a.status, 200);
        let got = a.headers.get("x-request-id").unwrap().to_str().unwrap();
        assert_eq!(got == sent, kept, "{sent:?} -> {got:?}");
    }
}
