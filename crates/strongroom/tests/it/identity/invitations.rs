//! Invitations: an operator invites a tenant's first admin.

use serde_json::{Value, json};

use super::*;
use crate::support::{create_tenant, expect_problem};

#[tokio::test]
async fn an_operator_invites_a_tenants_first_admin_over_the_api() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let resp = create_tenant(
        &s,
        &op,
        json!({"slug": "newco", "display_name": "NewCo", "region": "eu"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let invite = |body: Value| {
        let (client, url, op) = (
            s.client(),
            s.url("/v1/tenants/newco/invitations"),
            op.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(op)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_problem(
        invite(json!({"email": "boss@newco.example", "role": "root"})).await,
        422,
        "validation",
    )
    .await;
    let resp = invite(json!({"email": "boss@newco.example"})).await;
    assert_eq!(resp.status(), 201);
    let inv: Value = resp.json().await.unwrap();
    assert_eq!(inv["role"], "admin");
    let token = inv["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sri_"));
    let accept = |token: &str, email: &str| {
        let (client, url) = (s.client(), s.url("/v1/t/newco/invitations/accept"));
        let body = json!({"token": token, "email": email, "password": PASSWORD});
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    // Another address, a forged token: the same 401; the invitation is still good.
    expect_problem(
        accept(&token, "someone@else.example").await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(
        accept("sri_forged", "boss@newco.example").await,
        401,
        "unauthenticated",
    )
    .await;
    let resp = accept(&token, "Boss@NewCo.example").await;
    assert_eq!(resp.status(), 201);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["roles"], json!(["admin"]));
    // Once only.
    expect_problem(
        accept(&token, "boss@newco.example").await,
        401,
        "unauthenticated",
    )
    .await;
    // The new admin works; the operator never knew the password.
    let admin = tokens(&s, "newco", "Boss@NewCo.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&s, &admin, "/v1/t/newco/users").await.status(), 200);
    let page: Value = get(&s, &admin, "/v1/t/newco/audit/entries?action=user.invite")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"][0]["actor"]["kind"], "operator");
    let page: Value = get(
        &s,
        &admin,
        "/v1/t/newco/audit/entries?action=user.invite_accept",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["entries"][0]["actor"]["id"], user["id"]);
}
