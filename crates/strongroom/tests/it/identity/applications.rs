//! Applications: client credentials, token exchange, the token endpoint.

use serde_json::{Value, json};

use super::*;
use crate::support::{TestServer, expect_problem};

async fn token_request(
    s: &TestServer,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = s.client().post(s.url("/oauth/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn applications_get_client_credentials_tokens_with_their_own_permissions() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let token = tokens(&s, "acme", &admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/applications",
        &token,
        &json!({"name": "LIMS connector", "permissions": ["audit:read", "records:read"]}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let app: Value = resp.json().await.unwrap();
    let (id, client_id, secret) = (
        app["id"].as_str().unwrap().to_owned(),
        app["client_id"].as_str().unwrap().to_owned(),
        app["client_secret"].as_str().unwrap().to_owned(),
    );
    assert!(client_id.starts_with("acme.") && secret.starts_with("src_"));

    // Client credentials in the body, and with HTTP Basic.
    let resp = token_request(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "audit:read records:read");
    let app_token = t["access_token"].as_str().unwrap().to_owned();
    let resp = token_request(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "records:read"),
        ],
        Some((&client_id, &secret)),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let narrow = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The application reads the trail but cannot manage users; the narrowed token
    // cannot read the trail.
    assert_eq!(
        get(&s, &app_token, "/v1/t/acme/audit/entries")
            .await
            .status(),
        200
    );
    expect_problem(
        get(&s, &app_token, "/v1/t/acme/users").await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        get(&s, &narrow, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    // Its actions are attributed to it.
    let page: Value = get(&s, &token, "/v1/t/acme/audit/entries?action=audit.query")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == json!({"kind": "application", "id": id}))
    );

    // RFC 6749 §5.2 errors, as problem+json with the `error` code.
    for (form, basic, status, code) in [
        (
            vec![("grant_type", "password")],
            None,
            400,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", "src_wrong"),
            ],
            None,
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "acme.0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61"),
                ("client_secret", secret.as_str()),
            ],
            None,
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nonsense"),
                ("client_secret", "x"),
            ],
            None,
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials")],
            None,
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "users:manage"),
            ],
            Some((client_id.as_str(), secret.as_str())),
            400,
            "invalid_scope",
        ),
    ] {
        let resp = token_request(&s, &form, basic).await;
        assert_eq!(resp.status().as_u16(), status, "{form:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], code, "{body}");
    }
    let resp = crate::support::send_json(
        &s,
        reqwest::Method::POST,
        "/oauth/token",
        &json!({"grant_type": "client_credentials"}),
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Disabled: the live token stops at the next request and no new one is issued.
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::PATCH,
        &format!("/v1/t/acme/applications/{id}"),
        &token,
        &json!({"active": false}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    expect_problem(
        get(&s, &app_token, "/v1/t/acme/audit/entries").await,
        401,
        "unauthenticated",
    )
    .await;
    let resp = token_request(
        &s,
        &[("grant_type", "client_credentials")],
        Some((&client_id, &secret)),
    )
    .await;
    assert_eq!(resp.status(), 401);
    // The listing never shows a secret.
    let list = get(&s, &token, "/v1/t/acme/applications")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains(&client_id) && !list.contains(&secret) && !list.contains("client_secret")
    );
}

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

#[tokio::test]
async fn delegated_tokens_carry_only_what_the_user_and_the_application_both_hold() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let admin = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    create_user(&s, &admin, "acme", "vic@acme.example", &["viewer"]).await;
    // The application may read records and the trail, not manage users.
    let app: Value = crate::support::call_json(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/applications",
        &admin,
        &json!({"name": "Reviewer UI", "permissions": ["records:read", "audit:read"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    let (client_id, secret) = (
        app["client_id"].as_str().unwrap().to_owned(),
        app["client_secret"].as_str().unwrap().to_owned(),
    );
    let exchange = |subject: String, scope: Option<&'static str>| {
        let (s, client_id, secret) = (&s, client_id.clone(), secret.clone());
        async move {
            let mut form = vec![
                ("grant_type", EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS.to_owned()),
            ];
            if let Some(sc) = scope {
                form.push(("scope", sc.to_owned()));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(s, &form, Some((&client_id, &secret))).await
        }
    };
    // Admin (everything) through the app (records + audit): records + audit, no users.
    let resp = exchange(admin.clone(), None).await;
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["scope"], "records:read audit:read");
    let delegated = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&s, &delegated, "/v1/t/acme/audit/entries")
            .await
            .status(),
        200
    );
    expect_problem(
        get(&s, &delegated, "/v1/t/acme/users").await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        get(&s, &admin, "/v1/t/acme/users").await.status(),
        200,
        "the user's own token is unchanged"
    );
    // Viewer (records) through the app: records only, so not the trail, though the app may.
    let vic = tokens(&s, "acme", "vic@acme.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t: Value = exchange(vic.clone(), None).await.json().await.unwrap();
    assert_eq!(t["scope"], "records:read");
    let vic_via = t["access_token"].as_str().unwrap().to_owned();
    expect_problem(
        get(&s, &vic_via, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    // A scope beyond the intersection, a delegated token as subject, garbage: refused.
    let resp = exchange(vic.clone(), Some("audit:read")).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
    let resp = exchange(delegated.clone(), None).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let resp = exchange("not-a-token".into(), None).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // The delegated token dies with either party: the app disabled…
    let id = app["id"].as_str().unwrap();
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::PATCH,
        &format!("/v1/t/acme/applications/{id}"),
        &admin,
        &json!({"active": false}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    expect_problem(
        get(&s, &delegated, "/v1/t/acme/audit/entries").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(
        get(&s, &admin, "/v1/t/acme/audit/entries").await.status(),
        200
    );
    // The exchange is in the trail, by the application, about the user.
    let page: Value = get(
        &s,
        &admin,
        "/v1/t/acme/audit/entries?action=application.token",
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["target"]["kind"] == "user" && e["actor"]["kind"] == "application")
    );
}

#[tokio::test]
async fn the_token_endpoint_refreshes_users_tokens_with_the_standard_grant() {
    let s = crate::support::start().await;
    let api = s.api();
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let first = api.sign_in("acme", &admin).await;
    let grant = |token: &str| {
        let api = api.clone();
        let token = token.to_owned();
        async move {
            api.form(
                "/oauth/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let next = grant(&first.refresh).await.ok(200);
    assert_eq!(next["token_type"], "Bearer");
    let (access, refresh) = (
        next["access_token"].as_str().unwrap().to_owned(),
        next["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert!(refresh.starts_with("srr_acme."), "{refresh}");
    assert_ne!(refresh, first.refresh);
    api.get("/v1/t/acme/users", &access).await.ok(200);
    // The spent token again: RFC 6749 invalid_grant, and the whole session ends.
    let replay = grant(&first.refresh).await;
    assert_eq!(replay.problem(400, "oauth")["error"], "invalid_grant");
    api.get("/v1/t/acme/users", &access)
        .await
        .problem(401, "unauthenticated");
    assert_eq!(
        grant(&refresh).await.problem(400, "oauth")["error"],
        "invalid_grant"
    );
    // Malformed requests.
    for (fields, error) in [
        (vec![("grant_type", "refresh_token")], "invalid_request"),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "srr_nope"),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "srr_ghost.abc"),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("scope", "audit:read"),
            ],
            "invalid_scope",
        ),
        (vec![("grant_type", "password")], "unsupported_grant_type"),
    ] {
        let r = api.form("/oauth/token", &fields).await;
        assert_eq!(r.problem(400, "oauth")["error"], error, "{fields:?}");
    }
    // A token minted for one tenant's path does not refresh under another's.
    let other = api.sign_in("acme", &admin).await;
    let path = "/v1/t/globex/sessions/refresh";
    let wrong = api
        .post(path, None, json!({"refresh_token": other.refresh}))
        .await;
    wrong.problem(401, "unauthenticated");
    let actions = api
        .audit_actions(&crate::support::auditor(&s, "acme").await, "acme")
        .await;
    assert!(
        actions.iter().any(|a| a == "session.refresh_reuse"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn user_management_scenarios_state_what_comes_back_what_must_not_and_what_is_audited() {
    use strongroom_testkit::{Case, Who, run_cases};
    let s = crate::support::start().await;
    let api = s.api();
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let admin = api.sign_in("acme", &admin_email).await.access;
    api.create_user(&admin, "acme", "viewer@acme.example", &["viewer"])
        .await;
    let viewer = api.sign_in("acme", "viewer@acme.example").await.access;
    api.create_tenant(&op, "globex").await;
    let post = reqwest::Method::POST;
    let cases = [
        Case {
            name: "an admin creates a user: no password or hash comes back",
            method: post.clone(),
            path: "/v1/t/acme/users".into(),
            who: Who::Token(&admin),
            body: Some(
                json!({"email": "new@acme.example", "password": PASSWORD, "roles": ["preparer"]}),
            ),
            status: 201,
            contains: &["new@acme.example", "preparer"],
            absent: &[PASSWORD, "$argon2id", "password_hash"],
            audited: &["user.create"],
            ..Case::default()
        },
        Case {
            name: "a viewer may not create users",
            method: post.clone(),
            path: "/v1/t/acme/users".into(),
            who: Who::Token(&viewer),
            body: Some(json!({"email": "x@acme.example", "password": PASSWORD})),
            status: 403,
            problem: Some("forbidden"),
            ..Case::default()
        },
        Case {
            name: "a duplicate e-mail conflicts",
            method: post.clone(),
            path: "/v1/t/acme/users".into(),
            who: Who::Token(&admin),
            body: Some(json!({"email": "NEW@acme.example", "password": PASSWORD})),
            status: 409,
            problem: Some("conflict"),
            ..Case::default()
        },
        Case {
            name: "another tenant's path looks like no tenant, and names nothing of it",
            method: reqwest::Method::GET,
            path: "/v1/t/globex/users".into(),
            who: Who::Token(&admin),
            status: 404,
            problem: Some("not-found"),
            absent: &["globex"],
            ..Case::default()
        },
        Case {
            name: "the user list shows no credentials",
            method: reqwest::Method::GET,
            path: "/v1/t/acme/users".into(),
            who: Who::Token(&admin),
            contains: &["viewer@acme.example"],
            absent: &["$argon2id", "password", "secret"],
            ..Case::default()
        },
        Case {
            name: "a registered application's secret is shown once and only its use is audited",
            method: post.clone(),
            path: "/v1/t/acme/applications".into(),
            who: Who::Token(&admin),
            body: Some(json!({"name": "LIMS", "permissions": ["records:read"]})),
            status: 201,
            contains: &["src_", "acme."],
            audited: &["application.create"],
            ..Case::default()
        },
    ];
    let auditor = crate::support::auditor(&s, "acme").await;
    run_cases(&api, &auditor, "acme", &cases).await;
    let apps = api.get("/v1/t/acme/applications", &admin).await.ok(200);
    assert!(
        !apps.to_string().contains("src_"),
        "a listing repeats the secret: {apps}"
    );
}
