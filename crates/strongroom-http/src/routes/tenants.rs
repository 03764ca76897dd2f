//! The tenant directory (operators only).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug, Tenant};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, OperatorAuth};
use crate::problem::Problem;
use crate::state::AppState;

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    /// URL name, unique in the deployment.
    slug: Slug,
    /// Human name.
    display_name: DisplayName,
    /// Residency region; must be declared in the server's configuration.
    region: RegionName,
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantPage {
    /// Tenants in slug order.
    items: Vec<Tenant>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<Slug>,
}

/// Paging for the tenant list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListTenants {
    /// Return tenants whose slug sorts after this one.
    after: Option<Slug>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// The `{tenant}` path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TenantPath {
    /// The tenant's slug.
    tenant: Slug,
}

/// Creates a tenant in a residency region.
#[utoipa::path(
    post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Tenant,
            headers(("location" = String, description = "URL of the new tenant"))),
        (status = 409, description = "The slug is taken"),
    )
)]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, Problem> {
    let new = NewTenant {
        slug: body.slug,
        display_name: body.display_name,
        region: body.region,
    };
    let tenant = state.platform.create_tenant(&principal, new).await?;
    let location = HeaderValue::from_str(&format!("/v1/tenants/{}", tenant.slug))
        .map_err(|_| Problem::internal("slug not a header value"))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(tenant),
    )
        .into_response())
}

/// Lists tenants in slug order.
#[utoipa::path(
    get, path = "/v1/tenants", tag = "tenants",
    params(ListTenants),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of tenants", body = TenantPage))
)]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiQuery(q): ApiQuery<ListTenants>,
) -> Result<Json<TenantPage>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=strongroom_core::platform::MAX_PAGE).contains(&limit) {
        return Err(Problem::field("/limit", "limit must be between 1 and 100"));
    }
    let items = state.platform.tenants(&principal, q.after, limit).await?;
    let next_after = if items.len() == limit as usize {
        items.last().map(|t| t.slug.clone())
    } else {
        None
    };
    Ok(Json(TenantPage { items, next_after }))
}

/// Reads one tenant.
#[utoipa::path(
    get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The tenant", body = Tenant))
)]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(path): ApiPath<TenantPath>,
) -> Result<Json<Tenant>, Problem> {
    Ok(Json(state.platform.tenant(&principal, &path.tenant).await?))
}
