use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::clock::ManualClock;

fn service(clock: &ManualClock) -> TokenService {
    let (key, _) = SigningKey::generate().unwrap();
    TokenService::new(
        "strongroom-test".into(),
        key,
        vec![],
        Arc::new(clock.clone()),
    )
}

fn clock() -> ManualClock {
    ManualClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap())
}

#[test]
fn issued_tokens_verify_until_they_expire() {
    let clock = clock();
    let s = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900);
    assert_eq!(
        s.verify(&t.access_token, OPERATOR_AUDIENCE).unwrap().sub,
        "operator:x"
    );
    clock.advance(Duration::seconds(900 + LEEWAY_SECS + 1));
    assert_eq!(
        s.verify(&t.access_token, OPERATOR_AUDIENCE),
        Err(TokenError::Expired)
    );
}

#[test]
fn tokens_from_the_future_are_refused() {
    let clock = clock();
    let s = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900);
    clock.advance(Duration::seconds(-(LEEWAY_SECS + 5)));
    assert_eq!(
        s.verify(&t.access_token, OPERATOR_AUDIENCE),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn wrong_audience_key_and_tampering_are_refused() {
    let clock = clock();
    let s = service(&clock);
    let other = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900).access_token;
    assert_eq!(
        s.verify(&t, "strongroom:tenant"),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        other.verify(&t, OPERATOR_AUDIENCE),
        Err(TokenError::UnknownKey)
    );
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["sub"] = "operator:someone-else".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(
        s.verify(&parts.join("."), OPERATOR_AUDIENCE),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn alg_none_and_hs256_confusion_are_refused() {
    let clock = clock();
    let s = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900).access_token;
    let parts: Vec<&str> = t.split('.').collect();
    let kid = s.active.kid().to_owned();
    let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    assert!(
        s.verify(&format!("{none}.{}.", parts[1]), OPERATOR_AUDIENCE)
            .is_err()
    );
    // HS256 keyed with the public key: the classic algorithm-confusion attack.
    let hs = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));
    let input = format!("{hs}.{}", parts[1]);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &s.active.public_key());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(
        s.verify(&forged, OPERATOR_AUDIENCE),
        Err(TokenError::UnknownKey)
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let clock = clock();
    let s = service(&clock);
    for junk in ["", ".", "..", "a.b.c", "eyJ.eyJ.sig", &"x".repeat(10_000)] {
        assert!(s.verify(junk, OPERATOR_AUDIENCE).is_err(), "{junk}");
    }
}

#[test]
fn jwks_lists_active_and_older_keys() {
    let clock = clock();
    let (a, _) = SigningKey::generate().unwrap();
    let (b, _) = SigningKey::generate().unwrap();
    let (a_kid, b_kid) = (a.kid().to_owned(), b.kid().to_owned());
    let s = TokenService::new("i".into(), a, vec![b], Arc::new(clock));
    let kids: Vec<String> = s.jwks().keys.into_iter().map(|k| k.kid).collect();
    assert!(kids.contains(&a_kid) && kids.contains(&b_kid));
}

