//! The API's description of itself: the OpenAPI document and the token-signing keys.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use strongroom_core::identity::token::Jwks;

use crate::openapi::Document;
use crate::state::AppState;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json(Extension(doc): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}

/// The public keys that verify this deployment's access tokens (RFC 7517 JWK Set).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "JWK Set", body = Jwks)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Json<Jwks> {
    Json(state.platform.jwks())
}
