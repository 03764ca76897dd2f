//! The tenant-isolation suite: every operation in `/openapi.json` that names a tenant is
//! called with tenant A's credentials against tenant B's paths and ids, and must answer
//! exactly as for a tenant or object that does not exist — and leave B's data as it
//! was. Operations are enumerated from the OpenAPI document, so a new endpoint is
//! covered the day it is added (an operation the suite has no body for fails it).

use serde_json::{Value, json};

use crate::identity::{PASSWORD, tenant_with_admin, tokens};
use crate::support::TestServer;

/// A request body for an operation, or `None` when it takes none.
fn body_for(method: &str, template: &str, a_admin: &str, a_refresh: &str) -> Option<Value> {
    match (method, template) {
        ("post", "/v1/t/{tenant}/sessions") => {
            Some(json!({"email": a_admin, "password": PASSWORD}))
        }
        ("post", "/v1/t/{tenant}/sessions/refresh") => Some(json!({"refresh_token": a_refresh})),
        ("post", "/v1/t/{tenant}/users") => Some(
            json!({"email": "intruder@alpha.example", "password": PASSWORD, "roles": ["admin"]}),
        ),
        ("patch", "/v1/t/{tenant}/users/{id}") => Some(json!({"status": "disabled"})),
        ("post", "/v1/t/{tenant}/users/me/totp") => Some(json!({})),
        ("post", "/v1/t/{tenant}/users/me/totp/confirm") => Some(json!({"code": "123456"})),
        ("put", "/v1/tenants/{tenant}/secrets/{name}") => Some(json!({"value": "overwritten"})),
        ("delete", "/v1/t/{tenant}/users/{id}/totp") => Some(json!({"reason": "lost phone"})),
        ("post", "/v1/t/{tenant}/applications") => {
            Some(json!({"name": "intruder", "permissions": ["users:manage"]}))
        }
        ("patch", "/v1/t/{tenant}/applications/{id}") => Some(json!({"active": false})),
        ("delete", "/v1/t/{tenant}/users/{id}") => Some(json!({"reason": "offboarding"})),
        ("put", "/v1/t/{tenant}/policy/mfa") => Some(json!({"required_for": ["*"]})),
        ("post", "/v1/tenants/{tenant}/invitations") => {
            Some(json!({"email": "intruder@alpha.example", "role": "admin"}))
        }
        ("post", "/v1/t/{tenant}/invitations/accept") => Some(
            json!({"token": "sri_forged", "email": "intruder@alpha.example", "password": PASSWORD}),
        ),
        ("post", "/v1/t/{tenant}/sessions/passkey-challenge") => {
            Some(json!({"email": a_admin, "password": PASSWORD}))
        }
        ("post", "/v1/t/{tenant}/users/me/passkeys") => Some(json!({})),
        ("post", "/v1/t/{tenant}/users/me/passkeys/finish") => {
            Some(json!({"challenge_id": "x", "credential": {}}))
        }
        ("post", "/v1/t/{tenant}/support-grants") => Some(json!({
            "operator": "0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61",
            "scope": "audit:read",
            "reason": "support ticket 1",
            "hours": 1
        })),
        ("delete", "/v1/t/{tenant}/support-grants/{id}") => Some(json!({"reason": "done"})),
        ("put", "/v1/t/{tenant}/record-types/{name}") => Some(crate::records::batch_type()),
        ("post", "/v1/t/{tenant}/records") => {
            Some(json!({"type": "batch", "content": {"batch_no": "X", "quantity": 1}}))
        }
        ("put", "/v1/t/{tenant}/records/{id}/content") => {
            Some(json!({"content": {"batch_no": "X", "quantity": 2}}))
        }
        ("post", "/v1/t/{tenant}/records/{id}/submit") => Some(json!({})),
        (
            "post",
            "/v1/t/{tenant}/records/{id}/reject"
            | "/v1/t/{tenant}/records/{id}/revise"
            | "/v1/t/{tenant}/records/{id}/retire",
        ) => Some(json!({"reason": "intrusion"})),
        ("post", "/v1/t/{tenant}/records/{id}/versions/{n}/signatures") => {
            Some(json!({"meaning": "authored", "password": PASSWORD, "email": a_admin}))
        }
        ("put", "/v1/t/{tenant}/records/{id}/attachments/{name}") => Some(json!({})),
        ("post", "/v1/t/{tenant}/records/{id}/versions/{n}/signatures/passkey-challenge") => {
            Some(json!({}))
        }
        ("put", "/v1/t/{tenant}/users/{id}/full-name") => Some(json!({"full_name": "Intruder"})),
        ("put", "/v1/t/{tenant}/sso/providers/{provider}") => Some(json!({
            "display_name": "Intruder IdP",
            "oidc": {"issuer": "https://idp.example.com", "client_id": "x", "client_secret": "y"}
        })),
        ("put", "/v1/t/{tenant}/sso/policy") => Some(json!({"require_sso": false})),
        // Sent as a form (see `call`).
        ("post", "/v1/t/{tenant}/sso/{provider}/acs") => {
            Some(json!({"SAMLResponse": "x", "RelayState": "y"}))
        }
        ("post", "/v1/t/{tenant}/records/{id}/versions/{n}/signatures/sso-challenge") => {
            Some(json!({"meaning": "authored", "provider": "corp"}))
        }
        ("get" | "delete", _) => None,
        _ => panic!("the isolation suite has no body for {method} {template}: add one"),
    }
}

