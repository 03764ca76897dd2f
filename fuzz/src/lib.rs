//! The fuzz harnesses, one public function per target in `fuzz_targets/` (each target is
//! a one-line shim): the setup a target needs (a fixed signing key, an in-process router,
//! a scratch directory) and the properties it checks. Every function feeds the fuzzer's
//! bytes to public entry points of `strongroom-core` and `strongroom-http`; none parses
//! anything itself beyond splitting the input into the pieces those entry points take.
//!
//! A panic anywhere below is a finding (a server must refuse bad input, not crash on it);
//! the `assert!`s state properties the code promises, so breaking one is a finding too.

use std::sync::{Arc, LazyLock};

use aws_lc_rs::signature::Ed25519KeyPair;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use strongroom_core::audit::merkle::leaf_hash;
use strongroom_core::audit::note::{Checkpoint, NoteSigner, Verifier};
use strongroom_core::audit::review;
use strongroom_core::audit::tiles::{TileRef, push_entry, read_bundle};
use strongroom_core::audit::verify::{self, Source};
use strongroom_core::clock::SystemClock;
use strongroom_core::config::Config;
use strongroom_core::identity::Email;
use strongroom_core::identity::token::{
    OPERATOR_AUDIENCE, SigningKey, TENANT_AUDIENCE, TokenService,
};
use strongroom_core::secret::{SecretBytes, SecretString};
use strongroom_core::tenant::{DisplayName, RegionName, Slug};
use strongroom_http::extract::ApiJson;
use tower::ServiceExt;

/// Seed of the fuzz-only Ed25519 keys: fixed, so seed inputs signed with it stay valid.
const SEED: [u8; 32] = *b"strongroom-fuzz-only-key-seed-01";

/// Splits `data` at the first `sep`; all of it is the head when `sep` is absent.
fn split_at<'a>(data: &'a [u8], sep: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (&data[..i], &data[i + sep.len()..]),
        None => (data, &[]),
    }
}

// ---------------------------------------------------------------------------------------
// jwt

struct Jwt {
    service: TokenService,
    pair: Ed25519KeyPair,
    header: String,
}

static JWT: LazyLock<Jwt> = LazyLock::new(|| {
    let pair = Ed25519KeyPair::from_seed_unchecked(&SEED).expect("fixed seed");
    let pkcs8 = pair.to_pkcs8().expect("PKCS#8 of the fixed key");
    let key =
        SigningKey::from_pkcs8(&SecretBytes::new(pkcs8.as_ref().to_vec())).expect("fixed key");
    let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, key.kid());
    let service = TokenService::new(
        "https://fuzz.strongroom.example".to_owned(),
        key,
        Vec::new(),
        Arc::new(SystemClock),
    );
    Jwt {
        service,
        pair,
        header,
    }
});

/// First byte even: the rest is a presented token, verified as the HTTP edge does.
/// First byte odd: the rest is a claims set, signed with the service's own key, so the
/// fuzzer reaches claim decoding and the issuer, audience and time checks, which sit
/// behind the signature.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let auds = [OPERATOR_AUDIENCE, TENANT_AUDIENCE];
    let jwt = &*JWT;
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            let _ = jwt.service.verify_any(token, &auds);
        }
    } else {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&jwt.header),
            URL_SAFE_NO_PAD.encode(rest)
        );
        let sig = jwt.pair.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        if let Ok(claims) = jwt.service.verify_any(&token, &auds) {
            assert!(
                auds.contains(&claims.aud.as_str()),
                "audience {}",
                claims.aud
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// config

/// Separates the config file from the environment in a `config` input.
const ENV_SEPARATOR: &[u8] = b"\n#--env--\n";

static CONFIG_DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("temp dir"));

/// The input is a config file, then optionally [`ENV_SEPARATOR`] and `NAME=value` lines
/// standing for the environment: both layers `Config::load` reads from outside.
pub fn config(data: &[u8]) {
    let (file, env) = split_at(data, ENV_SEPARATOR);
    let path = CONFIG_DIR.path().join("strongroom.toml");
    std::fs::write(&path, file).expect("write the config file");
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = Config::load(Some(&path), env, Vec::new());
}

// ---------------------------------------------------------------------------------------
// json_body

/// Shaped like the API's `POST /v1/tenants` body (those DTOs are private to the crate).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CreateTenant {
    slug: Slug,
    display_name: DisplayName,
    region: RegionName,
    #[serde(default)]
    key_provider: Option<String>,
}

