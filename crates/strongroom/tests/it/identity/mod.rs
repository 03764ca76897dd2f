//! Tenant identities end to end, by capability: sessions, users, second factors,
//! applications, invitations and signing keys. The helpers here are shared by all.

mod applications;
mod invitations;
pub(crate) mod mfa;
mod sessions;
mod signing_keys;
mod users;

use serde_json::{Value, json};

use crate::support::{TestServer, create_tenant};

pub(crate) const PASSWORD: &str = "correct horse battery staple 42";

/// Creates tenant `slug` (region eu) and its first admin through the CLI.
pub(crate) async fn tenant_with_admin(s: &TestServer, operator: &str, slug: &str) -> String {
    let resp = create_tenant(
        s,
        operator,
        json!({"slug": slug, "display_name": slug, "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let email = format!("admin@{slug}.example");
    let out = s
        .cli(
            &[
                "user",
                "create",
                "--tenant",
                slug,
                "--email",
                &email,
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(PASSWORD),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    email
}

/// Signs in; returns the token response.
pub(crate) async fn login(
    s: &TestServer,
    slug: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    crate::support::send_json(
        s,
        reqwest::Method::POST,
        &format!("/v1/t/{slug}/sessions"),
        &json!({"email": email, "password": password}),
    )
    .await
}

pub(crate) async fn tokens(s: &TestServer, slug: &str, email: &str) -> Value {
    let resp = login(s, slug, email, PASSWORD).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

pub(crate) async fn get(s: &TestServer, token: &str, path: &str) -> reqwest::Response {
    crate::support::call(s, reqwest::Method::GET, path, token).await
}

pub(crate) async fn refresh(s: &TestServer, slug: &str, refresh: &str) -> reqwest::Response {
    crate::support::send_json(
        s,
        reqwest::Method::POST,
        &format!("/v1/t/{slug}/sessions/refresh"),
        &json!({ "refresh_token": refresh }),
    )
    .await
}

pub(crate) async fn create_user(
    s: &TestServer,
    token: &str,
    slug: &str,
    email: &str,
    roles: &[&str],
) -> Value {
    let resp = crate::support::call_json(
        s,
        reqwest::Method::POST,
        &format!("/v1/t/{slug}/users"),
        token,
        &json!({"email": email, "password": PASSWORD, "roles": roles}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

pub(crate) async fn patch_user(
    s: &TestServer,
    token: &str,
    slug: &str,
    id: &str,
    body: Value,
) -> reqwest::Response {
    crate::support::call_json(
        s,
        reqwest::Method::PATCH,
        &format!("/v1/t/{slug}/users/{id}"),
        token,
        &body,
    )
    .await
}
