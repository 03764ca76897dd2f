//! A tenant's users and their roles (`users:manage`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use strongroom_core::access::rbac::Role;
use strongroom_core::identity::Email;
use strongroom_core::identity::user::{User, UserId, UserStatus};
use strongroom_core::platform::{Credential, UserPatch};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// The `{tenant}` and `{id}` path parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The tenant's slug.
    pub(crate) tenant: Slug,
    /// The user's id.
    pub(crate) id: UserId,
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
    /// Printed name, shown in the user's signature manifestations (required before
    /// they can sign).
    #[serde(default)]
    full_name: Option<String>,
}

pub(crate) fn roles(names: &[String]) -> Result<Vec<Role>, Problem> {
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
        .create_user(
            &principal,
            &p.tenant,
            body.email,
            body.full_name.as_deref(),
            credential,
            roles,
        )
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

/// A printed name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FullNameBody {
    /// The name as signatures will print it (1-200 characters).
    full_name: String,
}

/// Sets a user's printed name: `users:manage` for anyone, or the user for themselves
/// (their own session). Audited with hashes of the old and new name.
#[utoipa::path(
    put, path = "/v1/t/{tenant}/users/{id}/full-name", tag = "users",
    params(UserPath),
    request_body = FullNameBody,
    security(("bearer" = [])),
    responses((status = 200, description = "The user after the change", body = User))
)]
pub(crate) async fn set_full_name(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<UserPath>,
    ApiJson(body): ApiJson<FullNameBody>,
) -> Result<Json<User>, Problem> {
    Ok(Json(
        state
            .platform
            .set_full_name(&principal, &p.tenant, p.id, &body.full_name)
            .await?,
    ))
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
