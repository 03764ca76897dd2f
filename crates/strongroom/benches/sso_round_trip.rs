//! How long single sign-on takes, beside a password sign-in in the same run.
//!
//! The real server (release build) and the real OpenID provider (npm `oidc-provider`,
//! from `crates/strongroom/tests/idp` after `npm ci` there) on loopback; a cookie-jar
//! browser walks the provider's login page:
//!
//! * baseline — a password sign-in (`POST /v1/t/{tenant}/sessions`: one argon2id
//!   verification, a session and its audit entry);
//! * OIDC, first login — a new browser: our redirect, the provider's login form, its
//!   redirect back, and our callback (code exchange with PKCE, ID-token verification,
//!   the session and its audit entry);
//! * OIDC, provider session — the same browser again: the provider skips its form;
//! * SAML — npm `saml-idp`: our redirect (an AuthnRequest), the IdP's page and form
//!   (which signs the Response and the Assertion, RSA-SHA256), and the browser's POST
//!   to our ACS (xmlsec1 verification of both signatures, our checks, the session and
//!   its audit entry); and that ACS POST alone.
//!
//! `cargo bench -p strongroom --bench sso_round_trip`; prints `sso:` lines.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use strongroom_testkit::idp::{Browser, OidcIdp, PUBLIC_URL, SamlIdp, SamlUser};
use strongroom_testkit::{Options, TestServer, USER_PASSWORD};

const ROUNDS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::too_many_lines)] // one linear script of measurements
fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let clients = json!([{
            "client_id": "bench-client",
            "client_secret": "bench-secret-0123456789",
            "redirect_uris": [format!("{PUBLIC_URL}/v1/t/bench/sso/corp/callback")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]);
        let (Some(idp), Some(saml)) = (
            OidcIdp::start(&clients).await,
            SamlIdp::start("bench", "saml", &[], &[]).await,
        ) else {
            println!("sso: skipped (npm ci in crates/strongroom/tests/idp first)");
            return;
        };
        let s = TestServer::start_with(
            Path::new(env!("CARGO_BIN_EXE_strongroom")),
            Options {
                config: Some(format!(
                    "[sso]\npublic_url = \"{PUBLIC_URL}\"\nallow_http_loopback = true\nper_address_per_minute = 100000\n"
                )),
                ..Options::default()
            },
        )
        .await;
        let api = s.api();
        let op = s.operator_token().await;
        api.post(
            "/v1/tenants",
            Some(&op),
            json!({"slug": "bench", "display_name": "bench", "region": "local"}),
        )
        .await
        .ok(201);
        let out = s
            .cli(
                &[
                    "user",
                    "create",
                    "--tenant",
                    "bench",
                    "--email",
                    "admin@bench.example",
                    "--role",
                    "admin",
                    "--password-stdin",
                ],
                Some(USER_PASSWORD),
            )
            .await;
        assert!(out.status.success());
        let admin = api.sign_in("bench", "admin@bench.example").await.access;
        api.put(
            "/v1/t/bench/sso/providers/corp",
            &admin,
            json!({"display_name": "Corp", "oidc": {
                "issuer": idp.issuer, "client_id": "bench-client",
                "client_secret": "bench-secret-0123456789", "scopes": ["email", "profile"]}}),
        )
        .await
        .ok(200);
        api.put(
            "/v1/t/bench/sso/providers/saml",
            &admin,
            json!({"display_name": "Corp SAML",
                   "saml": {"metadata_url": format!("{}/metadata", saml.url)}}),
        )
        .await
        .ok(200);
        api.create_user(&admin, "bench", "alice@example.test", &["viewer"])
            .await;
        let alice = SamlUser::new("alice@example.test", "");
        let (mut saml_full, mut saml_acs) = (Vec::new(), Vec::new());

        let (mut password, mut first, mut again) = (Vec::new(), Vec::new(), Vec::new());
        let mut requests = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            api.sign_in("bench", "alice@example.test").await;
            password.push(t.elapsed().as_secs_f64() * 1e3);

            let browser = Browser::new(&s);
            let t = Instant::now();
            let landing = browser.sign_in_at_idp("bench", "corp", "alice").await;
            let r = browser.client.get(&landing.callback).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            first.push(t.elapsed().as_secs_f64() * 1e3);
            requests = landing.requests + 2;

            let t = Instant::now();
            let landing = browser.sign_in_at_idp("bench", "corp", "alice").await;
            let r = browser.client.get(&landing.callback).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            again.push(t.elapsed().as_secs_f64() * 1e3);

            let t = Instant::now();
            let post = browser.saml_sign_in("bench", "saml", &alice).await;
            let at_acs = Instant::now();
            let r = browser.post_saml(&post).await;
            assert_eq!(r.status().as_u16(), 200);
            saml_acs.push(at_acs.elapsed().as_secs_f64() * 1e3);
            saml_full.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let base = median(password);
        println!("sso: {ROUNDS} rounds each, medians; baseline = password sign-in");
        println!("sso: password sign-in           {base:7.1} ms   1.00x");
        for (name, v) in [
            ("OIDC, first login", first),
            ("OIDC, provider session", again),
            ("SAML, whole round trip", saml_full),
            ("SAML, the ACS POST alone", saml_acs),
        ] {
            let m = median(v);
            println!("sso: {name:<26} {m:7.1} ms   {:.2}x", m / base);
        }
        println!("sso: a first OIDC login is {requests} browser requests");
        drop((idp, saml));
    });
}
