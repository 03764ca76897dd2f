//! RFC 9457 problem details: the only place an error becomes an HTTP response.
//!
//! Each kind of problem has a stable `type` URI (a [`ProblemKind`] constant below);
//! clients branch on `type`, people read `detail`. What the client sees and what the
//! log says are separate: a server-side fault is logged with its cause, in the request
//! span, and the client gets only the kind and the request id.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strongroom_core::platform::{OAuthError, PlatformError};
use utoipa::ToSchema;

use crate::middleware::current_request_id;

/// Prefix of every problem `type` URI.
pub const TYPE_BASE: &str = "https://strongroom.dev/errors/";
/// Media type of problem responses.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A kind of problem: stable slug (the tail of the `type` URI), title and status.
#[derive(Debug, PartialEq, Eq)]
pub struct ProblemKind {
    /// Tail of the `type` URI; never changes once published.
    pub slug: &'static str,
    /// Short human summary, the same for every occurrence.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
}

/// The body is not parseable JSON.
pub const MALFORMED_BODY: ProblemKind = ProblemKind {
    slug: "malformed-body",
    title: "The request body is not valid JSON",
    status: 400,
};
/// No credentials, or credentials that do not verify.
pub const UNAUTHENTICATED: ProblemKind = ProblemKind {
    slug: "unauthenticated",
    title: "Authentication is required or failed",
    status: 401,
};
/// Authenticated but not permitted.
pub const FORBIDDEN: ProblemKind = ProblemKind {
    slug: "forbidden",
    title: "Not permitted",
    status: 403,
};
/// No such resource (or not visible to the caller — the two are indistinguishable).
pub const NOT_FOUND: ProblemKind = ProblemKind {
    slug: "not-found",
    title: "Not found",
    status: 404,
};
/// No route matches the path.
pub const NO_ROUTE: ProblemKind = ProblemKind {
    slug: "no-route",
    title: "No such endpoint",
    status: 404,
};
/// The path exists but not with this method.
pub const METHOD_NOT_ALLOWED: ProblemKind = ProblemKind {
    slug: "method-not-allowed",
    title: "Method not allowed",
    status: 405,
};
/// Conflicts with existing state (e.g. a slug that is taken).
pub const CONFLICT: ProblemKind = ProblemKind {
    slug: "conflict",
    title: "Conflicts with existing state",
    status: 409,
};
/// The body is larger than the server accepts.
pub const PAYLOAD_TOO_LARGE: ProblemKind = ProblemKind {
    slug: "payload-too-large",
    title: "Request body too large",
    status: 413,
};
/// The body is not `application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: ProblemKind = ProblemKind {
    slug: "unsupported-media-type",
    title: "Unsupported media type",
    status: 415,
};
/// Well-formed JSON or query with values that break the rules.
pub const VALIDATION: ProblemKind = ProblemKind {
    slug: "validation",
    title: "The request has invalid values",
    status: 422,
};
/// A token request the OAuth 2.0 token endpoint refuses (RFC 6749 §5.2); the body also
/// carries the RFC's `error` code.
pub const OAUTH: ProblemKind = ProblemKind {
    slug: "oauth",
    title: "The token request was refused",
    status: 400,
};
/// Too many failed sign-ins from this address for this account; wait `Retry-After`.
pub const TOO_MANY_REQUESTS: ProblemKind = ProblemKind {
    slug: "too-many-requests",
    title: "Too many failed attempts",
    status: 429,
};
/// As many of these are running as the server allows at once; wait `Retry-After`.
pub const AT_CAPACITY: ProblemKind = ProblemKind {
    slug: "at-capacity",
    title: "Too many at once",
    status: 429,
};
/// Temporarily unable to serve (dependency down, pool saturated); retry later.
pub const UNAVAILABLE: ProblemKind = ProblemKind {
    slug: "unavailable",
    title: "Service temporarily unavailable",
    status: 503,
};
/// The request took longer than the server allows.
pub const TIMEOUT: ProblemKind = ProblemKind {
    slug: "timeout",
    title: "The request timed out",
    status: 503,
};
/// Our fault. The request id lets an operator find the cause in the log.
pub const INTERNAL: ProblemKind = ProblemKind {
    slug: "internal",
    title: "Internal server error",
    status: 500,
};

