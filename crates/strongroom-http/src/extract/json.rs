//! A JSON body extractor whose every failure is problem+json.
//!
//! Wrong content type → 415; larger than the limit → 413; not JSON → 400; JSON with
//! unknown fields, wrong types or values that break a rule → 422 with a JSON Pointer
//! to the offending field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::{self, Problem};

/// A request body parsed as JSON into `T` (which should `deny_unknown_fields`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                &problem::UNSUPPORTED_MEDIA_TYPE,
                "Send the body as JSON with `Content-Type: application/json`.",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: none at all (`Content-Length: 0` or no body) is `None`;
/// anything else must be JSON, exactly as for [`ApiJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers().get(header::CONTENT_TYPE));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(Problem::new(
                &problem::UNSUPPORTED_MEDIA_TYPE,
                "Send the body as JSON with `Content-Type: application/json`.",
            ));
        }
        parse(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

fn is_json(value: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn body_problem(e: BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            &problem::PAYLOAD_TOO_LARGE,
            "The request body is larger than this server accepts.",
        )
    } else {
        Problem::new(
            &problem::MALFORMED_BODY,
            "The request body could not be read.",
        )
    }
}

/// Parses a JSON object, locating semantic errors by JSON Pointer. Every request body
/// of this API is an object; anything else is refused before field mapping starts, so
/// `[1,2]` gets "must be an object" rather than a confusing per-element message.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Problem::field("", "The request body must be a JSON object."),
                Err(_) => Problem::new(&problem::MALFORMED_BODY, "The body is not valid JSON."),
            },
        );
    }
    if escapes_nul(bytes) {
        // Pointed at the field when the body parses as a plain JSON value; refused
        // all the same when it does not (a number beyond f64, deep nesting).
        let at = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| nul_at(&v))
            .unwrap_or_default();
        return Err(Problem::field(
            at,
            "Text may not contain the NUL character (U+0000).",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let pointer = pointer(e.path());
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    Err(Problem::field(pointer, data_message(&inner)))
                }
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    Err(Problem::new(
                        &problem::MALFORMED_BODY,
                        format!(
                            "The body is not valid JSON (line {}, column {}).",
                            inner.line(),
                            inner.column()
                        ),
                    ))
                }
                serde_json::error::Category::Io => Err(Problem::new(
                    &problem::MALFORMED_BODY,
                    "The body could not be read.",
                )),
            }
        }
    }
}

/// Whether a JSON text holds the escape `\u0000`. NUL is refused in every string of
/// every body: PostgreSQL text cannot hold it (a stored field would fail as a 500), and
/// C consumers of exported data would truncate at it. JSON can carry NUL only as that
/// escape (a raw control byte is invalid JSON), so a scan that skips each escaped
/// character (`\\u0000` is a backslash and text, not NUL) finds every one.
fn escapes_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The JSON Pointer of the first member name or string holding NUL.
fn nul_at(value: &serde_json::Value) -> Option<String> {
    fn escape(key: &str) -> String {
        key.replace('~', "~0").replace('/', "~1")
    }
    match value {
        serde_json::Value::String(s) => s.contains('\0').then(String::new),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v).map(|p| format!("/{i}{p}"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(format!("/{}", escape(k)))
            } else {
                nul_at(v).map(|p| format!("/{}{p}", escape(k)))
            }
        }),
        _ => None,
    }
}

/// serde's message without its " at line X column Y" suffix, which means nothing to a
/// client that sent a single-line body.
fn data_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// `serde_path_to_error` path → RFC 6901 JSON Pointer.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        slug: strongroom_core::tenant::Slug,
        n: u8,
    }

    #[test]
    fn errors_point_at_the_field() {
        let p = parse::<Body>(br#"{"slug":"BAD","n":1}"#).unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let p = parse::<Body>(br#"{"slug":"good","n":300}"#).unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let p = parse::<Body>(br#"{"slug":"good","n":1,"extra":true}"#).unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let p = parse::<Body>(b"[1,2]").unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let p = parse::<Body>(b"  null ").unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let p = parse::<Body>(b"[1,").unwrap_err();
        assert_eq!(p.kind(), &problem::MALFORMED_BODY);
        let p = parse::<Body>(br#"{"slug":"good""#).unwrap_err();
        assert_eq!(p.kind(), &problem::MALFORMED_BODY);
        assert!(parse::<Body>(br#"{"slug":"good","n":1}"#).is_ok());
    }

    #[test]
    fn nul_is_refused_in_any_string_but_an_escaped_backslash_is_not_nul() {
        assert!(escapes_nul(br#"{"a":"x\u0000y"}"#));
        assert!(escapes_nul(br#"{"a\u0000":1}"#));
        assert!(escapes_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!escapes_nul(br#"{"a":"\\u0000"}"#));
        assert!(!escapes_nul(br#"{"a":"\u0001 \"\\"}"#));
        let p = parse::<serde_json::Value>(br#"{"name":"a\u0000"}"#).unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
        let v: serde_json::Value =
            serde_json::from_slice(br#"{"a":[1,{"b/c":"x\u0000"}]}"#).unwrap();
        assert_eq!(nul_at(&v).as_deref(), Some("/a/1/b~1c"));
        // A body that is not a plain JSON value is refused all the same.
        let p = parse::<serde_json::Value>(br#"{"name":"x\u0000","zz":1e400}"#).unwrap_err();
        assert_eq!(p.kind(), &problem::VALIDATION);
    }

    #[test]
    fn content_types() {
        use header::HeaderValue as V;
        assert!(is_json(Some(&V::from_static("application/json"))));
        assert!(is_json(Some(&V::from_static(
            "application/json; charset=utf-8"
        ))));
        assert!(is_json(Some(&V::from_static(
            "application/merge-patch+json"
        ))));
        assert!(!is_json(Some(&V::from_static("text/plain"))));
        assert!(!is_json(None));
    }
}
