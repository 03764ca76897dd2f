//! Regression tests for the findings of the outside security review (issue 11), each
//! against the real server over HTTPS: they fail on the code before the fix.

use serde_json::json;
use strongroom_testkit::{Api, USER_PASSWORD};

use crate::identity::tenant_with_admin;
use crate::support::{region_rows, start_configured};

/// 128 concurrent wrong passwords from one address: at most `lockout_after` are
/// checked (answered 401, audited); every other attempt is refused before hashing (429).
#[tokio::test]
async fn a_concurrent_burst_checks_no_more_passwords_than_the_lockout_allows() {
    // 128 connections from one address: above the default per-address cap, which is
    // not what this test is about.
    let s = start_configured(
        "[passwords]\nlockout_after = 5\nlockout_base_secs = 60\n[limits]\nmax_connections_per_address = 256\n",
    )
    .await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let attempts = (0..128).map(|i| {
        let (api, admin) = (api.clone(), admin.clone());
        tokio::spawn(async move {
            let pw = format!("wrong password number {i}");
            api.sign_in_with("acme", &admin, &pw).await.status
        })
    });
    let mut statuses = Vec::new();
    for a in attempts.collect::<Vec<_>>() {
        statuses.push(a.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // Exactly the lockout's allowance: no more (the burst), and no fewer (the
    // throttle did let the first attempts through to the password check).
    assert_eq!(checked, 5, "{checked} passwords were checked: {statuses:?}");
    assert_eq!(checked + refused, 128, "{statuses:?}");
    let failures = api
        .audit_actions(&crate::support::auditor(&s, "acme").await, "acme")
        .await
        .into_iter()
        .filter(|a| a == "session.login_failed")
        .count();
    assert_eq!(
        failures, checked,
        "every checked attempt, and only those, is audited"
    );
    // The right password from the same address is locked out too; from elsewhere not.
    assert_eq!(
        api.sign_in_with("acme", &admin, USER_PASSWORD).await.status,
        429
    );
    let elsewhere = Api::from_address(&s, "127.0.0.2");
    elsewhere.sign_in("acme", &admin).await;
}

/// An operator may invite a tenant's first user, and nobody once the tenant has users.
#[tokio::test]
async fn operators_invite_only_a_tenants_first_admin() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let api = s.api();
    api.create_tenant(&op, "fresh").await;
    let invite = |tenant: &str, token: &str, email: &str| {
        let (api, path, token) = (
            api.clone(),
            format!("/v1/tenants/{tenant}/invitations"),
            token.to_owned(),
        );
        let body = json!({"email": email, "role": "admin"});
        async move { api.post(&path, Some(&token), body).await }
    };
    let first = invite("fresh", &op, "first@fresh.example").await.ok(201);
    // A second invitation issued while the tenant is still empty...
    let spare = invite("fresh", &op, "spare@evil.example").await.ok(201);
    let accept = |inv: &serde_json::Value, email: &str| {
        let body = json!({"token": inv["token"], "email": email, "password": USER_PASSWORD});
        let api = api.clone();
        async move { api.post("/v1/t/fresh/invitations/accept", None, body).await }
    };
    accept(&first, "first@fresh.example").await.ok(201);
    // ...is void once the tenant has its first user.
    accept(&spare, "spare@evil.example")
        .await
        .problem(401, "unauthenticated");
    let admin = tenant_with_admin(&s, &op, "globex").await;
    let refused = invite("globex", &op, "operator@evil.example").await;
    refused.problem(403, "forbidden");
    let admin_token = api.sign_in("globex", &admin).await.access;
    invite("globex", &admin_token, "colleague@globex.example")
        .await
        .ok(201);
    let actions = api
        .audit_actions(&crate::support::auditor(&s, "globex").await, "globex")
        .await;
    assert_eq!(
        actions.iter().filter(|a| *a == "user.invite").count(),
        1,
        "{actions:?}"
    );
}

/// A token an application holds for a user (token exchange), and the application's
/// own token, cannot touch the user's account security; adding a factor next to an
/// existing one needs the password again.
#[tokio::test]
async fn delegated_tokens_cannot_touch_account_security_and_new_factors_need_the_password() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let user = api.sign_in("acme", &admin).await.access;
    let app = api
        .post(
            "/v1/t/acme/applications",
            Some(&user),
            json!({"name": "LIMS", "permissions": ["users:manage", "audit:read"]}),
        )
        .await
        .ok(201);
    let (id, secret) = (
        app["client_id"].as_str().unwrap(),
        app["client_secret"].as_str().unwrap(),
    );
    let exchange = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("client_id", id),
        ("client_secret", secret),
        ("subject_token", &user),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    let delegated = api.form("/oauth/token", &exchange).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let creds = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    let own = api.form("/oauth/token", &creds).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [&delegated, &own] {
        api.post("/v1/t/acme/users/me/totp", Some(token), json!({}))
            .await
            .problem(403, "forbidden");
        api.post("/v1/t/acme/users/me/passkeys", Some(token), json!({}))
            .await
            .problem(403, "forbidden");
        api.delete("/v1/t/acme/sessions/current", token, None)
            .await
            .problem(403, "forbidden");
    }
    api.get("/v1/t/acme/users", &user).await.ok(200); // the session is still live
    // With TOTP confirmed, adding a passkey needs the password; a wrong one is a 401.
    crate::identity::mfa::enrol_totp(&s, &user).await;
    let path = "/v1/t/acme/users/me/passkeys";
    api.post(path, Some(&user), json!({}))
        .await
        .problem(403, "forbidden");
    api.post(path, Some(&user), json!({"password": "not my password"}))
        .await
        .problem(401, "unauthenticated");
    api.post(path, Some(&user), json!({"password": USER_PASSWORD}))
        .await
        .ok(201);
}

