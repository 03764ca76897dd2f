//! Token-signing keys: rotation with overlap, pruning of retired keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::*;
use crate::support::TestServer;

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
    let jwks: Value = crate::support::send(&s, reqwest::Method::GET, "/.well-known/jwks.json")
        .await
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