/// Record content that is well-formed JSON but breaks a bound or rule.
pub const INVALID_CONTENT: ProblemKind = ProblemKind {
    slug: "invalid-content",
    title: "Record content breaks a structural rule (duplicate keys, too deep, too many values)",
    status: 422,
};
/// Content that breaks its record type's JSON Schema; `errors` lists each violation.
pub const SCHEMA_VIOLATION: ProblemKind = ProblemKind {
    slug: "schema-violation",
    title: "The content does not satisfy the record type's schema",
    status: 422,
};
/// `If-Match` is not the object's current ETag: read it again; never a silent merge.
pub const PRECONDITION_FAILED: ProblemKind = ProblemKind {
    slug: "precondition-failed",
    title: "The object changed since it was read",
    status: 412,
};
/// A write that must name the state it was based on (`If-Match`) did not.
pub const PRECONDITION_REQUIRED: ProblemKind = ProblemKind {
    slug: "precondition-required",
    title: "If-Match is required",
    status: 428,
};
/// The signature policy's separation of duties forbids this signer (e.g. an author approving their own version).
pub const SEPARATION_OF_DUTIES: ProblemKind = ProblemKind {
    slug: "separation-of-duties",
    title: "Separation of duties forbids this signature",
    status: 403,
};
/// The record or version is in a state that does not allow this (e.g. editing a version in review).
pub const RECORD_STATE: ProblemKind = ProblemKind {
    slug: "record-state",
    title: "The record's state does not allow this",
    status: 409,
};
/// The password, login identifier or second factor given with a signature was wrong or missing: nothing was stored.
pub const REAUTHENTICATION_FAILED: ProblemKind = ProblemKind {
    slug: "reauthentication-failed",
    title: "Re-authentication for the signature failed",
    status: 403,
};
/// Only a user's own interactive session can sign: never an application or a delegated token.
pub const SIGNING_NOT_PERMITTED: ProblemKind = ProblemKind {
    slug: "signing-not-permitted",
    title: "This kind of credential can never sign",
    status: 403,
};
/// A single sign-on (or a signature's re-authentication at an identity provider) was
/// refused: the provider's answer failed a check, or the attempt is unknown, used,
/// expired or from another browser. The detail says which; the attempt is audited.
pub const SSO_FAILED: ProblemKind = ProblemKind {
    slug: "sso-failed",
    title: "Single sign-on failed",
    status: 401,
};
/// The tenant requires single sign-on: a password is not accepted here (a signature
/// re-authenticates at the identity provider instead).
pub const SSO_REQUIRED: ProblemKind = ProblemKind {
    slug: "sso-required",
    title: "This tenant requires single sign-on",
    status: 403,
};
/// The identity provider could not be reached, or answered something unusable.
pub const IDP_UNAVAILABLE: ProblemKind = ProblemKind {
    slug: "idp-unavailable",
    title: "The identity provider is unavailable",
    status: 502,
};
/// A `Range` header that names no part of the file (one range is accepted).
pub const RANGE_NOT_SATISFIABLE: ProblemKind = ProblemKind {
    slug: "range-not-satisfiable",
    title: "The range is outside the file",
    status: 416,
};

/// Every problem kind this server can answer with (listed in the OpenAPI document).
pub const ALL: &[&ProblemKind] = &[
    &MALFORMED_BODY,
    &UNAUTHENTICATED,
    &FORBIDDEN,
    &NOT_FOUND,
    &NO_ROUTE,
    &METHOD_NOT_ALLOWED,
    &CONFLICT,
    &PAYLOAD_TOO_LARGE,
    &UNSUPPORTED_MEDIA_TYPE,
    &VALIDATION,
    &OAUTH,
    &TOO_MANY_REQUESTS,
    &AT_CAPACITY,
    &UNAVAILABLE,
    &TIMEOUT,
    &INTERNAL,
    &INVALID_CONTENT,
    &SCHEMA_VIOLATION,
    &PRECONDITION_FAILED,
    &PRECONDITION_REQUIRED,
    &SEPARATION_OF_DUTIES,
    &RECORD_STATE,
    &REAUTHENTICATION_FAILED,
    &SIGNING_NOT_PERMITTED,
    &RANGE_NOT_SATISFIABLE,
    &SSO_FAILED,
    &SSO_REQUIRED,
    &IDP_UNAVAILABLE,
];

