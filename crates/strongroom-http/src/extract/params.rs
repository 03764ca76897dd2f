//! Path and query extractors that answer problem+json.
//!
//! A path parameter that cannot parse (an upper-case slug, say) names nothing that can
//! exist, so it answers 404 exactly like a well-formed id that does not exist: no
//! endpoint lets a caller tell "malformed" from "absent" from "someone else's".
//! A bad query parameter is the caller's mistake about a value: 422.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{self, Problem};

/// Typed path parameters; unparseable ones answer 404 `not-found`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|_| Problem::new(&problem::NOT_FOUND, "No such resource."))
    }
}

/// Typed query parameters (which should `deny_unknown_fields`); bad ones answer 422.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| Problem::field("", format!("Invalid query string: {}", e.body_text())))
    }
}