/// Shaped like the API's `POST /v1/tenants/{t}/users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CreateUser {
    email: Email,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// The smallest body limit the configuration allows (`limits.max_body_bytes`), so the
/// fuzzer's inputs (4 KiB by default) cross it.
const BODY_LIMIT: usize = 1024;

static HTTP: LazyLock<(tokio::runtime::Runtime, Router)> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let app = Router::new()
        .route(
            "/tenants",
            post(|ApiJson(_): ApiJson<CreateTenant>| async { StatusCode::CREATED }),
        )
        .route(
            "/users",
            post(|ApiJson(_): ApiJson<CreateUser>| async { StatusCode::CREATED }),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    (rt, app)
});

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("Application/Merge-Patch+JSON"),
    Some("text/plain"),
    Some("application/jsonx"),
    None,
];

/// First byte: which route and which content type; the rest is the request body, sent
/// through `ApiJson` behind the body limit. Every refusal must be a problem+json 4xx.
pub fn json_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (rt, app) = &*HTTP;
    let uri = if pick % 2 == 0 { "/tenants" } else { "/users" };
    let mut req = Request::post(uri);
    if let Some(ct) = CONTENT_TYPES[usize::from(pick / 2) % CONTENT_TYPES.len()] {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let req = req.body(Body::from(body.to_vec())).expect("request");
    let res = rt.block_on(app.clone().oneshot(req)).expect("infallible");
    let status = res.status();
    if status != StatusCode::CREATED {
        assert!(
            [400, 413, 415, 422].contains(&status.as_u16()),
            "unexpected status {status}"
        );
        assert_eq!(
            res.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(strongroom_http::problem::CONTENT_TYPE.as_bytes()),
            "a refusal that is not problem+json"
        );
    }
}

// ---------------------------------------------------------------------------------------
// audit_verify

/// Separates the files of an `audit_verify` input.
const FILE_SEPARATOR: &[u8] = b"\n--8<--\n";
/// Name of the fuzz log's key, which is also its checkpoint origin.
const LOG_NAME: &str = "fuzz.strongroom.example/log";

static LOG_SIGNER: LazyLock<(NoteSigner, String)> = LazyLock::new(|| {
    let signer =
        NoteSigner::from_seed(LOG_NAME, &SecretBytes::new(SEED.to_vec())).expect("fixed seed");
    let vkey = signer.vkey();
    (signer, vkey)
});

/// An export directory made of the fuzzer's bytes: `checkpoint` answers the first file
/// (as checkpoint text, signed here by the log key so the verifier gets past the
/// signature), every other path the next file, in the order the verifier asks.
struct Export<'a> {
    files: Vec<&'a [u8]>,
    next: usize,
}

impl Source for Export<'_> {
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        if path == "checkpoint" {
            let text = std::str::from_utf8(self.files.first()?).ok()?;
            return LOG_SIGNER.0.sign(text).ok().map(String::into_bytes);
        }
        self.next += 1;
        self.files.get(self.next).map(|f| f.to_vec())
    }
}

/// The input is checkpoint text, then the files the verifier reads, each after
/// [`FILE_SEPARATOR`]: what `strongroom audit verify` reads from an untrusted copy of a
/// log. Without a previous state, and then with the state a good run established.
pub fn audit_verify(data: &[u8]) {
    let mut files = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (file, tail) = split_at(rest, FILE_SEPARATOR);
        files.push(file);
        rest = tail;
    }
    let vkey = &LOG_SIGNER.1;
    let mut src = Export {
        files: files.clone(),
        next: 0,
    };
    if let verify::Verdict::Ok(v) = verify::verify(&mut src, vkey, None) {
        let mut again = Export { files, next: 0 };
        let verdict = verify::verify(&mut again, vkey, Some(&v));
        assert_eq!(verdict, verify::Verdict::Ok(v), "same log, same verdict");
    }
}

// ---------------------------------------------------------------------------------------
// tile_path, signed_note, audit_entry: no setup, only the properties checked

