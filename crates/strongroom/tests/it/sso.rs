//! Single sign-on against a real OpenID provider on loopback (npm `oidc-provider`, the
//! OpenID-certified implementation), driven by a cookie-jar browser: sign-in, every
//! kind of forged or mismatched ID token, replay and login CSRF, SSO re-authentication
//! for Part 11 signatures, SSO-only tenants with break-glass, and isolation between
//! tenants that trust the same provider.

use serde_json::{Value, json};
use strongroom_testkit::idp::{Browser, OidcIdp, PUBLIC_URL};
use strongroom_testkit::{Options, Reply, USER_PASSWORD};

use crate::records::{Lab, etag_of};
use crate::support::{TWO_REGIONS, TestServer, bin};

/// Client id, secret and redirect URI of tenant `slug`'s client at the test IdP.
fn client(slug: &str) -> Value {
    json!({
        "client_id": format!("{slug}-client"),
        "client_secret": format!("{slug}-secret-0123456789"),
        "redirect_uris": [format!("{PUBLIC_URL}/v1/t/{slug}/sso/corp/callback")],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "require_auth_time": true,
    })
}

pub(crate) async fn sso_server() -> TestServer {
    TestServer::start_with(
        bin(),
        Options {
            config: Some(format!(
                "{TWO_REGIONS}[sso]\npublic_url = \"{PUBLIC_URL}\"\nallow_http_loopback = true\nper_address_per_minute = 100000\n"
            )),
            ..Options::default()
        },
    )
    .await
}

/// The provider settings tenant `slug` stores for the IdP.
fn provider(idp: &OidcIdp, slug: &str) -> Value {
    json!({
        "display_name": "Corporate login",
        "group_roles": {"qa": ["reviewer"], "signers": ["preparer"], "viewers": ["viewer"]},
        "oidc": {
            "issuer": idp.issuer,
            "client_id": format!("{slug}-client"),
            "client_secret": format!("{slug}-secret-0123456789"),
            "scopes": ["email", "profile", "groups"],
        }
    })
}

/// A lab tenant `slug` with the IdP configured as provider `corp`.
async fn configured(s: TestServer, idp: &OidcIdp, slug: &str) -> Lab {
    let lab = Lab::on(s, slug).await;
    let stored = lab
        .api
        .put(
            &format!("/v1/t/{slug}/sso/providers/corp"),
            &lab.admin,
            provider(idp, slug),
        )
        .await;
    stored.lacks(&["secret-0123456789"]);
    let v = stored.ok(200);
    assert_eq!(v["oidc"]["client_secret_set"], true);
    assert_eq!(
        v["redirect_uri"],
        format!("{PUBLIC_URL}/v1/t/{slug}/sso/corp/callback")
    );
    lab
}

/// Follows a landing's callback in `browser`.
async fn finish(browser: &Browser, callback: &str) -> Reply {
    let r = browser.client.get(callback).send().await.expect("callback");
    strongroom_testkit::Reply::from_response(r).await
}

/// Signs `login` in through the IdP; the tokens (the callback must succeed).
async fn sso_sign_in(lab: &Lab, slug: &str, login: &str) -> (Browser, Value) {
    let browser = Browser::new(&lab.s);
    let landing = browser.sign_in_at_idp(slug, "corp", login).await;
    let tokens = finish(&browser, &landing.callback).await.ok(200);
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string());
    (browser, tokens)
}