/// Unknown invitation tokens cost no hashing and create nothing; guessing from one
/// address is throttled.
#[tokio::test]
async fn invitation_guesses_are_looked_up_first_and_throttled() {
    let s = start_configured("[passwords]\nlockout_after = 3\n").await;
    let op = s.operator_token().await;
    let api = s.api();
    api.create_tenant(&op, "acme").await;
    let subjects =
        || region_rows(&s.data_dir(), "SELECT COUNT(*) FROM audit_subjects")[0][0].clone();
    let before = subjects();
    let guess = |token: &str| {
        let body = json!({"token": token, "email": "new@acme.example", "password": USER_PASSWORD});
        let api = api.clone();
        async move { api.post("/v1/t/acme/invitations/accept", None, body).await }
    };
    for i in 0..3 {
        guess(&format!("sri_guess{i}"))
            .await
            .problem(401, "unauthenticated");
    }
    assert_eq!(subjects(), before, "a failed guess created a subject key");
    guess("sri_guess3").await.problem(429, "too-many-requests");
    let other = Api::from_address(&s, "127.0.0.2");
    let body = json!({"token": "sri_x", "email": "new@acme.example", "password": USER_PASSWORD});
    let ghost = other
        .post("/v1/t/no-such-tenant/invitations/accept", None, body)
        .await;
    ghost.problem(401, "unauthenticated");
}

/// Imported bcrypt hashes above cost 14, and guessable passwords, are refused.
#[tokio::test]
async fn costly_bcrypt_imports_and_guessable_passwords_are_refused_with_the_reason() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let token = api.sign_in("acme", &admin).await.access;
    let hash = format!("$2b$31${}", "a".repeat(53));
    let body = json!({"email": "slow@acme.example", "password_hash": hash});
    let p = api
        .post("/v1/t/acme/users", Some(&token), body)
        .await
        .problem(422, "validation");
    assert!(p.to_string().contains("cost 31"), "{p}");
    for weak in ["manchesterunited", "qazwsxedcrfv", "ncc1701enterprise"] {
        let body = json!({"email": "weak@acme.example", "password": weak});
        let p = api
            .post("/v1/t/acme/users", Some(&token), body)
            .await
            .problem(422, "validation");
        assert_eq!(p["errors"][0]["pointer"], "/password", "{weak}: {p}");
    }
}

