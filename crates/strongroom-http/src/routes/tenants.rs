//! The tenant directory (operators only).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug, Tenant};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, OperatorAuth, TenantPath};
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
    /// Key provider for the tenant's key-encryption key (a customer-owned HSM key
    /// declared under `[keys.pkcs11.<name>]`); omitted means the root provider.
    #[serde(default)]
    #[schema(max_length = 64)]
    key_provider: Option<String>,
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
        key_provider: body.key_provider,
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

/// A tenant secret to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretValue {
    /// The secret (e.g. an SSO client secret). Stored sealed; never returned.
    #[schema(value_type = String, max_length = 16384)]
    value: strongroom_core::secret::SecretString,
}

/// The `{tenant}/{name}` path parameters of a tenant secret.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SecretPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The secret's name: 1-64 characters of a-z, 0-9, '-', '_' and '.'.
    #[param(value_type = String)]
    name: strongroom_core::objects::SecretName,
}

/// What was stored (never the value).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretStored {
    /// The secret's name.
    name: String,
    /// Its version (1 on first write, +1 on each change).
    version: u64,
    /// The tenant data-key version that sealed it.
    key_version: u32,
}

/// Stores (or replaces) a tenant secret, sealed under the tenant's current data key.
/// Write-only: no endpoint returns a secret's value.
#[utoipa::path(
    put, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "tenants",
    params(SecretPath),
    request_body = SecretValue,
    security(("bearer" = [])),
    responses((status = 200, description = "Stored", body = SecretStored))
)]
pub(crate) async fn put_secret(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(path): ApiPath<SecretPath>,
    ApiJson(body): ApiJson<SecretValue>,
) -> Result<Json<SecretStored>, Problem> {
    let value = strongroom_core::secret::SecretBytes::new(body.value.expose().as_bytes().to_vec());
    let info = state
        .platform
        .set_tenant_secret(&principal, &path.tenant, &path.name, &value)
        .await?;
    Ok(Json(SecretStored {
        name: info.name,
        version: info.version,
        key_version: info.key_version,
    }))
}
