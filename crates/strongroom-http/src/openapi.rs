//! The OpenAPI 3.1 document, generated from the route declarations.
//!
//! Handlers declare their success responses and the errors specific to them; the
//! [`ProblemResponses`] modifier adds the errors every endpoint of a given shape can
//! produce (a body → 400/413/415/422, a bearer token → 401/403, path parameters → 404,
//! always 500/503), all as `application/problem+json`. The document also lists every
//! problem `type` under `x-problem-types`.

use std::sync::Arc;

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::{self, ProblemKind};
use crate::routes::{
    applications, audit, health, invitations, meta, mfa, operator, passkeys, platform, records,
    sessions, sso, support, tenants, users,
};
use crate::state::AppState;

/// Top-level document metadata.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strongroom API",
        description = "A self-hostable, multi-tenant vault for regulated records. \
            Errors are RFC 9457 problem details (`application/problem+json`) with a stable `type` URI; \
            the full list is in `x-problem-types`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        problem::ProblemBody,
        problem::FieldError,
        strongroom_core::records::RecordId
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Liveness, readiness and API metadata"),
        (name = "operators", description = "Platform operator sign-in"),
        (name = "tenants", description = "Tenant (workspace) directory; operators only"),
        (name = "sessions", description = "Tenant users signing in, refreshing and signing out"),
        (name = "users", description = "A tenant's users and their roles"),
        (name = "applications", description = "A tenant's applications (OAuth 2.0 client credentials) and the token endpoint"),
        (name = "audit", description = "A tenant's audit trail as a transparency log (C2SP tlog-tiles)"),
        (name = "records", description = "Record types, records, versions, electronic signatures, attachments, history and verification"),
        (name = "support", description = "A tenant's grants of support access to platform operators"),
        (name = "sso", description = "Single sign-on: a tenant's OpenID Connect and SAML 2.0 identity providers, SSO policy and the browser round trip"),
    )
)]
pub struct ApiDoc;

/// The router and its complete OpenAPI document.
pub fn split() -> (axum::Router<AppState>, Doc) {
    let (router, mut doc) = api().split_for_parts();
    // The router needs axum's wildcard spelling `{*path}`; OpenAPI names it `{path}`.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(k, v)| (k.replace("{*", "{"), v))
        .collect();
    // After the routes are in: modifiers declared on `ApiDoc` run before them.
    ProblemResponses.modify(&mut doc);
    (router, doc)
}

/// The complete OpenAPI document (for tooling and tests).
pub fn document() -> Doc {
    split().1
}

/// Every route, registered with its documentation.
fn api() -> OpenApiRouter<AppState> {
    record_routes(OpenApiRouter::with_openapi(ApiDoc::openapi()))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(meta::openapi_json))
        .routes(routes!(meta::jwks))
        .routes(routes!(operator::create_session))
        .routes(routes!(tenants::create_tenant, tenants::list_tenants))
        .routes(routes!(tenants::get_tenant))
        .routes(routes!(tenants::put_secret))
        .routes(routes!(audit::checkpoint))
        .routes(routes!(audit::vkey))
        .routes(routes!(audit::tile))
        .routes(routes!(audit::inclusion))
        .routes(routes!(audit::consistency))
        .routes(routes!(audit::entries))
        .routes(routes!(audit::export))
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(
            users::get_user,
            users::patch_user,
            users::delete_user
        ))
        .routes(routes!(mfa::totp_enrol))
        .routes(routes!(mfa::totp_confirm))
        .routes(routes!(mfa::totp_reset))
        .routes(routes!(mfa::get_mfa_policy, mfa::put_mfa_policy))
        .routes(routes!(invitations::invite))
        .routes(routes!(invitations::accept))
        .routes(routes!(sessions::passkey_challenge))
        .routes(routes!(passkeys::passkey_register_start))
        .routes(routes!(passkeys::passkey_register_finish))
        .routes(routes!(
            applications::create_application,
            applications::list_applications
        ))
        .routes(routes!(applications::patch_application))
        .routes(routes!(applications::token))
        .routes(routes!(sso::get_settings))
        .routes(routes!(sso::put_provider, sso::delete_provider))
        .routes(routes!(sso::put_policy))
        .routes(routes!(sso::login))
        .routes(routes!(sso::callback))
        .routes(routes!(sso::acs))
        .routes(routes!(sso::metadata))
        .routes(routes!(support::grant, support::list))
        .routes(routes!(support::revoke))
        .routes(routes!(platform::checkpoint))
        .routes(routes!(platform::vkey))
        .routes(routes!(platform::tile))
        .routes(routes!(platform::entries))
}