#[test]
fn user_tokens_carry_tenant_claims_and_other_issuers_are_refused() {
    let clock = clock();
    let (key, pkcs8) = SigningKey::generate().unwrap();
    let s = TokenService::new("issuer-a".into(), key, vec![], Arc::new(clock.clone()));
    let t = s
        .issue_for_tenant(
            "user:u",
            300,
            TenantClaims {
                tid: "t-id".into(),
                tenant: "acme".into(),
                sid: "s-1".into(),
                perms: vec!["records:read".into()],
                app: None,
            },
        )
        .access_token;
    let c = s
        .verify_any(&t, &[OPERATOR_AUDIENCE, TENANT_AUDIENCE])
        .unwrap();
    assert_eq!(c.aud, TENANT_AUDIENCE);
    assert_eq!(
        (c.tid.as_deref(), c.tenant.as_deref(), c.sid.as_deref()),
        (Some("t-id"), Some("acme"), Some("s-1"))
    );
    assert_eq!(c.perms, Some(vec!["records:read".to_owned()]));
    // A user token is not an operator token.
    assert_eq!(
        s.verify(&t, OPERATOR_AUDIENCE),
        Err(TokenError::WrongAudience)
    );
    // The same key under another issuer name: refused.
    let b = TokenService::new(
        "issuer-b".into(),
        SigningKey::from_pkcs8(&pkcs8).unwrap(),
        vec![],
        Arc::new(clock),
    );
    assert_eq!(
        b.verify(&t, TENANT_AUDIENCE),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn a_remembered_token_is_still_checked_for_key_audience_and_time() {
    let clock = clock();
    let s = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900).access_token;
    // Verified once: remembered.
    assert_eq!(s.verify(&t, OPERATOR_AUDIENCE).unwrap().sub, "operator:x");
    assert_eq!(s.remembered_len(), 1);
    // Again from memory, the same claims.
    assert_eq!(s.verify(&t, OPERATOR_AUDIENCE).unwrap().sub, "operator:x");
    // Another audience is refused even from memory.
    assert_eq!(
        s.verify(&t, "strongroom:tenant"),
        Err(TokenError::WrongAudience)
    );
    // A copy with a changed signature is not the remembered token, and is not
    // remembered (a character in the middle of the signature: still valid base64).
    let at = t.rfind('.').unwrap() + 20;
    let mut tampered = t.clone();
    let swapped = if &t[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, swapped);
    assert_eq!(
        s.verify(&tampered, OPERATOR_AUDIENCE),
        Err(TokenError::BadSignature)
    );
    assert_eq!(s.remembered_len(), 1);
    // A token refused on its first check is not remembered either.
    let expired_token = s.issue(OPERATOR_AUDIENCE, "operator:z", 1).access_token;
    clock.advance(Duration::seconds(1 + LEEWAY_SECS + 1));
    assert_eq!(
        s.verify(&expired_token, OPERATOR_AUDIENCE),
        Err(TokenError::Expired)
    );
    assert_eq!(s.remembered_len(), 1);
    clock.advance(Duration::seconds(-(1 + LEEWAY_SECS + 1)));
    // A token verified for either audience is still refused for the other one alone.
    let u = s.issue("strongroom:tenant", "user:y", 900).access_token;
    s.verify_any(&u, &[OPERATOR_AUDIENCE, "strongroom:tenant"])
        .unwrap();
    assert_eq!(s.remembered_len(), 2);
    assert_eq!(
        s.verify(&u, OPERATOR_AUDIENCE),
        Err(TokenError::WrongAudience)
    );
    // Not yet valid, from memory too.
    clock.advance(Duration::seconds(-(LEEWAY_SECS + 5)));
    assert_eq!(
        s.verify(&t, OPERATOR_AUDIENCE),
        Err(TokenError::NotYetValid)
    );
    clock.advance(Duration::seconds(LEEWAY_SECS + 5));
    // Expiry is checked on every use.
    clock.advance(Duration::seconds(900 + LEEWAY_SECS + 1));
    assert_eq!(s.verify(&t, OPERATOR_AUDIENCE), Err(TokenError::Expired));
}

#[test]
fn revoking_the_key_stops_a_remembered_token_at_once() {
    let clock = clock();
    let s = service(&clock);
    let t = s.issue(OPERATOR_AUDIENCE, "operator:x", 900).access_token;
    s.verify(&t, OPERATOR_AUDIENCE).unwrap();
    assert_eq!(s.remembered_len(), 1);
    s.keep_only(&std::collections::HashSet::new());
    assert_eq!(s.verify(&t, OPERATOR_AUDIENCE), Err(TokenError::UnknownKey));
    assert_eq!(
        s.remembered_len(),
        0,
        "the entry of a revoked key is dropped"
    );
}

#[test]
fn the_memory_of_verified_tokens_is_bounded() {
    let clock = clock();
    let s = service(&clock);
    for i in 0..(MAX_REMEMBERED_TOKENS + 10) {
        let t = s.issue(OPERATOR_AUDIENCE, &format!("operator:{i}"), 900);
        s.verify(&t.access_token, OPERATOR_AUDIENCE).unwrap();
        assert!(s.remembered_len() <= MAX_REMEMBERED_TOKENS);
    }
    // Full of live tokens, it was emptied once and refilled by the last ten.
    assert_eq!(s.remembered_len(), 10);
}

#[test]
fn when_full_expired_tokens_are_forgotten_first() {
    let clock = clock();
    let s = service(&clock);
    for i in 0..(MAX_REMEMBERED_TOKENS - 1) {
        let t = s.issue(OPERATOR_AUDIENCE, &format!("operator:{i}"), 60);
        s.verify(&t.access_token, OPERATOR_AUDIENCE).unwrap();
    }
    clock.advance(Duration::seconds(120 + LEEWAY_SECS));
    let live = s
        .issue(OPERATOR_AUDIENCE, "operator:live", 900)
        .access_token;
    s.verify(&live, OPERATOR_AUDIENCE).unwrap();
    assert_eq!(s.remembered_len(), MAX_REMEMBERED_TOKENS);
    let next = s
        .issue(OPERATOR_AUDIENCE, "operator:next", 900)
        .access_token;
    s.verify(&next, OPERATOR_AUDIENCE).unwrap();
    // The expired ones went; the two live ones stayed.
    assert_eq!(s.remembered_len(), 2);
}

#[test]
fn revoking_an_older_key_stops_only_its_remembered_tokens() {
    let clock = clock();
    let (old_key, old_pkcs8) = SigningKey::generate().unwrap();
    let (new_key, _) = SigningKey::generate().unwrap();
    let new_kid = new_key.kid().to_owned();
    let before = TokenService::new(
        "strongroom-test".into(),
        SigningKey::from_pkcs8(&old_pkcs8).unwrap(),
        vec![],
        Arc::new(clock.clone()),
    );
    let old_token = before
        .issue(OPERATOR_AUDIENCE, "operator:old", 900)
        .access_token;
    let s = TokenService::new(
        "strongroom-test".into(),
        new_key,
        vec![old_key],
        Arc::new(clock.clone()),
    );
    let new_token = s.issue(OPERATOR_AUDIENCE, "operator:new", 900).access_token;
    s.verify(&old_token, OPERATOR_AUDIENCE).unwrap();
    s.verify(&new_token, OPERATOR_AUDIENCE).unwrap();
    assert_eq!(s.remembered_len(), 2);
    s.keep_only(&std::iter::once(new_kid).collect());
    assert_eq!(
        s.verify(&old_token, OPERATOR_AUDIENCE),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        s.verify(&new_token, OPERATOR_AUDIENCE).unwrap().sub,
        "operator:new"
    );
}

#[test]
fn a_remembered_tenant_token_returns_exactly_the_claims_it_was_verified_with() {
    let clock = clock();
    let s = service(&clock);
    let claims = |tid: &str, tenant: &str, sid: &str| TenantClaims {
        tid: tid.into(),
        tenant: tenant.into(),
        sid: sid.into(),
        perms: vec!["records:read".into()],
        app: None,
    };
    let mine = s
        .issue_for_tenant("user:a", 900, claims("t-1", "acme", "sid-a"))
        .access_token;
    let theirs = s
        .issue_for_tenant("user:b", 900, claims("t-2", "other", "sid-b"))
        .access_token;
    let first_mine = s.verify(&mine, TENANT_AUDIENCE).unwrap();
    let first_theirs = s.verify(&theirs, TENANT_AUDIENCE).unwrap();
    assert_eq!(s.remembered_len(), 2);
    assert_eq!(s.verify(&mine, TENANT_AUDIENCE).unwrap(), first_mine);
    assert_eq!(s.verify(&theirs, TENANT_AUDIENCE).unwrap(), first_theirs);
    assert_eq!(first_mine.tid.as_deref(), Some("t-1"));
    assert_eq!(first_theirs.sid.as_deref(), Some("sid-b"));
}