#[tokio::test]
async fn oidc_sign_in_links_by_verified_email_maps_groups_and_is_audited() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    let alice = api
        .create_user(&lab.admin, t, "alice@example.test", &["viewer"])
        .await;
    let alice_id = alice["id"].as_str().unwrap();

    // The settings never show the secret.
    let settings = api.get(&format!("/v1/t/{t}/sso"), &lab.admin).await;
    settings.lacks(&["secret-0123456789"]);
    assert_eq!(settings.ok(200)["providers"][0]["name"], "corp");

    let browser = Browser::new(&lab.s);
    let start = browser
        .client
        .get(format!("{}/v1/t/{t}/sso/corp/login", lab.s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "__Host-sr_sso_",
        "Path=/;",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let to = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&idp.issuer), "{to}");
    for needle in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "response_type=code",
    ] {
        assert!(to.contains(needle), "{needle} in {to}");
    }
    let landing = browser.walk(&to, "alice").await;
    let done = finish(&browser, &landing.callback).await;
    let tokens = done.ok(200);
    let access = tokens["access_token"].as_str().unwrap();
    // The same session as a password sign-in: the token works, refresh works.
    api.get(&format!("/v1/t/{t}/records"), access).await.ok(200);
    let refreshed = api
        .post(
            &format!("/v1/t/{t}/sessions/refresh"),
            None,
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await
        .ok(200);
    assert!(refreshed["access_token"].is_string());
    // alice is in groups qa and signers: reviewer + preparer replace viewer.
    let user = api
        .get(&format!("/v1/t/{t}/users/{alice_id}"), &lab.admin)
        .await
        .ok(200);
    assert_eq!(user["roles"], json!(["preparer", "reviewer"]));

    // The callback works once.
    finish(&browser, &landing.callback)
        .await
        .problem(401, "sso-failed");

    // Someone the tenant does not know (JIT is off) is refused, and that is audited.
    let b2 = Browser::new(&lab.s);
    let landing = b2.sign_in_at_idp(t, "corp", "bob").await;
    let refused = finish(&b2, &landing.callback).await;
    assert!(
        refused.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .contains("no account")
    );

    // A callback finished in another browser (login CSRF) is refused.
    let victim = Browser::new(&lab.s);
    let attacker = Browser::new(&lab.s);
    let landing = attacker.sign_in_at_idp(t, "corp", "alice").await;
    finish(&victim, &landing.callback)
        .await
        .problem(401, "sso-failed");

    // Unknown provider and unknown tenant look alike.
    for path in [
        format!("/v1/t/{t}/sso/nope/login"),
        "/v1/t/no-such-tenant/sso/corp/login".to_owned(),
    ] {
        let r = browser
            .client
            .get(format!("{}{path}", lab.s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }

    let entries = api.audit_entries(&lab.admin, t).await;
    let has = |action: &str, reason: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["reason"].as_str().unwrap_or("").contains(reason))
    };
    assert!(has("sso.configure", "add oidc provider corp"));
    assert!(entries.iter().any(|e| e["action"] == "sso.link"));
    assert!(has("session.login", "sso: corp"));
    assert!(has("user.update", "roles=preparer,reviewer"));
    assert!(has("session.login_failed", "no account"));
    assert!(has("session.login_failed", "binding cookie"));
}

