//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use strongroom_core::platform::Platform;

/// Shared state of the router: the platform facade.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The platform's services.
    pub platform: Arc<Platform>,
}

/// The HTTP-level limits and policies, from configuration.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Longest a request may take to produce its response.
    pub request_timeout: Duration,
    /// `Strict-Transport-Security` max-age in seconds.
    pub hsts_max_age_secs: u64,
}
