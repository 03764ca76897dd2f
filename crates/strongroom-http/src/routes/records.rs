//! Record types and records: the lifecycle, signatures, attachments, history, diffs,
//! search and verification. Every write that changes a record carries `If-Match` with
//! the record's ETag (412 when stale, 428 when missing); record content is parsed
//! strictly (no duplicate keys, bounded size, depth and count) before anything else
//! sees it.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_core::identity::Email;
use strongroom_core::identity::totp::OneTimeCode;
use strongroom_core::platform::{
    HistoryItem, RecordQuery, RecordSummary, RecordTypeView, RecordView, SignRequest, VerifyReport,
    VersionView,
};
use strongroom_core::records::content;
use strongroom_core::records::definition::{Definition, TypeName};
use strongroom_core::records::{RecordId, RecordStatus};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, ClientAddr, TenantPath};
use crate::problem::{self, Problem};
use crate::state::AppState;

/// `{tenant}` and `{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TypePath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record type's name.
    name: TypeName,
}

/// `{tenant}` and `{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct RecordPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record's id.
    id: RecordId,
}

/// `{tenant}`, `{id}` and `{n}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record's id.
    id: RecordId,
    /// The version number (a record has far fewer than 2^32: a larger one names
    /// nothing, so it is a 404 like any version that does not exist).
    n: u32,
}

/// `{tenant}`, `{id}` and the attachment `{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AttachPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record's id.
    id: RecordId,
    /// The attachment's file name.
    name: String,
}

/// `{tenant}`, `{id}`, `{n}` and the attachment `{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionAttachPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record's id.
    id: RecordId,
    /// The version number (a record has far fewer than 2^32: a larger one names
    /// nothing, so it is a 404 like any version that does not exist).
    n: u32,
    /// The attachment's file name.
    name: String,
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

fn with_etag<T: Serialize>(status: StatusCode, etag: &str, body: T) -> Response {
    let mut r = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn record_response(status: StatusCode, view: RecordView) -> Response {
    let etag = view.etag.clone();
    with_etag(status, &etag, view)
}

/// The media type of `Content-Type` without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

/// Reads a JSON body strictly: an object, no duplicate keys, within the content bounds.
async fn strict_body(req: Request) -> Result<Map<String, Value>, Problem> {
    let json = media_type(req.headers()).is_some_and(|v| v == "application/json");
    if !json {
        return Err(Problem::new(
            &problem::UNSUPPORTED_MEDIA_TYPE,
            "Send the body as JSON with `Content-Type: application/json`.",
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), content::MAX_CONTENT_BYTES + 64 * 1024)
        .await
        .map_err(|_| {
            Problem::new(
                &problem::PAYLOAD_TOO_LARGE,
                "The request body is larger than this server accepts.",
            )
        })?;
    parse_strict(&bytes)
}

fn parse_strict(bytes: &Bytes) -> Result<Map<String, Value>, Problem> {
    Ok(content::parse(bytes)?)
}

fn take_object(
    body: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Map<String, Value>, Problem> {
    match body.remove(field) {
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Problem::field(format!("/{field}"), "must be a JSON object")),
        None => Err(Problem::field(format!("/{field}"), "is required")),
    }
}

fn no_more(body: &Map<String, Value>) -> Result<(), Problem> {
    match body.keys().next() {
        Some(k) => Err(Problem::field(format!("/{k}"), "unknown field")),
        None => Ok(()),
    }
}

/// Defines a record type, or changes it (a new type version); `records:admin`.
#[utoipa::path(
    put, path = "/v1/t/{tenant}/record-types/{name}", tag = "records",
    params(TypePath),
    request_body = Definition,
    security(("bearer" = [])),
    responses((status = 200, description = "The new type version", body = RecordTypeView))
)]
pub(crate) async fn define_type(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TypePath>,
    req: Request,
) -> Result<Json<RecordTypeView>, Problem> {
    // Parsed strictly like content: a definition with duplicate keys (two readings of
    // one schema) is refused, not resolved last-wins.
    let raw = Value::Object(strict_body(req).await?);
    let body: Definition = serde_path_to_error::deserialize(raw).map_err(|e| {
        // An RFC 6901 pointer from the path's segments (`~` and `/` escaped).
        let pointer: String = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => {
                    Some(key.replace('~', "~0").replace('/', "~1"))
                }
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .map(|seg| format!("/{seg}"))
            .collect();
        Problem::field(pointer, e.into_inner().to_string())
    })?;
    Ok(Json(
        state
            .platform
            .define_record_type(&principal, &p.tenant, p.name, body)
            .await?,
    ))
}

