//! Security headers on every response, success and error alike.

use reqwest::Method;

use crate::support::*;

const REQUIRED: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

fn check(resp: &reqwest::Response, what: &str) {
    for (name, value) in REQUIRED {
        let got = resp.headers().get(*name).map(|v| v.to_str().unwrap());
        assert_eq!(got, Some(*value), "{name} on {what}");
    }
    let csp = resp
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "CSP on {what}: {csp}"
    );
    let id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap();
    assert!(!id.is_empty());
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let s = start().await;
    let c = s.client();
    let cases: Vec<(Method, &str, Option<&str>, u16)> = vec![
        (Method::GET, "/healthz", None, 200),
        (Method::GET, "/readyz", None, 200),
        (Method::GET, "/openapi.json", None, 200),
        (Method::GET, "/no/such/path", None, 404),
        (Method::DELETE, "/healthz", None, 405),
        (Method::GET, "/v1/tenants", None, 401),
        (
            Method::POST,
            "/v1/operator/sessions",
            Some("{not json"),
            400,
        ),
        (
            Method::POST,
            "/v1/operator/sessions",
            Some(r#"{"email":"x"}"#),
            422,
        ),
    ];
    for (method, path, body, status) in cases {
        let mut req = c.request(method.clone(), s.url(path));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        check(&resp, &format!("{method} {path}"));
    }
}

#[tokio::test]
async fn a_plain_request_id_from_a_proxy_is_kept_and_a_hostile_one_replaced() {
    let s = start().await;
    let c = s.client();
    let kept = c
        .get(s.url("/healthz"))
        .header("x-request-id", "proxy-id-12345678")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "proxy-id-12345678");
    let replaced = c
        .get(s.url("/healthz"))
        .header("x-request-id", "evil id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "evil id with spaces");
}
