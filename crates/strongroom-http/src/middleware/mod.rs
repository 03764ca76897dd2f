//! Middleware applied to every response: request ids and the request span, security
//! headers, the request timeout, and the fallbacks for unknown routes and methods.

mod headers;
mod request_id;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::{self, Problem};

pub use headers::security_headers;
pub use request_id::{REQUEST_ID_HEADER, current_request_id, request_context};

/// Answers 503 `timeout` when a request outlives the configured limit.
///
/// Attachment uploads are exempt: a large file takes as long as the client's link
/// needs, and the connection's no-progress rule (`limits.idle_timeout_secs`) already
/// ends one that stalls.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let upload =
        req.method() == axum::http::Method::PUT && req.uri().path().contains("/attachments/");
    if upload {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            &problem::TIMEOUT,
            "The request took longer than the server allows.",
        )
        .into_response(),
    }
}

/// Fallback for paths no route matches.
pub async fn no_route() -> Problem {
    Problem::new(
        &problem::NO_ROUTE,
        "No endpoint has this path. See /openapi.json for the API.",
    )
}

/// Fallback for a known path with a method it does not support.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        &problem::METHOD_NOT_ALLOWED,
        "This endpoint does not support this method.",
    )
}

/// Turns a panic in a handler into a 500 problem instead of a dropped connection.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    Problem::internal("handler panicked").into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn slow_handlers_get_a_timeout_problem() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                timeout,
            ));
        let resp = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["content-type"], crate::problem::CONTENT_TYPE);
    }
}