/// Which type version to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TypeVersion {
    /// A type version (default: the latest).
    version: Option<u32>,
}

/// Reads a record type; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/record-types/{name}", tag = "records",
    params(TypePath, TypeVersion),
    security(("bearer" = [])),
    responses((status = 200, description = "The type", body = RecordTypeView))
)]
pub(crate) async fn get_type(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TypePath>,
    ApiQuery(q): ApiQuery<TypeVersion>,
) -> Result<Json<RecordTypeView>, Problem> {
    Ok(Json(
        state
            .platform
            .record_type(&principal, &p.tenant, &p.name, q.version.map(u64::from))
            .await?,
    ))
}

/// Record types.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TypeList {
    /// The latest version of each type, by name.
    items: Vec<RecordTypeView>,
}

/// Lists record types; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/record-types", tag = "records",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The types", body = TypeList))
)]
pub(crate) async fn list_types(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<Json<TypeList>, Problem> {
    Ok(Json(TypeList {
        items: state.platform.record_types(&principal, &p.tenant).await?,
    }))
}

/// A new record.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documentation of the strictly parsed body
pub(crate) struct CreateRecord {
    /// The record type's name.
    #[serde(rename = "type")]
    type_name: String,
    /// The content, valid against the type's schema.
    #[schema(value_type = Object)]
    content: Value,
}

/// Creates a record (version 1, a draft); `records:write`.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/records", tag = "records",
    params(TenantPath),
    request_body = CreateRecord,
    security(("bearer" = [])),
    responses((status = 201, description = "Created; `ETag` carries its state", body = RecordView, headers(("etag" = String, description = "The record's ETag"))))
)]
pub(crate) async fn create_record(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    req: Request,
) -> Result<Response, Problem> {
    let mut body = strict_body(req).await?;
    let type_name = match body.remove("type") {
        Some(Value::String(s)) => {
            TypeName::parse(&s).map_err(|e| Problem::field("/type", e.message))?
        }
        _ => return Err(Problem::field("/type", "a record type name is required")),
    };
    let content = take_object(&mut body, "content")?;
    no_more(&body)?;
    let view = state
        .platform
        .create_record(&principal, &p.tenant, &type_name, content)
        .await?;
    Ok(record_response(StatusCode::CREATED, view))
}

/// A page of records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordPage {
    /// Records by id.
    items: Vec<RecordSummary>,
    /// Cursor for the next page, when there may be one.
    next_after: Option<String>,
}

/// Listing filters (`field.<name>=<value>` searches a searchable field exactly).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation: the query is parsed by hand for `field.*`
pub(crate) struct ListRecords {
    /// Record type.
    #[serde(rename = "type")]
    type_name: Option<String>,
    /// `draft`, `in_review`, `approved` or `retired`.
    status: Option<String>,
    /// Creator's user id.
    created_by: Option<String>,
    /// Created at or after (RFC 3339).
    created_from: Option<String>,
    /// Created before (RFC 3339).
    created_to: Option<String>,
    /// Updated at or after (RFC 3339).
    updated_from: Option<String>,
    /// Updated before (RFC 3339).
    updated_to: Option<String>,
    /// The `next_after` of the previous page.
    after: Option<String>,
    /// Page size (1-100, default 50).
    limit: Option<u32>,
}

fn parse_time(field: &str, v: &str) -> Result<time::OffsetDateTime, Problem> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Problem::field(format!("/{field}"), "an RFC 3339 time"))
}

