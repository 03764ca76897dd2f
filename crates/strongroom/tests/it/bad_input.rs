//! Hostile input: each case gets problem+json with the right status and type, nothing
//! is created, nothing stored changes, and the server stays up.

use serde_json::{Value, json};

use crate::support::*;

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    problem: &'static str,
    /// JSON Pointer the problem must name, for validation errors.
    pointer: Option<&'static str>,
}

fn case(
    name: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    problem: &'static str,
    pointer: Option<&'static str>,
) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        body: body.into(),
        status,
        problem,
        pointer,
    }
}

fn tenant_json(slug: &str, region: &str) -> Vec<u8> {
    json!({"slug": slug, "display_name": "Evil Corp", "region": region})
        .to_string()
        .into_bytes()
}

fn cases() -> Vec<Case> {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    vec![
        case(
            "malformed json",
            &b"{\"slug\": \"evil\", "[..],
            400,
            "malformed-body",
            None,
        ),
        case(
            "not json at all",
            &b"slug=evil&region=eu"[..],
            400,
            "malformed-body",
            None,
        ),
        case("empty body", &b""[..], 400, "malformed-body", None),
        // Refused at the first type mismatch, long before any recursion limit.
        case(
            "deeply nested json",
            nested.into_bytes(),
            422,
            "validation",
            None,
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "wrong content type",
                tenant_json("evil", "eu"),
                415,
                "unsupported-media-type",
                None,
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type",
                tenant_json("evil", "eu"),
                415,
                "unsupported-media-type",
                None,
            )
        },
        case(
            "oversized body",
            format!(
                r#"{{"slug":"evil","display_name":"{}","region":"eu"}}"#,
                "x".repeat(2 * 1024 * 1024)
            )
            .into_bytes(),
            413,
            "payload-too-large",
            None,
        ),
        case(
            "unknown field",
            json!({"slug": "evil", "display_name": "E", "region": "eu", "admin": true}).to_string(),
            422,
            "validation",
            Some("/admin"),
        ),
        case(
            "missing field",
            json!({"slug": "evil", "region": "eu"}).to_string(),
            422,
            "validation",
            Some(""),
        ),
        case(
            "array instead of object",
            &b"[1,2,3]"[..],
            422,
            "validation",
            Some(""),
        ),
        case("null body", &b"null"[..], 422, "validation", Some("")),
        case(
            "wrong type",
            json!({"slug": 42, "display_name": "E", "region": "eu"}).to_string(),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug too long",
            tenant_json(&"a".repeat(64), "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug too short",
            tenant_json("ab", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug with slash",
            tenant_json("ab/cd", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug path traversal",
            tenant_json("../../etc", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug with space",
            tenant_json("ab cd", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug upper case",
            tenant_json("EvilCorp", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug unicode",
            tenant_json("évil", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "slug NUL",
            tenant_json("evil\u{0}corp", "eu"),
            422,
            "validation",
            Some("/slug"),
        ),
        case(
            "unknown region",
            tenant_json("evil", "mars"),
            422,
            "validation",
            Some("/region"),
        ),
        case(
            "malformed region",
            tenant_json("evil", "EU; DROP TABLE"),
            422,
            "validation",
            Some("/region"),
        ),
        case(
            "display name control chars",
            json!({"slug": "evil", "display_name": "a\u{7}b", "region": "eu"}).to_string(),
            422,
            "validation",
            Some("/display_name"),
        ),
        case(
            "display name blank",
            json!({"slug": "evil", "display_name": "   ", "region": "eu"}).to_string(),
            422,
            "validation",
            Some("/display_name"),
        ),
    ]
}

#[tokio::test]
async fn bad_tenant_bodies_are_refused_and_change_nothing() {
    let s = start().await;
    let token = s.operator_token().await;
    assert_eq!(
        create_tenant(
            &s,
            &token,
            json!({"slug": "existing", "display_name": "Existing", "region": "eu"})
        )
        .await
        .status(),
        201
    );
    let before = tenant_slugs(&s, &token).await;
    let c = s.client();
    for case in cases() {
        let mut req = c
            .post(s.url("/v1/tenants"))
            .bearer_auth(&token)
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let body = expect_problem(resp, case.status, case.problem).await;
        if let Some(pointer) = case.pointer {
            let pointers: Vec<&str> = body["errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e["pointer"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                pointers.contains(&pointer),
                "{}: expected pointer {pointer:?} in {body}",
                case.name
            );
        }
        assert!(
            body.to_string().len() < 4096,
            "{}: the problem echoes the input back",
            case.name
        );
        assert_eq!(
            tenant_slugs(&s, &token).await,
            before,
            "{}: tenant list changed",
            case.name
        );
        assert_eq!(
            c.get(s.url("/healthz")).send().await.unwrap().status(),
            200,
            "{}: server down",
            case.name
        );
    }
    let existing: Value = c
        .get(s.url("/v1/tenants/existing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(existing["display_name"], "Existing");
}

#[tokio::test]
async fn a_taken_slug_conflicts_and_keeps_the_original() {
    let s = start().await;
    let token = s.operator_token().await;
    assert_eq!(
        create_tenant(
            &s,
            &token,
            json!({"slug": "acme", "display_name": "Acme EU", "region": "eu"})
        )
        .await
        .status(),
        201
    );
    let resp = create_tenant(
        &s,
        &token,
        json!({"slug": "acme", "display_name": "Impostor", "region": "us"}),
    )
    .await;
    expect_problem(resp, 409, "conflict").await;
    let t: Value = crate::support::call(&s, reqwest::Method::GET, "/v1/tenants/acme", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (t["display_name"].as_str(), t["region"].as_str()),
        (Some("Acme EU"), Some("eu"))
    );
}

#[tokio::test]
async fn authentication_is_required_and_bad_tokens_are_refused() {
    let s = start().await;
    let c = s.client();
    let body = json!({"slug": "evil", "display_name": "E", "region": "eu"});
    let no_token = c
        .post(s.url("/v1/tenants"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    expect_problem(no_token, 401, "unauthenticated").await;
    for auth in [
        "Bearer",
        "Bearer not.a.token",
        "Basic b3A6cGFzcw==",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJvcGVyYXRvcjp4In0.",
    ] {
        let resp = c
            .post(s.url("/v1/tenants"))
            .header("authorization", auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_problem(resp, 401, "unauthenticated").await;
    }
    let token = s.operator_token().await;
    assert!(
        tenant_slugs(&s, &token).await.is_empty(),
        "nothing was created"
    );
}

#[tokio::test]
async fn wrong_operator_passwords_are_refused_without_saying_which_part_was_wrong() {
    let s = start().await;
    s.operator_token().await;
    let c = s.client();
    let wrong_password = c
        .post(s.url("/v1/operator/sessions"))
        .json(&json!({"email": strongroom_testkit::OPERATOR_EMAIL, "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    let a = expect_problem(wrong_password, 401, "unauthenticated").await;
    let no_account = c
        .post(s.url("/v1/operator/sessions"))
        .json(&json!({"email": "nobody@strongroom.test", "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    let b = expect_problem(no_account, 401, "unauthenticated").await;
    assert_eq!(a["detail"], b["detail"]);
}

#[tokio::test]
async fn bad_query_and_path_parameters() {
    let s = start().await;
    let token = s.operator_token().await;
    let c = s.client();
    for q in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "after=BAD",
        "unknown=1",
    ] {
        let resp = c
            .get(s.url(&format!("/v1/tenants?{q}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        expect_problem(resp, 422, "validation").await;
    }
    for path in [
        "/v1/tenants/NOPE",
        "/v1/tenants/nope",
        "/v1/tenants/..%2f..%2fetc",
    ] {
        let resp = c.get(s.url(path)).bearer_auth(&token).send().await.unwrap();
        expect_problem(resp, 404, "not-found").await;
    }
}

#[tokio::test]
async fn an_encoded_nul_in_a_query_or_a_path_is_refused_before_any_handler() {
    let s = crate::support::start().await;
    let c = s.client();
    let r = c
        .get(s.url("/v1/platform/audit/entries?actor=a%00b"))
        .send()
        .await
        .unwrap();
    expect_problem(r, 422, "validation").await;
    let r = c.get(s.url("/v1/tenants/a%00b")).send().await.unwrap();
    expect_problem(r, 404, "not-found").await;
}