/// Required query parameters.
fn query_for(template: &str) -> &'static str {
    match template {
        "/v1/t/{tenant}/audit/proof/inclusion" => "?index=0",
        "/v1/t/{tenant}/audit/proof/consistency" => "?from=0",
        "/v1/t/{tenant}/records/{id}/versions/{n}/diff" => "?against=1",
        _ => "",
    }
}

fn fill(template: &str, tenant: &str, id: &str) -> String {
    template
        .replace("{tenant}", tenant)
        .replace("{id}", id)
        .replace("{n}", "1")
        .replace("{provider}", "corp")
        .replace("{name}", "smtp")
        .replace("{path}", "entries/000.p/1")
}

/// (status, problem type) of a response.
async fn outcome(resp: reqwest::Response) -> (u16, Option<String>) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["type"].as_str().map(str::to_owned))
}

async fn call(
    s: &TestServer,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Option<String>) {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = s.client().request(m, s.url(url)).bearer_auth(token);
    match body {
        // The SAML ACS takes a form (the HTTP-POST binding).
        Some(b) if url.ends_with("/acs") => req = req.form(b),
        Some(b) => req = req.json(b),
        None => {}
    }
    outcome(req.send().await.unwrap()).await
}

/// What B's admin sees of B: users (ids, status, roles) and whether B's trail has any
/// entry by A's admin.
async fn b_state(s: &TestServer, b_token: &str, a_user: &str) -> (Value, bool) {
    let users: Value = crate::support::call(s, reqwest::Method::GET, "/v1/t/beta/users", b_token)
        .await
        .json()
        .await
        .unwrap();
    let page: Value = crate::support::call(
        s,
        reqwest::Method::GET,
        "/v1/t/beta/audit/entries?limit=500",
        b_token,
    )
    .await
    .json()
    .await
    .unwrap();
    let touched = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"]["id"] == a_user);
    (users["items"].clone(), touched)
}

