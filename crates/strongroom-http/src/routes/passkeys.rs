//! Passkeys (WebAuthn) as a second factor: registration by the signed-in user.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Auth, ClientAddr, OptionalJson, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// An authenticator's answer to a WebAuthn challenge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasskeyAnswer {
    /// The challenge id the server returned with the options.
    pub(crate) challenge_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get/create`, as JSON.
    #[schema(value_type = Object)]
    pub(crate) credential: serde_json::Value,
}

/// A WebAuthn challenge.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasskeyChallenge {
    /// Quote it when answering.
    pub(crate) challenge_id: String,
    /// Options for `navigator.credentials.create` / `.get` (WebAuthn JSON).
    #[schema(value_type = Object)]
    pub(crate) options: serde_json::Value,
}

/// Starts registering a passkey for the caller.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/passkeys", tag = "users",
    params(TenantPath),
    request_body(content = Option<super::mfa::ReauthBody>, description = "The password, required when a second factor already exists"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The registration challenge", body = PasskeyChallenge),
        (status = 429, description = "Too many wrong passwords in re-authentication; see Retry-After"),
    )
)]
pub(crate) async fn passkey_register_start(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<TenantPath>,
    OptionalJson(body): OptionalJson<super::mfa::ReauthBody>,
) -> Result<(StatusCode, Json<PasskeyChallenge>), Problem> {
    let reauth = super::mfa::ReauthBody::with(body, client);
    let (challenge_id, options) = state
        .platform
        .passkey_register_start(&principal, &p.tenant, reauth.as_ref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PasskeyChallenge {
            challenge_id,
            options,
        }),
    ))
}

/// Finishes registering a passkey; from now on sign-in requires a second factor.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/passkeys/finish", tag = "users",
    params(TenantPath),
    request_body = PasskeyAnswer,
    security(("bearer" = [])),
    responses((status = 204, description = "Registered"))
)]
pub(crate) async fn passkey_register_finish(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<PasskeyAnswer>,
) -> Result<StatusCode, Problem> {
    state
        .platform
        .passkey_register_finish(&principal, &p.tenant, &body.challenge_id, body.credential)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
