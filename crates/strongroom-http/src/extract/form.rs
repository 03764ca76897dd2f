//! A form body extractor (`application/x-www-form-urlencoded`, the SAML HTTP-POST
//! binding) whose every failure is problem+json.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::{self, Problem};

/// An `application/x-www-form-urlencoded` body parsed into `T` (a SAML POST binding):
/// wrong content type → 415, too large → 413, undecodable or wrong fields → 422.
#[derive(Debug)]
pub struct ApiForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiForm<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(ApiForm(v)),
            Err(e) if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => Err(Problem::new(
                &problem::UNSUPPORTED_MEDIA_TYPE,
                "Send the body as a form with `Content-Type: application/x-www-form-urlencoded`.",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Problem::new(
                &problem::PAYLOAD_TOO_LARGE,
                "The request body is larger than this server accepts.",
            )),
            Err(e) => Err(Problem::field(
                "",
                format!("Invalid form: {}", e.body_text()),
            )),
        }
    }
}
