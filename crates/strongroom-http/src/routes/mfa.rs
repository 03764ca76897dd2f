//! Second factors and the tenant's MFA policy: TOTP enrolment by the user, removal by
//! an administrator, and which roles must have a factor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use strongroom_core::identity::totp::OneTimeCode;
use strongroom_core::platform::{Reauth, RecoveryCodes, TotpEnrolment};
use utoipa::ToSchema;

use super::users::UserPath;
use crate::extract::{ApiJson, ApiPath, Auth, ClientAddr, OptionalJson, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// The password again, when adding a factor next to an existing one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReauthBody {
    /// The caller's password (needed when the account already has a second factor).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<strongroom_core::secret::SecretString>,
}

impl ReauthBody {
    /// The re-authentication, if a password was given, from `client`.
    pub(crate) fn with(body: Option<Self>, client: std::net::IpAddr) -> Option<Reauth> {
        let password = body?.password?;
        Some(Reauth { password, client })
    }
}

/// Starts TOTP enrolment for the caller: a new secret as an `otpauth://` URI (show it as
/// a QR code). Sign-in does not require it until confirmed.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/totp", tag = "users",
    params(TenantPath),
    request_body(content = Option<ReauthBody>, description = "The password, required when a passkey is already registered"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Enrolment started", body = TotpEnrolment),
        (status = 429, description = "Too many wrong passwords in re-authentication; see Retry-After"),
    )
)]
pub(crate) async fn totp_enrol(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<TenantPath>,
    OptionalJson(body): OptionalJson<ReauthBody>,
) -> Result<(StatusCode, Json<TotpEnrolment>), Problem> {
    let reauth = ReauthBody::with(body, client);
    let e = state
        .platform
        .totp_enrol(&principal, &p.tenant, reauth.as_ref())
        .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// A code from the authenticator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpCode {
    /// The current 6-digit code.
    #[schema(value_type = String)]
    code: OneTimeCode,
}

/// Confirms TOTP enrolment with a current code; from now on sign-in requires a code.
/// Returns ten single-use recovery codes, shown this once.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/totp/confirm", tag = "users",
    params(TenantPath),
    request_body = TotpCode,
    security(("bearer" = [])),
    responses((status = 200, description = "Enrolled", body = RecoveryCodes))
)]
pub(crate) async fn totp_confirm(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<TotpCode>,
) -> Result<Json<RecoveryCodes>, Problem> {
    Ok(Json(
        state
            .platform
            .totp_confirm(&principal, &p.tenant, &body.code)
            .await?,
    ))
}

/// Why a user's second factor is being removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetReason {
    /// Recorded in the audit trail (required).
    reason: String,
}

/// Removes a user's second factors — TOTP and passkeys — (`users:manage`), e.g. for a
/// lost authenticator with no recovery codes left; the user signs in with the password
/// until they enrol again.
#[utoipa::path(
    delete, path = "/v1/t/{tenant}/users/{id}/totp", tag = "users",
    params(UserPath),
    request_body = ResetReason,
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"))
)]
pub(crate) async fn totp_reset(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<UserPath>,
    ApiJson(body): ApiJson<ResetReason>,
) -> Result<StatusCode, Problem> {
    state
        .platform
        .totp_reset(&principal, &p.tenant, p.id, body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A tenant's MFA policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaPolicyBody {
    /// Roles whose users must have a second factor; `["*"]` for everyone, `[]` for
    /// nobody. Users it covers who have none get sessions that can only enrol one.
    required_for: Vec<String>,
}

/// The tenant's MFA policy (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/policy/mfa", tag = "users",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The policy", body = MfaPolicyBody))
)]
pub(crate) async fn get_mfa_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<Json<MfaPolicyBody>, Problem> {
    let required_for = state.platform.mfa_policy(&principal, &p.tenant).await?;
    Ok(Json(MfaPolicyBody { required_for }))
}

/// Sets which roles must have a second factor (`users:manage`).
#[utoipa::path(
    put, path = "/v1/t/{tenant}/policy/mfa", tag = "users",
    params(TenantPath),
    request_body = MfaPolicyBody,
    security(("bearer" = [])),
    responses((status = 200, description = "The policy now", body = MfaPolicyBody))
)]
pub(crate) async fn put_mfa_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<MfaPolicyBody>,
) -> Result<Json<MfaPolicyBody>, Problem> {
    if body.required_for.len() > 8 {
        return Err(Problem::field("/required_for", "At most 8 entries."));
    }
    let required_for = state
        .platform
        .set_mfa_policy(&principal, &p.tenant, &body.required_for)
        .await?;
    Ok(Json(MfaPolicyBody { required_for }))
}