/// A role that the MFA policy covers, granted in the middle of a session opened without
/// a second factor, restricts that session on its very next request.
#[tokio::test]
async fn a_role_needing_a_factor_granted_mid_session_restricts_the_session_at_once() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let admin_token = api.sign_in("acme", &admin).await.access;
    let user = api
        .create_user(&admin_token, "acme", "aud@acme.example", &["auditor"])
        .await;
    let body = json!({"required_for": ["reviewer"]});
    api.put("/v1/t/acme/policy/mfa", &admin_token, body)
        .await
        .ok(200);
    let auditor = api.sign_in("acme", "aud@acme.example").await.access;
    api.get("/v1/t/acme/audit/entries?limit=1", &auditor)
        .await
        .ok(200);
    let path = format!("/v1/t/acme/users/{}", user["id"].as_str().unwrap());
    let roles = json!({"roles": ["auditor", "reviewer"]});
    api.patch(&path, &admin_token, roles).await.ok(200);
    let after = api.get("/v1/t/acme/audit/entries?limit=1", &auditor).await;
    after.problem(403, "forbidden");
    // Enrolling is still allowed: that is what the restriction is for.
    api.post("/v1/t/acme/users/me/totp", Some(&auditor), json!({}))
        .await
        .ok(201);
}

/// A tenant whose contract ended is read-only: no new users by invitation, no factor
/// enrolment; signing in and reading the trail still work.
#[tokio::test]
async fn a_read_only_tenant_refuses_invitations_and_enrolment_but_still_signs_in() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "ended").await;
    let api = s.api();
    let token = api.sign_in("ended", &admin).await.access;
    let inv = api
        .post(
            "/v1/tenants/ended/invitations",
            Some(&token),
            json!({"email": "late@ended.example"}),
        )
        .await
        .ok(201);
    let control = s.data_dir().join("control.db");
    let script = format!(
        "import sqlite3\nc = sqlite3.connect({:?})\nc.execute(\"UPDATE tenants SET status = 'contract_ended' WHERE slug = 'ended'\")\nc.commit()\n",
        control.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = api.sign_in("ended", &admin).await.access;
    api.get("/v1/t/ended/audit/entries?limit=1", &token)
        .await
        .ok(200);
    let accept =
        json!({"token": inv["token"], "email": "late@ended.example", "password": USER_PASSWORD});
    api.post("/v1/t/ended/invitations/accept", None, accept)
        .await
        .problem(409, "conflict");
    api.post("/v1/t/ended/users/me/totp", Some(&token), json!({}))
        .await
        .problem(409, "conflict");
    // And a cursor beyond what storage can address is the client's mistake.
    let r = api
        .get(
            "/v1/t/ended/audit/entries?cursor=18446744073709551615",
            &token,
        )
        .await;
    assert_eq!(
        r.problem(422, "validation")["errors"][0]["pointer"],
        "/cursor"
    );
}

/// The operator id a token names (`sub` = `operator:<uuid>`).
fn operator_id(token: &str) -> String {
    use base64::Engine;
    let claims = token.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    v["sub"]
        .as_str()
        .unwrap()
        .strip_prefix("operator:")
        .unwrap()
        .to_owned()
}

