//! Support access: a tenant's administrators let a platform operator in, for a scope,
//! a reason and at most 72 hours; they list and revoke grants.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use strongroom_core::identity::operator::OperatorId;
use strongroom_core::platform::{SupportGrantView, SupportRequest};
use strongroom_core::store::SupportScope;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, Auth, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// A grant to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantBody {
    /// The operator's id (the `sub` of their token without `operator:`).
    #[schema(value_type = String)]
    operator: OperatorId,
    /// What they may do: `audit:read`.
    scope: String,
    /// Whether the personal data sealed in audit entries (IP addresses, user agents)
    /// is readable to them (default: no).
    #[serde(default)]
    personal_data: bool,
    /// Why (recorded in the trail; required).
    reason: String,
    /// For how long, 1 to 72 hours.
    hours: u32,
}

/// The tenant's grants.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GrantList {
    /// Newest first.
    items: Vec<SupportGrantView>,
}

/// Grants a platform operator support access (`users:manage`).
#[utoipa::path(
    post, path = "/v1/t/{tenant}/support-grants", tag = "support",
    params(TenantPath),
    request_body = GrantBody,
    security(("bearer" = [])),
    responses((status = 201, description = "Granted", body = SupportGrantView))
)]
pub(crate) async fn grant(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, Json<SupportGrantView>), Problem> {
    let scope = SupportScope::parse(&body.scope)
        .ok_or_else(|| Problem::field("/scope", "Unknown scope: expected audit:read."))?;
    let req = SupportRequest {
        operator: body.operator,
        scope,
        personal_data: body.personal_data,
        reason: body.reason,
        hours: body.hours,
    };
    let g = state
        .platform
        .grant_support(&principal, &p.tenant, req)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Lists the tenant's support grants, live and past (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/support-grants", tag = "support",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The grants", body = GrantList))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<Json<GrantList>, Problem> {
    let items = state.platform.support_grants(&principal, &p.tenant).await?;
    Ok(Json(GrantList { items }))
}

/// The `{tenant}` and `{id}` path parameters of a grant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct GrantPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The grant's id.
    id: String,
}

/// Why a grant is revoked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    /// Recorded in the trail (required).
    reason: String,
}

/// Revokes a live grant at once (`users:manage`).
#[utoipa::path(
    delete, path = "/v1/t/{tenant}/support-grants/{id}", tag = "support",
    params(GrantPath),
    request_body = RevokeBody,
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<GrantPath>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> Result<StatusCode, Problem> {
    state
        .platform
        .revoke_support(&principal, &p.tenant, &p.id, body.reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
