//! Tenant users end to end: bootstrap, sign-in, refresh rotation with reuse detection,
//! sign-out, RBAC, immediate effect of disabling and role removal, forged tokens, and
//! an independent JWT library validating our tokens with our JWKS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::{TestServer, create_tenant, expect_problem};

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
    s.client()
        .post(s.url(&format!("/v1/t/{slug}/sessions")))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

pub(crate) async fn tokens(s: &TestServer, slug: &str, email: &str) -> Value {
    let resp = login(s, slug, email, PASSWORD).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn get(s: &TestServer, token: &str, path: &str) -> reqwest::Response {
    s.client()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn refresh(s: &TestServer, slug: &str, refresh: &str) -> reqwest::Response {
    s.client()
        .post(s.url(&format!("/v1/t/{slug}/sessions/refresh")))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
}

async fn create_user(
    s: &TestServer,
    token: &str,
    slug: &str,
    email: &str,
    roles: &[&str],
) -> Value {
    let resp = s
        .client()
        .post(s.url(&format!("/v1/t/{slug}/users")))
        .bearer_auth(token)
        .json(&json!({"email": email, "password": PASSWORD, "roles": roles}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn patch_user(
    s: &TestServer,
    token: &str,
    slug: &str,
    id: &str,
    body: Value,
) -> reqwest::Response {
    s.client()
        .patch(s.url(&format!("/v1/t/{slug}/users/{id}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_in_refresh_rotation_reuse_detection_and_sign_out() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;

    // Wrong password, unknown e-mail, unknown tenant: the same 401.
    for (slug, email, pw) in [
        ("acme", admin.as_str(), "wrong password entirely"),
        ("acme", "nobody@acme.example", PASSWORD),
        ("no-such-tenant", admin.as_str(), PASSWORD),
    ] {
        expect_problem(login(&s, slug, email, pw).await, 401, "unauthenticated").await;
    }
    let t = tokens(&s, "acme", &admin).await;
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].as_u64().unwrap() <= 300);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    assert!(r1.starts_with("srr_"));
    assert_eq!(get(&s, &access, "/v1/t/acme/users").await.status(), 200);

    // Refresh: new pair; the old refresh token is spent.
    let resp = refresh(&s, "acme", &r1).await;
    assert_eq!(resp.status(), 200);
    let t2: Value = resp.json().await.unwrap();
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&s, &access2, "/v1/t/acme/users").await.status(), 200);
    // Replaying r1 revokes the whole session: r2 and both access tokens die with it.
    expect_problem(refresh(&s, "acme", &r1).await, 401, "unauthenticated").await;
    expect_problem(refresh(&s, "acme", &r2).await, 401, "unauthenticated").await;
    expect_problem(
        get(&s, &access2, "/v1/t/acme/users").await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(
        get(&s, &access, "/v1/t/acme/users").await,
        401,
        "unauthenticated",
    )
    .await;
    // Garbage and wrong-tenant refresh tokens.
    let t3 = tokens(&s, "acme", &admin).await;
    let r3 = t3["refresh_token"].as_str().unwrap();
    for (slug, tok) in [
        ("acme", "srr_nope"),
        ("acme", "not-even-prefixed"),
        ("no-such-tenant", r3),
    ] {
        expect_problem(refresh(&s, slug, tok).await, 401, "unauthenticated").await;
    }

    // Sign-out ends the session at once.
    let access3 = t3["access_token"].as_str().unwrap();
    let resp = s
        .client()
        .delete(s.url("/v1/t/acme/sessions/current"))
        .bearer_auth(access3)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    expect_problem(
        get(&s, access3, "/v1/t/acme/users").await,
        401,
        "unauthenticated",
    )
    .await;
    expect_problem(refresh(&s, "acme", r3).await, 401, "unauthenticated").await;

    // Every step is in the tenant's audit trail.
    let t4 = tokens(&s, "acme", &admin).await;
    let actions: Vec<String> = {
        let page: Value = get(&s, &op, "/v1/t/acme/audit/entries?limit=500")
            .await
            .json()
            .await
            .unwrap();
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    for a in [
        "user.create",
        "session.login",
        "session.login_failed",
        "session.refresh_reuse",
        "session.logout",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    drop(t4);
}

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
        let resp = s
            .client()
            .post(s.url("/v1/t/acme/users"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
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
    expect_problem(get(&s, &op, "/v1/t/acme/users").await, 403, "forbidden").await;
}

fn forge(token: &str, edit: impl Fn(&mut Value, &mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut header, &mut claims);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let a_admin = tenant_with_admin(&s, &op, "alpha").await;
    let b_admin = tenant_with_admin(&s, &op, "beta").await;
    let a = tokens(&s, "alpha", &a_admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = tokens(&s, "beta", &b_admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get(&s, &a, "/v1/t/alpha/users").await.status(), 200);

    let jwks: Value = s
        .client()
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let parts: Vec<&str> = a.split('.').collect();
    let kid: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = kid["kid"].as_str().unwrap().to_owned();

    let mut forged = Vec::new();
    // alg=none, no signature.
    forged.push(format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string()),
        parts[1]
    ));
    // HS256 keyed with the public key.
    let hs = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string());
    let input = format!("{hs}.{}", parts[1]);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &x);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    forged.push(format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())));
    // Signed by another Ed25519 key under our kid.
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    forged.push(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()).as_ref())
    ));
    // Tampered claims with the original signature: another tenant, more rights, later
    // expiry, another audience or issuer.
    forged.push(forge(&a, |_, c| c["tenant"] = json!("beta")));
    forged.push(forge(&a, |_, c| {
        c["perms"] = json!(["audit:read", "users:manage"])
    }));
    forged.push(forge(&a, |_, c| {
        c["exp"] = json!(c["exp"].as_i64().unwrap() + 86_400)
    }));
    forged.push(forge(&a, |_, c| c["aud"] = json!("strongroom:platform")));
    forged.push(forge(&a, |_, c| c["iss"] = json!("someone-else")));
    for t in &forged {
        expect_problem(
            get(&s, t, "/v1/t/alpha/users").await,
            401,
            "unauthenticated",
        )
        .await;
    }
    // Another tenant's genuine token: beta's admin sees alpha as nonexistent.
    let foreign = get(&s, &b, "/v1/t/alpha/users").await;
    let absent = get(&s, &b, "/v1/t/gamma/users").await;
    assert_eq!(
        (foreign.status(), absent.status()),
        (
            reqwest::StatusCode::NOT_FOUND,
            reqwest::StatusCode::NOT_FOUND
        )
    );
    // A user token is not an operator token.
    let resp = s
        .client()
        .get(s.url("/v1/tenants"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn an_independent_jwt_library_validates_our_tokens_with_the_jwks() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let token = tokens(&s, "acme", &admin).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = s
        .client()
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = r#"
import json, sys, jwt
token, jwks = sys.argv[1], json.loads(sys.argv[2])
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
pub = jwt.PyJWK.from_dict(key).key
claims = jwt.decode(token, pub, algorithms=["EdDSA"], audience="strongroom:tenant", issuer="strongroom")
print(json.dumps(claims))
try:
    jwt.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), pub, algorithms=["EdDSA"], audience="strongroom:tenant")
    print("TAMPERED-ACCEPTED")
except jwt.InvalidTokenError:
    print("TAMPERED-REFUSED")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &token, &jwks])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let claims: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(claims["tenant"], "acme");
    assert!(claims["sub"].as_str().unwrap().starts_with("user:"));
    assert!(claims["sid"].is_string());
    assert!(
        claims["perms"]
            .as_array()
            .unwrap()
            .contains(&json!("users:manage"))
    );
    assert_eq!(lines.next(), Some("TAMPERED-REFUSED"));
}

