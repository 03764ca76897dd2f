//! A tenant's audit trail over HTTP, in the C2SP tlog-tiles layout so that standard
//! transparency-log clients can fetch and verify it: `checkpoint`, `tile/...`, and the
//! verifier key. Until tenant users and their `audit:read` permission exist (identity
//! issue), operators read these.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use strongroom_core::tenant::Slug;
use utoipa::IntoParams;

use crate::extract::{ApiPath, OperatorAuth};
use crate::problem::Problem;
use crate::state::AppState;

/// The `{tenant}` path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AuditPath {
    /// The tenant's slug.
    tenant: Slug,
}

/// The `{tenant}` and tile path parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TilePath {
    /// The tenant's slug.
    tenant: Slug,
    /// The tile below `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]` (C2SP tlog-tiles).
    path: String,
}

fn body(content_type: &'static str, bytes: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response()
}

/// The latest signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note), after
/// integrating every entry appended so far.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/checkpoint", tag = "audit",
    params(AuditPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The signed checkpoint", content_type = "text/plain; charset=utf-8", body = String))
)]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(p): ApiPath<AuditPath>,
) -> Result<Response, Problem> {
    let note = state
        .platform
        .audit_checkpoint(&principal, &p.tenant)
        .await?;
    Ok(body("text/plain; charset=utf-8", note.into_bytes()))
}

/// The log's verifier key (C2SP vkey): `<name>+<key id>+<base64 key>`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/vkey", tag = "audit",
    params(AuditPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The verifier key", content_type = "text/plain; charset=utf-8", body = String))
)]
pub(crate) async fn vkey(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(p): ApiPath<AuditPath>,
) -> Result<Response, Problem> {
    let vkey = state.platform.audit_vkey(&principal, &p.tenant).await?;
    Ok(body(
        "text/plain; charset=utf-8",
        format!("{vkey}\n").into_bytes(),
    ))
}

/// A hash tile or entry bundle (C2SP tlog-tiles), within the latest checkpoint.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/tile/{*path}", tag = "audit",
    params(TilePath),
    security(("bearer" = [])),
    responses((status = 200, description = "Tile bytes", content_type = "application/octet-stream", body = Vec<u8>))
)]
pub(crate) async fn tile(
    State(state): State<AppState>,
    OperatorAuth(principal): OperatorAuth,
    ApiPath(p): ApiPath<TilePath>,
) -> Result<Response, Problem> {
    let bytes = state
        .platform
        .audit_tile(&principal, &p.tenant, &format!("tile/{}", p.path))
        .await?;
    Ok(body("application/octet-stream", bytes))
}
