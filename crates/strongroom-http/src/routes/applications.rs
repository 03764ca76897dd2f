//! Applications (OAuth 2.0 confidential clients) of a tenant, and the token endpoint.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use strongroom_core::access::rbac::Permission;
use strongroom_core::identity::application::{AppId, Application};
use strongroom_core::platform::{OAuthError, OAuthToken, RegisteredApplication, UserTokens};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, Auth, TenantPath};
use crate::problem::{Problem, unauthenticated};
use crate::state::AppState;

/// The `{tenant}` and `{id}` path parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AppPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The application's id.
    id: AppId,
}

/// A new application.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApplication {
    /// A name for people (1-100 characters).
    name: String,
    /// What its tokens may do, e.g. `["records:read"]`.
    permissions: Vec<String>,
}

/// Registers an application (`users:manage`). The response holds the `client_secret`,
/// shown this once.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/applications", tag = "applications",
    params(TenantPath),
    request_body = CreateApplication,
    security(("bearer" = [])),
    responses((status = 201, description = "Registered", body = RegisteredApplication))
)]
pub(crate) async fn create_application(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<CreateApplication>,
) -> Result<(StatusCode, Json<RegisteredApplication>), Problem> {
    if body.permissions.len() > Permission::ALL.len() {
        return Err(Problem::field("/permissions", "Too many permissions."));
    }
    let permissions = body
        .permissions
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Permission::parse(n)
                .ok_or_else(|| Problem::field(format!("/permissions/{i}"), "Unknown permission."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let app = state
        .platform
        .create_application(&principal, &p.tenant, &body.name, permissions)
        .await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// Lists the tenant's applications (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/applications", tag = "applications",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The applications", body = Vec<Application>))
)]
pub(crate) async fn list_applications(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<Json<Vec<Application>>, Problem> {
    Ok(Json(
        state.platform.applications(&principal, &p.tenant).await?,
    ))
}

/// A change to an application.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchApplication {
    /// `false` stops its tokens at the next request.
    active: bool,
}

/// Enables or disables an application (`users:manage`).
#[utoipa::path(
    patch, path = "/v1/t/{tenant}/applications/{id}", tag = "applications",
    params(AppPath),
    request_body = PatchApplication,
    security(("bearer" = [])),
    responses((status = 200, description = "The application after the change", body = Application))
)]
pub(crate) async fn patch_application(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<AppPath>,
    ApiJson(body): ApiJson<PatchApplication>,
) -> Result<Json<Application>, Problem> {
    Ok(Json(
        state
            .platform
            .set_application_active(&principal, &p.tenant, p.id, body.active)
            .await?,
    ))
}

/// A token request (RFC 6749 §4.4.2, §6; RFC 8693), form-encoded.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TokenRequest {
    /// `client_credentials`, `refresh_token`, or token exchange
    /// (`urn:ietf:params:oauth:grant-type:token-exchange`).
    grant_type: Option<String>,
    /// The application's `client_id` (or in HTTP Basic authentication).
    client_id: Option<String>,
    /// The application's `client_secret` (or in HTTP Basic authentication).
    #[schema(value_type = Option<String>, format = Password)]
    client_secret: Option<SecretString>,
    /// Space-separated permissions to narrow the token to (default: all of the
    /// application's).
    scope: Option<String>,
    /// Token exchange (RFC 8693): the user's access token.
    #[schema(value_type = Option<String>, format = Password)]
    subject_token: Option<SecretString>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
    /// `refresh_token` grant: a user's refresh token (single use; rotated).
    #[schema(value_type = Option<String>, format = Password)]
    refresh_token: Option<SecretString>,
}

/// A successful token response: an application's token, or a user's rotated pair.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum TokenResponse {
    /// `client_credentials` and token exchange.
    Application(OAuthToken),
    /// `refresh_token`: a new access token and the next refresh token.
    User(UserTokens),
}

/// RFC 8693 grant type.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of our access tokens.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Longest parameter value accepted (ids, secrets, tokens), in bytes.
const MAX_PARAM: usize = 200;

