//! Sign-in, refresh rotation with reuse detection, sign-out, forged tokens, an
//! independent JWT library, and lockouts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;
use crate::support::{TestServer, expect_problem};

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
    let resp = crate::support::call(
        &s,
        reqwest::Method::DELETE,
        "/v1/t/acme/sessions/current",
        access3,
    )
    .await;
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
        let page: Value = get(
            &s,
            &crate::support::auditor(&s, "acme").await,
            "/v1/t/acme/audit/entries?limit=500",
        )
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

    let jwks: Value = crate::support::send(&s, reqwest::Method::GET, "/.well-known/jwks.json")
        .await
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
    let resp = crate::support::call(&s, reqwest::Method::GET, "/v1/tenants", &a).await;
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
    let jwks = crate::support::send(&s, reqwest::Method::GET, "/.well-known/jwks.json")
        .await
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
    let reader = crate::support::auditor(&s, "acme").await;
    let page: Value = get(
        &s,
        &reader,
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
