//! Platform operators end to end: disabling takes effect at the next request, TOTP is
//! required once enrolled (and for everyone under `operators.require_totp`), revoked
//! signing keys stop verifying, and all of it lands in the platform's own trail, which
//! verifies with our verifier and the independent reference one.

use std::path::Path;

use serde_json::{Value, json};
use strongroom_testkit::{OPERATOR_EMAIL, OPERATOR_PASSWORD};

use crate::identity::mfa::{base32_decode, code};
use crate::support::TestServer;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn operator_sign_in(s: &TestServer, email: &str, totp: Option<&str>) -> (u16, Value) {
    let mut body = json!({"email": email, "password": OPERATOR_PASSWORD});
    if let Some(t) = totp {
        body["totp"] = json!(t);
    }
    let r = s.api().post("/v1/operator/sessions", None, body).await;
    (r.status, r.json())
}

async fn create_operator(s: &TestServer, email: &str) {
    stdout(
        &s.cli(
            &["operator", "create", "--email", email, "--password-stdin"],
            Some(OPERATOR_PASSWORD),
        )
        .await,
    );
}

/// The actions of the platform trail, read by `token` (an operator).
async fn platform_actions(s: &TestServer, token: &str) -> Vec<String> {
    let page = s
        .api()
        .get("/v1/platform/audit/entries?limit=500", token)
        .await
        .ok(200);
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_disabled_operator_is_refused_at_the_next_request() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    create_operator(&s, "second@strongroom.test").await;
    let api = s.api();
    api.get("/v1/tenants", &token).await.ok(200);
    // A second operator, who stays enabled.
    let other = operator_sign_in(&s, "second@strongroom.test", None).await;
    assert_eq!(other.0, 201);
    let other = other.1["access_token"].as_str().unwrap().to_owned();
    // Disabling needs a reason.
    let out = s
        .cli(&["operator", "disable", "--email", OPERATOR_EMAIL], None)
        .await;
    assert!(!out.status.success());
    stdout(
        &s.cli(
            &[
                "operator",
                "disable",
                "--email",
                OPERATOR_EMAIL,
                "--reason",
                "left the company",
            ],
            None,
        )
        .await,
    );
    // The token issued before is refused at once, and sign-in fails like a wrong
    // password (nothing tells a caller the account exists but is disabled).
    api.get("/v1/tenants", &token)
        .await
        .problem(401, "unauthenticated");
    let (status, body) = operator_sign_in(&s, OPERATOR_EMAIL, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, wrong) = operator_sign_in(&s, "nobody@strongroom.test", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], wrong["detail"]);
    // Disabling twice is a conflict; the listing shows who is disabled.
    let again = s
        .cli(
            &[
                "operator",
                "disable",
                "--email",
                OPERATOR_EMAIL,
                "--reason",
                "again",
            ],
            None,
        )
        .await;
    assert!(!again.status.success());
    let list: Value =
        serde_json::from_str(&stdout(&s.cli(&["operator", "list", "--json"], None).await)).unwrap();
    let by_email = |e: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|o| o["email"] == e)
            .unwrap()
            .clone()
    };
    assert!(
        by_email(OPERATOR_EMAIL)["disabled_at"].is_string(),
        "{list}"
    );
    assert!(by_email("second@strongroom.test")["disabled_at"].is_null());
    // The other operator still works and sees it all in the platform trail.
    api.get("/v1/tenants", &other).await.ok(200);
    let actions = platform_actions(&s, &other).await;
    for a in [
        "operator.create",
        "operator.login",
        "operator.disable",
        "operator.login_failed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

#[tokio::test]
async fn operators_sign_in_with_totp_once_enrolled() {
    let s = crate::support::start().await;
    create_operator(&s, OPERATOR_EMAIL).await;
    let uri = stdout(
        &s.cli(&["operator", "enrol-totp", "--email", OPERATOR_EMAIL], None)
            .await,
    );
    let secret = uri
        .trim()
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let secret = base32_decode(secret);
    // Until confirmed, the password alone still signs in.
    assert_eq!(operator_sign_in(&s, OPERATOR_EMAIL, None).await.0, 201);
    // A wrong code does not confirm.
    let bad = s
        .cli(
            &[
                "operator",
                "confirm-totp",
                "--email",
                OPERATOR_EMAIL,
                "--code",
                "000000",
            ],
            None,
        )
        .await;
    let near: Vec<String> = (-2..=2).map(|k| code(&secret, k)).collect();
    assert!(near.iter().any(|c| c == "000000") || !bad.status.success());
    stdout(
        &s.cli(
            &[
                "operator",
                "confirm-totp",
                "--email",
                OPERATOR_EMAIL,
                "--code",
                &code(&secret, 0),
            ],
            None,
        )
        .await,
    );
    // Now the password alone is not enough, nor a wrong or replayed code.
    let (status, body) = operator_sign_in(&s, OPERATOR_EMAIL, None).await;
    assert_eq!(status, 401, "{body}");
    // A code no step near now produces (the verifier accepts a step either side).
    let near: Vec<String> = (-2..=2).map(|k| code(&secret, k)).collect();
    let wrong = ["123456", "654321", "111111", "222222", "333333", "444444"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap();
    assert_eq!(
        operator_sign_in(&s, OPERATOR_EMAIL, Some(wrong)).await.0,
        401
    );
    // The code used to confirm was spent; the next step's code signs in once, even
    // when four sign-ins race with it.
    let next = code(&secret, 1);
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let api = s.api();
            let body =
                json!({"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD, "totp": next});
            tokio::spawn(async move { api.post("/v1/operator/sessions", None, body).await })
        })
        .collect();
    let mut won = Vec::new();
    for r in racing {
        let reply = r.await.unwrap();
        if reply.status == 201 {
            won.push(reply.json());
        } else {
            // Refused as a spent code (401), or before the check because the racing
            // attempts in flight would reach the lockout (429).
            assert!([401, 429].contains(&reply.status), "{}", reply.text);
        }
    }
    assert_eq!(won.len(), 1, "one code, one sign-in: {won:?}");
    let token = won[0]["access_token"].as_str().unwrap().to_owned();
    // Replayed again: refused (401, or 429 now that five attempts have failed).
    let replayed = operator_sign_in(&s, OPERATOR_EMAIL, Some(&next)).await.0;
    assert!([401, 429].contains(&replayed), "{replayed}");
    // Enrolling again would silently replace the factor: refused unless it is a
    // reasoned reset.
    let again = s
        .cli(&["operator", "enrol-totp", "--email", OPERATOR_EMAIL], None)
        .await;
    assert!(!again.status.success());
    stdout(
        &s.cli(
            &[
                "operator",
                "enrol-totp",
                "--email",
                OPERATOR_EMAIL,
                "--reset",
                "--reason",
                "phone lost",
            ],
            None,
        )
        .await,
    );
    let actions = platform_actions(&s, &token).await;
    assert_eq!(
        actions.iter().filter(|a| *a == "operator.mfa").count(),
        3,
        "enrol, confirm and the reset: {actions:?}"
    );
}

#[tokio::test]
async fn require_totp_refuses_operators_without_a_factor() {
    let s = crate::support::start_configured("[operators]\nrequire_totp = true\n").await;
    create_operator(&s, OPERATOR_EMAIL).await;
    let (status, body) = operator_sign_in(&s, OPERATOR_EMAIL, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("enrol-totp"),
        "{body}"
    );
    // A wrong password still reads as a wrong password, not as "needs a factor".
    let r = s
        .api()
        .post(
            "/v1/operator/sessions",
            None,
            json!({"email": OPERATOR_EMAIL, "password": "not the password at all"}),
        )
        .await;
    r.problem(401, "unauthenticated");
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(s: &TestServer) -> Vec<String> {
    let jwks: Value = crate::support::send(s, reqwest::Method::GET, "/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_revoked_signing_key_stops_verifying_and_leaves_the_jwks() {
    let s = crate::support::start_configured("[tokens]\nreload_secs = 1\n").await;
    let old = s.operator_token().await;
    let old_kid = kid_of(&old);
    stdout(&s.cli(&["keys", "rotate-signing-key"], None).await);
    // Wait until the server signs with the new key.
    let mut fresh = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        fresh = operator_sign_in(&s, OPERATOR_EMAIL, None).await.1["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        if kid_of(&fresh) != old_kid {
            break;
        }
    }
    assert_ne!(kid_of(&fresh), old_kid, "the new key never became active");
    s.api().get("/v1/tenants", &old).await.ok(200);
    // Revoking needs a reason and a known key.
    let unknown = s
        .cli(
            &[
                "keys",
                "revoke-signing-key",
                "--kid",
                "no-such-key",
                "--reason",
                "x",
            ],
            None,
        )
        .await;
    assert!(!unknown.status.success());
    stdout(
        &s.cli(
            &[
                "keys",
                "revoke-signing-key",
                "--kid",
                &old_kid,
                "--reason",
                "key file copied to a laptop",
            ],
            None,
        )
        .await,
    );
    // The last live key cannot be revoked (rotate first).
    let last = s
        .cli(
            &[
                "keys",
                "revoke-signing-key",
                "--kid",
                &kid_of(&fresh),
                "--reason",
                "x",
            ],
            None,
        )
        .await;
    assert!(!last.status.success());
    assert!(
        String::from_utf8_lossy(&last.stderr).contains("rotate first"),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    // Within the reload interval the old key's tokens are refused and it leaves the
    // JWKS; the new key's tokens keep working.
    let mut refused = false;
    for _ in 0..50 {
        if s.api().get("/v1/tenants", &old).await.status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(refused, "a token of the revoked key still works");
    let kids = jwks_kids(&s).await;
    assert!(!kids.contains(&old_kid), "{kids:?}");
    assert!(kids.contains(&kid_of(&fresh)), "{kids:?}");
    s.api().get("/v1/tenants", &fresh).await.ok(200);
    // And after a restart.
    let (_, dir) = s.stop().await;
    let s = crate::support::restart(dir).await;
    s.api()
        .get("/v1/tenants", &old)
        .await
        .problem(401, "unauthenticated");
    let actions = platform_actions(&s, &fresh).await;
    for a in ["key.signing_rotate", "key.signing_revoke"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

#[tokio::test]
async fn the_platform_trail_verifies_offline_remotely_and_independently() {
    let s = crate::support::start().await;
    let token = s.operator_token().await;
    crate::identity::tenant_with_admin(&s, &token, "acme").await;
    create_operator(&s, "second@strongroom.test").await;
    let vkey = stdout(&s.cli(&["audit", "vkey", "--platform"], None).await)
        .trim()
        .to_owned();
    assert!(vkey.starts_with("strongroom/platform/audit+"), "{vkey}");
    // Over HTTPS: the same vkey, served to operators only.
    let api = s.api();
    let served = api.get("/v1/platform/audit/vkey", &token).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.text.trim(), vkey);
    let admin = api.sign_in("acme", "admin@acme.example").await;
    assert!(
        [401, 403].contains(
            &api.get("/v1/platform/audit/vkey", &admin.access)
                .await
                .status
        ),
        "a tenant user read the platform trail"
    );
    let entries = api
        .get("/v1/platform/audit/entries?action=tenant.create", &token)
        .await
        .ok(200);
    assert_eq!(entries["entries"].as_array().unwrap().len(), 1, "{entries}");
    // Exported, verified by our verifier and by the independent reference verifier.
    let dir = s.dir.path().join("platform-export");
    stdout(
        &s.cli(
            &[
                "audit",
                "export",
                "--platform",
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        )
        .await,
    );
    let ours = stdout(
        &s.cli(
            &[
                "audit",
                "verify",
                "--dir",
                dir.to_str().unwrap(),
                "--vkey",
                &vkey,
            ],
            None,
        )
        .await,
    );
    assert!(ours.starts_with("OK: "), "{ours}");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/formats/reference/tlog_verify.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .arg(&vkey)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.starts_with("OK "), "{text}");
    let root = text.split_whitespace().nth(2).unwrap();
    assert!(ours.contains(root), "{ours} vs {text}");
    // Remotely, with an operator token.
    let token_file = s.dir.path().join("operator.token");
    std::fs::write(&token_file, &token).unwrap();
    let cert = s.dir.path().join("ca.pem");
    std::fs::write(&cert, s.cert_pem()).unwrap();
    let remote = stdout(
        &s.cli(
            &[
                "audit",
                "verify",
                "--url",
                &s.base,
                "--platform",
                "--vkey",
                &vkey,
                "--ca-cert",
                cert.to_str().unwrap(),
                "--token-file",
                token_file.to_str().unwrap(),
            ],
            None,
        )
        .await,
    );
    assert!(
        remote.starts_with("OK: ") && remote.contains("strongroom/platform/audit"),
        "{remote}"
    );
    // --tenant and --platform together are refused.
    let both = s
        .cli(&["audit", "vkey", "--platform", "--tenant", "acme"], None)
        .await;
    assert!(!both.status.success());
}