/// The input as a tile path (`TileRef::parse`, which takes canonical spellings only) and
/// as an entry bundle (`read_bundle`, which must re-encode byte for byte).
pub fn tile_path(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data)
        && let Ok(tile) = TileRef::parse(path)
    {
        assert_eq!(tile.path(), path, "parsed a path that is not canonical");
    }
    if let Ok(entries) = read_bundle(data) {
        let mut again = Vec::new();
        for e in entries {
            push_entry(&mut again, e).expect("an entry read back fits a bundle");
        }
        assert_eq!(again, data, "a bundle re-encodes byte for byte");
    }
}

/// Line 1 is a verifier key (`Verifier::parse`), the rest a signed note opened with it
/// (`Verifier::open`) and parsed as a checkpoint (`Checkpoint::parse`). The rest is also
/// parsed as checkpoint text directly, since random notes do not verify.
pub fn signed_note(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (vkey, note) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(verifier) = Verifier::parse(vkey)
        && let Ok(body) = verifier.open(note)
    {
        let _ = Checkpoint::parse(body);
    }
    if let Ok(cp) = Checkpoint::parse(note) {
        assert_eq!(Checkpoint::parse(&cp.text()), Ok(cp), "text() parses back");
    }
}

/// The input as a stored audit entry, decoded for review (`audit::review::decode`) and
/// rendered as CSV (`to_csv`) and JSON, as the audit query and export endpoints do.
pub fn audit_entry(data: &[u8]) {
    let stored = strongroom_core::store::StoredEntry {
        seq: 0,
        entry: data.to_vec(),
        leaf_hash: leaf_hash(data),
    };
    if let Ok((entry, _sealed)) = review::decode(&stored) {
        let csv = review::to_csv(std::slice::from_ref(&entry));
        assert!(csv.ends_with("\r\n"), "CSV rows end with CRLF");
        serde_json::to_vec(&entry).expect("a decoded entry serialises");
    }
}

/// The input as record content (`records::content::parse`: no duplicate keys, bounded
/// size, depth, count and integers), then — if it parses — as a record-type definition
/// (meta-validation and compilation of its schema, no resolver, linear-time regexes),
/// then as content validated against a fixed schema and content-hashed. Whatever the
/// bytes, nothing panics, and accepted content hashes the same after a re-parse.
pub fn record_content(data: &[u8]) {
    use strongroom_core::records::content::{self, HashInput};
    use strongroom_core::records::definition::Definition;
    let Ok(map) = content::parse(data) else {
        return;
    };
    let input = HashInput {
        record: "r",
        version: 1,
        type_name: "t",
        type_version: 1,
        content: &map,
        attachments: &[],
    };
    let hash = content::content_hash(&input);
    let again = content::parse(&serde_json::to_vec(&map).expect("serialises")).expect("re-parses");
    assert_eq!(
        content::content_hash(&HashInput {
            content: &again,
            ..input
        }),
        hash,
        "the hash survives a round trip"
    );
    if let Ok(def) = serde_json::from_value::<Definition>(serde_json::Value::Object(map.clone()))
        && let Ok(compiled) = def.validate()
    {
        let _ = compiled.violations(&serde_json::Value::Object(map));
    }
}

/// The input as a SAML response (`screen_response`, over its base64) and through the
/// screens and the tag scanner directly: no panic, and what passes holds no markup
/// declaration, no second assertion and no reference outside the document.
pub fn saml_screen(data: &[u8]) {
    use base64::Engine as _;
    use strongroom_core::identity::saml::{
        element_span, screen_response, screen_signatures, screen_xml, start_tags,
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let screened = screen_response(&b64);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(screened.is_err(), "a response that is not UTF-8 passed");
        return;
    };
    if let Ok(xml) = &screened {
        assert_eq!(xml, text);
        let assertions = start_tags(xml)
            .filter(|t| t.local == "Assertion" || t.local == "EncryptedAssertion")
            .count();
        assert!(assertions <= 1, "two assertions passed the screen");
    }
    let _ = screen_xml(text, "fuzz");
    let _ = screen_signatures(text, "fuzz");
    for tag in start_tags(text) {
        let _ = tag.attribute("URI");
        assert!(text[tag.at..].starts_with('<'));
    }
    if let Some((start, end)) = element_span(text, "EncryptedAssertion") {
        assert!(start < end && end <= text.len());
    }
}
