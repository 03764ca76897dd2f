//! Operator sign-in.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use strongroom_core::identity::Email;
use strongroom_core::identity::token::IssuedToken;
use strongroom_core::secret::SecretString;
use utoipa::ToSchema;

use crate::extract::{ApiJson, ClientAddr};
use crate::problem::Problem;
use crate::state::AppState;

/// Operator credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorLogin {
    /// The operator's e-mail address.
    email: Email,
    /// The operator's password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// A current TOTP code, once the operator has enrolled one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    totp: Option<strongroom_core::identity::totp::OneTimeCode>,
}

/// Signs an operator in and returns a short-lived access token.
#[utoipa::path(
    post, path = "/v1/operator/sessions", tag = "operators",
    request_body = OperatorLogin,
    responses(
        (status = 201, description = "Signed in", body = IssuedToken),
        (status = 401, description = "Wrong e-mail or password"),
        (status = 403, description = "The client's network address is unknown"),
        (status = 429, description = "Too many failed attempts from this address; see Retry-After"),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<OperatorLogin>,
) -> Result<(StatusCode, Json<IssuedToken>), Problem> {
    let token = state
        .platform
        .operator_login(&body.email, &body.password, body.totp.as_ref(), client)
        .await?;
    Ok((StatusCode::CREATED, Json(token)))
}
