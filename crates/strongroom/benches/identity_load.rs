//! Sign-in and token-verification costs, as a load generator.
//!
//! * hash baseline — one argon2id verification at the configured cost (OWASP minimum:
//!   19 MiB, 2 passes), one at a time: the floor of a sign-in's latency; the pool's
//!   ceiling is workers ÷ that time.
//! * login burst — 1,000 sign-ins started at once through the platform (tenant lookup,
//!   user lookup, argon2id on the bounded pool, session + audit entry committed,
//!   token signed): logins/s, latency percentiles, how many were refused as "busy"
//!   (the pool's queue bound), and the process's peak memory growth.
//! * token verification — EdDSA signature check alone (aws-lc-rs verify of a JWT-sized
//!   message: the baseline), JWT verification of an operator token, and the full
//!   per-request `authenticate` of a user token (JWT + session, account and grants
//!   read from SQLite).
//!
//! `cargo bench -p strongroom --bench identity_load`; prints `identity-load:` lines.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom_core::access::rbac::Role;
use strongroom_core::access::{DataDirProof, Principal};
use strongroom_core::config::Config;
use strongroom_core::identity::Email;
use strongroom_core::identity::password::PasswordHasher;
use strongroom_core::platform::{Platform, SecondFactor};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug};

const PASSWORD: &str = "correct horse battery staple 42";

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn setup(dir: &std::path::Path) -> (Config, Arc<Platform>) {
    let flags = vec![(
        "data_dir",
        toml::Value::String(dir.join("data").display().to_string()),
    )];
    let config = Config::load(None, Vec::<(String, String)>::new(), flags).unwrap();
    let opened = strongroom::datadir::DataDir::new(&config.data_dir)
        .unwrap()
        .open(&config)
        .await
        .unwrap();
    let p = strongroom::platform(&config, opened).await.unwrap();
    (config, p)
}

/// A distinct client address per `i` (10.0.0.0/8).
fn client(i: u32) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 | i))
}

#[allow(clippy::too_many_lines)] // one linear script of measurements
fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let (config, p) = setup(dir.path()).await;
        let me = DataDirProof::check(&config.data_dir).unwrap().local_admin();
        let slug = Slug::parse("bench").unwrap();
        p.create_tenant(
            &me,
            NewTenant {
                slug: slug.clone(),
                display_name: DisplayName::parse("Bench").unwrap(),
                region: RegionName::parse("local").unwrap(),
                key_provider: None,
            },
        )
        .await
        .unwrap();
        let email = Email::parse("admin@bench.example").unwrap();
        let password = SecretString::new(PASSWORD.into());
        p.create_user(
            &me,
            &slug,
            email.clone(),
            Some("Bench Admin"),
            strongroom_core::platform::Credential::Password(password.clone()),
            vec![Role::Admin],
        )
        .await
        .unwrap();

        // Baseline: argon2id verifications one at a time.
        let hasher = PasswordHasher::new(&config.passwords).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        let n = 20;
        let t = Instant::now();
        for _ in 0..n {
            assert!(hasher.verify(&password, &hash).await.unwrap());
        }
        let one = t.elapsed().as_secs_f64() / f64::from(n);
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        println!("identity-load: hash {:.2} {workers}", one * 1000.0);

        // Burst of 1,000 sign-ins.
        let rss_before = kib("VmRSS:");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..1000u32 {
            let (p, slug, email, password) =
                (p.clone(), slug.clone(), email.clone(), password.clone());
            // From many addresses: one address may have only a few sign-ins in flight.
            let client = client(i);
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = p
                    .user_login(&slug, &email, &password, &SecondFactor::default(), client)
                    .await;
                (r.is_ok(), t.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut ok = Vec::new();
        let mut refused = 0;
        for t in tasks {
            let (success, ms) = t.await.unwrap();
            if success {
                ok.push(ms);
            } else {
                refused += 1;
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let peak = kib("VmHWM:");
        ok.sort_by(f64::total_cmp);
        println!(
            "identity-load: burst {} {refused} {:.1} {:.0} {:.0} {:.0} {} {}",
            ok.len(),
            ok.len() as f64 / wall,
            pct(&ok, 0.5),
            pct(&ok, 0.99),
            ok.last().copied().unwrap_or(0.0),
            rss_before,
            peak
        );

        // Sustained: as many sign-ins as the pool takes, 2 per worker in flight.
        let started = Instant::now();
        let mut done = 0u32;
        while started.elapsed() < Duration::from_secs(5) {
            let batch: Vec<_> = (0..workers * 2)
                .map(|_| {
                    let (p, slug, email, password) =
                        (p.clone(), slug.clone(), email.clone(), password.clone());
                    tokio::spawn(async move {
                        p.user_login(
                            &slug,
                            &email,
                            &password,
                            &SecondFactor::default(),
                            client(0),
                        )
                        .await
                        .is_ok()
                    })
                })
                .collect();
            for b in batch {
                if b.await.unwrap() {
                    done += 1;
                }
            }
        }
        println!(
            "identity-load: sustained {:.1}",
            f64::from(done) / started.elapsed().as_secs_f64()
        );

        verification(&p, &me, &slug, &email, &password).await;
    });
}

/// Ed25519 verify alone (baseline), JWT verification of an operator token, and the full
/// per-request authentication of a user token.
async fn verification(
    p: &Arc<Platform>,
    me: &Principal,
    slug: &Slug,
    email: &Email,
    password: &SecretString,
) {
    use aws_lc_rs::signature::KeyPair;
    let tokens = p
        .user_login(slug, email, password, &SecondFactor::default(), client(1))
        .await
        .unwrap();
    p.create_operator(me, Email::parse("op@bench.example").unwrap(), password)
        .await
        .unwrap();
    let op = p
        .operator_login(
            &Email::parse("op@bench.example").unwrap(),
            password,
            None,
            client(1),
        )
        .await
        .unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let msg = tokens.access_token.as_bytes();
    let sig = pair.sign(msg);
    let public = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ED25519,
        pair.public_key().as_ref().to_vec(),
    );
    let iters = 5000;
    let t = Instant::now();
    for _ in 0..iters {
        public.verify(msg, sig.as_ref()).unwrap();
    }
    let raw = t.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    let t = Instant::now();
    for _ in 0..iters {
        p.authenticate_operator(&op.access_token).await.unwrap();
    }
    let jwt = t.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    let t = Instant::now();
    for _ in 0..iters {
        p.authenticate(&tokens.access_token).await.unwrap();
    }
    let full = t.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    println!("identity-load: verify {raw:.1} {jwt:.1} {full:.1}");
}