/// Operators are powerless inside a tenant until its administrator grants access: the
/// grant is scoped, reasoned, time-bound, listable, revocable at once, and every use is
/// in the tenant's trail; personal data stays sealed unless the grant says otherwise.
#[tokio::test]
async fn operators_read_a_tenants_trail_only_through_a_live_grant() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let token = api.sign_in("acme", &admin).await.access;
    let entries = "/v1/t/acme/audit/entries?limit=500";
    let refused = api.get(entries, &op).await.problem(404, "not-found");
    let nobody = api
        .get("/v1/t/no-such/audit/entries", &op)
        .await
        .problem(404, "not-found");
    assert_eq!(
        refused["detail"], nobody["detail"],
        "indistinguishable from no tenant"
    );
    let grants = "/v1/t/acme/support-grants";
    let me = operator_id(&op);
    for (body, pointer) in [
        (
            json!({"operator": me, "scope": "audit:read", "reason": "ticket 42", "hours": 73}),
            "/hours",
        ),
        (
            json!({"operator": me, "scope": "audit:read", "reason": " ", "hours": 1}),
            "/reason",
        ),
        (
            json!({"operator": me, "scope": "users:manage", "reason": "x", "hours": 1}),
            "/scope",
        ),
    ] {
        let p = api
            .post(grants, Some(&token), body)
            .await
            .problem(422, "validation");
        assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
    }
    let body = json!({"operator": me, "scope": "audit:read", "reason": "ticket 42", "hours": 2});
    let grant = api.post(grants, Some(&token), body).await.ok(201);
    assert_eq!(grant["live"], true);
    // The operator reads the trail now, with personal data still sealed to them.
    let page = api.get(entries, &op).await.ok(200);
    let all = page["entries"].as_array().unwrap();
    let sealed: Vec<_> = all.iter().filter(|e| !e["personal"].is_null()).collect();
    assert!(!sealed.is_empty());
    assert!(
        sealed
            .iter()
            .all(|e| e["personal"]["withheld"] == true && e["personal"]["ip"].is_null())
    );
    api.get("/v1/t/acme/audit/checkpoint", &op).await.ok(200);
    // Operators still cannot manage users with a grant for the trail.
    api.get("/v1/t/acme/users", &op)
        .await
        .problem(404, "not-found");
    let listed = api.get(grants, &token).await.ok(200);
    assert_eq!(listed["items"][0]["id"], grant["id"]);
    // Revoked: gone at once.
    let path = format!("{grants}/{}", grant["id"].as_str().unwrap());
    api.delete(&path, &token, Some(json!({"reason": "ticket closed"})))
        .await
        .ok(204);
    api.get(entries, &op).await.problem(404, "not-found");
    api.delete(&path, &token, Some(json!({"reason": "again"})))
        .await
        .problem(404, "not-found");
    let actions = api.audit_actions(&token, "acme").await;
    for a in ["support.grant", "support.use", "support.revoke"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    let uses = actions.iter().filter(|a| *a == "support.use").count();
    assert_eq!(uses, 2, "one per operator request: {actions:?}");
    // The platform's own trail records the same uses, naming the tenant.
    let platform = api
        .get("/v1/platform/audit/entries?action=support.use", &op)
        .await
        .ok(200);
    let reasons: Vec<&str> = platform["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{platform}");
    assert!(
        reasons.iter().all(|r| r.starts_with("acme: ")),
        "{reasons:?}"
    );
}