#[tokio::test]
async fn forged_tampered_and_replayed_answers_are_refused() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let t = "acme";
    lab.api
        .create_user(&lab.admin, t, "alice@example.test", &["viewer"])
        .await;

    // Key rotation at the IdP: the new key id is fetched once and accepted.
    idp.hook("/__test/rotate?drop_old=1").await;
    sso_sign_in(&lab, t, "alice").await;

    // Each forgery is refused, and nothing about alice changes.
    let mut details = Vec::new();
    for mode in [
        "signature",
        "payload",
        "none",
        "aud",
        "azp",
        "azp1",
        "nonce",
        "iss",
        "expired",
        "future",
        "kid",
    ] {
        idp.hook(&format!("/__test/tamper?mode={mode}")).await;
        let browser = Browser::new(&lab.s);
        let landing = browser.sign_in_at_idp(t, "corp", "alice").await;
        let r = finish(&browser, &landing.callback).await;
        let detail = r.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        details.push(format!("{mode}: {detail}"));
    }
    // Each refusal names the check that fired.
    for (line, needle) in details.iter().zip([
        "bad signature",
        "bad signature",
        "No signature found",
        "udience",
        "udience",
        "azp",
        "once",
        "ssuer",
        "xpired",
        "iat",
        "No matching key",
    ]) {
        assert!(line.contains(needle), "{needle} in {line}\n{details:#?}");
    }

    // A code stolen from a callback is useless without the PKCE verifier (the IdP
    // refuses it), and is still good for its own flow afterwards.
    let browser = Browser::new(&lab.s);
    let landing = browser.sign_in_at_idp(t, "corp", "alice").await;
    let code = param(&landing.callback, "code");
    let stolen = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer))
        .basic_auth("acme-client", Some("acme-secret-0123456789"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            (
                "redirect_uri",
                &format!("{PUBLIC_URL}/v1/t/acme/sso/corp/callback"),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status().as_u16(), 400);
    assert!(stolen.text().await.unwrap().contains("invalid_grant"));
    finish(&browser, &landing.callback).await.ok(200);

    // The same code replayed in a fresh flow of the same browser: the IdP has spent it.
    let start = browser
        .client
        .get(format!("{}/v1/t/{t}/sso/corp/login", lab.s.base))
        .send()
        .await
        .unwrap();
    let state = param(start.headers()["location"].to_str().unwrap(), "state");
    let iss = param(&landing.callback, "iss");
    let replay = reqwest::Url::parse_with_params(
        &format!("{}/v1/t/{t}/sso/corp/callback", lab.s.base),
        &[
            ("code", code.as_str()),
            ("state", state.as_str()),
            ("iss", iss.as_str()),
        ],
    )
    .unwrap()
    .to_string();
    let r = finish(&browser, &replay).await;
    assert!(
        r.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );

    // The issuer in the response (RFC 9207) changed, or left out: refused.
    for (from, to) in [("iss=http", "iss=https"), ("&iss=", "&was=")] {
        let b = Browser::new(&lab.s);
        let landing = b.sign_in_at_idp(t, "corp", "alice").await;
        let edited = landing.callback.replace(from, to);
        assert_ne!(edited, landing.callback);
        let r = finish(&b, &edited).await;
        assert!(
            r.problem(401, "sso-failed")["detail"]
                .as_str()
                .unwrap()
                .contains("issuer (iss)"),
            "{from}"
        );
    }

    // An error from the IdP (for a real attempt), no state, a made-up state: refused,
    // never a 500.
    let b = Browser::new(&lab.s);
    let start = b
        .client
        .get(format!("{}/v1/t/{t}/sso/corp/login", lab.s.base))
        .send()
        .await
        .unwrap();
    let state = param(start.headers()["location"].to_str().unwrap(), "state");
    let r = finish(
        &b,
        &format!(
            "{}/v1/t/{t}/sso/corp/callback?error=access_denied&error_description=no&state={state}",
            lab.s.base
        ),
    )
    .await;
    assert!(
        r.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );
    // No state, a made-up state, an error from the IdP: refused, never a 500.
    for q in [
        "",
        "?code=x",
        "?state=made-up&code=x",
        "?error=access_denied&state=x",
    ] {
        let r = finish(
            &browser,
            &format!("{}/v1/t/{t}/sso/corp/callback{q}", lab.s.base),
        )
        .await;
        r.problem(401, "sso-failed");
    }
    let log = idp.log();
    assert!(!log.contains("tamper failed"), "{log}");
}

#[tokio::test]
async fn provider_settings_are_validated_and_only_for_the_tenants_admins() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    let path = format!("/v1/t/{t}/sso/providers/second");
    for (patch, pointer) in [
        (json!({"issuer": "http://10.0.0.1"}), "/oidc/issuer"),
        (
            json!({"issuer": "https://169.254.169.254/x"}),
            "/oidc/issuer",
        ),
        (json!({"issuer": "file:///etc/passwd"}), "/oidc/issuer"),
        (json!({"algorithms": ["HS256"]}), "/oidc/algorithms"),
        (json!({"scopes": ["openid"]}), "/oidc/scopes"),
    ] {
        let mut body = provider(&idp, t);
        for (k, v) in patch.as_object().unwrap() {
            body["oidc"][k] = v.clone();
        }
        let r = api.put(&path, &lab.admin, body).await;
        let p = r.problem(422, "validation");
        assert_eq!(p["errors"][0]["pointer"], pointer, "{p}");
    }
    // An issuer that answers for another issuer (or not at all) is found at once.
    let mut body = provider(&idp, t);
    body["oidc"]["issuer"] = json!("http://127.0.0.1:1");
    let p = api
        .put(&path, &lab.admin, body)
        .await
        .problem(422, "validation");
    assert_eq!(p["errors"][0]["pointer"], "/oidc/issuer", "{p}");
    // An issuer whose discovery names another issuer is refused the same way.
    let mut body = provider(&idp, t);
    body["oidc"]["issuer"] = json!(format!("{}/", idp.issuer));
    let p = api
        .put(&path, &lab.admin, body)
        .await
        .problem(422, "validation");
    assert!(p["detail"].as_str().unwrap().contains("discovery"), "{p}");
    // Unknown roles in the mapping, bad names.
    let mut body = provider(&idp, t);
    body["group_roles"] = json!({"g": ["root"]});
    api.put(&path, &lab.admin, body)
        .await
        .problem(422, "validation");
    api.put(
        &format!("/v1/t/{t}/sso/providers/Bad_Name"),
        &lab.admin,
        provider(&idp, t),
    )
    .await
    .problem(404, "not-found");
    // A viewer may not configure; another tenant's admin does not see the tenant.
    let viewer = api
        .create_user(&lab.admin, t, "viewer@acme.example", &["viewer"])
        .await;
    let vt = api
        .sign_in(t, viewer["email"].as_str().unwrap())
        .await
        .access;
    api.put(&path, &vt, provider(&idp, t))
        .await
        .problem(403, "forbidden");
    api.get(&format!("/v1/t/{t}/sso"), &vt)
        .await
        .problem(403, "forbidden");
    let op = lab.s.operator_token().await;
    api.create_tenant(&op, "other").await;
    let out = lab
        .s
        .cli(
            &[
                "user",
                "create",
                "--tenant",
                "other",
                "--email",
                "a@other.example",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(USER_PASSWORD),
        )
        .await;
    assert!(out.status.success());
    let other = api.sign_in("other", "a@other.example").await.access;
    api.get(&format!("/v1/t/{t}/sso"), &other)
        .await
        .problem(404, "not-found");
    api.put(&path, &other, provider(&idp, t))
        .await
        .problem(404, "not-found");
    // Replacing keeps the stored secret when none is given.
    let mut body = provider(&idp, t);
    body["oidc"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    body["display_name"] = json!("Renamed");
    let v = api
        .put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, body)
        .await
        .ok(200);
    assert_eq!(v["display_name"], "Renamed");
    api.create_user(&lab.admin, t, "alice@example.test", &["viewer"])
        .await;
    sso_sign_in(&lab, t, "alice").await;

    // The same from the CLI, next to the running server.
    let out = lab
        .s
        .cli(
            &[
                "sso",
                "set-oidc",
                "--tenant",
                t,
                "--name",
                "cli-idp",
                "--display-name",
                "CLI",
                "--issuer",
                &idp.issuer,
                "--client-id",
                "acme-client",
                "--client-secret-stdin",
                "--group-role",
                "qa=reviewer",
            ],
            Some("acme-secret-0123456789\n"),
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/v1/t/acme/sso/cli-idp/callback"));
    let shown = lab.s.cli(&["sso", "show", "--tenant", t], None).await;
    let text = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        text.contains("\"cli-idp\"") && !text.contains("secret-0123456789"),
        "{text}"
    );
    let gone = lab
        .s
        .cli(&["sso", "remove", "--tenant", t, "--name", "cli-idp"], None)
        .await;
    assert!(gone.status.success());
    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| {
        e["action"] == "sso.configure"
            && e["actor"]["kind"] == "local-admin"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("remove provider cli-idp")
    }));
}

