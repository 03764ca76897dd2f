//! Tenant users' sessions: sign-in (password, second factor, passkey challenge),
//! refresh and sign-out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use strongroom_core::identity::Email;
use strongroom_core::identity::totp::OneTimeCode;
use strongroom_core::platform::{SecondFactor, UserTokens};
use strongroom_core::secret::SecretString;
use utoipa::ToSchema;

use super::passkeys::{PasskeyAnswer, PasskeyChallenge};
use crate::extract::{ApiJson, ApiPath, Auth, ClientAddr, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// A user's credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// E-mail address.
    email: Email,
    /// Password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// A current TOTP code, when the user has enrolled a second factor.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    totp: Option<OneTimeCode>,
    /// A recovery code instead of a TOTP code (each works once).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    recovery_code: Option<OneTimeCode>,
    /// A passkey assertion answering `POST /v1/t/{tenant}/sessions/passkey-challenge`.
    #[serde(default)]
    passkey: Option<PasskeyAnswer>,
}

/// Signs a user in: an access token (minutes) and a single-use refresh token.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/sessions", tag = "sessions",
    params(TenantPath),
    request_body = Login,
    responses(
        (status = 201, description = "Signed in", body = UserTokens),
        (status = 401, description = "Wrong tenant, e-mail or password, or a disabled user (indistinguishable)"),
        (status = 403, description = "The client's network address is unknown"),
        (status = 429, description = "Too many failed attempts from this address (or at this account's second factor); see Retry-After"),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<Login>,
) -> Result<(StatusCode, Json<UserTokens>), Problem> {
    let second = SecondFactor {
        totp: body.totp,
        recovery_code: body.recovery_code,
        passkey: body.passkey.map(|p| (p.challenge_id, p.credential)),
    };
    let tokens = state
        .platform
        .user_login(&p.tenant, &body.email, &body.password, &second, client)
        .await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refresh {
    /// The refresh token from the last sign-in or refresh.
    #[schema(value_type = String, format = Password)]
    refresh_token: SecretString,
}

/// Exchanges a refresh token for a new access token and a new refresh token. A refresh
/// token works once; presenting it again revokes the session.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/sessions/refresh", tag = "sessions",
    params(TenantPath),
    request_body = Refresh,
    responses(
        (status = 200, description = "New tokens", body = UserTokens),
        (status = 401, description = "Unknown, used, expired or revoked refresh token"),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Json<UserTokens>, Problem> {
    Ok(Json(
        state
            .platform
            .user_refresh(&p.tenant, &body.refresh_token)
            .await?,
    ))
}

/// Signs the caller out: their session and its refresh tokens stop working at once.
#[utoipa::path(
    delete, path = "/v1/t/{tenant}/sessions/current", tag = "sessions",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 204, description = "Signed out"))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<StatusCode, Problem> {
    state.platform.user_logout(&principal, &p.tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// E-mail and password, to get a passkey challenge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordOnly {
    /// E-mail address.
    email: Email,
    /// Password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Sign-in step one with a passkey: checks the password (like a sign-in: throttled,
/// failures audited) and returns a WebAuthn challenge for the user's passkeys; answer
/// it in `POST /v1/t/{tenant}/sessions` with `passkey`.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/sessions/passkey-challenge", tag = "sessions",
    params(TenantPath),
    request_body = PasswordOnly,
    responses(
        (status = 200, description = "The challenge", body = PasskeyChallenge),
        (status = 401, description = "Wrong tenant, e-mail or password (indistinguishable)"),
        (status = 403, description = "The client's network address is unknown"),
        (status = 429, description = "Too many failed attempts from this address; see Retry-After"),
    )
)]
pub(crate) async fn passkey_challenge(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<PasswordOnly>,
) -> Result<Json<PasskeyChallenge>, Problem> {
    let (challenge_id, options) = state
        .platform
        .passkey_sign_in_challenge(&p.tenant, &body.email, &body.password, client)
        .await?;
    Ok(Json(PasskeyChallenge {
        challenge_id,
        options,
    }))
}