#[tokio::test]
async fn tenant_a_cannot_see_or_touch_tenant_b_through_any_endpoint() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let a_admin = tenant_with_admin(&s, &op, "alpha").await;
    let b_admin = tenant_with_admin(&s, &op, "beta").await;
    let a = tokens(&s, "alpha", &a_admin).await;
    let a_token = a["access_token"].as_str().unwrap().to_owned();
    let a_refresh = a["refresh_token"].as_str().unwrap().to_owned();
    let b_token = tokens(&s, "beta", &b_admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // B has a second user whose id A will try to use.
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::POST,
        "/v1/t/beta/users",
        &b_token,
        &json!({"email": "bob@beta.example", "password": PASSWORD, "roles": ["viewer"]}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let b_user: Value = resp.json().await.unwrap();
    let b_user_id = b_user["id"].as_str().unwrap().to_owned();
    // And a record (and its type), whose id A will try under record paths.
    let api = s.api();
    api.put(
        "/v1/t/beta/record-types/batch",
        &b_token,
        crate::records::batch_type(),
    )
    .await
    .ok(200);
    let body = json!({"type": "batch", "content": {"batch_no": "B-9", "quantity": 9}});
    let b_record = api
        .post("/v1/t/beta/records", Some(&b_token), body)
        .await
        .ok(201);
    let b_record_id = b_record["id"].as_str().unwrap().to_owned();
    let id_for = |template: &str| {
        if template.contains("/records/") {
            b_record_id.clone()
        } else {
            b_user_id.clone()
        }
    };
    let a_users: Value =
        crate::support::call(&s, reqwest::Method::GET, "/v1/t/alpha/users", &a_token)
            .await
            .json()
            .await
            .unwrap();
    let a_user_id = a_users["items"][0]["id"].as_str().unwrap().to_owned();
    let before = b_state(&s, &b_token, &a_user_id).await;
    assert!(!before.1);

    let doc: Value = crate::support::send(&s, reqwest::Method::GET, "/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let absent_id = "0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61";
    let mut checked = 0;
    for (template, ops) in doc["paths"].as_object().unwrap() {
        if !template.contains("{tenant}") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let body = body_for(method, template, &a_admin, &a_refresh);
            let q = query_for(template);
            let b_user_id = id_for(template);
            // B's tenant with B's ids, against a tenant that does not exist.
            let foreign = call(
                &s,
                method,
                &(fill(template, "beta", &b_user_id) + q),
                &a_token,
                body.as_ref(),
            )
            .await;
            let absent = call(
                &s,
                method,
                &(fill(template, "no-such-tenant", absent_id) + q),
                &a_token,
                body.as_ref(),
            )
            .await;
            assert_eq!(
                foreign, absent,
                "{method} {template}: B's tenant answered differently from a missing one"
            );
            assert!(
                foreign.0 >= 400,
                "{method} {template} succeeded across tenants: {foreign:?}"
            );
            // B's ids under A's own tenant, against ids that do not exist.
            if template.contains("{id}") {
                let foreign = call(
                    &s,
                    method,
                    &(fill(template, "alpha", &b_user_id) + q),
                    &a_token,
                    body.as_ref(),
                )
                .await;
                let absent = call(
                    &s,
                    method,
                    &(fill(template, "alpha", absent_id) + q),
                    &a_token,
                    body.as_ref(),
                )
                .await;
                assert_eq!(
                    foreign, absent,
                    "{method} {template}: B's id answered differently from a missing one"
                );
                assert_eq!(foreign.0, 404, "{method} {template}");
            }
            // An operator without a support grant sees the tenant's own API exactly as
            // that of a tenant that does not exist.
            if template.starts_with("/v1/t/") {
                let url = |t: &str, id: &str| fill(template, t, id) + q;
                let theirs = call(&s, method, &url("beta", &b_user_id), &op, body.as_ref()).await;
                let nobody = call(
                    &s,
                    method,
                    &url("no-such-tenant", absent_id),
                    &op,
                    body.as_ref(),
                )
                .await;
                assert_eq!(
                    theirs, nobody,
                    "{method} {template}: an operator without a grant"
                );
                assert!(
                    theirs.0 >= 400,
                    "{method} {template}: an operator got in: {theirs:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} operations name a tenant");
    // B is exactly as it was; A's credentials still work in A.
    assert_eq!(b_state(&s, &b_token, &a_user_id).await, before);
    let after = api
        .get(&format!("/v1/t/beta/records/{b_record_id}"), &b_token)
        .await
        .ok(200);
    assert_eq!(after, b_record, "B's record changed");
    let resp = crate::support::call(&s, reqwest::Method::GET, "/v1/t/alpha/users", &a_token).await;
    assert_eq!(resp.status(), 200);
}
