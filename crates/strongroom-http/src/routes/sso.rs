//! Single sign-on: the tenant administrator's identity providers and SSO policy, the
//! browser's round trip (start, callback), and the re-authentication at the provider
//! that an SSO user's signature needs.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use strongroom_core::identity::sso::ProviderName;
use strongroom_core::identity::user::UserId;
use strongroom_core::platform::{
    CallbackOutcome, CallbackQuery, FlowStart, ProviderInput, ProviderView, SsoSettingsView,
    UserTokens, binding_cookie_name,
};
use strongroom_core::records::RecordId;
use strongroom_core::tenant::Slug;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiForm, ApiJson, ApiPath, ApiQuery, Auth, ClientAddr, TenantPath};
use crate::problem::Problem;
use crate::state::AppState;

/// `{tenant}` and `{provider}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ProviderPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The provider's name in the tenant.
    #[param(value_type = String)]
    provider: ProviderName,
}

/// The tenant's SSO settings: providers (never their secrets) and policy
/// (`users:manage`).
#[utoipa::path(
    get, path = "/v1/t/{tenant}/sso", tag = "sso",
    params(TenantPath),
    security(("bearer" = [])),
    responses((status = 200, description = "The settings", body = SsoSettingsView))
)]
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
) -> Result<Json<SsoSettingsView>, Problem> {
    Ok(Json(
        state.platform.sso_settings(&principal, &p.tenant).await?,
    ))
}

/// Adds or replaces an OpenID Connect identity provider (`users:manage`). The issuer's
/// discovery document is fetched and checked before anything is stored; the client
/// secret is sealed under the tenant's keys and never shown again.
#[utoipa::path(
    put, path = "/v1/t/{tenant}/sso/providers/{provider}", tag = "sso",
    params(ProviderPath),
    request_body = ProviderInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = ProviderView),
        (status = 409, description = "Another administrator changed the settings meanwhile (read and retry), or the tenant requires SSO and this would leave no enabled provider"),
    )
)]
pub(crate) async fn put_provider(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<ProviderPath>,
    ApiJson(body): ApiJson<ProviderInput>,
) -> Result<Json<ProviderView>, Problem> {
    Ok(Json(
        state
            .platform
            .put_sso_provider(&principal, &p.tenant, &p.provider, body)
            .await?,
    ))
}

/// Removes an identity provider (`users:manage`).
#[utoipa::path(
    delete, path = "/v1/t/{tenant}/sso/providers/{provider}", tag = "sso",
    params(ProviderPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 409, description = "The tenant requires SSO and this is its last enabled provider, or the settings changed meanwhile"),
    )
)]
pub(crate) async fn delete_provider(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<ProviderPath>,
) -> Result<StatusCode, Problem> {
    state
        .platform
        .delete_sso_provider(&principal, &p.tenant, &p.provider)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether local passwords are refused, and who may still use one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SsoPolicy {
    /// Refuse local passwords (sign-in and signatures) except for `break_glass`.
    require_sso: bool,
    /// Users who may still sign in with a password (at least one administrator when
    /// `require_sso` is set); each such sign-in is audited as break-glass.
    #[serde(default)]
    break_glass: Vec<UserId>,
}

/// Sets the tenant's SSO policy (`users:manage`).
#[utoipa::path(
    put, path = "/v1/t/{tenant}/sso/policy", tag = "sso",
    params(TenantPath),
    request_body = SsoPolicy,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings", body = SsoSettingsView),
        (status = 409, description = "No enabled provider yet, or the settings changed meanwhile"),
    )
)]
pub(crate) async fn put_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<SsoPolicy>,
) -> Result<Json<SsoSettingsView>, Problem> {
    Ok(Json(
        state
            .platform
            .set_sso_policy(&principal, &p.tenant, body.require_sso, body.break_glass)
            .await?,
    ))
}

/// The browser-binding cookie: `SameSite=Lax` for OIDC (the callback is a top-level
/// GET); `SameSite=None` for SAML, whose response arrives as a cross-site POST from the
/// IdP's page and would otherwise come without it. `__Host-`, `Secure`, `HttpOnly`
/// either way, and useless without the flow's state.
fn binding_cookie(start: &FlowStart) -> Result<HeaderValue, Problem> {
    let same_site = if start.cross_site_post { "None" } else { "Lax" };
    HeaderValue::from_str(&format!(
        "{}={}; Path={}; Max-Age={}; Secure; HttpOnly; SameSite={same_site}",
        start.cookie_name, start.cookie_value, start.cookie_path, start.max_age_secs
    ))
    .map_err(|_| Problem::internal("binding cookie"))
}

