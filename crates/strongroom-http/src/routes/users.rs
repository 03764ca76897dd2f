//! Tenant users and their sessions: sign-in, refresh, sign-out, and user management
//! (`users:manage`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use strongroom_core::access::rbac::Role;
use strongroom_core::identity::Email;
use strongroom_core::identity::user::{User, UserId, UserStatus};
use strongroom_core::platform::{
    Credential, Invitation, RecoveryCodes, SecondFactor, TotpEnrolment, UserPatch, UserTokens,
};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::problem::Problem;
use crate::state::AppState;

/// The `{tenant}` path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TenantPath {
    /// The tenant's slug.
    tenant: Slug,
}

/// The `{tenant}` and `{id}` path parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The user's id.
    id: UserId,
}

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
    totp: Option<String>,
    /// A recovery code instead of a TOTP code (each works once).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    recovery_code: Option<SecretString>,
    /// A passkey assertion answering `POST /v1/t/{tenant}/sessions/passkey-challenge`.
    #[serde(default)]
    passkey: Option<PasskeyAnswer>,
}

/// An authenticator's answer to a WebAuthn challenge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasskeyAnswer {
    /// The challenge id the server returned with the options.
    challenge_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get/create`, as JSON.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

/// A WebAuthn challenge.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasskeyChallenge {
    /// Quote it when answering.
    challenge_id: String,
    /// Options for `navigator.credentials.create` / `.get` (WebAuthn JSON).
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

/// Signs a user in: an access token (minutes) and a single-use refresh token.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/sessions", tag = "sessions",
    params(TenantPath),
    request_body = Login,
    responses(
        (status = 201, description = "Signed in", body = UserTokens),
        (status = 401, description = "Wrong tenant, e-mail or password, or a disabled user (indistinguishable)"),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<Login>,
) -> Result<(StatusCode, Json<UserTokens>), Problem> {
    for (pointer, len) in [
        ("/totp", body.totp.as_ref().map(String::len)),
        (
            "/recovery_code",
            body.recovery_code.as_ref().map(|c| c.expose().len()),
        ),
    ] {
        if len.is_some_and(|n| n > 64) {
            return Err(Problem::field(pointer, "At most 64 characters."));
        }
    }
    let second = SecondFactor {
        totp: body.totp,
        recovery_code: body.recovery_code.map(|c| c.expose().to_owned()),
        passkey: body.passkey.map(|p| (p.challenge_id, p.credential)),
    };
    let tokens = state
        .platform
        .user_login(&p.tenant, &body.email, &body.password, &second)
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

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// E-mail address (login name), unique in the tenant.
    email: Email,
    /// Initial password (NIST SP 800-63B rules: length, no composition rules). Give
    /// this or `password_hash`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    /// For user import: a bcrypt hash (`$2b$…`) from another system, re-hashed to
    /// argon2id at the user's next successful sign-in.
    #[serde(default)]
    password_hash: Option<String>,
    /// Roles: `admin`, `preparer`, `reviewer`, `viewer`, `auditor`.
    #[serde(default)]
    roles: Vec<String>,
}

fn roles(names: &[String]) -> Result<Vec<Role>, Problem> {
    if names.len() > Role::ALL.len() {
        return Err(Problem::field("/roles", "Too many roles."));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Role::parse(n).ok_or_else(|| {
                Problem::field(
                    format!("/roles/{i}"),
                    "Unknown role: expected admin, preparer, reviewer, viewer or auditor.",
                )
            })
        })
        .collect()
}

/// Creates a user (`users:manage`).
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users", tag = "users",
    params(TenantPath),
    request_body = CreateUser,
    security(("bearer" = [])),
    responses((status = 201, description = "Created", body = User))
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let roles = roles(&body.roles)?;
    let credential = match (body.password, body.password_hash) {
        (Some(p), None) => Credential::Password(p),
        (None, Some(h)) => Credential::BcryptHash(h),
        _ => {
            return Err(Problem::field(
                "/password",
                "Give exactly one of `password` and `password_hash`.",
            ));
        }
    };
    let user = state
        .platform
        .create_user(&principal, &p.tenant, body.email, credential, roles)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Paging of the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListUsers {
    /// The `next_after` of the previous page.
    after: Option<UserId>,
    /// Page size (1-100, default 50).
    limit: Option<u32>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    /// Users ordered by id.
    items: Vec<User>,
    /// Cursor for the next page, when there may be one.
    next_after: Option<UserId>,
}

/// Lists users (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/users", tag = "users",
    params(TenantPath, ListUsers),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of users", body = UserPage))
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiQuery(q): ApiQuery<ListUsers>,
) -> Result<Json<UserPage>, Problem> {
    let limit = q.limit.unwrap_or(50);
    let items = state
        .platform
        .users(&principal, &p.tenant, q.after, limit)
        .await?;
    let next_after = if items.len() >= limit.clamp(1, 100) as usize {
        items.last().map(|u| u.id)
    } else {
        None
    };
    Ok(Json(UserPage { items, next_after }))
}

/// Reads a user (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/users/{id}", tag = "users",
    params(UserPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The user", body = User))
)]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<UserPath>,
) -> Result<Json<User>, Problem> {
    Ok(Json(
        state.platform.user(&principal, &p.tenant, p.id).await?,
    ))
}

/// A change to a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchUser {
    /// `active` or `disabled` (disabling ends every session at once).
    status: Option<UserStatus>,
    /// The complete new set of roles.
    roles: Option<Vec<String>>,
}

/// Enables or disables a user, or replaces their roles (`users:manage`). Takes effect
/// on the user's very next request.
#[utoipa::path(
    patch, path = "/v1/t/{tenant}/users/{id}", tag = "users",
    params(UserPath),
    request_body = PatchUser,
    security(("bearer" = [])),
    responses((status = 200, description = "The user after the change", body = User))
)]
pub(crate) async fn patch_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<UserPath>,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Json<User>, Problem> {
    let patch = UserPatch {
        status: body.status,
        roles: body.roles.as_deref().map(roles).transpose()?,
    };
    Ok(Json(
        state
            .platform
            .update_user(&principal, &p.tenant, p.id, patch)
            .await?,
    ))
}

/// Starts TOTP enrolment for the caller: a new secret as an `otpauth://` URI (show it as
/// a QR code). Sign-in does not require it until confirmed.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/totp", tag = "users",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 201, description = "Enrolment started", body = TotpEnrolment))
)]
pub(crate) async fn totp_enrol(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<(StatusCode, Json<TotpEnrolment>), Problem> {
    let e = state.platform.totp_enrol(&principal, &p.tenant).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// A code from the authenticator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpCode {
    /// The current 6-digit code.
    code: String,
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
    if body.code.len() > 16 {
        return Err(Problem::field("/code", "At most 16 characters."));
    }
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

/// Why a user is being deleted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteReason {
    /// Recorded in the audit trail (required).
    reason: String,
}

/// Deletes a user (`users:manage`): their sessions end at once; the audit trail keeps
/// their id.
#[utoipa::path(
    delete, path = "/v1/t/{tenant}/users/{id}", tag = "users",
    params(UserPath),
    request_body = DeleteReason,
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"))
)]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<UserPath>,
    ApiJson(body): ApiJson<DeleteReason>,
) -> Result<StatusCode, Problem> {
    state
        .platform
        .delete_user(&principal, &p.tenant, p.id, body.reason)
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

/// The `{tenant}` path parameter of the platform API.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PlatformTenantPath {
    /// The tenant's slug.
    tenant: Slug,
}