/// `client_id` and `client_secret` from HTTP Basic (RFC 6749 §2.3.1), if present.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The client's credentials, given one way (HTTP Basic or the form), bounded.
fn client(headers: &HeaderMap, req: &TokenRequest) -> Result<(String, SecretString), Problem> {
    let (id, secret) = match (basic(headers), &req.client_id, &req.client_secret) {
        (Some((id, secret)), None, None) => (id, SecretString::new(secret)),
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => {
            return Err(unauthenticated(
                "Authenticate the client with HTTP Basic or client_id/client_secret (one way).",
            )
            .with_oauth_error("invalid_client"));
        }
    };
    if id.len() > MAX_PARAM
        || secret.expose().len() > MAX_PARAM
        || req.scope.as_ref().is_some_and(|s| s.len() > 500)
    {
        return Err(Problem::oauth(
            "invalid_request",
            "A parameter is too long.",
        ));
    }
    Ok((id, secret))
}

/// The OAuth 2.0 token endpoint: the client-credentials grant for applications, token
/// exchange (RFC 8693) for an application acting for a user (whose token carries only
/// the permissions both hold), and the refresh-token grant (RFC 6749 §6) for users'
/// rotating refresh tokens, so standard OAuth client libraries work.
/// Errors are problem+json that also carry the RFC 6749 `error` code.
#[utoipa::path(
    post, path = "/oauth/token", tag = "applications",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type`, `invalid_grant` or `invalid_scope`"),
        (status = 401, description = "`invalid_client`"),
    )
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::Form<TokenRequest>, FormRejection>,
) -> Result<Json<TokenResponse>, Problem> {
    let axum::Form(req) = form.map_err(|_| {
        Problem::oauth(
            "invalid_request",
            "Send an application/x-www-form-urlencoded body (RFC 6749 §4.4.2).",
        )
    })?;
    match req.grant_type.as_deref() {
        Some("client_credentials") => {
            let (id, secret) = client(&headers, &req)?;
            let token = state
                .platform
                .client_credentials(&id, &secret, req.scope.as_deref())
                .await?;
            Ok(Json(TokenResponse::Application(token)))
        }
        Some(TOKEN_EXCHANGE) => exchange(&state, &headers, &req).await,
        Some("refresh_token") => refresh(&state, &req).await,
        _ => Err(Problem::oauth(
            "unsupported_grant_type",
            "Supported: client_credentials, refresh_token and token exchange (RFC 8693).",
        )),
    }
}

/// Token exchange: the application's credentials and the user's access token.
async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    req: &TokenRequest,
) -> Result<Json<TokenResponse>, Problem> {
    let (id, secret) = client(headers, req)?;
    let (Some(subject), Some(ACCESS_TOKEN_TYPE)) = (
        req.subject_token.as_ref(),
        req.subject_token_type.as_deref(),
    ) else {
        return Err(Problem::oauth(
            "invalid_request",
            "Token exchange needs subject_token and subject_token_type=urn:ietf:params:oauth:token-type:access_token.",
        ));
    };
    let token = state
        .platform
        .token_exchange(&id, &secret, subject.expose(), req.scope.as_deref())
        .await?;
    Ok(Json(TokenResponse::Application(token)))
}

/// The refresh-token grant: the user's refresh token is spent and replaced (a replayed
/// one revokes the session, as at `/v1/t/{tenant}/sessions/refresh`).
async fn refresh(state: &AppState, req: &TokenRequest) -> Result<Json<TokenResponse>, Problem> {
    let Some(token) = req.refresh_token.as_ref() else {
        return Err(Problem::oauth(
            "invalid_request",
            "The refresh_token grant needs refresh_token.",
        ));
    };
    if req.scope.is_some() {
        return Err(Problem::oauth(
            "invalid_scope",
            "A refreshed token has the user's current permissions; omit scope.",
        ));
    }
    match state.platform.oauth_refresh(token).await {
        Ok(tokens) => Ok(Json(TokenResponse::User(tokens))),
        Err(strongroom_core::platform::PlatformError::Unauthenticated) => {
            Err(OAuthError::InvalidGrant.into())
        }
        Err(e) => Err(e.into()),
    }
}
