//! Strongroom, the binary: wires configuration, the data directory, storage, keys, the
//! platform and the HTTP edge together, and serves them over TLS.
//!
//! [`serve`] is the whole server as a function of its configuration; the CLI in
//! [`cli`] calls it, and so could an embedding program.

pub mod cli;
pub mod datadir;
mod logging;
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
    let app = app(&config, opened).await?;
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
    let platform = Platform::open(opened.store, opened.keys, Arc::new(SystemClock), config)
        .await
        .context("starting the platform")?;
    let settings = HttpSettings {
        max_body_bytes: config.limits.max_body_bytes,
        request_timeout: Duration::from_secs(config.limits.request_timeout_secs),
        hsts_max_age_secs: config.tls.hsts_max_age_secs,
    };
    Ok(strongroom_http::router(
        AppState {
            platform: Arc::new(platform),
        },
        &settings,
    ))
}