/// A client calling from a given loopback address.
fn client_from(s: &TestServer, ip: &str) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(&s.cert_pem()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn repeated_failures_lock_out_the_address_not_the_user() {
    let s =
        crate::support::start_configured("[passwords]\nlockout_after = 3\nlockout_base_secs = 1\n")
            .await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let attempt = |ip: &'static str, password: &'static str| {
        let (client, url, email) = (
            client_from(&s, ip),
            s.url("/v1/t/acme/sessions"),
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
    for _ in 0..3 {
        expect_problem(
            attempt("127.0.0.1", "not the password at all").await,
            401,
            "unauthenticated",
        )
        .await;
    }
    // Locked out from this address, even with the right password…
    let resp = attempt("127.0.0.1", PASSWORD).await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry), "{retry}");
    expect_problem(resp, 429, "too-many-requests").await;
    // …but the user, elsewhere, signs in; and the lock expires.
    assert_eq!(attempt("127.0.0.2", PASSWORD).await.status(), 201);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt("127.0.0.1", PASSWORD).await.status(), 201);
    // The failures are security events in the tenant's trail.
    let page: Value = get(
        &s,
        &op,
        "/v1/t/acme/audit/entries?action=session.login_failed",
    )
    .await
    .json()
    .await
    .unwrap();
    let failures = page["entries"].as_array().unwrap();
    assert_eq!(failures.len(), 3);
    assert_eq!(failures[0]["actor"]["kind"], "anonymous");
    assert_eq!(failures[0]["personal"]["ip"], "127.0.0.1");

    // Operators' sign-in is throttled the same way.
    let operator = |ip: &'static str, password: &'static str| {
        let (client, url) = (client_from(&s, ip), s.url("/v1/operator/sessions"));
        async move {
            client
                .post(url)
                .json(&json!({"email": strongroom_testkit::OPERATOR_EMAIL, "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        expect_problem(
            operator("127.0.0.1", "not the passphrase").await,
            401,
            "unauthenticated",
        )
        .await;
    }
    expect_problem(
        operator("127.0.0.1", strongroom_testkit::OPERATOR_PASSWORD).await,
        429,
        "too-many-requests",
    )
    .await;
    assert_eq!(
        operator("127.0.0.2", strongroom_testkit::OPERATOR_PASSWORD)
            .await
            .status(),
        201
    );
}

fn base32_decode(s: &str) -> Vec<u8> {
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

#[allow(clippy::disallowed_methods)] // the test plays the authenticator app: wall-clock time
fn code(secret: &[u8], offset_steps: i64) -> String {
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
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/sessions"))
        .json(&json!({"email": admin, "password": "not the password at all", "recovery_code": recovery[4]}))
        .send()
        .await
        .unwrap();
    expect_problem(resp, 401, "unauthenticated").await;
    assert_eq!(
        with(json!({"recovery_code": recovery[4]})).await.status(),
        201,
        "unspent by the failed attempt"
    );
    // Operators cannot enrol a tenant factor.
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/users/me/totp"))
        .bearer_auth(&op)
        .send()
        .await
        .unwrap();
    expect_problem(resp, 403, "forbidden").await;
    // Audited.
    let page: Value = get(&s, &op, "/v1/t/acme/audit/entries?limit=500")
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

    // Lost authenticator: an administrator removes the factor, with a reason.
    let users: Value = get(&s, &token, "/v1/t/acme/users")
        .await
        .json()
        .await
        .unwrap();
    let id = users["items"][0]["id"].as_str().unwrap().to_owned();
    let reset = |body: Value| {
        let (client, url, token) = (
            s.client(),
            s.url(&format!("/v1/t/acme/users/{id}/totp")),
            token.clone(),
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
    let page: Value = get(&s, &op, "/v1/t/acme/audit/entries?action=user.mfa_reset")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"][0]["reason"], "lost phone, ticket 88");
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
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/applications"))
        .bearer_auth(&token)
        .json(&json!({"name": "LIMS connector", "permissions": ["audit:read", "records:read"]}))
        .send()
        .await
        .unwrap();
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
    let resp = s
        .client()
        .post(s.url("/oauth/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );

    // Disabled: the live token stops at the next request and no new one is issued.
    let resp = s
        .client()
        .patch(s.url(&format!("/v1/t/acme/applications/{id}")))
        .bearer_auth(&token)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
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
    let app: Value = s
        .client()
        .post(s.url("/v1/t/acme/applications"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Reviewer UI", "permissions": ["records:read", "audit:read"]}))
        .send()
        .await
        .unwrap()
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
    let resp = s
        .client()
        .patch(s.url(&format!("/v1/t/acme/applications/{id}")))
        .bearer_auth(&admin)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
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
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/users/me/totp"))
        .bearer_auth(&restricted)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let secret = base32_decode(
        resp.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap(),
    );
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/users/me/totp/confirm"))
        .bearer_auth(&restricted)
        .json(&json!({"code": code(&secret, 0)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The restricted session stays restricted; signing in with the factor gives the role.
    expect_problem(
        get(&s, &restricted, "/v1/t/acme/audit/entries").await,
        403,
        "forbidden",
    )
    .await;
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/sessions"))
        .json(&json!({"email": "aud@acme.example", "password": PASSWORD, "totp": code(&secret, 1)}))
        .send()
        .await
        .unwrap();
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
    assert_eq!(
        get(&s, &admin, "/v1/t/acme/users").await.status(),
        200,
        "sessions opened before the policy keep their rights"
    );
}

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

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_keys_rotate_with_overlap_while_the_server_runs() {
    let s = crate::support::start_configured("[tokens]\nreload_secs = 1\n").await;
    let op = s.operator_token().await;
    let admin_email = tenant_with_admin(&s, &op, "acme").await;
    let before = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&before);
    let out = s.cli(&["keys", "rotate-signing-key"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Within the reload interval the server signs with the new key and lists both.
    let mut after = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        after = tokens(&s, "acme", &admin_email).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        if kid_of(&after) != old_kid {
            break;
        }
    }
    assert_ne!(kid_of(&after), old_kid, "the new key never became active");
    let jwks: Value = s
        .client()
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&kid_of(&after).as_str()),
        "{kids:?}"
    );
    // Tokens from both keys work; the operator's too.
    assert_eq!(get(&s, &before, "/v1/t/acme/users").await.status(), 200);
    assert_eq!(get(&s, &after, "/v1/t/acme/users").await.status(), 200);
    assert_eq!(get(&s, &op, "/v1/tenants").await.status(), 200);
    // And after a restart.
    let (_, dir) = s.stop().await;
    let s = TestServer::start_with(
        crate::support::bin(),
        crate::support::Options {
            config: Some(crate::support::TWO_REGIONS.into()),
            dir: Some(dir),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(get(&s, &before, "/v1/t/acme/users").await.status(), 200);
    let fresh = tokens(&s, "acme", &admin_email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&fresh), kid_of(&after));
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
    let resp = s
        .client()
        .post(s.url("/v1/t/acme/users/me/passkeys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
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
    let page: Value = get(&s, &op, "/v1/t/acme/audit/entries?action=user.passkey_add")
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
    let resp = s
        .client()
        .delete(s.url(&format!("/v1/t/acme/users/{id}/totp")))
        .bearer_auth(&token)
        .json(&json!({"reason": "lost security key, ticket 12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(login(&s, "acme", &admin, PASSWORD).await.status(), 201);
}

#[tokio::test]
async fn retired_signing_keys_are_removed_once_their_tokens_cannot_be_valid() {
    use strongroom_core::clock::ManualClock;
    let dir = tempfile::tempdir().unwrap();
    let flags = vec![(
        "data_dir",
        toml::Value::String(dir.path().join("data").display().to_string()),
    )];
    let config =
        strongroom_core::config::Config::load(None, Vec::<(String, String)>::new(), flags).unwrap();
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    let clock = ManualClock::new(time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
    let p = strongroom_core::platform::Platform::open(
        opened.store,
        opened.blobs,
        opened.providers,
        std::sync::Arc::new(clock.clone()),
        &config,
    )
    .await
    .unwrap();
    let kids = |p: &strongroom_core::platform::Platform| -> Vec<String> {
        let mut k: Vec<String> = p.jwks().keys.into_iter().map(|k| k.kid).collect();
        k.sort();
        k
    };
    let first = kids(&p);
    assert_eq!(first.len(), 1);
    let second = p
        .rotate_signing_key(&crate::support::local_admin())
        .await
        .unwrap();
    // Shortly after: both keys verify.
    clock.advance(time::Duration::minutes(10));
    let third = p
        .rotate_signing_key(&crate::support::local_admin())
        .await
        .unwrap();
    assert_eq!(
        kids(&p).len(),
        3,
        "the first key's tokens may still be valid"
    );
    // Two hours on, nothing signed by the first or the second key can still be valid
    // (each stopped signing when its successor appeared, tokens live at most an hour):
    // the next rotation removes both; the third, retired just now, stays.
    clock.advance(time::Duration::hours(2));
    let fourth = p
        .rotate_signing_key(&crate::support::local_admin())
        .await
        .unwrap();
    let now = kids(&p);
    assert!(
        !now.contains(&first[0]) && !now.contains(&second),
        "{now:?}"
    );
    assert!(now.contains(&third) && now.contains(&fourth), "{now:?}");
    assert_eq!(now.len(), 2);
}