/// Starts a sign-in through the provider: a redirect to it (OIDC: the authorization
/// code flow with PKCE, `state` and `nonce`; SAML: an AuthnRequest by HTTP-Redirect)
/// and a cookie binding this browser to the attempt.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/sso/{provider}/login", tag = "sso",
    params(ProviderPath),
    responses(
        (status = 303, description = "To the identity provider"),
        (status = 404, description = "No such tenant or enabled provider (indistinguishable)"),
        (status = 429, description = "Too many sign-in attempts from this address; see Retry-After"),
        (status = 502, description = "The identity provider's discovery document or keys could not be read"),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<ProviderPath>,
) -> Result<Response, Problem> {
    let start = state
        .platform
        .sso_begin(&p.tenant, &p.provider, client)
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, binding_cookie(&start)?);
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&start.authorization_url)
            .map_err(|_| Problem::internal("authorization URL"))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((StatusCode::SEE_OTHER, headers).into_response())
}

/// The provider's redirect back: `code`, `state` and `iss`, or `error`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Callback {
    /// The authorization code.
    code: Option<String>,
    /// Our `state`.
    state: Option<String>,
    /// The issuer (RFC 9207).
    iss: Option<String>,
    /// The provider's error code, instead of a code.
    error: Option<String>,
    /// The provider's error text (ignored: not shown, not stored).
    #[allow(dead_code)]
    error_description: Option<String>,
    /// Ignored (some providers echo it).
    #[allow(dead_code)]
    session_state: Option<String>,
}

/// A signature's re-authentication, completed at the provider.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reauthenticated {
    /// Give this as `sso_challenge` in the signature request (once, within 5 minutes,
    /// from the same session).
    challenge_id: String,
    /// When the provider authenticated the person (its `auth_time`).
    auth_time: String,
}

/// Either outcome of a callback.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum CallbackReply {
    /// A sign-in.
    SignedIn(UserTokens),
    /// A re-authentication for a signature.
    Reauthenticated(Reauthenticated),
}

/// Completes a round trip at the provider: for a sign-in the same tokens as a password
/// sign-in; for a signature's re-authentication a challenge id for the signature
/// request. Works once, in the browser that started it.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/sso/{provider}/callback", tag = "sso",
    params(ProviderPath, Callback),
    responses(
        (status = 200, description = "Signed in, or re-authenticated for a signature", body = CallbackReply),
        (status = 401, description = "The provider's answer was refused (the reason says why; audited)"),
        (status = 429, description = "Too many sign-in attempts from this address; see Retry-After"),
        (status = 502, description = "The identity provider could not be reached"),
    )
)]
pub(crate) async fn callback(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<ProviderPath>,
    ApiQuery(q): ApiQuery<Callback>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let cookie_name = q.state.as_deref().map(binding_cookie_name);
    let binding = cookie_name
        .as_deref()
        .and_then(|name| cookie(&headers, name));
    let query = CallbackQuery {
        code: q.code,
        state: q.state,
        iss: q.iss,
        error: q.error,
        saml_response: None,
    };
    complete(&state, &p, query, binding, client, cookie_name, "Lax").await
}

/// The end of either round trip: the platform's verdict, the binding cookie cleared
/// whatever it is (the attempt is spent).
async fn complete(
    state: &AppState,
    p: &ProviderPath,
    query: CallbackQuery,
    binding: Option<String>,
    client: std::net::IpAddr,
    cookie_name: Option<String>,
    same_site: &str,
) -> Result<Response, Problem> {
    let clear = cookie_name.as_deref().and_then(|name| {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite={same_site}"
        ))
        .ok()
    });
    // The attempt is spent either way: its cookie goes with it, on errors too.
    let outcome = match state
        .platform
        .sso_callback(&p.tenant, &p.provider, query, binding.as_deref(), client)
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let problem = Problem::from(e);
            return Ok(match clear {
                Some(c) => problem
                    .with_header_value(header::SET_COOKIE, c)
                    .into_response(),
                None => problem.into_response(),
            });
        }
    };
    let reply = match outcome {
        CallbackOutcome::SignedIn(t) => CallbackReply::SignedIn(t),
        CallbackOutcome::Reauthenticated {
            challenge_id,
            auth_time,
        } => CallbackReply::Reauthenticated(Reauthenticated {
            challenge_id,
            auth_time,
        }),
    };
    let mut out = HeaderMap::new();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = clear {
        out.insert(header::SET_COOKIE, c);
    }
    Ok((StatusCode::OK, out, Json(reply)).into_response())
}

/// A SAML response posted by the browser (HTTP-POST binding).
#[derive(Deserialize, ToSchema)]
pub(crate) struct AcsForm {
    /// The response, base64.
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    /// Our state, echoed by the IdP.
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// Never the response itself: until spent it is a bearer credential.
impl std::fmt::Debug for AcsForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcsForm")
            .field(
                "saml_response_len",
                &self.saml_response.as_ref().map(String::len),
            )
            .finish_non_exhaustive()
    }
}

