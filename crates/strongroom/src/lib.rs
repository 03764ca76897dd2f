//! Strongroom, the binary: wires configuration, the data directory, storage, keys, the
//! platform and the HTTP edge together, and serves them over TLS.
//!
//! [`serve`] is the whole server as a function of its configuration; the CLI in
//! [`cli`] calls it, and so could an embedding program.

pub mod cli;
mod database;
pub mod datadir;
mod idp;
mod logging;
mod saml;
mod server;
pub mod tls;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strongroom_core::clock::SystemClock;
use strongroom_core::config::Config;
use strongroom_core::platform::Platform;
use strongroom_http::{AppState, HttpSettings};

/// Runs the server until SIGTERM or SIGINT, then drains in-flight requests.
///
/// On an empty data directory this first initialises it: database, root key file
/// (mode 0600), self-signed certificate. A second `serve` on a directory in use fails.
pub async fn serve(config: Config, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = datadir::DataDir::new(&config.data_dir)?;
    let _lock = dir.lock_for_serve()?;
    let opened = dir.open(&config).await?;
    let report = opened.report.clone();
    let platform = platform(&config, opened).await?;
    tokio::spawn(reencrypt_in_background(
        platform.clone(),
        config.keys.reencrypt_per_sec,
    ));
    tokio::spawn(reload_signing_keys_in_background(
        platform.clone(),
        Duration::from_secs(config.tokens.reload_secs),
    ));
    tokio::spawn(expire_cached_keys_in_background(
        platform.clone(),
        Duration::from_secs(config.keys.cache_ttl_secs.min(10)),
    ));
    tokio::spawn(integrate_audit_in_background(
        platform.clone(),
        Duration::from_millis(config.audit.checkpoint_interval_ms),
    ));
    let app = router(&config, platform);
    let tls = tls::server_config(&config, &dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    cli::banner(out, addr, &config, &report, &tls.info)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");
    server::run(
        listener,
        tls.acceptor,
        app,
        &config.limits,
        server::shutdown_signal(),
    )
    .await
}

/// The complete HTTP application over an opened data directory — what `serve` serves,
/// and what in-process tests drive with `oneshot`.
pub async fn app(config: &Config, opened: datadir::Opened) -> anyhow::Result<axum::Router> {
    Ok(router(config, platform(config, opened).await?))
}

/// The platform over an opened data directory.
pub async fn platform(config: &Config, opened: datadir::Opened) -> anyhow::Result<Arc<Platform>> {
    let mut platform = Platform::open(
        opened.store,
        opened.blobs,
        opened.providers,
        Arc::new(SystemClock),
        config,
    )
    .await
    .context("starting the platform")?;
    if config.sso.allow_http_loopback {
        tracing::warn!(
            "sso.allow_http_loopback is on: tenants' identity providers may be plain-http services on this machine (for tests only)"
        );
    }
    platform.set_idp_transport(Arc::new(
        idp::ReqwestIdp::new(config.sso.allow_http_loopback)
            .context("the HTTP client for identity providers")?,
    ));
    platform.set_saml_engine(Arc::new(saml::XmlSecEngine));
    Ok(Arc::new(platform))
}

/// The HTTP application over a platform.
pub fn router(config: &Config, platform: Arc<Platform>) -> axum::Router {
    let settings = HttpSettings {
        max_body_bytes: config.limits.max_body_bytes,
        request_timeout: Duration::from_secs(config.limits.request_timeout_secs),
        hsts_max_age_secs: config.tls.hsts_max_age_secs,
    };
    strongroom_http::router(AppState { platform }, &settings)
}

/// Moves ciphertexts sealed under older data keys to each tenant's current key, at
/// most `per_sec` objects a second across all tenants so rotation never competes with
/// users for the disk. Resumable by construction: the work left is whatever is still
/// under an older key. Idle deployments are checked every ten seconds (a rotation done
/// by the CLI in another process is picked up that way).
async fn reencrypt_in_background(platform: Arc<Platform>, per_sec: u32) {
    let mut idle = Duration::from_secs(2);
    loop {
        tokio::time::sleep(idle).await;
        // One node re-encrypts (the same leader as the integrator's), so the rate
        // limit holds for the deployment, not per node.
        if !platform.leads_background_work().await.unwrap_or(false) {
            idle = Duration::from_secs(10);
            continue;
        }
        match platform.reencrypt_round(per_sec).await {
            Ok((moved, remaining)) => {
                if moved > 0 {
                    tracing::info!(
                        moved,
                        remaining,
                        "re-encrypted objects under the current data keys"
                    );
                }
                idle = if remaining > 0 {
                    Duration::from_secs(1)
                } else {
                    Duration::from_secs(10)
                };
            }
            Err(e) => {
                tracing::warn!(error = %strongroom_core::platform::chain(&e), "re-encryption round failed; retrying in a minute");
                idle = Duration::from_secs(60);
            }
        }
    }
}

/// Folds new audit entries into every tenant's Merkle tree and signs a checkpoint, once
/// per `interval`: a published checkpoint is never older than that (plus one round).
/// Entries written by the CLI in another process are picked up the same way.
async fn integrate_audit_in_background(platform: Arc<Platform>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut announced = None;
    loop {
        ticker.tick().await;
        match platform.leads_background_work().await {
            Ok(now) if announced != Some(now) => {
                leading = now;
                announced = Some(now);
                if now {
                    tracing::info!("this node now signs audit checkpoints");
                } else {
                    tracing::info!("another node signs audit checkpoints; standing by");
                }
            }
            Ok(_) => {}
            Err(e) => {
                leading = false;
                announced = None;
                tracing::warn!(error = %strongroom_core::platform::chain(&e), "cannot tell whether this node leads; not integrating this round");
            }
        }
        if !leading {
            continue;
        }
        match platform.integrate_audit_round().await {
            Ok(n) if n > 0 => tracing::debug!(entries = n, "audit entries integrated"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %strongroom_core::platform::chain(&e), "audit integration round failed; retrying");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

/// Wipes cached keys once their TTL has passed, checked every `every` (at most ten
/// seconds, and no longer than the TTL), so a key is held at most TTL + `every`.
async fn expire_cached_keys_in_background(platform: Arc<Platform>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let dropped = platform.drop_expired_keys();
        if dropped > 0 {
            tracing::debug!(dropped, "expired keys dropped from the cache");
        }
    }
}

/// Picks up signing-key rotations made by the CLI (or another server on the same
/// store): the newest key signs from then on, every stored key still verifies.
async fn reload_signing_keys_in_background(platform: Arc<Platform>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the keys were loaded at start
    loop {
        ticker.tick().await;
        if let Err(e) = platform.reload_signing_keys().await {
            tracing::warn!(error = %strongroom_core::platform::chain(&e), "reloading signing keys failed; keeping the current ones");
        }
    }
}
