//! A tenant's audit trail over HTTP, in the C2SP tlog-tiles layout so that standard
//! transparency-log clients can fetch and verify it (`checkpoint`, `tile/...`, the
//! verifier key), plus JSON proofs, filtered queries and CSV/JSON exports for review.
//! Readers are tenant users and applications with `audit:read`, and operators holding
//! a live support grant from the tenant. The platform's own trail is served the same
//! way under `/v1/platform/audit/` to operators.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use strongroom_core::audit::log::Proof;
use strongroom_core::audit::review::ReviewEntry;
use strongroom_core::platform::{AuditPage, ExportFormat};
use strongroom_core::store::AuditFilter;
use strongroom_core::tenant::Slug;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiPath, ApiQuery, Auth};
use crate::problem::Problem;
use crate::state::AppState;

/// Longest an export may stream (a client reading very slowly holds an export slot).
const EXPORT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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

pub(crate) fn body(content_type: &'static str, bytes: Vec<u8>) -> Response {
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
    Auth(principal): Auth,
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
    Auth(principal): Auth,
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
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TilePath>,
) -> Result<Response, Problem> {
    let bytes = state
        .platform
        .audit_tile(&principal, &p.tenant, &format!("tile/{}", p.path))
        .await?;
    Ok(body("application/octet-stream", bytes))
}

/// Query of the inclusion-proof endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The entry's index (its `seq`).
    index: u64,
    /// Tree size to prove against (default: the latest checkpoint's size).
    size: Option<u64>,
}

/// Query of the consistency-proof endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size (e.g. from the checkpoint a verifier saw last).
    from: u64,
    /// The newer tree size (default: the latest checkpoint's size).
    to: Option<u64>,
}

/// An RFC 9162 proof, hashes in hex, with the checkpoint to check it against.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProofBody {
    /// Inclusion: the entry index. Absent for consistency proofs.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    /// Consistency: the older size. Absent for inclusion proofs.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<u64>,
    /// The tree size the proof is for.
    size: u64,
    /// Proof hashes, hex, in RFC 9162 §2.1.3/§2.1.4 order.
    hashes: Vec<String>,
    /// The latest signed checkpoint (C2SP signed note).
    checkpoint: String,
    /// Its tree size.
    checkpoint_size: u64,
}

fn proof_body(p: Proof, index: Option<u64>, from: Option<u64>) -> ProofBody {
    ProofBody {
        index,
        from,
        size: p.size,
        hashes: p.hashes.iter().map(hex::encode).collect(),
        checkpoint: p.checkpoint,
        checkpoint_size: p.checkpoint_size,
    }
}

/// The inclusion proof of one entry (RFC 9162 §2.1.3), as JSON.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/proof/inclusion", tag = "audit",
    params(AuditPath, InclusionQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The proof", body = ProofBody))
)]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AuditPath>,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<ProofBody>, Problem> {
    let proof = state
        .platform
        .audit_inclusion(&principal, &p.tenant, q.index, q.size)
        .await?;
    Ok(Json(proof_body(proof, Some(q.index), None)))
}

/// The consistency proof between two tree sizes (RFC 9162 §2.1.4), as JSON.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/proof/consistency", tag = "audit",
    params(AuditPath, ConsistencyQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "The proof", body = ProofBody))
)]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AuditPath>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ProofBody>, Problem> {
    let proof = state
        .platform
        .audit_consistency(&principal, &p.tenant, q.from, q.to)
        .await?;
    Ok(Json(proof_body(proof, None, Some(q.from))))
}

/// Filters shared by the query and export endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntriesQuery {
    /// Actor as `<kind>:<id>`, e.g. `operator:<uuid>`.
    pub(crate) actor: Option<String>,
    /// Action name from the catalogue, e.g. `key.rotate`.
    pub(crate) action: Option<String>,
    /// Target as `<kind>:<id>`, e.g. `tenant-secret:smtp`.
    pub(crate) target: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub(crate) since: Option<String>,
    /// Entries before this time (RFC 3339).
    pub(crate) until: Option<String>,
    /// The `next` value of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size (default and maximum: the server's `audit.max_page`).
    pub(crate) limit: Option<u32>,
    /// Export format: `json` (default) or `csv`. Export only.
    pub(crate) format: Option<String>,
}

