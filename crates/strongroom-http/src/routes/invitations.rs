//! Invitations: an operator (a tenant's first user) or a tenant's user administrator
//! invites someone, who accepts with their own password.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use strongroom_core::access::rbac::Role;
use strongroom_core::identity::Email;
use strongroom_core::identity::user::User;
use strongroom_core::platform::Invitation;
use strongroom_core::secret::SecretString;
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, Auth, ClientAddr, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

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
    params(TenantPath),
    request_body = InviteBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Invited", body = Invitation))
)]
pub(crate) async fn invite(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
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
    /// The invitee's printed name (shown in their signatures' manifestations).
    #[serde(default)]
    full_name: Option<String>,
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
    responses(
        (status = 201, description = "The new user", body = User),
        (status = 401, description = "Unknown, used or expired token, another address, or no such tenant (indistinguishable)"),
        (status = 403, description = "The client's network address is unknown"),
        (status = 429, description = "Too many failed attempts from this address; see Retry-After"),
    )
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<AcceptBody>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let user = state
        .platform
        .accept_invitation(
            &p.tenant,
            &body.token,
            body.email,
            body.full_name.as_deref(),
            &body.password,
            client,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}
