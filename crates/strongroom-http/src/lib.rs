//! Strongroom's HTTP edge — the only crate that knows HTTP.
//!
//! [`router`] is a plain function from state to an axum [`Router`]: tests drive it in
//! process with `oneshot`, the binary serves it over TLS. Every route is registered
//! through `utoipa-axum`, so the OpenAPI document at `/openapi.json` is generated from
//! the same declarations that route requests.

pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod problem;
mod routes;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use tower_http::catch_panic::CatchPanicLayer;

pub use state::{AppState, HttpSettings};

/// Builds the complete application: routes, fallbacks and every middleware.
///
/// Layers, outermost first: request id and span → security headers → panic catcher →
/// timeout → body limit → routes.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (api, doc) = openapi::split();
    let hsts = HeaderValue::from_str(&format!(
        "max-age={}; includeSubDomains",
        settings.hsts_max_age_secs
    ))
    .unwrap_or(HeaderValue::from_static(
        "max-age=63072000; includeSubDomains",
    ));
    api.layer(axum::Extension(openapi::Document::new(&doc)))
        .fallback(middleware::no_route)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(middleware::refuse_nul))
        .layer(axum::middleware::from_fn_with_state(
            settings.request_timeout,
            middleware::timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            hsts,
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn(middleware::request_context))
}
