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

/// Refuses a request whose path or query carries an encoded NUL (`%00`) before any
/// handler sees it: no identifier, filter or name of this API may contain one,
/// PostgreSQL text cannot hold it (it would fail as a 500 deep in a query), and C
/// consumers of logs and exports would truncate at it. 422 `validation`, naming the
/// query as the culprit (or 404 for a path, which names nothing that can exist).
pub async fn refuse_nul(req: Request, next: Next) -> Response {
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if has_nul(req.uri().path()) {
        return Problem::new(&problem::NOT_FOUND, "No such resource.").into_response();
    }
    if req.uri().query().is_some_and(has_nul) {
        return Problem::field(
            "",
            "The query string may not contain the NUL character (%00).",
        )
        .into_response();
    }
    next.run(req).await
}

/// Answers 503 `timeout` when a request outlives the configured limit.
///
/// Attachment uploads are exempt from the total: a large file takes as long as the
/// client's link needs. Instead their body must keep moving: a gap of `limit` between
/// two pieces of it fails the upload (otherwise a client that sends headers and then
/// nothing would hold its connection, and its slot, forever).
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let upload =
        req.method() == axum::http::Method::PUT && req.uri().path().contains("/attachments/");
    if upload {
        let (parts, body) = req.into_parts();
        let guarded = stall_guard(body.into_data_stream(), limit);
        return next
            .run(Request::from_parts(
                parts,
                axum::body::Body::from_stream(guarded),
            ))
            .await;
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

/// `stream`, failing with an error if no piece arrives within `limit` of the last.
fn stall_guard(
    stream: axum::body::BodyDataStream,
    limit: Duration,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Send {
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(limit, futures_util::StreamExt::next(&mut stream)).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the upload stalled",
                ))),
                None,
            )),
        }
    })
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