fn param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

/// A record of the batch type in review, authored and signed `authored` by a password
/// user; returns (signatures path, ETag).
pub(crate) async fn in_review(lab: &Lab, t: &str) -> (String, String) {
    let (_, author) = lab
        .user(t, "author@acme.example", "Alice Author", &["preparer"])
        .await;
    let created = lab
        .create(t, &author, json!({"batch_no": "B-7", "quantity": 3}))
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    let base = format!("/v1/t/{t}/records/{id}");
    let submitted = lab
        .api
        .send_if(
            reqwest::Method::POST,
            &format!("{base}/submit"),
            &author,
            Some(&etag_of(&created)),
            Some(&json!({})),
        )
        .await;
    let sigs = format!("{base}/versions/1/signatures");
    let signed = lab
        .api
        .send_if(
            reqwest::Method::POST,
            &sigs,
            &author,
            Some(&etag_of(&submitted)),
            Some(&json!({"meaning": "authored", "email": "author@acme.example", "password": USER_PASSWORD})),
        )
        .await;
    (sigs, etag_of(&signed))
}

/// Asks for an SSO re-authentication challenge in `browser` (which keeps its binding
/// cookie); returns (challenge id, authorization URL).
pub(crate) async fn challenge(
    browser: &Browser,
    lab: &Lab,
    sigs: &str,
    token: &str,
    meaning: &str,
) -> (String, String) {
    let r = browser
        .client
        .post(format!("{}{sigs}/sso-challenge", lab.s.base))
        .bearer_auth(token)
        .json(&json!({"meaning": meaning, "provider": "corp"}))
        .send()
        .await
        .unwrap();
    let v = Reply::from_response(r).await.ok(201);
    (
        v["challenge_id"].as_str().unwrap().to_owned(),
        v["authorization_url"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_sso_user_signs_only_after_a_fresh_login_at_the_identity_provider() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    // rob (groups: none mapped -> roles from groups) and ann: reviewers signing in by SSO.
    let mut body = provider(&idp, t);
    body["group_roles"] = json!({});
    api.put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, body)
        .await
        .ok(200);
    for (email, name) in [
        ("rob@example.test", "Rob Reviewer"),
        ("ann@example.test", "Ann Approver"),
    ] {
        let b = json!({"email": email, "password": USER_PASSWORD, "roles": ["reviewer"], "full_name": name});
        api.post(&format!("/v1/t/{t}/users"), Some(&lab.admin), b)
            .await
            .ok(201);
    }
    let (sigs, etag) = in_review(&lab, t).await;
    let (rob_browser, rob) = sso_sign_in(&lab, t, "rob").await;
    let rob = rob["access_token"].as_str().unwrap().to_owned();

    // The challenge sends rob to the IdP with prompt=login and max_age=0.
    let (id, url) = challenge(&rob_browser, &lab, &sigs, &rob, "reviewed").await;
    assert!(
        url.contains("prompt=login") && url.contains("max_age=0"),
        "{url}"
    );
    // Signing before the round trip is finished: refused.
    let early = json!({"meaning": "reviewed", "sso_challenge": id});
    let r = lab
        .api
        .send_if(
            reqwest::Method::POST,
            &sigs,
            &rob,
            Some(&etag),
            Some(&early),
        )
        .await;
    r.problem(403, "reauthentication-failed");
    // That attempt spent nothing at the IdP side but the challenge is still pending: redo.
    let (id, url) = challenge(&rob_browser, &lab, &sigs, &rob, "reviewed").await;
    let landing = rob_browser.walk(&url, "rob").await;
    let done = finish(&rob_browser, &landing.callback).await.ok(200);
    assert_eq!(done["challenge_id"], id);
    assert!(done["auth_time"].is_string());
    let body = json!({"meaning": "reviewed", "sso_challenge": id});
    let signed = lab
        .api
        .send_if(reqwest::Method::POST, &sigs, &rob, Some(&etag), Some(&body))
        .await;
    let etag = etag_of(&signed);
    let v = signed.ok(201);
    let sig = &v["current"]["signatures"][1];
    assert_eq!(sig["meaning"], "reviewed");
    assert_eq!(sig["printed_name"], "Rob Reviewer");
    let reauth = sig["reauth"].as_str().unwrap();
    assert!(
        reauth.starts_with("oidc:corp auth_time=") && reauth.contains("id_token_sha256="),
        "{reauth}"
    );
    // ann's IdP reports an old login (it ignored prompt=login): refused at the callback.
    let (ann_browser, ann) = sso_sign_in(&lab, t, "ann").await;
    let ann = ann["access_token"].as_str().unwrap().to_owned();
    idp.hook("/__test/stale-login?secs=3600").await;
    let (_, url) = challenge(&ann_browser, &lab, &sigs, &ann, "approved").await;
    let landing = ann_browser.walk(&url, "ann").await;
    let r = finish(&ann_browser, &landing.callback).await;
    assert!(
        r.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .contains("auth_time")
    );
    idp.hook("/__test/stale-login?secs=0").await;

    // A re-authentication at the IdP as someone else does not sign for ann.
    let (_, url) = challenge(&ann_browser, &lab, &sigs, &ann, "approved").await;
    let landing = ann_browser.walk(&url, "rob").await;
    let r = finish(&ann_browser, &landing.callback).await;
    assert!(
        r.problem(401, "sso-failed")["detail"]
            .as_str()
            .unwrap()
            .contains("someone other")
    );

    // rob, who signed this round, is refused before any trip to the IdP.
    let r = rob_browser
        .client
        .post(format!("{}{sigs}/sso-challenge", lab.s.base))
        .bearer_auth(&rob)
        .json(&json!({"meaning": "approved", "provider": "corp"}))
        .send()
        .await
        .unwrap();
    Reply::from_response(r)
        .await
        .problem(403, "separation-of-duties");
    // A challenge completed in one of ann's sessions cannot be spent by another.
    let (id, url) = challenge(&ann_browser, &lab, &sigs, &ann, "approved").await;
    let landing = ann_browser.walk(&url, "ann").await;
    finish(&ann_browser, &landing.callback).await.ok(200);
    let (_, other) = sso_sign_in(&lab, t, "ann").await;
    let stolen = json!({"meaning": "approved", "sso_challenge": id});
    lab.api
        .send_if(
            reqwest::Method::POST,
            &sigs,
            other["access_token"].as_str().unwrap(),
            Some(&etag),
            Some(&stolen),
        )
        .await
        .problem(403, "reauthentication-failed");

    // ann signs properly.
    let (id, url) = challenge(&ann_browser, &lab, &sigs, &ann, "approved").await;
    let landing = ann_browser.walk(&url, "ann").await;
    finish(&ann_browser, &landing.callback).await.ok(200);
    let body = json!({"meaning": "approved", "sso_challenge": id});
    let approved = lab
        .api
        .send_if(reqwest::Method::POST, &sigs, &ann, Some(&etag), Some(&body))
        .await;
    assert_eq!(approved.ok(201)["status"], "approved");

    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| e["action"] == "signature.failed"
        && e["reason"].as_str().unwrap_or("").contains("auth_time")));
    let signs = entries
        .iter()
        .filter(|e| e["action"] == "record.sign")
        .count();
    assert_eq!(signs, 3);
}