/// The listing query: known parameters once each, `field.<name>` searches (at most 8).
fn parse_list_query(raw: &str) -> Result<(RecordQuery, Option<RecordId>, u32), Problem> {
    if raw.len() > 4096 {
        return Err(Problem::field("", "The query string is too long."));
    }
    let mut q = RecordQuery::default();
    let (mut after, mut limit) = (None, 50u32);
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(Problem::field(format!("/{k}"), "given more than once"));
        }
        match k.as_ref() {
            "type" => {
                q.type_name =
                    Some(TypeName::parse(&v).map_err(|e| Problem::field("/type", e.message))?)
            }
            "status" => {
                q.status = Some(RecordStatus::parse(&v).ok_or_else(|| {
                    Problem::field("/status", "one of draft, in_review, approved, retired")
                })?)
            }
            "created_by" => {
                let id = uuid::Uuid::parse_str(&v)
                    .map_err(|_| Problem::field("/created_by", "a user id"))?;
                q.created_by = Some(id.to_string());
            }
            "created_from" => q.created_from = Some(parse_time("created_from", &v)?),
            "created_to" => q.created_to = Some(parse_time("created_to", &v)?),
            "updated_from" => q.updated_from = Some(parse_time("updated_from", &v)?),
            "updated_to" => q.updated_to = Some(parse_time("updated_to", &v)?),
            "after" => {
                after = Some(
                    RecordId::parse(&v).ok_or_else(|| Problem::field("/after", "a record id"))?,
                )
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=100).contains(l))
                    .ok_or_else(|| Problem::field("/limit", "1-100"))?
            }
            other => match other.strip_prefix("field.") {
                Some(f) if !f.is_empty() && f.len() <= 64 && q.fields.len() < 8 => {
                    if v.len() > 1024 {
                        return Err(Problem::field(format!("/{other}"), "at most 1024 bytes"));
                    }
                    q.fields.push((f.to_owned(), v.to_string()));
                }
                _ => return Err(Problem::field(format!("/{other}"), "unknown parameter")),
            },
        }
    }
    Ok((q, after, limit))
}

/// Lists records; `records:read`. Filters combine; `field.<name>=<value>` (with
/// `type`) finds exact matches of a searchable field through the blind index.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records", tag = "records",
    params(TenantPath, ListRecords),
    security(("bearer" = [])),
    responses((status = 200, description = "A page of records", body = RecordPage))
)]
pub(crate) async fn list_records(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RecordPage>, Problem> {
    let (q, after, limit) = parse_list_query(&raw.unwrap_or_default())?;
    let items = state
        .platform
        .records(&principal, &p.tenant, q, after, limit)
        .await?;
    let next_after = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(RecordPage { items, next_after }))
}

/// Reads a record with its current version, content and signatures; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}", tag = "records",
    params(RecordPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The record", body = RecordView, headers(("etag" = String, description = "The record's ETag"))))
)]
pub(crate) async fn get_record(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<RecordPath>,
) -> Result<Response, Problem> {
    let view = state.platform.record(&principal, &p.tenant, &p.id).await?;
    Ok(record_response(StatusCode::OK, view))
}

/// New draft content.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documentation of the strictly parsed body
pub(crate) struct UpdateContent {
    /// The complete new content.
    #[schema(value_type = Object)]
    content: Value,
}

/// Saves new content of the current draft (a new revision); `records:write`,
/// `If-Match` required.
#[utoipa::path(
    put, path = "/v1/t/{tenant}/records/{id}/content", tag = "records",
    params(RecordPath, ("if-match" = String, Header, description = "The record's ETag")),
    request_body = UpdateContent,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Saved", body = RecordView, headers(("etag" = String, description = "The record's ETag"))),
        (status = 412, description = "The record changed since it was read"),
        (status = 428, description = "`If-Match` is missing"),
    )
)]
pub(crate) async fn update_content(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<RecordPath>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, Problem> {
    let mut body = strict_body(req).await?;
    let content = take_object(&mut body, "content")?;
    no_more(&body)?;
    let view = state
        .platform
        .update_record(&principal, &p.tenant, &p.id, if_match(&headers), content)
        .await?;
    Ok(record_response(StatusCode::OK, view))
}

/// A reason (required).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonBody {
    /// Why; recorded in the audit trail and the record's history.
    reason: String,
}