/// Whom to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteBody {
    /// The invitee's e-mail address (their login name).
    email: Email,
    /// Their role (default `admin`: an operator invites a tenant's first admin).
    #[serde(default)]
    role: Option<String>,
}

/// Invites a user into a tenant (operators: typically the tenant's first admin). The
/// one-time token, valid 72 hours, is returned once; the invitee accepts it at
/// `POST /v1/t/{tenant}/invitations/accept`.
#[utoipa::path(
    post, path = "/v1/tenants/{tenant}/invitations", tag = "users",
    params(PlatformTenantPath),
    request_body = InviteBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Invited", body = Invitation))
)]
pub(crate) async fn invite(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<PlatformTenantPath>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<(StatusCode, Json<Invitation>), Problem> {
    let role = match body.role.as_deref() {
        None => Role::Admin,
        Some(r) => Role::parse(r).ok_or_else(|| {
            Problem::field(
                "/role",
                "Unknown role: expected admin, preparer, reviewer, viewer or auditor.",
            )
        })?,
    };
    let inv = state
        .platform
        .invite_user(&principal, &p.tenant, body.email, role)
        .await?;
    Ok((StatusCode::CREATED, Json(inv)))
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptBody {
    /// The invitation token.
    #[schema(value_type = String, format = Password)]
    token: SecretString,
    /// The address the invitation was sent to.
    email: Email,
    /// The password to sign in with from now on.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Accepts an invitation: creates the user with the invited role. Unknown, used or
/// expired tokens and other addresses are all the same 401.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/invitations/accept", tag = "users",
    params(TenantPath),
    request_body = AcceptBody,
    responses((status = 201, description = "The new user", body = User))
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let user = state
        .platform
        .accept_invitation(&p.tenant, &body.token, body.email, &body.password)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
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
    responses((status = 200, description = "The challenge", body = PasskeyChallenge))
)]
pub(crate) async fn passkey_challenge(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<PasswordOnly>,
) -> Result<Json<PasskeyChallenge>, Problem> {
    let (challenge_id, options) = state
        .platform
        .passkey_sign_in_challenge(&p.tenant, &body.email, &body.password)
        .await?;
    Ok(Json(PasskeyChallenge {
        challenge_id,
        options,
    }))
}

/// Starts registering a passkey for the caller.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/users/me/passkeys", tag = "users",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 201, description = "The registration challenge", body = PasskeyChallenge))
)]
pub(crate) async fn passkey_register_start(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<(StatusCode, Json<PasskeyChallenge>), Problem> {
    let (challenge_id, options) = state
        .platform
        .passkey_register_start(&principal, &p.tenant)
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