/// The assertion consumer service (SAML HTTP-POST binding): the IdP's page posts the
/// response here. It must answer an AuthnRequest this server sent (IdP-initiated
/// responses are refused), in the browser that started it; every signature is
/// verified by xmlsec1, the assertion itself must be signed, name this provider's
/// entity id as audience, be unexpired and unused. Ends like the OIDC callback.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/sso/{provider}/acs", tag = "sso",
    params(ProviderPath),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed in, or re-authenticated for a signature", body = CallbackReply),
        (status = 401, description = "The response was refused (the reason says why; audited)"),
        (status = 413, description = "The body is larger than the server accepts"),
        (status = 415, description = "Not a form (`application/x-www-form-urlencoded`)"),
        (status = 422, description = "The form has fields of the wrong shape"),
        (status = 429, description = "Too many sign-in attempts from this address; see Retry-After"),
        (status = 503, description = "Too many SAML sign-ins in progress, or no SAML engine in this server"),
    )
)]
pub(crate) async fn acs(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(p): ApiPath<ProviderPath>,
    headers: HeaderMap,
    ApiForm(form): ApiForm<AcsForm>,
) -> Result<Response, Problem> {
    let cookie_name = form.relay_state.as_deref().map(binding_cookie_name);
    let binding = cookie_name
        .as_deref()
        .and_then(|name| cookie(&headers, name));
    let query = CallbackQuery {
        state: form.relay_state,
        saml_response: form.saml_response,
        ..CallbackQuery::default()
    };
    complete(&state, &p, query, binding, client, cookie_name, "None").await
}

/// This server's SAML service-provider metadata for the provider (entity id, ACS,
/// encryption certificate), for the IdP's administrator. Anonymous.
#[utoipa::path(
    get, path = "/v1/t/{tenant}/sso/{provider}/metadata", tag = "sso",
    params(ProviderPath),
    responses(
        (status = 200, description = "The SP metadata", content_type = "application/samlmetadata+xml", body = String),
        (status = 404, description = "No such tenant or SAML provider (indistinguishable)"),
    )
)]
pub(crate) async fn metadata(
    State(state): State<AppState>,
    ApiPath(p): ApiPath<ProviderPath>,
) -> Result<Response, Problem> {
    let xml = state
        .platform
        .saml_sp_metadata(&p.tenant, &p.provider)
        .await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/samlmetadata+xml"),
        )],
        xml,
    )
        .into_response())
}

/// The value of cookie `name` in the request, if sent exactly once.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    return None;
                }
                found = Some(v.to_owned());
            }
        }
    }
    found
}

/// `{tenant}`, `{id}` and `{n}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SignPath {
    /// The tenant's slug.
    tenant: Slug,
    /// The record's id.
    id: RecordId,
    /// The version number.
    n: u32,
}

/// What is to be signed, and at which provider to re-authenticate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SsoChallengeRequest {
    /// The meaning of the signature to come (the policy's next one).
    meaning: String,
    /// The identity provider to re-authenticate at.
    #[schema(value_type = String)]
    provider: ProviderName,
}

/// A re-authentication challenge: send the browser to `authorization_url`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SsoChallenge {
    /// The challenge id (the callback confirms it; the signature spends it).
    challenge_id: String,
    /// The provider's authorization URL (`prompt=login`, `max_age=0`, a nonce bound to
    /// this version's content hash and the meaning).
    authorization_url: String,
}

/// Starts the re-authentication at the identity provider that a signature by an SSO
/// user needs (21 CFR 11.200): the provider must make the person log in again; the
/// callback answers with the challenge id, which the signature request then spends
/// (`sso_challenge`). Bound to the caller's session, this version's content and the
/// meaning.
#[utoipa::path(
    post, path = "/v1/t/{tenant}/records/{id}/versions/{n}/signatures/sso-challenge", tag = "records",
    params(SignPath),
    request_body = SsoChallengeRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The challenge", body = SsoChallenge),
        (status = 409, description = "The version is not in review, or the meaning is not the signature it needs next"),
        (status = 502, description = "The identity provider could not be reached"),
    )
)]
pub(crate) async fn sign_challenge(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(p): ApiPath<SignPath>,
    ApiJson(body): ApiJson<SsoChallengeRequest>,
) -> Result<Response, Problem> {
    let start = state
        .platform
        .sso_sign_begin(
            &principal,
            &p.tenant,
            &p.id,
            u64::from(p.n),
            &body.meaning,
            &body.provider,
        )
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, binding_cookie(&start)?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let reply = SsoChallenge {
        challenge_id: start.challenge_id.unwrap_or_default(),
        authorization_url: start.authorization_url,
    };
    Ok((StatusCode::CREATED, headers, Json(reply)).into_response())
}
