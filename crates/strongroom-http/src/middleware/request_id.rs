//! Request ids: one per request, on the response, in every log line of the request,
//! and in every problem body. The request's origin (peer address, user agent) is set
//! here too, for the audit entries the request causes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use strongroom_core::audit::origin::{self, Origin};
use tracing::Instrument;

/// Header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Assigns the request id (keeping a well-formed one sent by a proxy), opens the
/// request span, and writes the one access-log line when the response is ready.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    // The path only: query strings may carry values that do not belong in logs.
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    // Everything this request causes to be audited is attributed to its origin.
    let origin = Origin::new(
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            origin::scope(origin, next.run(req).instrument(span.clone())),
        )
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "response"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// A client-supplied id is kept only if it is short and plain, so it cannot inject
/// into logs or headers.
fn is_acceptable(v: &str) -> bool {
    (8..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_kept() {
        assert!(is_acceptable("0190f3b2-aaaa-7bbb-8ccc-0123456789ab"));
        assert!(!is_acceptable("short"));
        assert!(!is_acceptable("has space in it"));
        assert!(!is_acceptable("newline\ninjection"));
        assert!(!is_acceptable(&"x".repeat(65)));
    }
}