impl ProblemKind {
    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.slug)
    }
}

/// One invalid field, located by a JSON Pointer (RFC 6901) into the request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: `/slug`, `/limit`, … (`""` for the whole body).
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

/// The body of every error response (RFC 9457, with two extension members).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong this time, for a person.
    pub detail: String,
    /// Request id; also in the `x-request-id` header and the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The OAuth 2.0 error code (RFC 6749 §5.2), on token-endpoint problems only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct Problem {
    kind: &'static ProblemKind,
    detail: String,
    errors: Vec<FieldError>,
    /// Cause for the log; never sent.
    internal: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    oauth: Option<&'static str>,
}

impl Problem {
    /// A problem of `kind` with a human `detail`.
    pub fn new(kind: &'static ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            internal: None,
            headers: Vec::new(),
            oauth: None,
        }
    }

    /// A validation problem about one field.
    pub fn field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::new(&VALIDATION, detail.clone());
        p.errors.push(FieldError {
            pointer: pointer.into(),
            detail,
        });
        p
    }

    /// Our fault: `cause` goes to the log, the client sees a generic message.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut p = Self::new(
            &INTERNAL,
            "The server failed to handle the request. Quote the request id when reporting it.",
        );
        p.internal = Some(cause.into());
        p
    }

    /// Adds a response header (e.g. `WWW-Authenticate`, `Retry-After`, `Allow`).
    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// A token-endpoint refusal (400) carrying the OAuth 2.0 `error` code.
    pub fn oauth(code: &'static str, detail: &str) -> Self {
        Self::new(&OAUTH, detail).with_oauth_error(code)
    }

    /// Adds the OAuth 2.0 `error` code (RFC 6749 §5.2) for token-endpoint clients.
    pub fn with_oauth_error(mut self, code: &'static str) -> Self {
        self.oauth = Some(code);
        self
    }

    /// Adds a response header with a computed value (e.g. `Retry-After: <seconds>`).
    pub fn with_header_value(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The kind of this problem.
    pub fn kind(&self) -> &'static ProblemKind {
        self.kind
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(
                problem = self.kind.slug,
                cause = self.internal.as_deref().unwrap_or(&self.detail),
                "request failed"
            );
        } else {
            tracing::info!(problem = self.kind.slug, detail = %self.detail, "request refused");
        }
        let body = ProblemBody {
            type_: self.kind.type_uri(),
            title: self.kind.title,
            status: self.kind.status,
            detail: self.detail,
            request_id: current_request_id(),
            errors: self.errors,
            error: self.oauth,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            json,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<PlatformError> for Problem {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Invalid {
                field: Some(f),
                message,
            } => Problem::field(format!("/{f}"), message),
            PlatformError::Invalid {
                field: None,
                message,
            } => Problem::new(&VALIDATION, message),
            PlatformError::InvalidAt { pointer, message } => Problem::field(pointer, message),
            PlatformError::TooLarge(m) => Problem::new(&PAYLOAD_TOO_LARGE, m),
            e @ (PlatformError::PreconditionFailed
            | PlatformError::PreconditionRequired
            | PlatformError::SeparationOfDuties(_)
            | PlatformError::RecordState(_)
            | PlatformError::ReauthenticationFailed
            | PlatformError::SigningNotPermitted(_)
            | PlatformError::SchemaViolation(_)) => records_problem(e),
            PlatformError::Unauthenticated => {
                unauthenticated("The credentials are missing or invalid.")
            }
            PlatformError::Forbidden(m) => Problem::new(&FORBIDDEN, m),
            PlatformError::SsoRequired(m) => Problem::new(&SSO_REQUIRED, m),
            PlatformError::SsoRefused(why) => {
                Problem::new(&SSO_FAILED, format!("Single sign-on failed: {why}."))
            }
            PlatformError::IdpUnavailable(why) => Problem::new(
                &IDP_UNAVAILABLE,
                format!("Identity provider unavailable: {why}."),
            ),
            PlatformError::NotFound(what) => Problem::new(&NOT_FOUND, format!("No such {what}.")),
            PlatformError::Conflict(m) => Problem::new(&CONFLICT, m),
            PlatformError::Unavailable(cause) => {
                let mut p = Problem::new(
                    &UNAVAILABLE,
                    "A dependency is temporarily unavailable; retry shortly.",
                );
                p.internal = Some(chain(&*cause));
                p.with_header(header::RETRY_AFTER, "5")
            }
            PlatformError::SecondFactorRequired => unauthenticated(
                "A valid second factor is required: send `totp` (a current code), `recovery_code`, or `passkey` (see /sessions/passkey-challenge).",
            ),
            PlatformError::TooManyRequests { retry_after_secs } => Problem::new(
                &TOO_MANY_REQUESTS,
                "Too many failed sign-ins for this account from this address; retry later.",
            )
            .with_header_value(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            PlatformError::AtCapacity {
                what,
                retry_after_secs,
            } => Problem::new(
                &AT_CAPACITY,
                format!("As many {what} are running as this server allows at once; retry later."),
            )
            .with_header_value(header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
            PlatformError::Internal(cause) => Problem::internal(chain(&*cause)),
        }
    }
}

/// The problems of the records lifecycle.
fn records_problem(e: PlatformError) -> Problem {
    match e {
        PlatformError::PreconditionFailed => Problem::new(
            &PRECONDITION_FAILED,
            "The record changed since it was read: read it again and send its new ETag in If-Match.",
        ),
        PlatformError::PreconditionRequired => Problem::new(
            &PRECONDITION_REQUIRED,
            "Send the record's ETag (from its last read) in an If-Match header.",
        ),
        PlatformError::SeparationOfDuties(m) => Problem::new(&SEPARATION_OF_DUTIES, m),
        PlatformError::RecordState(m) => Problem::new(&RECORD_STATE, m),
        PlatformError::ReauthenticationFailed => Problem::new(
            &REAUTHENTICATION_FAILED,
            "Re-authentication failed: check the login identifier, password and second factor, or (single sign-on) re-authenticate at the identity provider again for this signature. Nothing was signed.",
        ),
        PlatformError::SigningNotPermitted(m) => Problem::new(&SIGNING_NOT_PERMITTED, m),
        PlatformError::SchemaViolation(violations) => {
            let mut p = Problem::new(
                &SCHEMA_VIOLATION,
                "The content does not satisfy the record type's schema.",
            );
            p.errors = violations
                .into_iter()
                .map(|v| FieldError {
                    pointer: format!("/content{}", v.pointer),
                    detail: v.message,
                })
                .collect();
            p
        }
        other => Problem::internal(chain(&other)),
    }
}

impl From<strongroom_core::records::content::ContentError> for Problem {
    fn from(e: strongroom_core::records::content::ContentError) -> Self {
        use strongroom_core::records::content::ContentError;
        match e {
            ContentError::Malformed(m) => {
                Problem::new(&MALFORMED_BODY, format!("The body is not valid JSON: {m}"))
            }
            ContentError::TooLarge => Problem::new(
                &PAYLOAD_TOO_LARGE,
                "The request body is larger than this server accepts.",
            ),
            ContentError::Refused(m) => Problem::new(&INVALID_CONTENT, m),
        }
    }
}

impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::InvalidClient => {
                unauthenticated("Unknown client, wrong secret, or a disabled application.")
                    .with_oauth_error("invalid_client")
            }
            OAuthError::InvalidScope => Problem::oauth(
                "invalid_scope",
                "The scope names permissions the token cannot have.",
            ),
            OAuthError::InvalidGrant => Problem::oauth(
                "invalid_grant",
                "The grant (a subject token or refresh token) is not live, or not for this client.",
            ),
            OAuthError::Unavailable(e) => e.into(),
        }
    }
}

pub use strongroom_core::platform::chain;

/// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn unauthenticated(detail: &str) -> Problem {
    Problem::new(&UNAUTHENTICATED, detail).with_header(header::WWW_AUTHENTICATE, "Bearer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_and_statuses_valid() {
        let mut slugs: Vec<_> = ALL.iter().map(|k| k.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ALL.len());
        for k in ALL {
            assert!(StatusCode::from_u16(k.status).is_ok());
            assert!(k.status >= 400);
        }
    }

    #[tokio::test]
    async fn internal_causes_are_not_sent() {
        use http_body_util::BodyExt;
        let r = Problem::internal("db password is hunter2").into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("https://strongroom.dev/errors/internal"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
