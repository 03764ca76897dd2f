//! User management: roles taking effect on the next request, bcrypt import, deletion.

use serde_json::{Value, json};

use super::*;
use crate::support::{TestServer, expect_problem};

#[tokio::test]
async fn roles_limit_what_users_do_and_changes_take_effect_on_the_next_request() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let admin = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auditor = create_user(&s, &admin, "acme", "ann@acme.example", &["auditor"]).await;
    assert_eq!(auditor["roles"], json!(["auditor"]));
    let id = auditor["id"].as_str().unwrap().to_owned();
    let ann = tokens(&s, "acme", "ann@acme.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The auditor reads the trail but cannot manage users.
    assert_eq!(
        get(&s, &ann, "/v1/t/acme/audit/entries").await.status(),
        200
    );
    expect_problem(get(&s, &ann, "/v1/t/acme/users").await, 403, "forbidden").await;
    // Users and the trail show who acted: the entry of ann's query is hers.
    let page: Value = get(&s, &admin, "/v1/t/acme/users")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Role removed → the very next request is refused, with the same token.
    let resp = patch_user(&s, &admin, "acme", &id, json!({"roles": ["viewer"]})).await;
    assert_eq!(resp.status(), 200);
    expect_problem(
        get(&s, &ann, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    // Disabled → the token stops working and she cannot sign in again.
    let resp = patch_user(&s, &admin, "acme", &id, json!({"status": "disabled"})).await;
    assert_eq!(resp.status(), 200);
    expect_problem(
        get(&s, &ann, "/v1/t/acme/audit/entries").await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(
        login(&s, "acme", "ann@acme.example", PASSWORD).await,
        401,
        "unauthenticated",
    )
    .await;

    // Hostile input on user management: each a problem naming the field.
    for (body, pointer) in [
        (
            json!({"email": "x@acme.example", "password": PASSWORD, "roles": ["root"]}),
            "/roles/0",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "/email",
        ),
        (
            json!({"email": "y@acme.example", "password": "short"}),
            "/password",
        ),
        (
            json!({"email": "w@acme.example", "password": "Password2024!"}),
            "/password",
        ),
        (
            json!({"email": "w@acme.example", "password": "qwertyuiop123"}),
            "/password",
        ),
        (
            json!({"email": "w@acme.example", "password": "acme-acme-2024"}),
            "/password",
        ),
        (
            json!({"email": "admin@acme.example", "password": PASSWORD}),
            "",
        ),
    ] {
        let resp =
            crate::support::call_json(&s, reqwest::Method::POST, "/v1/t/acme/users", &admin, &body)
                .await;
        let status = resp.status().as_u16();
        let body_text = resp.text().await.unwrap();
        assert!(
            (status == 422 && body_text.contains(pointer)) || (pointer.is_empty() && status == 409),
            "{body}: {status} {body_text}"
        );
    }
    expect_problem(
        patch_user(&s, &admin, "acme", &id, json!({})).await,
        422,
        "validation",
    )
    .await;
    expect_problem(
        patch_user(
            &s,
            &admin,
            "acme",
            "0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61",
            json!({"status": "active"}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
    // Operators are a separate namespace: they cannot manage a tenant's users.
    expect_problem(get(&s, &op, "/v1/t/acme/users").await, 404, "not-found").await;
}

fn stored_hash(s: &TestServer, email: &str) -> String {
    crate::support::region_rows(
        &s.data_dir(),
        &format!("SELECT password_hash FROM users WHERE email_key = '{email}'"),
    )[0][0]
        .clone()
}

#[tokio::test]
async fn imported_bcrypt_users_sign_in_and_are_rehashed_to_argon2id() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let token = tokens(&s, "acme", &admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let imported = bcrypt::hash_with_salt(PASSWORD, 6, [9u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB);
    let create = |body: Value| {
        let (client, url, token) = (s.client(), s.url("/v1/t/acme/users"), token.clone());
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = create(
        json!({"email": "legacy@acme.example", "password_hash": imported, "roles": ["viewer"]}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert!(stored_hash(&s, "legacy@acme.example").starts_with("$2b$06$"));
    expect_problem(
        login(&s, "acme", "legacy@acme.example", "wrong password entirely").await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        stored_hash(&s, "legacy@acme.example").starts_with("$2b$"),
        "a failed sign-in changes nothing"
    );
    assert_eq!(
        login(&s, "acme", "legacy@acme.example", PASSWORD)
            .await
            .status(),
        201
    );
    let now = stored_hash(&s, "legacy@acme.example");
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
    assert_eq!(
        login(&s, "acme", "legacy@acme.example", PASSWORD)
            .await
            .status(),
        201
    );
    // The re-hash is audited, once (the second sign-in found argon2id already).
    let auditor = crate::support::auditor(&s, "acme").await;
    let actions = s.api().audit_actions(&auditor, "acme").await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "user.password_rehash")
            .count(),
        1,
        "{actions:?}"
    );
    // Exactly one credential, and only a well-formed bcrypt hash.
    for (body, pointer) in [
        (
            json!({"email": "x@acme.example", "password": PASSWORD, "password_hash": imported}),
            "/password",
        ),
        (json!({"email": "x@acme.example"}), "/password"),
        (
            json!({"email": "x@acme.example", "password_hash": "$2b$04$short"}),
            "/password_hash",
        ),
        (
            json!({"email": "x@acme.example", "password_hash": "$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA"}),
            "/password_hash",
        ),
    ] {
        let body = expect_problem(create(body).await, 422, "validation").await;
        assert!(body.to_string().contains(pointer), "{body}");
    }
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_and_is_audited() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let admin = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let dora = create_user(&s, &admin, "acme", "dora@acme.example", &["auditor"]).await;
    let id = dora["id"].as_str().unwrap().to_owned();
    let dora_token = tokens(&s, "acme", "dora@acme.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&s, &dora_token, "/v1/t/acme/audit/entries")
            .await
            .status(),
        200
    );
    let delete = |id: String, body: Value| {
        let (client, url, token) = (
            s.client(),
            s.url(&format!("/v1/t/acme/users/{id}")),
            admin.clone(),
        );
        async move {
            client
                .delete(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_problem(
        delete(id.clone(), json!({"reason": ""})).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(
        delete(id.clone(), json!({"reason": "left the company, HR-311"}))
            .await
            .status(),
        204
    );
    expect_problem(
        get(&s, &dora_token, "/v1/t/acme/audit/entries").await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(
        login(&s, "acme", "dora@acme.example", PASSWORD).await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(
        get(&s, &admin, &format!("/v1/t/acme/users/{id}")).await,
        404,
        "not-found",
    )
    .await;
    expect_problem(
        delete(id.clone(), json!({"reason": "again"})).await,
        404,
        "not-found",
    )
    .await;
    // Not oneself.
    let users: Value = get(&s, &admin, "/v1/t/acme/users")
        .await
        .json()
        .await
        .unwrap();
    let me = users["items"][0]["id"].as_str().unwrap().to_owned();
    expect_problem(delete(me, json!({"reason": "oops"})).await, 409, "conflict").await;
    // The trail keeps her id and the reason; her e-mail can be reused.
    let page: Value = get(&s, &admin, "/v1/t/acme/audit/entries?action=user.delete")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"][0]["target"]["id"], id.as_str());
    assert_eq!(page["entries"][0]["reason"], "left the company, HR-311");
    create_user(&s, &admin, "acme", "dora@acme.example", &["viewer"]).await;
}