/// Submits the current draft for review (content frozen); `records:write`.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/records/{id}/submit", tag = "records",
    params(RecordPath, ("if-match" = String, Header, description = "The record's ETag")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "In review", body = RecordView),
        (status = 412, description = "The record changed since it was read"),
        (status = 428, description = "`If-Match` is missing"),
    )
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<RecordPath>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let view = state
        .platform
        .submit_record(&principal, &p.tenant, &p.id, if_match(&headers))
        .await?;
    Ok(record_response(StatusCode::OK, view))
}

macro_rules! reason_route {
    ($name:ident, $path:literal, $method:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post, path = $path, tag = "records",
            params(RecordPath, ("if-match" = String, Header, description = "The record's ETag")),
            request_body = ReasonBody,
            security(("bearer" = [])),
            responses(
                (status = 200, description = "Done", body = RecordView),
                (status = 412, description = "The record changed since it was read"),
                (status = 428, description = "`If-Match` is missing"),
            )
        )]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            Auth(principal): Auth,
            ApiPath(p): ApiPath<RecordPath>,
            headers: HeaderMap,
            ApiJson(body): ApiJson<ReasonBody>,
        ) -> Result<Response, Problem> {
            let view = state
                .platform
                .$method(&principal, &p.tenant, &p.id, if_match(&headers), body.reason)
                .await?;
            Ok(record_response(StatusCode::OK, view))
        }
    };
}

reason_route!(
    reject,
    "/v1/t/{tenant}/records/{id}/reject",
    reject_record,
    "Sends a version in review back to draft (reason required); `records:review`."
);
reason_route!(
    revise,
    "/v1/t/{tenant}/records/{id}/revise",
    revise_record,
    "Revises the approved current version: version n+1 starts as a draft (reason required); `records:write`."
);
reason_route!(
    retire,
    "/v1/t/{tenant}/records/{id}/retire",
    retire_record,
    "Retires a record for good (reason required); `records:approve`."
);

/// Reads one version with its content and signature manifestations; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}/versions/{n}", tag = "records",
    params(VersionPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The version", body = VersionView, headers(("etag" = String, description = "The record's ETag"))))
)]
pub(crate) async fn get_version(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<VersionPath>,
) -> Result<Response, Problem> {
    let (view, etag) = state
        .platform
        .record_version(&principal, &p.tenant, &p.id, u64::from(p.n))
        .await?;
    Ok(with_etag(StatusCode::OK, &etag, view))
}

/// An electronic signature with its re-authentication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignBody {
    /// The meaning: the policy's next one (e.g. `reviewed`).
    meaning: String,
    /// Optional comment, shown with the signature.
    #[serde(default)]
    comment: Option<String>,
    /// Your login identifier: required for the first signature in a session.
    #[serde(default)]
    email: Option<Email>,
    /// Your password (not with `sso_challenge`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    /// Instead of the password: the challenge id of a completed re-authentication at
    /// your identity provider (`POST …/signatures/sso-challenge`, then the provider's
    /// callback). Required for SSO users when the tenant requires SSO.
    #[serde(default)]
    sso_challenge: Option<String>,
    /// A current TOTP code, if your second factor is TOTP.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    totp: Option<OneTimeCode>,
    /// A passkey assertion, if your second factor is a passkey: answer a challenge
    /// from `POST …/versions/{n}/signatures/passkey-challenge`.
    #[serde(default)]
    passkey: Option<super::passkeys::PasskeyAnswer>,
}