pub(crate) fn time_param(
    field: &'static str,
    v: Option<&str>,
) -> Result<Option<OffsetDateTime>, Problem> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            Problem::field(
                field,
                "Expected an RFC 3339 time, e.g. 2026-11-24T08:00:00Z.",
            )
        })
    })
    .transpose()
}

pub(crate) fn filter(q: &EntriesQuery) -> Result<AuditFilter, Problem> {
    Ok(AuditFilter {
        actor: q.actor.clone(),
        action: q.action.clone(),
        target: q.target.clone(),
        since: time_param("/since", q.since.as_deref())?,
        until: time_param("/until", q.until.as_deref())?,
    })
}

/// Audit entries matching the filters, oldest first, with cursor pagination. Personal
/// data is opened (or marked erased). The query is itself audited (`audit.query`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/entries", tag = "audit",
    params(AuditPath, EntriesQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "One page of entries", body = AuditPage))
)]
pub(crate) async fn entries(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AuditPath>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<AuditPage>, Problem> {
    if q.format.is_some() {
        return Err(Problem::field(
            "/format",
            "Only the export endpoint takes a format.",
        ));
    }
    let page = state
        .platform
        .audit_query(
            &principal,
            &p.tenant,
            &filter(&q)?,
            q.cursor.as_deref(),
            q.limit.unwrap_or(u32::MAX),
        )
        .await?;
    Ok(Json(page))
}

/// Every entry matching the filters (up to the server's `audit.max_export`) as one
/// CSV or JSON document, for an audit-trail review. The export is itself audited
/// (`audit.export`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/audit/export", tag = "audit",
    params(AuditPath, EntriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entries: a JSON array (`format=json`) (`format=json`, the default) or CSV (`format=csv`; columns in docs/formats/audit.md), streamed a page at a time; a failure after the first page cuts the response off (an incomplete chunked body)", content(
            (Vec<ReviewEntry> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 429, description = "Every export slot (`audit.max_concurrent_exports`) is taken; see Retry-After"),
    )
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AuditPath>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Response, Problem> {
    let (format, content_type, ext) = match q.format.as_deref() {
        None | Some("json") => (ExportFormat::Json, "application/json", "json"),
        Some("csv") => (ExportFormat::Csv, "text/csv; charset=utf-8", "csv"),
        Some(_) => return Err(Problem::field("/format", "Expected `json` or `csv`.")),
    };
    if q.cursor.is_some() || q.limit.is_some() {
        return Err(Problem::field("/cursor", "Exports are not paginated."));
    }
    let platform = state.platform.clone();
    let mut export = platform
        .audit_export(&principal, &p.tenant, &filter(&q)?, format)
        .await?;
    // The first page before answering, so that a failure there is a problem response.
    let first = platform
        .audit_export_next(&mut export)
        .await?
        .unwrap_or_default();
    let (mut tx, stream) = http_body_util::Channel::<Bytes, std::io::Error>::new(1);
    tokio::spawn(async move {
        let rest = async {
            tx.send_data(Bytes::from(first)).await.ok()?;
            while let Some(chunk) = platform.audit_export_next(&mut export).await.transpose() {
                match chunk {
                    Ok(bytes) => tx.send_data(Bytes::from(bytes)).await.ok()?,
                    Err(e) => return Some(crate::problem::chain(&e)),
                }
            }
            None
        };
        // A client gone away ends the task (and frees the export slot) at the next
        // send; one reading too slowly is cut off at the deadline.
        let failure = match tokio::time::timeout(EXPORT_DEADLINE, rest).await {
            Ok(None) => return,
            Ok(Some(e)) => e,
            Err(_) => "the export took longer than its deadline".to_owned(),
        };
        tracing::warn!(error = %failure, "audit export cut off");
        tx.abort(std::io::Error::other("audit export failed"));
    });
    let disposition = format!("attachment; filename=\"{}-audit.{ext}\"", p.tenant.as_str());
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        axum::body::Body::new(stream),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