/// A grant that reaches its expiry stops working, and its expiry is recorded in the
/// tenant's trail by the server's background round (a manual clock, no sleeping).
#[tokio::test]
async fn an_expired_support_grant_stops_working_and_its_expiry_is_audited() {
    use strongroom_core::clock::ManualClock;
    use strongroom_core::identity::Email;
    use strongroom_core::platform::{Credential, Platform, SecondFactor, SupportRequest};
    use strongroom_core::secret::SecretString;
    use strongroom_core::store::{AuditFilter, SupportScope};
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
    let clock = ManualClock::new(time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    let p = Platform::open(
        opened.store,
        opened.blobs,
        opened.providers,
        std::sync::Arc::new(clock.clone()),
        &config,
    )
    .await
    .unwrap();
    let me = strongroom_core::access::DataDirProof::check(&config.data_dir)
        .unwrap()
        .local_admin();
    let slug = strongroom_core::tenant::Slug::parse("acme").unwrap();
    let new = strongroom_core::tenant::NewTenant {
        slug: slug.clone(),
        display_name: strongroom_core::tenant::DisplayName::parse("Acme").unwrap(),
        region: strongroom_core::tenant::RegionName::parse("local").unwrap(),
        key_provider: None,
    };
    p.create_tenant(&me, new).await.unwrap();
    let pw = SecretString::new(USER_PASSWORD.into());
    let (admin, op_email) = (
        Email::parse("a@acme.example").unwrap(),
        Email::parse("op@x.example").unwrap(),
    );
    let roles = vec![strongroom_core::access::rbac::Role::Admin];
    p.create_user(
        &me,
        &slug,
        admin.clone(),
        None,
        Credential::Password(pw.clone()),
        roles,
    )
    .await
    .unwrap();
    let operator = p.create_operator(&me, op_email.clone(), &pw).await.unwrap();
    let client = "192.0.2.5".parse().unwrap();
    let t = p
        .user_login(&slug, &admin, &pw, &SecondFactor::default(), client)
        .await
        .unwrap();
    let admin_p = p.authenticate(&t.access_token).await.unwrap();
    let req = SupportRequest {
        operator: operator.id,
        scope: SupportScope::AuditRead,
        personal_data: false,
        reason: "incident 7".into(),
        hours: 1,
    };
    p.grant_support(&admin_p, &slug, req).await.unwrap();
    let op_token = p
        .operator_login(&op_email, &pw, None, client)
        .await
        .unwrap();
    let op_p = p
        .authenticate_operator(&op_token.access_token)
        .await
        .unwrap();
    let filter = AuditFilter::default();
    assert!(p.audit_query(&op_p, &slug, &filter, None, 10).await.is_ok());
    clock.advance(time::Duration::minutes(61));
    let op_token = p
        .operator_login(&op_email, &pw, None, client)
        .await
        .unwrap();
    let op_p = p
        .authenticate_operator(&op_token.access_token)
        .await
        .unwrap();
    assert!(
        matches!(
            p.audit_query(&op_p, &slug, &filter, None, 10).await,
            Err(strongroom_core::platform::PlatformError::NotFound("tenant"))
        ),
        "expired: the tenant is invisible again"
    );
    assert_eq!(p.support_expiry_round().await.unwrap(), 1);
    assert_eq!(p.support_expiry_round().await.unwrap(), 0, "recorded once");
    let only = AuditFilter {
        action: Some("support.expire".into()),
        ..AuditFilter::default()
    };
    let page = p.audit_query(&me, &slug, &only, None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
}

/// A sign-in to a tenant that does not exist does the same work as one to a tenant
/// that does — a password hash and an audited failure (there in the tenant's trail,
/// here in the platform's) — and gets the same answer, so neither the body nor the
/// time tells which tenants exist.
#[tokio::test]
async fn sign_in_to_an_unknown_tenant_costs_and_answers_the_same() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let known = api
        .sign_in_with("acme", "nobody@acme.example", USER_PASSWORD)
        .await
        .problem(401, "unauthenticated");
    let unknown = api
        .sign_in_with("no-such-tenant", "nobody@acme.example", USER_PASSWORD)
        .await
        .problem(401, "unauthenticated");
    for field in ["type", "title", "detail", "status"] {
        assert_eq!(known[field], unknown[field], "{field} differs");
    }
    let auditor = crate::support::auditor(&s, "acme").await;
    let tenant = api.audit_actions(&auditor, "acme").await;
    assert!(
        tenant.iter().any(|a| a == "session.login_failed"),
        "{tenant:?}"
    );
    let platform = api
        .get(
            "/v1/platform/audit/entries?action=session.login_failed",
            &op,
        )
        .await
        .ok(200);
    let entries = platform["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{platform}");
    assert_eq!(entries[0]["target"]["id"], "no-such-tenant");
    assert_eq!(entries[0]["actor"]["kind"], "anonymous");
}

/// Account-security rules an attacker with an administrator's token would probe: an
/// administrator cannot strip their own second factor through the admin endpoint
/// (which needs no password), and support access can only be granted to an operator
/// that exists and is enabled.
#[tokio::test]
async fn admins_cannot_reset_their_own_factor_nor_grant_access_to_no_one() {
    let s = crate::support::start().await;
    let op = s.operator_token().await;
    let admin = tenant_with_admin(&s, &op, "acme").await;
    let api = s.api();
    let token = api.sign_in("acme", &admin).await.access;
    let users = api.get("/v1/t/acme/users", &token).await.ok(200);
    let me = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == admin.as_str())
        .unwrap()
        .clone();
    let path = format!("/v1/t/acme/users/{}/totp", me["id"].as_str().unwrap());
    api.delete(&path, &token, Some(json!({"reason": "lost my phone"})))
        .await
        .problem(403, "forbidden");
    let nobody = "0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61";
    let body = json!({"operator": nobody, "scope": "audit:read", "reason": "ticket 1", "hours": 1});
    let p = api
        .post("/v1/t/acme/support-grants", Some(&token), body)
        .await
        .problem(422, "validation");
    assert_eq!(p["errors"][0]["pointer"], "/operator", "{p}");
}