/// Signs version `n` (current, in review, unchanged since `If-Match`), re-authenticating
/// in the same request. Only a user's own interactive session can sign.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/records/{id}/versions/{n}/signatures", tag = "records",
    params(VersionPath, ("if-match" = String, Header, description = "The record's ETag")),
    request_body = SignBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Signed (approved, if it completed the policy)", body = RecordView),
        (status = 412, description = "The record changed since it was read"),
        (status = 428, description = "`If-Match` is missing"),
        (status = 429, description = "Too many failed re-authentications; see Retry-After"),
    )
)]
pub(crate) async fn sign(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<VersionPath>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignBody>,
) -> Result<Response, Problem> {
    let request = SignRequest {
        meaning: body.meaning,
        comment: body.comment,
        email: body.email,
        password: body.password,
        sso_challenge: body.sso_challenge,
        totp: body.totp,
        passkey: body.passkey.map(|p| (p.challenge_id, p.credential)),
        client,
    };
    let view = state
        .platform
        .sign_record(
            &principal,
            &p.tenant,
            &p.id,
            u64::from(p.n),
            if_match(&headers),
            request,
        )
        .await?;
    Ok(record_response(StatusCode::CREATED, view))
}

/// A passkey challenge for signing version `n` in the caller's own session: answer it
/// in the signature request's `passkey`. Good for that signature only (never for a
/// sign-in), once, for a few minutes.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/records/{id}/versions/{n}/signatures/passkey-challenge", tag = "records",
    params(VersionPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The challenge", body = super::passkeys::PasskeyChallenge))
)]
pub(crate) async fn signature_passkey_challenge(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<VersionPath>,
) -> Result<Json<super::passkeys::PasskeyChallenge>, Problem> {
    let (challenge_id, options) = state
        .platform
        .signature_passkey_challenge(&principal, &p.tenant, &p.id, u64::from(p.n))
        .await?
        .ok_or_else(|| {
            Problem::new(
                &problem::CONFLICT,
                "You have no passkey: sign with your TOTP code, or without a second factor.",
            )
        })?;
    Ok(Json(super::passkeys::PasskeyChallenge {
        challenge_id,
        options,
    }))
}

/// Which version to compare against.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Against {
    /// The earlier version.
    against: u32,
}

/// The RFC 6902 JSON Patch from version `against` to version `n` (`content` and
/// `attachments`); `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}/versions/{n}/diff", tag = "records",
    params(VersionPath, Against),
    security(("bearer" = [])),
    responses((status = 200, description = "RFC 6902 JSON Patch", body = Object, content_type = "application/json-patch+json"))
)]
pub(crate) async fn diff(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<VersionPath>,
    ApiQuery(q): ApiQuery<Against>,
) -> Result<Response, Problem> {
    let patch = state
        .platform
        .record_diff(
            &principal,
            &p.tenant,
            &p.id,
            u64::from(p.n),
            u64::from(q.against),
        )
        .await?;
    let mut r = Json(patch).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json-patch+json"),
    );
    Ok(r)
}

/// A record's history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct History {
    /// Every revision, signature and state change, in time order.
    items: Vec<HistoryItem>,
}

/// Every revision, signature and state change of a record; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}/history", tag = "records",
    params(RecordPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The history", body = History))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<RecordPath>,
) -> Result<Json<History>, Problem> {
    Ok(Json(History {
        items: state
            .platform
            .record_history(&principal, &p.tenant, &p.id)
            .await?,
    }))
}

/// Recomputes and checks every hash, signature and audit binding of a record;
/// `records:read`. `failures` empty means every check passed.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}/verify", tag = "records",
    params(RecordPath),
    security(("bearer" = [])),
    responses((status = 200, description = "What was checked and what failed", body = VerifyReport))
)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<RecordPath>,
) -> Result<Json<VerifyReport>, Problem> {
    Ok(Json(
        state
            .platform
            .verify_records(&principal, &p.tenant, Some(&p.id))
            .await?,
    ))
}