#[tokio::test]
async fn a_tenant_that_requires_sso_refuses_passwords_except_break_glass() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    let rob = json!({"email": "rob@example.test", "password": USER_PASSWORD, "roles": ["reviewer"], "full_name": "Rob"});
    api.post(&format!("/v1/t/{t}/users"), Some(&lab.admin), rob)
        .await
        .ok(201);
    let users = api
        .get(&format!("/v1/t/{t}/users"), &lab.admin)
        .await
        .ok(200);
    let admin_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "admin@acme.example")
        .unwrap()["id"]
        .clone();
    // Roles stay managed in the tenant (no group mapping).
    let mut body = provider(&idp, t);
    body["group_roles"] = json!({});
    api.put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, body)
        .await
        .ok(200);
    let (sigs, etag) = in_review(&lab, t).await;
    // Requiring SSO needs a break-glass administrator.
    api.put(
        &format!("/v1/t/{t}/sso/policy"),
        &lab.admin,
        json!({"require_sso": true}),
    )
    .await
    .problem(422, "validation");
    let set = api
        .put(
            &format!("/v1/t/{t}/sso/policy"),
            &lab.admin,
            json!({"require_sso": true, "break_glass": [admin_id]}),
        )
        .await
        .ok(200);
    assert_eq!(set["require_sso"], true);
    // rob's right password is refused exactly like a wrong one.
    let right = api.sign_in_with(t, "rob@example.test", USER_PASSWORD).await;
    let wrong = api
        .sign_in_with(t, "rob@example.test", "not the password")
        .await;
    let (mut right, mut wrong) = (
        right.problem(401, "unauthenticated"),
        wrong.problem(401, "unauthenticated"),
    );
    right["request_id"] = json!(null);
    wrong["request_id"] = json!(null);
    assert_eq!(right, wrong);
    // rob signs in by SSO; his signatures cannot use a password.
    let (_, tokens) = sso_sign_in(&lab, t, "rob").await;
    let body =
        json!({"meaning": "reviewed", "email": "rob@example.test", "password": USER_PASSWORD});
    lab.api
        .send_if(
            reqwest::Method::POST,
            &sigs,
            tokens["access_token"].as_str().unwrap(),
            Some(&etag),
            Some(&body),
        )
        .await
        .problem(403, "sso-required");
    // The break-glass administrator still gets in, and it is on record.
    api.sign_in(t, "admin@acme.example").await;
    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| {
        e["action"] == "session.login"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("break-glass")
    }));
    assert!(entries.iter().any(|e| {
        e["action"] == "session.login_failed"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("requires single sign-on")
    }));
    // The last enabled provider cannot be removed, nor disabled, while SSO is required.
    api.delete(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, None)
        .await
        .problem(409, "conflict");
    let mut off = provider(&idp, t);
    off["enabled"] = json!(false);
    api.put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, off)
        .await
        .problem(409, "conflict");
    // rob (linked by his SSO sign-in) named break-glass: from now on his way in is his
    // password, never the identity provider.
    let rob_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "rob@example.test")
        .unwrap()["id"]
        .clone();
    api.put(
        &format!("/v1/t/{t}/sso/policy"),
        &lab.admin,
        json!({"require_sso": true, "break_glass": [admin_id, rob_id]}),
    )
    .await
    .ok(200);
    let b = Browser::new(&lab.s);
    let landing = b.sign_in_at_idp(t, "corp", "rob").await;
    let p = finish(&b, &landing.callback)
        .await
        .problem(401, "sso-failed");
    assert!(p["detail"].as_str().unwrap().contains("break-glass"), "{p}");
    api.sign_in(t, "rob@example.test").await;
}

