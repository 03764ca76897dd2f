//! Key unwrap latency through a PKCS#11 token (SoftHSM2), with and without the key
//! cache.
//!
//! Needs a token: `bench/crypto.py` creates one and passes it in `SR_BENCH_P11_*`
//! variables (and `SOFTHSM2_CONF`); without them this bench does nothing.
//!
//! * `hsm/unwrap` — one `C_Decrypt` (AES-GCM) round trip to the token: what every
//!   key-encryption-key unwrap costs.
//! * `hsm/open-secret/cached` — reading and opening a tenant secret through the
//!   platform with the KEK and data key cached (SQLite read + AES-GCM open).
//! * `hsm/open-secret/uncached` — the same with the cache disabled: every read unwraps
//!   the KEK on the token and the data key in memory.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use strongroom_core::access::DataDirProof;
use strongroom_core::config::{Config, Pkcs11Config};
use strongroom_core::keys::{KeyProvider, Pkcs11Provider, aead};
use strongroom_core::objects::SecretName;
use strongroom_core::platform::Platform;
use strongroom_core::secret::SecretBytes;
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug};

struct Token {
    module: String,
    label: String,
    pin_file: String,
}

#[allow(clippy::disallowed_methods)] // a benchmark's inputs come from its runner
fn token() -> Option<Token> {
    Some(Token {
        module: std::env::var("SR_BENCH_P11_MODULE").ok()?,
        label: std::env::var("SR_BENCH_P11_TOKEN").ok()?,
        pin_file: std::env::var("SR_BENCH_P11_PIN_FILE").ok()?,
    })
}

async fn platform(dir: &std::path::Path, t: &Token, cache: bool) -> Arc<Platform> {
    let toml = format!(
        "[keys]\nroot = \"hsm\"\n[keys.pkcs11.hsm]\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\nkey_label = \"bench-root\"\n",
        t.module, t.label, t.pin_file
    );
    let file = dir.join("bench.toml");
    std::fs::write(&file, toml).unwrap();
    let flags = vec![(
        "data_dir",
        toml::Value::String(dir.join("data").display().to_string()),
    )];
    let mut config = Config::load(Some(&file), Vec::<(String, String)>::new(), flags).unwrap();
    if !cache {
        config.keys.cache_capacity = 0;
    }
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    strongroom::platform(&config, opened).await.unwrap()
}

fn hsm(c: &mut Criterion) {
    let Some(t) = token() else {
        eprintln!(
            "hsm bench skipped: SR_BENCH_P11_MODULE/TOKEN/PIN_FILE not set (run bench/crypto.py)"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let provider = Pkcs11Provider::open(
        "hsm",
        &Pkcs11Config {
            module: t.module.clone().into(),
            token_label: t.label.clone(),
            pin: None,
            pin_file: Some(t.pin_file.clone().into()),
            key_label: "bench-root".into(),
        },
    )
    .unwrap();
    let key = aead::generate_key().unwrap();
    let wrapped = rt.block_on(provider.wrap(&key, b"bench")).unwrap();
    let mut group = c.benchmark_group("hsm");
    group.bench_function("unwrap", |b| {
        b.iter(|| rt.block_on(provider.unwrap(&wrapped, b"bench")).unwrap());
    });

    let dir = tempfile::tempdir().unwrap();
    let cached = rt.block_on(platform(dir.path(), &t, true));
    let uncached = rt.block_on(platform(dir.path(), &t, false));
    let me = DataDirProof::check(&dir.path().join("data"))
        .unwrap()
        .local_admin();
    let slug = Slug::parse("bench").unwrap();
    rt.block_on(async {
        let new = NewTenant {
            slug: slug.clone(),
            display_name: DisplayName::parse("Bench").unwrap(),
            region: RegionName::parse("local").unwrap(),
            key_provider: None,
        };
        cached.create_tenant(&me, new).await.unwrap();
        let value = SecretBytes::new(b"client-secret".to_vec());
        cached
            .set_tenant_secret(&me, &slug, &SecretName::parse("sso").unwrap(), &value)
            .await
            .unwrap();
    });
    for (name, p) in [
        ("open-secret/cached", &cached),
        ("open-secret/uncached", &uncached),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(p.tenant_secret(&me, &slug, "sso")).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, hsm);
criterion_main!(benches);