/// Adds an attachment to the current draft: the body is the file, streamed (never
/// buffered whole) and sealed; `Content-Type` is recorded; `records:write`.
#[utoipa::path(
    put, path = "/v1/t/{tenant}/records/{id}/attachments/{name}", tag = "records",
    params(AttachPath, ("if-match" = String, Header, description = "The record's ETag")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Attached (a new revision)", body = RecordView),
        (status = 412, description = "The record changed since it was read"),
        (status = 428, description = "`If-Match` is missing"),
    )
)]
pub(crate) async fn put_attachment(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AttachPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let media_type = media_type(&headers).unwrap_or_else(|| "application/octet-stream".into());
    let max = state.platform.max_attachment_bytes();
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(Problem::new(
            &problem::PAYLOAD_TOO_LARGE,
            format!("Attachments are at most {max} bytes."),
        ));
    }
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let mut reader = tokio_util::io::StreamReader::new(stream);
    let view = state
        .platform
        .attach(
            &principal,
            &p.tenant,
            &p.id,
            if_match(&headers),
            &p.name,
            &media_type,
            &mut reader,
            max,
        )
        .await?;
    Ok(record_response(StatusCode::CREATED, view))
}

/// A single `bytes=a-b` range (or `a-`, `-n`), resolved against `size`.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return None;
            }
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, size.checked_sub(1)?),
        (s, e) => (
            s.parse().ok()?,
            e.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

/// Downloads an attachment of version `n`, streamed and decrypted on the way;
/// `Range: bytes=…` gives 206 with that part; `records:read`.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/records/{id}/versions/{n}/attachments/{name}", tag = "records",
    params(VersionAttachPath, ("range" = Option<String>, Header, description = "`bytes=start-end`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 416, description = "The range is outside the file"),
    )
)]
pub(crate) async fn get_attachment(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<VersionAttachPath>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (scope, attachment) = state
        .platform
        .attachment(&principal, &p.tenant, &p.id, u64::from(p.n), &p.name)
        .await?;
    let size = attachment.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            Some(r) => Some(r),
            None => {
                return Err(Problem::new(
                    &problem::RANGE_NOT_SATISFIABLE,
                    format!(
                        "The range is not within the file's {size} bytes (one `bytes=start-end` range is accepted)."
                    ),
                ));
            }
        },
    };
    let (skip, take) = match range {
        Some((a, b)) => (a, b - a + 1),
        None => (0, size),
    };
    let body = attachment_body(&state, scope, &attachment, skip, take).await?;
    let mut r = Response::new(body);
    let h = r.headers_mut();
    let mt = HeaderValue::from_str(&attachment.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, mt);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(take));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", attachment.sha256)) {
        h.insert(header::ETAG, v);
    }
    if let Some((a, b)) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

/// Starts streaming an attachment and waits for its first bytes before a status is
/// chosen: storage that is down, or a first chunk that fails authentication, is a
/// problem response (503, …) rather than a 200 whose body breaks off. A failure
/// after the first bytes can only end the body early; the client never receives an
/// unverified byte either way.
async fn attachment_body(
    state: &AppState,
    scope: strongroom_core::access::TenantScope,
    attachment: &strongroom_core::records::content::AttachmentRef,
    skip: u64,
    take: u64,
) -> Result<Body, Problem> {
    use tokio::io::AsyncReadExt;
    const PIPE: usize = 64 * 1024;
    let (mut tx, mut rx) = tokio::io::duplex(PIPE);
    let platform = state.platform.clone();
    let blob = attachment.clone();
    let task = tokio::spawn(async move {
        let done = platform
            .read_attachment(&scope, &blob, skip, take, &mut tx)
            .await;
        if let Err(e) = &done {
            tracing::error!(error = %strongroom_core::platform::chain(e), "attachment download failed");
        }
        done
    });
    let mut first = vec![0u8; PIPE];
    let n = if take == 0 {
        0
    } else {
        rx.read(&mut first).await.unwrap_or(0)
    };
    if n == 0 && take > 0 {
        return Err(match task.await {
            Ok(Err(e)) => e.into(),
            _ => Problem::internal("the attachment stream ended before its first byte"),
        });
    }
    first.truncate(n);
    let head =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) });
    let rest = tokio_util::io::ReaderStream::new(rx);
    Ok(Body::from_stream(futures_util::StreamExt::chain(
        head, rest,
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Some((0, 0)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=2-100", 10), Some((2, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=5-2", 10), None);
    }
}
