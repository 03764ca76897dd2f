//! Structured logging: JSON lines when not on a terminal (or when asked), pretty
//! otherwise. Request bodies, headers and query strings are never logged, so secrets
//! sent by clients cannot reach the log.

use std::io::IsTerminal;

use strongroom_core::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies when the configured filter
/// does not parse (the CLI's administrative commands pass `warn`).
pub(crate) fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        tracing::debug!("a global subscriber was already installed");
    }
}