/// Record types, records, signatures and attachments.
fn record_routes(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .routes(routes!(records::list_types))
        .routes(routes!(records::define_type, records::get_type))
        .routes(routes!(records::create_record, records::list_records))
        .routes(routes!(records::get_record))
        .routes(routes!(records::update_content))
        .routes(routes!(records::submit))
        .routes(routes!(records::reject))
        .routes(routes!(records::revise))
        .routes(routes!(records::retire))
        .routes(routes!(records::get_version))
        .routes(routes!(records::sign))
        .routes(routes!(records::signature_passkey_challenge))
        .routes(routes!(sso::sign_challenge))
        .routes(routes!(records::diff))
        .routes(routes!(records::history))
        .routes(routes!(records::verify))
        .routes(routes!(records::put_attachment))
        .routes(routes!(records::get_attachment))
        .routes(routes!(users::set_full_name))
}

/// The serialised document, shared with the `/openapi.json` handler.
#[derive(Clone, Debug)]
pub struct Document(pub Arc<String>);

impl Document {
    /// Serialises `doc` once, at start-up.
    pub fn new(doc: &Doc) -> Self {
        Self(Arc::new(
            doc.to_pretty_json().unwrap_or_else(|_| "{}".into()),
        ))
    }
}

/// Name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (EdDSA)")
                    .build(),
            ),
        );
    }
}

struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, doc: &mut Doc) {
        for item in doc.paths.paths.values_mut() {
            for (write, op) in operations(item) {
                add_problems(op, write);
            }
        }
        let kinds: Vec<serde_json::Value> = problem::ALL
            .iter()
            .map(
                |k| serde_json::json!({"type": k.type_uri(), "title": k.title, "status": k.status}),
            )
            .collect();
        let ext = doc.extensions.get_or_insert_with(Default::default);
        ext.insert(
            "x-problem-types".to_owned(),
            serde_json::Value::Array(kinds),
        );
    }
}

/// Every operation of a path, with whether it is a write (which can conflict with the
/// state it meets: a taken name, a read-only tenant, a concurrent change).
fn operations(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, item.get.as_mut()),
        (true, item.put.as_mut()),
        (true, item.post.as_mut()),
        (true, item.delete.as_mut()),
        (true, item.patch.as_mut()),
        (false, item.head.as_mut()),
        (false, item.options.as_mut()),
        (false, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(write, op)| op.map(|op| (write, op)))
}

/// The problem kinds an operation of this shape can answer with.
fn applicable(op: &Operation, write: bool) -> Vec<&'static ProblemKind> {
    let mut kinds = vec![&problem::INTERNAL, &problem::UNAVAILABLE, &problem::TIMEOUT];
    if write {
        kinds.push(&problem::CONFLICT);
    }
    if op.request_body.is_some() {
        kinds.extend([
            &problem::MALFORMED_BODY,
            &problem::PAYLOAD_TOO_LARGE,
            &problem::UNSUPPORTED_MEDIA_TYPE,
            &problem::VALIDATION,
        ]);
    }
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        kinds.extend([&problem::UNAUTHENTICATED, &problem::FORBIDDEN]);
    }
    let params = op.parameters.iter().flatten().filter_map(|p| match p {
        RefOr::T(p) => Some(&p.parameter_in),
        RefOr::Ref(_) => None,
    });
    for location in params {
        match location {
            ParameterIn::Path => kinds.push(&problem::NOT_FOUND),
            ParameterIn::Query => kinds.push(&problem::VALIDATION),
            _ => {}
        }
    }
    kinds
}

fn add_problems(op: &mut Operation, write: bool) {
    let kinds = applicable(op, write);
    let declared = &mut op.responses.responses;
    for kind in &kinds {
        declared
            .entry(kind.status.to_string())
            .or_insert_with(|| RefOr::T(Response::new("")));
    }
    for (status, response) in declared.iter_mut() {
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        if code < 400 {
            continue;
        }
        if let RefOr::T(r) = response {
            describe(r, code);
        }
    }
}

/// Makes an error response problem+json and lists the `type`s it can carry.
fn describe(r: &mut Response, status: u16) {
    let types: Vec<String> = problem::ALL
        .iter()
        .filter(|k| k.status == status)
        .map(|k| format!("`{}` ({})", k.type_uri(), k.title))
        .collect();
    let lead = if r.description.is_empty() {
        "Problem details (RFC 9457).".to_owned()
    } else {
        r.description.clone()
    };
    r.description = format!("{lead} Possible types: {}.", types.join("; "));
    r.content.clear();
    r.content.insert(
        problem::CONTENT_TYPE.to_owned(),
        RefOr::T(Content::new(Some(RefOr::Ref(Ref::from_schema_name(
            "ProblemBody",
        ))))),
    );
}
