//! The platform's own audit trail over HTTP, for operators: the same C2SP tlog-tiles
//! layout and queries as a tenant's trail, recording what operators and the platform
//! do (sign-ins, operator and tenant changes, signing keys, support access).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use strongroom_core::platform::AuditPage;
use utoipa::IntoParams;

use super::audit::{EntriesQuery, body, filter};
use crate::extract::{ApiPath, ApiQuery, OperatorAuth};
use crate::problem::Problem;
use crate::state::AppState;

/// The tile path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PlatformTilePath {
    /// The tile below `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.
    path: String,
}

/// The platform trail's latest signed checkpoint.
#[utoipa::path(
    get, path = "/v1/platform/audit/checkpoint", tag = "operators",
    security(("bearer" = [])),
    responses((status = 200, description = "The signed checkpoint", content_type = "text/plain; charset=utf-8", body = String))
)]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
) -> Result<Response, Problem> {
    let note = state.platform.platform_audit_checkpoint(&principal).await?;
    Ok(body("text/plain; charset=utf-8", note.into_bytes()))
}

/// The platform trail's verifier key (C2SP vkey).
#[utoipa::path(
    get, path = "/v1/platform/audit/vkey", tag = "operators",
    security(("bearer" = [])),
    responses((status = 200, description = "The verifier key", content_type = "text/plain; charset=utf-8", body = String))
)]
pub(crate) async fn vkey(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
) -> Result<Response, Problem> {
    let vkey = state.platform.platform_audit_vkey(&principal).await?;
    Ok(body(
        "text/plain; charset=utf-8",
        format!("{vkey}\n").into_bytes(),
    ))
}

/// A hash tile or entry bundle of the platform trail.
#[utoipa::path(
    get, path = "/v1/platform/audit/tile/{*path}", tag = "operators",
    params(PlatformTilePath),
    security(("bearer" = [])),
    responses((status = 200, description = "Tile bytes", content_type = "application/octet-stream", body = Vec<u8>))
)]
pub(crate) async fn tile(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(p): ApiPath<PlatformTilePath>,
) -> Result<Response, Problem> {
    let path = format!("tile/{}", p.path);
    let bytes = state
        .platform
        .platform_audit_tile(&principal, &path)
        .await?;
    Ok(body("application/octet-stream", bytes))
}

/// Entries of the platform trail matching the filters, oldest first, with cursor
/// pagination (the query itself is recorded in the trail).
#[utoipa::path(
    get, path = "/v1/platform/audit/entries", tag = "operators",
    params(EntriesQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "One page of entries", body = AuditPage))
)]
pub(crate) async fn entries(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<AuditPage>, Problem> {
    if q.format.is_some() {
        return Err(Problem::field("/format", "Only an export takes a format."));
    }
    let page = state
        .platform
        .platform_audit_query(
            &principal,
            &filter(&q)?,
            q.cursor.as_deref(),
            q.limit.unwrap_or(u32::MAX),
        )
        .await?;
    Ok(Json(page))
}