#[tokio::test]
async fn an_identity_provider_of_one_tenant_never_signs_anyone_into_another() {
    let Some(idp) = OidcIdp::start(&json!([client("acme"), client("beta")])).await else {
        return;
    };
    let s = sso_server().await;
    let acme = configured(s, &idp, "acme").await;
    let api = &acme.api;
    let op = acme.s.operator_token().await;
    api.create_tenant(&op, "beta").await;
    let out = acme
        .s
        .cli(
            &[
                "user",
                "create",
                "--tenant",
                "beta",
                "--email",
                "admin@beta.example",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some(USER_PASSWORD),
        )
        .await;
    assert!(out.status.success());
    let beta_admin = api.sign_in("beta", "admin@beta.example").await.access;
    api.put(
        "/v1/t/beta/sso/providers/corp",
        &beta_admin,
        provider(&idp, "beta"),
    )
    .await
    .ok(200);
    // alice exists in acme only.
    api.create_user(&acme.admin, "acme", "alice@example.test", &["viewer"])
        .await;

    // An acme callback presented at beta's callback (same state): refused, and spent.
    let browser = Browser::new(&acme.s);
    let landing = browser.sign_in_at_idp("acme", "corp", "alice").await;
    let at_beta = landing.callback.replace("/v1/t/acme/", "/v1/t/beta/");
    finish(&browser, &at_beta).await.problem(401, "sso-failed");
    finish(&browser, &landing.callback)
        .await
        .problem(401, "sso-failed");

    // An acme code with a beta flow: beta redeems it with its own client; the IdP refuses.
    let landing = browser.sign_in_at_idp("acme", "corp", "alice").await;
    let code = param(&landing.callback, "code");
    let start = browser
        .client
        .get(format!("{}/v1/t/beta/sso/corp/login", acme.s.base))
        .send()
        .await
        .unwrap();
    let state = param(start.headers()["location"].to_str().unwrap(), "state");
    let iss = param(&landing.callback, "iss");
    let mixed = reqwest::Url::parse_with_params(
        &format!("{}/v1/t/beta/sso/corp/callback", acme.s.base),
        &[
            ("code", code.as_str()),
            ("state", state.as_str()),
            ("iss", iss.as_str()),
        ],
    )
    .unwrap()
    .to_string();
    let p = finish(&browser, &mixed).await.problem(401, "sso-failed");
    assert!(
        p["detail"].as_str().unwrap().contains("invalid_grant"),
        "{p}"
    );
    // The acme flow itself still works, for acme only.
    let tokens = finish(&browser, &landing.callback).await.ok(200);
    let access = tokens["access_token"].as_str().unwrap();
    api.get("/v1/t/beta/records", access)
        .await
        .problem(404, "not-found");
    api.get("/v1/t/acme/records", access).await.ok(200);

    // The same person at the same IdP is nobody in beta (no link crosses tenants).
    let b2 = Browser::new(&acme.s);
    let landing = b2.sign_in_at_idp("beta", "corp", "alice").await;
    finish(&b2, &landing.callback)
        .await
        .problem(401, "sso-failed");

    // A beta administrator cannot read or change acme's providers.
    api.get("/v1/t/acme/sso", &beta_admin)
        .await
        .problem(404, "not-found");
    api.delete("/v1/t/acme/sso/providers/corp", &beta_admin, None)
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn only_an_administrators_own_session_configures_sso_and_one_address_is_bounded() {
    let s = TestServer::start_with(
        bin(),
        Options {
            config: Some(format!(
                "{TWO_REGIONS}[sso]\npublic_url = \"{PUBLIC_URL}\"\nper_address_per_minute = 5\n"
            )),
            ..Options::default()
        },
    )
    .await;
    let lab = Lab::on(s, "acme").await;
    let api = &lab.api;
    // An application holding users:manage may not choose who can sign in as anyone.
    let app = api
        .post(
            "/v1/t/acme/applications",
            Some(&lab.admin),
            json!({"name": "provisioner", "permissions": ["users:manage"]}),
        )
        .await
        .ok(201);
    let r = lab
        .s
        .client()
        .post(lab.s.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app["client_id"].as_str().unwrap()),
            ("client_secret", app["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let app_token = Reply::from_response(r).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"display_name": "x", "oidc": {"issuer": "https://idp.example.com",
        "client_id": "x", "client_secret": "y"}});
    let p = api
        .put("/v1/t/acme/sso/providers/corp", &app_token, body)
        .await
        .problem(403, "forbidden");
    assert!(p["detail"].as_str().unwrap().contains("application"), "{p}");
    api.put(
        "/v1/t/acme/sso/policy",
        &app_token,
        json!({"require_sso": false}),
    )
    .await
    .problem(403, "forbidden");

    // Five SSO requests a minute from one address here; the sixth is refused.
    let browser = Browser::new(&lab.s);
    for i in 0..6 {
        let r = browser
            .client
            .get(format!("{}/v1/t/acme/sso/none/login", lab.s.base))
            .send()
            .await
            .unwrap();
        if i < 5 {
            assert_eq!(r.status().as_u16(), 404);
        } else {
            assert_eq!(r.status().as_u16(), 429);
            assert!(r.headers().contains_key("retry-after"));
        }
    }
}

#[tokio::test]
async fn just_in_time_users_and_e_mail_linking_follow_the_providers_settings() {
    let Some(idp) = OidcIdp::start(&json!([client("acme")])).await else {
        return;
    };
    let lab = configured(sso_server().await, &idp, "acme").await;
    let (t, api) = ("acme", &lab.api);
    // JIT off (the default): carol is nobody here.
    let b = Browser::new(&lab.s);
    let landing = b.sign_in_at_idp(t, "corp", "carol").await;
    finish(&b, &landing.callback)
        .await
        .problem(401, "sso-failed");
    // JIT on: carol's account is made at her first sign-in, with roles from her groups
    // (none mapped: no roles) and the provider's name for her.
    let mut body = provider(&idp, t);
    body["jit"] = json!(true);
    api.put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, body)
        .await
        .ok(200);
    let (_, tokens) = sso_sign_in(&lab, t, "carol").await;
    assert!(tokens["access_token"].is_string());
    let users = api
        .get(&format!("/v1/t/{t}/users"), &lab.admin)
        .await
        .ok(200);
    let carol = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "carol@example.test")
        .expect("carol was created")
        .clone();
    assert_eq!(carol["full_name"], "User carol");
    assert_eq!(carol["roles"], json!([]));
    // Her next sign-in finds her by her link, not by creating another account.
    sso_sign_in(&lab, t, "carol").await;
    let again = api
        .get(&format!("/v1/t/{t}/users"), &lab.admin)
        .await
        .ok(200);
    let carols = again["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == "carol@example.test")
        .count();
    assert_eq!(carols, 1);
    // Linking by e-mail off: dave's existing account is not taken over by the IdP's
    // claim about his address.
    api.create_user(&lab.admin, t, "dave@example.test", &["viewer"])
        .await;
    let mut body = provider(&idp, t);
    body["link_by_email"] = json!(false);
    api.put(&format!("/v1/t/{t}/sso/providers/corp"), &lab.admin, body)
        .await
        .ok(200);
    let b = Browser::new(&lab.s);
    let landing = b.sign_in_at_idp(t, "corp", "dave").await;
    finish(&b, &landing.callback)
        .await
        .problem(401, "sso-failed");
    let entries = api.audit_entries(&lab.admin, t).await;
    assert!(entries.iter().any(|e| e["action"] == "user.create"
        && e["reason"].as_str().unwrap_or("").contains("just in time")));
}
