//! Authentication extractors: a handler that takes one cannot run unauthenticated.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use strongroom_core::access::Principal;

use crate::problem::{Problem, unauthenticated};
use crate::state::AppState;

/// An authenticated platform operator (from `Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct OperatorAuth(pub Principal);

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state.platform.authenticate_operator(token).await {
            Ok(p) => Ok(OperatorAuth(p)),
            Err(strongroom_core::platform::PlatformError::Unauthenticated) => {
                tracing::info!("operator token refused");
                Err(unauthenticated(
                    "The access token is invalid, expired, revoked, or its operator is disabled.",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An authenticated principal of any kind: an operator, or a tenant user whose session
/// is live and account active (checked against storage on every request, so revocation
/// and disabling take effect at once). What they may do is decided by the platform.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match state.platform.authenticate(token).await {
            Ok(p) => Ok(Auth(p)),
            Err(strongroom_core::platform::PlatformError::Unauthenticated) => {
                tracing::info!("access token refused");
                Err(unauthenticated(
                    "The access token is invalid, expired or revoked.",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The bearer token of a request, or a 401.
fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("Send an access token in the Authorization header."))?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("Malformed Authorization header."))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthenticated("Malformed Authorization header."))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated("Use the Bearer scheme."));
    }
    Ok(token.trim())
}
