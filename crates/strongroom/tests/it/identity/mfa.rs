//! Second factors: TOTP with recovery codes, the MFA policy, passkeys.

use serde_json::{Value, json};

use super::*;
use crate::support::expect_problem;

pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// A second administrator of `acme` (created by the holder of `token`), signed in.
async fn other_admin(s: &TestServer, token: &str) -> String {
    create_user(s, token, "acme", "colleague@acme.example", &["admin"]).await;
    tokens(s, "acme", "colleague@acme.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[allow(clippy::disallowed_methods)] // the test plays the authenticator app: wall-clock time
pub(crate) fn code(secret: &[u8], offset_steps: i64) -> String {
    use strongroom_core::identity::totp;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let step = u64::try_from(totp::step_at(now) + offset_steps).unwrap();
    format!("{:06}", totp::hotp(secret, step))
}

/// Enrols and confirms TOTP for the holder of `token` in tenant `acme`; returns the
/// secret.
pub(crate) async fn enrol_totp(s: &TestServer, token: &str) -> Vec<u8> {
    let api = s.api();
    let e = api
        .post("/v1/t/acme/users/me/totp", Some(token), json!({}))
        .await
        .ok(201);
    let secret = base32_decode(e["secret"].as_str().unwrap());
    let body = json!({"code": code(&secret, 0)});
    api.post("/v1/t/acme/users/me/totp/confirm", Some(token), body)
        .await
        .ok(200);
    secret
}

#[tokio::test]
async fn totp_enrolment_codes_replay_and_recovery_codes() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let token = tokens(&s, "acme", &admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |path: &'static str, body: Value| {
        let (client, url, token) = (s.client(), s.url(path), token.clone());
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
    let resp = post("/v1/t/acme/users/me/totp", json!({})).await;
    assert_eq!(resp.status(), 201);
    let enrol: Value = resp.json().await.unwrap();
    let uri = enrol["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Strongroom%20acme:admin%40acme.example?secret="),
        "{uri}"
    );
    let secret = base32_decode(enrol["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20);
    // Not required until confirmed.
    assert_eq!(login(&s, "acme", &admin, PASSWORD).await.status(), 201);
    expect_problem(
        post(
            "/v1/t/acme/users/me/totp/confirm",
            json!({"code": "000000x"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    let first = code(&secret, 0);
    let resp = post("/v1/t/acme/users/me/totp/confirm", json!({"code": first})).await;
    assert_eq!(resp.status(), 200);
    let recovery: Vec<String> =
        serde_json::from_value(resp.json::<Value>().await.unwrap()["recovery_codes"].clone())
            .unwrap();
    assert_eq!(recovery.len(), 10);
    expect_problem(
        post("/v1/t/acme/users/me/totp", json!({})).await,
        409,
        "conflict",
    )
    .await;

    let with = |extra: Value| {
        let (client, url, email) = (s.client(), s.url("/v1/t/acme/sessions"), admin.clone());
        async move {
            let mut body = json!({"email": email, "password": PASSWORD});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            client.post(url).json(&body).send().await.unwrap()
        }
    };
    // The password alone no longer signs in, and says why.
    let body = expect_problem(with(json!({})).await, 401, "unauthenticated").await;
    assert!(
        body["detail"].as_str().unwrap().contains("second factor"),
        "{body}"
    );
    expect_problem(
        with(json!({"totp": "123456"})).await,
        401,
        "unauthenticated",
    )
    .await;
    // The code used to confirm cannot be replayed; the next step's code works once.
    expect_problem(with(json!({"totp": first})).await, 401, "unauthenticated").await;
    let next = code(&secret, 1);
    assert_eq!(with(json!({"totp": next})).await.status(), 201);
    expect_problem(with(json!({"totp": next})).await, 401, "unauthenticated").await;
    // A recovery code works once.
    assert_eq!(
        with(json!({"recovery_code": recovery[3]})).await.status(),
        201
    );
    expect_problem(
        with(json!({"recovery_code": recovery[3]})).await,
        401,
        "unauthenticated",
    )
    .await;
    // A wrong password with a good code is still refused.
    let resp = crate::support::send_json(&s, reqwest::Method::POST, "/v1/t/acme/sessions", &json!({"email": admin, "password": "not the password at all", "recovery_code": recovery[4]})).await;
    expect_problem(resp, 401, "unauthenticated").await;
    assert_eq!(
        with(json!({"recovery_code": recovery[4]})).await.status(),
        201,
        "unspent by the failed attempt"
    );
    // Operators cannot enrol a tenant factor.
    let resp =
        crate::support::call(&s, reqwest::Method::POST, "/v1/t/acme/users/me/totp", &op).await;
    expect_problem(resp, 403, "forbidden").await;
    // Audited.
    let page: Value = get(
        &s,
        &crate::support::auditor(&s, "acme").await,
        "/v1/t/acme/audit/entries?limit=500",
    )
    .await
    .json()
    .await
    .unwrap();
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["user.mfa_enrol", "user.mfa_confirm", "session.mfa"] {
        assert!(actions.contains(&a), "{a} missing");
    }

    // Lost authenticator: another administrator removes the factor, with a reason (an
    // administrator cannot strip their own).
    let users: Value = get(&s, &token, "/v1/t/acme/users")
        .await
        .json()
        .await
        .unwrap();
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let colleague = other_admin(&s, &token).await;
    let reset = |body: Value| {
        let (client, url, token) = (
            s.client(),
            s.url(&format!("/v1/t/acme/users/{id}/totp")),
            colleague.clone(),
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
    expect_problem(reset(json!({"reason": " "})).await, 422, "validation").await;
    assert_eq!(
        reset(json!({"reason": "lost phone, ticket 88"}))
            .await
            .status(),
        204
    );
    assert_eq!(with(json!({})).await.status(), 201, "password alone again");
    let page: Value = get(
        &s,
        &crate::support::auditor(&s, "acme").await,
        "/v1/t/acme/audit/entries?action=user.mfa_reset",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["entries"][0]["reason"], "lost phone, ticket 88");
}

#[tokio::test]
async fn a_tenant_policy_makes_roles_enrol_a_second_factor_before_anything_else() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let admin = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    create_user(&s, &admin, "acme", "aud@acme.example", &["auditor"]).await;
    create_user(&s, &admin, "acme", "vic@acme.example", &["viewer"]).await;
    let put_policy = |body: Value| {
        let (client, url, token) = (s.client(), s.url("/v1/t/acme/policy/mfa"), admin.clone());
        async move {
            client
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let body = expect_problem(
        put_policy(json!({"required_for": ["root"]})).await,
        422,
        "validation",
    )
    .await;
    assert!(body.to_string().contains("/required_for"), "{body}");
    // More entries than roles (+ "*") is refused, not silently cut short: here "admin"
    // would have been dropped.
    let body = expect_problem(
        put_policy(json!({"required_for": ["viewer", "viewer", "viewer", "viewer", "viewer", "viewer", "admin"]})).await,
        422,
        "validation",
    )
    .await;
    assert!(body.to_string().contains("/required_for"), "{body}");
    let resp = put_policy(json!({"required_for": ["auditor", "auditor"]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["required_for"],
        json!(["auditor"])
    );
    let got: Value = get(&s, &admin, "/v1/t/acme/policy/mfa")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["required_for"], json!(["auditor"]));

    // The auditor has no factor: signed in, but can do nothing except enrol.
    let t = tokens(&s, "acme", "aud@acme.example").await;
    let restricted = t["access_token"].as_str().unwrap().to_owned();
    expect_problem(
        get(&s, &restricted, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    let resp = crate::support::call(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/users/me/totp",
        &restricted,
    )
    .await;
    assert_eq!(resp.status(), 201);
    let secret = base32_decode(
        resp.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap(),
    );
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/users/me/totp/confirm",
        &restricted,
        &json!({"code": code(&secret, 0)}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    // The restricted session stays restricted; signing in with the factor gives the role.
    expect_problem(
        get(&s, &restricted, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    let resp = crate::support::send_json(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/sessions",
        &json!({"email": "aud@acme.example", "password": PASSWORD, "totp": code(&secret, 1)}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let full = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&s, &full, "/v1/t/acme/audit/entries").await.status(),
        200
    );
    // Roles the policy does not name are unaffected; "*" covers everyone.
    let vic = tokens(&s, "acme", "vic@acme.example").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(get(&s, &vic, "/v1/t/acme/users").await, 403, "forbidden").await; // a viewer never could
    assert_eq!(
        put_policy(json!({"required_for": ["*"]})).await.status(),
        200
    );
    let admin_again = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_problem(
        get(&s, &admin_again, "/v1/t/acme/users").await,
        403,
        "forbidden",
    )
    .await;
    // Sessions opened before the policy, without a factor, are restricted at once too.
    expect_problem(get(&s, &admin, "/v1/t/acme/users").await, 403, "forbidden").await;
}

#[tokio::test]
async fn passkeys_register_and_then_are_required_at_sign_in() {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::prelude::{
        CreationChallengeResponse, RequestChallengeResponse, Url,
    };
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let token = tokens(&s, "acme", &admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = Url::parse("https://localhost:8443").unwrap();
    let mut authenticator = SoftPasskey::new(true);

    // Register: challenge, authenticator, finish.
    let resp = crate::support::call(
        &s,
        reqwest::Method::POST,
        "/v1/t/acme/users/me/passkeys",
        &token,
    )
    .await;
    assert_eq!(resp.status(), 201);
    let ch: Value = resp.json().await.unwrap();
    let options: CreationChallengeResponse = serde_json::from_value(ch["options"].clone()).unwrap();
    let credential = authenticator
        .do_registration(origin.clone(), options)
        .unwrap();
    let finish = |challenge: &str, credential: Value| {
        let (client, url, token) = (
            s.client(),
            s.url("/v1/t/acme/users/me/passkeys/finish"),
            token.clone(),
        );
        let body = json!({"challenge_id": challenge, "credential": credential});
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
    let cred_json = serde_json::to_value(&credential).unwrap();
    // A forged challenge id is refused; the real one works once.
    expect_problem(finish("nope", cred_json.clone()).await, 422, "validation").await;
    let resp = finish(ch["challenge_id"].as_str().unwrap(), cred_json.clone()).await;
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    expect_problem(
        finish(ch["challenge_id"].as_str().unwrap(), cred_json).await,
        422,
        "validation",
    )
    .await;

    // The password alone no longer signs in.
    expect_problem(
        login(&s, "acme", &admin, PASSWORD).await,
        401,
        "unauthenticated",
    )
    .await;
    // Step one: the password buys a challenge; step two: the authenticator answers it.
    let challenge = |password: &'static str| {
        let (client, url, email) = (
            s.client(),
            s.url("/v1/t/acme/sessions/passkey-challenge"),
            admin.clone(),
        );
        async move {
            client
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    expect_problem(
        challenge("not the password at all").await,
        401,
        "unauthenticated",
    )
    .await;
    let ch: Value = challenge(PASSWORD).await.json().await.unwrap();
    let options: RequestChallengeResponse = serde_json::from_value(ch["options"].clone()).unwrap();
    let assertion = serde_json::to_value(
        authenticator
            .do_authentication(origin.clone(), options)
            .unwrap(),
    )
    .unwrap();
    let sign_in = |challenge_id: Value, credential: Value| {
        let (client, url, email) = (s.client(), s.url("/v1/t/acme/sessions"), admin.clone());
        let body = json!({"email": email, "password": PASSWORD, "passkey": {"challenge_id": challenge_id, "credential": credential}});
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let resp = sign_in(ch["challenge_id"].clone(), assertion.clone()).await;
    assert_eq!(resp.status(), 201);
    // A replayed assertion (the challenge is spent) fails; so does another user's challenge.
    expect_problem(
        sign_in(ch["challenge_id"].clone(), assertion.clone()).await,
        401,
        "unauthenticated",
    )
    .await;
    let ch2: Value = challenge(PASSWORD).await.json().await.unwrap();
    expect_problem(
        sign_in(ch2["challenge_id"].clone(), assertion).await,
        401,
        "unauthenticated",
    )
    .await;
    // Audited.
    let page: Value = get(
        &s,
        &crate::support::auditor(&s, "acme").await,
        "/v1/t/acme/audit/entries?action=user.passkey_add",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    // An administrator's reset removes the passkeys too: the password alone works again.
    let users: Value = get(&s, &token, "/v1/t/acme/users")
        .await
        .json()
        .await
        .unwrap();
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let colleague = other_admin(&s, &token).await;
    let resp = crate::support::call_json(
        &s,
        reqwest::Method::DELETE,
        &format!("/v1/t/acme/users/{id}/totp"),
        &colleague,
        &json!({"reason": "lost security key, ticket 12"}),
    )
    .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(login(&s, "acme", &admin, PASSWORD).await.status(), 201);
}
